import pytest


@pytest.fixture
def superuser(db):
    from tests.factories import SuperuserFactory

    return SuperuserFactory()


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    client.user = superuser
    return client


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 with scripted replies; see ``tests.servers.http``."""
    from tests.servers.http import HttpTestServer

    with HttpTestServer() as server:
        yield server


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 that records what it receives; see ``tests.servers.smtp``."""
    from tests.servers.smtp import SmtpTestServer

    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def imap_server():
    """A real IMAP server (Dovecot) on 127.0.0.1 for the whole session; see ``tests.servers.imap``.

    Each test takes its own users from ``imap_server.new_user()``, so tests never see each other's mail.
    """
    from tests.servers.imap import DovecotNotInstalled, DovecotServer

    try:
        server = DovecotServer().start()
    except DovecotNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(settings, smtp_server):
    """Django's own mail (alerts) goes to the test SMTP server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "CAM <cam@cam.example.com>"
    return settings


@pytest.fixture(autouse=True)
def fresh_cache_probe():
    """The health check remembers its last cache probe for a few seconds; each test probes its own cache."""
    from cam.api.monitoring import cache_probe

    cache_probe.forget()
    yield
    cache_probe.forget()
