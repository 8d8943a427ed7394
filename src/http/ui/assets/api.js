// The console's access to the client API: the token and tenant of this tab
// (sessionStorage), fetch with `Authorization` and `X-Tenant-ID`, stream URLs with
// `?token=` (browsers cannot set headers on a WebSocket), and small helpers the pages
// share. A 401 raises the `needtoken` event, which the page frame answers with the
// token prompt.

const TOKEN = "metacenter.token";
const TENANT = "metacenter.tenant";

export const events = new EventTarget();

export function token() { return sessionStorage.getItem(TOKEN) || ""; }
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN, t); else sessionStorage.removeItem(TOKEN);
}
export function tenant() { return sessionStorage.getItem(TENANT) || "default"; }
export function setTenant(t) { sessionStorage.setItem(TENANT, t || "default"); }

/** An answer that was not a 2xx: its status and the message of its envelope. */
export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** The text of any of the API's error envelopes. */
function envelopeMessage(body, fallback) {
  if (!body || typeof body !== "object") return fallback;
  if (typeof body.error === "string") return body.message ? `${body.error}: ${body.message}` : body.error;
  if (body.error && body.error.message) return body.error.message;
  return body.message || fallback;
}

/**
 * `fetch` of an API path. Resolves to `{body, headers, status}`; rejects with an
 * ApiError for a non-2xx answer (after raising `needtoken` on a 401).
 * Options: method, body (JSON), signal, timeoutMs (default 10 s).
 */
export async function api(path, opts = {}) {
  const headers = { "X-Tenant-ID": tenant() };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const signals = [AbortSignal.timeout(opts.timeoutMs || 10000)];
  if (opts.signal) signals.push(opts.signal);
  const resp = await fetch(path, {
    method: opts.method || "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.any(signals),
  });
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (resp.status === 401) {
    const msg = token()
      ? "The token was not accepted (401 Unauthorized): check it and enter it again."
      : "This node requires a token: enter one to continue.";
    events.dispatchEvent(new CustomEvent("needtoken", { detail: msg }));
    throw new ApiError(401, msg);
  }
  if (!resp.ok) throw new ApiError(resp.status, envelopeMessage(body, `${resp.status} ${resp.statusText}`));
  return { body, headers: resp.headers, status: resp.status };
}

/** The ws:// URL of a stream path, with this tab's tenant and token. */
export function streamUrl(path) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  u.searchParams.set("tenant", tenant());
  if (token()) u.searchParams.set("token", token());
  return u.toString();
}

/** Runs `step` now and then every `ms` until `signal` aborts; errors go to `onError`. */
export async function every(ms, signal, step, onError) {
  while (!signal.aborted) {
    try { await step(); } catch (e) { if (!signal.aborted) onError(e); }
    await sleep(ms, signal);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/** An element: `h("td", {class: "num"}, "12")`; children may be nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A table from column titles and rows of cells. */
export function table(columns, rows) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, rows));
}

export function badge(text, kind) { return h("span", { class: `badge ${kind || text}` }, text); }

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function ago(ms) {
  if (!Number.isFinite(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** Shows `e` in the page's message line (or clears it for null). */
export function showError(el, e) {
  el.textContent = e ? (e.status === 401 ? e.message : `Error: ${e.message}`) : "";
}
