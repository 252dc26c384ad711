// Unit tests of relay-core.js: node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  backoffDelay, buildCursor, chooseTransport, httpAction, isDuplicate, kindOf, normalizeBackoff, parseCursor,
  parseId, probeAction, sseEventAction, streamURL, tokenSubject, wsCloseAction,
} from "./relay-core.js";

test("backoff grows exponentially up to max, with full jitter", () => {
  const b = { initial: 100, max: 1000, factor: 2 };
  const cases = [
    { name: "first retry", attempt: 0, cap: 100 },
    { name: "second", attempt: 1, cap: 200 },
    { name: "fourth", attempt: 3, cap: 800 },
    { name: "capped", attempt: 4, cap: 1000 },
    { name: "far out stays capped", attempt: 500, cap: 1000 },
  ];
  for (const c of cases) {
    assert.equal(backoffDelay(c.attempt, b, () => 0), 0, c.name + ": random 0 gives 0 (full jitter)");
    assert.equal(backoffDelay(c.attempt, b, () => 0.999999), c.cap - 1, c.name + ": random ~1 gives the cap");
    assert.equal(backoffDelay(c.attempt, b, () => 0.5), c.cap / 2, c.name + ": half");
  }
});

test("backoff draws are spread over the whole window", () => {
  const b = { initial: 1000, max: 1000 };
  const seen = new Set();
  for (let i = 0; i < 200; i++) seen.add(Math.floor(backoffDelay(0, b) / 100));
  assert.ok(seen.size >= 8, `got ${seen.size} of 10 deciles in 200 draws, want the window covered`);
});

test("backoff bounds are normalised", () => {
  assert.deepEqual(normalizeBackoff(), { initial: 500, max: 30000, factor: 2 });
  assert.deepEqual(normalizeBackoff({ initial: 2000, max: 10 }), { initial: 2000, max: 2000, factor: 2 });
  assert.deepEqual(normalizeBackoff({ initial: -5, factor: 0.5 }), { initial: 1, max: 30000, factor: 1 });
});

test("parseId", () => {
  assert.deepEqual(parseId("k3j9x2ab7q-42"), { epoch: "k3j9x2ab7q", seq: 42 });
  assert.deepEqual(parseId("0"), { epoch: "", seq: 0 });
  for (const bad of ["", "k3-", "-4", "K3-4", "a-b", "a=b", undefined, 7]) assert.equal(parseId(bad), null, String(bad));
});

test("isDuplicate compares within an epoch only", () => {
  const cases = [
    ["same id", "abc-5", "abc-5", true],
    ["older", "abc-5", "abc-4", true],
    ["next", "abc-5", "abc-6", false],
    ["new epoch", "abc-5", "xyz-1", false],
    ["no position", undefined, "abc-1", false],
    ["from the beginning", "0", "abc-1", false],
  ];
  for (const [name, cur, id, want] of cases) assert.equal(isDuplicate(cur, id), want, name);
});

test("parseCursor reads every form the server writes", () => {
  const two = ["project_1_tickets", "user_1_notifications"];
  const cases = [
    ["empty", "", two, {}],
    ["zero: every channel from the oldest", "0", two, { project_1_tickets: "0", user_1_notifications: "0" }],
    ["bare id on one channel", "abc-3", ["c"], { c: "abc-3" }],
    ["bare id on several channels is ambiguous", "abc-3", two, {}],
    ["pairs", "project_1_tickets=abc-3,user_1_notifications=def-9", two, { project_1_tickets: "abc-3", user_1_notifications: "def-9" }],
    ["pairs with a 0", "project_1_tickets=0,user_1_notifications=def-9", two, { project_1_tickets: "0", user_1_notifications: "def-9" }],
    ["other channels ignored", "other=abc-1,user_1_notifications=def-9", two, { user_1_notifications: "def-9" }],
    ["malformed parts skipped", "project_1_tickets=nope,=x,user_1_notifications=def-9", two, { user_1_notifications: "def-9" }],
  ];
  for (const [name, text, chans, want] of cases) assert.deepEqual(parseCursor(text, chans), want, name);
});

test("buildCursor writes what the server reads", () => {
  const cases = [
    ["one channel: bare id", ["a"], { a: "e-1" }, "e-1"],
    ["one channel unknown", ["a"], {}, ""],
    ["several: pairs in channel order", ["b", "a"], { a: "e-1", b: "f-2" }, "b=f-2,a=e-1"],
    ["unknown channels left out (live only)", ["a", "b", "c"], { a: "e-1", c: "0" }, "a=e-1,c=0"],
    ["none known", ["a", "b"], {}, ""],
  ];
  for (const [name, chans, pos, want] of cases) assert.equal(buildCursor(chans, pos), want, name);
});

test("cursor round trip", () => {
  const chans = ["project_1_tickets", "project_1_presence", "user_1_notifications"];
  const pos = { project_1_tickets: "k3j9x2ab7q-42", project_1_presence: "0", user_1_notifications: "p0q9w8e7r6-3" };
  assert.deepEqual(parseCursor(buildCursor(chans, pos), chans), pos);
});

test("chooseTransport: SSE first, WebSocket when SSE is missing, fails or is not wanted", () => {
  const both = { hasEventSource: true, hasWebSocket: true };
  const cases = [
    ["auto picks SSE", { ...both }, "sse"],
    ["auto after one SSE failure still SSE", { ...both, sseFailures: 1, limit: 2 }, "sse"],
    ["auto after N SSE failures: WebSocket", { ...both, sseFailures: 2, limit: 2 }, "websocket"],
    ["no EventSource: WebSocket", { hasEventSource: false, hasWebSocket: true }, "websocket"],
    ["asked for WebSocket", { ...both, preference: "websocket" }, "websocket"],
    ["asked for SSE, even after failures", { ...both, preference: "sse", sseFailures: 9 }, "sse"],
    ["asked for SSE without EventSource", { hasEventSource: false, hasWebSocket: true, preference: "sse" }, null],
    ["nothing", { hasEventSource: false, hasWebSocket: false }, null],
    ["SSE failed but no WebSocket: keep trying SSE", { hasEventSource: true, hasWebSocket: false, sseFailures: 5 }, "sse"],
  ];
  for (const [name, args, want] of cases) assert.equal(chooseTransport(args), want, name);
});

test("wsCloseAction follows relay's close codes", () => {
  const cases = [
    [4000, "stop", "bad_request"],
    [4001, "refresh", "unauthorized"],
    [4002, "refresh", "token_expired"],
    [4003, "stop", "forbidden"],
    [4004, "stop", "not_found"],
    [4008, "retry", "slow_consumer"],
    [1001, "retry", "shutdown"],
    [1011, "retry", "server_error"],
    [1006, "retry", "disconnected"],
  ];
  for (const [code, action, error] of cases) {
    const got = wsCloseAction(code, "why");
    assert.equal(got.action, action, `code ${code}`);
    assert.equal(got.error, error, `code ${code}`);
    assert.equal(got.message, "why");
  }
});

test("sseEventAction", () => {
  assert.equal(sseEventAction("token_expired").action, "refresh");
  assert.equal(sseEventAction("shutdown").action, "retry");
  assert.equal(sseEventAction("slow_consumer").action, "retry");
  assert.equal(sseEventAction("error").error, "server_error");
});

test("probeAction decides after an EventSource failed before opening", () => {
  const cases = [
    ["unreachable", 0, null, "retry"],
    ["accepted: SSE itself is blocked", 200, { channels: ["a"] }, "sse-failed"],
    ["unauthorized", 401, { error: "unauthorized", message: "m" }, "refresh"],
    ["expired", 401, { error: "token_expired" }, "refresh"],
    ["forbidden", 403, { error: "forbidden", message: "not yours" }, "stop"],
    ["bad request", 400, { error: "bad_request" }, "stop"],
    ["a relay without the JSON answer", 406, { error: "not_acceptable" }, "sse-failed"],
    ["server fault", 500, null, "retry"],
    ["draining", 503, { error: "shutting_down" }, "retry"],
  ];
  for (const [name, status, body, want] of cases) assert.equal(probeAction(status, body).action, want, name);
  assert.equal(probeAction(403, { error: "forbidden", message: "not yours" }).message, "not yours");
});

test("streamURL", () => {
  assert.equal(
    streamURL("http://h:1/", ["a", "b c"], { token: "t/k", cursor: "a=e-1,b c=f-2" }),
    "http://h:1/events?channel=a&channel=b%20c&token=t%2Fk&last_event_id=a%3De-1%2Cb%20c%3Df-2",
  );
  assert.equal(streamURL("https://h", ["a"], { websocket: true }), "wss://h/events?channel=a");
  assert.equal(streamURL("http://h", ["a"], { websocket: true, cursor: "e-1" }), "ws://h/events?channel=a&last_event_id=e-1");
});

test("kindOf tells events, ephemeral events and control messages apart", () => {
  const cases = [
    ["envelope", { id: "e-1", channel: "c", ts: "t", type: "ticket_update" }, "event"],
    ["ephemeral", { channel: "c", ts: "t", type: "typing" }, "ephemeral"],
    ["presence_state", { channel: "c", ts: "t", type: "presence_state", users: [] }, "ephemeral"],
    ["reset has an id but no ts", { type: "reset", channel: "c", id: "e-1", message: "m" }, "control"],
    ["connection_established", { type: "connection_established", channels: [], cursor: "" }, "control"],
    ["pong", { type: "pong", timestamp: 1 }, "control"],
  ];
  for (const [name, msg, want] of cases) assert.equal(kindOf(msg), want, name);
});

test("httpAction maps client actions to relay's HTTP calls", () => {
  assert.deepEqual(httpAction({ type: "typing", project_id: "1", ticket_id: 5, is_typing: true }), {
    method: "POST", path: "/api/projects/1/presence", body: { type: "typing", ticket_id: 5, is_typing: true },
  });
  assert.deepEqual(httpAction({ type: "viewing", project_id: 1, ticket_id: null }), {
    method: "POST", path: "/api/projects/1/presence", body: { type: "viewing", ticket_id: null },
  });
  assert.deepEqual(httpAction({ type: "mark_read", id: "e-1" }), { method: "POST", path: "/api/notifications/read", body: { ids: ["e-1"] } });
  assert.equal(httpAction({ type: "ping", timestamp: 1 }).path, "/healthz");
  assert.equal(httpAction({ type: "typing", ticket_id: 5 }), null, "no project");
  assert.equal(httpAction({ type: "custom" }), null);
});

test("tokenSubject reads sub, else user_id, without verifying", () => {
  const jwt = (claims) => "h." + Buffer.from(JSON.stringify(claims)).toString("base64url") + ".s";
  assert.equal(tokenSubject(jwt({ sub: "1", name: "alice" })), "1");
  assert.equal(tokenSubject(jwt({ user_id: 42 })), "42");
  assert.equal(tokenSubject(jwt({ sub: "a", user_id: 2 })), "a");
  assert.equal(tokenSubject("not-a-jwt"), "");
  assert.equal(tokenSubject("a.%%%.c"), "");
});
