"""Views relay calls: the authorization hook and the client-action webhook.

    urlpatterns += [
        path("relay/authorize", relay_django.views.authorize),  # relay's RELAY_AUTHORIZE_URL
        path("relay/webhook", relay_django.views.webhook),      # relay's webhook URL
    ]
"""

import datetime
import hashlib
import hmac
import json
import logging

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import access
from .client import CHANNEL_RE, setting
from .signals import client_action

logger = logging.getLogger("relay_django")

MAX_AUTHORIZE_CHANNELS = 64  # relay's channels per connection
DEFAULT_AUTHORIZE_TTL = 60  # seconds relay may cache an answer
DEFAULT_WEBHOOK_TOLERANCE = 300  # seconds a webhook's ts may be off


def _error(status, code, message):
    return JsonResponse({"error": code, "message": message}, status=status)


def _json_body(request):
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@csrf_exempt
@require_POST
def authorize(request):
    """relay asks: may the bearer of this token read these channels?

    Request: ``Authorization: Bearer <the user's token>`` and
    ``{"user_id": "1", "channels": [...]}`` (at most 64). Answer 200
    ``{"allow": [...], "ttl": 60, "name": "alice"}``: channels left out are
    refused. 401 for a token simplejwt does not accept, 403 when user_id is
    not the token's user, 400 for a malformed request.
    """
    from rest_framework.exceptions import AuthenticationFailed
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

    auth = JWTAuthentication()
    header = auth.get_header(request)
    raw = auth.get_raw_token(header) if header else None
    if raw is None:
        return _error(401, "unauthorized", "send the user's token as Authorization: Bearer <token>")
    try:
        token = auth.get_validated_token(raw)
        user = auth.get_user(token)
    except (InvalidToken, TokenError, AuthenticationFailed) as e:
        return _error(401, "unauthorized", "token refused: %s" % _detail(e))

    body = _json_body(request)
    channels = body.get("channels") if body else None
    if (
        body is None
        or not isinstance(channels, list)
        or not 1 <= len(channels) <= MAX_AUTHORIZE_CHANNELS
        or not all(isinstance(c, str) and CHANNEL_RE.match(c) for c in channels)
    ):
        return _error(400, "bad_request", 'body must be {"user_id": "1", "channels": [1 to %d channel names]}' % MAX_AUTHORIZE_CHANNELS)
    if "user_id" in body and str(body["user_id"]) != str(user.pk):
        return _error(403, "forbidden", "user_id is not the token's user")

    allow = [c for c in dict.fromkeys(channels) if access.may_read(user, c)]
    ttl = int(setting("RELAY_AUTHORIZE_TTL", DEFAULT_AUTHORIZE_TTL))
    return JsonResponse({"allow": allow, "ttl": ttl, "name": access.user_name(user)})


def _detail(e):
    d = getattr(e, "detail", None) or (e.args[0] if e.args else e)
    if isinstance(d, dict):
        d = d.get("detail", d)
    return str(d)


@csrf_exempt
@require_POST
def webhook(request):
    """relay forwards a client action (e.g. mark_read); fires signals.client_action.

    The body must carry ``X-Relay-Signature: sha256=<hex HMAC-SHA256 of the
    body with RELAY_WEBHOOK_SECRET>``: 403 otherwise. A ``ts`` more than
    RELAY_WEBHOOK_TOLERANCE seconds (300) from now is refused (403), so a
    captured request cannot be replayed later. 204 once every receiver has run.
    """
    secret = setting("RELAY_WEBHOOK_SECRET")
    if not secret:
        logger.error("relay_django.views.webhook: RELAY_WEBHOOK_SECRET is not set; refusing every webhook")
        return _error(500, "not_configured", "RELAY_WEBHOOK_SECRET is not set on the Django side")
    want = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    got = request.headers.get("X-Relay-Signature", "")
    if not hmac.compare_digest(want.encode(), got.encode("utf-8", "replace")):
        return _error(403, "bad_signature", "X-Relay-Signature does not match the body and RELAY_WEBHOOK_SECRET")

    body = _json_body(request)
    if body is None or not isinstance(body.get("type"), str) or not isinstance(body.get("user_id"), (str, int)):
        return _error(400, "bad_request", 'body must be {"type": "...", "user_id": "1", ...}')
    if "ts" in body and not _fresh(body["ts"], float(setting("RELAY_WEBHOOK_TOLERANCE", DEFAULT_WEBHOOK_TOLERANCE))):
        return _error(403, "stale", "ts is missing, malformed or too far from now")
    client_action.send(sender=webhook, action=body["type"], user_id=str(body["user_id"]), payload=body)
    return HttpResponse(status=204)


def _fresh(ts, tolerance):
    if not isinstance(ts, str):
        return False
    try:
        when = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    return abs((now - when).total_seconds()) <= tolerance
