"""The console on a phone (390 x 844) in a real browser: Debian's chromium driven by
Playwright, the console app served on loopback with its backing services faked
(`fakes.py`, no stack needed). No page scrolls sideways (a table wider than the screen
scrolls in its own box) and every section of the navigation is on screen, in English
and Chinese. Screenshots go to `.devstack/screenshots/console/phone/`
(`TOLLGATE_SCREENSHOTS=0` skips them)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from tollgate.console.app import create_app
from tollgate.console.config import Settings
from tollgate.kit import localdeps

from .fakes import (
    PASSWORD,
    FakeBackends,
    api_body,
    key_body,
    log_body,
    member_body,
    plan_body,
    route_body,
)

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / ".devstack" / "screenshots" / "console" / "phone"
SCREENSHOTS = os.environ.get("TOLLGATE_SCREENSHOTS", "1") != "0"
PHONE = {"width": 390, "height": 844}
PAGES = ("", "/keys", "/keys/new", "/credits", "/usage", "/logs", "/plan", "/team")
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
TABS_OFF_SCREEN = """() => [...document.querySelectorAll("nav.tabs a")]
    .filter((a) => a.getBoundingClientRect().left < 0
        || a.getBoundingClientRect().right > innerWidth)
    .map((a) => a.textContent)"""


def busy_org() -> FakeBackends:
    """An org with long names and full tables: what makes a narrow page overflow."""
    fake = FakeBackends(org_name="Acme Weather and Geocoding International Ltd")
    api_id = str(uuid.uuid4())
    fake.apis = [
        api_body(api_id, "weather", "Weather API", routes=[route_body("GET", "/forecast")])
    ]
    for name in ("production server key for the nightly batch", "staging", "mobile app"):
        key_id = str(uuid.uuid4())
        fake.keys[key_id] = key_body(key_id, fake.org_id, name, allowed_api_ids=[api_id])
    fake.top_values = {"api": [api_id], "key": list(fake.keys)}
    fake.log_items = [
        log_body(key_id, f"/forecast/zurich-switzerland/hourly/{i}", status=200 if i % 3 else 502)
        for i, key_id in enumerate(list(fake.keys) * 4)
    ]
    now = datetime.now(UTC)
    for hours, amount, reason in ((5, 5000, "top-up"), (2, -5, "SMS 0193aa: 1 segment(s) x 5")):
        fake.ledger.append(
            {
                "id": str(uuid.uuid4()),
                "kind": "top_up" if amount > 0 else "debit",
                "amount": amount,
                "balance_after": 98765,
                "reason": reason,
                "request_count": 0,
                "created_at": (now - timedelta(hours=hours)).isoformat(),
            }
        )
    free, pro = plan_body("Free"), plan_body("Professional with overage", 4900, 100_000)
    fake.plans = {free["id"]: free, pro["id"]: pro}
    fake.org_plan_id = pro["id"]
    for role in ("owner", "developer", "viewer"):
        member = member_body(f"A {role} with a rather long name", role)
        fake.members[member["user_id"]] = member
    return fake


@contextmanager
def serving(fake: FakeBackends) -> Iterator[str]:
    """The console app on a loopback port (uvicorn in a thread), its backends faked."""
    settings = Settings(
        accounts_url="http://accounts.test",
        usage_url="http://usage.test",
        billing_url="http://billing.test",
        notifier_url="http://notifier.test",
        gateway_url="https://gateway.example.com",
    )
    app = create_app(settings, transport=httpx.MockTransport(fake.handle))
    port = localdeps.free_port()
    config = uvicorn.Config(app, port=port, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), full_page=True)


@pytest.mark.parametrize("language", ["en-GB", "zh-CN"])
def test_no_page_scrolls_sideways_on_a_phone(language: str) -> None:
    fake = busy_org()
    overflowing: dict[str, object] = {}
    with serving(fake) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport=PHONE, locale=language)
            page.set_default_timeout(10_000)
            page.goto(f"{base}/signin")
            page.fill("input[name=email]", "dev@example.com")
            page.fill("input[name=password]", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(f"{base}/orgs/{fake.org_id}")
            for path in PAGES:
                answer = page.goto(f"{base}/orgs/{fake.org_id}{path}")
                assert answer is not None, path
                assert answer.status == 200, path
                name = path.strip("/").replace("/", "-") or "overview"
                shoot(page, f"{name}-{language}.png")
                wider = page.evaluate(OVERFLOW)
                hidden_tabs = page.evaluate(TABS_OFF_SCREEN)
                if wider > 0 or hidden_tabs:
                    overflowing[path or "/"] = (wider, hidden_tabs)
            # The key shown once: the key and its curl line fit too.
            page.goto(f"{base}/orgs/{fake.org_id}/keys/new")
            page.fill("input[name=name]", "phone key")
            page.get_by_test_id("create-key").click()
            page.get_by_test_id("raw-key").wait_for()
            shoot(page, f"key-issued-{language}.png")
            if (wider := page.evaluate(OVERFLOW)) > 0:
                overflowing["key issued"] = wider
            # The logs table is wider than the phone: it scrolls in its own box.
            page.goto(f"{base}/orgs/{fake.org_id}/logs")
            table = page.locator("table.table").first
            if not table.evaluate("t => t.scrollWidth > t.clientWidth && t.scrollLeft === 0"):
                overflowing["logs table"] = "does not scroll in a box of its own"
        finally:
            browser.close()
    assert not overflowing, overflowing
