"""manage.py relay_token: print a token relay accepts, for a user.

    ./manage.py relay_token alice                       # the user's access token, with projects and name
    ./manage.py relay_token --id 1 --ttl 24h --publish 'project_*'   # for a CLI publisher

Signed as simplejwt signs (SIMPLE_JWT's SIGNING_KEY and ALGORITHM: HS256 with
SECRET_KEY by default), so relay verifies it with the same RELAY_JWT_SECRET.
"""

import datetime
import re

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ...client import CHANNEL_RE

_TTL = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_ttl(text):
    m = _TTL.match(text or "")
    if not m or int(m.group(1)) == 0:
        raise CommandError("--ttl must be a positive number with s, m, h or d (e.g. 15m, 24h), not %r" % text)
    return datetime.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def parse_patterns(flag, text):
    patterns = [p.strip() for p in (text or "").split(",") if p.strip()]
    for p in patterns:
        if not CHANNEL_RE.match(p.replace("*", "x")):
            raise CommandError("%s: %r is not a channel pattern (A-Z a-z 0-9 _ . : - and *)" % (flag, p))
    return patterns


class Command(BaseCommand):
    help = "Print a JWT for a user that relay accepts (projects and name included)."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the user's username")
        parser.add_argument("--id", dest="user_id", help="the user's primary key, instead of a username")
        parser.add_argument("--ttl", default=None, help="lifetime, e.g. 15m, 24h (default: ACCESS_TOKEN_LIFETIME)")
        parser.add_argument("--publish", default="", help="comma-separated channel patterns the token may publish to")
        parser.add_argument("--subscribe", default="", help="comma-separated extra channel patterns it may read")

    def handle(self, *args, username=None, user_id=None, ttl=None, publish="", subscribe="", **options):
        from ...tokens import RelayAccessToken

        if bool(username) == bool(user_id):
            raise CommandError("name the user: a username, or --id <primary key> (one of them)")
        User = get_user_model()
        try:
            user = User.objects.get(pk=user_id) if user_id else User.objects.get_by_natural_key(username)
        except (User.DoesNotExist, ValueError):
            raise CommandError("no user %s" % (("with id %r" % user_id) if user_id else repr(username)))
        token = RelayAccessToken.for_user(user)
        if ttl:
            token.set_exp(lifetime=parse_ttl(ttl))
        for claim, flag, text in (("publish", "--publish", publish), ("subscribe", "--subscribe", subscribe)):
            patterns = parse_patterns(flag, text)
            if patterns:
                token[claim] = patterns
        self.stdout.write(str(token))
