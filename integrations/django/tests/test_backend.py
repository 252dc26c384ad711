"""relay's backend API against the real relay binary and a real Django
server: the authorization hook (a stock simplejwt token reads its project's
channels), the webhook, disconnect and cursor."""

import json
import threading
import urllib.error
import urllib.request

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import LiveServerTestCase, TestCase
from rest_framework_simplejwt.tokens import AccessToken

import relay_django
from relay_django.signals import client_action
from relay_django.tokens import RelayAccessToken

from . import membership, relayproc


def call(base, method, path, token, body=None, accept="application/json"):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token, "Accept": accept, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


class BackendHooks(LiveServerTestCase):
    """A second relay whose RELAY_AUTHORIZE_URL and RELAY_WEBHOOK_URL are
    this Django, served by LiveServerTestCase's thread."""

    def setUp(self):
        User = get_user_model()
        self.carol = User.objects.create_user("carol", password="pw", first_name="Carol")
        membership.MEMBERS.clear()
        membership.MEMBERS.update({"carol": {"1"}})
        self.addCleanup(membership.MEMBERS.clear)
        self.relay = relayproc.Relay(settings.SECRET_KEY, binary=relayproc.RELAY.binary, extra_env={
            "RELAY_AUTHORIZE_URL": self.live_server_url + "/relay/authorize",
            "RELAY_WEBHOOK_URL": self.live_server_url + "/relay/webhook",
            "RELAY_WEBHOOK_SECRET": settings.RELAY_WEBHOOK_SECRET,
        })
        self.addCleanup(self.relay.stop)
        # Stock simplejwt: user_id only, no projects or name claim.
        self.token = str(AccessToken.for_user(self.carol))

    def test_stock_token_reads_its_project_and_is_refused_another(self):
        sub = relayproc.Subscriber(self.token, ["project_1_tickets"], base=self.relay.url)
        self.addCleanup(sub.close)
        status, _ = call(self.relay.url, "POST", "/api/publish", self.relay.publish_key,
                         {"channel": "project_1_tickets", "type": "ticket_updated", "data": {"id": 5}})
        self.assertEqual(status, 200)
        sub.wait_for_type("ticket_updated")

        status, body = call(self.relay.url, "GET", "/events?channel=project_2_tickets", self.token)
        self.assertEqual(status, 403, body)
        self.assertIn("does not allow", body["message"])

    def test_mark_read_reaches_the_webhook(self):
        got = threading.Event()
        seen = []

        def receiver(sender, action, user_id, payload, **kw):
            seen.append((action, user_id, payload["ids"]))
            got.set()

        client_action.connect(receiver)
        self.addCleanup(client_action.disconnect, receiver)
        status, _ = call(self.relay.url, "POST", "/api/notifications/read", self.token, {"ids": ["uuid-9"]})
        self.assertLess(status, 500)
        self.assertTrue(got.wait(10), "no webhook within 10 s; relay's log: %s" % self.relay.log_text())
        self.assertEqual(seen, [("mark_read", str(self.carol.pk), ["uuid-9"])])


class DisconnectAndCursor(TestCase):
    """relay_django.disconnect and cursor against the real relay."""

    def setUp(self):
        User = get_user_model()
        self.alice = User.objects.create_user("alice", password="pw")
        membership.MEMBERS.clear()
        membership.MEMBERS.update({"alice": {"1"}})
        self.addCleanup(membership.MEMBERS.clear)
        self.token = str(RelayAccessToken.for_user(self.alice))

    def test_disconnect_ends_the_users_streams(self):
        uid = str(self.alice.pk)
        tickets = relayproc.Subscriber(self.token, ["project_1_tickets"])
        self.addCleanup(tickets.close)
        notes = relayproc.Subscriber(self.token, ["user_%s_notifications" % uid])
        self.addCleanup(notes.close)
        self.assertEqual(relay_django.disconnect(uid, channels=["project_1_tickets"]), 1)
        tickets.wait_for(lambda evs: evs[-1][0] == "forbidden")
        self.assertEqual(relay_django.disconnect(uid), 1)
        notes.wait_for(lambda evs: evs[-1][0] == "forbidden")

    def test_cursor_then_stream(self):
        first = relay_django.cursor("project_1_board")
        eid = relay_django.publish("project_1_board", "moved", data={"n": 1})
        self.assertEqual(relay_django.cursor("project_1_board"), eid)
        self.assertNotEqual(first, eid)
