"""Re-encrypt every secret CAM stores under the newest key of AICMO_CAM_ENCRYPTION_KEYS (after rotating one in)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from cam import crypto
from cam.encryption import BATCH_SIZE, reencrypt_all


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (OAuth2 refresh tokens) under the first key of "
            "AICMO_CAM_ENCRYPTION_KEYS, in batches; --new-key prints a fresh key instead.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--new-key", action="store_true", help="Print a new key to put first in the list.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="Rows per transaction.")

    def handle(self, *args, new_key: bool, batch_size: int, **options) -> None:
        if new_key:
            self.stdout.write(crypto.new_key())
            return
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            done = reencrypt_all(batch_size=batch_size)
        except crypto.EncryptionKeyError as exc:
            raise CommandError(str(exc)) from None
        for item in done:
            self.stdout.write(f"{item.label}: {item.values} value(s) re-encrypted under the newest key.")
        self.stdout.write(self.style.SUCCESS(f"Done: {sum(item.values for item in done)} value(s) in all."))
