"""One CAM process sending through Resend, for tests/outreach/test_resend_rate.py.

Started with multiprocessing's ``spawn``: a fresh interpreter that sets up Django from ``env`` (the test
database, the cache, the Resend stand-in), waits at ``start`` for its siblings, then sends ``count``
emails through the real ``ResendProvider`` and its shared rate limit, and puts the statuses on ``results``.
Nothing here is imported before Django is set up in the child.
"""

from __future__ import annotations

import os
from typing import Any


def send_through_resend(*, worker: int, env: dict[str, str], key_prefix: str, count: int, start: Any,
                        results: Any) -> None:
    try:
        os.environ.update(env)
        if "REDIS_URL" not in env:
            os.environ.pop("REDIS_URL", None)
        import django

        django.setup()
        from django.conf import settings

        # This run's own keys in a Redis that other runs may share.
        settings.CACHES["default"]["KEY_PREFIX"] = key_prefix
        from django.core.mail import EmailMultiAlternatives

        from cam.models import Mailbox
        from cam.outreach.providers.resend import ResendProvider

        mailbox = Mailbox(name=f"Worker {worker}", from_email=f"sender{worker}@outreach.test",
                          provider=Mailbox.Provider.RESEND)
        with ResendProvider(mailbox) as provider:
            start.wait(timeout=60)
            statuses = []
            for n in range(count):
                message = EmailMultiAlternatives(subject=f"Hello {n}", body="Hi.", from_email=mailbox.from_email,
                                                 to=[f"lead{worker}.{n}@company.test"])
                statuses.append(provider.send(message, idempotency_key=f"worker-{worker}-{n}").status)
        results.put((worker, statuses))
    except BaseException as exc:  # told to the test, which would otherwise only see a missing result
        results.put((worker, f"{type(exc).__name__}: {exc}"))
        raise
