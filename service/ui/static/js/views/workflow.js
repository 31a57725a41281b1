// Accepted workflows: the list, and one workflow with its graph, run form, editors (forms, JSON,
// instruction), versions and recent runs.

import { get, items, post, put } from "../api.js";
import { errorBox, fill, formatTime, h, stateBadge, toSeconds, toast } from "../dom.js";
import { documentEditor, focusStep, stepsEditor } from "../editor.js";
import { formatMs } from "../graph.js";
import { plainSteps } from "../plain.js";
import { graphPanel, instructionBox, tabs } from "../widgets.js";
import { catalogActions, problemList } from "./plan.js";
import { triggersPanel } from "./triggers.js";
import { suggestionsPanel } from "./suggestions.js";

export async function workflowsView(main) {
  const workflows = items(await get("/workflows"), "workflows");
  fill(main, 
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Workflows"), h("p", {}, "Accepted plans, each with its versions.")),
      h("a", { class: "button", href: "#/" }, "Describe a new one")),
    workflows.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "list" },
        h("thead", {}, h("tr", {}, ["Name", "Latest version", "Catalog", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, workflows.map((w) => h("tr", {},
          h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.id)}` }, w.name)),
          h("td", { class: "num" }, `v${w.latest_version}`),
          h("td", {}, w.catalog_id),
          h("td", {}, formatTime(w.updated_at)))))))
      : h("div", { class: "panel empty" }, "No workflows yet. ", h("a", { href: "#/" }, "Describe a process"), " and accept its plan."));
}

function runDuration(run) {
  const start = toSeconds(run.created_at);
  const end = toSeconds(run.ended_at);
  return start && end ? (end - start) * 1000 : null;
}

function outcome(run) {
  if (!run.error) return run.state === "succeeded" ? "all steps done" : "";
  const where = run.error.step ? h("strong", {}, run.error.step) : null;
  const message = String(run.error.message || run.error.type || "failed");
  // the service's own words, cut short: the run page has the whole message
  const short = message.replace(/^`[^`]+` \([^)]*\) /, "").slice(0, 110);
  return [where, where ? ": " : "", short, message.length > short.length ? "…" : ""];
}

/** "12 runs · 9 succeeded · 3 failed · median 1.2 s" */
export function runsSummary(runs) {
  const counts = {};
  for (const r of runs) counts[r.state] = (counts[r.state] || 0) + 1;
  const durations = runs.map(runDuration).filter((d) => d !== null).sort((a, b) => a - b);
  const median = durations.length ? durations[Math.floor(durations.length / 2)] : null;
  return h("p", { class: "muted", id: "runs-summary" },
    [`${runs.length} run${runs.length === 1 ? "" : "s"}`,
      ...Object.entries(counts).map(([state, n]) => `${n} ${state}`),
      median !== null ? `median ${formatMs(median)}` : null].filter(Boolean).join(" · "));
}

export function runsTable(runs, { showWorkflow = true } = {}) {
  const longest = Math.max(1, ...runs.map((r) => runDuration(r) || 0));
  return h("div", { class: "table-wrap" }, h("table", { class: "list", id: "runs-table" },
    h("thead", {}, h("tr", {},
      ["Run", showWorkflow ? "Workflow" : null, "State", "Started", "Duration", "Outcome"]
        .filter(Boolean).map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, runs.map((run) => {
      const ms = runDuration(run);
      return h("tr", { "data-run": run.id, "data-state": run.state },
        h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(run.id)}`, class: "mono", title: run.id, "aria-label": `Run ${run.id}` }, run.id.slice(0, 10))),
        showWorkflow ? h("td", {}, run.workflow_id
          ? h("a", { href: `#/workflows/${encodeURIComponent(run.workflow_id)}` }, run.workflow_name)
          : run.workflow_name, run.workflow_version ? h("span", { class: "muted" }, ` v${run.workflow_version}`) : null) : null,
        h("td", {}, stateBadge(run.state)),
        h("td", {}, formatTime(run.created_at)),
        h("td", { class: "num" }, ms !== null ? formatMs(ms) : h("span", { class: "muted" }, "running…"),
          ms !== null ? h("div", { class: "duration-bar", "aria-hidden": "true" }, h("span", { style: `width:${Math.max(2, (ms / longest) * 100)}%` })) : null),
        h("td", { class: "small" }, outcome(run)));
    }))));
}

/** Form fields for the run's inputs, from the workflow's `inputs` JSON Schema. */
function inputsForm(doc, previous, onStart) {
  const schema = doc.inputs || {};
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const fields = [];
  const readers = [];
  for (const [key, spec] of Object.entries(props)) {
    const id = `input-${key}`;
    const start = previous?.[key] ?? spec.default ?? (spec.examples ? spec.examples[0] : undefined);
    let input;
    if (spec.type === "boolean") {
      input = h("input", { type: "checkbox", id, checked: Boolean(start) });
      readers.push(() => [key, input.checked]);
    } else if (spec.type === "integer" || spec.type === "number") {
      input = h("input", { type: "number", id, value: start ?? "", step: spec.type === "integer" ? 1 : "any", required: required.has(key) });
      readers.push(() => [key, input.value === "" ? undefined : Number(input.value)]);
    } else if (spec.type === "object" || spec.type === "array") {
      input = h("textarea", { id, class: "mono", rows: 2, value: start !== undefined ? JSON.stringify(start) : "" });
      readers.push(() => [key, input.value.trim() ? JSON.parse(input.value) : undefined]);
    } else {
      input = h("input", { type: spec.format === "email" ? "email" : "text", id, value: start ?? "", required: required.has(key) });
      readers.push(() => [key, input.value === "" ? undefined : input.value]);
    }
    fields.push(h("div", {},
      h("label", { for: id }, key, required.has(key) ? null : h("span", { class: "opt" }, " (optional)")),
      input,
      spec.description ? h("div", { class: "field-help" }, spec.description) : null));
  }
  let raw = null;
  if (!fields.length) {
    raw = h("textarea", { id: "inputs-json", class: "mono", rows: 4, value: JSON.stringify(previous || {}, null, 2) });
    fields.push(h("div", {}, h("label", { for: "inputs-json" }, "Inputs (JSON)"), raw));
  }
  const status = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary", id: "run-button" }, "Start run");
  return h("form", {
    id: "run-form", onsubmit: async (ev) => {
      ev.preventDefault();
      fill(status, );
      let inputs = {};
      try {
        if (raw) inputs = JSON.parse(raw.value || "{}");
        else for (const read of readers) { const [k, v] = read(); if (v !== undefined) inputs[k] = v; }
      } catch (err) {
        fill(status, errorBox({ title: "The inputs are not valid JSON", detail: err.message }));
        return;
      }
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        await onStart(inputs);
      } catch (err) {
        fill(status, errorBox(err));
      } finally {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    },
  }, fields, status, h("div", { class: "row", style: "margin-top:.8rem" }, button));
}

export async function workflowView(main, workflowId) {
  const id = encodeURIComponent(workflowId);
  const [workflow, runs, versions] = await Promise.all([
    get(`/workflows/${id}`),
    get(`/runs?workflow_id=${id}&limit=20`).then((r) => items(r, "runs")).catch(() => []),
    get(`/workflows/${id}/versions`).then((r) => items(r, "versions")).catch(() => []),
  ]);
  const actions = await catalogActions(workflow.catalog_id);
  let previousInputs = null;
  if (runs.length) {
    try { previousInputs = (await get(`/runs/${encodeURIComponent(runs[0].id)}`)).inputs; } catch { /* prefill is optional */ }
  }
  const ui = { tab: "run", doc: structuredClone(workflow.document), dirty: false, note: null };
  const graph = graphPanel("Graph", h("span", { class: "state", id: "version-badge" }, `version ${workflow.latest_version}`));
  const side = h("div", {});
  const draftBar = h("div", { "aria-live": "polite" });

  function change(doc, note = null) {
    ui.doc = doc;
    ui.dirty = true;
    ui.note = note;
    draw();
  }

  async function save() {
    const version = await put(`/workflows/${id}`, { document: ui.doc, base_version: workflow.latest_version });
    toast(`Saved as version ${version.version}`, "ok");
    await workflowView(main, workflowId);
  }

  function draw() {
    graph.draw(ui.doc, { label: `Graph of ${ui.doc.name}`, selected: ui.selected, onSelect: (stepId) => { ui.tab = "edit"; ui.selected = stepId; draw(); focusStep(stepId); } });
    fill(side, tabs([
      {
        id: "run", label: "Run", render: () => ui.dirty
          ? h("p", { class: "muted" }, "Save or discard the edits first: runs use a saved version.")
          : inputsForm(ui.doc, previousInputs, async (inputs) => {
            const run = await post("/runs", { workflow_id: workflow.id, inputs });
            location.hash = `#/runs/${encodeURIComponent(run.id)}`;
          }),
      },
      { id: "english", label: "English", render: () => plainSteps(ui.doc) },
      { id: "triggers", label: "Triggers", render: () => triggersPanel(workflow.id) },
      { id: "suggestions", label: "Suggestions", render: () => suggestionsPanel(workflow.id, () => workflowView(main, workflowId)) },
      { id: "edit", label: "Edit", render: () => stepsEditor(ui.doc, { actions, onChange: change }) },
      { id: "document", label: "JSON", render: () => documentEditor(ui.doc, { onChange: change, onError: (m) => toast(m, "error") }) },
      {
        id: "versions", label: "Versions", render: () => h("ol", { reversed: true, class: "plain-steps" },
          [...versions].reverse().map((v) => h("li", {}, h("strong", {}, `v${v.version}`), " ",
            h("span", { class: "muted" }, `${v.source}${v.note ? ` — ${v.note}` : ""} · ${formatTime(v.created_at)}`)))),
      },
    ], ui, "Workflow views"));
    const status = h("div", { "aria-live": "polite" });
    fill(draftBar, ui.dirty ? h("div", { class: "warn-box", role: "status" },
      h("strong", {}, "Unsaved edits. "), ui.note || "The graph shows the edited document.",
      h("div", { class: "row", style: "margin-top:.5rem" },
        h("button", {
          type: "button", class: "primary", id: "save-version", onclick: async () => {
            try { await save(); } catch (err) { fill(status, errorBox(err)); }
          },
        }, `Save as version ${workflow.latest_version + 1}`),
        h("button", {
          type: "button", onclick: () => { ui.doc = structuredClone(workflow.document); ui.dirty = false; ui.note = null; draw(); },
        }, "Discard")),
      status) : null);
  }

  const instruct = instructionBox({
    label: "Change it in plain English",
    button: "Preview change",
    onSubmit: async (instruction) => {
      const edit = await post(`/workflows/${id}/edits`, { instruction, save: false, planner: "auto" });
      change(edit.document, edit.summary || (edit.diff?.text ? edit.diff.text : `Applied: ${instruction}`));
      return edit.warnings?.length ? h("div", { class: "warn-box" }, edit.warnings.join(" ")) : null;
    },
  });

  fill(main, 
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, workflow.name), h("p", {}, ui.doc.description || "")),
      h("a", { class: "button", href: "#/runs" }, "All runs")),
    problemList(workflow.problems || []),
    h("div", { class: "split" },
      graph.node,
      h("aside", { class: "panel", "aria-label": "Workflow details" }, draftBar, side,
        h("hr", { style: "border:0;border-top:1px solid var(--line);margin:1rem 0 .2rem" }), instruct)),
    h("section", { "aria-labelledby": "recent-runs" },
      h("h2", { id: "recent-runs" }, "Recent runs"),
      runs.length ? runsTable(runs, { showWorkflow: false }) : h("p", { class: "muted" }, "No runs yet.")));
  draw();
}
