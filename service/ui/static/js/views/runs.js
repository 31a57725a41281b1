// Run history: every run with its state, start time and duration; refreshes while runs are live.

import { get, items } from "../api.js";
import { fill, h } from "../dom.js";
import { runsSummary, runsTable } from "./workflow.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export async function runsView(main) {
  const ui = { state: new URLSearchParams(location.hash.split("?")[1] || "").get("state") || "" };
  const holder = h("div", { id: "runs-holder" });
  const filter = h("select", {
    id: "state-filter", onchange: () => { ui.state = filter.value; load(); },
  }, ["", "running", "waiting", "compensating", "succeeded", "failed", "cancelled"].map((s) =>
    h("option", { value: s, selected: s === ui.state }, s || "all states")));
  let timer = null;

  async function load() {
    clearTimeout(timer);
    const query = ui.state ? `?state=${encodeURIComponent(ui.state)}&limit=200` : "?limit=200";
    let runs = items(await get(`/runs${query}`), "runs");
    if (ui.state) runs = runs.filter((r) => r.state === ui.state);
    fill(holder, runs.length ? [runsSummary(runs), runsTable(runs)]
      : h("div", { class: "panel empty" }, ui.state ? `No ${ui.state} runs.` : "No runs yet. Start one from a workflow."));
    if (runs.some((r) => !FINISHED.has(r.state))) timer = setTimeout(() => load().catch(() => {}), 2000);
  }

  fill(main, 
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Runs"), h("p", {}, "Every run, newest first, with how long it took.")),
      h("div", {}, h("label", { for: "state-filter", class: "sr-only" }, "Show runs in state"), filter)),
    holder);
  await load();
  return () => clearTimeout(timer);
}
