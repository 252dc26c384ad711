"""simplejwt tokens that carry the claims relay reads: ``projects`` and ``name``.

The recommended path: relay then decides access from the token alone.

    SIMPLE_JWT = {
        "AUTH_TOKEN_CLASSES": ("relay_django.tokens.RelayAccessToken",),
        "TOKEN_OBTAIN_SERIALIZER": "relay_django.tokens.RelayTokenObtainPairSerializer",
        "TOKEN_REFRESH_SERIALIZER": "relay_django.tokens.RelayTokenRefreshSerializer",
    }
    RELAY_USER_PROJECTS = "tickets.relay.user_projects"   # user -> project ids

Access tokens made by a refresh read the user's projects again, so a member
removed from a project loses it within one access-token lifetime.
"""

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from . import access

RELAY_CLAIMS = ("projects", "name")


def relay_claims(user):
    """The claims relay reads that simplejwt does not put: ``name``, and
    ``projects`` when RELAY_USER_PROJECTS is set."""
    claims = {"name": access.user_name(user)}
    projects = access.user_projects(user)
    if projects is not None:
        claims["projects"] = projects
    return claims


def add_relay_claims(token, user):
    for k in RELAY_CLAIMS:
        if k in token.payload:
            del token[k]
    if user is not None:
        for k, v in relay_claims(user).items():
            token[k] = v
    return token


class RelayAccessToken(AccessToken):
    """An access token whose ``for_user`` adds ``projects`` and ``name``.
    Validates like AccessToken, so it can be SIMPLE_JWT["AUTH_TOKEN_CLASSES"]."""

    @classmethod
    def for_user(cls, user):
        return add_relay_claims(super().for_user(user), user)


class RelayRefreshToken(RefreshToken):
    """A refresh token whose access tokens carry the claims, read afresh
    from the database each time one is made."""

    access_token_class = RelayAccessToken

    @property
    def access_token(self):
        access = super().access_token
        return add_relay_claims(access, _user_of(self))


def _user_of(token):
    User = get_user_model()
    try:
        return User.objects.get(**{api_settings.USER_ID_FIELD: token[api_settings.USER_ID_CLAIM]})
    except (KeyError, User.DoesNotExist):
        return None


class RelayTokenObtainPairSerializer(TokenObtainPairSerializer):
    token_class = RelayRefreshToken


class RelayTokenRefreshSerializer(TokenRefreshSerializer):
    token_class = RelayRefreshToken
