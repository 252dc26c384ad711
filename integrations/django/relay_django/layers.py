"""A Channels layer that publishes every group_send to relay.

    CHANNEL_LAYERS = {"default": {"BACKEND": "relay_django.layers.RelayChannelLayer"}}

``group_send(group, message)`` publishes ``message`` (its ``type`` and every
other member, as sent) to relay's channel named ``group``. Consumers no
longer run in Django (relay serves the WebSockets and manages who listens),
so ``group_add``/``group_discard`` accept and do nothing and ``send``,
``receive`` and ``new_channel`` raise ConsumersNotSupported.
"""

import asyncio
import concurrent.futures
import logging
import threading

from channels.layers import BaseChannelLayer

from . import client as _client
from .errors import ConsumersNotSupported
from .publisher import DEFAULT_WINDOW, MAX_BYTES, MAX_EVENTS, Publisher

logger = logging.getLogger("relay_django")

_NO_CONSUMERS = (
    "RelayChannelLayer cannot %s: consumers no longer run in Django. relay serves the WebSocket and SSE "
    "connections itself; publish with group_send (or relay_django.publish) and let relay deliver."
)


def make_client(url=None, publish_key=None, publish_token=None, timeout=None, retries=None, stop=None):
    """A Client from explicit values, else Django settings, else the environment."""
    url = url or _client.setting("RELAY_URL")
    credential = publish_key or publish_token or _client.setting("RELAY_PUBLISH_KEY") or _client.setting("RELAY_PUBLISH_TOKEN")
    timeout = timeout if timeout is not None else _client.setting("RELAY_TIMEOUT", _client.DEFAULT_TIMEOUT)
    retries = retries if retries is not None else _client.setting("RELAY_RETRIES", _client.DEFAULT_RETRIES)
    return _client.Client(url, credential, timeout=timeout, retries=retries, stop=stop)


class RelayChannelLayer(BaseChannelLayer):
    """CONFIG keys (each optional): ``url``, ``publish_key`` or ``publish_token``,
    ``timeout`` (seconds per attempt, 5), ``retries`` (3), ``batch_window``
    (seconds to gather concurrent events into one request, 0.005),
    ``batch_max`` (events per request, 1000), ``batch_max_bytes`` (1 MiB).
    """

    extensions = ["groups", "flush"]

    def __init__(self, url=None, publish_key=None, publish_token=None, timeout=None, retries=None,
                 batch_window=DEFAULT_WINDOW, batch_max=MAX_EVENTS, batch_max_bytes=MAX_BYTES, **unknown):
        if unknown:
            raise TypeError(
                "RelayChannelLayer CONFIG has unknown key(s) %s (left from another layer?); it takes url, "
                "publish_key, publish_token, timeout, retries, batch_window, batch_max, batch_max_bytes"
                % ", ".join(sorted(unknown))
            )
        super().__init__()
        self.publisher = Publisher(
            make_client(url, publish_key, publish_token, timeout, retries),
            window=batch_window, max_events=batch_max, max_bytes=batch_max_bytes,
        )
        self._said_groups = False
        # group_sends of one event loop tick, queued together at its end.
        self._ticks = {}
        self._ticks_lock = threading.Lock()

    def __repr__(self):
        return "<RelayChannelLayer %s>" % self.publisher.client.url

    async def group_send(self, group, message):
        """Publish message to relay's channel ``group``; returns the event's id.

        Raises RelayError when relay refuses it or cannot be reached.
        """
        if not isinstance(message, dict):
            raise TypeError("group_send message must be a dict, not %s" % type(message).__name__)
        fields = {k: v for k, v in message.items() if k != "type"}
        body = self.publisher.prepare(group, message.get("type"), fields)
        fut = concurrent.futures.Future()
        loop = asyncio.get_running_loop()
        with self._ticks_lock:
            tick = self._ticks.get(loop)
            if tick is None:
                tick = self._ticks[loop] = []
                loop.call_soon(self._end_tick, loop)
            tick.append((body, fut))
        return await asyncio.wrap_future(fut)

    def _end_tick(self, loop):
        with self._ticks_lock:
            tick = self._ticks.pop(loop)
        self.publisher.enqueue(tick)

    async def group_add(self, group, channel):
        self._say_groups()

    async def group_discard(self, group, channel):
        self._say_groups()

    def _say_groups(self):
        if not self._said_groups:
            self._said_groups = True
            logger.debug("RelayChannelLayer: group_add/group_discard do nothing; relay manages subscriptions")

    async def send(self, channel, message):
        raise ConsumersNotSupported(_NO_CONSUMERS % "send to a channel")

    async def receive(self, channel):
        raise ConsumersNotSupported(_NO_CONSUMERS % "receive")

    async def new_channel(self, prefix="specific."):
        raise ConsumersNotSupported(_NO_CONSUMERS % "make a channel")

    async def flush(self):
        """Wait until every event group_sent so far has been answered."""
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.flush)

    async def close(self):
        """Send what is queued and stop the sender thread."""
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.close)
