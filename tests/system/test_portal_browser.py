"""The developer portal in a real browser against the real stack of
`test_console_browser` (the same session-scoped stack; its own browser). An anonymous
visitor reads the catalog and the docs of an API imported from the Petstore document (no
upstream host or credential in the document), signs up, confirms the email from the link
the notifier mailed, creates a test key on the docs page, gets a 200 from the try-it panel
and sees the call in their numbers. A signed-in customer: an API imported from
the Petstore document is in the catalog; its docs page draws Scalar from the consumer
document with the four code-sample languages; "create a test key" issues a `tg_test_` key
that the page keeps in session storage; Scalar's try-it panel sends the call from the
browser through the real gateway (which allows the console's origin by CORS) and shows
its 200; the call then appears in the customer's logs explorer and in their numbers for
the API on its docs page; a pasted key never reaches the console (neither its requests nor
its log).
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, Response, expect

from .test_console_browser import (  # the shared stack and browser fixtures
    PASSWORD,
    Stack,
    _user_token,
    browser,
    logged_in_usage,
    new_page,
    shoot,
    sign_in,
    stack,
)

__all__ = ["browser", "stack"]

pytestmark = pytest.mark.system(timed=False)

ROOT = Path(__file__).resolve().parents[2]
PETSTORE = ROOT / "services" / "accounts" / "tests" / "data" / "petstore.yaml"
PASTED = "tg_test_pastedNeverToTheConsole0000000000"
VERIFY_LINK = re.compile(r"(https?://\S+/verify-email\?token=[A-Za-z0-9_\-.~%]+)")


def _import_petstore(stack: Stack) -> str:
    admin = {"authorization": f"Bearer {stack.admin_token}"}
    slug = f"pets-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{stack.accounts}/v1/apis",
        json={
            "slug": slug,
            "name": "Petstore",
            "upstream_url": f"{stack.upstream}/echo",  # answers every Petstore path
            "price": 1,
            "upstream_headers": {"X-Upstream-Token": "upstream-secret-9d1c"},
        },
        headers=admin,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    imported = httpx.post(
        f"{stack.accounts}/v1/apis/{created.json()['id']}/openapi",
        content=PETSTORE.read_bytes(),
        headers={**admin, "content-type": "application/yaml"},
        timeout=10,
    )
    assert imported.status_code == 200, imported.text
    return slug


def _verification_link(stack: Stack, email: str, within: float = 15) -> str:
    """The link in the verification mail the notifier wrote for `email`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for mail in stack.mail_dir.glob("*.txt"):
            text = mail.read_text()
            found = VERIFY_LINK.search(text)
            if email in text and found:
                return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no verification mail for {email}")


def _send_from_try_it(page: Page, stack: Stack, slug: str) -> Response:
    """Scalar's client sends `GET /pets` from the console's origin to the gateway."""
    reference = page.get_by_test_id("portal-reference")
    expect(reference.get_by_text("List all pets").first).to_be_visible(timeout=30_000)
    operation = reference.locator("section", has=page.get_by_text("List all pets")).last
    operation.get_by_role("button", name="Test Request").first.click()
    client = page.locator(".scalar-client, .scalar-app-layout, [role=dialog]").last
    expect(client).to_be_visible()

    def from_gateway(answer: Response) -> bool:
        return answer.url.startswith(f"{stack.gateway}/{slug}/pets") and (
            answer.request.method == "GET"
        )

    with page.expect_response(from_gateway, timeout=15_000) as sent:
        page.get_by_role("button", name=re.compile(r"^Send")).last.click()
    return sent.value


def test_an_anonymous_visitor_reads_the_docs_signs_up_and_tries_the_api(
    stack: Stack, browser: Browser
) -> None:
    slug = _import_petstore(stack)
    context, page, watch = new_page(browser)
    page.goto(f"{stack.console}/portal?q=petstore")
    expect(page.get_by_test_id("portal-anonymous")).to_be_visible()
    card = page.locator(f'[data-testid=portal-api][data-slug="{slug}"]')
    expect(card).to_contain_text("1 credit per call")
    card.get_by_role("link", name="Petstore").click()
    expect(page.get_by_test_id("portal-api-name")).to_have_text("Petstore")
    reference = page.get_by_test_id("portal-reference")
    expect(reference.get_by_text("List all pets").first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("portal-create-test-key")).to_have_count(0)
    document = page.evaluate(f"fetch('/portal/apis/{slug}/openapi.json').then(r => r.text())")
    assert "List all pets" in document
    for hidden in ("upstream-secret-9d1c", "X-Upstream-Token", "petstore.swagger.io"):
        assert hidden not in document
    assert stack.upstream not in document

    # Sign up from the docs page, name an org, confirm the email from the mailed link.
    page.get_by_test_id("portal-key").get_by_test_id("portal-sign-up").click()
    email = f"portal-{uuid.uuid4().hex[:8]}@example.com"
    page.fill("input[name=name]", "Portal visitor")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    expect(page).to_have_url(re.compile(r"/orgs/new$"))
    page.fill("input[name=name]", "Visitor Ltd")
    page.click("main button[type=submit]")

    # The onboarding checklist: email not verified yet, so the first key is a test key;
    # a call with its curl line is celebrated once it shows up in usage.
    page.goto(f"{stack.console}/portal")
    expect(page.get_by_test_id("onboarding-email")).to_have_attribute("data-done", "no")
    shoot(page, "portal-onboarding.png", full_page=True)
    page.get_by_test_id("onboarding-create-key").click()
    first_key = page.get_by_test_id("onboarding-raw-key").input_value()
    assert first_key.startswith("tg_test_")
    called = re.search(r'"(https?://[^"]+)"$', page.get_by_test_id("onboarding-curl").input_value())
    assert called, "no URL in the curl line"
    first = httpx.get(called.group(1), headers={"X-API-Key": first_key}, timeout=10)
    assert first.status_code == 200, first.text
    expect(page.get_by_test_id("onboarding-celebration")).to_be_visible(timeout=15_000)
    shoot(page, "portal-first-call.png", full_page=True)
    onboarding_calls = 1 if called.group(1).startswith(f"{stack.gateway}/{slug}/") else 0

    link = _verification_link(stack, email)
    assert link.startswith(f"{stack.console}/verify-email?token=")
    page.goto(link)
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Your email address is confirmed")

    # A test key from the docs page, a 200 from the try-it panel, the call in their numbers.
    page.goto(f"{stack.console}/portal/apis/{slug}")
    page.get_by_test_id("portal-create-test-key").click()
    expect(page.get_by_test_id("portal-test-key-created")).to_be_visible()
    key = page.get_by_test_id("portal-test-key").input_value()
    assert key.startswith("tg_test_")
    answer = _send_from_try_it(page, stack, slug)
    assert answer.status == 200, answer.status
    assert answer.request.headers.get("x-api-key") == key
    logged_in_usage(
        stack, _user_token(stack.accounts, email, PASSWORD), answer.headers["x-request-id"]
    )
    page.goto(f"{stack.console}/portal/apis/{slug}")
    expect(page.get_by_test_id("portal-test-requests")).to_have_text(str(1 + onboarding_calls))
    assert key not in stack.console_logs()
    assert first_key not in stack.console_logs()
    watch.check()
    context.close()


def test_docs_of_an_imported_api_and_a_test_key_that_the_gateway_accepts(
    stack: Stack, browser: Browser
) -> None:
    slug = _import_petstore(stack)
    context, page, watch = new_page(browser)
    console_requests: list[Request] = []
    page.on(
        "request", lambda r: console_requests.append(r) if r.url.startswith(stack.console) else None
    )
    sign_in(page, stack.console, stack.seeded["email"], PASSWORD)
    page.goto(f"{stack.console}/portal?q=petstore")
    card = page.locator(f'[data-testid=portal-api][data-slug="{slug}"]')
    expect(card).to_contain_text("1 credit per call")
    card.get_by_role("link", name="Petstore").click()

    expect(page.get_by_test_id("portal-api-name")).to_have_text("Petstore")
    reference = page.get_by_test_id("portal-reference")
    # Scalar (4.7 MB) parses and draws the document after the page has loaded.
    expect(reference.get_by_text("List all pets").first).to_be_visible(timeout=30_000)
    for language in ("Shell", "Python", "JavaScript", "Go"):
        expect(reference.get_by_text(language, exact=True).first).to_be_attached()
    document = page.evaluate(f"fetch('/portal/apis/{slug}/openapi.json').then(r => r.text())")
    assert "upstream-secret-9d1c" not in document
    assert "petstore.swagger.io" not in document
    assert stack.upstream not in document
    shoot(page, "portal-petstore-docs.png")

    page.get_by_test_id("portal-create-test-key").click()
    expect(page.get_by_test_id("portal-test-key-created")).to_be_visible()
    key = page.get_by_test_id("portal-test-key").input_value()
    assert key.startswith("tg_test_")
    stored = page.evaluate(f"sessionStorage.getItem('tg_portal_key:{slug}')")
    assert stored == key
    expect(page.get_by_test_id("portal-paste-key")).to_have_value(key)

    # Try it: Scalar's client sends the call from the console's origin to the gateway.
    answer = _send_from_try_it(page, stack, slug)
    assert answer.status == 200, answer.status
    assert answer.request.headers.get("x-api-key") == key
    assert answer.headers.get("access-control-allow-origin") == stack.console
    request_id = answer.headers["x-request-id"]
    expect(page.get_by_text("200 OK", exact=True).first).to_be_visible()
    shoot(page, "portal-try-it.png")

    # The call is the customer's: it shows in their org's logs explorer.
    owner = _user_token(stack.accounts, stack.seeded["email"], PASSWORD)
    logged_in_usage(stack, owner, request_id)
    page.goto(f"{stack.console}/orgs/{stack.seeded['org_id']}/logs?mode=test")  # a tg_test_ key
    expect(page.locator(f"a[href$='/logs/{request_id}']")).to_have_count(1)
    expect(page.get_by_test_id("logs-table")).to_contain_text("/pets")
    page.goto(f"{stack.console}/portal/apis/{slug}")
    # ... and in their own numbers for this API on its docs page (test keys apart from live).
    expect(page.get_by_test_id("portal-test-requests")).to_have_text("1")

    page.get_by_test_id("portal-paste-key").fill(PASTED)
    page.get_by_test_id("portal-paste-key").dispatch_event("change")
    assert page.evaluate(f"sessionStorage.getItem('tg_portal_key:{slug}')") == PASTED
    page.goto(f"{stack.console}/portal/apis/{slug}")  # a new page of the same tab
    expect(page.get_by_test_id("portal-paste-key")).to_have_value(PASTED)
    for request in console_requests:
        assert PASTED not in request.url
        assert PASTED not in (request.post_data or "")
        assert PASTED not in str(request.headers)
    logs = stack.console_logs()
    assert PASTED not in logs
    assert key not in logs
    watch.check()
    context.close()


def _expect_scalar_in(page: Page, mode: str, within: float = 15) -> None:
    """The background of Scalar's root element turns `mode` (dark or light) in time."""
    deadline = time.monotonic() + within
    while True:
        colour = page.evaluate(
            "getComputedStyle(document.querySelector('.scalar-api-reference')).backgroundColor"
        )
        rgb = [int(v) for v in re.findall(r"\d+", colour)[:3]]
        luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255
        if (luminance < 0.2) == (mode == "dark"):
            return
        assert time.monotonic() < deadline, f"Scalar is not {mode}: background {colour}"
        time.sleep(0.2)


def test_the_docs_pane_follows_the_chosen_theme_and_the_system_switch(
    stack: Stack, browser: Browser
) -> None:
    """Scalar is dark when the page is: with the dark theme chosen, and on Auto when the
    system turns dark after the page has loaded; light with the light theme chosen."""
    slug = _import_petstore(stack)
    context, page, watch = new_page(browser)
    reference = page.get_by_test_id("portal-reference")
    for theme, system in (("dark", "light"), ("light", "dark"), ("system", "light")):
        page.emulate_media(color_scheme=system)  # type: ignore[arg-type]
        # Scalar (4.7 MB) loads after the page: wait for its drawing, not for `load`.
        page.goto(
            f"{stack.console}/prefs?theme={theme}&next=/portal/apis/{slug}",
            wait_until="domcontentloaded",
            timeout=30_000,
        )
        expect(reference.get_by_text("List all pets").first).to_be_visible(timeout=30_000)
        _expect_scalar_in(page, "light" if theme == "system" else theme)
    page.emulate_media(color_scheme="dark")  # Auto: the system turns dark, then light
    _expect_scalar_in(page, "dark")
    shoot(page, "portal-docs-dark.png")
    page.emulate_media(color_scheme="light")
    _expect_scalar_in(page, "light")
    watch.check()
    context.close()
