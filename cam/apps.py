from django.apps import AppConfig


class CamConfig(AppConfig):
    name = "cam"
    verbose_name = "CAM"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from anymail.signals import tracking

        from cam import checks  # noqa: F401 (registers the start-up checks)
        from cam.jobs.supervision import supervision_install
        from cam.outreach.events import provider_event_received

        tracking.connect(provider_event_received, dispatch_uid="cam.provider_event_received")
        # q2's cluster processes die with the process that started them (no orphan takes tasks).
        supervision_install()
