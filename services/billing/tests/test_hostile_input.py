"""Hostile request bodies get a 4xx naming the problem and change nothing: amounts and
settings are JSON integers only (not `"10"`, `true`, `1.5`; `false` is not a reserve
of 0; `5.0` is an integer to JSON Schema, so it is 5), and a deeply nested body is
refused before anything parses it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tollgate.kit.testing.tokens import TokenMint

from .factories import api_client, migrated, settings_for

NOT_INTEGERS: list[Any] = ["10", True, False, 1.5, -2.5, "1e3", None, [10], {"amount": 10}]


def _error_fields(reply: Any) -> set[str]:
    return {str(e["loc"][-1]) for e in reply.json().get("errors", []) if e["loc"]}


@pytest.mark.parametrize("amount", NOT_INTEGERS)
async def test_top_ups_and_adjustments_take_integer_amounts_only(
    database_factory: Callable[[str], str], amount: Any
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        top_up = await client.post(
            f"/v1/orgs/{org}/credits",
            json={"amount": amount},
            headers={**admin, "Idempotency-Key": "t"},
        )
        adjustment = await client.post(
            f"/v1/orgs/{org}/adjustments",
            json={"amount": amount, "kind": "adjustment", "reason": "typed"},
            headers={**admin, "Idempotency-Key": "a"},
        )
        balance = await client.get(f"/v1/orgs/{org}/balance", headers=admin)

    for reply in (top_up, adjustment):
        assert reply.status_code == 422, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert _error_fields(reply) == {"amount"}
    assert balance.json()["balance"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reserve", False),
        ("reserve", True),
        ("reserve", "5"),
        ("reserve", 2.5),
        ("low_threshold", False),
        ("low_threshold", "100"),
        ("low_threshold", 10.5),
    ],
)
async def test_billing_settings_take_integer_credits_only(
    database_factory: Callable[[str], str], field: str, value: Any
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        before = await client.get(f"/v1/orgs/{org}/billing-settings", headers=admin)
        reply = await client.patch(
            f"/v1/orgs/{org}/billing-settings", json={field: value}, headers=admin
        )
        after = await client.get(f"/v1/orgs/{org}/billing-settings", headers=admin)

    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert _error_fields(reply) == {field}
    assert after.json() == before.json()


async def test_zero_is_still_a_reserve(database_factory: Callable[[str], str]) -> None:
    # The control: integer 0 is a valid reserve; only `false` posing as 0 is refused.
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        reply = await client.patch(
            f"/v1/orgs/{org}/billing-settings", json={"reserve": 0}, headers=admin
        )
        whole = await client.patch(
            f"/v1/orgs/{org}/billing-settings", json={"low_threshold": 250.0}, headers=admin
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["reserve"] == 0
    assert whole.status_code == 200, whole.text
    assert whole.json()["low_threshold"] == 250


@pytest.mark.parametrize("depth", [65, 900, 5000, 100_000])
async def test_deeply_nested_bodies_are_refused_with_a_4xx(
    database_factory: Callable[[str], str], depth: int
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    org = uuid.uuid4()
    nested = "[" * depth + "]" * depth
    async with api_client(settings, mint) as (client, _):
        reply = await client.post(
            f"/v1/orgs/{org}/credits",
            content=f'{{"amount": 5, "reason": {nested}}}',
            headers={**admin, "Idempotency-Key": "deep", "Content-Type": "application/json"},
        )
        balance = await client.get(f"/v1/orgs/{org}/balance", headers=admin)

    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert "nested" in reply.json()["detail"]
    assert balance.json()["balance"] == 0


async def test_a_body_nested_within_the_limit_reaches_validation(
    database_factory: Callable[[str], str],
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    nested = "[" * 63 + "]" * 63  # 64 levels with the enclosing object
    async with api_client(settings, mint) as (client, _):
        reply = await client.post(
            f"/v1/orgs/{uuid.uuid4()}/credits",
            content=f'{{"amount": 5, "reason": {nested}}}',
            headers={**admin, "Idempotency-Key": "deep", "Content-Type": "application/json"},
        )
    assert reply.status_code == 422, reply.text
    assert _error_fields(reply) == {"reason"}
