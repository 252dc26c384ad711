"""relay_django against the real relay binary (started by tests.runner)."""

import asyncio
import io
import json
import threading
import types
import urllib.error
import urllib.request
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import TestCase, override_settings
from django.utils import timezone

import relay_django
from relay_django import RelayError
from relay_django.layers import RelayChannelLayer

from . import membership, relayproc


def relay_get(path, token, accept="application/json"):
    req = urllib.request.Request(relayproc.RELAY.url + path, headers={"Authorization": "Bearer " + token, "Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def publishers():
    return [t for t in threading.enumerate() if t.name == "relay-publisher"]


class LiveCase(TestCase):
    def setUp(self):
        User = get_user_model()
        self.alice = User.objects.create_user("alice", password="pw", first_name="Alice", last_name="A")
        self.bob = User.objects.create_user("bob", password="pw")
        membership.MEMBERS.clear()
        membership.MEMBERS.update({"alice": {"1"}, "bob": {"2"}})
        self.addCleanup(membership.MEMBERS.clear)
        self.token = str(relay_django.tokens.RelayAccessToken.for_user(self.alice))

    def subscribe(self, *channels):
        s = relayproc.Subscriber(self.token, channels)
        self.addCleanup(s.close)
        return s

    def layer(self, url, **config):
        layer = RelayChannelLayer(url=url, **config)
        self.addCleanup(lambda: async_to_sync(layer.close)())
        return layer

    def proxy(self):
        p = relayproc.Proxy(relayproc.RELAY.url)
        self.addCleanup(p.close)
        return p

    def assert_once(self, sub, marker_channel="project_1_tickets"):
        """Publish a marker after what was sent, wait for it, and return the
        messages before it: a duplicate would have arrived by then."""
        relay_django.publish(marker_channel, "marker")
        sub.wait_for_type("marker")
        msgs = sub.messages()
        return msgs[: [m["type"] for m in msgs].index("marker")]


import relay_django.tokens  # noqa: E402  (after settings)


class SeedSnippetsTest(LiveCase):
    def test_seed_group_sends_reach_the_subscriber_once_as_sent(self):
        user_id, project_id, ticket_id = self.alice.pk, 1, 5
        sub = self.subscribe("user_%d_notifications" % user_id, "project_1_tickets", "project_1_presence")
        ticket = types.SimpleNamespace(id=ticket_id, title="Printer on fire", status=types.SimpleNamespace(name="Done"))
        request = types.SimpleNamespace(user=self.alice)

        # --- the seed's snippets, unchanged ---
        channel_layer = get_channel_layer()

        # Send notification to specific user
        async_to_sync(channel_layer.group_send)(
            f'user_{user_id}_notifications',
            {
                'type': 'notification_message',
                'data': {
                    'id': str(uuid.uuid4()),
                    'notification_type': 'ticket_assigned',
                    'title': 'Ticket Assigned',
                    'message': f'You were assigned to ticket #{ticket_id}',
                    'timestamp': timezone.now().isoformat(),
                }
            }
        )

        # Broadcast to all users watching this project
        async_to_sync(channel_layer.group_send)(
            f'project_{project_id}_tickets',
            {
                'type': 'ticket_update',
                'action': 'updated',  # or 'created', 'deleted'
                'data': {
                    'ticket_id': ticket.id,
                    'title': ticket.title,
                    'status': ticket.status.name,
                    'updated_by': request.user.username,
                }
            }
        )

        # Test notification (the seed's "Test from Django Shell"; its user is 1)
        async_to_sync(channel_layer.group_send)(
            f'user_{user_id}_notifications',  # Replace with actual user ID
            {
                'type': 'notification_message',
                'data': {
                    'id': '123',
                    'notification_type': 'general',
                    'title': 'Test',
                    'message': 'This is a test notification',
                    'timestamp': '2025-11-05T12:00:00Z',
                }
            }
        )
        # --- end of the seed's snippets ---

        # Presence: the seed has no group_send for it, only the message its
        # clients read ({"type": "user_status", "action", "username"}).
        async_to_sync(channel_layer.group_send)(
            f'project_{project_id}_presence',
            {'type': 'user_status', 'action': 'joined', 'user_id': str(self.bob.pk), 'username': 'bob'},
        )

        # relay announces the subscriber itself joining project 1's presence
        # (when its hold is new): that event is relay's, not ours.
        got = [m for m in self.assert_once(sub) if not (m["type"] == "user_status" and m["user_id"] == str(user_id))]
        self.assertEqual([m["type"] for m in got], ["notification_message", "ticket_update", "notification_message", "user_status"])
        self.assertEqual(got[0]["channel"], "user_%d_notifications" % user_id)
        self.assertEqual(got[0]["data"]["title"], "Ticket Assigned")
        self.assertEqual(got[0]["data"]["message"], "You were assigned to ticket #5")
        self.assertEqual(got[1], {**got[1], "channel": "project_1_tickets", "action": "updated", "data": {
            "ticket_id": 5, "title": "Printer on fire", "status": "Done", "updated_by": "alice"}})
        self.assertEqual(got[2]["data"], {"id": "123", "notification_type": "general", "title": "Test",
                                          "message": "This is a test notification", "timestamp": "2025-11-05T12:00:00Z"})
        self.assertEqual({k: got[3][k] for k in ("channel", "action", "user_id", "username")},
                         {"channel": "project_1_presence", "action": "joined", "user_id": str(self.bob.pk), "username": "bob"})
        for m in got:
            self.assertNotIn("idempotency_key", m)
            self.assertTrue(m["id"] and m["ts"])
        self.assertEqual(len({m["id"] for m in got}), 4)

    def test_publish_helpers_sync_and_async(self):
        sub = self.subscribe("project_1_tickets")
        id1 = relay_django.publish("project_1_tickets", "ticket_update", action="created", data={"ticket_id": 7})
        id2 = async_to_sync(relay_django.apublish)("project_1_tickets", "ticket_update", action="deleted", data={"ticket_id": 7})
        got = self.assert_once(sub)
        self.assertEqual([(m["id"], m["action"]) for m in got], [(id1, "created"), (id2, "deleted")])


class BatchingTest(LiveCase):
    def test_concurrent_group_sends_share_requests(self):
        proxy = self.proxy()
        layer = self.layer(proxy.url, batch_window=0.02)
        sub = self.subscribe("project_1_tickets")
        n = 100
        # One event loop: a gather of group_sends.
        async def burst():
            return await asyncio.gather(*(layer.group_send("project_1_tickets", {"type": "t", "n": i}) for i in range(n)))
        ids = async_to_sync(burst)()
        self.assertEqual(len(proxy.requests), 1, "one loop tick's group_sends are one request")
        # Threads, as Django's request threads call async_to_sync.
        before = len(proxy.requests)
        out, errs = {}, []
        def send(i):
            try:
                out[i] = async_to_sync(layer.group_send)("project_1_tickets", {"type": "t", "n": n + i})
            except Exception as e:  # reported below
                errs.append(e)
        threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errs, [])
        threaded = len(proxy.requests) - before
        print("\nbatching: %d gathered group_sends -> 1 request; %d threaded -> %d requests" % (n, n, threaded))
        self.assertLess(threaded, n // 2, "concurrent threads' group_sends should share requests")
        got = self.assert_once(sub)
        self.assertEqual(sorted(m["n"] for m in got), list(range(2 * n)))
        self.assertEqual(sorted(m["id"] for m in got), sorted(ids + list(out.values())))
        self.assertEqual([m["n"] for m in got[:n]], list(range(n)), "one caller's events keep their order")

    def test_a_bad_event_fails_alone(self):
        layer = self.layer(relayproc.RELAY.url, batch_window=0.02)
        sub = self.subscribe("project_1_tickets")
        async def burst():
            return await asyncio.gather(
                layer.group_send("project_1_tickets", {"type": "ok", "n": 1}),
                layer.group_send("reports", {"type": "not covered by the key"}),
                layer.group_send("project_1_tickets", {"type": "ok", "n": 2}),
                return_exceptions=True,
            )
        a, bad, b = async_to_sync(burst)()
        self.assertIsInstance(bad, RelayError)
        self.assertEqual((bad.status, bad.code), (403, "forbidden"))
        self.assertIsInstance(a, str)
        self.assertEqual([m["n"] for m in self.assert_once(sub)], [1, 2])


class RetryTest(LiveCase):
    def test_a_lost_answer_is_retried_with_the_same_key_and_stored_once(self):
        cases = [("answer lost after relay stored it", {"drop_answers": 1}), ("503 before relay", {"fail": [503]})]
        for name, fault in cases:
            with self.subTest(name):
                proxy = self.proxy()
                for k, v in fault.items():
                    setattr(proxy, k, v)
                layer = self.layer(proxy.url)
                sub = self.subscribe("project_1_tickets")
                id_ = async_to_sync(layer.group_send)("project_1_tickets", {"type": "ticket_update", "n": 1})
                self.assertEqual(len(proxy.requests), 2)
                first, second = (json.loads(r[2]) for r in proxy.requests)
                self.assertEqual(first, second, "the retry resends the same event with the same key")
                uuid.UUID(first["idempotency_key"])
                got = self.assert_once(sub)
                self.assertEqual([(m["type"], m["id"]) for m in got], [("ticket_update", id_)])

    def test_4xx_is_not_retried_and_says_why(self):
        proxy = self.proxy()
        cases = [
            ("channel the key does not cover", {}, "reports", 403, "forbidden", "RELAY_PUBLISH_KEYS"),
            ("wrong key", {"publish_key": "x" * 64}, "project_1_tickets", 401, "unauthorized", ""),
        ]
        for name, config, channel, status, code, says in cases:
            with self.subTest(name):
                layer = self.layer(proxy.url, **config)
                before = len(proxy.requests)
                with self.assertRaises(RelayError) as cm:
                    async_to_sync(layer.group_send)(channel, {"type": "x"})
                e = cm.exception
                self.assertEqual((e.status, e.code, e.attempts), (status, code, 1))
                self.assertIn(says, e.message)
                self.assertIn("relay answered %d" % status, str(e))
                self.assertEqual(len(proxy.requests) - before, 1, "a 4xx is not retried")

    def test_unreachable_relay_is_a_clear_error_after_the_retries(self):
        s = relayproc.socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        layer = self.layer("http://127.0.0.1:%d" % port, retries=2, timeout=1)
        with self.assertRaises(RelayError) as cm:
            async_to_sync(layer.group_send)("project_1_tickets", {"type": "x"})
        self.assertEqual((cm.exception.status, cm.exception.attempts), (None, 3))
        self.assertIn("unreachable after 3 attempts", str(cm.exception))
        self.assertIn("refused", str(cm.exception).lower())

    def test_close_ends_the_sender_thread(self):
        layer = RelayChannelLayer(url=relayproc.RELAY.url)
        async_to_sync(layer.group_send)("project_1_tickets", {"type": "x"})
        self.assertEqual(len([t for t in publishers() if t is layer.publisher._thread]), 1)
        t = layer.publisher._thread
        async_to_sync(layer.close)()
        async_to_sync(layer.close)()  # twice is fine
        self.assertFalse(t.is_alive())


class TokensTest(LiveCase):
    def test_relay_accepts_the_claims_of_the_token_hook(self):
        cases = [
            ("RelayAccessToken.for_user", self.token),
            ("login and refresh through simplejwt's views", None),
        ]
        for name, token in cases:
            with self.subTest(name):
                if token is None:
                    r = self.client.post("/api/token/", {"username": "alice", "password": "pw"})
                    self.assertEqual(r.status_code, 200, r.content)
                    r = self.client.post("/api/token/refresh/", {"refresh": r.json()["refresh"]})
                    self.assertEqual(r.status_code, 200, r.content)
                    token = r.json()["access"]
                self.assertEqual(relay_get("/events/projects/1/tickets", token), (200, {"channels": ["project_1_tickets"]}))
                status, body = relay_get("/events/projects/2/tickets", token)
                self.assertEqual((status, body["error"]), (403, "forbidden"))
                self.assertEqual(relay_get("/events/notifications", token)[0], 200)

    def test_refresh_reads_membership_again(self):
        r = self.client.post("/api/token/", {"username": "alice", "password": "pw"})
        refresh = r.json()["refresh"]
        membership.MEMBERS["alice"] = {"2"}  # moved to project 2
        access = self.client.post("/api/token/refresh/", {"refresh": refresh}).json()["access"]
        self.assertEqual(relay_get("/events/projects/1/tickets", access)[0], 403)
        self.assertEqual(relay_get("/events/projects/2/tickets", access)[0], 200)

    def test_relay_token_command_mints_a_publisher(self):
        out = io.StringIO()
        call_command("relay_token", "alice", "--ttl", "10m", "--publish", "project_1_*", stdout=out)
        token = out.getvalue().strip()
        req = urllib.request.Request(relayproc.RELAY.url + "/api/publish", method="POST",
                                     data=json.dumps({"channel": "project_1_tickets", "type": "cli"}).encode(),
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 200)
        self.assertEqual(relay_get("/events/projects/1/presence", token)[0], 200)
