// Pieces several views share: ARIA tabs, the graph panel with its legend, the instruction box.

import { fill, h } from "./dom.js";
import { renderGraph } from "./graph.js";

let tabGroups = 0;

/**
 * Tabs with the WAI-ARIA keyboard pattern (arrow keys move between tabs). `defs` is a list of
 * {id, label, render()}; `state.tab` remembers the open tab across re-renders.
 */
export function tabs(defs, state, label) {
  const group = ++tabGroups;
  const current = defs.some((d) => d.id === state.tab) ? state.tab : defs[0].id;
  const panel = h("div", { role: "tabpanel", id: `tabpanel-${group}`, tabindex: "0" });
  const buttons = defs.map((def) => h("button", {
    type: "button", role: "tab", id: `tab-${group}-${def.id}`, "aria-controls": `tabpanel-${group}`,
    "aria-selected": def.id === current ? "true" : "false", tabindex: def.id === current ? "0" : "-1",
    "data-tab": def.id,
    onclick: () => select(def.id, true),
  }, def.label));
  const list = h("div", { class: "tabs", role: "tablist", "aria-label": label }, buttons);
  list.addEventListener("keydown", (ev) => {
    const i = defs.findIndex((d) => d.id === state.tab);
    let j = null;
    if (ev.key === "ArrowRight") j = (i + 1) % defs.length;
    if (ev.key === "ArrowLeft") j = (i - 1 + defs.length) % defs.length;
    if (ev.key === "Home") j = 0;
    if (ev.key === "End") j = defs.length - 1;
    if (j !== null) { ev.preventDefault(); select(defs[j].id, true); }
  });
  function select(id, focus) {
    state.tab = id;
    buttons.forEach((b) => {
      const on = b.dataset.tab === id;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    });
    const def = defs.find((d) => d.id === id);
    panel.setAttribute("aria-labelledby", `tab-${group}-${id}`);
    fill(panel, def.render());
  }
  select(current, false);
  return h("div", {}, list, panel);
}

export function legend() {
  return h("div", { class: "legend", "aria-hidden": "true" },
    h("span", {}, h("i", { class: "l-par" }), "runs in parallel"),
    h("span", {}, h("i", { class: "l-cond" }), "conditional (if)"),
    h("span", {}, h("i", { class: "l-retry" }), "retried"),
    h("span", {}, h("i", { class: "l-undo" }), "↶ undone if the run fails later"));
}

/** The graph in a scrolling panel. Returns {node, draw(doc, options)}. */
export function graphPanel(title, extra = null) {
  const canvas = h("div", { class: "graph-scroll", id: "graph" });
  const node = h("section", { class: "panel graph-panel", "aria-labelledby": "graph-title" },
    h("div", { class: "graph-head" }, h("h2", { id: "graph-title" }, title), extra),
    canvas,
    legend());
  return {
    node,
    draw(doc, options = {}) {
      const selected = document.activeElement?.closest?.("#graph [data-step]")?.dataset.step;
      renderGraph(canvas, doc, options);
      // keep keyboard focus on the same step when the graph is redrawn (live updates, edits)
      if (selected) canvas.querySelector(`[data-step="${CSS.escape(selected)}"]`)?.focus({ preventScroll: true });
    },
  };
}

/** "Change it in plain English": an instruction box; `onSubmit(text)` returns a promise. */
export function instructionBox({ onSubmit, label = "Change it in plain English", button = "Apply instruction" }) {
  const input = h("textarea", {
    id: "instruction", rows: 2, placeholder: "e.g. retry the billing setup up to 3 times",
    "aria-describedby": "instruction-help",
  });
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", id: "instruction-button" }, button);
  const form = h("form", {
    class: "instruction", onsubmit: async (ev) => {
      ev.preventDefault();
      if (!input.value.trim()) { input.focus(); return; }
      submit.disabled = true;
      submit.setAttribute("aria-busy", "true");
      fill(status, );
      try {
        const note = await onSubmit(input.value.trim());
        input.value = "";
        if (note) fill(status, note);
      } catch (err) {
        const { errorBox } = await import("./dom.js");
        fill(status, errorBox(err));
      } finally {
        submit.disabled = false;
        submit.removeAttribute("aria-busy");
      }
    },
  },
    h("label", { for: "instruction" }, label),
    input,
    h("div", { class: "field-help", id: "instruction-help" }, "Enter applies it; Shift+Enter starts a new line."),
    status,
    h("div", { class: "row", style: "margin-top:.4rem" }, submit));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
  return form;
}
