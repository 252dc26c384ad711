// The demo page: plain JS over relay.js, no build step. Query parameters:
// user=alice (sign in at once), transport=auto|sse|websocket, share=0 (one
// connection per tab instead of per browser), backoff=100,2000 (ms bounds).
import { NotificationsStore, PresenceStore, Relay, ticketsChannel } from "/relay.js";

const PROJECT = "1";
const USERS = [
  { id: "1", name: "alice", color: "#6366f1" },
  { id: "2", name: "bob", color: "#ec4899" },
  { id: "3", name: "carol", color: "#0d9488" },
];
const STATUSES = ["open", "in progress", "review", "done"];
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

// The tickets as the page's first request would find them. A real app loads
// its state from its backend, with the cursor the backend read just before
// (GET /api/channels/{channel}/cursor), and subscribes from that cursor. This
// demo has no backend: its state is these seeds plus every ticket event relay
// still holds, replayed from cursor "0", so a late joiner sees what the
// others see.
const seedTickets = () =>
  new Map(
    [
    [101, "Login page is blank on Safari 17", "in progress"],
    [102, "Export to CSV drops the last row", "open"],
    [103, "Dark mode for the dashboard", "review"],
    [104, "Slow search on projects with 10k tickets", "open"],
    [105, "Invite emails land in spam", "done"],
    ].map(([id, title, status]) => [id, { id, title, status, comments: [] }]),
  );
let tickets = seedTickets();

/** window.demo is the page's state, for the curious and for relay's browser tests. */
const demo = (window.demo = { relay: null, user: null, received: [], resets: [], tokenFetches: 0, signIn, signOut, publish });
let notifications = null;
let presence = null;
let selected = 101;
let offs = [];

// ---- sign in ----

async function mintToken(name) {
  const res = await fetch("/api/dev/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: name }) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || "could not get a demo token (" + res.status + ")");
  return body.token;
}

async function signIn(name, { token } = {}) {
  const user = USERS.find((u) => u.name === name);
  if (!user) throw new Error("no demo user " + name);
  if (demo.relay) signOut();
  const first = token || (await mintToken(name));
  const [initial, max] = (params.get("backoff") || "500,10000").split(",").map(Number);
  const relay = new Relay({
    token: first,
    userId: user.id,
    getToken: async () => {
      demo.tokenFetches++;
      log("conn", "token expired: fetched a fresh one, resuming");
      return mintToken(name);
    },
    transport: params.get("transport") || "auto",
    share: params.get("share") === "0" ? false : "demo:" + name,
    backoff: { initial, max },
  });
  Object.assign(demo, { relay, user, received: [], resets: [], replayed: 0 });
  tickets = seedTickets();
  const signedInAt = new Date().toISOString();
  sessionStorage.setItem("relay-demo-user", name);

  offs = [
    // State then stream: everything relay holds for the channel, then live.
    relay.subscribe([ticketsChannel(PROJECT)], (ev) => onTicketEvent(ev, ev.ts < signedInAt), {
      cursor: "0",
      onReset: (r) => log("warn", `relay no longer holds all of ${r.channel}'s history: tickets may be stale (a real app reloads them from its backend)`),
    }),
    relay.on("state", renderConn),
    relay.on("reset", (r) => {
      demo.resets.push(r);
      log("warn", `history of ${r.channel} is gone (${r.message}): refetching its state`);
    }),
    relay.on("error", (e) => e.fatal && log("warn", `stopped: ${e.error}: ${e.message}`)),
  ];
  notifications = new NotificationsStore(relay, { userId: user.id, onNotification: (n) => log("note", "notification: " + title(n)) }).start();
  presence = new PresenceStore(relay, { projectId: PROJECT }).start();
  offs.push(notifications.subscribe(renderNotifications), presence.subscribe(renderPresence));
  presence.setViewing(selected).catch(() => {});

  $("signin").hidden = true;
  $("app").hidden = false;
  $("me").hidden = false;
  $("bell").disabled = false;
  $("me-name").textContent = user.name;
  paintAvatar($("me-avatar"), user);
  renderConn(relay.state);
  renderTickets();
  renderDetail();
  log("conn", `signed in as ${user.name}`);
}

function signOut() {
  for (const off of offs) off();
  offs = [];
  if (notifications) notifications.close();
  if (presence) presence.close();
  if (demo.relay) demo.relay.close();
  demo.relay = null;
  sessionStorage.removeItem("relay-demo-user");
  $("signin").hidden = false;
  $("app").hidden = true;
  $("me").hidden = true;
  $("bell").disabled = true;
  $("notif-panel").hidden = true;
}

// ---- publishing (what a backend does; the demo token may publish to project 1 and notifications) ----

async function publish(events) {
  const res = await fetch("/api/publish", {
    method: "POST",
    headers: { Authorization: "Bearer " + (await demo.relay.token()), "Content-Type": "application/json" },
    body: JSON.stringify(events),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || "publish failed: " + res.status);
  return body;
}

const note = (to, kind, title, message) => ({
  channel: `user_${to.id}_notifications`,
  type: "notification_message",
  data: { id: crypto.randomUUID(), notification_type: kind, title, message, from: demo.user.name, timestamp: new Date().toISOString() },
});

const ticketEvent = (t, action) => ({
  channel: ticketsChannel(PROJECT),
  type: "ticket_update",
  action,
  data: { ticket_id: t.id, title: t.title, status: t.status, updated_by: demo.user.name },
});

const actions = {
  update() {
    const t = [...tickets.values()][Math.floor(Math.random() * tickets.size)];
    const status = STATUSES[(STATUSES.indexOf(t.status) + 1) % STATUSES.length];
    return publish(ticketEvent({ ...t, status }, "updated"));
  },
  create() {
    const id = Math.max(...tickets.keys()) + 1;
    const titles = ["Crash when pasting emoji", "Add SSO for Okta", "Typo on pricing page", "Webhook retries pile up"];
    return publish(ticketEvent({ id, title: titles[id % titles.length], status: "open" }, "created"));
  },
  "notify-other"() {
    const others = USERS.filter((u) => u.id !== demo.user.id);
    const to = others[Math.floor(Math.random() * others.length)];
    log("note", `sent ${to.name} a notification`);
    return publish(note(to, "mention", `${demo.user.name} mentioned you`, `in #${selected}: "can you take a look?"`));
  },
  "notify-me"() {
    return publish(note(demo.user, "ticket_assigned", "Ticket assigned", `You were assigned to #${selected}`));
  },
  burst() {
    const t = tickets.get(selected);
    return publish(Array.from({ length: 20 }, (_, i) => ticketEvent({ ...t, status: STATUSES[i % STATUSES.length] }, "updated")));
  },
};

// ---- live events ----

// onTicketEvent applies a ticket event to the page's state; replayed ones
// (from before sign-in: the state) are applied quietly.
function onTicketEvent(ev, replayed = false) {
  if (ev.id) demo.received.push({ id: ev.id, type: ev.type, data: ev.data });
  const d = ev.data || {};
  if (replayed) {
    if (demo.replayed++ === 0) log("conn", "loading the tickets' state from relay's history");
    applyTicketEvent(ev, d, false);
    return scheduleRender();
  }
  if (applyTicketEvent(ev, d, true) === "update") {
    log("event", `#${d.ticket_id} ${ev.action || "updated"} by ${d.updated_by || "someone"}: ${d.status}`);
  } else if (ev.type === "comment_added" && d.ticket_id) {
    log("event", `${d.author} commented on #${d.ticket_id}`);
  } else {
    log("event", `${ev.type} ${ev.id || ""}`);
  }
  renderTickets();
  renderDetail();
}

function applyTicketEvent(ev, d, fresh) {
  if (ev.type === "ticket_update" && d.ticket_id) {
    const t = tickets.get(d.ticket_id) || { id: d.ticket_id, comments: [] };
    tickets.set(d.ticket_id, { ...t, title: d.title || t.title, status: d.status || t.status, fresh: fresh ? Date.now() : 0 });
    return "update";
  }
  if (ev.type === "comment_added" && d.ticket_id) {
    const t = tickets.get(d.ticket_id);
    if (t) t.comments.push({ author: d.author, text: d.text, ts: ev.ts });
    return "comment";
  }
  return "";
}

// scheduleRender renders once after a burst of replayed events.
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderTickets();
    renderDetail();
  });
}

// ---- rendering ----

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function paintAvatar(e, user) {
  const u = USERS.find((x) => x.id === String(user.user_id ?? user.id)) || {};
  const name = user.username || user.name || "?";
  e.textContent = name[0].toUpperCase();
  e.style.background = u.color || "#64748b";
  e.title = name;
  return e;
}

const avatar = (user) => paintAvatar(el("span", "avatar sm"), user);
const title = (n) => (n.data && n.data.title) || n.type;

function othersIn(map, ticketId) {
  return ((presence && presence.getSnapshot()[map][ticketId]) || []).filter((u) => u.user_id !== demo.user.id);
}

function renderTickets() {
  const list = $("ticket-list");
  list.replaceChildren();
  for (const t of [...tickets.values()].sort((a, b) => b.id - a.id)) {
    const li = el("li", "ticket" + (t.id === selected ? " selected" : "") + (t.fresh && Date.now() - t.fresh < 1500 ? " fresh" : ""));
    li.dataset.ticket = t.id;
    const main = el("div", "ticket-main");
    main.append(el("span", "ticket-id", "#" + t.id), el("span", "ticket-title", t.title));
    const meta = el("div", "ticket-meta");
    const typing = othersIn("typing", t.id);
    if (typing.length) meta.append(el("span", "typing-pill", "✎ " + typing.map((u) => u.username).join(", ")));
    for (const u of othersIn("viewing", t.id)) meta.append(avatar(u));
    meta.append(el("span", "chip " + t.status.replace(" ", "-"), t.status));
    li.append(main, meta);
    li.onclick = () => select(t.id);
    list.append(li);
  }
}

function renderDetail() {
  const t = tickets.get(selected);
  if (!t) return;
  $("detail-title").textContent = `#${t.id} ${t.title}`;
  const chip = $("detail-status");
  chip.textContent = t.status;
  chip.className = "chip " + t.status.replace(" ", "-");
  const viewers = $("detail-viewers");
  viewers.replaceChildren();
  const others = othersIn("viewing", t.id);
  if (others.length) {
    viewers.append(...others.map(avatar), el("span", "muted", others.map((u) => u.username).join(", ") + " viewing too"));
  } else {
    viewers.append(el("span", "muted", "Only you are looking at this ticket"));
  }
  const comments = $("comments");
  comments.replaceChildren();
  for (const c of t.comments) {
    const li = el("li", "comment");
    li.append(avatar({ name: c.author, id: (USERS.find((u) => u.name === c.author) || {}).id }), el("div", "comment-body"));
    li.lastChild.append(el("strong", null, c.author), el("p", null, c.text));
    comments.append(li);
  }
  const typing = othersIn("typing", t.id).map((u) => u.username);
  $("typing-line").textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
}

function renderPresence() {
  const view = presence.getSnapshot();
  const list = $("online");
  list.replaceChildren();
  for (const u of view.users) {
    const li = el("li", "person");
    li.dataset.user = u.username;
    const what = u.typing != null ? `typing in #${u.typing}` : u.viewing != null ? `viewing #${u.viewing}` : "online";
    li.append(avatar(u), el("span", "person-name", u.username + (u.user_id === demo.user.id ? " (you)" : "")), el("span", "muted", what));
    list.append(li);
  }
  $("online-count").textContent = view.users.length;
  renderTickets();
  renderDetail();
}

function renderNotifications() {
  const s = notifications.getSnapshot();
  const badge = $("badge");
  badge.textContent = s.unreadCount > 99 ? "99+" : String(s.unreadCount);
  badge.hidden = s.unreadCount === 0;
  const list = $("notif-list");
  list.replaceChildren();
  for (const n of s.notifications) {
    const li = el("li", "notif" + (n.read ? "" : " unread"));
    li.dataset.id = n.id;
    const body = el("div", "notif-body");
    body.append(el("strong", null, title(n)), el("p", null, (n.data && n.data.message) || ""), el("time", "muted", ago(n.ts)));
    li.append(el("span", "unread-dot"), body);
    li.onclick = () => !n.read && notifications.markAsRead(n.id).catch((e) => log("warn", e.message));
    list.append(li);
  }
  $("notif-empty").hidden = s.notifications.length > 0;
}

function ago(ts) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  return s < 60 ? "just now" : s < 3600 ? Math.round(s / 60) + " min ago" : new Date(ts).toLocaleTimeString();
}

let countdown = null;
function renderConn(state) {
  const box = $("conn");
  box.dataset.status = state.status;
  clearInterval(countdown);
  const retry = $("conn-retry");
  retry.hidden = !(state.nextAttemptAt && state.role !== "follower");
  const transport = state.transport === "websocket" ? "WebSocket" : state.transport === "sse" ? "SSE" : "";
  const shared = state.role === "follower" ? " · via another tab" : state.role === "leader" ? " · shared" : "";
  const paint = () => {
    let text;
    switch (state.status) {
      case "open":
        text = `live · ${transport}${shared}`;
        break;
      case "connecting":
      case "reconnecting": {
        const wait = state.nextAttemptAt ? Math.max(0, Math.ceil((state.nextAttemptAt - Date.now()) / 1000)) : 0;
        text = (state.status === "connecting" ? "connecting" : "reconnecting") + (wait ? ` in ${wait} s` : "…");
        break;
      }
      case "closed":
        text = "stopped" + (state.error ? `: ${state.error.message}` : "");
        break;
      default:
        text = "not connected";
    }
    $("conn-text").textContent = text;
  };
  paint();
  if (state.nextAttemptAt) countdown = setInterval(paint, 250);
  if (state.status !== lastStatus) {
    if (state.status === "open") log("conn", `connected over ${transport}${shared}` + (lastStatus === "reconnecting" ? ": caught up from the cursor" : ""));
    else if (state.status === "reconnecting" && lastStatus === "open") log("warn", `connection lost${state.error ? ": " + state.error.message : ""}`);
    lastStatus = state.status;
  }
  renderStats();
}
let lastStatus = "idle";

function renderStats() {
  const r = demo.relay;
  if (r) $("stats").textContent = `${r.stats.received} received · ${r.stats.connects} connection${r.stats.connects === 1 ? "" : "s"}`;
}

function log(kind, text) {
  const li = el("li", "log-" + kind);
  li.append(el("time", null, new Date().toLocaleTimeString()), el("span", null, text));
  const list = $("log");
  list.prepend(li);
  while (list.children.length > 60) list.lastChild.remove();
  renderStats();
}

function select(id) {
  if (presence && id !== selected) presence.setTyping(selected, false).catch(() => {});
  selected = id;
  if (presence) presence.setViewing(id).catch((e) => log("warn", e.message));
  renderTickets();
  renderDetail();
}

// ---- wiring ----

for (const u of USERS) {
  const b = el("button", "user-card");
  b.dataset.user = u.name;
  b.append(paintAvatar(el("span", "avatar lg"), u), el("strong", null, u.name), el("span", "muted", "user " + u.id));
  b.onclick = () =>
    signIn(u.name).catch((e) => {
      $("signin-error").hidden = false;
      $("signin-error").textContent = e.message;
    });
  $("users").append(b);
}
document.querySelectorAll("[data-act]").forEach((b) => {
  b.onclick = () => actions[b.dataset.act]().catch((e) => log("warn", e.message));
});
$("bell").onclick = () => ($("notif-panel").hidden = !$("notif-panel").hidden);
$("mark-all").onclick = () => notifications && notifications.markAllAsRead().catch((e) => log("warn", e.message));
$("signout").onclick = signOut;
$("conn-retry").onclick = () => demo.relay && demo.relay.reconnect();
$("comment").addEventListener("input", () => presence && presence.setTyping(selected, true).catch(() => {}));
$("comment").addEventListener("blur", () => presence && presence.setTyping(selected, false).catch(() => {}));
$("comment-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("comment").value.trim();
  if (!text) return;
  $("comment").value = "";
  presence.setTyping(selected, false).catch(() => {});
  const t = tickets.get(selected);
  const others = USERS.filter((u) => u.id !== demo.user.id);
  publish([
    { channel: ticketsChannel(PROJECT), type: "comment_added", data: { ticket_id: t.id, author: demo.user.name, text } },
    ...others.map((u) => note(u, "comment", `${demo.user.name} commented on #${t.id}`, text.slice(0, 80))),
  ]).catch((err) => log("warn", err.message));
});
setInterval(renderTickets, 1600); // fades the "just changed" highlight

const auto = params.get("user") || sessionStorage.getItem("relay-demo-user");
if (auto) signIn(auto).catch((e) => log("warn", e.message));
