// Sign in with an API token (`overture token create` prints one; `overture demo` prints a link
// that carries it). The token stays in this browser's localStorage.

import { ApiError, get, setToken } from "../api.js";
import { errorBox, fill, h } from "../dom.js";

export function signInView(onDone) {
  const input = h("input", {
    type: "password", id: "token", autocomplete: "off", required: true, "aria-describedby": "token-help",
    placeholder: "ovt_…",
  });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", {
    class: "panel signin", "aria-labelledby": "signin-title",
    onsubmit: async (ev) => {
      ev.preventDefault();
      fill(status, );
      setToken(input.value);
      try {
        await get("/catalogs");
        onDone();
      } catch (err) {
        setToken("");
        fill(status, errorBox(err instanceof ApiError ? err : { title: String(err) }));
        input.focus();
      }
    },
  },
    h("h1", { id: "signin-title" }, "Sign in to Overture"),
    h("p", { class: "muted" }, "Describe a process in plain English, check the plan, run it and watch it live."),
    h("label", { for: "token" }, "API token"),
    input,
    h("div", { class: "field-help", id: "token-help" },
      "Make one with ", h("code", {}, "overture token create"), ", or open the link ", h("code", {}, "overture demo"), " prints."),
    status,
    h("div", { class: "row", style: "margin-top:.8rem" }, h("button", { type: "submit", class: "primary" }, "Sign in")));
  queueMicrotask(() => input.focus());
  return form;
}
