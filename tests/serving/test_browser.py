"""The marketer page in a real headless browser (Debian's Chromium driven by Playwright).

A real `lifecycle serve` process with an API key; the browser signs in, reads the overview
against /overview.json, searches a customer, switches to Korean and back, meets an unknown
customer, and never logs a console error. Screenshots of each view go to
test-output/screenshots/ (the README's come from there). Skips, saying why, when Chromium or
Playwright is missing (`make test` installs Chromium when it can).
"""

from __future__ import annotations

import itertools
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
    # signed out: neither the search nor a sign-out button
    assert page.locator("form.search").count() == 0
    assert page.locator("form.signout").count() == 0
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
    assert page.locator("svg.chart.wide").count() >= 4
    for days, flow in data["stage_flow"].items():
        page.locator(f'#flow nav a[data-days="{days}"]').click()
        page.wait_for_selector(f'#stage-flow[data-days="{days}"]')
        for row in flow:
            cell = page.locator(
                f'#stage-flow tr[data-stage="{row["stage"]}"] [data-field="customers"]'
            )
            assert cell.inner_text() == f"{row['customers']:,}"
    page.goto(f"{site}/")
    assert page.locator("h1").count() == 1 and page.locator("form.signout").count() == 1
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
    clv = page.locator("#card-clv .big .money")
    assert re.fullmatch(r"[\d.]+[KMB]? USD", clv.inner_text())
    assert re.fullmatch(r"[\d,]+\.\d\d USD", clv.get_attribute("title") or "")
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

    # an unknown customer gets a friendly message, ids like it and the segments to look in
    page.goto(f"{site}/customer?id=NOBODY-123")
    assert "could not find" in page.locator("#not-found").inner_text()
    assert page.locator("#browse a").count() == len(data["segments"])
    page.goto(f"{site}/customer?id={first}x")
    page.locator("#similar a").first.click()
    page.wait_for_selector("#customer-title")
    page.goto(f"{site}/customer?id=NOBODY-123")
    page.locator("#browse a").first.click()
    page.wait_for_selector("#customers")

    # a phone-width screen: no horizontal scrolling of the page itself
    phone = context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{site}/customer?id={first}")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, width
    shot(phone, "customer-phone")
    phone.goto(f"{site}/#flow")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 400
    shot(phone, "overview-phone")

    assert errors == []
    context.close()


MEASURE = """() => {
  const vw = document.documentElement.clientWidth;
  const charts = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    if (getComputedStyle(svg).display === 'none') continue;
    const box = svg.getBoundingClientRect();
    const scale = box.width / svg.viewBox.baseVal.width;
    const items = [...svg.querySelectorAll('text, rect')].map(el => {
      const r = el.getBoundingClientRect();
      return {kind: el.tagName, text: el.textContent, left: r.left, right: r.right,
              top: r.top, bottom: r.bottom, width: r.width,
              size: parseFloat(el.getAttribute('font-size') || '0') * scale};
    });
    charts.push({title: svg.getAttribute('aria-label'), vw, items,
                 box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom}});
  }
  return charts;
}"""


def assert_nothing_cut(charts: list[dict], where: str, smallest_font: float = 11.0) -> None:
    """Every text of every shown chart inside the chart and the viewport, none overlapping."""
    assert charts, f"no chart shown on {where}"
    for chart in charts:
        box, name = chart["box"], f"{where}: {chart['title']}"
        assert box["right"] <= chart["vw"] + 0.5, (name, box, chart["vw"])
        texts = [i for i in chart["items"] if i["kind"] == "text"]
        for item in texts:
            inside = (
                item["left"] >= box["left"] - 0.5
                and item["right"] <= box["right"] + 0.5
                and item["top"] >= box["top"] - 0.5
                and item["bottom"] <= box["bottom"] + 0.5
            )
            assert inside, (name, item["text"], item, box)
            assert item["size"] >= smallest_font, (name, item["text"], item["size"])
        shown = [i for i in chart["items"] if i["kind"] == "text" or i["width"] > 0.5]
        for a, b in itertools.combinations(shown, 2):
            overlap_x = min(a["right"], b["right"]) - max(a["left"], b["left"])
            overlap_y = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
            assert overlap_x <= 0.5 or overlap_y <= 0.5, (name, a["text"], b["text"], a, b)


def signed_in(browser: object, site: str, width: int, lang: str) -> tuple[object, object]:
    """A browser context of ``width`` px, signed in, in ``lang``; and its page."""
    context = browser.new_context(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{site}/signin")
    page.get_by_label("API key").fill(KEY)
    page.locator("form.signin button").click()
    page.wait_for_url(f"{site}/")
    page.goto(f"{site}/lang/{lang}?next=/")
    page.wait_for_selector(f"html[lang={lang}]")
    return context, page


WIDTHS = (375, 768, 1280)


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_no_chart_label_is_cut_at_any_width(site: str, browser: object, lang: str) -> None:
    context, page = signed_in(browser, site, WIDTHS[0], lang)
    first = page.request.get(f"{site}/segment?name=Champions").text()
    customer = re.search(r'href="/customer\?id=([^"]+)"', first).group(1)  # type: ignore[union-attr]
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in ("/", "/?flow=30", f"/customer?id={customer}"):
            page.goto(f"{site}{path}")
            charts = page.evaluate(MEASURE)
            assert_nothing_cut(charts, f"{path} at {width} px in {lang}")
            kind = "narrow" if width <= 640 else "wide"
            assert page.locator(f"svg.chart.{kind}").first.is_visible(), (path, width)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        if width == WIDTHS[0]:
            # the stage flow on a phone: its table fits without scrolling, in a readable size
            page.goto(f"{site}/")
            fits = page.evaluate(
                "(() => { const t = document.querySelector('#stage-flow');"
                " return [t.scrollWidth, t.parentElement.clientWidth,"
                " parseFloat(getComputedStyle(t).fontSize)]; })()"
            )
            assert fits[0] <= fits[1] and fits[2] >= 13, fits
    context.close()


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_long_labels_wrap_instead_of_being_cut(browser: object, width: int) -> None:
    """The charts' worst cases, drawn by the page's code and measured by the browser."""
    from lifecycle.serving import charts

    labels = [
        "days since the latest purchase relative to the customer's own usual gap between "
        "purchases, all time, measured in days",
        "최근 30일 쿠폰·혜택 사용 횟수와 캠페인 노출 대비 혜택 사용 비율, "
        "그리고 충성 신호(추천·가입·리뷰) 횟수",
        "Supercalifragilisticexpialidociousnessandthensomemorewithoutanyspaces",
        "R",
    ]
    values = [0.9, -0.31, 0.05, -0.002]
    html = charts.diverging_chart(
        labels, values, title="worst case", up_word="\u25b2", down_word="\u25bc"
    ) + charts.bar_chart(
        labels,
        [abs(v) for v in values],
        ["1.23M USD", "9.44만 USD", "0 USD", "999K USD"],
        notes=["raises it in 100% of customers", "(12,345 of 67,890)", "", "note"],
        title="worst case",
    )
    css = (ROOT / "serving" / "static" / "page.css").read_text(encoding="utf-8")
    context = browser.new_context(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_content(
        f'<!doctype html><html><head><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><style>{css}</style></head><body><main>{html}</main></body></html>'
    )
    charts_seen = page.evaluate(MEASURE)
    assert len(charts_seen) == 2
    assert_nothing_cut(charts_seen, f"worst cases at {width} px", smallest_font=10.0)
    written = "".join(i["text"] for c in charts_seen for i in c["items"] if i["kind"] == "text")
    for label in labels:  # wrapped, every character still there
        assert "".join(label.split()) in "".join(written.split()), label
    context.close()
