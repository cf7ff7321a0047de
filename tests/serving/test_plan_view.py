"""The budgeted plan over HTTP (``POST /plan``) and on the page (``/planner``, ``/plan.csv``).

The API through the service's ASGI app (the session's ``client``); the page once more in real
Chromium against a real ``lifecycle serve`` process, in both languages, at a phone's and a
desktop's width, measuring that no label or number of the plan is cut.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from lifecycle.models.policy import CONTACT_COLUMNS, Budget
from lifecycle.serving.guard import RUNTIME

from ..servers import BIN, ROOT, free_port, running
from .conftest import World
from .test_process import service_env

CHROMIUM = os.environ.get("LIFECYCLE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
KEY = "plan-view-key"
SHOTS = ROOT / "test-output" / "screenshots"
CSV_COLUMNS = list(CONTACT_COLUMNS)


def plan(client: TestClient, **body: Any) -> Any:
    return client.post("/plan", json=body)


def test_plan_api_answers_per_action_within_the_budget(client: TestClient) -> None:
    answer = plan(client, budget=150)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    totals = body["totals"]
    assert totals["budget"] == 150 and totals["budget_kind"] == "count"
    assert 0 < totals["contacts"] <= 150
    assert sum(a["customers"] for a in body["actions"]) == totals["contacts"]
    assert totals["customers"] == (
        totals["contacts"]
        + totals["over_budget"]
        + totals["no_gain"]
        + totals["no_eligible_action"]
    )
    assert abs(sum(a["net_value"] for a in body["actions"]) - totals["net_value"]) < 1e-6
    for action in body["actions"]:
        assert action["net_low"] <= action["net_value"] <= action["net_high"], action
        assert action["net_value"] > 0 and action["action"] != "no_action"
    contacts = body["contacts"]
    assert len(contacts) == min(100, totals["contacts"])
    nets = [c["net_value"] for c in contacts]
    assert nets == sorted(nets, reverse=True) and min(nets) > 0
    assert body["model_versions"] == RUNTIME.engine.versions
    assert "lifecycle-uplift" in body["model_versions"]  # the uplift model's estimates planned
    assert body["currency"] == "USD" and body["as_of"].startswith("2025-12-01")

    few = plan(client, budget=150, contacts=3, lang="ko").json()
    assert few["totals"] == totals  # the same plan, kept
    assert [c["customer_id"] for c in few["contacts"]] == [c["customer_id"] for c in contacts[:3]]
    assert all(not a["name"].isascii() for a in few["actions"])  # the actions named in Korean


def test_plan_api_respects_a_money_budget_and_cost_overrides(client: TestClient) -> None:
    money = plan(client, budget=120.5, budget_kind="money").json()
    assert 0 < money["totals"]["cost"] <= 120.5
    free = plan(client, budget=150, costs={"win_back": 0}).json()
    wins = [a for a in free["actions"] if a["action"] == "win_back"]
    assert wins and wins[0]["cost"] == 0
    assert all(c["cost"] == 0 for c in free["contacts"] if c["action"] == "win_back")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"budget": 0}, 422, "budget"),
        ({"budget": -5}, 422, "budget"),
        ({"budget": 2.5}, 422, "budget"),
        ({"budget": "10"}, 422, "budget"),
        ({"budget": 10, "budget_kind": "people"}, 422, "budget_kind"),
        ({"budget": 10, "costs": {"win_back": -1}}, 422, "costs.win_back"),
        ({"budget": 10, "costs": {"nope": 1}}, 422, "costs.nope"),
        ({"budget": 10, "costs": {"no_action": 1}}, 422, "costs.no_action"),
        ({"budget": 10, "contacts": 5000}, 422, "contacts"),
        ({}, 422, "budget"),
    ],
)
def test_plan_api_refuses_bad_requests_naming_the_field(
    client: TestClient, body: dict[str, Any], status: int, field: str
) -> None:
    answer = client.post("/plan", json=body)
    assert answer.status_code == status, answer.text
    assert field in [f["field"] for f in answer.json()["fields"]], answer.json()


def test_plan_api_takes_post_only_and_needs_the_lookup_table(client: TestClient) -> None:
    assert client.get("/plan").status_code == 405
    engine = RUNTIME.engine
    RUNTIME.engine = dataclasses.replace(engine, lookup=None)
    try:
        answer = client.post("/plan", json={"budget": 10})
        predict = client.post("/predict", json={"customer_id": "C0000001"})
    finally:
        RUNTIME.engine = engine
    assert answer.status_code == predict.status_code == 404
    assert answer.json()["error"] == predict.json()["error"] == "no_lookup_table"
    assert answer.json()["message"] == predict.json()["message"]


def test_plan_page_and_csv_are_the_api_plan(client: TestClient) -> None:
    api = plan(client, budget=150).json()
    page = client.get("/planner?budget=150&kind=count")
    assert page.status_code == 200
    html = page.text
    assert 'id="plan-actions"' in html and 'href="/plan.csv?budget=150&amp;kind=count"' in html
    for action in api["actions"]:
        assert f'data-action="{action["action"]}"' in html
    assert f'data-contacts="{api["totals"]["contacts"]}"' in html
    assert 'id="policies"' in html  # the uplift run logged its offline evaluation
    for policy in ("plan", "send_nothing", "random", "churn_risk", "clv"):
        assert f'data-policy="{policy}"' in html
    download = client.get("/plan.csv?budget=150&kind=count")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == api["totals"]["contacts"]
    assert [r["customer_id"] for r in rows[:100]] == [c["customer_id"] for c in api["contacts"]]
    # exact amounts: the CSV's net values add up to the API's total
    assert abs(sum(float(r["net_value"]) for r in rows) - api["totals"]["net_value"]) < 1e-6

    money = client.get("/plan.csv?budget=80&kind=money")
    assert sum(float(r["cost"]) for r in csv.DictReader(io.StringIO(money.text))) <= 80
    assert client.get("/plan.csv?budget=0").status_code == 422
    bad = client.get("/planner?budget=2.5&kind=count")
    assert bad.status_code == 422 and 'id="plan-error"' in bad.text
    assert "/planner" in client.get("/").text  # the nav link


def test_plan_csv_matches_the_plans_own_writer(client: TestClient, tmp_path: Path) -> None:
    """The page's CSV has Plan.write_csv's columns and values (for the same plan)."""
    from lifecycle.serving.population import build_population, plan_population

    written = plan_population(build_population(RUNTIME.engine), Budget(40)).write_csv(
        tmp_path / "plan.csv"
    )
    served = client.get("/plan.csv?budget=40").text
    assert served.splitlines() == written.read_text(encoding="utf-8").splitlines()


def test_plan_page_says_how_to_get_an_evaluation_when_there_is_none(
    client: TestClient, tmp_path: Path
) -> None:
    from lifecycle.serving.plans import EvaluationUnreadable, Plans

    engine = RUNTIME.engine
    RUNTIME.engine = dataclasses.replace(engine, uplift=None)  # no uplift model, no evaluation
    try:
        html = client.get("/planner?budget=50").text
    finally:
        RUNTIME.engine = engine
    assert 'id="eval-missing"' in html and "lifecycle uplift" in html
    assert 'id="policies"' not in html and 'id="plan-actions"' in html
    with pytest.raises(EvaluationUnreadable):
        Plans().evaluation(engine, f"sqlite:///{tmp_path / 'no' / 'such' / 'mlflow.db'}")


# --------------------------------------------------------------------------- in a browser

MEASURE = """() => {
  const vw = document.documentElement.clientWidth;
  const cut = [];
  const boxes = document.querySelectorAll(
    'h1, #plan-form label, #plan-form button, #plan-summary, #plan-actions th, '
    + '#plan-actions td, #left-alone li, #plan-download, #policies th, #policies td');
  for (const el of boxes) {
    if (getComputedStyle(el).display === 'none' || el.closest('.sr')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;
    const hidden = getComputedStyle(el).overflow !== 'visible';
    const clipped = hidden && el.scrollWidth > el.clientWidth + 1;
    if (r.left < -0.5 || r.right > vw + 0.5 || clipped)
      cut.push({text: el.textContent.trim().slice(0, 60), left: r.left, right: r.right, vw,
                scroll: el.scrollWidth, client: el.clientWidth});
  }
  for (const box of document.querySelectorAll('#plan .scroll, #evaluation .scroll'))
    if (box.scrollWidth > box.clientWidth + 1)
      cut.push({text: 'scrolls sideways', scroll: box.scrollWidth, client: box.clientWidth});
  return {cut, count: boxes.length, page: document.documentElement.scrollWidth, vw};
}"""


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LIFECYCLE_CHROMIUM)"
        )
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = free_port()
    env = service_env(world) | {"LIFECYCLE_API_KEY": KEY}
    args = [str(BIN / "lifecycle"), "serve", "--lookup", str(world.lookup), "--port", str(port)]
    log = tmp_path_factory.mktemp("plan-browser") / "serve.log"
    with running(args, env, port, log) as url:
        yield url


@pytest.mark.slow
def test_plan_view_in_a_browser_in_both_languages(site: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{site}/planner")
        assert page.url.endswith("/signin")  # signed-in like the other views
        page.get_by_label("API key").fill(KEY)
        page.locator("form.signin button").click()
        page.wait_for_url(f"{site}/")
        page.get_by_role("link", name="Plan", exact=True).click()
        page.wait_for_selector("#plan-form")

        page.get_by_label("Budget", exact=True).fill("120")
        page.get_by_role("button", name="Make the plan").click()
        page.wait_for_selector('#plan[data-budget="120"]')
        table = page.locator("#plan-actions")
        assert table.is_visible()
        assert table.locator("tbody tr").count() >= 1
        contacts = int(page.locator("#plan").get_attribute("data-contacts") or 0)
        assert 0 < contacts <= 120
        assert page.locator("#policies tbody tr").count() >= 5
        assert page.locator("#left-alone li").count() >= 1
        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV").click()
        rows = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
        assert len(rows) == contacts + 1

        for lang, word in (("ko", "예산"), ("en", "Budget")):
            page.goto(f"{site}/lang/{lang}?next=/planner?budget=120")
            page.wait_for_selector(f"html[lang={lang}]")
            assert word in page.locator("#plan-form").inner_text()
            assert page.locator("#plan-actions").is_visible()
            for width in (375, 1280):
                page.set_viewport_size({"width": width, "height": 900})
                seen = page.evaluate(MEASURE)
                assert seen["count"] > 20, seen
                assert seen["cut"] == [], (lang, width, seen["cut"])
                assert seen["page"] <= width, (lang, width, seen["page"])
                shot = "plan" if lang == "en" else "plan-ko"
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"{shot}-{width}.png"), full_page=True)
        # the measure can fail: the same page with its cells cut finds them
        page.add_style_tag(content="#plan-actions td { max-width: 2.5rem; overflow: hidden; }")
        assert page.evaluate(MEASURE)["cut"]
        assert errors == []
        context.close()
        browser.close()
