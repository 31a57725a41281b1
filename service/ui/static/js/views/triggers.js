// A workflow's triggers: each schedule (in plain English, with its next fire times) and webhook,
// pause and resume buttons, and the runs each trigger started.

import { get, items, post } from "../api.js";
import { errorBox, fill, formatTime, h, stateBadge, toast } from "../dom.js";

/** The panel for the workflow tabs; fills itself once the API answers. */
export function triggersPanel(workflowId) {
  const node = h("div", { id: "triggers-panel", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading triggers…"));
  load(node, workflowId);
  return node;
}

async function load(node, workflowId) {
  const id = encodeURIComponent(workflowId);
  try {
    const [triggers, fires] = await Promise.all([
      get(`/workflows/${id}/triggers`),
      get(`/workflows/${id}/fires?limit=20`).then((r) => items(r)),
    ]);
    fill(node, render(node, workflowId, triggers, fires));
  } catch (err) {
    fill(node, errorBox(err));
  }
}

function toggle(node, workflowId, trigger) {
  const verb = trigger.paused ? "resume" : "pause";
  return h("button", {
    type: "button", class: "trigger-toggle", "data-trigger": trigger.id,
    "aria-label": `${trigger.paused ? "Resume" : "Pause"} ${trigger.description}`,
    onclick: async () => {
      try {
        await post(`/workflows/${encodeURIComponent(workflowId)}/triggers/${encodeURIComponent(trigger.id)}/${verb}`);
        toast(trigger.paused ? "Trigger resumed" : "Trigger paused", "ok");
        await load(node, workflowId);
      } catch (err) {
        toast(err?.detail || String(err), "error");
      }
    },
  }, trigger.paused ? "Resume" : "Pause");
}

function render(node, workflowId, triggers, fires) {
  const rows = [];
  for (const s of triggers.schedules || []) {
    rows.push(h("li", { class: "trigger", "data-trigger": s.id },
      h("strong", {}, s.description), " ", s.paused ? h("span", { class: "state state-waiting" }, "paused") : null,
      h("div", { class: "muted" }, h("code", {}, s.cron), ` · ${s.timezone}`,
        s.business_day ? ` · ${s.business_day} business day` : "", ` · missed fires: ${s.missed === "catch_up" ? "run once" : "skipped"}`),
      s.next_fires.length
        ? h("div", { class: "muted next-fires" }, "Next: ", s.next_fires.slice(0, 3).map(formatTime).join(" · "))
        : null,
      toggle(node, workflowId, s)));
  }
  const hook = triggers.webhook;
  if (hook) {
    rows.push(h("li", { class: "trigger", "data-trigger": hook.id },
      h("strong", {}, "Webhook "), h("code", {}, `POST ${hook.path}`), " ",
      hook.paused ? h("span", { class: "state state-waiting" }, "paused") : null,
      h("div", { class: "muted" }, hook.secret_configured
        ? "Deliveries are signed (Overture-Signature) and named (Overture-Delivery)."
        : `No secret configured yet: set ${hook.secret_env || `OVERTURE_SECRET_WEBHOOK_${hook.name.toUpperCase().replace(/-/g, "_")}`}.`),
      toggle(node, workflowId, hook)));
  }
  if (!rows.length) {
    return h("p", { class: "muted" }, "No triggers: this workflow runs when started by hand. Say “every Monday at 9” or “when a customer signs up” in an edit to add one.");
  }
  return [
    h("ul", { class: "plain-steps", id: "trigger-list" }, rows),
    h("h3", {}, "Runs started by triggers"),
    fires.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "list", id: "fires-table" },
        h("thead", {}, h("tr", {}, ["When", "Trigger", "Run", "State"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, fires.map((f) => h("tr", {},
          h("td", {}, f.scheduled_at ? formatTime(f.scheduled_at) : `delivery ${f.delivery_id}`, f.catch_up ? " (catch-up)" : ""),
          h("td", { class: "mono" }, f.trigger_id),
          h("td", {}, f.run_id ? h("a", { href: `#/runs/${encodeURIComponent(f.run_id)}`, class: "mono" }, f.run_id.slice(0, 10)) : "—"),
          h("td", {}, f.error ? h("span", { title: f.error }, stateBadge("failed")) : stateBadge(f.run_state || f.state)))))))
      : h("p", { class: "muted" }, "No runs started by triggers yet."),
  ];
}
