"""Test tokens: mint access tokens the way accounts does, for services' own tests.

`TokenMint` holds a fresh Ed25519 key; `mint.verifier()` is a `JwtVerifier` that
trusts it (set it as `app.state.jwt_verifier`), and `mint.token(...)` signs access
tokens with the real claim layout from `tollgate.kit.auth`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tollgate.kit.auth import JwtVerifier, Role, access_claims

ISSUER = "tollgate-accounts"
AUDIENCE = "tollgate"


class TokenMint:
    """Signs access tokens with a throwaway key."""

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self._key = Ed25519PrivateKey.generate()

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(
            self._key.public_key(), as_dict=True
        )
        jwk.update({"kid": self.kid, "alg": "EdDSA", "use": "sig"})
        return {"keys": [jwk]}

    def verifier(self) -> JwtVerifier:
        return JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=self.jwks())

    def token(
        self,
        *,
        user_id: uuid.UUID | None = None,
        email: str = "user@example.com",
        admin: bool = False,
        orgs: Mapping[uuid.UUID, Role | str] | None = None,
        ttl_seconds: int = 900,
        state_version: int | None = None,
        session_id: uuid.UUID | None = None,
    ) -> str:
        claims = access_claims(
            user_id=user_id or uuid.uuid4(),
            email=email,
            is_admin=admin,
            org_roles={org: Role(role) for org, role in (orgs or {}).items()},
            issuer=ISSUER,
            audience=AUDIENCE,
            ttl_seconds=ttl_seconds,
        )
        if state_version is not None:
            claims["sv"] = state_version  # as accounts adds it (see kit.identity)
        if session_id is not None:
            claims["sid"] = str(session_id)  # the session (refresh-token family)
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(self, **kwargs: Any) -> dict[str, str]:
        """`Authorization` header for a token minted with `token(**kwargs)`."""
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}
