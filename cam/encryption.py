"""The secrets CAM stores encrypted (``EncryptedTextField``): finding them, and re-encrypting them all under
the newest key of ``AICMO_CAM_ENCRYPTION_KEYS`` after a key is rotated in (``manage.py cam_reencrypt``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db import models, transaction

from cam import crypto
from cam.models.fields import EncryptedTextField

BATCH_SIZE = 500


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedTextField]]:
    """Every (model, field) that stores a secret encrypted."""
    return [(model, field) for model in apps.get_models() for field in model._meta.get_fields()
            if isinstance(field, EncryptedTextField)]


@dataclass(frozen=True)
class Reencrypted:
    label: str  # "mailbox.oauth_refresh_token"
    values: int


def reencrypt_all(*, batch_size: int = BATCH_SIZE) -> list[Reencrypted]:
    """Encrypt every stored secret again under the newest key, ``batch_size`` rows per transaction.

    Rows are walked by primary key, so a run can be repeated after an interruption (values already under
    the newest key are simply encrypted again). Raises ``crypto.EncryptionKeyError`` naming the field of a
    value no key opens; the batches before it stay done.
    """
    done = []
    for model, field in encrypted_fields():
        manager = model._default_manager
        count, last_pk = 0, None
        while True:
            rows = manager.exclude(**{field.attname: ""}).order_by("pk")
            if last_pk is not None:
                rows = rows.filter(pk__gt=last_pk)
            batch = list(rows.values_list("pk", field.attname)[:batch_size])
            if not batch:
                break
            with transaction.atomic():
                for pk, sealed in batch:
                    what = f"{model._meta.verbose_name} {pk}'s {field.verbose_name}"
                    fresh = crypto.Sealed(crypto.reencrypt(sealed.ciphertext, what=what))
                    # An UPDATE of the one column: no save() signals, no auto_now timestamps touched.
                    manager.filter(pk=pk).update(**{field.attname: fresh})
            count += len(batch)
            last_pk = batch[-1][0]
        done.append(Reencrypted(f"{model._meta.model_name}.{field.name}", count))
    return done
