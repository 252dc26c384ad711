"""relay_django: publish to relay from Django, and answer relay's questions.

    relay_django.publish("project_1_tickets", "ticket_update", action="updated", data={...})

Settings (each falls back to the environment variable of the same name):
RELAY_URL, RELAY_PUBLISH_KEY or RELAY_PUBLISH_TOKEN, RELAY_TIMEOUT, RELAY_RETRIES.
"""

import asyncio
import threading
import urllib.parse

from .errors import ConsumersNotSupported, RelayError

__all__ = ["publish", "apublish", "disconnect", "cursor", "RelayError", "ConsumersNotSupported"]
__version__ = "0.1.0"

_lock = threading.Lock()
_default = None


def _publisher():
    global _default
    with _lock:
        if _default is None:
            from django.core.signals import setting_changed

            from .layers import make_client
            from .publisher import Publisher

            _default = Publisher(make_client())
            setting_changed.connect(_reset, dispatch_uid="relay_django.reset")
        return _default


def _reset(setting=None, **kwargs):
    global _default
    if setting is None or setting.startswith("RELAY_"):
        with _lock:
            old, _default = _default, None
        if old is not None:
            old.close()


def publish(channel, type, **fields):
    """Publish one event and return its id (what subscribers see as ``id``).

    Concurrent calls share batch requests; each event has its own
    idempotency key (pass ``idempotency_key=`` to choose it), so retries
    store it once. Raises RelayError.
    """
    return _publisher().publish(channel, type, fields)


async def apublish(channel, type, **fields):
    """publish, for async code."""
    return await asyncio.wrap_future(_publisher().submit(channel, type, fields))


def disconnect(user_id, channels=None):
    """End a user's streams at once (all, or those reading ``channels``).

    Returns how many connections relay closed. Raises RelayError.
    """
    user_id = str(user_id)
    if not user_id:
        raise ValueError("disconnect needs a user id")
    body = {"user_id": user_id}
    if channels is not None:
        if isinstance(channels, str):
            raise TypeError("channels must be a list of channel names, not one string")
        from .client import check_channel

        body["channels"] = [check_channel(c) for c in channels]
    _, _, answer = _publisher().client.request("POST", "/api/disconnect", body)
    if not isinstance(answer, dict) or not isinstance(answer.get("disconnected"), int):
        raise RelayError(200, None, "unexpected answer to a disconnect: %r" % (answer,))
    return answer["disconnected"]


def cursor(channel):
    """The channel's current cursor: load state, then stream from here."""
    from .client import check_channel

    path = "/api/channels/%s/cursor" % urllib.parse.quote(check_channel(channel), safe="")
    _, _, answer = _publisher().client.request("GET", path)
    if not isinstance(answer, dict) or not isinstance(answer.get("cursor"), str):
        raise RelayError(200, None, "unexpected answer to a cursor request: %r" % (answer,))
    return answer["cursor"]
