// One run, live: the graph coloured by step state, pending approvals to decide, the selected step's
// attempts, inputs and output, what was undone, and the event log. Events arrive over SSE; each one
// triggers a (coalesced) reload of the run, so the page always shows the server's view of it.

import { get, post, stream } from "../api.js";
import { errorBox, fill, formatTime, h, stateBadge, toSeconds, toast } from "../dom.js";
import { formatMs } from "../graph.js";
import { graphPanel } from "../widgets.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

function undoneSteps(compensation) {
  const undone = new Set();
  for (const item of compensation?.undone || []) undone.add(typeof item === "string" ? item : item.step || item.step_id);
  return undone;
}

function durationMs(start, end) {
  const a = toSeconds(start);
  const b = toSeconds(end);
  return a && b ? (b - a) * 1000 : null;
}

/** Per step id: the state to draw, attempts and duration (for-each iterations folded together). */
function stepStates(run) {
  const states = {};
  const undone = undoneSteps(run.compensation);
  for (const step of run.steps || []) {
    const prev = states[step.id];
    const attempts = (step.attempts || []).filter((a) => a.kind !== "compensation").length;
    const info = {
      state: step.state,
      attempts: (prev?.attempts || 0) + attempts,
      duration_ms: durationMs(step.started_at, step.ended_at),
    };
    if (prev && prev.state !== step.state) info.state = prev.state === "failed" || step.state === "failed" ? "failed" : "running";
    states[step.id] = info;
  }
  for (const id of undone) if (states[id]) states[id] = { ...states[id], state: "undone" };
  if (FINISHED.has(run.state)) {
    for (const info of Object.values(states)) if (info.state === "pending") info.state = "not_run";
  }
  return states;
}

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

function stepDetail(run, doc, stepId) {
  const spec = (doc.steps || []).find((s) => s.id === stepId);
  const records = (run.steps || []).filter((s) => s.id === stepId);
  if (!records.length && !spec) return h("p", { class: "muted" }, "Select a step in the graph (Tab to it, Enter to open).");
  const record = records[0] || {};
  const attempts = records.flatMap((r) => r.attempts || []);
  return h("div", { class: "step-detail", id: "step-detail" },
    h("h3", {}, spec?.name || stepId, " ", stateBadge(record.state || "pending")),
    h("dl", {},
      h("dt", {}, "Action"), h("dd", { class: "mono" }, record.action || spec?.action || ""),
      spec?.if ? [h("dt", {}, "Only if"), h("dd", { class: "mono" }, spec.if)] : null,
      record.started_at ? [h("dt", {}, "Started"), h("dd", {}, formatTime(record.started_at))] : null,
      record.ended_at ? [h("dt", {}, "Took"), h("dd", {}, formatMs(durationMs(record.started_at, record.ended_at)))] : null,
      spec?.compensate ? [h("dt", {}, "Undo"), h("dd", { class: "mono" }, spec.compensate.action)] : null,
      decision(run, stepId)),
    attempts.length ? h("table", { class: "list attempts", "aria-label": "Attempts" },
      h("thead", {}, h("tr", {}, ["#", "Outcome", "Took", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, attempts.map((a) => h("tr", {},
        h("td", { class: "num" }, a.kind === "compensation" ? `undo ${a.attempt}` : a.attempt),
        h("td", {}, stateBadge(a.outcome)),
        h("td", { class: "num" }, a.duration_s !== null && a.duration_s !== undefined ? formatMs(a.duration_s * 1000) : ""),
        h("td", { class: "small", title: a.error_message || "" }, a.error_type || ""))))) : null,
    // the run's own failure is shown above the step, once
    record.error && run.error?.step !== stepId ? [h("h3", {}, "Error"), h("p", { class: "error-box" }, record.error.message || JSON.stringify(record.error))] : null,
    record.inputs !== undefined && record.inputs !== null ? [h("h3", {}, "Inputs"), json(record.inputs)] : null,
    record.output !== undefined && record.output !== null ? [h("h3", {}, "Output"), json(record.output)] : null);
}

function decision(run, stepId) {
  const a = (run.approvals || []).find((x) => x.step_id === stepId && x.approved !== null && x.approved !== undefined);
  if (!a) return null;
  return [h("dt", {}, "Decision"), h("dd", {}, verdict(a.approved, a.decided_by, a.decided_as),
    a.comment ? ` — “${a.comment}”` : "")];
}

/** 'approved by alice (as manager)': the approver that allowed it is named when it is not the
 * decider's own name again (as `overture runs show` says it). */
function verdict(approved, by, as) {
  const role = as && key(as) !== key(by || "") ? ` (as ${as})` : "";
  return `${approved ? "approved" : "rejected"}${by ? ` by ${by}${role}` : ""}`;
}

/** A name or role as names compare: trimmed, case-insensitively. */
function key(s) {
  return String(s).trim().toLowerCase();
}

/** What the signed-in token (`me`, from GET /v1/me) decides as when `approvers` are listed: its
 * name or a role among them, `*` for any; null when it may not. The engine's rule
 * (runtime/builtins.may_decide, trimmed and case-insensitive), so the card can say so before a click. */
function decidesAs(approvers, me) {
  const roles = (me.roles || []).map(key);
  if (roles.includes("*")) return "*";
  const mine = new Set([key(me.name), ...roles]);
  return approvers.find((a) => mine.has(key(a))) ?? null;
}

function whoMayDecide(approval, me) {
  const only = `Only ${approval.approvers.join(", ")} may decide`;
  // the API decides by the signed-in token's name or roles
  if (!me) return `${only} (by the name or a role of the API token you signed in with).`;
  const roles = me.roles?.length ? `roles ${me.roles.join(", ")}` : "no roles";
  const as = decidesAs(approval.approvers, me);
  if (as === "*") return `${only}; you (${me.name}) may decide any approval (role *).`;
  if (as !== null) return `${only}; you may, as ${me.name}${key(as) === key(me.name) ? "" : ` (role ${as})`}.`;
  return `${only}; you may not: signed in as ${me.name} (${roles}). Sign in with a token whose name or a role is `
    + `one of them (overture token create --name NAME --role ${approval.approvers[0]}).`;
}

// `refusals` (step id → the API's error) outlives a redraw: a live event redraws the cards, and the
// reason a decision was refused (not one of the approvers, ...) must stay on screen until the next try
function approvalCard(run, approval, reload, refusals, me) {
  const comment = h("input", { type: "text", id: `comment-${approval.step_id}`, placeholder: "Why (optional, kept in the run's history)" });
  const status = h("div", { "aria-live": "polite", id: `decision-status-${approval.step_id}` });
  const refused = refusals.get(approval.step_id);
  if (refused) fill(status, errorBox(refused));
  const decide = async (approved, button) => {
    button.disabled = true;
    try {
      await post(`/runs/${encodeURIComponent(run.id)}/approvals/${encodeURIComponent(approval.step_id)}`,
        { approved, comment: comment.value.trim() || undefined });
      refusals.delete(approval.step_id);
      toast(approved ? "Approved — the run goes on." : "Rejected — the step fails.", approved ? "ok" : "info");
      await reload();
    } catch (err) {
      refusals.set(approval.step_id, err);
      fill(status, errorBox(err));
      button.disabled = false;
    }
  };
  const approve = h("button", { type: "button", class: "good", id: `approve-${approval.step_id}`, onclick: () => decide(true, approve) }, "Approve");
  const reject = h("button", { type: "button", class: "danger", id: `reject-${approval.step_id}`, onclick: () => decide(false, reject) }, "Reject");
  // Enter in the comment approves: the common case should take one key
  comment.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); approve.click(); } });
  return h("section", { class: "approval-card", "aria-labelledby": `approval-${approval.step_id}`, "data-approval": approval.step_id },
    h("h2", { id: `approval-${approval.step_id}` }, `Waiting for your approval · ${approval.step_id}`),
    h("p", {}, approval.prompt || `Step ${approval.step_id} needs a decision.`),
    approval.approvers?.length ? h("p", { class: "muted small", id: `approvers-${approval.step_id}` },
      whoMayDecide(approval, me)) : null,
    h("div", { class: "approval-row" },
      h("label", { for: `comment-${approval.step_id}`, class: "sr-only" }, "Comment"), comment, approve, reject),
    status);
}

function compensationPanel(run) {
  const c = run.compensation;
  if (!c) return null;
  const undone = [...undoneSteps(c)];
  return h("section", { class: "panel", id: "compensation", "aria-labelledby": "comp-title" },
    h("h2", { id: "comp-title" }, "Compensation ", stateBadge(c.status || "running")),
    h("p", {}, undone.length ? `Undone: ${undone.join(", ")}.` : "Nothing needed undoing."),
    (c.left || []).length ? h("p", { class: "warn-box" }, "Left as is: ",
      c.left.map((l) => `${l.step}${l.reason ? ` (${l.reason})` : ""}`).join("; ")) : null);
}

export async function runView(main, runId) {
  const id = encodeURIComponent(runId);
  let run = await get(`/runs/${id}`);
  // the run names its workflow version; the graph is drawn from that version's document
  let doc = { steps: (run.steps || []).filter((s) => s.iteration === null || s.iteration === undefined).map((s) => ({ id: s.id, action: s.action || "?" })) };
  if (run.workflow_id && run.workflow_version) {
    try {
      doc = (await get(`/workflows/${encodeURIComponent(run.workflow_id)}/versions/${run.workflow_version}`)).document || doc;
    } catch { /* a run without its version still shows its steps, without edges */ }
  }
  let history = [];
  try {
    history = await get(`/runs/${id}/events`);
  } catch { /* the live stream below fills the log as well */ }
  const lastSeq = Array.isArray(history) && history.length ? history[history.length - 1].seq : 0;
  // events that happened between the two reads: read the run again so nothing is missed
  if (lastSeq > (run.last_event_seq || 0)) run = await get(`/runs/${id}`);
  // who the token is (name, roles): the approval cards say whether it may decide
  let me = null;
  try {
    me = await get("/me");
  } catch { /* the cards then only name the approvers; the API still decides */ }
  const ui = { selected: null, events: [], live: "closed", refusals: new Map(), me };
  const controller = new AbortController();
  const graph = graphPanel("Steps", h("span", { class: "small muted", id: "live" }));
  const head = h("div", {});
  const approvals = h("div", {});
  const summary = h("div", { class: "run-summary", id: "run-summary" });
  const detail = h("div", {});
  const comp = h("div", {});
  const eventList = h("ol", { class: "events", id: "events", "aria-label": "Run events" });
  let tick = null;

  function drawSummary() {
    const end = toSeconds(run.ended_at) || Date.now() / 1000;
    const start = toSeconds(run.created_at);
    const steps = run.steps || [];
    const done = steps.filter((s) => ["succeeded", "skipped"].includes(s.state)).length;
    const attempts = steps.reduce((n, s) => n + (s.attempts || []).length, 0);
    const metric = (k, v, extra = {}) => h("div", { class: "metric", ...extra }, h("div", { class: "k" }, k), h("div", { class: "v" }, v));
    fill(summary, 
      metric("State", stateBadge(run.state), { id: "run-state", "data-state": run.state }),
      metric("Started", start ? new Date(start * 1000).toLocaleTimeString() : "—"),
      metric(run.ended_at ? "Took" : "Running for", start ? formatMs((end - start) * 1000) : "—"),
      metric("Steps done", `${done} / ${steps.length}`),
      metric("Attempts", String(attempts)),
      metric("Version", run.workflow_version ? `v${run.workflow_version}` : "—"));
  }

  // screen readers hear what changed (a step finished, the run ended), not the whole page again
  const announcer = h("div", { class: "sr-only", "aria-live": "polite", id: "run-announcer" });
  let previous = null;
  function announce(states) {
    if (previous) {
      const changes = Object.entries(states).filter(([sid, info]) => previous.steps[sid] !== info.state)
        .map(([sid, info]) => `${sid} ${info.state}`);
      if (previous.run !== run.state) changes.push(`run ${run.state}`);
      if (changes.length) announcer.textContent = changes.join(", ");
    }
    previous = { run: run.state, steps: Object.fromEntries(Object.entries(states).map(([sid, info]) => [sid, info.state])) };
  }

  function draw() {
    const finished = FINISHED.has(run.state);
    fill(head, h("div", { class: "page-head" },
      h("div", {},
        h("h1", {}, `Run of ${run.workflow_name}`),
        h("p", {}, h("span", { class: "mono" }, run.id), " · ",
          run.workflow_id ? h("a", { href: `#/workflows/${encodeURIComponent(run.workflow_id)}` }, "workflow") : null,
          " · ", h("a", { href: "#/runs" }, "all runs"))),
      finished ? null : h("button", {
        type: "button", class: "danger", id: "cancel-run", onclick: async () => {
          try { await post(`/runs/${id}/cancel`, {}); toast("Cancel requested", "info"); } catch (err) { toast(err.message, "error"); }
        },
      }, "Cancel run")));
    const pending = (run.approvals || []).filter((a) => a.approved === null || a.approved === undefined);
    const focused = document.activeElement?.id;
    fill(approvals, ...pending.map((a) => approvalCard(run, a, reload, ui.refusals, ui.me)));
    if (focused && document.getElementById(focused) === null) {
      // the card the user was in is gone (decided); keep focus somewhere sensible
      document.getElementById("run-summary")?.focus?.();
    }
    drawSummary();
    const states = stepStates(run);
    announce(states);
    graph.draw(doc, {
      states, selected: ui.selected, label: `Run ${run.id}: ${run.state}`,
      onSelect: (stepId) => { ui.selected = stepId; draw(); document.getElementById("step-detail")?.scrollIntoView({ block: "nearest" }); },
    });
    // until the user picks a step, show the one that matters: the failed one, else a running one
    const focusStep = ui.selected || run.error?.step
      || (run.steps || []).find((st) => ["running", "retrying", "waiting"].includes(st.state))?.id || null;
    fill(detail, stepDetail(run, doc, focusStep));
    fill(comp, compensationPanel(run) || "");
    if (run.error && finished) {
      comp.prepend(h("div", { class: "error-box", role: "alert", id: "run-error" },
        h("strong", {}, "Why it failed: "), run.error.message || JSON.stringify(run.error)));
    }
    clearInterval(tick);
    if (!finished) tick = setInterval(drawSummary, 500);
  }

  let pendingReload = null;
  async function reload() {
    try {
      run = await get(`/runs/${id}`);
      draw();
    } catch (err) {
      toast(err.message, "error");
    }
  }
  function scheduleReload() {
    if (pendingReload) return;
    pendingReload = setTimeout(async () => { pendingReload = null; await reload(); }, 120);
  }

  function addEvent(message) {
    const data = message.data || {};
    const type = data.type || message.event;
    if (!type || type === "message") return;
    const when = data.time ? new Date(data.time * 1000).toLocaleTimeString() : "";
    eventList.append(h("li", {}, h("span", { class: "t" }, when), type, data.step_id ? ` · ${data.step_id}` : "",
      data.data?.attempt ? ` · attempt ${data.data.attempt}` : "",
      data.data?.error?.message ? ` · ${data.data.error.message}` : "",
      type === "approval.given" ? ` · ${verdict(data.data?.approved, data.data?.by, data.data?.as)}` : ""));
    eventList.scrollTop = eventList.scrollHeight;
  }

  fill(main, head, announcer, approvals, summary,
    h("div", { class: "split split-wide" },
      graph.node,
      h("aside", {},
        comp,
        h("section", { class: "panel", "aria-label": "Selected step" }, detail),
        h("section", { class: "panel", "aria-labelledby": "events-title" },
          h("h2", { id: "events-title" }, "Events"), eventList))));
  draw();

  const setLive = (state) => {
    ui.live = state;
    const label = document.getElementById("live");
    if (label) fill(label, h("span", { class: `live-dot ${state}` }), state === "live" ? "live" : state);
  };
  for (const event of Array.isArray(history) ? history : []) addEvent({ event: event.type, data: event });
  let finishedSeen = FINISHED.has(run.state);
  if (finishedSeen) setLive("finished");
  stream(`/runs/${id}/events?after=${lastSeq}`, {
    signal: controller.signal,
    isDone: () => finishedSeen,
    onState: (state) => { if (!finishedSeen || state !== "closed") setLive(state); },
    onEvent: (message) => {
      addEvent(message);
      if (message.event === "run.finished") { finishedSeen = true; setLive("finished"); }
      scheduleReload();
    },
  }).catch(() => setLive("closed"));
  return () => { controller.abort(); clearInterval(tick); clearTimeout(pendingReload); };
}
