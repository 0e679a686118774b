"""Schemathesis against the running usage service: no generated request gets a 5xx.

The service runs as a real process (real Postgres, real broker) and verifies tokens
against a JWKS served by the test; requests carry an admin token so that generated
inputs reach the queries, not just the authorization check. Examples are bounded so
the run stays short on a shared machine.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tollgate.kit import localdeps
from tollgate.kit.testing.tokens import TokenMint

from .services import service_process

pytestmark = pytest.mark.system


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


def test_generated_requests_never_get_a_5xx(
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
            run = subprocess.run(
                [
                    str(Path(sys.executable).parent / "schemathesis"),
                    "run",
                    f"{usage.url}/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    "10",
                    "--generation-deterministic",
                    "--workers",
                    "1",
                    "-H",
                    f"Authorization: Bearer {mint.token(admin=True)}",
                ],
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
        finally:
            usage.stop()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Tested: 8" in run.stdout, run.stdout[-2000:]
