"""Key format, hashing, sealing and log redaction: the pieces that keep secrets secret."""

from __future__ import annotations

import json
import logging

import pytest

from tollgate.kit import apikeys
from tollgate.kit.logs import JsonFormatter, redact
from tollgate.kit.sealing import Sealer, SealError, new_sealing_key


def test_generated_keys_are_well_formed_and_unique() -> None:
    keys = [apikeys.generate("live") for _ in range(2000)]
    assert len({k.raw for k in keys}) == 2000
    for key in keys[:50]:
        assert key.raw.startswith("tg_live_")
        assert apikeys.well_formed(key.raw)
        assert key.prefix == key.raw[:12]
        assert key.last4 == key.raw[-4:]
    assert apikeys.generate("test").raw.startswith("tg_test_")


def test_typos_and_noise_fail_the_checksum() -> None:
    raw = apikeys.generate().raw
    flipped = raw[:-8] + ("A" if raw[-8] != "A" else "B") + raw[-7:]
    for candidate in (flipped, raw[:-1], raw + "x", "tg_live_" + "a" * 28, "", "Bearer x"):
        assert not apikeys.well_formed(candidate)


def test_hash_depends_on_the_pepper() -> None:
    raw = apikeys.generate().raw
    plain, peppered = apikeys.hash_key(raw), apikeys.hash_key(raw, "pepper")
    assert len(plain) == len(peppered) == 64
    assert plain != peppered
    assert raw not in plain + peppered


def test_sealing_round_trips_and_rotates() -> None:
    old, new = new_sealing_key(), new_sealing_key()
    sealed = Sealer(old).seal('{"Authorization": "Bearer upstream"}')
    assert "upstream" not in sealed
    rotated = Sealer(f"{new},{old}")
    assert rotated.unseal(sealed) == b'{"Authorization": "Bearer upstream"}'
    with pytest.raises(SealError):
        Sealer(new).unseal(sealed)
    unconfigured = Sealer("")
    assert not unconfigured.configured
    with pytest.raises(SealError, match="no sealing keys"):
        unconfigured.seal("secret")
    with pytest.raises(SealError, match="no sealing keys"):
        unconfigured.unseal(sealed)


def test_logs_redact_keys_secrets_and_bearer_tokens() -> None:
    raw = apikeys.generate().raw
    text = f"key={raw} secret=whsec_abcdefghijklmnop auth=Bearer eyJhbGciOi.payload.sig"
    cleaned = redact(text)
    assert raw not in cleaned
    assert "whsec_abcdefghijklmnop" not in cleaned
    assert "eyJhbGciOi" not in cleaned
    record = logging.makeLogRecord({"msg": "got %s", "args": (raw,), "levelname": "INFO"})
    line = json.loads(JsonFormatter("test").format(record))
    assert raw not in line["msg"]
    assert line["service"] == "test"
