"""Secrets CAM has to store itself, encrypted at rest.

Most secrets are named by an environment variable (``cam.secrets``). Some cannot be: an OAuth2 refresh
token is handed to CAM by the provider when a person connects a mailbox, so CAM must keep it. Such values
are encrypted with Fernet (AES-128-CBC with an HMAC) under the keys in ``AICMO_CAM_ENCRYPTION_KEYS``, a
comma-separated list, newest first. The newest key encrypts; every key in the list decrypts, so a key can
be rotated in: put the new key first, run ``manage.py cam_reencrypt``, then drop the old key.

In Python an encrypted value is a ``Sealed``: it holds the ciphertext and decrypts only when asked
(``reveal()``). Its ``str`` and ``repr`` never show the secret, so it cannot leak into a log line, an
error message or a template by accident; loading a record whose values the keys cannot open does not
fail either, only revealing them does, with a message saying which key is missing.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

KEYS_SETTING = "AICMO_CAM_ENCRYPTION_KEYS"
REDACTED = "••••••••"
# Every Fernet token starts with its version byte 0x80, which base64 spells "gAAAAA".
TOKEN_PREFIX = "gAAAAA"


class EncryptionKeyError(RuntimeError):
    """No key to encrypt with, or none of the keys opens a stored value; the message says what to do."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def keys() -> tuple[str, ...]:
    return tuple(settings.AICMO_CAM_ENCRYPTION_KEYS)


def cipher() -> MultiFernet:
    """The keys of the settings as one MultiFernet (the newest encrypts); raises without a key."""
    configured = keys()
    if not configured:
        raise EncryptionKeyError(f"{KEYS_SETTING} is not set, so CAM cannot store secrets such as OAuth2 refresh "
                                 f"tokens. Generate a key with `python manage.py cam_reencrypt --new-key` and set "
                                 f"{KEYS_SETTING} to it.")
    return _fernet(configured)


def encrypt(plaintext: str) -> str:
    return cipher().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str, *, what: str = "a stored secret") -> str:
    try:
        return cipher().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise EncryptionKeyError(
            f"None of the {len(keys())} key(s) in {KEYS_SETTING} decrypts {what}: the key it was encrypted with "
            f"is not in the list (replaced or dropped?). Put that key back in {KEYS_SETTING} (after the newest), "
            f"or reconnect what used the secret.") from None


def reencrypt(token: str, *, what: str = "a stored secret") -> str:
    """``token`` encrypted again under the newest key."""
    try:
        return cipher().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        decrypt(token, what=what)  # raises the error that names the problem
        raise


def looks_encrypted(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


class Sealed:
    """An encrypted value as the models hold it: the ciphertext, opened only by ``reveal()``.

    Falsy when empty (no secret stored). ``str``/``repr`` are redacted; equality compares ciphertexts.
    """

    __slots__ = ("ciphertext", "what")

    def __init__(self, ciphertext: str, *, what: str = "a stored secret") -> None:
        self.ciphertext = ciphertext
        self.what = what

    @classmethod
    def of(cls, plaintext: str, *, what: str = "a stored secret") -> Sealed:
        return cls(encrypt(plaintext) if plaintext else "", what=what)

    def reveal(self) -> str:
        return decrypt(self.ciphertext, what=self.what) if self.ciphertext else ""

    def __bool__(self) -> bool:
        return bool(self.ciphertext)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealed) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)

    def __str__(self) -> str:
        return REDACTED if self.ciphertext else ""

    def __repr__(self) -> str:
        return f"Sealed({REDACTED!r})" if self.ciphertext else "Sealed('')"

    def __reduce__(self) -> tuple[type[Sealed], tuple[str]]:
        return (Sealed, (self.ciphertext,))  # pickled (the cache, q2) as ciphertext only


def reveal(value: Sealed | str) -> str:
    """The secret in a model's encrypted attribute: a ``Sealed`` loaded from the table, or a ``str`` just set."""
    return value.reveal() if isinstance(value, Sealed) else str(value or "")


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")
