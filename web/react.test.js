// Unit tests of react.js with a tiny stand-in for React's hook runtime (no
// npm packages: one component, re-rendered when its state changes, effects
// run after each render): node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRelayHooks } from "./react.js";
import { Relay } from "./relay.js";

function miniReact() {
  let cur = null;
  const React = {
    createContext: (value) => ({ current: value, Provider: "Provider" }),
    createElement: (type, props, ...children) => ({ type, props, children }),
    useContext: (ctx) => ctx.current,
    useState(init) {
      const h = slot(() => ({ v: typeof init === "function" ? init() : init }));
      const inst = cur;
      return [h.v, (v) => {
        const next = typeof v === "function" ? v(h.v) : v;
        if (!Object.is(next, h.v)) {
          h.v = next;
          inst.dirty = true;
        }
      }];
    },
    useRef: (v) => slot(() => ({ current: v })),
    useMemo(make, deps) {
      const h = slot(() => ({ deps: undefined }));
      if (!same(h.deps, deps)) Object.assign(h, { v: make(), deps });
      return h.v;
    },
    useCallback: (fn, deps) => React.useMemo(() => fn, deps),
    useEffect(fn, deps) {
      const h = slot(() => ({ deps: undefined }));
      if (deps === undefined || !same(h.deps, deps)) {
        h.deps = deps;
        cur.effects.push(() => {
          if (h.cleanup) h.cleanup();
          h.cleanup = fn();
        });
      }
    },
    useSyncExternalStore(subscribe, get) {
      const inst = cur;
      const h = slot(() => ({}));
      h.snap = get();
      if (h.sub !== subscribe) {
        if (h.unsub) h.unsub();
        h.sub = subscribe;
        h.unsub = subscribe(() => {
          if (!Object.is(get(), h.snap)) inst.dirty = true;
        });
        inst.cleanups.push(() => h.unsub());
      }
      return h.snap;
    },
  };
  function slot(make) {
    const i = cur.i++;
    if (cur.hooks.length <= i) cur.hooks.push(make());
    return cur.hooks[i];
  }
  function same(a, b) {
    return !!a && !!b && a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
  }
  // render mounts a component; flush re-renders it while its state changed.
  function render(fn) {
    const inst = { hooks: [], effects: [], cleanups: [], dirty: true, out: null };
    inst.flush = () => {
      while (inst.dirty) {
        inst.dirty = false;
        cur = inst;
        inst.i = 0;
        inst.effects = [];
        inst.out = fn();
        cur = null;
        for (const e of inst.effects) e();
      }
      return inst.out;
    };
    inst.unmount = () => {
      for (const h of inst.hooks) if (h.cleanup) h.cleanup();
      for (const c of inst.cleanups) c();
    };
    inst.flush();
    return inst;
  }
  return { React, render };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

// fakeRelay is a Relay whose connection is driven by the test.
function fakeRelay(answers = {}) {
  const sockets = [];
  class WS {
    constructor(url) {
      this.url = url;
      this.sent = [];
      sockets.push(this);
    }
    send(s) {
      this.sent.push(JSON.parse(s));
    }
    close() {}
  }
  const fetches = [];
  const relay = new Relay({
    url: "http://relay.test",
    token: "h." + Buffer.from('{"sub":"1"}').toString("base64url") + ".s",
    transport: "websocket",
    pingInterval: 0,
    env: {
      WebSocket: WS,
      EventSource: undefined,
      BroadcastChannel: undefined,
      locks: undefined,
      fetch: async (url, init) => {
        fetches.push({ url, init });
        const path = url.replace("http://relay.test", "").split("?")[0];
        const body = answers[path] ?? {};
        return { status: 200, ok: true, text: async () => JSON.stringify(body) };
      },
    },
  });
  const open = () => sockets.at(-1).onmessage({ data: JSON.stringify({ type: "connection_established", channels: [], cursor: "" }) });
  const push = (msg) => sockets.at(-1).onmessage({ data: JSON.stringify(msg) });
  return { relay, sockets, fetches, open, push };
}

test("RelayProvider + useRelay: subscribes, re-renders on messages and state, unsubscribes on unmount", async () => {
  const { React, render } = miniReact();
  const hooks = createRelayHooks(React);
  const f = fakeRelay();
  const tree = render(() => hooks.RelayProvider({ client: f.relay, children: null })).out;
  assert.equal(tree.props.value, f.relay);
  hooks.RelayContext.current = f.relay;

  const seen = [];
  const c = render(() => hooks.useRelay(["project_1_tickets"], { onMessage: (m) => seen.push(m.id) }));
  await tick();
  assert.equal(f.sockets.length, 1);
  assert.ok(f.sockets[0].url.includes("channel=project_1_tickets"));
  f.open();
  assert.equal(c.flush().state.status, "open");
  assert.equal(c.flush().isConnected, true);
  f.push({ id: "e-1", channel: "project_1_tickets", ts: "t", type: "ticket_update" });
  assert.equal(c.flush().lastMessage.id, "e-1");
  assert.deepEqual(seen, ["e-1"]);
  await c.flush().send({ type: "ping", timestamp: 1 });
  assert.deepEqual(f.sockets[0].sent, [{ type: "ping", timestamp: 1 }]);
  c.unmount();
  await tick();
  assert.equal(f.relay.state.status, "idle", "no channel left: disconnected");
});

test("useNotifications: history, live ones, markAsRead", async () => {
  const { React, render } = miniReact();
  const hooks = createRelayHooks(React);
  const f = fakeRelay({ "/api/notifications": { notifications: [{ id: "e-1", channel: "user_1_notifications", ts: "t", type: "n", read: false }], unread_count: 1, more: false } });
  hooks.RelayContext.current = f.relay;
  const toasts = [];
  const c = render(() => hooks.useNotifications({ onNotification: (n) => toasts.push(n.id) }));
  await tick();
  await tick();
  assert.ok(f.sockets[0].url.includes("channel=user_1_notifications"), "user id from the token");
  f.open();
  let s = c.flush();
  assert.equal(s.unreadCount, 1);
  f.push({ id: "e-2", channel: "user_1_notifications", ts: "t", type: "n" });
  s = c.flush();
  assert.equal(s.unreadCount, 2);
  assert.deepEqual(s.notifications.map((n) => n.id), ["e-2", "e-1"]);
  assert.deepEqual(toasts, ["e-2"]);
  await s.markAsRead("e-2");
  s = c.flush();
  assert.equal(s.unreadCount, 1);
  assert.deepEqual(f.sockets[0].sent, [{ type: "mark_read", id: "e-2" }]);
  f.push({ id: "e-3", channel: "user_1_notifications", ts: "t", type: "notification_read", ids: ["e-1", "e-2"], unread_count: 0 });
  assert.equal(c.flush().unreadCount, 0);
  c.unmount();
});

test("usePresence: users, viewing, typing; setTyping sends", async () => {
  const { React, render } = miniReact();
  const hooks = createRelayHooks(React);
  const f = fakeRelay();
  hooks.RelayContext.current = f.relay;
  const c = render(() => hooks.usePresence(1));
  await tick();
  assert.ok(f.sockets[0].url.includes("channel=project_1_presence"));
  f.open();
  f.push({ channel: "project_1_presence", ts: "t", type: "presence_state", users: [{ user_id: "2", username: "bob", viewing: 7, typing: null }] });
  f.push({ channel: "project_1_presence", ts: "t", type: "typing", user_id: "2", username: "bob", ticket_id: 7, is_typing: true });
  const p = c.flush();
  assert.deepEqual(p.users.map((u) => u.username), ["bob"]);
  assert.deepEqual(p.viewing[7].map((u) => u.user_id), ["2"]);
  assert.deepEqual(p.typing[7].map((u) => u.user_id), ["2"]);
  await p.setTyping(7, true);
  await p.setTyping(7, true); // a repeat within the throttle window is not sent
  await p.setViewing(null);
  assert.deepEqual(f.sockets[0].sent, [
    { type: "typing", project_id: "1", ticket_id: 7, is_typing: true },
    { type: "viewing", project_id: "1", ticket_id: null },
  ]);
  c.unmount();
});

test("createRelayHooks refuses what is not React 18", () => {
  assert.throws(() => createRelayHooks(undefined), /pass the React module/);
  assert.throws(() => createRelayHooks({ createContext() {} }), /React 18/);
});

// The README's page: a provider with getToken (the user id is known only once
// the token is in), a notification bell and a ticket list with presence, in
// either order, with whatever arguments useNotifications gets. One
// connection, carrying every channel, from the first attempt.
test("useNotifications shares the page's one connection whatever its arguments", async () => {
  const token = "h." + Buffer.from('{"user_id":1}').toString("base64url") + ".s";
  const cases = [
    { name: "README: getToken, onNotification", opts: { getToken: async () => token }, args: () => ({ onNotification: () => {} }) },
    { name: "no arguments", opts: { getToken: async () => token }, args: () => undefined },
    { name: "a limit, bell after the list", opts: { getToken: async () => token }, args: () => ({ limit: 5 }), bellLast: true },
    { name: "userId given", opts: { getToken: async () => token }, args: () => ({ userId: 1 }) },
    { name: "userId as text, token given", opts: { token }, args: () => ({ userId: "1" }) },
    { name: "token given, no arguments", opts: { token }, args: () => undefined, bellLast: true },
    { name: "slow getToken", opts: { getToken: () => new Promise((r) => setTimeout(() => r(token), 20)) }, args: () => ({}) },
  ];
  for (const tc of cases) {
    const { React, render } = miniReact();
    const hooks = createRelayHooks(React);
    const sockets = [];
    class WS {
      constructor(url) {
        this.url = url;
        sockets.push(this);
      }
      send() {}
      close() {}
    }
    const fetch = async () => ({ status: 200, ok: true, text: async () => JSON.stringify({ notifications: [], unread_count: 0, more: false }) });
    const relay = new Relay({ url: "http://relay.test", transport: "websocket", pingInterval: 0, ...tc.opts, env: { WebSocket: WS, EventSource: undefined, BroadcastChannel: undefined, locks: undefined, fetch } });
    hooks.RelayContext.current = relay;
    const page = () => {
      const bell = () => hooks.useNotifications(tc.args());
      const list = () => [hooks.useRelay(["project_1_tickets"]), hooks.usePresence(1)];
      return tc.bellLast ? [list(), bell()] : [bell(), list()];
    };
    const c = render(page);
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
    c.flush();
    assert.equal(sockets.length, 1, tc.name + ": connections opened");
    const chans = new URL(sockets[0].url.replace(/^ws/, "http")).searchParams.getAll("channel").sort();
    assert.deepEqual(chans, ["project_1_presence", "project_1_tickets", "user_1_notifications"], tc.name + ": channels of the one connection");
    c.unmount();
    relay.close();
  }
});
