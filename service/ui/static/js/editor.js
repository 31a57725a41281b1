// Editing a workflow document in the browser: a form per step (name, needs, inputs, condition,
// retries, time limit, undo action) and the whole document as JSON. Every change calls
// `onChange(doc)` with the edited copy so the graph and the plain-English view follow at once;
// the server validates when the document is accepted or saved.

import { h } from "./dom.js";

const clone = (value) => JSON.parse(JSON.stringify(value));

function showValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Text typed into an input field back to data: JSON when it parses as a number, bool, list or object. */
function readValue(text, previous) {
  if (typeof previous === "string") return text;
  try { return JSON.parse(text); } catch { return text; }
}

function slug(text) {
  return text.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "").toLowerCase() || "field";
}

export function stepEditor(doc, index, { actions = [], onChange }) {
  const step = doc.steps[index];
  const others = doc.steps.filter((s) => s.id !== step.id).map((s) => s.id);
  const base = `step-${slug(step.id)}`;
  const update = (fn) => {
    const next = clone(doc);
    fn(next.steps[index]);
    onChange(next);
  };
  const field = (key, label, input, help) => h("div", {},
    h("label", { for: `${base}-${key}` }, label),
    input,
    help ? h("div", { class: "field-help", id: `${base}-${key}-help` }, help) : null);

  const withFields = Object.entries(step.with || {}).map(([key, value]) => field(`with-${slug(key)}`, key,
    h("input", {
      type: "text", id: `${base}-with-${slug(key)}`, value: showValue(value), class: "mono",
      onchange: (ev) => update((s) => { s.with[key] = readValue(ev.target.value, value); }),
    })));
  const undoOptions = ["", ...actions.filter((a) => !a.startsWith("core."))];
  if (step.compensate && !undoOptions.includes(step.compensate.action)) undoOptions.push(step.compensate.action);

  return h("fieldset", { class: "step-editor", "data-step": step.id },
    h("legend", {}, `${step.name || step.id}`),
    h("div", { class: "muted small mono" }, step.action),
    h("div", { class: "grid2" },
      field("name", "Title", h("input", {
        type: "text", id: `${base}-name`, value: step.name || "",
        onchange: (ev) => update((s) => { if (ev.target.value.trim()) s.name = ev.target.value.trim(); else delete s.name; }),
      })),
      field("needs", h("span", {}, "Runs after ", h("span", { class: "opt" }, "(step ids)")), h("input", {
        type: "text", id: `${base}-needs`, value: (step.needs || []).join(", "), list: `${base}-ids`,
        "aria-describedby": `${base}-needs-help`,
        onchange: (ev) => update((s) => {
          const needs = ev.target.value.split(/[\s,]+/).filter(Boolean);
          if (needs.length) s.needs = needs; else delete s.needs;
        }),
      }), others.length ? `Other steps: ${others.join(", ")}` : null),
      field("retry", "Attempts (1 = no retry)", h("input", {
        type: "number", min: 1, max: 100, id: `${base}-retry`, value: step.retry?.max_attempts ?? 1,
        onchange: (ev) => update((s) => {
          const n = Math.max(1, Math.min(100, parseInt(ev.target.value, 10) || 1));
          if (n > 1) s.retry = { ...(s.retry || {}), max_attempts: n };
          else delete s.retry;
        }),
      })),
      field("timeout", h("span", {}, "Time limit, seconds ", h("span", { class: "opt" }, "(optional)")), h("input", {
        type: "number", min: 0, step: "any", id: `${base}-timeout`, value: step.timeout_s ?? "",
        onchange: (ev) => update((s) => {
          const t = parseFloat(ev.target.value);
          if (t > 0) s.timeout_s = t; else delete s.timeout_s;
        }),
      }))),
    field("if", h("span", {}, "Only if ", h("span", { class: "opt" }, "(condition, e.g. ${{ inputs.seats > 100 }})")), h("input", {
      type: "text", id: `${base}-if`, value: step.if || "", class: "mono",
      onchange: (ev) => update((s) => { if (ev.target.value.trim()) s.if = ev.target.value.trim(); else delete s.if; }),
    })),
    field("undo", "Undo with, if the run fails later", h("select", {
      id: `${base}-undo`,
      onchange: (ev) => update((s) => {
        if (!ev.target.value) delete s.compensate;
        else s.compensate = { ...(s.compensate || {}), action: ev.target.value };
      }),
    }, undoOptions.map((a) => h("option", { value: a, selected: (step.compensate?.action || "") === a }, a || "— nothing —")))),
    withFields.length ? h("h3", {}, "Inputs") : null,
    withFields,
    h("div", { class: "row", style: "margin-top:.6rem" },
      h("span", { class: "spacer" }),
      h("button", {
        type: "button", class: "small danger", "aria-label": `Remove step ${step.id}`,
        onclick: () => {
          const next = clone(doc);
          next.steps.splice(index, 1);
          for (const s of next.steps) if (s.needs) s.needs = s.needs.filter((n) => n !== step.id);
          onChange(next);
        },
      }, "Remove step")),
    h("datalist", { id: `${base}-ids` }, others.map((id) => h("option", { value: id }))));
}

/** All step forms, one after another. */
export function stepsEditor(doc, options) {
  return h("div", { class: "steps-editor" }, doc.steps.map((_, i) => stepEditor(doc, i, options)));
}

/** The whole document as JSON text, applied with a button (a typo must not wipe the graph). */
export function documentEditor(doc, { onChange, onError }) {
  const area = h("textarea", {
    class: "code", id: "document-json", spellcheck: "false", "aria-label": "Workflow document as JSON",
    value: JSON.stringify(doc, null, 2),
  });
  return h("div", {},
    area,
    h("div", { class: "row", style: "margin-top:.5rem" },
      h("button", {
        type: "button", onclick: () => {
          try {
            const next = JSON.parse(area.value);
            if (!next || !Array.isArray(next.steps)) throw new Error("the document needs a `steps` list");
            onChange(next);
          } catch (err) {
            onError(err.message || String(err));
          }
        },
      }, "Apply document"),
      h("span", { class: "muted small" }, "Checked by the server when you accept or save.")));
}

/** Move focus to a step's first form field (after a step was picked in the graph). */
export function focusStep(stepId) {
  const fieldset = document.querySelector(`fieldset.step-editor[data-step="${CSS.escape(stepId)}"]`);
  const input = fieldset?.querySelector("input, select, textarea");
  if (input) {
    input.focus({ preventScroll: true });
    fieldset.scrollIntoView({ block: "nearest" });
  }
}
