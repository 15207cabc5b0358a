import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.utils import InterfaceError, OperationalError

from cam.inbox.imap import imap_sessions_close
from cam.jobs.cycle import FAILED, worker_cycle_run
from cam.jobs.heartbeat import heartbeat_stopped
from cam.jobs.recovery import watchdog_run
from cam.jobs.runner import Trigger

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Run the worker cycle in the foreground every AICMO_CAM_WORKER_INTERVAL_SECONDS, sending inline "
            "(no qcluster needed), and the watchdog after each cycle. SIGTERM or Ctrl-C end the current step "
            "(an IMAP poll at once, a send after the email in flight) and exit.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true",
                            help="Run one cycle and exit; exit status 1 if the cycle could not run.")
        parser.add_argument("--interval", type=float, help="Seconds between cycle starts (default: the setting).")

    def handle(self, *args, **options) -> None:
        interval = options["interval"] or settings.AICMO_CAM_WORKER_INTERVAL_SECONDS
        if interval <= 0:
            raise CommandError("--interval must be more than 0.")
        worker_id = settings.AICMO_CAM_WORKER_ID
        stop = threading.Event()

        def on_signal(*_) -> None:
            stop.set()
            _interrupt_network()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(f"worker {worker_id}: a cycle every {interval:g} s")
        try:
            while True:
                started = time.monotonic()
                result = worker_cycle_run(worker_id=worker_id, inline_send=True, trigger=Trigger.WORKER, stop=stop)
                style = self.style.ERROR if result.status == FAILED or result.errors else self.style.SUCCESS
                self.stdout.write(style(result.summary()))
                if not stop.is_set():
                    self._watchdog()
                if options["once"]:
                    if not result.ran:
                        raise SystemExit(1)
                    break
                if stop.wait(max(0.0, interval - (time.monotonic() - started))):
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            # The IMAP sessions kept for the next poll: logged out when the worker ends on its own, only
            # closed when it was told to stop (a server slow to say goodbye must not hold it).
            imap_sessions_close(logout=not stop.is_set())
            try:
                heartbeat_stopped(worker_id=worker_id)
            except (InterfaceError, OperationalError):
                logger.warning("Could not mark worker %s stopped: the database is away", worker_id)
        self.stdout.write(f"worker {worker_id}: stopped")

    def _watchdog(self) -> None:
        """What the cluster's watchdog schedule does, for deployments that run only this command: put
        right what dead workers left, and alert when none has been seen for three intervals."""
        try:
            counts = watchdog_run()
        except (InterfaceError, OperationalError):
            return  # the cycle has already said the database is away
        shown = " ".join(f"{key}={value}" for key, value in counts.items() if value)
        if shown:
            self.stdout.write(f"watchdog: {shown}")


def _interrupt_network() -> None:
    """Cut the conversations that may be cut without losing anything (IMAP polls), so a stop is
    obeyed within seconds even while a server drips its answers; a send finishes its one email."""
    from cam.deadlines import cancel_interruptible

    cancel_interruptible("the worker is stopping")
