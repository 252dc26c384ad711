"""The views relay calls, through Django's test client."""

import datetime
import hashlib
import hmac
import json

from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from relay_django.signals import client_action

from . import membership


class AuthorizeTest(TestCase):
    def setUp(self):
        User = get_user_model()
        self.alice = User.objects.create_user("alice", first_name="Alice")
        self.bob = User.objects.create_user("bob")
        membership.MEMBERS.update({"alice": {"1"}, "bob": {"2"}})
        self.addCleanup(membership.MEMBERS.clear)
        # A stock simplejwt access token: user_id only, no relay claims.
        self.token = str(AccessToken.for_user(self.alice))

    def ask(self, channels, token=None, user_id=None, body=None):
        body = body if body is not None else {"user_id": str(user_id or self.alice.pk), "channels": channels}
        headers = {"HTTP_AUTHORIZATION": "Bearer " + (token or self.token)} if token != "" else {}
        return self.client.post("/relay/authorize", json.dumps(body), content_type="application/json", **headers)

    def test_allows_own_notifications_and_member_projects_only(self):
        a, b = self.alice.pk, self.bob.pk
        r = self.ask([f"user_{a}_notifications", "project_1_tickets", "project_1_presence",
                      f"user_{b}_notifications", "project_2_tickets", "project_10_tickets", "reports"])
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(r.json(), {"allow": [f"user_{a}_notifications", "project_1_tickets", "project_1_presence"],
                                    "ttl": 60, "name": "Alice"})

    def test_a_custom_channel_rule(self):
        with override_settings(RELAY_CHANNEL_ACCESS=lambda user, channel: channel == "reports", RELAY_AUTHORIZE_TTL=5):
            r = self.ask(["reports", "project_1_tickets"])
        self.assertEqual(r.json()["allow"], ["reports"])
        self.assertEqual(r.json()["ttl"], 5)

    def test_refusals(self):
        expired = AccessToken.for_user(self.alice)
        expired.set_exp(lifetime=-datetime.timedelta(seconds=1))
        inactive = get_user_model().objects.create_user("carol", is_active=False)
        cases = [
            ("no token", dict(token=""), 401),
            ("forged", dict(token=self.token[:-3] + "abc"), 401),
            ("garbage", dict(token="not-a-jwt"), 401),
            ("expired", dict(token=str(expired)), 401),
            ("refresh token", dict(token=str(RefreshToken.for_user(self.alice))), 401),
            ("inactive user", dict(token=str(AccessToken.for_user(inactive)), user_id=inactive.pk), 401),
            ("someone else's user_id", dict(user_id=self.bob.pk), 403),
            ("no channels", dict(body={"user_id": "1"}), 400),
            ("a bad channel name", dict(body={"channels": ["no spaces"]}), 400),
            ("too many channels", dict(body={"channels": ["c%d" % i for i in range(65)]}), 400),
            ("not an object", dict(body=["project_1_tickets"]), 400),
        ]
        for name, kw, status in cases:
            with self.subTest(name):
                r = self.ask(["project_1_tickets"], **kw)
                self.assertEqual(r.status_code, status, r.content)
                self.assertIn("message", r.json())

    def test_get_is_405(self):
        self.assertEqual(self.client.get("/relay/authorize").status_code, 405)


SECRET = "whsec-tests-0123456789"


class WebhookTest(TestCase):
    def setUp(self):
        self.got = []
        def receiver(sender, **kw):
            self.got.append(kw)
        client_action.connect(receiver)
        self.addCleanup(client_action.disconnect, receiver)

    def post(self, payload, secret=SECRET, signature=None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sig = signature if signature is not None else "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return self.client.post("/relay/webhook", body, content_type="application/json", HTTP_X_RELAY_SIGNATURE=sig)

    def action(self, **kw):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        return {"type": "mark_read", "user_id": "1", "ids": ["k3j9x2ab7q-9"], "all": False, "ts": now, **kw}

    def test_a_signed_action_fires_the_signal(self):
        payload = self.action()
        r = self.post(payload)
        self.assertEqual(r.status_code, 204, r.content)
        self.assertEqual(self.got, [{"signal": client_action, "action": "mark_read", "user_id": "1", "payload": payload}])

    def test_refusals(self):
        old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)).isoformat()
        cases = [
            ("wrong secret", dict(payload=self.action(), secret="other"), 403),
            ("no signature", dict(payload=self.action(), signature=""), 403),
            ("bare hex", dict(payload=self.action(), signature="0" * 64), 403),
            ("stale ts", dict(payload=self.action(ts=old)), 403),
            ("malformed ts", dict(payload=self.action(ts="yesterday")), 403),
            ("signed garbage", dict(payload=b"{not json"), 400),
            ("no type", dict(payload={"user_id": "1"}), 400),
        ]
        for name, kw, status in cases:
            with self.subTest(name):
                r = self.post(**kw)
                self.assertEqual(r.status_code, status, r.content)
        self.assertEqual(self.got, [])

    def test_tampered_body_is_refused(self):
        body = json.dumps(self.action()).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        r = self.post(body.replace(b'"all": false', b'"all": true'), signature=sig)
        self.assertEqual(r.status_code, 403)

    def test_no_secret_refuses_everything(self):
        with override_settings(RELAY_WEBHOOK_SECRET=None):
            import os
            env = os.environ.pop("RELAY_WEBHOOK_SECRET", None)
            try:
                with self.assertLogs("relay_django", "ERROR"):
                    r = self.post(self.action())
            finally:
                if env is not None:
                    os.environ["RELAY_WEBHOOK_SECRET"] = env
        self.assertEqual(r.status_code, 500)
        self.assertIn("RELAY_WEBHOOK_SECRET", r.json()["message"])
        self.assertEqual(self.got, [])
