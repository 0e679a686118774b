"""Draw docs/console-overview.png, the root README's picture of the console: the real
console app and templates, its backing services answered by the in-process fakes of
`services/console/tests/fakes.py` (sample numbers, no stack needed), shot by Debian's
chromium through Playwright.

    PYTHONPATH=. .venv/bin/python services/console/scripts/readme_screenshot.py
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from services.console.tests.fakes import PASSWORD, FakeBackends, api_body
from tollgate.console.app import create_app
from tollgate.console.config import Settings
from tollgate.kit import localdeps

ROOT = Path(__file__).resolve().parents[3]
TARGET = ROOT / "docs" / "console-overview.png"


def main() -> None:
    fake = FakeBackends(org_name="Acme Weather Ltd")
    apis = {
        "7d0c6a52-3b8e-4d3f-9a57-2f4f1f0e2a11": ("weather", "Weather API"),
        "1b9e2c44-5f0a-4c1e-8d2b-6a7f3e9c0d21": ("geocode", "Geocoding API"),
    }
    fake.apis = [api_body(api_id, slug, name) for api_id, (slug, name) in apis.items()]
    fake.top_values = {"api": list(apis)}
    settings = Settings(
        accounts_url="http://accounts.test",
        usage_url="http://usage.test",
        billing_url="http://billing.test",
        notifier_url="http://notifier.test",
    )
    app = create_app(settings, transport=httpx.MockTransport(fake.handle))
    port = localdeps.free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-GB")
            page.goto(f"{base}/signin")
            page.fill("input[name=email]", "dev@example.com")
            page.fill("input[name=password]", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(f"{base}/orgs/{fake.org_id}")
            TARGET.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(TARGET), clip={"x": 0, "y": 0, "width": 1280, "height": 520})
            browser.close()
    finally:
        server.should_exit = True
        thread.join()
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
