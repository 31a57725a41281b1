// Calls to the Overture REST API with the bearer token, and a reader for a run's event stream.
// EventSource cannot send an Authorization header, so the stream is read with fetch and parsed here.

const TOKEN_KEY = "overture.token";
export const API = "/v1";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `request failed (${status})`);
    this.status = status;
    this.title = problem?.title || `Request failed (${status})`;
    this.detail = problem?.detail || null;
    this.problems = problem?.problems || [];
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token.trim());
  else localStorage.removeItem(TOKEN_KEY);
}

/** A token handed over in the address (`#token=...`, as `overture demo` prints it) is kept and removed from the URL. */
export function takeTokenFromLocation() {
  const match = location.hash.match(/[#&]token=([^&]+)/);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  const rest = location.hash.replace(/[#&]?token=[^&]+/, "").replace(/^#&/, "#");
  history.replaceState(null, "", location.pathname + location.search + (rest && rest !== "#" ? rest : "#/"));
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { title: "The server cannot be reached", detail: String(err.message || err) });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 300) }; }
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("overture:unauthorized"));
    throw new ApiError(response.status, data);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);
export const put = (path, body = {}) => api("PUT", path, body);

/** Items of a list answer, whether the API wraps them (`{items: [...]}`) or not. */
export function items(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const key of ["items", ...keys]) if (Array.isArray(data?.[key])) return data[key];
  return [];
}

/**
 * Follow a server-sent event stream; `onEvent({event, data})` for each event. Reconnects after a
 * dropped connection (resuming from the last id) until `signal` aborts or `isDone()` says so.
 */
export async function stream(path, { onEvent, signal, isDone = () => false, onState }) {
  let lastId = null;
  while (!signal.aborted && !isDone()) {
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${getToken()}` };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(API + path, { headers, signal });
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      onState?.("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const message = { event: "message", data: "" };
          const lines = [];
          for (const line of block.split("\n")) {
            if (!line || line.startsWith(":")) continue;
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (field === "data") lines.push(val);
            else if (field === "event") message.event = val;
            else if (field === "id") lastId = val;
          }
          if (!lines.length) continue;
          message.data = lines.join("\n");
          try { message.data = JSON.parse(message.data); } catch { /* plain text data */ }
          onEvent(message);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      onState?.("reconnecting");
    }
    if (!signal.aborted && !isDone()) await new Promise((r) => setTimeout(r, 1000));
  }
  onState?.("closed");
}
