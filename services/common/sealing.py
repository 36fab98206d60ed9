"""Secrets at rest: sealed with AES-256-GCM under the key ``WORKLETS_SECRETS_KEY``.

The registry seals a secret's value before it is written anywhere (MongoDB, the NATS key-value
bucket); the executor opens it when user code asks for it. Only these two services hold the
key, so a reader of the database, of a backup or of the bucket (any NATS client: the gateway,
the scheduler) learns names, never values. The application id and the secret's name are the
associated data, so a sealed value copied to another secret or application does not open.

A sealed value is ``v1.`` and the URL-safe base64 of a 12-byte random nonce followed by the
ciphertext and its tag. ``python -m services.common.sealing`` prints a new key.

Rotation: the new key becomes ``WORKLETS_SECRETS_KEY`` and the old one joins
``WORKLETS_SECRETS_PREVIOUS_KEYS``; values sealed under a previous key still open, and the
registry seals them again under the current key when it starts (``Store.reseal_secrets``).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1."
KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that does not open under this key (another key, altered or moved)."""


def new_key() -> str:
    """A fresh key, as ``WORKLETS_SECRETS_KEY`` takes it: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def parse_key(text: str) -> bytes:
    """The key's bytes; ValueError saying what is wrong with it."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ValueError(
            f"must be {KEY_BYTES} bytes in URL-safe base64 (43 characters); "
            "make one with: python -m services.common.sealing"
        )
    return raw


def _associated(app_id: str, name: str) -> bytes:
    return f"{app_id}\n{name}".encode()


class Sealer:
    """Seals under ``key``; opens what ``key`` or any of ``previous`` sealed."""

    def __init__(self, key: str, previous: Sequence[str] = ()) -> None:
        self._aead = AESGCM(parse_key(key))
        self._previous = [AESGCM(parse_key(old)) for old in previous]

    def seal(self, app_id: str, name: str, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), _associated(app_id, name))
        return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, app_id: str, name: str, sealed: str) -> str:
        for aead in (self._aead, *self._previous):
            plain = _open(aead, app_id, name, sealed)
            if plain is not None:
                return plain
        raise SealError(
            f"secret {name!r} does not open with WORKLETS_SECRETS_KEY or a previous key "
            "(sealed under another key, or altered)"
        )

    def is_current(self, app_id: str, name: str, sealed: str) -> bool:
        """Whether ``sealed`` opens under the current key (else it is due to be sealed again)."""
        return _open(self._aead, app_id, name, sealed) is not None


def _open(aead: AESGCM, app_id: str, name: str, sealed: str) -> str | None:
    if not sealed.startswith(VERSION):
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed.removeprefix(VERSION))
        plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(app_id, name))
        return plain.decode()
    except (binascii.Error, ValueError, InvalidTag):
        return None


if __name__ == "__main__":
    print(new_key())
