// Step two: the draft plan as a graph and in plain English; edit it with the step forms, the JSON
// document or by refining the request; accept it as a versioned workflow.

import { get, post } from "../api.js";
import { errorBox, fill, h, toast } from "../dom.js";
import { documentEditor, focusStep, stepsEditor } from "../editor.js";
import { plainSteps } from "../plain.js";
import { graphPanel, instructionBox, tabs } from "../widgets.js";

const plans = new Map();

/** Keep a plan the POST just returned, so opening it needs no second request. */
export function rememberPlan(plan) {
  plans.set(plan.id, plan);
}

export async function catalogActions(catalogId) {
  try {
    const catalog = await get(`/catalogs/${encodeURIComponent(catalogId)}`);
    return (catalog.actions || []).map((a) => a.name);
  } catch {
    return [];
  }
}

export function problemList(problems) {
  // the API marks warnings by a `warning:` prefix on the message; everything else is an error
  const errors = problems.filter((p) => !String(p.message || "").startsWith("warning:"));
  if (!problems.length) return null;
  return h("div", { class: errors.length ? "error-box" : "warn-box", role: errors.length ? "alert" : "note" },
    h("strong", {}, errors.length ? "Problems to fix before it can run" : "Worth a look"),
    h("ul", {}, problems.map((p) => h("li", {}, h("code", {}, p.location), " ", p.message,
      p.hint ? h("span", { class: "hint" }, ` — ${p.hint}`) : null))));
}

export async function planView(main, planId) {
  const plan = plans.get(planId) || await get(`/plans/${encodeURIComponent(planId)}`);
  plans.set(plan.id, plan);
  const actions = await catalogActions(plan.catalog_id);
  const ui = { tab: "english", doc: structuredClone(plan.workflow), dirty: false };
  const graph = graphPanel("The plan", h("span", { class: "muted small" }, `${plan.workflow.steps.length} steps`));
  const side = h("div", {});
  const status = h("div", { "aria-live": "polite" });

  const name = h("input", { type: "text", id: "workflow-name", value: ui.doc.name || "" });
  const accept = h("button", { type: "submit", class: "primary", id: "accept-button" }, "Accept plan");
  const acceptForm = h("form", {
    class: "sticky-actions", onsubmit: async (ev) => {
      ev.preventDefault();
      accept.disabled = true;
      accept.setAttribute("aria-busy", "true");
      fill(status, );
      try {
        const rename = name.value.trim() && name.value.trim() !== plan.workflow.name ? name.value.trim() : undefined;
        const body = ui.dirty
          ? { document: ui.doc, catalog_id: plan.catalog_id, name: rename }
          : { plan_id: plan.id, name: rename };
        const workflow = await post("/workflows", body);
        toast(`Accepted as ${workflow.name}, version ${workflow.latest_version}`, "ok");
        location.hash = `#/workflows/${encodeURIComponent(workflow.id)}`;
      } catch (err) {
        fill(status, errorBox(err));
      } finally {
        accept.disabled = false;
        accept.removeAttribute("aria-busy");
      }
    },
  },
    h("label", { for: "workflow-name" }, "Workflow name"),
    h("div", { class: "row" }, h("div", { style: "flex:1" }, name), accept),
    status);

  function change(doc) {
    ui.doc = doc;
    ui.dirty = true;
    draw();
  }

  function draw() {
    graph.draw(ui.doc, { label: `Plan graph for ${ui.doc.name}`, selected: ui.selected, onSelect: (stepId) => { ui.tab = "edit"; ui.selected = stepId; draw(); focusStep(stepId); } });
    fill(side, 
      tabs([
        {
          id: "english", label: "English", render: () => h("div", {},
            // the planner's own words while the plan is as it wrote it; our reading of the edited one after
            plan.explanation && !ui.dirty ? h("p", { class: "explanation", id: "explanation" }, plan.explanation) : plainSteps(ui.doc)),
        },
        { id: "edit", label: "Edit", render: () => stepsEditor(ui.doc, { actions, onChange: change }) },
        {
          id: "document", label: "JSON",
          render: () => documentEditor(ui.doc, { onChange: change, onError: (m) => toast(m, "error") }),
        },
      ], ui, "Plan views"),
      ui.dirty ? h("p", { class: "muted small" }, "Edited here; the edited document is what gets accepted.") : null);
  }

  const instruct = instructionBox({
    label: "Change it in plain English",
    button: "Apply instruction",
    onSubmit: async (instruction) => {
      // the server edits the draft as it is now (form edits included) and keeps it as a new plan
      const next = await post(`/plans/${encodeURIComponent(plan.id)}/edits`, {
        instruction, document: ui.dirty ? ui.doc : undefined, planner: plan.planner === "llm" ? "llm" : "auto",
      });
      rememberPlan({ ...next, changeNote: next.summary || `Applied: ${instruction}` });
      location.hash = `#/plans/${encodeURIComponent(next.id)}`;
      return null;
    },
  });

  fill(main, 
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Check the plan"),
        h("p", { id: "plan-request" }, `“${plan.request}”`)),
      h("div", { class: "row" },
        h("span", { class: "state" }, `planner: ${plan.planner}`),
        plan.valid ? h("span", { class: "state state-succeeded" }, "valid") : h("span", { class: "state state-failed" }, "not valid yet"))),
    plan.changeNote ? h("div", { class: "warn-box", role: "status", id: "change-note" }, h("strong", {}, "Changed: "), plan.changeNote) : null,
    plan.workflow_id ? h("div", { class: "warn-box" }, "This plan was accepted already: ",
      h("a", { href: `#/workflows/${encodeURIComponent(plan.workflow_id)}` }, "open the workflow"), ".") : null,
    h("div", { class: "split" },
      graph.node,
      h("aside", { class: "panel", "aria-label": "Plan details" },
        plan.warnings?.length ? h("div", { class: "warn-box", role: "note" }, h("strong", {}, "The planner was unsure about"),
          h("ul", {}, plan.warnings.map((w) => h("li", {}, w)))) : null,
        problemList(plan.problems || []),
        side,
        h("hr", { style: "border:0;border-top:1px solid var(--line);margin:1rem 0 .2rem" }),
        instruct,
        acceptForm)));
  draw();
}
