"""Access tokens: accepted when valid, refused (401) when expired, forged, for another
audience, or signed by an unknown key; new keys are fetched from the JWKS URL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tollgate.kit.auth import JwtVerifier, Role, authorize_org
from tollgate.kit.problems import Problem
from tollgate.kit.testing.tokens import AUDIENCE, ISSUER, TokenMint


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict[str, object]]]:
    """A JWKS endpoint whose document the test can swap (key rotation)."""
    document: dict[str, object] = {"keys": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", document
    server.shutdown()
    server.server_close()


async def test_valid_token_gives_the_principal_with_roles() -> None:
    mint = TokenMint()
    org = uuid.uuid4()
    user = uuid.uuid4()
    principal = await mint.verifier().verify(
        mint.token(user_id=user, email="dev@example.com", orgs={org: "developer"})
    )
    assert principal.user_id == user
    assert principal.role_in(org) is Role.developer
    assert not principal.is_admin
    authorize_org(principal, org, Role.viewer)
    with pytest.raises(Problem) as too_low:
        authorize_org(principal, org, Role.owner)
    assert too_low.value.status == 403
    with pytest.raises(Problem) as other_org:
        authorize_org(principal, uuid.uuid4())
    assert other_org.value.status == 404


@pytest.mark.parametrize("case", ["expired", "forged", "audience", "garbage"])
async def test_bad_tokens_are_refused(case: str) -> None:
    mint = TokenMint()
    verifier = mint.verifier()
    if case == "expired":
        token = mint.token(ttl_seconds=-10)
    elif case == "forged":
        token = TokenMint(kid=mint.kid).token()  # same kid, different key
    elif case == "audience":
        verifier = JwtVerifier(issuer=ISSUER, audience="someone-else", jwks=mint.jwks())
        token = mint.token()
    else:
        token = "not.a.token"
    with pytest.raises(Problem) as refused:
        await verifier.verify(token)
    assert refused.value.status == 401


async def test_rotated_key_is_fetched_from_the_jwks_url(
    jwks_server: tuple[str, dict[str, object]],
) -> None:
    url, document = jwks_server
    old, new = TokenMint(kid="k1"), TokenMint(kid="k2")
    document["keys"] = old.jwks()["keys"]
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=url, refresh_interval=0)
    assert (await verifier.verify(old.token(email="a@x.io"))).email == "a@x.io"
    document["keys"] = [*old.jwks()["keys"], *new.jwks()["keys"]]
    assert (await verifier.verify(new.token(email="b@x.io"))).email == "b@x.io"
    with pytest.raises(Problem):
        await verifier.verify(TokenMint(kid="k3").token())
