"""CORS for browser callers on other origins (the developer portal's try-it panel).

Off unless `cors_origins` names origins. For a listed origin, a preflight (`OPTIONS`
with `Access-Control-Request-Method`) is answered by the gateway itself, without a key
and without reaching the upstream or producing an event; every other answer to that
origin carries `Access-Control-Allow-Origin` and exposes the headers a client reads
(request id, rate-limit fields). Credentials (cookies) are never allowed: callers
authenticate with their API key. Unlisted origins get no CORS headers at all, so the
browser keeps its same-origin rule.
"""

from __future__ import annotations

from multidict import CIMultiDict

from tollgate.gateway.listener import Request, Response

EXPOSED = (
    "X-Request-ID, RateLimit, RateLimit-Policy, RateLimit-Limit, RateLimit-Remaining, "
    "RateLimit-Reset, Retry-After, Deprecation, Sunset"
)
_PREFLIGHT_MAX_AGE_S = "600"


class CorsPolicy:
    """The origins browsers may call the gateway from."""

    __slots__ = ("origins",)

    def __init__(self, origins: str) -> None:
        self.origins = frozenset(
            part.strip().rstrip("/") for part in origins.split(",") if part.strip()
        )

    def allowed_origin(self, request: Request) -> str | None:
        """The request's `Origin` when it is listed, else None."""
        origin = request.headers.get("Origin")
        return origin if origin is not None and origin in self.origins else None

    @staticmethod
    def preflight(request: Request, origin: str) -> Response | None:
        """The answer to a preflight from a listed origin; None for any other request."""
        method = request.headers.get("Access-Control-Request-Method")
        if request.method != "OPTIONS" or not method:
            return None
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": method,
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE_S,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
        return Response(status=204, headers=headers)


CORS_FIELDS = frozenset({"access-control-allow-origin", "access-control-expose-headers", "vary"})
"""The (lowercase) names `cors_headers` sets: an upstream's own copies are replaced."""


def cors_headers(origin: str) -> list[tuple[str, str]]:
    """What marks an answer as readable by `origin`."""
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Expose-Headers", EXPOSED),
        ("Vary", "Origin"),
    ]


def add_cors_headers(headers: CIMultiDict[str] | dict[str, str], origin: str) -> None:
    """Mark an answer as readable by `origin`."""
    for name, value in cors_headers(origin):
        headers[name] = value
