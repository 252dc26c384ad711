// relay-core.js: the pure parts of relay's browser client (backoff, cursors,
// transport choice, how to react to a close code or a refusal, URLs). Nothing
// here touches the DOM, timers or the network, so Node's test runner imports
// it as it is (node --test web/).

/** Default reconnect bounds, in milliseconds. */
export const DEFAULT_BACKOFF = Object.freeze({ initial: 500, max: 30000, factor: 2 });

/** How many SSE attempts may fail before ever opening before "auto" switches to WebSocket. */
export const DEFAULT_SSE_FAILURES = 2;

/**
 * normalizeBackoff fills missing bounds with the defaults and keeps them sane
 * (initial >= 1 ms, max >= initial, factor >= 1).
 */
export function normalizeBackoff(b = {}) {
  const initial = Math.max(1, num(b.initial, DEFAULT_BACKOFF.initial));
  const max = Math.max(initial, num(b.max, DEFAULT_BACKOFF.max));
  const factor = Math.max(1, num(b.factor, DEFAULT_BACKOFF.factor));
  return { initial, max, factor };
}

function num(v, def) {
  return typeof v === "number" && Number.isFinite(v) ? v : def;
}

/**
 * backoffDelay is the wait before reconnect attempt number `attempt` (0 for
 * the first retry): exponential growth capped at max, with full jitter (a
 * uniform draw in [0, cap)), so that clients dropped together by a deploy do
 * not come back together.
 */
export function backoffDelay(attempt, bounds, random = Math.random) {
  const { initial, max, factor } = normalizeBackoff(bounds);
  const n = Math.max(0, Math.floor(num(attempt, 0)));
  const cap = Math.min(max, initial * Math.pow(factor, Math.min(n, 64)));
  return Math.floor(random() * cap);
}

/**
 * parseId splits an envelope id "<epoch>-<seq>" into its parts; "0" (the
 * beginning sentinel) gives { epoch: "", seq: 0 }. Anything else is null.
 */
export function parseId(id) {
  if (id === "0") return { epoch: "", seq: 0 };
  if (typeof id !== "string") return null;
  const m = /^([a-z0-9]{1,32})-(\d{1,20})$/.exec(id);
  return m ? { epoch: m[1], seq: Number(m[2]) } : null;
}

/**
 * isDuplicate reports whether an event with envelope id `id` on a channel
 * whose position is `current` was already received: same epoch and a
 * sequence number not after the position. Ids of another epoch are new (the
 * channel's log was reset).
 */
export function isDuplicate(current, id) {
  const a = parseId(current);
  const b = parseId(id);
  return !!(a && b && a.epoch !== "" && a.epoch === b.epoch && b.seq <= a.seq);
}

/**
 * parseCursor reads a cursor's text form for a connection to `channels` into
 * { channel: id }. Forms: "" (nothing), "0" (every channel from the oldest
 * kept), a bare id (one-channel connections), "A=id,B=id" (any). Pairs naming
 * other channels are ignored, as the server ignores them; malformed parts are
 * skipped.
 */
export function parseCursor(text, channels) {
  const out = {};
  if (typeof text !== "string" || text === "") return out;
  if (text === "0") {
    for (const ch of channels) out[ch] = "0";
    return out;
  }
  if (!text.includes("=")) {
    if (channels.length === 1 && parseId(text)) out[channels[0]] = text;
    return out;
  }
  for (const pair of text.split(",")) {
    const i = pair.indexOf("=");
    if (i <= 0) continue;
    const ch = pair.slice(0, i);
    const id = pair.slice(i + 1);
    if (channels.includes(ch) && parseId(id)) out[ch] = id;
  }
  return out;
}

/**
 * buildCursor is the last_event_id to send for a connection to `channels`
 * from the known positions: the bare id on a one-channel connection, else
 * "A=id,B=id" in channel order. Channels without a position are left out
 * (the server reads them live only); "" when none is known.
 */
export function buildCursor(channels, positions) {
  if (channels.length === 1) return positions[channels[0]] || "";
  const parts = [];
  for (const ch of channels) {
    if (positions[ch]) parts.push(ch + "=" + positions[ch]);
  }
  return parts.join(",");
}

/**
 * chooseTransport picks the transport of the next attempt: "websocket" when
 * asked for or when EventSource is missing or has failed before opening
 * `limit` times in a row; else "sse". null when neither exists.
 */
export function chooseTransport({ preference = "auto", hasEventSource, hasWebSocket, sseFailures = 0, limit = DEFAULT_SSE_FAILURES }) {
  if (preference === "websocket") return hasWebSocket ? "websocket" : null;
  if (preference === "sse") return hasEventSource ? "sse" : null;
  if (hasEventSource && sseFailures < limit) return "sse";
  if (hasWebSocket) return "websocket";
  return hasEventSource ? "sse" : null;
}

/**
 * wsCloseAction says what to do after a WebSocket closed with `code`:
 * "refresh" (get a fresh token, then reconnect), "stop" (retrying cannot
 * help; report why) or "retry" (reconnect with backoff and the cursor).
 */
export function wsCloseAction(code, reason = "") {
  switch (code) {
    case 4001:
      return { action: "refresh", error: "unauthorized", message: reason || "the token was refused" };
    case 4002:
      return { action: "refresh", error: "token_expired", message: reason || "the token expired" };
    case 4000:
      return { action: "stop", error: "bad_request", message: reason || "relay refused the request" };
    case 4003:
      return { action: "stop", error: "forbidden", message: reason || "this token may not read these channels" };
    case 4004:
      return { action: "stop", error: "not_found", message: reason || "no such endpoint" };
    case 4008:
      return { action: "retry", error: "slow_consumer", message: reason || "fell behind the event rate" };
    case 1001:
      return { action: "retry", error: "shutdown", message: reason || "relay is restarting" };
    case 1011:
      return { action: "retry", error: "server_error", message: reason || "relay failed" };
  }
  return { action: "retry", error: "disconnected", message: reason || "the connection closed (code " + code + ")" };
}

/**
 * sseEventAction says what to do after one of relay's named SSE control
 * events that end a stream.
 */
export function sseEventAction(name, message = "") {
  switch (name) {
    case "token_expired":
      return { action: "refresh", error: "token_expired", message: message || "the token expired" };
    case "slow_consumer":
    case "shutdown":
      return { action: "retry", error: name, message };
    // The app's backend ended this user's access (POST /api/disconnect).
    case "forbidden":
      return { action: "stop", error: "forbidden", message: message || "access to these channels was ended" };
    case "error":
      return { action: "retry", error: "server_error", message };
  }
  return { action: "retry", error: "disconnected", message: message || "the stream ended" };
}

/**
 * probeAction reads the answer to a JSON GET of a stream URL (made after an
 * EventSource failed before opening, since EventSource hides statuses):
 * 401 -> "refresh"; 400/403/404 -> "stop" with the server's reason; 200 (the
 * stream would be accepted) and other 4xx (a relay without the JSON answer, or
 * something between the page and relay) -> "sse-failed", which counts towards
 * the WebSocket fallback; 5xx and no answer -> "retry".
 */
export function probeAction(status, body) {
  const error = (body && typeof body.error === "string" && body.error) || "";
  const message = (body && typeof body.message === "string" && body.message) || "";
  if (status === 0) return { action: "retry", error: "unreachable", message: message || "relay is unreachable" };
  if (status === 401) return { action: "refresh", error: error || "unauthorized", message: message || "the token was refused" };
  if (status === 400 || status === 403 || status === 404) {
    const def = status === 403 ? "forbidden" : status === 404 ? "not_found" : "bad_request";
    return { action: "stop", error: error || def, message: message || "relay refused the stream (" + status + ")" };
  }
  if (status >= 500) return { action: "retry", error: error || "server_error", message: message || "relay answered " + status };
  return { action: "sse-failed", error: "sse_failed", message: "the event stream failed before opening (status " + status + " to a JSON probe)" };
}

/**
 * streamURL is the /events URL for channels, with the token and cursor as
 * query parameters (EventSource and browser WebSockets cannot send headers);
 * ws(s):// when websocket is set.
 */
export function streamURL(base, channels, { token = "", cursor = "", websocket = false } = {}) {
  const q = channels.map((ch) => "channel=" + encodeURIComponent(ch));
  if (token) q.push("token=" + encodeURIComponent(token));
  if (cursor) q.push("last_event_id=" + encodeURIComponent(cursor));
  let url = trimSlash(base) + "/events?" + q.join("&");
  if (websocket) url = url.replace(/^http(s?):/, "ws$1:");
  return url;
}

/** trimSlash removes trailing slashes from a base URL. */
export function trimSlash(s) {
  return String(s || "").replace(/\/+$/, "");
}

/**
 * kindOf classifies a message received on a stream. Events (published or
 * ephemeral) carry "ts", set by relay; relay's own control messages
 * (connection_established, reset, pong, error) never do:
 * "event" (logged: has an id), "ephemeral" (no id: typing, viewing,
 * presence_state; it moves no cursor) or "control".
 */
export function kindOf(msg) {
  if (!msg || typeof msg !== "object") return "invalid";
  if (typeof msg.ts === "string") return typeof msg.id === "string" && msg.id !== "" ? "event" : "ephemeral";
  return "control";
}

/**
 * httpAction maps a client action (the WebSocket message) to its HTTP call,
 * for SSE connections, which cannot send: { method, path, body } or null
 * when the action has no HTTP form.
 */
export function httpAction(msg) {
  if (!msg || typeof msg !== "object") return null;
  const pid = msg.project_id == null ? "" : encodeURIComponent(String(msg.project_id));
  switch (msg.type) {
    case "typing":
      if (!pid) return null;
      return { method: "POST", path: "/api/projects/" + pid + "/presence", body: { type: "typing", ticket_id: msg.ticket_id, is_typing: msg.is_typing !== false } };
    case "viewing":
      if (!pid) return null;
      return { method: "POST", path: "/api/projects/" + pid + "/presence", body: { type: "viewing", ticket_id: msg.ticket_id ?? null } };
    case "mark_read":
      return { method: "POST", path: "/api/notifications/read", body: { ids: [].concat(msg.ids ?? msg.id) } };
    case "ping":
      return { method: "GET", path: "/healthz", body: null };
  }
  return null;
}

/**
 * tokenSubject returns the user id a JWT names (sub, else simplejwt's
 * user_id) without verifying it, or "" for anything that is not a JWT. The
 * client uses it only as a default (the notifications channel, the key that
 * tabs share a connection under); relay verifies tokens.
 */
export function tokenSubject(token) {
  if (typeof token !== "string") return "";
  const parts = token.split(".");
  if (parts.length !== 3) return "";
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(decodeBase64(b64 + "===".slice((b64.length + 3) % 4)));
    const sub = json.sub ?? json.user_id;
    return sub == null ? "" : String(sub);
  } catch {
    return "";
  }
}

function decodeBase64(s) {
  if (typeof atob === "function") return atob(s);
  return globalThis.Buffer.from(s, "base64").toString("binary");
}

/** notificationsChannel and presenceChannel name relay's channel groups. */
export const notificationsChannel = (userId) => "user_" + userId + "_notifications";
export const ticketsChannel = (projectId) => "project_" + projectId + "_tickets";
export const presenceChannel = (projectId) => "project_" + projectId + "_presence";
