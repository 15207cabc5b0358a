import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cam.jobs.cycle import FAILED, worker_cycle_run
from cam.jobs.heartbeat import heartbeat_stopped
from cam.jobs.runner import Trigger


class Command(BaseCommand):
    help = ("Run the worker cycle in the foreground every AICMO_CAM_WORKER_INTERVAL_SECONDS, sending inline "
            "(no qcluster needed). SIGTERM or Ctrl-C finish the current step and exit.")

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
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.stdout.write(f"worker {worker_id}: a cycle every {interval:g} s")
        try:
            while True:
                started = time.monotonic()
                result = worker_cycle_run(worker_id=worker_id, inline_send=True, trigger=Trigger.WORKER, stop=stop)
                style = self.style.ERROR if result.status == FAILED or result.errors else self.style.SUCCESS
                self.stdout.write(style(result.summary()))
                if options["once"]:
                    if not result.ran:
                        raise SystemExit(1)
                    break
                if stop.wait(max(0.0, interval - (time.monotonic() - started))):
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            heartbeat_stopped(worker_id=worker_id)
        self.stdout.write(f"worker {worker_id}: stopped")
