// relay.js: relay's browser client. One connection per page (or per browser,
// with share) for any number of channels: Server-Sent Events first, WebSocket
// when SSE is missing or fails, the same events and API either way; exact
// resume by cursor, token refresh, and the client actions over whichever path
// works. Dependency-free ES module: import it from relay's own URL.
//
//   import { Relay } from "https://relay.example.com/relay.js";
//   const relay = new Relay({ url: "https://relay.example.com", getToken });
//   relay.subscribe(["project_1_tickets"], (ev) => console.log(ev));
//
// Types: relay.d.ts. Pure helpers: relay-core.js. Tab sharing: relay-share.js.
// Notification and presence state: relay-stores.js.

import {
  DEFAULT_SSE_FAILURES, backoffDelay, buildCursor, chooseTransport, httpAction, isDuplicate, kindOf,
  normalizeBackoff, parseCursor, probeAction, sseEventAction, streamURL, tokenSubject, trimSlash, wsCloseAction,
} from "./relay-core.js";
import { startSharing } from "./relay-share.js";

export * from "./relay-core.js";
export * from "./relay-stores.js";

/** RelayError is a refused call or a stopped connection: code is relay's error code. */
export class RelayError extends Error {
  constructor(code, message, status = 0) {
    super(message || code);
    this.name = "RelayError";
    this.code = code;
    this.status = status;
  }
}

const CLOSED = Object.freeze({ status: "closed", transport: null, role: "solo", attempt: 0, nextAttemptAt: null, error: null, since: 0 });

/**
 * Relay is one connection to relay for every channel its subscribers ask for.
 * It connects when the first subscriber arrives and reconnects, by itself,
 * until close() or a refusal that retrying cannot fix.
 */
export class Relay {
  constructor(options = {}) {
    const env = options.env || {};
    const g = globalThis;
    this._env = {
      EventSource: "EventSource" in env ? env.EventSource : g.EventSource,
      WebSocket: "WebSocket" in env ? env.WebSocket : g.WebSocket,
      fetch: env.fetch || (g.fetch && g.fetch.bind(g)),
      BroadcastChannel: "BroadcastChannel" in env ? env.BroadcastChannel : g.BroadcastChannel,
      locks: "locks" in env ? env.locks : g.navigator && g.navigator.locks,
      setTimeout: env.setTimeout || g.setTimeout.bind(g),
      clearTimeout: env.clearTimeout || g.clearTimeout.bind(g),
      now: env.now || Date.now,
      random: env.random || Math.random,
    };
    this.url = trimSlash(options.url ?? (g.location ? g.location.origin : ""));
    this._getToken = typeof options.getToken === "function" ? options.getToken : null;
    this._token = options.token || "";
    this.userId = options.userId != null ? String(options.userId) : tokenSubject(this._token);
    this._preference = options.transport || "auto";
    this._backoff = normalizeBackoff(options.backoff);
    this._sseLimit = options.sseFailuresBeforeWebSocket ?? DEFAULT_SSE_FAILURES;
    this._pingInterval = options.pingInterval ?? 30000;
    this._subs = new Set();
    this._listeners = new Map();
    this._positions = Object.create(null);
    this._initialCursor = options.cursor || "";
    this._rewind = false; // a subscriber's cursor is before the connection's position: reconnect from it
    this._extraChannels = []; // the followers' channels, when this tab leads
    this._state = { ...CLOSED, status: "idle" };
    this._conn = null;
    this._connChannels = [];
    this._gen = 0;
    this._attempt = 0;
    this._authFailures = 0;
    this._sseFailures = 0;
    this._everOpened = false;
    this._timer = null;
    this._syncQueued = false;
    this._closed = false;
    this.stats = { received: 0, duplicates: 0, connects: 0, tokenRefreshes: 0 };
    this._share = null;
    if (options.share) this._startSharing(options.share);
    if (Array.isArray(options.channels) && options.channels.length) this.subscribe(options.channels, options.onMessage || (() => {}));
    this._onOnline = () => this._wakeUp();
    if (typeof g.addEventListener === "function") g.addEventListener("online", this._onOnline);
  }

  /** The connection's state: connecting, open, reconnecting (nextAttemptAt), closed. */
  get state() {
    return this._state;
  }

  /** The whole cursor of the current channels, as sent on reconnect. */
  get cursor() {
    return buildCursor(this.channels, this._positions);
  }

  /** Every channel the connection carries (this tab's, plus other tabs' when it leads). */
  get channels() {
    const out = [];
    for (const s of this._subs) for (const ch of subChannels(s, this.userId)) if (!out.includes(ch)) out.push(ch);
    for (const ch of this._extraChannels) if (!out.includes(ch)) out.push(ch);
    return out;
  }

  /** The position (envelope id) of one channel, or "". */
  position(channel) {
    return this._positions[channel] || "";
  }

  /**
   * subscribe adds channels to the connection and calls handler with every
   * event on them (published events, with their id, and ephemeral ones).
   * It returns the function that unsubscribes. Changing the channel set
   * reconnects once, resuming the other channels from their cursor.
   *
   * options.cursor is where this subscriber's state was taken (state then
   * stream: a channel's envelope id, "A=id,B=id" for several, or "0" for
   * everything relay holds): the handler gets every event after it, once,
   * even when the connection already carries the channel (relay.js then
   * reconnects from the older position; other subscribers see nothing twice).
   * options.onReset(reset) is called when relay cannot answer that cursor
   * (or later loses the history after the handler's position): reload the
   * state, then carry on from reset.id.
   */
  subscribe(channels, handler, options = {}) {
    const list = [].concat(channels).map(String);
    const sub = this._addSub({ channels: list, handler, onReset: options.onReset });
    if (options.cursor) this._startAt(sub, parseCursor(String(options.cursor), list));
    this._queueSync();
    return () => {
      if (this._subs.delete(sub)) this._queueSync();
    };
  }

  // _subscribeUser subscribes to channels named after the user (their
  // notifications) before the user id is known: when only getToken can tell
  // it, the first connection waits for the token anyway, and carries them.
  _subscribeUser(channelsOf, handler) {
    const sub = this._addSub({ channels: [], channelsOf, handler });
    this._queueSync();
    return () => {
      if (this._subs.delete(sub)) this._queueSync();
    };
  }

  // _addSub registers a subscriber. after holds, per channel, the last id it
  // was given: it starts at the connection's position, so an event replayed
  // for a newer subscriber never reaches an older one twice.
  _addSub(sub) {
    sub.after = Object.create(null);
    for (const ch of sub.channels) if (this._positions[ch]) sub.after[ch] = this._positions[ch];
    this._subs.add(sub);
    return sub;
  }

  // _startAt starts a subscriber at its own cursor. A channel the connection
  // does not carry yet starts there; one it carries from a later position
  // (or from an unknown one) is rewound, and the connection reopens.
  _startAt(sub, positions) {
    const carried = this._conn || this._timer ? this._connChannels : [];
    const follower = this._share && this._share.role === "follower";
    for (const [ch, id] of Object.entries(positions)) {
      const current = this._positions[ch] || "";
      sub.after[ch] = id;
      if (!carried.includes(ch) && !follower) {
        this._positions[ch] = id;
      } else if (current !== id && !isDuplicate(id, current)) {
        if (follower) {
          // The leader tab's connection is past this cursor and cannot be
          // rewound from here: say so rather than leave a gap.
          sub.after[ch] = current;
          const r = { channel: ch, id: current, message: "this tab shares a connection that is past the cursor " + id + ": reload the state" };
          queueMicrotask(() => sub.onReset && this._subs.has(sub) && call(sub.onReset, r));
          continue;
        }
        this._positions[ch] = id;
        this._rewind = true;
      }
    }
  }

  /** on listens to "message", "reset", "state" or "error"; it returns the function that stops listening. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type).delete(fn);
  }

  /** close ends the connection for good. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._clearTimer();
    this._drop();
    if (this._share) this._share.close();
    if (typeof globalThis.removeEventListener === "function") globalThis.removeEventListener("online", this._onOnline);
    this._setState({ ...CLOSED, role: this._state.role });
  }

  /** reconnect drops the connection and connects again now, with the cursor. */
  reconnect() {
    if (this._closed || (this._share && this._share.role === "follower")) return;
    this._clearTimer();
    this._attempt = 0;
    this._open();
  }

  // ---- client actions: over the WebSocket when that is the transport, else over HTTP ----

  /** send sends a client action ({type: …}); see ping, typing, viewing, markRead. */
  async send(msg) {
    if (this._conn && this._conn.kind === "websocket" && this._conn.live) {
      this._conn.send(msg);
      return null;
    }
    const call = httpAction(msg);
    if (call) return this.request(call.method, call.path, call.body);
    if (this._share && this._share.role === "follower") return this._share.forward(msg);
    throw new RelayError("unsupported", "message type " + (msg && msg.type) + " can only be sent over a WebSocket, and none is open");
  }

  /** ping measures a round trip to relay, in milliseconds. */
  async ping() {
    const t0 = this._env.now();
    if (this._conn && this._conn.kind === "websocket" && this._conn.live) {
      await this._conn.ping(t0);
    } else {
      await this.request("GET", "/healthz");
    }
    return this._env.now() - t0;
  }

  /** typing says the user is (or stopped) typing in a ticket of a project. */
  typing(projectId, ticketId, isTyping = true) {
    return this.send({ type: "typing", project_id: String(projectId), ticket_id: ticketId, is_typing: !!isTyping });
  }

  /** viewing says which ticket of a project the user views (null: none). */
  viewing(projectId, ticketId) {
    return this.send({ type: "viewing", project_id: String(projectId), ticket_id: ticketId ?? null });
  }

  /** markRead marks notifications read: envelope ids or the notifications' own data.id. */
  async markRead(ids) {
    const list = [].concat(ids).map(String);
    if (this._conn && this._conn.kind === "websocket" && this._conn.live) {
      for (const id of list) this._conn.send({ type: "mark_read", id });
      return null;
    }
    return this.request("POST", "/api/notifications/read", { ids: list });
  }

  /** markAllRead marks every notification of the user read (an HTTP call on either transport). */
  markAllRead() {
    return this.request("POST", "/api/notifications/read", { all: true });
  }

  /** fetchNotifications lists the user's notifications, newest first. */
  fetchNotifications({ limit = 20, before = "" } = {}) {
    const q = "?limit=" + encodeURIComponent(limit) + (before ? "&before=" + encodeURIComponent(before) : "");
    return this.request("GET", "/api/notifications" + q);
  }

  /** fetchPresence returns a page of who is online in a project now, by user id: {users, count, more}; after is the last user_id of the previous page. */
  fetchPresence(projectId, { after = "", limit = 0 } = {}) {
    const q = [limit ? "limit=" + encodeURIComponent(limit) : "", after ? "after=" + encodeURIComponent(after) : ""].filter(Boolean).join("&");
    return this.request("GET", "/api/projects/" + encodeURIComponent(projectId) + "/presence" + (q ? "?" + q : ""));
  }

  /**
   * request calls relay's HTTP API with the token as a bearer; a 401 gets a
   * fresh token from getToken and one retry. It resolves to the parsed JSON
   * (null for 204) and rejects with a RelayError carrying relay's error code.
   */
  async request(method, path, body) {
    for (let tries = 0; ; tries++) {
      const token = await this.token();
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = "Bearer " + token;
      if (body != null) headers["Content-Type"] = "application/json";
      const res = await this._env.fetch(this.url + path, { method, headers, body: body == null ? undefined : JSON.stringify(body) });
      const text = await res.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = null;
      }
      if (res.status === 401 && tries === 0 && this._getToken) {
        await this._refreshToken("unauthorized");
        continue;
      }
      if (!res.ok) throw new RelayError((data && data.error) || "http_" + res.status, (data && data.message) || res.statusText, res.status);
      return data;
    }
  }

  /** token returns the current token, asking getToken for one when there is none. */
  async token() {
    if (!this._token && this._getToken) await this._refreshToken(this._staleReason || "initial");
    return this._token;
  }

  async _refreshToken(reason) {
    if (!this._getToken) return false;
    if (!this._refreshing) {
      this._refreshing = Promise.resolve()
        .then(() => this._getToken({ reason }))
        .then((tok) => {
          if (reason !== "initial") this.stats.tokenRefreshes++;
          this._token = tok || "";
          this._staleReason = "";
          if (!this.userId) {
            this.userId = tokenSubject(this._token);
            if (this.userId && this._lazyPending(true)) this._queueSync();
          }
        })
        .finally(() => {
          this._refreshing = null;
        });
    }
    await this._refreshing;
    return !!this._token;
  }

  // ---- connection ----

  _queueSync() {
    if (this._syncQueued) return;
    this._syncQueued = true;
    queueMicrotask(() => {
      this._syncQueued = false;
      this._sync();
    });
  }

  // _sync connects, reconnects or disconnects after the channel set changed.
  _sync() {
    if (this._closed) return;
    if (this._share && this._share.role !== "leader") {
      this._share.announce(this.channels);
      return;
    }
    const chans = this.channels;
    if (chans.length === 0 && !this._lazyPending()) {
      this._clearTimer();
      this._drop();
      this._setState({ ...CLOSED, status: "idle", role: this._state.role });
      return;
    }
    if (sameList(chans, this._connChannels) && (this._conn || this._timer) && !this._rewind) return;
    this._clearTimer();
    this._open();
  }

  // _lazyPending reports subscribers waiting for the user id (from the
  // token); with resolved, those whose user id is now known.
  _lazyPending(resolved = false) {
    const waiting = resolved ? !!this.userId : !this.userId && !this._token && !!this._getToken;
    if (!waiting) return false;
    for (const s of this._subs) if (s.channelsOf && !s.channels.length) return true;
    return false;
  }

  _wakeUp() {
    if (this._timer && !this._closed) this.reconnect();
  }

  async _open() {
    this._drop();
    const gen = ++this._gen;
    this._rewind = false;
    this._connChannels = this.channels;
    if ((this._connChannels.length === 0 && !this._lazyPending()) || this._closed) return;
    const kind = chooseTransport({
      preference: this._preference,
      hasEventSource: typeof this._env.EventSource === "function",
      hasWebSocket: typeof this._env.WebSocket === "function",
      sseFailures: this._sseFailures,
      limit: this._sseLimit,
    });
    if (!kind) return this._stop({ error: "unsupported", message: "this browser has neither EventSource nor WebSocket" });
    this._setState({ status: this._everOpened ? "reconnecting" : "connecting", transport: kind, nextAttemptAt: null });
    let token;
    try {
      token = await this.token();
    } catch (err) {
      if (gen === this._gen) this._retry({ error: "token", message: "getToken failed: " + ((err && err.message) || err) });
      return;
    }
    if (gen !== this._gen || this._closed) return;
    // The token may have told the user id: channels named after it join now.
    const chans = (this._connChannels = this.channels);
    if (chans.length === 0) return this._setState({ ...CLOSED, status: "idle", role: this._state.role });
    if (this._initialCursor) {
      Object.assign(this._positions, parseCursor(this._initialCursor, chans));
      this._initialCursor = "";
    }
    const cursor = buildCursor(chans, this._positions);
    const url = streamURL(this.url, chans, { token, cursor, websocket: kind === "websocket" });
    const hooks = this._hooks(gen, chans);
    this.stats.connects++;
    this._conn = kind === "sse" ? new SSEConn(this._env.EventSource, url, hooks) : new WSConn(this._env, url, hooks, this._pingInterval);
  }

  // _hooks are the callbacks of one connection attempt; those of an older
  // attempt are ignored.
  _hooks(gen, chans) {
    const live = () => gen === this._gen && !this._closed;
    return {
      opened: () => live() && this._opened(),
      event: (msg, cursor) => live() && this._receive(msg, cursor, chans),
      cursor: (text) => live() && Object.assign(this._positions, parseCursor(text, chans)),
      reset: (r, cursor) => live() && this._reset(r, cursor, chans),
      problem: (p) => live() && this._emit("error", { ...p, fatal: false }),
      ended: (how) => live() && this._ended(how),
    };
  }

  _opened() {
    const kind = this._conn && this._conn.kind;
    this._everOpened = true;
    this._attempt = 0;
    this._authFailures = 0;
    if (kind === "sse") this._sseFailures = 0;
    this._setState({ status: "open", transport: kind, attempt: 0, nextAttemptAt: null, error: null });
  }

  // _receive handles one event of a stream or of the leader tab.
  _receive(msg, cursor, chans) {
    if (kindOf(msg) === "event") {
      if (isDuplicate(this._positions[msg.channel], msg.id)) {
        this.stats.duplicates++;
        return;
      }
      this._positions[msg.channel] = msg.id;
    }
    if (cursor) Object.assign(this._positions, parseCursor(cursor, chans));
    this.stats.received++;
    if (this._share && this._share.role === "leader") this._share.relay({ t: "msg", msg, cursor, channels: chans });
    for (const s of this._subs) {
      if (!s.channels.includes(msg.channel)) continue;
      if (msg.id && kindOf(msg) === "event") {
        if (isDuplicate(s.after[msg.channel], msg.id)) continue; // replayed for a newer subscriber
        s.after[msg.channel] = msg.id;
      }
      call(s.handler, msg);
    }
    this._emit("message", msg);
  }

  _reset(r, cursor, chans) {
    if (r.channel && r.id) this._positions[r.channel] = r.id;
    if (cursor) Object.assign(this._positions, parseCursor(cursor, chans));
    if (this._share && this._share.role === "leader") this._share.relay({ t: "reset", reset: r, cursor, channels: chans });
    for (const s of this._subs) {
      if (!s.channels.includes(r.channel)) continue;
      if (r.id) s.after[r.channel] = r.id;
      if (s.onReset) call(s.onReset, r);
    }
    this._emit("reset", r);
  }

  // _ended handles the end of a connection attempt: how = {action, error,
  // message, beforeOpen, probeURL}.
  async _ended(how) {
    this._drop();
    const gen = this._gen;
    if (how.action === "probe") {
      how = await this._probe(how.probeURL);
      if (gen !== this._gen || this._closed) return;
    }
    switch (how.action) {
      case "stop":
        return this._stop(how);
      case "refresh":
        if (!this._getToken) return this._stop({ ...how, message: how.message + " (no getToken to ask for a fresh one)" });
        this._token = "";
        this._staleReason = how.error;
        this._authFailures++;
        if (this._authFailures > 1) return this._retry(how);
        this._emit("error", { ...how, fatal: false });
        return this._open();
      case "sse-failed":
        this._sseFailures++;
        return this._retry(how, this._sseFailures < this._sseLimit ? false : true);
    }
    return this._retry(how);
  }

  // _probe asks the stream URL for JSON to learn why an EventSource failed
  // before opening (EventSource hides statuses).
  async _probe(url) {
    try {
      const res = await this._env.fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      let body = null;
      try {
        body = await res.json();
      } catch {
        body = null;
      }
      return probeAction(res.status, body);
    } catch {
      return probeAction(0, null);
    }
  }

  // _retry waits (exponential backoff, full jitter) and connects again.
  _retry(problem, now = false) {
    if (this._closed) return;
    this._emit("error", { ...problem, fatal: false });
    const delay = now ? 0 : backoffDelay(this._attempt++, this._backoff, this._env.random);
    const at = this._env.now() + delay;
    this._setState({ status: this._everOpened ? "reconnecting" : "connecting", attempt: this._attempt, nextAttemptAt: at, error: problem });
    this._clearTimer();
    this._timer = this._env.setTimeout(() => {
      this._timer = null;
      this._open();
    }, delay);
  }

  _stop(problem) {
    this._drop();
    this._clearTimer();
    const err = { error: problem.error, message: problem.message, fatal: true };
    this._setState({ status: "closed", nextAttemptAt: null, error: err });
    this._emit("error", err);
  }

  _drop() {
    if (this._conn) {
      const c = this._conn;
      this._conn = null;
      this._gen++;
      c.close();
    }
  }

  _clearTimer() {
    if (this._timer) {
      this._env.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  _setState(patch) {
    const role = this._share ? this._share.role : "solo";
    this._state = Object.freeze({ ...this._state, role, since: this._env.now(), ...patch });
    if (this._share && this._share.role === "leader") this._share.relay({ t: "state", state: this._state, positions: { ...this._positions } });
    this._emit("state", this._state);
  }

  _emit(type, value) {
    const set = this._listeners.get(type);
    if (set) for (const fn of [...set]) call(fn, value);
  }

  // ---- sharing (relay-share.js calls these) ----

  _startSharing(share) {
    const key = typeof share === "string" ? share : this.url + "|" + (this.userId || tokenSubject(this._token) || "anonymous");
    this._share = startSharing(this, key, this._env);
  }

  _setExtraChannels(list) {
    this._extraChannels = list;
    this._queueSync();
  }

  // _followerState takes the leader's state, as a follower.
  _followerState(state, positions) {
    if (positions) {
      for (const [ch, id] of Object.entries(positions)) if (!isDuplicate(this._positions[ch], id)) this._positions[ch] = id;
    }
    this._state = Object.freeze({ ...state, role: "follower" });
    this._emit("state", this._state);
  }
}

function call(fn, v) {
  try {
    fn(v);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

// subChannels is a subscriber's channels; one named after the user gets them
// once the user id is known.
function subChannels(s, userId) {
  if (s.channelsOf && !s.channels.length && userId) s.channels = [].concat(s.channelsOf(userId)).map(String);
  return s.channels;
}

function sameList(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// SSEConn is one EventSource. relay.js reconnects by itself (backoff,
// fresh tokens), so the browser's own reconnect is cut short.
class SSEConn {
  constructor(EventSource, url, hooks) {
    this.kind = "sse";
    this.live = false;
    this._url = url;
    this._hooks = hooks;
    const es = (this._es = new EventSource(url));
    es.onopen = () => {
      this.live = true;
      hooks.opened();
    };
    es.onmessage = (e) => {
      if (!e.data) return hooks.cursor(e.lastEventId);
      const msg = parse(e.data);
      if (msg) hooks.event(msg, e.lastEventId);
    };
    // A named event carrying the whole cursor after history (servers that
    // send it; browsers record a data-less id frame without telling pages).
    es.addEventListener("connection_established", (e) => {
      const msg = parse(e.data);
      hooks.cursor((msg && msg.cursor) || e.lastEventId);
    });
    es.addEventListener("reset", (e) => {
      const msg = parse(e.data) || {};
      hooks.reset({ channel: msg.channel, id: msg.id, message: msg.message || "" }, e.lastEventId);
    });
    for (const name of ["token_expired", "slow_consumer", "shutdown", "forbidden"]) {
      es.addEventListener(name, (e) => this._end(sseEventAction(name, (parse(e.data) || {}).message)));
    }
    es.addEventListener("error", (e) => {
      if (typeof e.data === "string") {
        // relay's own "error" event: it could not read the log.
        return this._end(sseEventAction("error", (parse(e.data) || {}).message));
      }
      if (this.live) return this._end({ action: "retry", error: "disconnected", message: "the event stream dropped" });
      this._end({ action: "probe", probeURL: this._url, beforeOpen: true });
    });
  }

  _end(how) {
    if (this._done) return;
    this._done = true;
    this.close();
    this._hooks.ended(how);
  }

  close() {
    this.live = false;
    this._done = true;
    this._es.close();
  }
}

// WSConn is one WebSocket. The connection counts as open once relay says
// connection_established (after history): a refused one is upgraded first
// and then closed with a 4xxx code.
class WSConn {
  constructor(env, url, hooks, pingInterval) {
    this.kind = "websocket";
    this.live = false;
    this._env = env;
    this._hooks = hooks;
    this._pings = new Map();
    const ws = (this._ws = new env.WebSocket(url));
    ws.onmessage = (e) => this._message(e.data);
    ws.onclose = (e) => {
      if (this._closedByUs) return;
      this._stopPing();
      this.live = false;
      hooks.ended(wsCloseAction(e.code, e.reason));
    };
    ws.onerror = () => {};
    if (pingInterval > 0) {
      // A dead peer behind a proxy is otherwise noticed only by TCP: relay
      // answers every ping with a pong.
      this._pingTimer = setInterval(() => {
        if (!this.live) return;
        this.ping(env.now()).catch(() => {
          if (this.live) ws.close(4999, "no pong");
        });
      }, pingInterval);
    }
  }

  _message(data) {
    const msg = parse(data);
    if (!msg) return;
    const kind = kindOf(msg);
    if (kind !== "control") return this._hooks.event(msg, "");
    switch (msg.type) {
      case "connection_established":
        this._hooks.cursor(msg.cursor || "");
        this.live = true;
        return this._hooks.opened();
      case "reset":
        return this._hooks.reset({ channel: msg.channel, id: msg.id, message: msg.message || "" }, "");
      case "pong": {
        const p = this._pings.get(msg.timestamp);
        if (p) {
          this._pings.delete(msg.timestamp);
          p.resolve();
        }
        return;
      }
      case "error":
        return this._hooks.problem({ error: msg.error || "error", message: msg.message || "" });
    }
  }

  send(msg) {
    this._ws.send(JSON.stringify(msg));
  }

  ping(ts) {
    return new Promise((resolve, reject) => {
      const timer = this._env.setTimeout(() => {
        this._pings.delete(ts);
        reject(new RelayError("timeout", "no pong within 10 s"));
      }, 10000);
      this._pings.set(ts, {
        resolve: () => {
          this._env.clearTimeout(timer);
          resolve();
        },
      });
      this.send({ type: "ping", timestamp: ts });
    });
  }

  _stopPing() {
    if (this._pingTimer) clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  close() {
    this._closedByUs = true;
    this.live = false;
    this._stopPing();
    try {
      this._ws.close(1000);
    } catch {
      // already closed
    }
  }
}

function parse(data) {
  try {
    const v = JSON.parse(data);
    return v && typeof v === "object" ? v : null;
  } catch {
    return null;
  }
}
