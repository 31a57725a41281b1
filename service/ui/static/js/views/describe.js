// Step one: describe a process in plain English, pick the catalog and planner, get a draft plan.

import { get, items, post } from "../api.js";
import { errorBox, fill, h, stateBadge } from "../dom.js";
import { rememberPlan } from "./plan.js";

const EXAMPLES = [
  "When a new enterprise customer signs up, update the CRM, send the onboarding email sequence, provision the account, notify the customer success team and set up billing — in the right order; if billing setup fails, undo the provisioning and the CRM update.",
  "Update the CRM for the new customer, then provision the account and set up billing in parallel; if provisioning fails, undo the CRM update.",
  "When a customer signs up with more than 100 seats, ask the account manager to approve, then provision the account and notify the customer success team.",
];

export async function describeView(main) {
  const [catalogs, workflows, runs] = await Promise.all([
    get("/catalogs").then((d) => items(d, "catalogs")),
    get("/workflows").then((d) => items(d, "workflows")).catch(() => []),
    get("/runs?limit=6").then((d) => items(d, "runs")).catch(() => []),
  ]);
  const request = h("textarea", {
    id: "request", class: "request", required: true, minlength: 3, "aria-describedby": "request-help",
    placeholder: "When … happens, do …, then …; if … fails, undo …",
  });
  const catalog = h("select", { id: "catalog" },
    catalogs.length
      ? catalogs.map((c) => h("option", { value: c.id }, `${c.name} · ${c.action_count ?? "?"} actions`))
      : h("option", { value: "default" }, "default"));
  const planner = h("select", { id: "planner" },
    h("option", { value: "auto" }, "Automatic (LLM when configured, else offline)"),
    h("option", { value: "offline" }, "Offline (no network)"),
    h("option", { value: "llm" }, "LLM"));
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary", id: "plan-button" }, "Plan it");

  const form = h("form", {
    class: "panel", "aria-labelledby": "describe-title",
    onsubmit: async (ev) => {
      ev.preventDefault();
      fill(status, );
      submit.disabled = true;
      submit.setAttribute("aria-busy", "true");
      try {
        const plan = await post("/plans", { request: request.value.trim(), catalog_id: catalog.value, planner: planner.value });
        rememberPlan(plan);
        location.hash = `#/plans/${encodeURIComponent(plan.id)}`;
      } catch (err) {
        fill(status, errorBox(err));
      } finally {
        submit.disabled = false;
        submit.removeAttribute("aria-busy");
      }
    },
  },
    h("label", { for: "request" }, "What should happen?"),
    request,
    h("div", { class: "field-help", id: "request-help" },
      "Name the steps, their order, what may run at the same time, conditions, retries and what to undo when something fails. ",
      h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "Enter"), " plans it."),
    h("div", { class: "examples", role: "group", "aria-label": "Example requests" },
      EXAMPLES.map((text, i) => h("button", {
        type: "button", class: "chip-button", title: text,
        onclick: () => { request.value = text; request.focus(); },
      }, ["Enterprise onboarding", "Parallel setup", "Approval for big deals"][i]))),
    h("div", { class: "grid2", style: "margin-top:.4rem" },
      h("div", {}, h("label", { for: "catalog" }, "Catalog of actions"), catalog),
      h("div", {}, h("label", { for: "planner" }, "Planner"), planner)),
    status,
    h("div", { class: "row", style: "margin-top:.9rem" }, submit));

  request.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
  });

  fill(main, 
    h("div", { class: "page-head" },
      h("div", {}, h("h1", { id: "describe-title" }, "Describe a process"),
        h("p", {}, "Plain English in; a validated workflow graph out. You can check and edit it before anything runs."))),
    h("div", { class: "split" }, form, recent(workflows, runs)));
  request.focus();
}

/** What happened lately: a way back to recent work without going through the lists. */
function recent(workflows, runs) {
  return h("aside", { class: "panel", "aria-labelledby": "recent-title" },
    h("h2", { id: "recent-title" }, "Recently"),
    runs.length ? [h("h3", {}, "Runs"), h("ul", { class: "recent" }, runs.map((r) => h("li", {},
      stateBadge(r.state), " ",
      h("a", { href: `#/runs/${encodeURIComponent(r.id)}` }, r.workflow_name),
      h("span", { class: "muted small" }, ` · ${r.id.slice(0, 8)}`))))] : null,
    workflows.length ? [h("h3", {}, "Workflows"), h("ul", { class: "recent" }, workflows.slice(0, 6).map((w) => h("li", {},
      h("a", { href: `#/workflows/${encodeURIComponent(w.id)}` }, w.name),
      h("span", { class: "muted small" }, ` · v${w.latest_version}`))))] : null,
    !runs.length && !workflows.length ? h("p", { class: "muted" },
      "Nothing yet. Describe a process, check the plan, accept it and run it; runs show up here.") : null);
}
