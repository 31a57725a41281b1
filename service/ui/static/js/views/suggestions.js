// A workflow's suggestions: the optimizer's proposed rewrites (kind, predicted gain, evidence,
// diff), each with an Accept button that saves the rewritten document as the next version.

import { get, post } from "../api.js";
import { errorBox, fill, h, toast } from "../dom.js";

const KINDS = {
  parallelize: "Run in parallel",
  fail_fast: "Fail fast",
  retry_timeout: "Retries and timeouts",
  route: "Alternatives",
};

/** The panel for the workflow tabs; fills itself once the API answers. `onAccepted(version)`
 * runs after a proposal was saved as a new version. */
export function suggestionsPanel(workflowId, onAccepted) {
  const node = h("div", { id: "suggestions-panel", "aria-live": "polite" }, h("p", { class: "muted" }, "Looking at the history…"));
  load(node, workflowId, onAccepted);
  return node;
}

async function load(node, workflowId, onAccepted) {
  try {
    const found = await get(`/workflows/${encodeURIComponent(workflowId)}/proposals`);
    fill(node, render(workflowId, found, onAccepted));
  } catch (err) {
    fill(node, errorBox(err));
  }
}

function percent(x) {
  return `${Math.round(x * 100)}%`;
}

function card(workflowId, p, onAccepted) {
  const status = h("div", { "aria-live": "polite" });
  const button = h("button", {
    type: "button", class: "primary accept-proposal", "data-proposal": p.id,
    "aria-label": `Accept: ${p.title}`,
    onclick: async () => {
      button.disabled = true;
      try {
        const saved = await post(`/workflows/${encodeURIComponent(workflowId)}/proposals/${encodeURIComponent(p.id)}/accept`);
        toast(`Accepted: saved as version ${saved.version}`, "ok");
        if (onAccepted) await onAccepted(saved);
      } catch (err) {
        fill(status, errorBox(err));
        button.disabled = false;
      }
    },
  }, "Accept");
  return h("li", { class: "proposal", "data-proposal": p.id, "data-kind": p.kind },
    h("div", {}, h("span", { class: "state" }, KINDS[p.kind] || p.kind), " ", h("strong", {}, p.title)),
    h("div", { class: "gain" }, "Predicted: ", p.gain.text,
      p.side_effects.map((s) => h("div", { class: "muted" }, "Also: ", s.text))),
    h("div", { class: "muted evidence" },
      `Evidence: ${p.evidence.runs} runs, ${p.evidence.attempts} attempts, confidence ${percent(p.evidence.confidence)}`),
    p.summary.length ? h("ul", {}, p.summary.map((line) => h("li", {}, line))) : null,
    h("details", {}, h("summary", {}, "Diff"), h("pre", { class: "mono diff" }, p.diff)),
    h("div", { class: "row", style: "margin-top:.4rem" }, button),
    status);
}

function render(workflowId, found, onAccepted) {
  if (!found.proposals.length) {
    return h("p", { class: "muted" }, found.runs
      ? `Nothing to suggest from ${found.runs} run${found.runs === 1 ? "" : "s"} (${found.attempts} attempts).`
      : "No suggestions yet: the optimizer learns from runs of this workflow.");
  }
  return [
    h("p", { class: "muted" }, `From ${found.runs} runs of version ${found.version}:`),
    h("ul", { class: "plain-steps", id: "proposal-list" }, found.proposals.map((p) => card(workflowId, p, onAccepted))),
  ];
}
