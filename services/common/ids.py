"""Identifiers: lowercase, subject-safe, run ids ordered by creation time."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime

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


def run_time(run_id: str) -> datetime:
    """The time a run id was made for, to the millisecond (its first ten characters)."""
    ms = 0
    for char in run_id[:10]:
        ms = ms * 32 + _ALPHABET.index(char)
    return datetime.fromtimestamp(ms / 1000, UTC)


def slot_key(schedule_id: str, fire_time: datetime) -> str:
    """``{schedule id}:{fire time in UTC}``: the Nats-Msg-Id of a scheduled run request."""
    return f"{schedule_id}:{fire_time.astimezone(UTC).isoformat()}"


def slot_run_id(schedule_id: str, fire_time: datetime) -> str:
    """The run id of one schedule slot: the same on every scheduler replica.

    Shaped like ``new_run_id`` (fire time in milliseconds, then 80 bits, here of a hash of the
    slot), so scheduled runs sort with the others and a slot can never make two run records.
    """
    digest = hashlib.sha256(slot_key(schedule_id, fire_time).encode()).digest()
    ms = int(fire_time.timestamp() * 1000)
    return _encode(ms, 10) + _encode(int.from_bytes(digest[:10]), 16)
