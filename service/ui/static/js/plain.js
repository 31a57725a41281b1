// A workflow document in plain English: stage by stage, what runs, after what, under which
// condition, how often it is retried and what undoes it. Used when the server sent no explanation
// (workflows accepted earlier, edited versions) and beside the graph everywhere.

import { h } from "./dom.js";
import { graphOf } from "./graph.js";

function titleOf(step) {
  return step.name || step.id.replace(/[_-]+/g, " ");
}

/** An ordered list, one item per stage; parallel steps share an item. */
export function plainSteps(doc) {
  const { nodes, edges, groups } = graphOf(doc);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parents = new Map();
  for (const e of edges) {
    if (!parents.has(e.to)) parents.set(e.to, []);
    parents.get(e.to).push(e.from);
  }
  return h("ol", { class: "plain-steps" }, groups.map((group, i) => {
    const steps = group.map((id) => byId.get(id));
    const lead = i === 0 ? "First" : "Then";
    const parallel = steps.length > 1 ? ", at the same time" : "";
    return h("li", {},
      h("strong", {}, `${lead}${parallel}: `),
      steps.map((step, j) => [
        j ? (j === steps.length - 1 ? " and " : ", ") : "",
        h("span", {}, titleOf(step)),
        h("span", { class: "meta" }, ` (${step.action}`,
          i > 0 && parents.get(step.id)?.length ? `, after ${parents.get(step.id).map((p) => titleOf(byId.get(p))).join(" and ")}` : "",
          ")"),
        details(step),
      ]));
  }));
}

function details(step) {
  const bits = [];
  if (step.if) bits.push(`only if ${step.if.replace(/^\$\{\{\s*|\s*\}\}$/g, "")}`);
  const attempts = step.retry?.max_attempts ?? 1;
  if (attempts > 1) bits.push(`retried up to ${attempts - 1} time${attempts > 2 ? "s" : ""}`);
  if (step.timeout_s) bits.push(`time limit ${step.timeout_s}s`);
  if (step.for_each) bits.push("once per item");
  if (step.compensate) bits.push(`undone by ${step.compensate.action} if the run fails later`);
  if (step.action === "core.approval") bits.push("waits for a person's approval");
  return bits.length ? h("span", { class: "meta" }, ` — ${bits.join("; ")}`) : null;
}
