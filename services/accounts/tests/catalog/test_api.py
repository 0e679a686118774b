"""`/v1/catalog`: anyone reads the active and deprecated APIs and their consumer documents,
never an upstream host, credential, credential header name, sandbox URL or internal route;
`public_catalog = false` closes it to everyone but org members and admins."""

from __future__ import annotations

from pathlib import Path

from ..factories import make_admin, make_api, make_org, running, settings_for, signup

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"
UPSTREAM = "https://93.184.215.14/petstore-upstream"
SANDBOX = "https://93.184.215.15/petstore-sandbox"
SECRET = "upstream-secret-7e41"


async def test_anyone_reads_the_catalog_without_upstream_or_credentials(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        gateway_url="https://gateway.example.com",
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        pets = await make_api(
            svc,
            admin,
            name="Petstore",
            upstream_url=UPSTREAM,
            sandbox_url=SANDBOX,
            price=2,
            upstream_headers={"X-Upstream-Token": SECRET},
        )
        imported = await svc.http.post(
            f"/v1/apis/{pets['id']}/openapi",
            content=PETSTORE.read_bytes(),
            headers={**admin.headers, "content-type": "application/yaml"},
        )
        assert imported.status_code == 200, imported.text
        old = await make_api(svc, admin, name="Old weather")
        sunset = {"status": "deprecated", "sunset_at": "2030-01-01T00:00:00Z"}
        patched = await svc.http.patch(f"/v1/apis/{old['id']}", json=sunset, headers=admin.headers)
        assert patched.status_code == 200, patched.text
        gone = await make_api(svc, admin, name="Gone")
        retired = {"status": "retired"}
        patched = await svc.http.patch(
            f"/v1/apis/{gone['id']}", json=retired, headers=admin.headers
        )
        assert patched.status_code == 200, patched.text

        listed = await svc.http.get("/v1/catalog")
        one = await svc.http.get(f"/v1/catalog/{pets['slug']}")
        document = await svc.http.get(f"/v1/catalog/{pets['slug']}/openapi")
        retired_one = await svc.http.get(f"/v1/catalog/{gone['slug']}")
        unknown = await svc.http.get("/v1/catalog/no-such-api/openapi")

    assert listed.status_code == one.status_code == document.status_code == 200
    by_slug = {a["slug"]: a for a in listed.json()["items"]}
    assert pets["slug"] in by_slug
    assert old["slug"] in by_slug
    assert gone["slug"] not in by_slug
    entry = by_slug[pets["slug"]]
    assert entry == one.json()
    assert entry["name"] == "Petstore"
    assert entry["tags"] == ["pets"]
    assert entry["price"] == 2
    assert by_slug[old["slug"]]["status"] == "deprecated"
    assert by_slug[old["slug"]]["sunset_at"].startswith("2030-01-01")
    assert document.json()["servers"] == [
        {"url": f"https://gateway.example.com/{pets['slug']}", "description": "Tollgate gateway"}
    ]
    assert document.json()["paths"]
    for answer in (listed, one, document):
        for hidden in ("93.184.215", "petstore.swagger.io", SECRET, "X-Upstream-Token"):
            assert hidden.lower() not in answer.text.lower(), (answer.url, hidden)
    assert retired_one.status_code == unknown.status_code == 404
    assert unknown.json()["type"].endswith("/api-not-found")


async def test_a_closed_catalog_answers_members_only(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        public_catalog=False,
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        member, loner = await signup(svc), await signup(svc)
        await make_org(svc, member)
        anonymous = await svc.http.get(f"/v1/catalog/{api['slug']}/openapi")
        outsider = await svc.http.get("/v1/catalog", headers=loner.headers)
        allowed = await svc.http.get("/v1/catalog", headers=member.headers)

    assert anonymous.status_code == 401
    assert outsider.status_code == 403
    assert allowed.status_code == 200
    assert api["slug"] in {a["slug"] for a in allowed.json()["items"]}
