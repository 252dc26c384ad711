"""The layer's refusals, configuration errors, and the server API wrappers
(disconnect, cursor) against a stand-in for relay's routes, which another
engineer builds: the contract is fixed here."""

import json
import os
from unittest import mock

from asgiref.sync import async_to_sync
from django.test import SimpleTestCase, override_settings

import relay_django
from relay_django import ConsumersNotSupported, RelayError
from relay_django.layers import RelayChannelLayer

from . import relayproc


class LayerTest(SimpleTestCase):
    def setUp(self):
        self.layer = RelayChannelLayer(url="http://127.0.0.1:9", publish_key="k" * 32)
        self.addCleanup(lambda: async_to_sync(self.layer.close)())

    def test_consumer_calls_say_consumers_no_longer_run_in_django(self):
        cases = [("send", self.layer.send, ("x", {})), ("receive", self.layer.receive, ("x",)),
                 ("new_channel", self.layer.new_channel, ())]
        for name, call, args in cases:
            with self.subTest(name), self.assertRaisesRegex(ConsumersNotSupported, "consumers no longer run in Django"):
                async_to_sync(call)(*args)

    def test_group_add_and_discard_accept(self):
        with self.assertLogs("relay_django", "DEBUG") as logs:
            async_to_sync(self.layer.group_add)("project_1_tickets", "specific.abc")
            async_to_sync(self.layer.group_discard)("project_1_tickets", "specific.abc")
        self.assertEqual(len(logs.output), 1, "said once")
        self.assertIn("relay manages subscriptions", logs.output[0])

    def test_bad_input_is_a_clear_error_before_any_request(self):
        cases = [
            ("bad group", ("no spaces", {"type": "x"}), ValueError, "channel names"),
            ("no type", ("g", {"data": 1}), ValueError, "'type'"),
            ("not a dict", ("g", "text"), TypeError, "dict"),
            ("not JSON", ("g", {"type": "x", "data": object()}), TypeError, "JSON-serializable"),
            ("bad key", ("g", {"type": "x", "idempotency_key": 5}), ValueError, "idempotency_key"),
        ]
        for name, args, exc, says in cases:
            with self.subTest(name), self.assertRaisesRegex(exc, says):
                async_to_sync(self.layer.group_send)(*args)
        self.assertEqual(self.layer.publisher.client.requests, 0)

    def test_config(self):
        with mock.patch.dict(os.environ, {"RELAY_URL": "", "RELAY_PUBLISH_KEY": "", "RELAY_PUBLISH_TOKEN": ""}):
            with self.assertRaisesRegex(ValueError, "RELAY_URL"):
                RelayChannelLayer()
            with self.assertRaisesRegex(ValueError, "RELAY_PUBLISH_KEY"):
                RelayChannelLayer(url="http://relay")
        with self.assertRaisesRegex(TypeError, "hosts"):
            RelayChannelLayer(hosts=[("127.0.0.1", 6379)])
        with self.assertRaisesRegex(ValueError, "http"):
            RelayChannelLayer(url="relay:8080", publish_key="k")
        with mock.patch.dict(os.environ, {"RELAY_URL": "http://env-relay", "RELAY_PUBLISH_TOKEN": "tok"}):
            os.environ.pop("RELAY_PUBLISH_KEY", None)
            layer = RelayChannelLayer()
            self.assertEqual(layer.publisher.client.url, "http://env-relay")
            self.assertNotIn("tok", repr(layer.publisher.client))


class ServerAPITest(SimpleTestCase):
    def fake(self, status, answer):
        f = relayproc.FakeRelay(status, answer)
        self.addCleanup(f.close)
        relay_django._reset()
        self.addCleanup(relay_django._reset)
        return f

    def test_disconnect(self):
        f = self.fake(200, {"disconnected": 3})
        with override_settings(RELAY_URL=f.url, RELAY_PUBLISH_KEY="key-" + "k" * 32):
            self.assertEqual(relay_django.disconnect(7), 3)
            self.assertEqual(relay_django.disconnect("7", channels=["project_1_tickets"]), 3)
        (m1, p1, b1, h1), (m2, p2, b2, h2) = f.requests
        self.assertEqual((m1, p1, json.loads(b1)), ("POST", "/api/disconnect", {"user_id": "7"}))
        self.assertEqual(json.loads(b2), {"user_id": "7", "channels": ["project_1_tickets"]})
        self.assertEqual(h1["Authorization"], "Bearer key-" + "k" * 32)
        with self.assertRaises(TypeError):
            relay_django.disconnect("7", channels="project_1_tickets")

    def test_cursor(self):
        f = self.fake(200, {"cursor": "k3j9x2ab7q-42"})
        with override_settings(RELAY_URL=f.url, RELAY_PUBLISH_KEY="k" * 32):
            self.assertEqual(relay_django.cursor("project_1_tickets"), "k3j9x2ab7q-42")
        self.assertEqual(f.requests[0][:2], ("GET", "/api/channels/project_1_tickets/cursor"))

    def test_errors_carry_relays_message(self):
        f = self.fake(403, {"error": "forbidden", "message": "publish key django may not reach user 7"})
        with override_settings(RELAY_URL=f.url, RELAY_PUBLISH_KEY="k" * 32):
            with self.assertRaises(RelayError) as cm:
                relay_django.disconnect("7")
        self.assertEqual((cm.exception.status, cm.exception.code), (403, "forbidden"))
        self.assertIn("may not reach user 7", str(cm.exception))
        self.assertEqual(len(f.requests), 1)
