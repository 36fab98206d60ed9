"""Identifiers: lowercase, subject-safe, run ids ordered by creation time."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(length: int = 12) -> str:
    """A random id for applications, worklets and keys."""
    return _encode(secrets.randbits(5 * length), length)


def new_run_id(now: float | None = None) -> str:
    """A ULID-shaped run id: 48 bits of milliseconds then 80 random bits, 26 characters.

    Sorting run ids sorts runs by creation time, which is how run lists page newest first.
    """
    ms = int((time.time() if now is None else now) * 1000)
    return _encode(ms, 10) + _encode(secrets.randbits(80), 16)
