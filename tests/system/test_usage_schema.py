"""Schemathesis against the running usage service, with every check
(`tollgate.kit.testing.fuzz`): generated valid and invalid requests to every operation
get no 5xx and no response that contradicts the schema.

The service runs as a real process (real Postgres, real broker) and verifies tokens
against a JWKS served by the test; requests carry an admin token so that generated
inputs reach the queries, not just the authorization check. Examples are bounded so
the run stays short on a shared machine.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import schemathesis

from tollgate.kit import localdeps
from tollgate.kit.testing.fuzz import fuzz_operations
from tollgate.kit.testing.tokens import TokenMint

from .services import service_process

pytestmark = pytest.mark.system(timed=False)

EXAMPLES = 4
_RANGE = "`from` before `to`, both in 2000..2199, at most max_range_days apart"
SEMANTIC_RULES = {
    **{
        f"GET /v1/usage/{path}": _RANGE
        for path in ("summary", "timeseries", "top", "errors", "keys/{key_id}", "logs")
    },
    "GET /v1/apis/{api_id}/deprecation-notices": "a cursor must be one this API issued",
}


@contextmanager
def jwks_server(jwks: dict[str, object]) -> Iterator[str]:
    body = json.dumps(jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", localdeps.free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    mint = TokenMint()
    with jwks_server(mint.jwks()) as jwks_url:
        usage = service_process(
            "usage",
            tmp_path,
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topic_prefix,
            database_url=database_factory("usage"),
            extra={"JWKS_URL": jwks_url, "LIVE_MAX_STREAM_SECONDS": "1"},
        )
        usage.start()
        try:
            schema = schemathesis.openapi.from_url(
                f"{usage.url}/openapi.json",
                # No crash cache in the working tree.
                config=schemathesis.Config.from_dict({"cache": {"enabled": False}}),
            )
            report = fuzz_operations(
                schema,
                examples=EXAMPLES,
                headers=mint.headers(admin=True),
                semantic_rules=SEMANTIC_RULES,
            )
        finally:
            usage.stop()
    print(f"\nschemathesis: {report}")
    assert report.operations == 9
    assert not report.failures, "\n".join(report.failures[:10])
