"""Publishing to relay: one queue, one sender thread, batches of concurrent events.

Events submitted while a request is in flight, or within ``window`` seconds of
each other, go out as one batch request (up to ``max_events`` events and
``max_bytes`` of body). One request is in flight at a time, so events are
stored in the order they were submitted. Each event gets its idempotency key
when it is submitted; every retry of it, and the one-by-one fallback below,
sends the same key, so relay stores it once.
"""

import concurrent.futures
import logging
import os
import threading
import time
import uuid

from .client import check_channel, encode
from .errors import RelayError

logger = logging.getLogger("relay_django")

MAX_EVENTS = 1000  # relay's MaxBatch
# relay reads at most 16 x RELAY_MAX_PAYLOAD (64 KiB) of body: 1 MiB.
MAX_BYTES = 1 << 20
DEFAULT_WINDOW = 0.005  # seconds to wait for more events before sending


class Publisher:
    def __init__(self, client, window=DEFAULT_WINDOW, max_events=MAX_EVENTS, max_bytes=MAX_BYTES):
        if not 1 <= int(max_events) <= MAX_EVENTS:
            raise ValueError("relay_django: batch_max must be 1 to %d" % MAX_EVENTS)
        if float(window) < 0 or int(max_bytes) < 1024:
            raise ValueError("relay_django: batch_window must be >= 0 and batch_max_bytes >= 1024")
        self.client = client
        self.window = float(window)
        self.max_events = int(max_events)
        self.max_bytes = int(max_bytes)
        self._cond = threading.Condition()
        self._pending = []  # (body bytes, future)
        self._busy = False
        self._closed = False
        self._thread = None
        self._pid = os.getpid()

    def submit(self, channel, type, fields):
        """Queue one event; the future's result is the id relay gave it."""
        fut = concurrent.futures.Future()
        self.enqueue([(self.prepare(channel, type, fields), fut)])
        return fut

    def prepare(self, channel, type, fields):
        """The event's JSON, with its idempotency key; raises on bad input."""
        check_channel(channel)
        if not isinstance(type, str) or not type:
            raise ValueError("relay events need a non-empty string 'type', not %r" % (type,))
        event = dict(fields)
        event["channel"] = channel
        event["type"] = type
        key = event.get("idempotency_key")
        if key is None:
            event["idempotency_key"] = str(uuid.uuid4())  # one per event, reused by every retry
        elif not isinstance(key, str):
            raise ValueError("idempotency_key must be a string, not %r" % (key,))
        return encode(event)

    def enqueue(self, items):
        """Queue (body, future) pairs together: they go out in one request
        when they fit in one."""
        with self._cond:
            if self._closed:
                err = RuntimeError("relay_django: this publisher is closed")
                for _, fut in items:
                    fut.set_exception(err)
                return
            self._start_locked()
            self._pending.extend(items)
            self._cond.notify_all()

    def publish(self, channel, type, fields):
        return self.submit(channel, type, fields).result()

    def flush(self, timeout=None):
        """Wait until everything submitted so far has been answered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout=None):
        """Send what is queued, then stop the sender thread. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _start_locked(self):
        if self._pid != os.getpid():
            # Forked (a preloading server): the parent's thread is not here.
            self._pid, self._thread, self._busy, self._pending = os.getpid(), None, False, []
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="relay-publisher", daemon=True)
            self._thread.start()

    def _run(self):
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._send(batch)
            except BaseException as e:  # never leave a caller waiting
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                if not isinstance(e, Exception):
                    raise
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _next_batch(self):
        with self._cond:
            while not self._pending:
                if self._closed:
                    self._thread = None
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self.window
            while len(self._pending) < self.max_events and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            n, size = 0, 2
            for body, _ in self._pending[: self.max_events]:
                if n and size + len(body) + 1 > self.max_bytes:
                    break
                n, size = n + 1, size + len(body) + 1
            batch, self._pending = self._pending[:n], self._pending[n:]
            self._busy = True
            return batch

    def _send(self, batch):
        if len(batch) == 1:
            body, fut = batch[0]
            try:
                fut.set_result(self._post_one(body))
            except Exception as e:
                fut.set_exception(e)
            return
        try:
            _, _, answer = self.client.request("POST", "/api/publish", b"[" + b",".join(b for b, _ in batch) + b"]")
            ids = answer.get("ids") if isinstance(answer, dict) else None
            if not isinstance(ids, list) or len(ids) != len(batch):
                raise RelayError(200, None, "unexpected answer to a batch of %d: %r" % (len(batch), answer))
        except RelayError as e:
            if e.status is None or e.status >= 500 or e.status in (401, 408, 429):
                for _, fut in batch:
                    fut.set_exception(e)
                return
            # One bad event refuses the whole batch and stores none of it, so
            # sending each alone is safe, and gives each caller its own answer.
            logger.info("relay refused a batch of %d (%s); sending its events one by one", len(batch), e)
            for body, fut in batch:
                try:
                    fut.set_result(self._post_one(body))
                except Exception as e1:
                    fut.set_exception(e1)
            return
        for (_, fut), id_ in zip(batch, ids):
            fut.set_result(id_)

    def _post_one(self, body):
        _, _, answer = self.client.request("POST", "/api/publish", body)
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            raise RelayError(200, None, "unexpected answer to a publish: %r" % (answer,))
        return answer["id"]
