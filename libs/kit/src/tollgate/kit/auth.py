"""Human authentication: verifying the accounts service's JWT access tokens locally.

Accounts signs short-lived access tokens with an asymmetric key and publishes the
public keys at `/.well-known/jwks.json`. Every other service verifies tokens here,
with the keys cached and re-fetched only when an unknown `kid` shows up, so no
request waits on accounts. The claim layout (`access_claims`) is defined once, here,
for the issuer and the verifiers alike.

Claims: `sub` (user id), `email`, `adm` (platform admin), `orgs` ({org_id: role}),
`iss`, `aud`, `iat`, `exp`, `jti`, `typ` = "access"; accounts adds `sid` (session)
and `sv` (the version of the user's published state the token was issued from).

What the caller may do comes from the token's `adm` and `orgs` only when the verifier
has no replayed identity state (`JwtVerifier.identity`, set by the service runtime,
see `tollgate.kit.identity`): with it, `CurrentPrincipal` takes the admin flag and the
roles from the current state, refuses deactivated users and revoked sessions, and
the token's role snapshot is ignored.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import jwt
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tollgate.kit.problems import Forbidden, NotFound, ServiceUnavailable, Unauthorized

if TYPE_CHECKING:
    from tollgate.kit.identity import IdentityState

ACCESS_TOKEN_TYPE = "access"
ALGORITHMS = ["EdDSA", "RS256"]


class Role(StrEnum):
    """A member's role in an org, from least to most privileged."""

    viewer = "viewer"
    developer = "developer"
    owner = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.viewer: 0, Role.developer: 1, Role.owner: 2}


@dataclass(frozen=True)
class Principal:
    """The authenticated human behind a request."""

    user_id: uuid.UUID
    email: str
    is_admin: bool = False
    org_roles: Mapping[uuid.UUID, Role] = field(default_factory=dict)

    def role_in(self, org_id: uuid.UUID) -> Role | None:
        return self.org_roles.get(org_id)

    def can(self, org_id: uuid.UUID, at_least: Role) -> bool:
        """Admins can everything; members need at least `at_least` in that org."""
        if self.is_admin:
            return True
        role = self.org_roles.get(org_id)
        return role is not None and role.rank >= at_least.rank


def authorize_org(principal: Principal, org_id: uuid.UUID, at_least: Role = Role.viewer) -> None:
    """Raise 404 when the caller is not in the org (its existence is not revealed) and
    403 when its role is too low."""
    if principal.can(org_id, at_least):
        return
    if principal.role_in(org_id) is None:
        raise NotFound("not-found", "No such organisation.")
    raise Forbidden("forbidden", f"Requires the {at_least} role or higher.")


def require_admin(principal: Principal) -> None:
    """Raise 403 unless the caller is a platform admin."""
    if not principal.is_admin:
        raise Forbidden("forbidden", "Platform admins only.")


def access_claims(
    *,
    user_id: uuid.UUID,
    email: str,
    is_admin: bool,
    org_roles: Mapping[uuid.UUID, Role],
    issuer: str,
    audience: str,
    ttl_seconds: int,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of an access token (the issuer signs them)."""
    issued = int(now if now is not None else time.time())
    return {
        "sub": str(user_id),
        "email": email,
        "adm": is_admin,
        "orgs": {str(org): str(role) for org, role in org_roles.items()},
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "typ": ACCESS_TOKEN_TYPE,
    }


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Build the principal from verified claims."""
    return Principal(
        user_id=uuid.UUID(claims["sub"]),
        email=str(claims.get("email", "")),
        is_admin=bool(claims.get("adm", False)),
        org_roles={uuid.UUID(org): Role(role) for org, role in claims.get("orgs", {}).items()},
    )


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified access token says: the principal as of issue, `iat`, and the
    `sv` and `sid` claims (None in tokens that carry none)."""

    principal: Principal
    issued_at: int
    state_version: int | None = None
    session_id: uuid.UUID | None = None


class JwtVerifier:
    """Verifies access tokens against a JWKS (fetched from a URL, or given)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        refresh_interval: float = 30.0,
    ) -> None:
        if jwks_url is None and jwks is None:
            raise ValueError("give jwks_url or jwks")
        self._issuer = issuer
        self._audience = audience
        self._jwks_url = jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_fetch = 0.0
        self._refresh_interval = refresh_interval
        self._lock = asyncio.Lock()
        self.identity: IdentityState | None = None
        """The replayed users and memberships to authorise against; None: the token's
        own claims decide (tests, tools)."""
        if jwks is not None:
            self._load(jwks)

    def _load(self, jwks: Mapping[str, Any]) -> None:
        keys = {}
        for entry in jwks.get("keys", []):
            key = jwt.PyJWK(dict(entry))
            keys[str(entry.get("kid", ""))] = key
        self._keys = keys

    def _fetch_sync(self) -> dict[str, Any]:
        assert self._jwks_url is not None
        with urllib.request.urlopen(self._jwks_url, timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    async def _key_for(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None or self._jwks_url is None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._last_fetch > self._refresh_interval:
                self._last_fetch = time.monotonic()
                try:
                    self._load(await asyncio.to_thread(self._fetch_sync))
                except Exception as exc:
                    raise ServiceUnavailable(
                        "token-keys-unavailable", "Token keys unavailable."
                    ) from exc
                key = self._keys.get(kid)
            return key

    async def verify(self, token: str) -> Principal:
        """The principal of a valid access token (roles as the token states them);
        401 problem otherwise."""
        return (await self.verify_issued(token)).principal

    async def verify_issued(self, token: str) -> VerifiedToken:
        """The principal of a valid access token, with when and from which state
        version it was issued."""
        key = await self._key_for(unverified_kid(token))
        if key is None:
            raise unauthorized("Unknown signing key.")
        claims = decode_access_token(
            token, key, algorithms=ALGORITHMS, audience=self._audience, issuer=self._issuer
        )
        try:
            version, sid = claims.get("sv"), claims.get("sid")
            return VerifiedToken(
                principal=principal_from_claims(claims),
                issued_at=int(claims["iat"]),
                state_version=int(version) if version is not None else None,
                session_id=uuid.UUID(str(sid)) if sid is not None else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise unauthorized("Invalid token claims.") from exc


def unverified_kid(token: str) -> str:
    """The `kid` header of a token (not yet verified: only to pick the key); 401 when the
    token is not a JWT at all."""
    try:
        return str(jwt.get_unverified_header(token).get("kid", ""))
    except jwt.PyJWTError as exc:
        raise unauthorized("Malformed token.") from exc


def decode_access_token(
    token: str, key: Any, *, algorithms: Sequence[str], audience: str, issuer: str
) -> dict[str, Any]:
    """The raw claims of an access token verified with `key`: signature, `exp`, `iss`,
    `aud` and `typ` = "access" checked, the registered claims required; 401 problem
    otherwise. The one way every verifier (the kit's and accounts' own) decodes tokens."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=list(algorithms),
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("Token expired.") from exc
    except jwt.PyJWTError as exc:
        raise unauthorized("Invalid token.") from exc
    if claims.get("typ") != ACCESS_TOKEN_TYPE:
        raise unauthorized("Not an access token.")
    return claims


def unauthorized(detail: str) -> Unauthorized:
    """A 401 problem with the bearer challenge."""
    return Unauthorized("unauthorized", detail)


def bearer_token(request: Request) -> str:
    """The bearer token of the request; 401 when absent."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("Missing bearer token.")
    return token.strip()


BEARER_SCHEME = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="An access token from the accounts service (`POST /v1/auth/token`).",
    auto_error=False,
)
"""The OpenAPI security scheme of every route that needs a token; the check itself is
`bearer_token` (our 401 problem with the challenge, not FastAPI's 403)."""


def _declared_bearer_token(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
) -> str:
    return bearer_token(request)


BearerToken = Annotated[str, Depends(_declared_bearer_token)]
"""FastAPI dependency: the request's bearer token (401 when absent), declared in the
OpenAPI document as the `bearerAuth` scheme."""


async def _principal_of(
    request: Request, verified: VerifiedToken, arrived: float | None = None
) -> Principal:
    """The caller a verified token names, as the identity state knows it (when the
    service follows it)."""
    verifier: JwtVerifier = request.app.state.jwt_verifier
    if verifier.identity is None:
        return verified.principal
    return await verifier.identity.current(
        verified, wanted_org=requested_org(request), arrived=arrived
    )


async def _current_principal(request: Request, token: BearerToken) -> Principal:
    arrived = time.monotonic()
    verifier: JwtVerifier = request.app.state.jwt_verifier
    verified = await verifier.verify_issued(token)
    principal = await _principal_of(request, verified, arrived)
    request.state.principal = principal  # the actor of the audit record (kit.audit)
    request.state.verified_token = verified
    return principal


async def principal_now(request: Request) -> Principal:
    """The caller of `request` as the identity state knows it now, for an answer that
    lasts (a stream checks again each tick): the same problems as at the start for a
    caller deactivated, signed out or revoked since. Needs `CurrentPrincipal` first."""
    return await _principal_of(request, request.state.verified_token)


def requested_org(request: Request) -> uuid.UUID | None:
    """The org a request names (`{org_id}` in its path, else `?org_id=`), if any."""
    raw = request.path_params.get("org_id") or request.query_params.get("org_id")
    if not raw:
        return None
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


CurrentPrincipal = Annotated[Principal, Depends(_current_principal)]
"""FastAPI dependency: the verified caller (uses `app.state.jwt_verifier`), with its
admin flag and roles from the replayed identity state when the verifier has one."""
