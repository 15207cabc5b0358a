import socket

import pytest


@pytest.fixture(autouse=True)
def import_dirs(settings, tmp_path_factory):
    """CSV sources read only from the import folders; the tests' files live in pytest's temp folder."""
    settings.AICMO_CAM_IMPORT_DIRS = [tmp_path_factory.getbasetemp().resolve()]


@pytest.fixture(autouse=True)
def egress_allows_loopback(settings):
    """The suite's real servers listen on 127.0.0.1, which CAM refuses to reach by default (see
    ``cam.egress``): allow loopback, as a deployment with an internal source would. Tests of the
    refusal empty ``AICMO_CAM_EGRESS_ALLOW`` again."""
    settings.AICMO_CAM_EGRESS_ALLOW = ["127.0.0.0/8", "::1"]


@pytest.fixture
def no_egress_allowed(settings):
    """``AICMO_CAM_EGRESS_ALLOW`` as production has it by default: empty, only public addresses."""
    settings.AICMO_CAM_EGRESS_ALLOW = []
    return settings


class FakeDns(dict):
    """Host name → the addresses the system's resolver answers for it; ``lookups`` lists each name asked."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[str] = []


@pytest.fixture
def dns(monkeypatch) -> FakeDns:
    """Names resolved as a test says, at the one place every connection asks (``socket.getaddrinfo``);
    names the test did not set resolve as usual. ``dns["crm.example.test"] = ["10.0.0.5"]``."""
    answers = FakeDns()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, family, type, proto, flags)
        answers.lookups.append(name)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)) if ":" in address
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[name]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


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


@pytest.fixture(autouse=True)
def kept_imap_sessions():
    """Polls keep their IMAP sessions for the next poll (``cam.inbox.imap``): none outlives its test, so that
    no test finds another's session, and the session's Dovecot is not left with hundreds of them."""
    yield
    from cam.inbox.imap import imap_sessions_close

    imap_sessions_close()


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


@pytest.fixture(autouse=True)
def fresh_closed_days():
    """The dashboard remembers the sends of past days per process; each test counts its own."""
    from cam.reporting import closed_days

    closed_days.forget()
    yield
    closed_days.forget()
