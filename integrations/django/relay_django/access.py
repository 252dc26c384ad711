"""Who may read which relay channel: the claims put in tokens, and the
decisions of the authorization view. Every hook is a setting naming a
callable (a dotted path, or the callable itself).

RELAY_USER_PROJECTS   user -> iterable of project ids (the ``projects`` claim)
RELAY_USER_NAME       user -> display name (default: full name, else username)
RELAY_PROJECT_MEMBER  (user, project_id: str) -> bool (default: project_id in RELAY_USER_PROJECTS(user))
RELAY_CHANNEL_ACCESS  (user, channel) -> bool (default: default_channel_access)
"""

import logging
import re

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger("relay_django")

PROJECT_CHANNEL = re.compile(r"^project_([A-Za-z0-9-]+)_.+$")
NOTIFICATIONS_CHANNEL = re.compile(r"^user_([A-Za-z0-9-]+)_notifications$")


def hook(name):
    """The callable a setting names, or None when unset."""
    value = getattr(settings, name, None)
    if value is None or callable(value):
        return value
    try:
        return import_string(value)
    except ImportError as e:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("%s = %r cannot be imported: %s" % (name, value, e)) from e


def user_projects(user):
    f = hook("RELAY_USER_PROJECTS")
    if f is None:
        return None
    return [p if isinstance(p, int) else str(p) for p in f(user)]


def user_name(user):
    f = hook("RELAY_USER_NAME")
    if f is not None:
        return f(user)
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


def is_project_member(user, project_id):
    f = hook("RELAY_PROJECT_MEMBER")
    if f is not None:
        return bool(f(user, project_id))
    projects = user_projects(user)
    if projects is None:
        logger.warning("relay_django: neither RELAY_PROJECT_MEMBER nor RELAY_USER_PROJECTS is set: project channels are refused")
        return False
    return project_id in {str(p) for p in projects}


def default_channel_access(user, channel):
    """The seed app's rule: a user's own notifications, and every
    ``project_{id}_…`` channel of a project they belong to."""
    m = NOTIFICATIONS_CHANNEL.match(channel)
    if m:
        return m.group(1) == str(user.pk)
    m = PROJECT_CHANNEL.match(channel)
    if m:
        return is_project_member(user, m.group(1))
    return False


def may_read(user, channel):
    f = hook("RELAY_CHANNEL_ACCESS") or default_channel_access
    return bool(f(user, channel))
