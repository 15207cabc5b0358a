from django.apps import AppConfig


class CamConfig(AppConfig):
    name = "cam"
    verbose_name = "CAM"
    default_auto_field = "django.db.models.BigAutoField"
