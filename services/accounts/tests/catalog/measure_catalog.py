"""Time `GET /v1/catalog` with 50 APIs, each with an imported OpenAPI document of about
60 operations. Not part of the suite (the file name does not start with `test_`); run it
by name, against this tree or another one (`PYTHONPATH=<tree>/services/accounts/src`):

    .venv/bin/pytest services/accounts/tests/catalog/measure_catalog.py -q -s -p no:randomly

Prints p50 / p95 / mean over 50 anonymous calls (`MEASURE_CALLS`), in process (httpx ASGI
transport, real Postgres), after one warm-up call.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path

from tollgate.accounts.apis.openapi_import import parse_document

from ..factories import make_admin, make_api, running, settings_for

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"
APIS = 50
CALLS = int(os.environ.get("MEASURE_CALLS", "50"))


def _document() -> dict[str, object]:
    doc = parse_document(PETSTORE.read_bytes())
    paths = doc["paths"]
    for n in range(20):
        for path, item in list(doc["paths"].items())[:3]:
            paths[f"/v{n}{path}"] = copy.deepcopy(item)
    return doc


async def test_measure_catalog_with_50_apis(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    body = json.dumps(_document())
    async with running(settings) as svc:
        admin = await make_admin(svc)
        for n in range(APIS):
            api = await make_api(svc, admin, name=f"Measured {n:02d}")
            imported = await svc.http.post(
                f"/v1/apis/{api['id']}/openapi", content=body, headers=admin.headers
            )
            assert imported.status_code == 200, imported.text
        first = await svc.http.get("/v1/catalog")
        assert first.status_code == 200
        assert len(first.json()["items"]) >= APIS
        times = []
        for _ in range(CALLS):
            start = time.perf_counter()
            answer = await svc.http.get("/v1/catalog")
            times.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200
    times.sort()
    print(
        f"\nGET /v1/catalog, {len(first.json()['items'])} APIs, documents of "
        f"{len(body) // 1024} KiB, {CALLS} calls: p50 {statistics.median(times):.1f} ms, "
        f"p95 {times[int(CALLS * 0.95)]:.1f} ms, mean {statistics.fmean(times):.1f} ms"
    )
