"""Which request headers carry credentials for an API: never shown to customers, never
compared across imports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})
"""The gateway's own key headers, and what browsers send as credentials."""


def credential_header_names(upstream_header_names: Iterable[str], document: Any) -> set[str]:
    """Lower-case header names that carry credentials: the gateway's key headers, the
    upstream's injected headers (admins see their names) and the apiKey headers of the
    API's own OpenAPI `document`."""
    names = set(CREDENTIAL_HEADERS) | {n.lower() for n in upstream_header_names}
    source = document if isinstance(document, dict) else {}
    schemes = (source.get("components") or {}).get("securitySchemes") or {}
    if isinstance(schemes, dict):
        for scheme in schemes.values():
            if isinstance(scheme, dict) and scheme.get("type") == "apiKey":
                name = scheme.get("name")
                if isinstance(name, str):
                    names.add(name.lower())
    return names
