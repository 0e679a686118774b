"""A request body reaches the upstream as the client sent it.

Compressed bodies are not decoded on the way: aiohttp's server did that by default, so
a 2 KB gzip upload arrived upstream as 2 MB (past `max_body_bytes`, which was checked
against the declared 2 KB) under a `Content-Encoding: gzip` it no longer had, and a
body declared small was buffered whole however far it expanded. The mock and request
validation still read a gzip body, decoded, but never past the cap.
"""

from __future__ import annotations

import copy
import gzip

import orjson

from tollgate.gateway.events.publisher import COMPLETED
from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

KEY = apikeys.generate().raw
CAP = 100_000
BOMB = gzip.compress(b"\0" * 2_000_000)  # about 2 KB, twenty times the cap once decoded
GZIP = {"X-API-Key": KEY, "Content-Encoding": "gzip", "Content-Type": "application/json"}
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/things": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


def test_a_compressed_upload_reaches_the_upstream_as_sent() -> None:
    gw = InProcessGateway(
        lambda upstream: [api_event("open", upstream)], [key_event(KEY)], {"max_body_bytes": CAP}
    )
    try:
        reply = gw.request("POST", "/open/upload", GZIP, BOMB)
        assert reply.status == 200, reply.body
        seen = gw.seen[-1]
        assert seen.body == BOMB  # not 2 MB of zeros
        assert seen.headers["Content-Encoding"] == "gzip"
        assert seen.headers["Content-Length"] == str(len(BOMB))
        [event] = [data for kind, data in gw.publisher.events if kind == COMPLETED]
        assert event["request_bytes"] == len(BOMB)
    finally:
        gw.close()


def test_validation_reads_a_compressed_body_up_to_the_cap() -> None:
    gw = InProcessGateway(
        lambda upstream: [
            api_event(
                "strict",
                upstream,
                openapi_document=DOCUMENT,
                sandbox={"validate_requests": True},
            )
        ],
        [key_event(KEY)],
        {"max_body_bytes": CAP},
    )
    try:
        valid = gzip.compress(orjson.dumps({"name": "Rex"}))
        reply = gw.request("POST", "/strict/things", GZIP, valid)
        assert reply.status == 200, reply.body
        assert gw.seen[-1].body == valid  # forwarded as sent
        invalid = gzip.compress(orjson.dumps({"name": 3}))
        reply = gw.request("POST", "/strict/things", GZIP, invalid)
        assert reply.status == 400
        assert orjson.loads(reply.body)["violations"][0]["pointer"] == "/body/name"
        reply = gw.request("POST", "/strict/things", GZIP, BOMB)
        assert reply.status == 413, reply.body
        assert len(gw.seen) == 1
    finally:
        gw.close()


def test_validation_reads_every_member_of_a_gzip_body() -> None:
    """A gzip body is its members one after the other (RFC 1952), and upstreams read
    them all: an empty first member must not stand for the body that is checked (an
    optional body: empty conforms) while the upstream reads the second."""
    optional = copy.deepcopy(DOCUMENT)
    optional["paths"]["/things"]["post"]["requestBody"]["required"] = False
    gw = InProcessGateway(
        lambda upstream: [
            api_event(
                "loose",
                upstream,
                openapi_document=optional,
                sandbox={"validate_requests": True},
            )
        ],
        [key_event(KEY)],
        {"max_body_bytes": CAP},
    )
    try:
        smuggled = gzip.compress(b"") + gzip.compress(orjson.dumps({"name": 3}))
        assert gzip.decompress(smuggled) == b'{"name":3}'  # what the upstream reads
        reply = gw.request("POST", "/loose/things", GZIP, smuggled)
        assert reply.status == 400, reply.body
        assert orjson.loads(reply.body)["violations"][0]["pointer"] == "/body/name"
        split = gzip.compress(b"") + gzip.compress(orjson.dumps({"name": "Rex"}))
        reply = gw.request("POST", "/loose/things", GZIP, split)
        assert reply.status == 200, reply.body
        assert gw.seen[-1].body == split  # forwarded as sent
        halves = gzip.compress(b"\0" * (CAP // 2 + 1)) * 2  # over the cap only together
        reply = gw.request("POST", "/loose/things", GZIP, halves)
        assert reply.status == 413, reply.body
        assert len(gw.seen) == 1
    finally:
        gw.close()
