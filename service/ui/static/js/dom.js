// A tiny element builder: text always goes in as text nodes (never as HTML), so nothing a plan,
// a step output or an error message contains can inject markup.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else if (key === "checked") node.checked = Boolean(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Replace a node's children; null, undefined and false are left out (DOM's own would print "null"). */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let toastTimer = null;

/** A short message in the corner, read out by screen readers (aria-live region). */
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `toast toast-${kind} visible`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("visible"), kind === "error" ? 8000 : 4000);
}

export function formatTime(value) {
  if (!value) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** Seconds since the epoch from a number (seconds) or an ISO 8601 string. */
export function toSeconds(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return value;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t / 1000;
}

export function stateBadge(state) {
  return h("span", { class: `state state-${state || "pending"}` }, state || "pending");
}

/** Show an API error (problem details) under a form, with every listed problem. */
export function errorBox(error) {
  const problems = error?.problems || [];
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, error?.title || "Something went wrong"),
    error?.detail ? h("p", {}, error.detail) : null,
    problems.length ? h("ul", {}, problems.map((p) =>
      h("li", {}, h("code", {}, p.location || ""), " ", p.message || "", p.hint ? h("span", { class: "hint" }, ` — ${p.hint}`) : null))) : null);
}
