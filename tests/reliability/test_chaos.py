"""Fault injection on the running system: real workers killed with ``kill -9``, a database cut mid-batch,
providers that stall, refuse, rate-limit and hang. After each storm every email is checked:

- never twice: no recipient received the same email twice;
- never lost: every due email is SENT, or RETRY/FAILED/UNKNOWN with a reason, and no lead is left in
  its sequence with nothing planned and no reason;
- at most one UNKNOWN per interruption (the one email in flight).

``make test`` runs 5 interruptions per mode (``CAM_CHAOS_KILLS``), ``make chaos`` 20; the figures
printed (``CHAOS {...}``, also in test-results/chaos.jsonl) go into docs/reliability.md.
PostgreSQL only: several processes work on one database at once.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from cam.models import Mailbox
from tests.reliability.harness import KILLS, World, database_url, report
from tests.servers.http import Reply
from tests.servers.smtp import SmtpTestServer, Stall

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

LEADS = 40 * KILLS
DRAIN = 90 + 20 * KILLS  # seconds: each killed cycle holder costs up to a lease's TTL


def smtp_boxes(server, count: int = 3) -> list[dict]:
    return [{"name": f"SMTP {n}", "from_email": f"sender{n}@outreach.example.com", "provider": Mailbox.Provider.SMTP,
             "smtp_host": server.host, "smtp_port": server.port, "smtp_security": "none"} for n in range(count)]


def successor(world: World):
    def restart(victim):
        world.start_worker(f"{victim.name.split('~')[0]}~{uuid.uuid4().hex[:4]}")
    return restart


def kill_9_storm(world: World) -> None:
    """Two cam_workers, killed at random KILLS times, each replaced by a new one."""
    world.start_worker("worker-a")
    world.start_worker("worker-b")
    world.kill_randomly(kills=KILLS, restart=successor(world))


@pytest.mark.parametrize("pipelining", [False, True], ids=["one command at a time", "pipelining"])
def test_kill_9_of_two_cam_workers_sending_through_smtp(pipelining, tmp_path):
    """With PIPELINING each email's envelope goes with the data of the one before: a kill then leaves an
    envelope waiting for data as well as the email in flight, and still only that one in doubt."""
    with SmtpTestServer(pipelining=pipelining) as smtp_server:
        smtp_server.answer_data(Stall(0.15))  # the 250 comes late: kills land while a message is in flight
        world = World.build(tmp=tmp_path, mailboxes=smtp_boxes(smtp_server), leads=LEADS)
        world.endure(lambda: kill_9_storm(world), drain=DRAIN)
        report("two cam_workers, SMTP (250 delayed)" + (", PIPELINING" if pipelining else ""),
               world.verdict(delivered=[message.rcpt_tos[0] for message in smtp_server.messages]))


class ResendStandIn:
    """Resend as it behaves: an idempotency key it has seen gets the first answer again and sends
    nothing; otherwise, at random, 429, 500, or acceptance — sometimes answered too late for the
    client (the email went out, the client timed out)."""

    def __init__(self, seed: int) -> None:
        import random

        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.ids: dict[str, str] = {}
        self.recipients: list[str] = []

    def __call__(self, request) -> Reply:
        key = request.headers["idempotency-key"]
        with self.lock:
            if key in self.ids:
                return Reply(200, {"id": self.ids[key]})
            roll = self.rng.random()
            if roll < 0.1:
                return Reply(429, {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"},
                             headers={"retry-after": "1"})
            if roll < 0.2:
                return Reply(500, {"statusCode": 500, "name": "application_error", "message": "Internal error"})
            self.ids[key] = email_id = f"re-{uuid.uuid4().hex[:12]}"
            self.recipients.append(request.json()["to"][0])
        if roll < 0.3:
            return Reply(200, {"id": email_id}, delay=3)  # hangs past the client's 1 s timeout
        return Reply(200, {"id": email_id})


def test_kill_9_of_two_cam_workers_sending_through_resend(http_server, tmp_path, monkeypatch):
    resend = ResendStandIn(seed=int(os.environ.get("CAM_CHAOS_SEED", "7")))
    http_server.reply("/emails", resend)
    boxes = [{"name": f"Resend {n}", "from_email": f"sender{n}@outreach.example.com",
              "provider": Mailbox.Provider.RESEND, "resend_api_key_env": "CAM_SECRET_CHAOS_KEY"} for n in range(3)]
    world = World.build(tmp=tmp_path, mailboxes=boxes, leads=LEADS, extra_env={
        "AICMO_CAM_RESEND_API_URL": http_server.url("/"), "AICMO_CAM_RESEND_TIMEOUT_SECONDS": "1",
        "AICMO_CAM_RESEND_RATE_PER_SECOND": "100", "CAM_SECRET_CHAOS_KEY": "re_chaos_123"})
    world.endure(lambda: kill_9_storm(world), drain=DRAIN)
    figures = world.verdict(delivered=resend.recipients)
    assert figures["unknown"] == 0  # the idempotency key turns every interrupted send into a safe retry
    assert figures["failed"] == 0  # 429s, 500s and timeouts never use up an email's attempts… five 500s in a row might
    report("two cam_workers, Resend (429 / 500 / hanging)", figures)


def test_a_database_cut_mid_batch(smtp_server, tmp_path):
    from tests.servers.tcpproxy import TcpProxy

    smtp_server.answer_data(Stall(0.15))
    with TcpProxy("127.0.0.1", 5432) as proxy:
        world = World.build(tmp=tmp_path, mailboxes=smtp_boxes(smtp_server), leads=LEADS,
                            extra_env={"DATABASE_URL": database_url(host=proxy.host, port=proxy.port)})

        def cuts() -> None:
            world.start_worker("worker-a")
            world.start_worker("worker-b")
            for _ in range(KILLS):
                time.sleep(world.rng.uniform(1.0, 3.0))
                proxy.cut()
                time.sleep(world.rng.uniform(0.5, 4.0))
                proxy.restore()

        world.endure(cuts, drain=DRAIN)
    figures = world.verdict(delivered=[message.rcpt_tos[0] for message in smtp_server.messages],
                            interruptions=proxy.cuts)
    assert all(process.popen.returncode in (0, -15) for process in world.processes), world.logs()
    report("two cam_workers, SMTP, database cut", {**figures, "cuts": proxy.cuts})


def test_kill_9_in_two_qclusters_on_redis_sending_through_smtp(smtp_server, tmp_path):
    import redis

    from tests.jobs.test_orphans import alive, children

    redis_url = "redis://127.0.0.1:6379/11"  # this test's own Redis database, flushed before and after
    redis.Redis.from_url(redis_url).flushdb()
    smtp_server.answer_data(Stall(0.15))
    world = World.build(tmp=tmp_path, mailboxes=smtp_boxes(smtp_server), leads=LEADS,
                        extra_env={"REDIS_URL": redis_url, "AICMO_CAM_Q_WORKERS": "2"})
    orphans: list[int] = []

    def start_cluster(name: str):
        return world.start(name, "qcluster")

    def kill_somewhere_in_a_cluster(victim) -> None:
        """Any process of the cluster: its parent (whose children must then die with it), its Sentinel,
        a worker, the pusher or the monitor (which the Sentinel replaces)."""
        family = [victim.popen.pid]
        for child in children(victim.popen.pid):
            family += [child, *children(child)]
        target = world.rng.choice(family)
        if target == victim.popen.pid:
            orphans.extend(family[1:])
        os.kill(target, 9)
        world.kills += 1
        if target in family[:2]:  # the parent or its Sentinel: the cluster is gone, start another
            victim.popen.wait(timeout=30)
            start_cluster(f"{victim.name.split('~')[0]}~{uuid.uuid4().hex[:4]}")

    def storm() -> None:
        start_cluster("cluster-a")
        start_cluster("cluster-b")
        subprocess_feeder(world, tmp_path)
        for _ in range(KILLS):
            time.sleep(world.rng.uniform(0.5, 2.5))
            kill_somewhere_in_a_cluster(world.rng.choice([p for p in world.living() if p.name.startswith("cluster")]))

    try:
        world.endure(storm, drain=DRAIN)
    finally:
        redis.Redis.from_url(redis_url).flushdb()
    assert not [pid for pid in orphans if alive(pid)], "a process outlived its killed cluster"
    report("two qclusters on Redis, SMTP (250 delayed)",
           world.verdict(delivered=[message.rcpt_tos[0] for message in smtp_server.messages]))


def subprocess_feeder(world: World, tmp_path):
    """The schedules' stand-in (tests/reliability/feeder.py), as one more process of the world that is
    never killed."""
    import subprocess
    import sys

    from tests.reliability.harness import ROOT, Process

    log = tmp_path / "feeder.log"
    with log.open("a") as out:
        popen = subprocess.Popen(
            [sys.executable, "-c", "import django; django.setup(); from tests.reliability.feeder import main; main()"],
            env={**world.env, "AICMO_CAM_WORKER_ID": "feeder"}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    process = Process(name="feeder", popen=popen, log=log)
    world.processes.append(process)
    return process


def test_a_dripping_imap_server_neither_stalls_sending_nor_delays_a_stop(smtp_server, tmp_path):
    import signal

    from cam.dashboard import get_dashboard
    from cam.models import WorkerHeartbeat
    from tests.reliability.harness import wait_until
    from tests.servers.drip import DripServer, drip

    with DripServer(drip(b"* OK ")) as dripping:  # a greeting one byte at a time, forever
        imap = {"imap_host": dripping.host, "imap_port": dripping.port, "imap_security": "none",
                "imap_password_env": "CAM_SECRET_CHAOS_IMAP_PASSWORD"}
        readers = [{"name": f"Reading only {n}", "from_email": f"reader{n}@outreach.example.com", **imap}
                   for n in range(4)]
        world = World.build(tmp=tmp_path, mailboxes=[{**box, **imap} for box in smtp_boxes(smtp_server)],
                            readers=readers, leads=LEADS, extra_env={
            "CAM_SECRET_CHAOS_IMAP_PASSWORD": "secret", "AICMO_CAM_IMAP_DEADLINE_SECONDS": "600"})
        seen: dict = {}

        def storm() -> None:
            workers = {name: world.start_worker(name) for name in ("worker-a", "worker-b")}
            # Sending goes on while the seven servers drip…
            seen["sending"] = world.drain(timeout=DRAIN)
            wait_until(lambda: Mailbox.objects.exclude(last_poll_error="").count() == 7, timeout=60,
                       what="every dripping mailbox to have been tried (least recently polled first)")
            # … and a worker told to stop in the middle of a poll stops at once.
            wait_until(lambda: WorkerHeartbeat.objects.filter(current_step="poll").exists(), timeout=60,
                       what="a worker in the middle of a poll")
            seen["process"] = workers[WorkerHeartbeat.objects.get(current_step="poll").worker_id].popen
            seen["process"].send_signal(signal.SIGTERM)
            started = time.monotonic()
            seen["process"].wait(timeout=30)
            seen["stop"] = time.monotonic() - started

        world.endure(storm, drain=DRAIN)
        took, stopped_in, stopping = seen["sending"], seen["stop"], seen["process"]
    figures = world.verdict(delivered=[message.rcpt_tos[0] for message in smtp_server.messages])
    assert stopped_in < 5, f"SIGTERM mid-poll took {stopped_in:.1f} s"
    assert stopping.returncode == 0, world.logs()
    failing = Mailbox.objects.exclude(last_poll_error="")
    assert failing.count() == 7
    dashboard = get_dashboard()
    assert dashboard["health_status"] != "healthy"
    assert any(reason.startswith("mailbox Reading only 0: cannot be polled") for reason in dashboard["health_reasons"])
    assert "mailbox " in WorkerHeartbeat.objects.exclude(last_error="").first().last_error
    report("two cam_workers, SMTP, 7 IMAP servers dripping", {
        **figures, "sending_seconds": round(took, 1), "sigterm_seconds": round(stopped_in, 2)})
