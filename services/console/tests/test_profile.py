"""The profile page in process: two-factor enrolment with a server-drawn QR code and
recovery codes shown once, disabling it, the password link and signing out everywhere."""

from __future__ import annotations

import base64

from .fakes import PASSWORD, FakeBackends, console, csrf, sign_in


def field(page: str, name: str) -> str:
    return page.split(f'name="{name}" value="', 1)[1].split('"', 1)[0]


async def test_totp_enrolment_shows_a_qr_code_then_the_recovery_codes_once() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        start = await client.post("/profile/totp/enroll", data={"csrf_token": csrf(client)})
        assert start.status_code == 200
        qr = start.text.split("data:image/svg+xml;base64,", 1)[1].split('"', 1)[0]
        assert base64.b64decode(qr).startswith(b"<svg")
        assert "JBSWY3DPEHPK3PXP" in start.text
        sealed = field(start.text, "enrolment")
        assert "otpauth" not in sealed  # sealed, not the URI in clear
        wrong = await client.post(
            "/profile/totp/verify",
            data={
                "csrf_token": csrf(client),
                "password": PASSWORD,
                "code": "000000",
                "enrolment": sealed,
            },
        )
        assert wrong.status_code == 400
        assert 'data-testid="field-error-code"' in wrong.text
        assert 'data-testid="totp-qr"' in wrong.text  # the same QR code again
        not_yours = await client.post(
            "/profile/totp/verify",
            data={
                "csrf_token": csrf(client),
                "password": "not-the-password",
                "code": "123456",
                "enrolment": sealed,
            },
        )
        assert not_yours.status_code == 400
        assert 'data-testid="field-error-password"' in not_yours.text
        right = await client.post(
            "/profile/totp/verify",
            data={
                "csrf_token": csrf(client),
                "password": PASSWORD,
                "code": "123 456",
                "enrolment": sealed,
            },
        )
        assert right.status_code == 200
        assert "aaaa-bbbb" in right.text
        again = await client.get("/profile")
        assert "aaaa-bbbb" not in again.text  # shown once
        assert 'data-testid="totp-disable"' in again.text


async def test_a_pending_sign_in_does_not_open_as_an_enrolment() -> None:
    # Before: one sealing purpose for both forms, so the sealed pending sign-in
    # (email and password), sent as the enrolment of a wrong code, was opened and
    # drawn on the page as the "secret": whoever held that hidden field could read
    # the password in clear through their own session.
    fake = FakeBackends(totp=True)
    async with console(fake) as client:
        form = {"email": "dev@example.com", "password": PASSWORD, "csrf_token": csrf(client)}
        pending = field((await client.post("/signin", data=form)).text, "pending")
        await client.post(
            "/signin/totp", data={"pending": pending, "otp": "123456", "csrf_token": csrf(client)}
        )
        wrong = await client.post(
            "/profile/totp/verify",
            data={
                "csrf_token": csrf(client),
                "password": PASSWORD,
                "code": "000000",
                "enrolment": pending,
            },
        )
        assert wrong.status_code == 400
        assert "correct-horse" not in wrong.text
        assert 'data-testid="totp-qr"' not in wrong.text
        # ... and an enrolment does not open as a pending sign-in.
        await client.post(
            "/profile/totp/disable",
            data={"csrf_token": csrf(client), "password": PASSWORD, "code": "123456"},
        )
        start = await client.post("/profile/totp/enroll", data={"csrf_token": csrf(client)})
        enrolment = field(start.text, "enrolment")
        replayed = await client.post(
            "/signin/totp",
            data={"pending": enrolment, "otp": "123456", "csrf_token": csrf(client)},
        )
        assert replayed.status_code == 400


async def test_disabling_totp_needs_the_password() -> None:
    fake = FakeBackends(totp=True)
    async with console(fake) as client:
        client_form = {"email": "dev@example.com", "password": PASSWORD, "csrf_token": csrf(client)}
        first = await client.post("/signin", data=client_form)
        pending = field(first.text, "pending")
        await client.post(
            "/signin/totp", data={"pending": pending, "otp": "123456", "csrf_token": csrf(client)}
        )
        wrong = await client.post(
            "/profile/totp/disable",
            data={"csrf_token": csrf(client), "password": "nope", "code": "123456"},
        )
        assert wrong.status_code == 400
        assert "Wrong password." in wrong.text
        assert fake.totp is True
        off = await client.post(
            "/profile/totp/disable",
            data={"csrf_token": csrf(client), "password": PASSWORD, "code": "123456"},
        )
        assert off.status_code == 303
        assert fake.totp is False


async def test_password_link_and_sign_out_everywhere() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        refused = await client.post("/profile/password-link")
        assert refused.status_code == 403  # no CSRF token
        sent = await client.post("/profile/password-link", data={"csrf_token": csrf(client)})
        assert sent.status_code == 303
        assert fake.reset_requests == ["dev@example.com"]
        out = await client.post("/profile/signout-everywhere", data={"csrf_token": csrf(client)})
        assert out.status_code == 303
        assert fake.logged_out == ["refresh-0 everywhere"]
        after = await client.get("/profile")
        assert after.status_code == 303


async def test_recovery_codes_are_shown_when_accounts_fails_right_after() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        start = await client.post("/profile/totp/enroll", data={"csrf_token": csrf(client)})
        fake.down_after_write = {"accounts"}
        right = await client.post(
            "/profile/totp/verify",
            data={
                "csrf_token": csrf(client),
                "password": PASSWORD,
                "code": "123456",
                "enrolment": field(start.text, "enrolment"),
            },
        )
    assert fake.totp  # two-factor is on: these codes are the only way back in
    assert right.status_code == 200  # the navigation read after the write: 503, codes lost
    assert "aaaa-bbbb" in right.text
