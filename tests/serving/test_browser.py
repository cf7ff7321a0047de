"""The marketer page in a real headless browser (Debian's Chromium driven by Playwright).

A real `lifecycle serve` process with an API key; the browser signs in, reads the overview
against /overview.json, searches a customer, switches to Korean and back, meets an unknown
customer, and never logs a console error. Screenshots of each view go to
test-output/screenshots/ (the README's come from there). Skips, saying why, when Chromium or
Playwright is missing (`make test` installs Chromium when it can).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..servers import BIN, ROOT, free_port, running
from .conftest import World
from .test_process import service_env

CHROMIUM = os.environ.get("LIFECYCLE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "screenshots"
KEY = "browser-test-key"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LIFECYCLE_CHROMIUM)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = service_env(world) | {"LIFECYCLE_API_KEY": KEY}
    args = [str(BIN / "lifecycle"), "serve", "--lookup", str(world.lookup)]
    args += ["--events", str(world.events), "--port", str(port)]
    log = tmp_path_factory.mktemp("browser") / "serve.log"
    with running(args, env, port, log) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def shot(page: object, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_marketer_page_in_a_browser(site: str, browser: object) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(f"{site}/")
    assert page.url.endswith("/signin")
    page.get_by_label("API key").fill(KEY)
    page.locator("form.signin button").click()
    page.wait_for_url(f"{site}/")

    # the overview: funnel and segments, with the numbers of /overview.json
    data = page.request.get(f"{site}/overview.json").json()
    for row in data["funnel"]:
        cell = page.locator(f'#funnel tr[data-stage="{row["stage"]}"] [data-field="customers"]')
        assert cell.inner_text() == f"{row['customers']:,}"
    for row in data["segments"]:
        cell = page.locator(
            f'#segments tr[data-segment="{row["segment"]}"] [data-field="customers"]'
        )
        assert cell.inner_text() == f"{row['customers']:,}"
    assert page.locator("svg.chart").count() >= 3
    shot(page, "overview")

    # a segment, sorted, with its CSV
    page.locator('#segments a:text-is("Champions")').click()
    page.wait_for_selector("#customers")
    page.select_option("#sort", "churn_risk")
    page.locator("form.sort button").click()
    page.wait_for_url(re.compile(r".*sort=churn_risk.*"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == "champions.csv"
    shot(page, "segment", full_page=False)

    # search a customer: drivers, sentences and an action
    first = page.locator("#customers tbody th a").first.inner_text()
    page.get_by_label("Find a customer").fill(first)
    page.get_by_role("button", name="Show").click()
    page.wait_for_selector("#customer-title")
    assert first in page.locator("#customer-title").inner_text()
    assert page.locator("ul.drivers li").count() >= 3
    assert page.locator("#why svg.chart").count() >= 2
    assert "Top driver" in page.locator("#action").inner_text()
    shot(page, "customer")

    # Korean, remembered across pages, and back
    page.get_by_role("link", name="한국어").click()
    page.wait_for_selector("html[lang=ko]")
    assert "이유" in page.locator("#why-h").inner_text()
    assert re.search("[\uac00-\ud7a3]", page.locator("ul.drivers").first.inner_text())
    shot(page, "customer-ko")
    page.goto(f"{site}/")
    assert page.locator("h1").inner_text().startswith("개요")
    shot(page, "overview-ko")
    page.get_by_role("link", name="English").click()
    page.wait_for_selector("html[lang=en]")

    # an unknown customer gets a friendly message
    page.goto(f"{site}/customer?id=NOBODY-123")
    assert "could not find" in page.locator("#not-found").inner_text()

    # a phone-width screen: no horizontal scrolling of the page itself
    phone = context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{site}/customer?id={first}")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, width
    shot(phone, "customer-phone")

    assert errors == []
    context.close()
