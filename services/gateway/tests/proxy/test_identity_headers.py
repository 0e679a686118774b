"""The caller's identity reaches the upstream signed; an upstream using the kit's
verifier accepts it once and refuses a forged, moved, replayed or stale copy; a client
can never smuggle its own identity headers through (issue #15)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tollgate.contracts.events.billing import PastQuota, PlanState, PlanStatus
from tollgate.gateway.proxy import gate
from tollgate.kit import apikeys
from tollgate.kit.upstream_identity import (
    KEY_NAME,
    ORG_ID,
    SIGNATURE,
    CallerIdentity,
    IdentityRefused,
    IdentityVerifier,
)

from .inprocess import InProcessGateway, Seen, api_event, key_event

SECRET = "identity-secret-for-tests"
KEY = apikeys.generate().raw
TEST_KEY = apikeys.generate("test").raw
BROKEN_KEY = apikeys.generate().raw
SCOPES = ["sms:send", "a"]
ORG = uuid.uuid4()
KEY_ID = uuid.uuid4()


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        lambda upstream: [
            api_event("open", upstream),
            api_event("prefixed", upstream + "/base/v2"),
            api_event("sandboxed", upstream + "/live", sandbox_url=upstream + "/sandbox/v0"),
        ],
        [
            key_event(KEY, org_id=ORG, key_id=KEY_ID, name="Lager 東京 #1", scopes=SCOPES),
            key_event(TEST_KEY, org_id=ORG, environment="test"),
            key_event(BROKEN_KEY, org_id=ORG, scopes=["a", "b\r\nX-Injected: 1"]),
        ],
        settings={"identity_secrets": f"{SECRET},older-secret"},
    )
    try:
        yield gateway
    finally:
        gateway.close()


def upstream_path(seen: Seen) -> str:
    return seen.raw_path.partition("?")[0]


def verify(seen: Seen, verifier: IdentityVerifier | None = None) -> CallerIdentity:
    verifier = verifier or IdentityVerifier(SECRET)
    return verifier.verify(seen.method, upstream_path(seen), seen.headers)


def test_the_upstream_verifies_who_called(gw: InProcessGateway) -> None:
    reply = gw.request("POST", "/open/sms/messages?x=1", {"X-API-Key": KEY}, b"{}")
    assert reply.status == 200, reply.body
    identity = verify(gw.seen[-1])
    assert identity.org_id == str(ORG)
    assert identity.key_id == str(KEY_ID)
    assert identity.key_name == "Lager 東京 #1"
    assert identity.scopes == {"sms:send", "a"}
    assert identity.plan is None
    assert identity.request_id == reply.headers["x-request-id"]


def test_a_prefixed_upstream_path_is_what_is_signed(gw: InProcessGateway) -> None:
    reply = gw.request("GET", "/prefixed/caf%C3%A9/c%20d", {"X-API-Key": KEY})
    assert reply.status == 200, reply.body
    seen = gw.seen[-1]
    assert upstream_path(seen).startswith("/base/v2/")
    verify(seen)


def test_a_sandbox_verifies_the_path_it_received(gw: InProcessGateway) -> None:
    """A test key's request goes to the sandbox, under its own base path; what is
    signed is that path, not the live upstream's."""
    reply = gw.request("GET", "/sandboxed/orders/7", {"X-API-Key": TEST_KEY})
    assert reply.status == 200, reply.body
    seen = gw.seen[-1]
    assert upstream_path(seen) == "/sandbox/v0/orders/7"
    assert verify(seen).org_id == str(ORG)


def test_an_identity_value_with_a_line_break_is_never_sent(gw: InProcessGateway) -> None:
    """The identity lines go into the request head as rendered: a value that could
    start a header of its own stops the request before anything reaches the upstream."""
    before = len(gw.seen)
    reply = gw.request("GET", "/open/x", {"X-API-Key": BROKEN_KEY})
    assert reply.status == 502, reply.body
    assert len(gw.seen) == before
    assert gw.request("GET", "/open/x", {"X-API-Key": KEY}).status == 200
    assert "X-Injected" not in gw.seen[-1].headers


def test_a_request_slow_to_arrive_is_signed_when_it_is_sent(
    gw: InProcessGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small body is read whole before the request goes upstream, and a client may
    trickle it in for longer than an upstream's skew window: the signature carries the
    time the request is sent, not when it arrived."""
    arrived = gate._Call.__init__

    def arrived_40_s_ago(call: gate._Call, *args: object) -> None:
        arrived(call, *args)  # type: ignore[arg-type]
        call.started_wall -= 40

    monkeypatch.setattr(gate._Call, "__init__", arrived_40_s_ago)
    reply = gw.request("POST", "/open/slow", {"X-API-Key": KEY}, b"{}")
    assert reply.status == 200, reply.body
    assert verify(gw.seen[-1]).key_id == str(KEY_ID)


def test_client_sent_identity_headers_are_replaced(gw: InProcessGateway) -> None:
    forged = {
        "X-API-Key": KEY,
        "X-Tollgate-Org-Id": str(uuid.uuid4()),
        "x-tollgate-key-name": "admin",
        "X-Tollgate-Plan": "enterprise",
        "X-Tollgate-Identity": "t=1,id=x,v1=" + "0" * 64,
    }
    assert gw.request("GET", "/open/x", forged).status == 200
    seen = gw.seen[-1]
    assert seen.headers[ORG_ID] == str(ORG)
    assert seen.headers[KEY_NAME] != "admin"
    assert "X-Tollgate-Plan" not in seen.headers
    assert verify(seen).plan is None


def test_forged_moved_replayed_and_stale_header_sets_are_refused(gw: InProcessGateway) -> None:
    assert gw.request("GET", "/open/orders", {"X-API-Key": KEY}).status == 200
    seen = gw.seen[-1]
    verifier = IdentityVerifier(SECRET)
    path = upstream_path(seen)
    signed_at = int(seen.headers[SIGNATURE].split(",")[0][2:])

    def refused(method: str, path: str, headers: dict[str, str], now: float) -> str:
        with pytest.raises(IdentityRefused) as caught:
            verifier.verify(method, path, headers, now=now)
        return caught.value.reason

    other_org = {**seen.headers, ORG_ID: str(uuid.uuid4())}
    assert refused("GET", path, other_org, signed_at) == "identity-forged"
    assert refused("DELETE", path, seen.headers, signed_at) == "identity-forged"
    assert refused("GET", "/orders/1", seen.headers, signed_at) == "identity-forged"
    assert refused("GET", path, seen.headers, signed_at + 31) == "identity-stale"
    assert refused("GET", path, seen.headers, signed_at - 31) == "identity-stale"
    wrong_key = IdentityVerifier("not-the-gateways")
    with pytest.raises(IdentityRefused):
        wrong_key.verify("GET", path, seen.headers, now=signed_at)
    no_headers = {k: v for k, v in seen.headers.items() if not k.startswith("X-Tollgate")}
    assert refused("GET", path, no_headers, signed_at) == "identity-missing"
    # The genuine set passes once (with 30 s of clock skew), then it is a replay.
    verifier.verify("GET", path, seen.headers, now=signed_at + 29)
    assert refused("GET", path, seen.headers, signed_at + 29) == "identity-replayed"


def test_upstreams_keep_accepting_during_a_secret_rotation(gw: InProcessGateway) -> None:
    assert gw.request("GET", "/open/r", {"X-API-Key": KEY}).status == 200
    verify(gw.seen[-1], IdentityVerifier(f"newer-secret,{SECRET}"))


def test_without_a_secret_no_identity_is_sent_and_client_copies_still_go() -> None:
    gateway = InProcessGateway(lambda upstream: [api_event("open", upstream)], [key_event(KEY)])
    try:
        reply = gateway.request("GET", "/open/x", {"X-API-Key": KEY, "X-Tollgate-Org-Id": "evil"})
        assert reply.status == 200
        assert not [h for h in gateway.seen[-1].headers if h.lower().startswith("x-tollgate")]
    finally:
        gateway.close()


def test_the_orgs_plan_is_signed_when_the_gateway_knows_one() -> None:
    org, plan_id = uuid.uuid4(), uuid.uuid4()
    raw = apikeys.generate().raw
    gateway = InProcessGateway(
        lambda upstream: [api_event("open", upstream)],
        [key_event(raw, org_id=org)],
        settings={"identity_secrets": SECRET},
    )
    try:
        now = datetime.now(UTC)
        gateway.gate._registry.apply_plan(
            str(org),
            PlanState(
                org_id=org,
                plan_id=plan_id,
                plan_name="Pro",
                status=PlanStatus.ACTIVE,
                included_requests=None,
                past_quota=PastQuota.REJECT_402,
                period_start=now - timedelta(days=1),
                period_end=now + timedelta(days=29),
                version=1,
                as_of=now,
            ),
        )
        assert gateway.request("GET", "/open/x", {"X-API-Key": raw}).status == 200
        assert verify(gateway.seen[-1]).plan == str(plan_id)
    finally:
        gateway.close()


def test_a_renamed_key_is_signed_with_its_new_name_and_scopes() -> None:
    raw, key_id, org = apikeys.generate().raw, uuid.uuid4(), uuid.uuid4()
    gateway = InProcessGateway(
        lambda upstream: [api_event("open", upstream)],
        [key_event(raw, key_id=key_id, org_id=org, name="before", scopes=["a"])],
        settings={"identity_secrets": SECRET},
    )
    try:
        assert gateway.request("GET", "/open/x", {"X-API-Key": raw}).status == 200
        assert verify(gateway.seen[-1]).key_name == "before"
        renamed = key_event(raw, key_id=key_id, org_id=org, name="after", scopes=["b"], version=2)
        gateway.gate._registry.apply_key(str(key_id), renamed)
        assert gateway.request("GET", "/open/x", {"X-API-Key": raw}).status == 200
        identity = verify(gateway.seen[-1])
        assert (identity.key_name, identity.scopes) == ("after", {"b"})
    finally:
        gateway.close()
