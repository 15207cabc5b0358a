import pytest


@pytest.fixture(autouse=True)
def alert_emails(settings):
    """Rules queue alerts; with an address to send them to, dispatch has somewhere to deliver."""
    settings.AICMO_CAM_ALERT_EMAILS = ["ops@agency.test"]
