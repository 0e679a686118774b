"""Upstream connections are checked against the private-network policy at connect time:
the name is resolved, every address checked and the connection made to a checked
address, so a name that later resolves to loopback or metadata is never reached
(issue #10)."""

from __future__ import annotations

import ipaddress

from tollgate.kit import apikeys
from tollgate.kit.netpolicy import DestinationRefused, IpAddress, NetworkPolicy

from .inprocess import InProcessGateway, api_event, key_event

KEY = apikeys.generate().raw


def test_loopback_upstreams_are_refused_without_allow_private() -> None:
    gw = InProcessGateway(
        lambda upstream: [
            api_event("literal", upstream),
            api_event("named", upstream.replace("127.0.0.1", "localhost")),
            api_event("legacy", upstream.replace("127.0.0.1", "0x7f.1")),
        ],
        [key_event(KEY)],
        settings={"allow_private_upstreams": False},
    )
    try:
        for slug in ("literal", "named", "legacy"):
            reply = gw.request("GET", f"/{slug}/hello", {"X-API-Key": KEY})
            assert reply.status == 502, (slug, reply.body)
            assert b"upstream-refused" in reply.body
            _type, event = gw.publisher.events[-1]
            assert (event["status"], event["cost"]) == (502, 0)
        assert gw.seen == []
    finally:
        gw.close()


def test_a_name_is_connected_to_the_checked_address_and_rechecked_after_its_ttl() -> None:
    """`upstream.test` does not exist in DNS: reaching the local upstream at all proves
    the connection goes to the address the policy checked. Then the name "rebinds" to
    a metadata address and, once the cached resolution expires, is refused."""
    answers: list[str] = ["127.0.0.1"]
    lookups: list[str] = []

    async def resolve(host: str, port: int, policy: NetworkPolicy) -> list[IpAddress]:
        lookups.append(host)
        address = ipaddress.ip_address(answers[-1])
        reason = policy.refusal(address)
        if reason is not None:
            raise DestinationRefused(reason)
        return [address]

    gw = InProcessGateway(
        lambda upstream: [api_event("api", upstream.replace("127.0.0.1", "upstream.test"))],
        [key_event(KEY)],
        settings={
            "allow_private_upstreams": False,
            "upstream_allowed_networks": "127.0.0.1/32",
            "upstream_dns_ttl_s": 0.2,
        },
        resolve=resolve,
    )
    try:
        for _ in range(5):
            assert gw.request("GET", "/api/hello", {"X-API-Key": KEY}).status == 200
        assert len(gw.seen) == 5
        assert lookups == ["upstream.test"]  # cached: one lookup for five requests
        answers.append("169.254.169.254")
        import time

        time.sleep(0.3)
        statuses = []
        for _ in range(5):
            statuses.append(gw.request("GET", "/api/hello", {"X-API-Key": KEY}).status)
            time.sleep(0.05)
        # At most the request that triggered the background re-check still used the
        # old (checked) address; after it, the refused name is never connected to.
        assert statuses[-3:] == [502, 502, 502], statuses
        assert len(gw.seen) <= 6
    finally:
        gw.close()


def test_an_internationalised_upstream_name_is_used_in_its_ascii_form() -> None:
    looked_up: list[str] = []

    async def resolve(host: str, port: int, policy: NetworkPolicy) -> list[IpAddress]:
        looked_up.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    gw = InProcessGateway(
        lambda upstream: [api_event("api", upstream.replace("127.0.0.1", "bücher.test"))],
        [key_event(KEY)],
        resolve=resolve,
    )
    try:
        reply = gw.request("GET", "/api/hello", {"X-API-Key": KEY})
        assert reply.status == 200, reply.body
        assert looked_up == ["xn--bcher-kva.test"]
        assert gw.seen[-1].headers["Host"].startswith("xn--bcher-kva.test:")
    finally:
        gw.close()
