"""The session cookie of a user in many orgs: their roles are claims of the access token,
so its sealed value outgrows the 4,096 bytes a browser keeps in one cookie and is cut
into chunks (`tg_session`, `tg_session.1`, …)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .fakes import FakeBackends, console, csrf, sign_in

ROLES_OF_100_ORGS = "x" * 7000  # accounts' access token for ~100 orgs is ~7,400 bytes


@dataclass
class ManyOrgs(FakeBackends):
    """Accounts answering with an access token as long as a user in ~100 orgs gets."""

    padding: str = ROLES_OF_100_ORGS

    def tokens(self) -> httpx.Response:
        body = super().tokens().json()
        return httpx.Response(
            200, json={**body, "access_token": body["access_token"] + self.padding}
        )


def session_cookies(answer: httpx.Response) -> dict[str, str]:
    """The session's cookies an answer sets (an empty value: deleted), by name."""
    found: dict[str, str] = {}
    for header in answer.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.startswith("tg_session"):
            found[name] = rest.split(";", 1)[0].strip('"')
    return found


async def test_a_session_larger_than_a_cookie_is_kept_in_chunks() -> None:
    fake = ManyOrgs()
    async with console(fake) as client:
        signed_in = await sign_in(client)
        live = await client.get(f"/orgs/{fake.org_id}/live/stream")
    chunks = session_cookies(signed_in)
    assert list(chunks) == ["tg_session", "tg_session.1", "tg_session.2"]
    assert all(0 < len(value) <= 3800 for value in chunks.values())
    assert live.status_code == 200  # signed in: the chunks were put together again
    assert fake.live_tokens == [f"Bearer access-0{ROLES_OF_100_ORGS}"]


async def test_a_missing_or_changed_chunk_is_no_session() -> None:
    fake = ManyOrgs()
    async with console(fake) as client:
        await sign_in(client)
        whole = dict(client.cookies.items())
        client.cookies.set("tg_session.1", whole["tg_session.1"][:-4] + "AAAA", "console.test")
        changed = await client.get(f"/orgs/{fake.org_id}")
        client.cookies.clear()
        for name in ("tg_session", "tg_session.2", "tg_csrf"):
            client.cookies.set(name, whole[name], "console.test")
        missing = await client.get(f"/orgs/{fake.org_id}")
    for answer in (changed, missing):
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/signin")


async def test_sign_out_and_a_shorter_session_delete_the_chunks_left() -> None:
    fake = ManyOrgs(token_ttl=10)  # refreshed on the next page
    async with console(fake) as client:
        await sign_in(client)
        fake.padding = ""  # the user left most orgs: one cookie is enough again
        shorter = await client.get(f"/orgs/{fake.org_id}")
        assert shorter.status_code == 200
        assert fake.refreshes == 1
        assert set(client.cookies.keys()) == {"tg_csrf", "tg_session"}
        fake.padding = ROLES_OF_100_ORGS
        refreshed = await client.get(f"/orgs/{fake.org_id}")
        assert refreshed.status_code == 200
        assert len(session_cookies(refreshed)) == 3
        signed_out = await client.post("/signout", data={"csrf_token": csrf(client)})
        assert set(client.cookies.keys()) == {"tg_csrf"}
    assert set(session_cookies(shorter)) == {"tg_session", "tg_session.1", "tg_session.2"}
    assert session_cookies(shorter)["tg_session.1"] == ""  # deleted
    assert session_cookies(signed_out) == {"tg_session": "", "tg_session.1": "", "tg_session.2": ""}
