"""Sealing secrets at rest: what opens, and what does not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.sealing import Sealer, SealError, new_key, parse_key
from shared.settings import ExecutorSettings, RegistrySettings


def test_a_sealed_value_opens_under_its_key_app_and_name_only() -> None:
    sealer = Sealer(new_key())
    sealed = sealer.seal("app1", "TOKEN", "s3cr3t ✓")
    assert "s3cr3t" not in sealed and sealed.startswith("v1.")
    assert sealer.open("app1", "TOKEN", sealed) == "s3cr3t ✓"
    assert sealer.seal("app1", "TOKEN", "s3cr3t ✓") != sealed  # a fresh nonce each time
    for app_id, name in (("app2", "TOKEN"), ("app1", "OTHER")):
        with pytest.raises(SealError, match="WORKLETS_SECRETS_KEY"):
            sealer.open(app_id, name, sealed)
    with pytest.raises(SealError):
        Sealer(new_key()).open("app1", "TOKEN", sealed)


@pytest.mark.parametrize("damage", ["plain", "v1.", "v1.!!!", "v1.AAAA", "flip"])
def test_anything_but_an_intact_sealed_value_is_refused(damage: str) -> None:
    sealer = Sealer(new_key())
    sealed = sealer.seal("a", "n", "value")
    if damage == "flip":
        damage = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealError):
        sealer.open("a", "n", damage)


@pytest.mark.parametrize("key", ["", "short", "x" * 43 + "!", new_key()[:-1], new_key() + "AAAA"])
def test_a_bad_key_is_refused_by_the_settings_and_by_the_sealer(key: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_key(key)
    for settings in (ExecutorSettings, RegistrySettings):
        with pytest.raises(ValidationError, match="secrets_key"):
            settings(secrets_key=key, admin_token="t" * 16)


def test_a_new_key_is_accepted_everywhere() -> None:
    key = new_key()
    assert len(parse_key(key)) == 32
    assert ExecutorSettings(secrets_key=key).secrets_key == key
    assert "secrets_key=" not in repr(ExecutorSettings(secrets_key=key))


def test_values_sealed_under_a_previous_key_still_open() -> None:
    old, new = new_key(), new_key()
    sealed = Sealer(old).seal("a", "n", "value")
    rotated = Sealer(new, [old])
    assert rotated.open("a", "n", sealed) == "value"
    assert not rotated.is_current("a", "n", sealed)
    assert rotated.is_current("a", "n", rotated.seal("a", "n", "value"))
    with pytest.raises(SealError):
        Sealer(new).open("a", "n", sealed)


def test_previous_keys_are_checked_by_the_settings() -> None:
    key = new_key()
    settings = ExecutorSettings(secrets_key=key, secrets_previous_keys=[new_key()])
    assert len(settings.secrets_previous_keys) == 1
    with pytest.raises(ValidationError, match="secrets_previous_keys"):
        ExecutorSettings(secrets_key=key, secrets_previous_keys=["short"])
