// relay-stores.js: notification and presence state over a Relay, for plain
// pages and for react.js alike. Each store has subscribe(listener) and
// getSnapshot() (the shape React's useSyncExternalStore takes); snapshots are
// immutable and change identity only when something changed. The reducers
// are pure functions, tested under Node.

import { kindOf, notificationsChannel, presenceChannel } from "./relay-core.js";

/** How many notifications a store keeps in memory. */
export const MAX_KEPT = 200;

/** The largest page of GET /api/projects/{id}/presence (relay's MaxPresencePage): the store asks for it. */
export const PRESENCE_PAGE = 1000;

/** Typing ends this long after the last typing event, if no refresh came (relay also ends it). */
export const TYPING_TIMEOUT = 6000;

// ---- notifications ----

const emptyNotifications = Object.freeze({ notifications: [], unreadCount: 0, loading: true, more: false, error: null });

function matches(n, id) {
  return n.id === id || (n.data && n.data.id != null && String(n.data.id) === id);
}

/**
 * notificationsReduce is the notification state after one action:
 * {type:"loaded", page} (GET /api/notifications), {type:"event", msg} (a
 * live event of the user's channel), {type:"markRead", ids} and
 * {type:"markAllRead"} (optimistic: relay's notification_read event follows
 * and is authoritative), {type:"error", error}.
 */
export function notificationsReduce(state = emptyNotifications, action) {
  switch (action.type) {
    case "loaded": {
      const page = action.page || {};
      const list = (page.notifications || []).map((n) => ({ ...n, read: !!n.read }));
      return { ...state, notifications: list.slice(0, MAX_KEPT), unreadCount: page.unread_count ?? list.filter((n) => !n.read).length, loading: false, more: !!page.more, error: null };
    }
    case "more": {
      const page = action.page || {};
      const have = new Set(state.notifications.map((n) => n.id));
      const older = (page.notifications || []).filter((n) => !have.has(n.id)).map((n) => ({ ...n, read: !!n.read }));
      return { ...state, notifications: state.notifications.concat(older).slice(0, MAX_KEPT), more: !!page.more };
    }
    case "event": {
      const msg = action.msg;
      if (msg.type === "notification_read") {
        const ids = new Set((msg.ids || []).map(String));
        const notifications = state.notifications.map((n) => (!n.read && (ids.has(n.id) || [...ids].some((id) => matches(n, id))) ? { ...n, read: true } : n));
        const unreadCount = typeof msg.unread_count === "number" ? msg.unread_count : notifications.filter((n) => !n.read).length;
        return { ...state, notifications, unreadCount };
      }
      if (kindOf(msg) !== "event" || state.notifications.some((n) => n.id === msg.id)) return state;
      return { ...state, notifications: [{ ...msg, read: false }, ...state.notifications].slice(0, MAX_KEPT), unreadCount: state.unreadCount + 1 };
    }
    case "markRead": {
      let changed = 0;
      const ids = [].concat(action.ids).map(String);
      const notifications = state.notifications.map((n) => {
        if (n.read || !ids.some((id) => matches(n, id))) return n;
        changed++;
        return { ...n, read: true };
      });
      return changed ? { ...state, notifications, unreadCount: Math.max(0, state.unreadCount - changed) } : state;
    }
    case "markAllRead":
      return { ...state, notifications: state.notifications.map((n) => (n.read ? n : { ...n, read: true })), unreadCount: 0 };
    case "error":
      return { ...state, loading: false, error: action.error };
  }
  return state;
}

/**
 * NotificationsStore keeps the user's notifications (user_{id}_notifications):
 * the history from GET /api/notifications, live ones on top, read state kept
 * right across tabs by relay's notification_read events. A reset of the
 * channel refetches.
 */
export class NotificationsStore {
  constructor(relay, { userId, limit = 20, onNotification } = {}) {
    this._relay = relay;
    this._limit = limit;
    this._onNotification = onNotification;
    this._state = emptyNotifications;
    this._listeners = new Set();
    this._buffer = null;
    this._offs = [];
    this._userId = userId;
    this._run = 0; // start/close generation: close() may be followed by start() again
  }

  /** start subscribes to the user's channel and loads the newest notifications; it returns the store. */
  start() {
    if (this._offs.length || this._starting) return this;
    this._starting = true;
    this._begin(++this._run);
    return this;
  }

  // _begin subscribes at once, so the page's first connection carries the
  // user's channel even when only getToken can tell the user id.
  async _begin(run) {
    const known = this._userId != null && this._userId !== "" ? String(this._userId) : this._relay.userId;
    const handler = (msg) => this._live(msg);
    if (known) {
      this.channel = notificationsChannel(known);
      this._offs.push(this._relay.subscribe([this.channel], handler));
    } else {
      this._offs.push(this._relay._subscribeUser((id) => (this.channel = notificationsChannel(id)), handler));
    }
    this._offs.push(this._relay.on("reset", (r) => r.channel === this.channel && this.refetch()));
    if (!known) await this._relay.token().catch(() => {});
    this._starting = false;
    if (run !== this._run) return;
    if (!this._relay.userId && !known) {
      this.close();
      return this._apply({ type: "error", error: "no user id: pass userId, or a token with a sub claim" });
    }
    this.refetch();
  }

  _live(msg) {
    if (this._buffer) this._buffer.push(msg);
    else this._apply({ type: "event", msg });
    if (this._onNotification && msg.type !== "notification_read" && kindOf(msg) === "event") this._onNotification(msg);
  }

  /** refetch reloads the newest notifications; live events that arrive meanwhile are kept. */
  async refetch() {
    this._buffer = [];
    try {
      const page = await this._relay.fetchNotifications({ limit: this._limit });
      this._apply({ type: "loaded", page });
    } catch (err) {
      this._apply({ type: "error", error: String((err && err.message) || err) });
    }
    const buffered = this._buffer || [];
    this._buffer = null;
    for (const msg of buffered) this._apply({ type: "event", msg });
  }

  /** loadMore appends the next older page. */
  async loadMore() {
    const last = this._state.notifications[this._state.notifications.length - 1];
    const page = await this._relay.fetchNotifications({ limit: this._limit, before: last ? last.id : "" });
    this._apply({ type: "more", page });
  }

  /** markAsRead marks notifications read (envelope ids or their data.id), here at once and on every tab. */
  markAsRead(ids) {
    this._apply({ type: "markRead", ids });
    return this._relay.markRead(ids);
  }

  /** markAllAsRead marks every notification read. */
  markAllAsRead() {
    this._apply({ type: "markAllRead" });
    return this._relay.markAllRead();
  }

  _apply(action) {
    const next = notificationsReduce(this._state, action);
    if (next === this._state) return;
    this._state = Object.freeze(next);
    for (const fn of [...this._listeners]) fn();
  }

  subscribe = (fn) => {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  };

  getSnapshot = () => this._state;

  /** close unsubscribes; start() may subscribe again. */
  close() {
    this._run++;
    this._starting = false;
    for (const off of this._offs) off();
    this._offs = [];
  }
}

// ---- presence ----

const emptyPresence = Object.freeze({ byId: Object.freeze({}), loaded: false, gen: 0, paging: null });

function person(u, prev = {}) {
  return {
    user_id: String(u.user_id ?? prev.user_id),
    username: u.username ?? prev.username ?? "",
    viewing: "viewing" in u ? u.viewing ?? null : prev.viewing ?? null,
    typing: "typing" in u ? u.typing ?? null : prev.typing ?? null,
    typingUntil: prev.typingUntil ?? 0,
  };
}

function listed(u, now, timeout) {
  const p = person(u);
  p.typingUntil = p.typing != null ? now + timeout : 0;
  return p;
}

// touch notes, while the rest of the list is still being read, what a live
// event said of a user ("left", or the fields it set): a page read before
// that event must not undo it.
function touch(state, id, fields) {
  if (!state.paging) return state.paging;
  const prev = state.paging.touched[id];
  const next = fields === "left" ? "left" : [...new Set([...(Array.isArray(prev) ? prev : []), ...fields])];
  return { ...state.paging, touched: { ...state.paging.touched, [id]: next } };
}

/**
 * presenceReduce is the presence state after one event of the project's
 * presence channel (presence_state, user_status, viewing, typing), a GET
 * /api/projects/{id}/presence answer ({type:"loaded", users, more}), one of
 * the pages that follow a state or answer with more ({type:"page", gen,
 * users, more}, gen being the state's), or {type:"expire"}; now is the
 * clock, timeout how long typing lasts without a refresh. While pages are
 * due, state.paging is set and state.loaded is false; live events apply at
 * once and win over what a page says of the same user.
 */
export function presenceReduce(state = emptyPresence, msg, now = Date.now(), timeout = TYPING_TIMEOUT) {
  const byId = { ...state.byId };
  switch (msg.type) {
    case "presence_state":
    case "loaded": {
      const next = {};
      for (const u of msg.users || []) {
        const p = listed(u, now, timeout);
        next[p.user_id] = p;
      }
      const gen = (state.gen || 0) + 1;
      return { byId: next, loaded: !msg.more, gen, paging: msg.more ? { touched: {} } : null };
    }
    case "page": {
      if (!state.paging || msg.gen !== state.gen) return state; // a page of an older state
      for (const u of msg.users || []) {
        const p = listed(u, now, timeout);
        const t = state.paging.touched[p.user_id];
        if (t === "left") continue;
        const live = byId[p.user_id];
        if (t && live) for (const f of t) f === "typing" ? Object.assign(p, { typing: live.typing, typingUntil: live.typingUntil }) : (p[f] = live[f]);
        byId[p.user_id] = p;
      }
      return msg.more ? { ...state, byId } : { ...state, byId, loaded: true, paging: null };
    }
    case "user_status": {
      const id = String(msg.user_id);
      if (msg.action === "joined") byId[id] = person({ user_id: id, username: msg.username }, byId[id]);
      else if (msg.action === "left") delete byId[id];
      else return state;
      return { ...state, byId, paging: touch(state, id, msg.action === "left" ? "left" : ["username"]) };
    }
    case "viewing": {
      const id = String(msg.user_id);
      byId[id] = person({ user_id: id, username: msg.username, viewing: msg.ticket_id ?? null }, byId[id]);
      return { ...state, byId, paging: touch(state, id, ["username", "viewing"]) };
    }
    case "typing": {
      const id = String(msg.user_id);
      const prev = byId[id] || {};
      // Stopping names the ticket, or none (relay's own end of typing that
      // was not refreshed): either ends it; a stop for another ticket does not.
      const stops = msg.is_typing === false;
      const typing = stops ? (msg.ticket_id == null || prev.typing === msg.ticket_id ? null : prev.typing ?? null) : msg.ticket_id ?? null;
      byId[id] = { ...person({ user_id: id, username: msg.username, typing }, prev), typingUntil: typing == null ? 0 : now + timeout };
      return { ...state, byId, paging: touch(state, id, ["username", "typing"]) };
    }
    case "expire": {
      let changed = false;
      for (const [id, p] of Object.entries(byId)) {
        if (p.typing != null && p.typingUntil <= now) {
          byId[id] = { ...p, typing: null, typingUntil: 0 };
          changed = true;
        }
      }
      return changed ? { ...state, byId } : state;
    }
  }
  return state;
}

/** presenceView derives what pages show: users (by id), and who views or types in each ticket. */
export function presenceView(state) {
  const users = Object.values(state.byId).sort((a, b) => a.user_id.localeCompare(b.user_id, undefined, { numeric: true }));
  const viewing = {};
  const typing = {};
  for (const u of users) {
    if (u.viewing != null) (viewing[u.viewing] ||= []).push(u);
    if (u.typing != null) (typing[u.typing] ||= []).push(u);
  }
  return Object.freeze({ users, viewing, typing, loaded: state.loaded });
}

/**
 * PresenceStore keeps who is online in a project and what each views or
 * types in, from project_{id}_presence; subscribing to it makes this user
 * online there.
 */
export class PresenceStore {
  constructor(relay, { projectId, typingTimeout = TYPING_TIMEOUT, now = Date.now } = {}) {
    this._relay = relay;
    this.projectId = String(projectId);
    this.channel = presenceChannel(this.projectId);
    this._timeout = typingTimeout;
    this._now = now;
    this._state = emptyPresence;
    this._view = presenceView(this._state);
    this._listeners = new Set();
    this._timer = null;
    this._lastTyping = { ticket: null, at: 0 };
    this._offs = [];
  }

  /** start subscribes to the presence channel (which makes this user online there); it returns the store. */
  start() {
    if (this._offs.length) return this;
    let wasOpen = this._relay.state.status === "open";
    this._offs = [
      this._relay.subscribe([this.channel], (msg) => this._apply(msg)),
      this._relay.on("reset", (r) => r.channel === this.channel && this.refetch()),
      // Relay forgets what a user views when it restarts or the user's last
      // connection ends: say it again on every (re)connect.
      this._relay.on("state", (st) => {
        const open = st.status === "open";
        if (open && !wasOpen && this._viewing !== undefined) this._relay.viewing(this.projectId, this._viewing).catch(() => {});
        wasOpen = open;
      }),
    ];
    return this;
  }

  /** refetch loads the presence state over HTTP (after a reset), every page of it. */
  async refetch() {
    try {
      const res = await this._relay.fetchPresence(this.projectId, { limit: PRESENCE_PAGE });
      this._apply({ type: "loaded", users: (res && res.users) || [], more: !!(res && res.more) });
    } catch {
      // live events and the next presence_state still arrive
    }
  }

  // _readRest reads the pages after a presence_state or answer that said
  // more, one at a time, while the state they complete is the current one
  // (a newer state starts its own). A page that fails ends it, the list
  // partial (loaded false) until the next state: a reconnect sends one.
  async _readRest(gen, users) {
    let after = users.length ? String(users[users.length - 1].user_id) : "";
    while (this._offs.length && this._state.gen === gen && this._state.paging) {
      let res;
      try {
        res = await this._relay.fetchPresence(this.projectId, { after, limit: PRESENCE_PAGE });
      } catch {
        return;
      }
      if (!this._offs.length) return; // closed meanwhile
      const list = (res && res.users) || [];
      const more = !!(res && res.more) && list.length > 0;
      this._apply({ type: "page", gen, users: list, more });
      if (!more) return;
      after = String(list[list.length - 1].user_id);
    }
  }

  /** setViewing says which ticket this user views (null: none). */
  setViewing(ticketId) {
    this._viewing = ticketId ?? null;
    if (this._relay.state.status !== "open") return Promise.resolve(null); // sent once the connection opens
    return this._relay.viewing(this.projectId, this._viewing);
  }

  /**
   * setTyping says this user types in a ticket (call it on every keystroke:
   * repeats within a third of the typing timeout are not sent) or stopped.
   */
  setTyping(ticketId, isTyping = true) {
    const now = this._now();
    if (isTyping && this._lastTyping.ticket === ticketId && now - this._lastTyping.at < this._timeout / 3) return Promise.resolve(null);
    this._lastTyping = isTyping ? { ticket: ticketId, at: now } : { ticket: null, at: 0 };
    return this._relay.typing(this.projectId, ticketId, isTyping);
  }

  _apply(msg) {
    const next = presenceReduce(this._state, msg, this._now(), this._timeout);
    this._schedule(next);
    if (next === this._state) return;
    const startsPaging = next.paging && next.gen !== this._state.gen;
    this._state = next;
    this._view = presenceView(next);
    for (const fn of [...this._listeners]) fn();
    if (startsPaging) this._readRest(next.gen, msg.users || []);
  }

  // _schedule wakes the store when the first typing indicator runs out.
  _schedule(state) {
    if (this._timer) clearTimeout(this._timer);
    this._timer = null;
    let first = Infinity;
    for (const p of Object.values(state.byId)) if (p.typing != null && p.typingUntil < first) first = p.typingUntil;
    if (first !== Infinity) this._timer = setTimeout(() => this._apply({ type: "expire" }), Math.max(0, first - this._now()) + 20);
  }

  subscribe = (fn) => {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  };

  getSnapshot = () => this._view;

  /** close unsubscribes (the user goes offline there unless another subscriber stays); start() may subscribe again. */
  close() {
    if (this._timer) clearTimeout(this._timer);
    this._timer = null;
    for (const off of this._offs) off();
    this._offs = [];
  }
}
