"""Signing keyring: rotation keeps the old key valid (and published) until its tokens
have expired, then drops it; replicas pick a rotated file up without a restart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tollgate.accounts.identity import signing
from tollgate.accounts.identity.signing import SigningKeyring, parse_keyring, rotate_keyring
from tollgate.kit.auth import JwtVerifier, access_claims
from tollgate.kit.problems import Problem

TTL = 900


def claims() -> dict[str, object]:
    return access_claims(
        user_id=uuid.uuid4(),
        email="a@example.com",
        is_admin=False,
        org_roles={},
        issuer="tollgate-accounts",
        audience="tollgate",
        ttl_seconds=TTL,
    )


def keyring(path: Path) -> SigningKeyring:
    return SigningKeyring(
        path, issuer="tollgate-accounts", audience="tollgate", access_ttl_seconds=TTL, generate=True
    )


async def test_rotation_keeps_old_tokens_valid_until_they_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_RELOAD_EVERY", 0.0)  # see the file change at once
    path = tmp_path / "keys.pem"
    ring = keyring(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    old_token = ring.sign(claims())
    old_kid = ring.active().kid

    new = rotate_keyring(path, TTL)
    fresh = ring  # the running replica, no restart
    assert fresh.active().kid == new.kid != old_kid
    jwks = fresh.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new.kid}
    verifier = JwtVerifier(issuer="tollgate-accounts", audience="tollgate", jwks=jwks)
    assert await verifier.verify(old_token)
    assert await verifier.verify(fresh.sign(claims()))
    assert fresh.verify(old_token)["sub"]

    # Once the longest access token signed by the old key has expired, it goes.
    later = datetime.now(UTC) + timedelta(seconds=TTL + 1)
    newest = rotate_keyring(path, TTL, now=later)
    kids = [k.kid for k in parse_keyring(path.read_text())]
    assert kids == [newest.kid, new.kid]
    assert old_kid not in kids


def test_tokens_of_unknown_keys_and_garbage_are_refused(tmp_path: Path) -> None:
    ring = keyring(tmp_path / "a.pem")
    other = keyring(tmp_path / "b.pem")
    for token in (other.sign(claims()), "not-a-token", ""):
        with pytest.raises(Problem) as caught:
            ring.verify(token)
        assert caught.value.status == 401


def test_missing_file_without_generation_means_no_signing(tmp_path: Path) -> None:
    ring = SigningKeyring(tmp_path / "absent.pem", issuer="i", audience="a", access_ttl_seconds=TTL)
    assert not ring.available
    assert ring.jwks() == {"keys": []}


def test_verify_gives_raw_claims_and_refuses_what_the_kit_refuses(tmp_path: Path) -> None:
    ring = keyring(tmp_path / "keys.pem")
    assert ring.verify(ring.sign({**claims(), "sid": "session-1"}))["sid"] == "session-1"
    for extra, detail in (
        ({"typ": "refresh"}, "Not an access token."),
        ({"exp": 1}, "Token expired."),
        ({"aud": "someone-else"}, "Invalid token."),
    ):
        with pytest.raises(Problem) as refused:
            ring.verify(ring.sign({**claims(), **extra}))
        assert (refused.value.status, refused.value.detail) == (401, detail)
        assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
