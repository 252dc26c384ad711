"""A Django project for relay_django's tests: sqlite in a temp dir, the
package installed, the channel layer switched to relay's. tests.runner starts
the real relay and sets RELAY_URL and RELAY_PUBLISH_KEY in the environment,
which is where the layer and the helpers find them."""

import os
import tempfile

BASE_TMP = tempfile.mkdtemp(prefix="relay-django-tests-")

SECRET_KEY = "relay-django-tests-secret-key-0123456789abcdef"  # also relay's RELAY_JWT_SECRET
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"  # LiveServerTestCase's static handler needs one
TEST_RUNNER = "tests.runner.RelayRunner"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "channels",
    "relay_django",
]
MIDDLEWARE = []

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(BASE_TMP, "db.sqlite3"),
        "TEST": {"NAME": os.path.join(BASE_TMP, "test.sqlite3")},
    }
}

CHANNEL_LAYERS = {"default": {"BACKEND": "relay_django.layers.RelayChannelLayer"}}

SIMPLE_JWT = {
    "AUTH_TOKEN_CLASSES": ("relay_django.tokens.RelayAccessToken",),
    "TOKEN_OBTAIN_SERIALIZER": "relay_django.tokens.RelayTokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "relay_django.tokens.RelayTokenRefreshSerializer",
}

RELAY_USER_PROJECTS = "tests.membership.user_projects"
RELAY_PROJECT_MEMBER = "tests.membership.is_member"
RELAY_WEBHOOK_SECRET = "whsec-tests-0123456789"

RELAY_RETRIES = 2
RELAY_TIMEOUT = 5

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"relay_django": {"handlers": ["console"], "level": os.environ.get("RELAY_TEST_LOG", "ERROR")}},
}
