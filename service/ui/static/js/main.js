// The single-page shell: a hash router (`#/`, `#/plans/ID`, `#/workflows/ID`, `#/runs/ID`, ...),
// the sign-in gate and the navigation state. Each view renders into <main> and may return a
// cleanup function (to stop a live event stream when the user leaves the page).

import { getToken, setToken, takeTokenFromLocation } from "./api.js";
import { fill, h, toast } from "./dom.js";
import { describeView } from "./views/describe.js";
import { planView } from "./views/plan.js";
import { runView } from "./views/run.js";
import { runsView } from "./views/runs.js";
import { signInView } from "./views/signin.js";
import { workflowView, workflowsView } from "./views/workflow.js";

const routes = [
  [/^\/?$/, "describe", () => describeView],
  [/^\/plans\/([^/]+)$/, "describe", () => planView],
  [/^\/workflows\/?$/, "workflows", () => workflowsView],
  [/^\/workflows\/([^/]+)$/, "workflows", () => workflowView],
  [/^\/runs\/?$/, "runs", () => runsView],
  [/^\/runs\/([^/]+)$/, "runs", () => runView],
];

let cleanup = null;
let generation = 0;

function setNav(section) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function render() {
  const mine = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* a view's cleanup must not break navigation */ } }
  cleanup = null;
  const main = document.getElementById("main");
  const path = decodeURIComponent(location.hash.replace(/^#/, "").split("?")[0]) || "/";
  document.getElementById("signout").hidden = !getToken();
  if (!getToken()) {
    setNav(null);
    fill(main, signInView(() => render()));
    return;
  }
  for (const [pattern, section, view] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    setNav(section);
    fill(main, h("p", { class: "muted", role: "status" }, "Loading…"));
    try {
      const result = await view()(main, ...match.slice(1));
      if (mine !== generation) { if (typeof result === "function") result(); return; }
      cleanup = typeof result === "function" ? result : null;
    } catch (err) {
      if (mine !== generation) return;
      fill(main, h("div", { class: "panel" },
        h("h1", {}, err.title || "This page could not be shown"),
        h("p", {}, err.detail || err.message || String(err)),
        h("a", { href: "#/" }, "Back to the start")));
    }
    return;
  }
  setNav(null);
  fill(main, h("div", { class: "panel" }, h("h1", {}, "Not found"),
    h("p", {}, "Nothing lives at this address. "), h("a", { href: "#/" }, "Describe a process")));
}

/** Move keyboard focus to the new page's heading so screen readers announce it. */
function focusMain() {
  const heading = document.querySelector("main h1");
  if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus({ preventScroll: true }); }
}

window.addEventListener("hashchange", async () => { await render(); focusMain(); });
window.addEventListener("overture:unauthorized", () => {
  if (document.querySelector("form.signin")) return; // the sign-in form shows the refusal itself
  setToken("");
  toast("The API token was refused; sign in again.", "error");
  render();
});

document.getElementById("signout").addEventListener("click", () => {
  setToken("");
  location.hash = "#/";
  render();
});

async function whoAmI() {
  try {
    const health = await (await fetch("/health")).json();
    document.getElementById("who").textContent = health?.version ? `Overture ${health.version}` : "";
  } catch { /* the version label is optional */ }
}

takeTokenFromLocation();
render();
whoAmI();
