"""Test a mailbox's connection from the command line: log in to SMTP and IMAP and list the folders.

    manage.py cam_mailbox_test "Sales"      # the mailbox's name (or its from address)

Each step is printed with its time; the exit code is 1 when a step failed. Nothing is sent or changed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from cam.mailboxes.connection_test import mailbox_connection_test
from cam.models import Mailbox


class Command(BaseCommand):
    help = "Log in to a mailbox's SMTP and IMAP servers and list its folders, saying how each step went."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The mailbox's name or from address.")

    def handle(self, *args, name: str, **options) -> None:
        mailbox = Mailbox.objects.filter(Q(name=name) | Q(from_email=name.lower())).first()
        if mailbox is None:
            raise CommandError(f"No mailbox is named {name!r} or sends from it.")
        report = mailbox_connection_test(mailbox)
        for line in report.lines():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"The connection test of mailbox {mailbox.name!r} failed.")
        self.stdout.write(self.style.SUCCESS(f"Mailbox {mailbox.name!r} can log in."))
