"""Header rules of the proxy: what is stripped, what is set, in both directions.

Pure functions, no I/O. Hop-by-hop headers (RFC 9110 §7.6.1, plus every header the
`Connection` header names) never cross the gateway; neither does the API key nor
any client-sent copy of a header the gateway sets itself (`X-Forwarded-*`,
`X-Request-ID`, `traceparent`) or injects (upstream credentials), nor one only a proxy
may send (`Forwarded`, `X-Real-IP`, `X-Original-URL`...), in any spelling of its dashes
as underscores.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Protocol
from urllib.parse import unquote_plus

from multidict import istr

from tollgate.kit.upstream_identity import HEADERS as IDENTITY_HEADERS

# Request fields looked up on every request, named as `istr` (like `aiohttp.hdrs`): a
# case-insensitive multidict then skips folding the name at each lookup, half its cost.
X_API_KEY = istr("X-API-Key")
TRACEPARENT_FIELD = istr("traceparent")
TRACESTATE_FIELD = istr("tracestate")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_SET_BY_GATEWAY = frozenset(
    {
        "host",
        "content-length",
        "x-api-key",
        "expect",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "traceparent",
        "tracestate",
        *(name.lower() for name in IDENTITY_HEADERS),
    }
)
# What only a proxy may say about the request, or what overrides the path an upstream
# routes on (IIS, Symfony and friends honour `X-Original-URL`): from a client, a lie the
# upstream would believe of the gateway, or a way around the route the gateway judged.
_PROXY_ONLY = frozenset(
    {
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "x-forwarded-path",
        "x-forwarded-uri",
        "x-original-url",
        "x-original-uri",
        "x-rewrite-url",
    }
)


REQUEST_DROP = HOP_BY_HOP | _SET_BY_GATEWAY | _PROXY_ONLY
"""Lowercase names of request fields never forwarded; an API adds the names of the
headers it injects (`ApiRecord.request_drop`)."""


def forwarded_fields(
    fields: Iterable[tuple[str, str]], drop: AbstractSet[str]
) -> list[tuple[str, str]]:
    """The request fields not in `drop`, a name's underscores read as dashes: CGI, WSGI
    and many servers read `X_Forwarded_For` as `X-Forwarded-For` (both are
    HTTP_X_FORWARDED_FOR), so a client must not slip a dropped field past in that
    spelling."""
    return [
        (name, value)
        for name, value in fields
        if (low := name.lower()) not in drop
        and ("_" not in low or low.replace("_", "-") not in drop)
    ]


RESPONSE_DROP = HOP_BY_HOP | {"content-length", "x-request-id"}
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$")


_TOKENS: dict[str, frozenset[str]] = {}  # parsed `Connection` values (few distinct ones)


class HeaderLookup(Protocol):
    """Header fields by name: a mapping, a multidict, the upstream's answer headers."""

    def get(self, name: str, /) -> str | None: ...


def connection_tokens(headers: HeaderLookup) -> frozenset[str]:
    """Header names listed in `Connection` (also hop-by-hop)."""
    value = headers.get("Connection") or headers.get("connection")
    if not value:
        return frozenset()
    tokens = _TOKENS.get(value)
    if tokens is None:
        if len(_TOKENS) >= 256:
            _TOKENS.clear()
        tokens = _TOKENS[value] = frozenset(
            t.strip().lower() for t in value.split(",") if t.strip()
        )
    return tokens


def child_traceparent(incoming: str | None, new_flags: str = "01") -> str:
    """A `traceparent` for the upstream call: same trace, new parent span id; a new
    trace (with `new_flags`: sampled unless told) when the client sent none (or a
    malformed one)."""
    # Span and trace ids need uniqueness, not secrecy: the fast PRNG is enough.
    span = f"{random.getrandbits(64) or 1:016x}"
    if incoming:
        match = TRACEPARENT.match(incoming.strip())
        if match and match.group(1) != "0" * 32:
            return f"00-{match.group(1)}-{span}-{match.group(2)}"
    return f"00-{random.getrandbits(128) or 1:032x}-{span}-{new_flags}"


class HeaderFields(Protocol):
    """Request header fields with their repeats (a multidict)."""

    def getall(self, name: str, default: list[str], /) -> list[str]: ...


def forwarded_for(headers: HeaderFields) -> str | None:
    """Every `X-Forwarded-For` field, in order, as one list (RFC 9110 §5.3). A proxy may
    add a field of its own instead of extending the one the client sent (HAProxy's
    `option forwardfor` does): the first field alone is the client's word."""
    values = headers.getall("X-Forwarded-For", [])
    return ", ".join(values) if values else None


class TrustedProxies:
    """Decides the client IP from the peer address and `X-Forwarded-For`."""

    def __init__(self, cidrs: str) -> None:
        self._networks = tuple(
            ipaddress.ip_network(c.strip(), strict=False) for c in cidrs.split(",") if c.strip()
        )

    def trusts(self, ip: str) -> bool:
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client_ip(self, peer: str, forwarded_for: str | None) -> str:
        """The peer, or, behind trusted proxies, the last untrusted X-Forwarded-For hop."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            if hop and not self.trusts(hop):
                return hop
        return peer


def _is_key_param(name: str) -> bool:
    # An upstream decodes parameter names too: `api%5Fkey` is `api_key` to it.
    return name == "api_key" or ("%" in name and unquote_plus(name) == "api_key")


def strip_query_key(query: str) -> str:
    """The query string without any `api_key` parameter, however its name is encoded
    (kept byte-for-byte otherwise)."""
    return "&".join(
        part for part in query.split("&") if part and not _is_key_param(part.split("=", 1)[0])
    )


def query_key(query: str) -> str | None:
    """The value of the first `api_key` parameter, URL-decoded."""
    keys = query_keys(query)
    return keys[0] if keys else None


def query_keys(query: str) -> list[str]:
    """Every `api_key` parameter's value, URL-decoded (names decoded as well)."""
    found = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if _is_key_param(name):
            found.append(unquote_plus(value))
    return found


def is_key_bearer(authorization: str) -> bool:
    """True when an `Authorization` value carries a Tollgate key (`Bearer tg_...`)."""
    return authorization[:7].lower() == "bearer " and authorization[7:].lstrip()[:3] == "tg_"
