// Unit tests of the Relay client against fake EventSource, WebSocket, fetch
// and timers: node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { Relay } from "./relay.js";

// fakeEnv is a browser in a box: every EventSource and WebSocket the client
// makes, every fetch, and a clock the test moves.
function fakeEnv({ answer = () => ({ status: 200, body: {} }) } = {}) {
  const env = { es: [], ws: [], fetches: [], timers: [], clock: 1000, answer };
  class FakeEventSource {
    constructor(url) {
      this.url = url;
      this.listeners = {};
      this.closed = false;
      env.es.push(this);
    }
    addEventListener(name, fn) {
      (this.listeners[name] ||= []).push(fn);
    }
    close() {
      this.closed = true;
    }
    open() {
      this.onopen && this.onopen({});
    }
    message(data, lastEventId = "") {
      this.onmessage({ data: data == null ? "" : JSON.stringify(data), lastEventId });
    }
    named(name, data, lastEventId = "") {
      for (const fn of this.listeners[name] || []) fn({ data: JSON.stringify(data), lastEventId });
    }
    fail() {
      for (const fn of this.listeners.error || []) fn({});
    }
  }
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = false;
      env.ws.push(this);
    }
    send(s) {
      this.sent.push(JSON.parse(s));
    }
    close() {
      this.closed = true;
    }
    recv(obj) {
      this.onmessage({ data: JSON.stringify(obj) });
    }
    drop(code, reason = "") {
      this.onclose({ code, reason });
    }
  }
  env.api = {
    EventSource: FakeEventSource,
    WebSocket: FakeWebSocket,
    BroadcastChannel: undefined,
    locks: undefined,
    now: () => env.clock,
    random: () => 0.5,
    setTimeout: (fn, ms) => {
      const t = { fn, at: env.clock + ms };
      env.timers.push(t);
      return t;
    },
    clearTimeout: (t) => {
      env.timers = env.timers.filter((x) => x !== t);
    },
    fetch: async (url, init = {}) => {
      env.fetches.push({ url, init });
      const a = env.answer(url, init);
      if (a === "network") throw new TypeError("Failed to fetch");
      return { status: a.status, ok: a.status >= 200 && a.status < 300, statusText: "", text: async () => (a.body == null ? "" : JSON.stringify(a.body)), json: async () => a.body };
    },
  };
  // advance moves the clock and runs the timers that fall due.
  env.advance = async (ms) => {
    await settle();
    env.clock += ms;
    for (;;) {
      const due = env.timers.filter((t) => t.at <= env.clock);
      if (!due.length) break;
      env.timers = env.timers.filter((t) => t.at > env.clock);
      for (const t of due) t.fn();
      await settle();
    }
    await settle();
  };
  return env;
}

const settle = () => new Promise((r) => setTimeout(r, 0));

function query(url) {
  return new URL(url.replace(/^ws/, "http")).searchParams;
}

const ev = (channel, id, extra = {}) => ({ id, channel, ts: "2026-01-01T00:00:00Z", type: "test", ...extra });

async function client(env, opts = {}) {
  const relay = new Relay({ url: "http://relay.test", token: "t0", env: env.api, pingInterval: 0, backoff: { initial: 1000, max: 8000 }, ...opts });
  const got = [];
  relay.subscribe(opts.channels || ["a", "b"], (m) => got.push(m));
  await settle();
  return { relay, got };
}

test("SSE first: events arrive, the cursor follows, a drop resumes with it after a jittered backoff", async () => {
  const env = fakeEnv();
  const { relay, got } = await client(env);
  const states = [];
  relay.on("state", (s) => states.push(s.status));
  assert.equal(env.es.length, 1);
  const q = query(env.es[0].url);
  assert.deepEqual(q.getAll("channel"), ["a", "b"]);
  assert.equal(q.get("token"), "t0");
  assert.equal(q.get("last_event_id"), null, "first connect: live only");

  env.es[0].open();
  assert.equal(relay.state.status, "open");
  assert.equal(relay.state.transport, "sse");
  env.es[0].message(null, "a=x-0,b=y-7"); // the data-less cursor frame, where a browser passes it on
  env.es[0].message(ev("a", "x-1"), "a=x-1,b=y-7");
  env.es[0].message({ channel: "b", ts: "t", type: "typing" }, "a=x-1,b=y-7"); // ephemeral
  assert.deepEqual(got.map((m) => m.id ?? m.type), ["x-1", "typing"]);
  assert.equal(relay.cursor, "a=x-1,b=y-7");

  env.es[0].named("shutdown", { type: "shutdown", message: "restarting" });
  assert.ok(env.es[0].closed, "the old EventSource is closed");
  assert.equal(relay.state.status, "reconnecting");
  assert.equal(relay.state.nextAttemptAt, env.clock + 500, "full jitter: random 0.5 of the 1000 ms window");
  await env.advance(499);
  assert.equal(env.es.length, 1, "no attempt before the backoff ends");
  await env.advance(1);
  assert.equal(env.es.length, 2);
  assert.equal(query(env.es[1].url).get("last_event_id"), "a=x-1,b=y-7");
  env.es[1].open();
  assert.deepEqual(states, ["open", "reconnecting", "reconnecting", "open"]);
});

test("a duplicate event is dropped and counted; a reset moves the cursor and is surfaced", async () => {
  const env = fakeEnv();
  const { relay, got } = await client(env, { channels: ["a"] });
  const resets = [];
  relay.on("reset", (r) => resets.push(r));
  env.es[0].open();
  env.es[0].message(ev("a", "x-1"), "x-1");
  env.es[0].message(ev("a", "x-1"), "x-1");
  assert.equal(got.length, 1);
  assert.equal(relay.stats.duplicates, 1);
  env.es[0].named("reset", { type: "reset", channel: "a", id: "z-9", message: "history gone" }, "z-9");
  assert.deepEqual(resets, [{ channel: "a", id: "z-9", message: "history gone" }]);
  assert.equal(relay.cursor, "z-9");
  env.es[0].message(ev("a", "z-10"), "z-10");
  assert.equal(got.length, 2, "the new epoch's events are not duplicates");
});

test("SSE failing before opening falls back to WebSocket, which resumes with the cursor", async () => {
  const env = fakeEnv({ answer: () => ({ status: 200, body: { channels: ["a", "b"] } }) });
  const { relay, got } = await client(env, { sseFailuresBeforeWebSocket: 2 });
  env.es[0].open();
  env.es[0].message(ev("a", "x-4"), "a=x-4,b=y-2");
  env.es[0].fail(); // the stream drops
  await env.advance(10000);
  assert.equal(env.es.length, 2);
  env.es[1].fail(); // fails before opening: probe says the stream would be accepted
  await settle();
  assert.equal(env.fetches.at(-1).init.headers.Accept, "application/json");
  await env.advance(10000);
  assert.equal(env.es.length, 3, "one failure is not enough");
  env.es[2].fail();
  await env.advance(10000);
  assert.equal(env.es.length, 3, "no more EventSource");
  assert.equal(env.ws.length, 1, "WebSocket after 2 failures");
  const ws = env.ws[0];
  assert.ok(ws.url.startsWith("ws://relay.test/events?"), ws.url);
  assert.equal(query(ws.url).get("last_event_id"), "a=x-4,b=y-2");
  assert.equal(relay.state.status, "reconnecting", "not open until connection_established");
  ws.recv({ type: "connection_established", channels: ["a", "b"], cursor: "a=x-4,b=y-2" });
  assert.equal(relay.state.status, "open");
  assert.equal(relay.state.transport, "websocket");
  ws.recv(ev("b", "y-3"));
  assert.deepEqual(got.map((m) => m.id), ["x-4", "y-3"]);
  assert.equal(relay.cursor, "a=x-4,b=y-3");
});

test("an unreachable relay does not count against SSE", async () => {
  const env = fakeEnv({ answer: () => "network" });
  await client(env, { sseFailuresBeforeWebSocket: 1 });
  for (let i = 0; i < 3; i++) {
    env.es.at(-1).fail();
    await env.advance(60000);
  }
  assert.equal(env.ws.length, 0);
  assert.equal(env.es.length, 4);
});

test("no EventSource: WebSocket at once; transport: websocket likewise", async () => {
  for (const opts of [{ env: { EventSource: undefined } }, { transport: "websocket" }]) {
    const env = fakeEnv();
    if (opts.env) env.api.EventSource = undefined;
    await client(env, opts.transport ? { transport: opts.transport } : {});
    assert.equal(env.es.length, 0);
    assert.equal(env.ws.length, 1);
  }
});

test("token refresh: 401 probe, SSE token_expired and WebSocket 4001/4002 call getToken and resume", async () => {
  let n = 0;
  const getToken = async () => "t" + ++n;
  const env = fakeEnv({ answer: () => ({ status: 401, body: { error: "token_expired", message: "expired" } }) });
  const { relay } = await client(env, { token: undefined, getToken });
  assert.equal(query(env.es[0].url).get("token"), "t1");
  env.es[0].fail();
  await settle();
  await settle();
  assert.equal(env.es.length, 2, "reconnects at once with a fresh token");
  assert.equal(query(env.es[1].url).get("token"), "t2");
  env.es[1].open();
  env.es[1].message(ev("a", "x-1"), "a=x-1");
  env.es[1].named("token_expired", { type: "token_expired", message: "m" });
  await settle();
  await settle();
  assert.equal(env.es.length, 3);
  assert.equal(query(env.es[2].url).get("token"), "t3");
  assert.equal(query(env.es[2].url).get("last_event_id"), "a=x-1");
  assert.equal(relay.stats.tokenRefreshes, 2);

  const wenv = fakeEnv();
  const w = await client(wenv, { token: undefined, getToken, transport: "websocket" });
  wenv.ws[0].recv({ type: "connection_established", channels: ["a", "b"], cursor: "a=x-1,b=y-1" });
  wenv.ws[0].drop(4002, "token expired");
  await settle();
  await settle();
  assert.equal(wenv.ws.length, 2);
  assert.equal(query(wenv.ws[1].url).get("last_event_id"), "a=x-1,b=y-1");
  assert.notEqual(query(wenv.ws[1].url).get("token"), query(wenv.ws[0].url).get("token"));
  wenv.ws[1].drop(4001, "unauthorized"); // refused again before opening: now with backoff
  await settle();
  await settle();
  assert.equal(wenv.ws.length, 2);
  assert.equal(w.relay.state.status, "reconnecting");
});

test("a refused token (403 / 4003) stops retrying and says why", async () => {
  const env = fakeEnv({ answer: () => ({ status: 403, body: { error: "forbidden", message: "this token may not read channel b" } }) });
  const { relay } = await client(env);
  const errors = [];
  relay.on("error", (e) => errors.push(e));
  env.es[0].fail();
  await settle();
  await settle();
  assert.equal(relay.state.status, "closed");
  assert.deepEqual(relay.state.error, { error: "forbidden", message: "this token may not read channel b", fatal: true });
  assert.ok(errors.some((e) => e.fatal));
  await env.advance(120000);
  assert.equal(env.es.length, 1, "no retry");

  const wenv = fakeEnv();
  const w = await client(wenv, { transport: "websocket" });
  wenv.ws[0].drop(4003, "forbidden: no");
  await wenv.advance(120000);
  assert.equal(w.relay.state.status, "closed");
  assert.equal(w.relay.state.error.error, "forbidden");
  assert.equal(wenv.ws.length, 1);
});

test("without getToken, an expired token stops", async () => {
  const env = fakeEnv();
  const { relay } = await client(env, { transport: "websocket" });
  env.ws[0].drop(4002, "expired");
  await settle();
  assert.equal(relay.state.status, "closed");
  assert.equal(relay.state.error.error, "token_expired");
});

test("actions go over the WebSocket when it is open, else over HTTP with the bearer token", async () => {
  const env = fakeEnv({ answer: () => ({ status: 200, body: { ids: ["x-1"], unread_count: 0 } }) });
  const { relay } = await client(env, { transport: "websocket" });
  env.ws[0].recv({ type: "connection_established", channels: ["a", "b"], cursor: "" });
  await relay.typing(1, 5, true);
  await relay.viewing("1", null);
  await relay.markRead(["x-1", "k"]);
  assert.deepEqual(env.ws[0].sent, [
    { type: "typing", project_id: "1", ticket_id: 5, is_typing: true },
    { type: "viewing", project_id: "1", ticket_id: null },
    { type: "mark_read", id: "x-1" },
    { type: "mark_read", id: "k" },
  ]);
  assert.equal(env.fetches.length, 0);

  const senv = fakeEnv({ answer: () => ({ status: 200, body: { ids: ["x-1"], unread_count: 0 } }) });
  const s = await client(senv);
  senv.es[0].open();
  await s.relay.typing(1, 5, true);
  const res = await s.relay.markRead("x-1");
  await s.relay.markAllRead();
  assert.deepEqual(res, { ids: ["x-1"], unread_count: 0 });
  const calls = senv.fetches.map((f) => [f.init.method, f.url.replace("http://relay.test", ""), f.init.body, f.init.headers.Authorization]);
  assert.deepEqual(calls, [
    ["POST", "/api/projects/1/presence", '{"type":"typing","ticket_id":5,"is_typing":true}', "Bearer t0"],
    ["POST", "/api/notifications/read", '{"ids":["x-1"]}', "Bearer t0"],
    ["POST", "/api/notifications/read", '{"all":true}', "Bearer t0"],
  ]);
  await assert.rejects(s.relay.send({ type: "custom" }), /WebSocket/);
});

test("ping over WebSocket waits for the pong", async () => {
  const env = fakeEnv();
  const { relay } = await client(env, { transport: "websocket" });
  env.ws[0].recv({ type: "connection_established", channels: ["a", "b"], cursor: "" });
  const p = relay.ping();
  await settle();
  const sent = env.ws[0].sent[0];
  assert.equal(sent.type, "ping");
  env.clock += 7;
  env.ws[0].recv({ type: "pong", timestamp: sent.timestamp });
  assert.equal(await p, 7);
});

test("adding a channel reconnects once, resuming the others; removing all disconnects", async () => {
  const env = fakeEnv();
  const { relay } = await client(env, { channels: ["a"] });
  env.es[0].open();
  env.es[0].message(ev("a", "x-3"), "x-3");
  const off1 = relay.subscribe(["b"], () => {});
  const off2 = relay.subscribe(["c"], () => {});
  await settle();
  assert.equal(env.es.length, 2, "one reconnect for two subscribes in a tick");
  assert.ok(env.es[0].closed);
  assert.deepEqual(query(env.es[1].url).getAll("channel"), ["a", "b", "c"]);
  assert.equal(query(env.es[1].url).get("last_event_id"), "a=x-3");
  off1();
  off2();
  await settle();
  assert.deepEqual(query(env.es[2].url).getAll("channel"), ["a"]);
  assert.equal(query(env.es[2].url).get("last_event_id"), "x-3");
  relay.close();
  assert.ok(env.es[2].closed);
  assert.equal(relay.state.status, "closed");
});

test("the initial cursor option replays from where the app says", async () => {
  const env = fakeEnv();
  await client(env, { cursor: "0" });
  assert.equal(query(env.es[0].url).get("last_event_id"), "a=0,b=0");
});

test("state then stream: subscribe({cursor}) on a new channel starts the connection there", async () => {
  const env = fakeEnv();
  const relay = new Relay({ url: "http://relay.test", token: "t0", env: env.api, pingInterval: 0 });
  const got = [];
  relay.subscribe("tickets", (m) => got.push(m.id), { cursor: "e-4" });
  await settle();
  assert.equal(env.es.length, 1);
  assert.equal(query(env.es[0].url).get("last_event_id"), "e-4", "resumes after the state's cursor");
  env.es[0].open();
  env.es[0].message(ev("tickets", "e-5"), "e-5");
  assert.deepEqual(got, ["e-5"]);
  relay.close();
});

test("state then stream: a later subscriber with an older cursor gets the replay; the others see nothing twice", async () => {
  const env = fakeEnv();
  const { relay, got } = await client(env, { channels: ["a", "b"] });
  env.es[0].open();
  env.es[0].message(ev("a", "x-1"), "a=x-1,b=y-7");
  env.es[0].message(ev("a", "x-2"), "a=x-2,b=y-7");
  const late = [];
  relay.subscribe(["a"], (m) => late.push(m.id), { cursor: "x-0" });
  await settle();
  assert.equal(env.es.length, 2, "the connection reopens from the older position");
  assert.ok(env.es[0].closed);
  assert.equal(query(env.es[1].url).get("last_event_id"), "a=x-0,b=y-7", "the other channel resumes where it was");
  env.es[1].open();
  for (const id of ["x-1", "x-2", "x-3"]) env.es[1].message(ev("a", id), "a=" + id + ",b=y-7");
  assert.deepEqual(late, ["x-1", "x-2", "x-3"], "the late subscriber gets every event after its cursor");
  assert.deepEqual(got.map((m) => m.id), ["x-1", "x-2", "x-3"], "the first subscriber gets each event once");

  // A cursor at or after the connection's position needs no reconnect: the
  // subscriber skips what its state already holds.
  const later = [];
  relay.subscribe(["a"], (m) => later.push(m.id), { cursor: "x-4" });
  await settle();
  assert.equal(env.es.length, 2, "no reconnect for a cursor ahead of the connection");
  env.es[1].message(ev("a", "x-4"), "a=x-4,b=y-7");
  env.es[1].message(ev("a", "x-5"), "a=x-5,b=y-7");
  assert.deepEqual(later, ["x-5"]);
  relay.close();
});

test("state then stream: a cursor relay cannot answer calls that subscriber's onReset", async () => {
  const env = fakeEnv();
  const relay = new Relay({ url: "http://relay.test", token: "t0", env: env.api, pingInterval: 0 });
  const resets = [];
  const got = [];
  relay.subscribe(["tickets"], (m) => got.push(m.id), { cursor: "old-9", onReset: (r) => resets.push(r) });
  await settle();
  env.es[0].open();
  env.es[0].named("reset", { type: "reset", channel: "tickets", id: "new-3", message: "history gone" }, "new-3");
  assert.deepEqual(resets.map((r) => [r.channel, r.id]), [["tickets", "new-3"]]);
  env.es[0].message(ev("tickets", "new-4"), "new-4");
  assert.deepEqual(got, ["new-4"]);
  relay.close();
});
