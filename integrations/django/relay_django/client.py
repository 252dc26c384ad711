"""An HTTP client for relay's server API (stdlib urllib), with bounded retries.

Every request that may be retried is safe to retry: publishes carry one
idempotency key per event, made once and reused by each attempt, so relay
stores each event once; disconnect and cursor are idempotent.
"""

import http.client
import json
import logging
import os
import random
import re
import threading
import urllib.error
import urllib.parse
import urllib.request

from django.core.serializers.json import DjangoJSONEncoder

from .errors import RelayError

logger = logging.getLogger("relay_django")

DEFAULT_TIMEOUT = 5.0  # seconds per attempt
DEFAULT_RETRIES = 3  # retries after the first attempt
BACKOFF_BASE = 0.2  # seconds before the first retry, doubled each time
BACKOFF_MAX = 5.0  # no wait between attempts is longer, Retry-After included

# relay's channel names: 1-200 bytes of A-Z a-z 0-9 _ . : -
CHANNEL_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def check_channel(channel):
    if not isinstance(channel, str) or not CHANNEL_RE.match(channel):
        raise ValueError(
            "relay channel names are 1-200 characters of A-Z a-z 0-9 _ . : -, not %r" % (channel,)
        )
    return channel


def encode(obj):
    """JSON for relay: Django's encoder (datetimes, UUIDs, Decimals, lazy strings)."""
    try:
        return json.dumps(obj, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise TypeError("relay events must be JSON-serializable: %s" % e) from None


def _retryable_status(status):
    # 408 (body too slow) and 429 are transient, like 5xx; every other 4xx
    # means the request itself is wrong and the same request would fail again.
    return status >= 500 or status in (408, 429)


class Client:
    """relay's server API at ``url``, authorized with a publish key or token."""

    def __init__(self, url, credential, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES, stop=None):
        if not url:
            raise ValueError("relay_django: no relay URL: set RELAY_URL (settings or environment) or CONFIG['url']")
        if not credential:
            raise ValueError(
                "relay_django: no credential: set RELAY_PUBLISH_KEY (a publish key of relay's "
                "RELAY_PUBLISH_KEYS) or RELAY_PUBLISH_TOKEN (settings or environment)"
            )
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("relay_django: RELAY_URL must be an http(s) URL, not %r" % (url,))
        self.url = url.rstrip("/")
        self._credential = credential
        self.timeout = float(timeout)
        self.retries = int(retries)
        if self.timeout <= 0 or self.retries < 0:
            raise ValueError("relay_django: timeout must be > 0 and retries >= 0")
        # Set to end backoff waits early (the layer's close).
        self._stop = stop or threading.Event()
        self.requests = 0  # attempts made, for tests and metrics

    def __repr__(self):  # never the credential
        return "relay_django.Client(%r)" % self.url

    def request(self, method, path, body=None, headers=None):
        """Make the request, retrying connection errors, timeouts, 5xx, 408 and 429.

        ``body`` is encoded as JSON unless it is bytes already. Returns
        (status, headers, decoded JSON or None). Raises RelayError.
        """
        data = body if body is None or isinstance(body, bytes) else encode(body)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(method, path, data, headers or {}, attempt)
            except _Retry as r:
                if attempt > self.retries or self._stop.is_set():
                    raise r.error(attempt) from None
                delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                if r.retry_after is not None:
                    delay = min(BACKOFF_MAX, max(delay, r.retry_after))
                logger.warning(
                    "relay %s %s failed (%s); retry %d of %d in %.2fs",
                    method, path, r.reason, attempt, self.retries, delay,
                )
                if self._stop.wait(delay):
                    raise r.error(attempt) from None

    def _once(self, method, path, data, headers, attempt):
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self._credential)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in headers.items():
            req.add_header(k, v)
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.headers, _json(resp.read())
        except urllib.error.HTTPError as e:
            with e:
                status, answer = e.code, _json(_read(e))
            code, message = _describe(status, answer)
            if _retryable_status(status):
                raise _Retry("%d %s" % (status, code), status, code, message, _retry_after(e.headers))
            raise RelayError(status, code, message, attempt) from None
        except (OSError, http.client.HTTPException) as e:
            # URLError (refused, DNS), timeouts, a connection dropped mid-answer.
            reason = getattr(e, "reason", None) or e
            raise _Retry(str(reason) or type(e).__name__, None, None, "%s: %s" % (type(e).__name__, reason), None)


class _Retry(Exception):
    def __init__(self, reason, status, code, message, retry_after):
        self.reason, self.status, self.code, self.message, self.retry_after = reason, status, code, message, retry_after

    def error(self, attempts):
        return RelayError(self.status, self.code, self.message, attempts)


def _read(resp):
    try:
        return resp.read()
    except (OSError, http.client.HTTPException):
        return b""


def _json(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]


def _describe(status, answer):
    if isinstance(answer, dict):
        return answer.get("error"), answer.get("message") or json.dumps(answer)[:500]
    if status == 404:
        return "not_found", "relay has no such route (%s); is RELAY_URL relay's, and is relay recent enough?" % (answer or "")
    return None, str(answer or "no body")


def _retry_after(headers):
    try:
        return max(0.0, float(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None


def setting(name, default=None):
    """A relay setting: Django's settings, else the environment, else default."""
    from django.conf import settings

    value = getattr(settings, name, None)
    if value in (None, ""):
        value = os.environ.get(name)
    return default if value in (None, "") else value
