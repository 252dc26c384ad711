// Unit tests of relay-stores.js: node --test web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { notificationsReduce, presenceReduce, presenceView } from "./relay-stores.js";

const n = (id, extra = {}) => ({ id, channel: "user_1_notifications", ts: "t", type: "notification_message", data: { id: "k" + id }, ...extra });

test("notifications: history, live ones on top, no doubles, counts", () => {
  let s = notificationsReduce(undefined, { type: "loaded", page: { notifications: [n("e-2", { read: false }), n("e-1", { read: true })], unread_count: 1, more: true } });
  assert.equal(s.loading, false);
  assert.equal(s.unreadCount, 1);
  assert.equal(s.more, true);
  s = notificationsReduce(s, { type: "event", msg: n("e-3") });
  s = notificationsReduce(s, { type: "event", msg: n("e-3") });
  assert.deepEqual(s.notifications.map((x) => x.id), ["e-3", "e-2", "e-1"]);
  assert.equal(s.unreadCount, 2);
  const same = notificationsReduce(s, { type: "event", msg: { channel: "c", ts: "t", type: "typing" } });
  assert.equal(same, s, "ephemeral messages are no notifications");
});

test("notifications: mark read here (by envelope id or data.id), then relay's notification_read is authoritative", () => {
  let s = notificationsReduce(undefined, { type: "loaded", page: { notifications: [n("e-3"), n("e-2"), n("e-1")], unread_count: 3 } });
  s = notificationsReduce(s, { type: "markRead", ids: ["ke-2"] });
  assert.equal(s.unreadCount, 2);
  assert.equal(s.notifications[1].read, true);
  assert.equal(notificationsReduce(s, { type: "markRead", ids: ["ke-2"] }), s, "marking twice changes nothing");
  // another tab marked e-3: the event carries envelope ids and the count
  s = notificationsReduce(s, { type: "event", msg: { id: "e-4", channel: "user_1_notifications", ts: "t", type: "notification_read", ids: ["e-3"], unread_count: 1 } });
  assert.equal(s.unreadCount, 1);
  assert.deepEqual(s.notifications.map((x) => x.read), [true, true, false]);
  assert.equal(s.notifications.length, 3, "notification_read is not itself a notification");
  s = notificationsReduce(s, { type: "markAllRead" });
  assert.equal(s.unreadCount, 0);
  assert.ok(s.notifications.every((x) => x.read));
});

test("notifications: older pages append without doubles", () => {
  let s = notificationsReduce(undefined, { type: "loaded", page: { notifications: [n("e-3"), n("e-2")], unread_count: 2, more: true } });
  s = notificationsReduce(s, { type: "more", page: { notifications: [n("e-2"), n("e-1")], more: false } });
  assert.deepEqual(s.notifications.map((x) => x.id), ["e-3", "e-2", "e-1"]);
  assert.equal(s.more, false);
});

test("presence: state, joins and leaves, viewing, typing that runs out", () => {
  const T = 6000;
  let s = presenceReduce(undefined, { type: "presence_state", users: [{ user_id: "1", username: "alice", viewing: 5, typing: null }] }, 0, T);
  s = presenceReduce(s, { type: "user_status", action: "joined", user_id: "2", username: "bob" }, 10, T);
  s = presenceReduce(s, { type: "user_status", action: "joined", user_id: "2", username: "bob" }, 10, T);
  let v = presenceView(s);
  assert.deepEqual(v.users.map((u) => u.username), ["alice", "bob"]);
  assert.deepEqual(Object.keys(v.viewing), ["5"]);

  s = presenceReduce(s, { type: "viewing", user_id: "2", username: "bob", ticket_id: 5 }, 20, T);
  s = presenceReduce(s, { type: "typing", user_id: "2", username: "bob", ticket_id: 5, is_typing: true }, 1000, T);
  v = presenceView(s);
  assert.deepEqual(v.viewing[5].map((u) => u.username), ["alice", "bob"]);
  assert.deepEqual(v.typing[5].map((u) => u.username), ["bob"]);

  assert.equal(presenceReduce(s, { type: "expire" }, 1000 + T - 1, T), s, "still typing just before the timeout");
  const expired = presenceReduce(s, { type: "expire" }, 1000 + T, T);
  assert.deepEqual(presenceView(expired).typing, {});

  // a refresh extends it; is_typing false ends it at once
  s = presenceReduce(s, { type: "typing", user_id: "2", username: "bob", ticket_id: 5, is_typing: true }, 5000, T);
  assert.deepEqual(Object.keys(presenceView(presenceReduce(s, { type: "expire" }, 7000, T)).typing), ["5"]);
  s = presenceReduce(s, { type: "typing", user_id: "2", username: "bob", ticket_id: 5, is_typing: false }, 5100, T);
  assert.deepEqual(presenceView(s).typing, {});

  // relay ends typing that was not refreshed with ticket_id null
  s = presenceReduce(s, { type: "typing", user_id: "2", username: "bob", ticket_id: 5, is_typing: true }, 5200, T);
  s = presenceReduce(s, { type: "typing", user_id: "2", username: "bob", ticket_id: 6, is_typing: false }, 5300, T);
  assert.deepEqual(Object.keys(presenceView(s).typing), ["5"], "a stop for another ticket changes nothing");
  s = presenceReduce(s, { type: "typing", user_id: "2", username: "bob", ticket_id: null, is_typing: false }, 5400, T);
  assert.deepEqual(presenceView(s).typing, {});

  s = presenceReduce(s, { type: "user_status", action: "left", user_id: "1", username: "alice" }, 6000, T);
  assert.deepEqual(presenceView(s).users.map((u) => u.username), ["bob"]);
  s = presenceReduce(s, { type: "viewing", user_id: "2", username: "bob", ticket_id: null }, 6100, T);
  assert.deepEqual(presenceView(s).viewing, {});
});
