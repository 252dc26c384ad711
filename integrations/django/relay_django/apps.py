from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "relay_django"
    label = "relay_django"
    verbose_name = "relay"
    default_auto_field = "django.db.models.AutoField"
