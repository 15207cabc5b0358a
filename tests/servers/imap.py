"""A real IMAP server (Dovecot, from Debian's dovecot-imapd) on 127.0.0.1, in a throwaway folder.

    def test_it_polls(imap_server):
        user = imap_server.new_user()
        uid = imap_server.append(user, b"From: lead@company.test\\r\\nSubject: Hi\\r\\n\\r\\nYes!\\r\\n")
        ...  # point a mailbox at imap_server.host, imap_server.port, user, password imap_server.password
        assert imap_server.flags(user) == {uid: set()}

Any user name logs in with ``password`` and gets its own empty mailbox, so one server serves a whole
test session and each test takes fresh users from ``new_user()``. Messages go in over IMAP
(``append``), as a mail server would deliver them; ``flags`` reads them back without touching them
(``BODY.PEEK``/``FLAGS`` only). ``reset_uidvalidity`` makes the server forget a folder's UIDs, as a
restored or rebuilt mailbox does: the same messages come back under a new UIDVALIDITY and new UIDs.

Dovecot will not run its processes as root, so the instance uses the package's ``dovecot`` and
``dovenull`` users and stores mail as ``nobody``; when the tests do not run as root, every process and
file is the current user's instead. ``stop()`` ends the instance (its master process, by pid) and
removes its folder.
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from imapclient import IMAPClient

from tests.servers.smtp import free_port

INSTALL_HINT = ("Dovecot is not installed: the inbox tests need a real IMAP server. `make test` installs it "
                "(Debian package dovecot-imapd, listed in the Makefile's TEST_DEB_PACKAGES); by hand: "
                "`apt-get install -y dovecot-imapd`.")

_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


class DovecotNotInstalled(RuntimeError):
    pass


def dovecot_binary() -> str:
    found = shutil.which("dovecot") or next(
        (path for path in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(path, os.X_OK)), None)
    if found is None:
        raise DovecotNotInstalled(INSTALL_HINT)
    return found


class DovecotServer:
    """Start with ``start()`` (or use as a context manager); ``stop()`` ends it and removes its files."""

    host = "127.0.0.1"
    password = "secret"

    def __init__(self, *, introspection_url: str = "") -> None:
        # With an introspection URL, XOAUTH2 and OAUTHBEARER logins are let in when that endpoint (RFC 7662,
        # tests.servers.oauth) says the token is active for the user; passwords still work beside them.
        self.introspection_url = introspection_url
        self.port = free_port()
        self.root: Path | None = None
        self._users = itertools.count(1)
        self._run = uuid.uuid4().hex[:6]

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log(self) -> str:
        path = self.root / "log" / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def start(self) -> DovecotServer:
        binary = dovecot_binary()
        self.root = Path(tempfile.mkdtemp(prefix="cam-dovecot-"))
        self.root.chmod(0o755)  # Dovecot's unprivileged processes read the configuration and sockets here
        for name in ("run", "state", "log", "mail"):
            (self.root / name).mkdir()
        if os.geteuid() == 0:
            # Mail is stored as nobody: Dovecot refuses uid 0 for mail.
            os.chown(self.root / "mail", pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
        self.config.write_text(self._configuration())
        if self.introspection_url:
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                f"introspection_url = {self.introspection_url}\nintrospection_mode = post\n"
                f"username_attribute = username\n")
        # The master daemonizes and keeps the descriptors it was given: a file, not a pipe to wait on.
        output = self.root / "log" / "start.log"
        with output.open("wb") as sink:
            started = subprocess.run([binary, "-c", str(self.config)], stdin=subprocess.DEVNULL, stdout=sink,
                                     stderr=subprocess.STDOUT, timeout=30)
        if started.returncode != 0:
            raise RuntimeError(f"Dovecot did not start ({started.returncode}): "
                               f"{output.read_text(errors='replace')}\n{self.log}")
        deadline = time.monotonic() + 10
        while not self._listening():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Dovecot is not listening on {self.host}:{self.port}:\n{self.log}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        pid_file = self.root / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # the master ends its own children
            deadline = time.monotonic() + 10
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
            return True
        return False

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _configuration(self) -> str:
        root = self.root
        if os.geteuid() == 0:
            users = ("default_internal_user = dovecot\ndefault_login_user = dovenull\n"
                     "first_valid_uid = 1\n")
            mail_owner = "uid=nobody gid=nogroup"
            chroot = ""
        else:  # without root, every process and file is the current user's
            me = pwd.getpwuid(os.geteuid())
            users = (f"default_internal_user = {me.pw_name}\ndefault_login_user = {me.pw_name}\n"
                     f"default_internal_group = {grp.getgrgid(os.getegid()).gr_name}\n"
                     f"first_valid_uid = {me.pw_uid}\n")
            mail_owner = f"uid={me.pw_uid} gid={me.pw_gid}"
            chroot = "  chroot =\n"  # chroot needs root
        return f"""\
protocols = imap
listen = {self.host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if self.introspection_url else ""}
# Refused logins answer in about half a second instead of after 2 s, and (with anvil's penalty off
# below) not later and later for each failure from the same address: tests of a wrong password stay quick.
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u/Maildir
{users}passdb {{
  driver = static
  args = password={self.password}
  mechanisms = plain login
}}
{self._oauth_passdb()}userdb {{
  driver = static
  args = {mail_owner} home={root}/mail/%u
}}
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
{chroot}  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

    def _oauth_passdb(self) -> str:
        if not self.introspection_url:
            return ""
        return (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self.root}/dovecot-oauth2.conf.ext\n}}\n")

    # --- mailboxes ------------------------------------------------------------------------------

    def new_user(self, prefix: str = "user") -> str:
        """A user name no other test of this session has used: its mailbox starts empty."""
        return f"{prefix}{next(self._users)}-{self._run}"

    @contextlib.contextmanager
    def connect(self, user: str):
        """A logged-in IMAPClient for ``user``, logged out afterwards."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: str, message: bytes, *, folder: str = "INBOX", flags: tuple = (),
               received_at: datetime | None = None) -> int:
        """Deliver ``message`` into ``folder`` (created when missing); returns its UID. ``received_at``
        (timezone-aware) is when the server says it received the message (INTERNALDATE): now by default."""
        with self.connect(user) as client:
            if folder != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            answer = client.append(folder, message, flags=flags, msg_time=received_at)
        found = _APPENDUID.search(answer)
        assert found, f"Dovecot answered APPEND without APPENDUID: {answer!r}"
        return int(found.group(1))

    def create_folder(self, user: str, folder: str) -> None:
        with self.connect(user) as client:
            client.create_folder(folder)

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[bytes]]:
        """Every message's flags by UID, read without changing them (``\\Recent`` left out)."""
        with self.connect(user) as client:
            client.select_folder(folder, readonly=True)
            found = client.get_flags(client.search(["ALL"]))
        return {uid: set(flags) - {b"\\Recent"} for uid, flags in found.items()}

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.connect(user) as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Make Dovecot forget ``folder``'s UIDs, as after a restore: its messages stay, under a new
        UIDVALIDITY and new UIDs. Returns the new UIDVALIDITY. Call it with no session of ``user`` open."""
        before = self.uidvalidity(user, folder)
        maildir = self.root / "mail" / user / "Maildir"
        if folder != "INBOX":
            maildir = maildir / f".{folder}"
        for path in maildir.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()
        after = self.uidvalidity(user, folder)
        assert after != before, f"Dovecot kept UIDVALIDITY {before} for {user}/{folder}"
        return after
