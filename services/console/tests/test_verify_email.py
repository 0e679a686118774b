"""The page a verification email links to: opening the link spends nothing (mail
scanners open links), one click confirms; a used link says so and, signed in, offers
a new one; EN and zh."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from .fakes import FakeBackends, console, csrf, problem, sign_in

TOKEN = "tok-verify-123"


@dataclass
class VerifyingBackends(FakeBackends):
    """Accounts' verification routes on top of the shared fake."""

    verified: list[str] = field(default_factory=list)
    resent: int = 0

    def accounts_post(self, request: httpx.Request, path: str) -> httpx.Response:
        if path == "/v1/auth/verify-email":
            token = httpx.Response(200, content=request.content).json()["token"]
            if token != TOKEN or token in self.verified:
                return problem(400, "Bad Request", "Invalid or expired verification link.")
            self.verified.append(token)
            return httpx.Response(204)
        if path == "/v1/auth/verify-email/resend":
            if not request.headers.get("authorization", "").startswith("Bearer access-"):
                return problem(401, "Unauthorized")
            self.resent += 1
            return httpx.Response(202, json={"detail": "sent"})
        return super().accounts_post(request, path)


async def test_the_link_confirms_with_one_click_and_only_once() -> None:
    fake = VerifyingBackends()
    async with console(fake) as client:
        opened = await client.get("/verify-email", params={"token": TOKEN})
        assert opened.status_code == 200
        assert fake.verified == []  # opening the link spends nothing
        assert f'value="{TOKEN}"' in opened.text
        confirmed = await client.post(
            "/verify-email", data={"token": TOKEN, "csrf_token": csrf(client)}
        )
        assert confirmed.status_code == 200
        assert "Your email address is confirmed" in confirmed.text
        assert fake.verified == [TOKEN]
        again = await client.post(
            "/verify-email", data={"token": TOKEN, "csrf_token": csrf(client)}
        )
        assert again.status_code == 400
        assert "Invalid or expired verification link." in again.text
        assert "/signin?next=/verify-email" in again.text  # signed out: sign in for a new link


async def test_a_signed_in_user_asks_for_a_new_link_in_chinese() -> None:
    fake = VerifyingBackends()
    async with console(fake) as client:
        await sign_in(client)
        client.cookies.set("tg_lang", "zh-Hans")
        page = await client.get("/verify-email")
        assert "确认您的邮箱地址" in page.text
        assert 'action="/verify-email/resend"' in page.text
        resent = await client.post("/verify-email/resend", data={"csrf_token": csrf(client)})
        assert resent.status_code == 200
        assert fake.resent == 1
        assert "新的链接已发送" in resent.text
