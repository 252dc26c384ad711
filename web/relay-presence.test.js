// Unit tests of presence paging in relay-stores.js: a large project's
// presence_state lists the first users and says more; the store reads the
// rest over HTTP, page by page, while live events keep applying. node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { PRESENCE_PAGE, PresenceStore, presenceReduce, presenceView } from "./relay-stores.js";
import { Relay } from "./relay.js";

const T = 6000;
const u = (id, extra = {}) => ({ user_id: id, username: "user " + id, viewing: null, typing: null, ...extra });
const ids = (s) => presenceView(s).users.map((x) => x.user_id);

test("presence paging: live events while pages are due win over what the pages say", () => {
  let s = presenceReduce(undefined, { type: "presence_state", users: [u("1"), u("2")], count: 6, more: true }, 0, T);
  assert.equal(presenceView(s).loaded, false, "not loaded while pages are due");
  const gen = s.gen;

  // Live, before the pages come: 4 leaves, 5 views ticket 9, 7 joins.
  s = presenceReduce(s, { type: "user_status", action: "left", user_id: "4", username: "user 4" }, 1, T);
  s = presenceReduce(s, { type: "viewing", user_id: "5", username: "user 5", ticket_id: 9 }, 2, T);
  s = presenceReduce(s, { type: "user_status", action: "joined", user_id: "7", username: "user 7" }, 3, T);

  assert.equal(presenceReduce(s, { type: "page", gen: gen - 1, users: [u("9")], more: false }, 4, T), s, "a page of an older state is dropped");

  // Pages read before those events: 4 still there, 5 viewing nothing.
  s = presenceReduce(s, { type: "page", gen, users: [u("3"), u("4")], more: true }, 5, T);
  assert.equal(presenceView(s).loaded, false);
  s = presenceReduce(s, { type: "page", gen, users: [u("5", { typing: 2 }), u("6")], more: false }, 6, T);
  const v = presenceView(s);
  assert.equal(v.loaded, true);
  assert.deepEqual(ids(s), ["1", "2", "3", "5", "6", "7"], "every user once; the one who left stays gone");
  assert.deepEqual(v.viewing[9].map((x) => x.user_id), ["5"], "the live view wins over the page's");
  assert.deepEqual(v.typing[2].map((x) => x.user_id), ["5"], "what the live events did not say comes from the page");
  assert.equal(presenceReduce(s, { type: "page", gen, users: [u("8")], more: false }, 7, T), s, "no page after the last");

  // A state without more is whole at once.
  s = presenceReduce(s, { type: "presence_state", users: [u("1")], count: 1, more: false }, 8, T);
  assert.equal(presenceView(s).loaded, true);
  assert.equal(s.paging, null);
});

// relayWith is a Relay over a fake WebSocket whose fetch answers GET
// /api/projects/1/presence from online (sorted by user id), as relay does.
function relayWith(online, { fail = () => false } = {}) {
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
  const asked = [];
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
      fetch: async (url) => {
        const q = new URL(url);
        assert.equal(q.pathname, "/api/projects/1/presence");
        const after = q.searchParams.get("after") || "";
        const limit = Number(q.searchParams.get("limit") || 200);
        asked.push({ after, limit });
        if (fail(asked.length)) return { status: 503, ok: false, statusText: "x", text: async () => '{"error":"store_unavailable","message":"x"}' };
        const rest = online.filter((x) => x.user_id > after);
        const body = { project_id: "1", users: rest.slice(0, limit), count: online.length, more: rest.length > limit };
        return { status: 200, ok: true, text: async () => JSON.stringify(body) };
      },
    },
  });
  const push = (msg) => sockets.at(-1).onmessage({ data: JSON.stringify(msg) });
  const open = () => push({ type: "connection_established", channels: ["project_1_presence"], cursor: "" });
  return { relay, asked, push, open };
}

// settled waits until the store's view is loaded, or fails.
async function settled(store) {
  for (let i = 0; i < 200 && !store.getSnapshot().loaded; i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(store.getSnapshot().loaded, "the store read every page");
}

const many = (n) => Array.from({ length: n }, (_, i) => u(String(10000 + i)));

test("PresenceStore reads the pages after a presence_state that says more", async () => {
  const online = many(2500);
  const f = relayWith(online);
  const store = new PresenceStore(f.relay, { projectId: 1 }).start();
  await new Promise((r) => setTimeout(r, 0));
  f.open();
  f.push({ channel: "project_1_presence", ts: "t", type: "presence_state", project_id: "1", users: online.slice(0, 100), count: 2500, more: true });
  f.push({ channel: "project_1_presence", ts: "t", type: "user_status", action: "left", user_id: "10500", username: "x" });
  await settled(store);
  assert.deepEqual(f.asked, [
    { after: "10099", limit: PRESENCE_PAGE },
    { after: "11099", limit: PRESENCE_PAGE },
    { after: "12099", limit: PRESENCE_PAGE },
  ]);
  const got = store.getSnapshot().users.map((x) => x.user_id);
  assert.equal(got.length, 2499);
  assert.equal(new Set(got).size, 2499, "each user once");
  assert.ok(!got.includes("10500"), "the user who left meanwhile is not brought back by a page");
  store.close();
  f.relay.close();
});

test("PresenceStore: a presence_state without more needs no request; a failed page leaves the list partial until the next state", async () => {
  const online = many(300);
  const f = relayWith(online, { fail: (n) => n === 1 });
  const store = new PresenceStore(f.relay, { projectId: 1 }).start();
  await new Promise((r) => setTimeout(r, 0));
  f.open();
  f.push({ channel: "project_1_presence", ts: "t", type: "presence_state", users: online.slice(0, 2), count: 2, more: false });
  assert.equal(store.getSnapshot().loaded, true);
  assert.deepEqual(f.asked, []);

  f.push({ channel: "project_1_presence", ts: "t", type: "presence_state", users: online.slice(0, 100), count: 300, more: true });
  for (let i = 0; i < 50 && f.asked.length < 1; i++) await new Promise((r) => setTimeout(r, 1));
  await new Promise((r) => setTimeout(r, 5)); // a few turns for a retry, which must not come
  assert.equal(f.asked.length, 1);
  assert.equal(store.getSnapshot().loaded, false);
  assert.equal(store.getSnapshot().users.length, 100);

  // The reconnect's state reads the rest.
  f.push({ channel: "project_1_presence", ts: "t", type: "presence_state", users: online.slice(0, 100), count: 300, more: true });
  await settled(store);
  assert.equal(store.getSnapshot().users.length, 300);
  store.close();
  f.relay.close();
});
