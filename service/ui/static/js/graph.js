// The workflow drawn as a layered graph in SVG: one row per parallel group (topological
// generation), the steps of a row side by side, edges as curves from a step to the steps that wait
// for it. Conditions, retries, timeouts and compensations show as badges; a conditional step has a
// dashed outline and dashed incoming edges. Run states colour the nodes.
//
// The layout is ours and small on purpose: graphs here have tens of steps, so a barycentre pass per
// row is enough to keep edges from crossing in the common shapes (fan-out, fan-in, chains).

const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_W = 208;
const BASE_H = 84;
const NODE_H_LIVE = 102; // one more row for the state and the timing
const GAP_X = 28;
const GAP_Y = 46;
const PAD = 20;

const STEP_REF = /steps\.([A-Za-z0-9_-]+)/g;

function* strings(value) {
  if (typeof value === "string") yield value;
  else if (Array.isArray(value)) for (const v of value) yield* strings(v);
  else if (value && typeof value === "object") for (const v of Object.values(value)) yield* strings(v);
}

/** Ids of the steps a step depends on: `needs` plus every `steps.<id>` it reads (the spec's rule). */
export function dependencies(step, ids) {
  const deps = new Set(step.needs || []);
  const sources = [...strings(step.with || {})];
  if (step.if) sources.push(step.if);
  if (typeof step.for_each === "string") sources.push(step.for_each);
  for (const text of sources) {
    for (const m of text.matchAll(STEP_REF)) deps.add(m[1]);
  }
  deps.delete(step.id);
  return [...deps].filter((d) => ids.has(d));
}

/** Nodes, reduced edges and parallel groups, computed from a workflow document. */
export function graphOf(doc) {
  const steps = doc.steps || [];
  const ids = new Set(steps.map((s) => s.id));
  const deps = new Map(steps.map((s) => [s.id, dependencies(s, ids)]));
  // Kahn's generations: the same grouping as the server's `parallel_groups`
  const indegree = new Map(steps.map((s) => [s.id, deps.get(s.id).length]));
  const children = new Map(steps.map((s) => [s.id, []]));
  for (const [id, ds] of deps) for (const d of ds) children.get(d).push(id);
  const groups = [];
  let frontier = steps.filter((s) => indegree.get(s.id) === 0).map((s) => s.id);
  const placed = new Set();
  while (frontier.length) {
    groups.push(frontier);
    frontier.forEach((id) => placed.add(id));
    const next = [];
    for (const id of frontier) {
      for (const c of children.get(id)) {
        indegree.set(c, indegree.get(c) - 1);
        if (indegree.get(c) === 0) next.push(c);
      }
    }
    frontier = next;
  }
  const cyclic = steps.filter((s) => !placed.has(s.id)).map((s) => s.id);
  if (cyclic.length) groups.push(cyclic); // drawn anyway; the validator reports the cycle
  // transitive reduction: drop u→v when v is reachable from u another way
  const reach = new Map();
  const reachable = (id) => {
    if (reach.has(id)) return reach.get(id);
    const seen = new Set();
    reach.set(id, seen);
    for (const c of children.get(id)) {
      seen.add(c);
      for (const r of reachable(c)) seen.add(r);
    }
    return seen;
  };
  const edges = [];
  for (const [v, ds] of deps) {
    for (const u of ds) {
      const indirect = ds.some((w) => w !== u && reachable(u).has(w) && cyclic.indexOf(w) < 0);
      if (!indirect) edges.push({ from: u, to: v });
    }
  }
  return { nodes: steps, edges, groups };
}

function el(name, attrs = {}, ...kids) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  for (const kid of kids) if (kid) node.append(kid);
  return node;
}

function shortText(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** Badges in order of importance; the ones that do not fit are summed up as "+n". */
function badgesOf(step) {
  const out = [];
  if (step.if) {
    const cond = step.if.replace(/^\s*\$\{\{\s*|\s*\}\}\s*$/g, "");
    out.push({ text: shortText(`if ${cond}`, 26), kind: "cond", title: `runs only if ${cond}` });
  }
  if (step.action === "core.approval") out.push({ text: "approval", kind: "approval", title: "waits for a person" });
  const attempts = step.retry?.max_attempts ?? 1;
  if (attempts > 1) out.push({ text: `retry ×${attempts}`, kind: "retry", title: `up to ${attempts} attempts` });
  if (step.compensate) {
    const verb = step.compensate.action.split(".").pop();
    out.push({ text: shortText(`↶ ${verb}`, 20), kind: "undo", title: `undone by ${step.compensate.action} if the run fails later` });
  }
  if (step.timeout_s) out.push({ text: `limit ${step.timeout_s}s`, kind: "timeout", title: `time limit ${step.timeout_s}s per attempt` });
  if (step.for_each !== undefined && step.for_each !== null) out.push({ text: "for each", kind: "loop", title: "runs once per item" });
  return out;
}

const STATE_LABEL = {
  pending: "pending", running: "running", retrying: "retrying", waiting: "waiting",
  succeeded: "done", failed: "failed", skipped: "skipped", cancelled: "cancelled",
  undone: "undone", compensating: "undoing", not_run: "not run",
};

const BADGE_ROW_H = 22;
const MAX_BADGE_ROWS = 2;

/** Where each badge goes inside a node: left to right, wrapping to a second row; the rest as "+n". */
function badgeLayout(badges) {
  const room = NODE_W - 12;
  const placed = [];
  let x = 16;
  let row = 0;
  for (let i = 0; i < badges.length; i++) {
    const last = row === MAX_BADGE_ROWS - 1;
    const reserve = last && i < badges.length - 1 ? 30 : 0;
    if (x === 16) {
      // a badge wider than a whole row is shortened rather than dropped
      const fit = Math.floor((room - reserve - x - 12) / 6.9);
      if (badges[i].text.length > fit) badges[i] = { ...badges[i], text: shortText(badges[i].text, fit) };
    }
    const w = 12 + badges[i].text.length * 6.9;
    if (x + w > room - reserve) {
      if (!last && x > 16) { row += 1; x = 16; i -= 1; continue; }
      return { placed, rows: row + 1, more: badges.slice(i), moreX: x };
    }
    placed.push({ badge: badges[i], x, row, w });
    x += w + 6;
  }
  return { placed, rows: placed.length ? row + 1 : 0, more: [], moreX: x };
}

/** Order the steps of each row by the mean position of their parents (two sweeps). */
function orderRows(groups, edges) {
  const parents = new Map();
  for (const e of edges) {
    if (!parents.has(e.to)) parents.set(e.to, []);
    parents.get(e.to).push(e.from);
  }
  const pos = new Map();
  const rows = groups.map((g) => [...g]);
  rows.forEach((row) => row.forEach((id, i) => pos.set(id, i - (row.length - 1) / 2)));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let r = 1; r < rows.length; r++) {
      const score = (id) => {
        const ps = (parents.get(id) || []).filter((p) => pos.has(p));
        return ps.length ? ps.reduce((a, p) => a + pos.get(p), 0) / ps.length : pos.get(id);
      };
      const scores = new Map(rows[r].map((id) => [id, score(id)]));
      rows[r].sort((a, b) => scores.get(a) - scores.get(b));
      rows[r].forEach((id, i) => pos.set(id, i - (rows[r].length - 1) / 2));
    }
  }
  return rows;
}

/**
 * Render the graph into `container`. `states` maps a step id to {state, attempts, duration_ms,
 * undo}; `onSelect(stepId)` is called when a node is clicked or activated with Enter/Space.
 */
export function renderGraph(container, doc, { states = {}, onSelect, selected, label } = {}) {
  const { nodes, edges, groups } = graphOf(doc);
  const layouts = new Map(nodes.map((n) => [n.id, badgeLayout(badgesOf(n))]));
  const badgeRows = Math.max(1, ...[...layouts.values()].map((l) => l.rows));
  const NODE_H = (Object.keys(states).length ? NODE_H_LIVE : BASE_H) + (badgeRows - 1) * BADGE_ROW_H;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const rows = orderRows(groups, edges);
  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const height = PAD * 2 + rows.length * NODE_H + Math.max(0, rows.length - 1) * GAP_Y;
  const at = new Map();
  rows.forEach((row, r) => {
    const rowWidth = row.length * NODE_W + (row.length - 1) * GAP_X;
    const x0 = (width - rowWidth) / 2;
    row.forEach((id, i) => at.set(id, { x: x0 + i * (NODE_W + GAP_X), y: PAD + r * (NODE_H + GAP_Y), row: r }));
  });

  const svg = el("svg", {
    // scales down to the panel's width when a wide row would not fit, never up
    // below 70 % the text gets too small to read: wider graphs scroll sideways instead
    viewBox: `0 0 ${width} ${height}`, class: "graph", role: "group",
    style: `max-width:${width}px;min-width:${Math.round(width * 0.7)}px`,
    "aria-label": label || `Workflow graph: ${nodes.length} steps in ${rows.length} stages`,
  });
  svg.append(el("defs", {},
    el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));

  // faint bands behind rows with more than one step: "these run side by side"
  rows.forEach((row, r) => {
    if (row.length < 2) return;
    const first = at.get(row[0]);
    const last = at.get(row[row.length - 1]);
    svg.append(el("rect", {
      x: first.x - 10, y: first.y - 10, width: last.x + NODE_W - first.x + 20, height: NODE_H + 20,
      rx: 14, class: "parallel-band",
    }));
    const t = el("text", { x: first.x - 4, y: first.y - 14, class: "band-label" });
    t.textContent = `in parallel · ${row.length}`;
    svg.append(t);
  });

  for (const e of edges) {
    const a = at.get(e.from);
    const b = at.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W / 2;
    const y1 = a.y + NODE_H;
    const x2 = b.x + NODE_W / 2;
    const y2 = b.y - 2;
    const mid = (y1 + y2) / 2;
    const target = byId.get(e.to);
    const st = states[e.to]?.state;
    svg.append(el("path", {
      d: `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`,
      class: `edge${target?.if ? " edge-cond" : ""}${st && st !== "pending" ? " edge-live" : ""}`,
      "marker-end": "url(#arrow)",
    }));
  }

  for (const id of rows.flat()) {
    const step = byId.get(id);
    const p = at.get(id);
    const info = states[id] || {};
    const state = info.state || "pending";
    const badges = badgesOf(step);
    const g = el("g", {
      transform: `translate(${p.x},${p.y})`,
      class: `node state-${state}${step.if ? " node-cond" : ""}${selected === id ? " selected" : ""}`,
      tabindex: onSelect ? 0 : undefined,
      role: onSelect ? "button" : "img",
      "data-step": id,
      "aria-label": `Step ${step.name || id}, action ${step.action}` +
        (info.state ? `, ${info.state}` : "") + (badges.length ? `, ${badges.map((b) => b.title).join(", ")}` : ""),
    });
    g.append(el("rect", { width: NODE_W, height: NODE_H, rx: 10, class: "node-box" }));
    g.append(el("rect", { width: 6, height: NODE_H, rx: 3, class: "node-stripe" }));
    const title = el("text", { x: 16, y: 24, class: "node-title", "data-fit": NODE_W - 26 });
    title.textContent = step.name || id.replace(/[_-]+/g, " ");
    const action = el("text", { x: 16, y: 42, class: "node-action", "data-fit": NODE_W - 26 });
    action.textContent = step.action;
    g.append(title, action);
    if (info.state) {
      const chip = el("text", { x: 16, y: NODE_H - 10, class: "node-state" });
      chip.textContent = STATE_LABEL[state] || state;
      g.append(chip);
      const meta = [];
      if (info.attempts > 1) meta.push(`${info.attempts} attempts`);
      if (typeof info.duration_ms === "number") meta.push(formatMs(info.duration_ms));
      if (meta.length) {
        const m = el("text", { x: NODE_W - 10, y: NODE_H - 10, class: "node-meta", "text-anchor": "end" });
        m.textContent = meta.join(" · ");
        g.append(m);
      }
    }
    const layout = layouts.get(id);
    for (const { badge, x, row, w } of layout.placed) {
      const b = el("g", { transform: `translate(${x},${56 + row * BADGE_ROW_H})`, class: `badge badge-${badge.kind}` },
        el("title", {}, document.createTextNode(badge.title)),
        el("rect", { width: w, height: 18, rx: 9 }));
      const t = el("text", { x: w / 2, y: 13, "text-anchor": "middle" });
      t.textContent = badge.text;
      b.append(t);
      g.append(b);
    }
    if (layout.more.length) {
      const more = el("text", { x: layout.moreX + 2, y: 69 + (layout.rows - 1) * BADGE_ROW_H, class: "badge-more" });
      more.textContent = `+${layout.more.length}`;
      more.append(el("title", {}, document.createTextNode(layout.more.map((b) => b.title).join("\n"))));
      g.append(more);
    }
    g.append(el("title", {}, document.createTextNode(
      [step.description, step.if ? `if: ${step.if}` : null, step.compensate ? `undo: ${step.compensate.action}` : null]
        .filter(Boolean).join("\n") || step.action)));
    if (onSelect) {
      g.addEventListener("click", () => onSelect(id));
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onSelect(id); }
      });
    }
    svg.append(g);
  }
  container.replaceChildren(svg);
  fitTexts(svg);
  return { rows, edges };
}

/** Shorten texts marked `data-fit` to their width with an ellipsis (measured, so any font works). */
function fitTexts(svg) {
  for (const text of svg.querySelectorAll("text[data-fit]")) {
    const max = Number(text.dataset.fit);
    const full = text.textContent;
    if (!text.getComputedTextLength || text.getComputedTextLength() <= max) continue;
    let lo = 0;
    let hi = full.length;
    while (lo < hi) { // the longest prefix that fits, by bisection
      const mid = Math.ceil((lo + hi) / 2);
      text.textContent = full.slice(0, mid) + "…";
      if (text.getComputedTextLength() <= max) lo = mid; else hi = mid - 1;
    }
    text.textContent = full.slice(0, lo) + "…";
  }
}

export function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}
