"""Where each address of one input was first seen, in little memory, for naming a duplicate's first line.

An intake remembers every address of its input, not only the current batch's, so a repeat far down a
file is still found. Address strings in a dict would cost some 200 bytes each; a dict of 8-byte digests
to line numbers still about 110 bytes (measured with tracemalloc: 110 MB for 1,000,000 addresses). This
table keeps the 8-byte digest and the 4-byte line in two flat arrays, open-addressed and at most half
full: 27 MB for 1,000,000 addresses, 49 MB at the peak while it last grew (measured the same way), and
about 5 µs an address — a tenth of what cleaning the record costs.

Two different addresses share an 8-byte BLAKE2b digest with a chance of about n²/2⁶⁵ — 3 in 100
million for a million-row file — and the second would then be reported as a duplicate of the first.
``first_lines`` takes a batch's addresses in one call, in order, as many calls of ``first_line`` would.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from hashlib import blake2b

_EMPTY = 0
_MIN_CAPACITY = 1 << 10
_MAX_LINE = (1 << 32) - 1


def address_digest(key: str) -> int:
    # Never 0, which marks an empty slot.
    return int.from_bytes(blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") or 1


class FirstSeen:
    """``first_line(key, line)``: the line ``key`` was first seen on, remembering ``line`` if it is new."""

    def __init__(self) -> None:
        self._keys = array("Q", bytes(8 * _MIN_CAPACITY))
        self._lines = array("I", bytes(4 * _MIN_CAPACITY))
        self._used = 0

    def __len__(self) -> int:
        return self._used

    def first_line(self, key: str, line: int) -> int | None:
        """``None`` when ``key`` is new (it is then remembered with ``line``), else its first line."""
        digest = address_digest(key)
        slot = self._find(digest)
        if self._keys[slot] == digest:
            return self._lines[slot]
        self._keys[slot], self._lines[slot] = digest, min(max(line, 0), _MAX_LINE)
        self._used += 1
        if 2 * self._used > len(self._keys):
            self._grow()
        return None

    def first_lines(self, keys: Sequence[str], lines: Sequence[int]) -> list[int | None]:
        """``first_line`` of each key with its line, in order (a key repeated within them too)."""
        found: list[int | None] = []
        for key, line in zip(keys, lines, strict=True):
            digest = int.from_bytes(blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                    "big") or 1
            keys_, mask = self._keys, len(self._keys) - 1
            slot = digest & mask
            while (held := keys_[slot]) != digest and held != _EMPTY:
                slot = (slot + 1) & mask
            if held == digest:
                found.append(self._lines[slot])
                continue
            keys_[slot], self._lines[slot] = digest, min(max(line, 0), _MAX_LINE)
            self._used += 1
            if 2 * self._used > len(keys_):
                self._grow()
            found.append(None)
        return found

    def _find(self, digest: int) -> int:
        keys, mask = self._keys, len(self._keys) - 1
        slot = digest & mask
        while keys[slot] not in (_EMPTY, digest):
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        capacity = 2 * len(old_keys)
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        for digest, line in zip(old_keys, old_lines, strict=True):
            if digest != _EMPTY:
                slot = self._find(digest)
                self._keys[slot], self._lines[slot] = digest, line
