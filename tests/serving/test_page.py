"""The marketer page through the ASGI app: status codes, sign-in, language, escaping, CSV."""

from __future__ import annotations

import csv
import io
import re
import time
from urllib.parse import quote

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from lifecycle.features.formatting import compact_money, percent
from lifecycle.features.glossary import Lang, channel_name, event_name, segment_name, text
from lifecycle.features.schema import STAGES
from lifecycle.serving.guard import RUNTIME
from lifecycle.serving.schemas import PredictRequest

from .conftest import API_KEY as KEY
from .conftest import World


def a_buyer(client: TestClient) -> str:
    engine = RUNTIME.engine
    frame = engine.lookup.frame
    return str(frame[frame["n_purchases"] > 1]["customer_id"].iloc[0])


def test_views_answer(client: TestClient) -> None:
    cid = a_buyer(client)
    for path in (
        "/",
        "/segment?name=Champions",
        "/segment?name=No%20purchase%20yet&sort=next_stage_probability",
        "/stage?name=retention&sort=churn_risk",
        f"/customer?id={cid}",
        "/customer",
        "/static/page.css",
        "/overview.json",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
    assert client.get("/segment?name=Nobody").status_code == 404
    assert client.get("/stage?name=heaven").status_code == 404
    nobody = client.get("/customer?id=NOPE-404")
    assert nobody.status_code == 200 and 'id="not-found"' in nobody.text
    assert "NOPE-404" in nobody.text
    # the API keeps its place beside the page
    assert client.post("/predict", json={"customer_id": cid}).status_code == 200
    assert client.get("/docs.json").status_code == 200


def test_overview_numbers_are_the_api_numbers(client: TestClient) -> None:
    data = client.get("/overview.json").json()
    html = client.get("/").text
    assert sum(row["customers"] for row in data["funnel"]) == data["customers"]
    for row in data["funnel"]:
        assert f'data-stage="{row["stage"]}"' in html
        assert f"{row['customers']:,}" in html
    for row in data["segments"]:
        assert f'data-segment="{row["segment"]}"' in html
    shares = sum(row["share"] for row in data["segments"])
    assert abs(shares - 1) < 1e-9


def test_customer_view_shows_drivers_sentences_action_and_timeline(client: TestClient) -> None:
    cid = a_buyer(client)
    html = client.get(f"/customer?id={cid}").text
    for marker in ('id="why"', 'class="drivers"', 'id="action"', 'id="timeline"', "<svg"):
        assert marker in html, marker
    assert "similar customers" in html and "Top driver" in html


def test_customer_ids_are_shown_as_text(client: TestClient) -> None:
    evil = '<script>alert("x")</script>'
    html = client.get("/customer", params={"id": evil}).text
    assert evil not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_language_switch_is_remembered(client: TestClient) -> None:
    cid = a_buyer(client)
    switched = client.get(f"/lang/ko?next=/customer?id={cid}", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == f"/customer?id={cid}"
    korean = client.get(f"/customer?id={cid}").text
    assert '<html lang="ko">' in korean and "이유" in korean and "다음에 할 일" in korean
    assert "개요" in client.get("/").text
    client.get("/lang/en")
    assert '<html lang="en">' in client.get("/").text
    unsafe = client.get("/lang/ko?next=//evil.example/", follow_redirects=False)
    assert unsafe.headers["location"] == "/"
    client.get("/lang/en")


def test_csv_cells_never_start_a_formula() -> None:
    from lifecycle.serving.page import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _cell("C001") == "C001"
    assert _cell(float("nan")) == "" and _cell(0.5) == 0.5


def test_csv_download(client: TestClient) -> None:
    response = client.get("/customers.csv?segment=Champions&sort=churn_risk")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    data = client.get("/overview.json").json()
    expected = next(s["customers"] for s in data["segments"] if s["segment"] == "Champions")
    assert len(rows) == expected
    risks = [float(r["churn_risk"]) for r in rows if r["churn_risk"]]
    assert risks == sorted(risks, reverse=True)


def test_sign_in_when_a_key_is_set(keyed: TestClient) -> None:
    first = keyed.get("/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/signin"
    assert keyed.get("/overview.json").status_code == 401
    assert keyed.get("/customers.csv?segment=Champions").status_code == 401
    form = keyed.get("/signin").text
    assert 'method="post"' in form and 'type="password"' in form
    wrong = keyed.post("/signin", data={"key": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401
    right = keyed.post("/signin", data={"key": KEY}, follow_redirects=False)
    assert right.status_code == 303 and KEY not in right.headers["location"]
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
    assert keyed.get("/").status_code == 200
    assert keyed.get("/overview.json").status_code == 200
    # a forged session is refused (expiry and sign-out: tests/serving/test_sessions.py)
    from lifecycle.serving.page import SESSION_COOKIE

    keyed.cookies.clear()
    keyed.cookies.set(SESSION_COOKIE, f"{int(time.time())}.{'0' * 64}")
    assert keyed.get("/", follow_redirects=False).status_code == 303
    keyed.cookies.clear()
    keyed.post("/signin", data={"key": KEY})
    assert keyed.get("/").status_code == 200
    # the API itself still wants the key in a header, not the page's cookie
    assert keyed.post("/predict", json={"customer_id": "x"}).status_code == 401
    keyed.post("/signout")
    assert keyed.get("/", follow_redirects=False).status_code == 303


def segment_row(html: str, segment: str) -> str:
    """The overview's table row of one segment, as HTML."""
    start = html.index(f'<tr data-segment="{segment}">')
    return html[start : html.index("</tr>", start)]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_segments_show_their_observed_churn_beside_the_name(client: TestClient, lang: Lang) -> None:
    client.get(f"/lang/{lang}")
    try:
        html = client.get("/").text
        data = client.get("/overview.json").json()
        known = [s for s in data["segments"] if s["segment_churn_rate_90d"] is not None]
        assert len(known) >= 3, data["segments"]  # the simulated log covers the 90 days
        for row in known:
            rate = row["segment_churn_rate_90d"]
            assert 0 <= rate <= 1
            words = escape(text("page.observed_churn", lang, rate=percent(rate, lang), days=90))
            cell = segment_row(html, row["segment"])
            name = cell.index(escape(segment_name(row["segment"], lang)))
            assert 'data-field="observed-churn"' in cell
            assert cell.index(words) > name, (row["segment"], cell)  # beside (after) the name
            assert "<th" in cell[: cell.index(words)] and "</th>" in cell[cell.index(words) :]
        note = escape(text("page.observed_churn_note", lang, days=90))
        assert 'id="observed-churn-note"' in html and html.count(note) == len(known) + 1
        # unknown is not shown: a customer with no purchase has no churn to observe
        never = next(s for s in data["segments"] if s["segment"] == "No purchase yet")
        assert never["segment_churn_rate_90d"] is None
        assert 'data-field="observed-churn"' not in segment_row(html, "No purchase yet")
        # the segment's own view says it too
        top = max(known, key=lambda s: s["customers"])
        detail = client.get("/segment", params={"name": top["segment"]}).text
        sentence = escape(
            text(
                "page.observed_churn_segment",
                lang,
                rate=percent(top["segment_churn_rate_90d"], lang),
                days=90,
            )
        )
        assert 'id="observed-churn"' in detail and sentence in detail
        stage = client.get("/stage?name=retention").text
        assert 'id="observed-churn"' not in stage
        unknown = client.get("/segment", params={"name": "No purchase yet"}).text
        assert 'id="observed-churn"' not in unknown
    finally:
        client.get("/lang/en")


# issue 18 §4: the page, finished


def test_signed_out_pages_show_neither_sign_out_nor_search(keyed: TestClient) -> None:
    for path in ("/signin", "/lang/ko?next=/signin", "/lang/en?next=/signin"):
        html = keyed.get(path).text
        assert 'action="/signout"' not in html and 'role="search"' not in html, path
    keyed.post("/signin", data={"key": KEY})
    html = keyed.get("/").text
    assert 'action="/signout"' in html and 'role="search"' in html
    keyed.post("/signout")
    assert 'action="/signout"' not in keyed.get("/signin").text


def test_unknown_customer_page_offers_similar_ids_and_the_segments(client: TestClient) -> None:
    cid = a_buyer(client)
    typo = cid + "x"  # a key pressed once too often
    for typed in (typo, cid[1:].lower()):
        html = client.get("/customer", params={"id": typed}).text
        assert 'id="not-found"' in html and 'id="similar"' in html, typed
        links = re.findall(r'<ul id="similar">(.*?)</ul>', html, re.S)[0]
        ids = re.findall(r'href="/customer\?id=([^"]+)"', links)
        assert 1 <= len(ids) <= 5 and all(i in RUNTIME.engine.lookup.index for i in ids)
        assert cid in ids
        for found in ids:
            assert 'id="customer-title"' in client.get(f"/customer?id={found}").text
    # "look through a segment below": every segment is linked, and each link answers
    html = client.get("/customer?id=NOBODY-404").text
    browse = re.findall(r'<ul id="browse" class="browse">(.*?)</ul>', html, re.S)[0]
    data = client.get("/overview.json").json()
    for row in data["segments"]:
        link = f"/segment?name={quote(row['segment'])}"
        assert f'href="{link}"' in browse, row["segment"]
        assert client.get(link).status_code == 200
    assert 'id="similar"' not in html  # nothing looks like it: no made-up suggestions


def test_money_is_compact_with_the_exact_amount_on_hover_and_in_the_csv(
    client: TestClient,
) -> None:
    from lifecycle.serving.service import PAGE

    population = PAGE.state.page.population()
    table = population.customers.set_index("customer_id")
    html = client.get("/segment?name=Champions&sort=clv").text
    cells = re.findall(r'<span class="money"(?: title="([^"]*)")?>([^<]*)</span>', html)
    assert cells
    for exact, shown in cells:
        assert re.fullmatch(r"-?\d{1,3}(\.\d{1,2})?[KMBT]? USD", shown), shown
        if exact:
            assert re.fullmatch(r"-?[\d,]+\.\d\d USD", exact), exact
            value = float(exact.replace(",", "").removesuffix(" USD"))
            number, unit = re.fullmatch(r"(-?[\d.]+)([KMBT]?) USD", shown).groups()
            read = float(number) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[unit]
            assert abs(read - value) <= max(0.501, 0.0051 * abs(value)), (exact, shown)
    assert any(exact for exact, _ in cells)  # the CLVs of champions run past 1,000
    rows = list(csv.DictReader(io.StringIO(client.get("/customers.csv?segment=Champions").text)))
    for row in rows[:50]:
        assert float(row["clv"]) == table.loc[row["customer_id"], "clv"]  # exact, unrounded
    korean = client.get("/lang/ko?next=/segment?name=Champions").text
    client.get("/lang/en")
    shown_ko = re.findall(r'<span class="money"[^>]*>([^<]*)</span>', korean)
    assert shown_ko and all(re.fullmatch(r"-?[\d.,]+(만|억|조)? USD", s) for s in shown_ko)


def test_compact_money_reads_at_three_significant_digits() -> None:
    assert [compact_money(v, "USD") for v in (94_412.35, 1_234_567, 999_700, 12.6, 0.5)] == [
        "94.4K USD",
        "1.23M USD",
        "1M USD",
        "13 USD",
        "0.50 USD",
    ]
    assert (
        compact_money(1_234.56, "KRW") == "1.23K KRW" and compact_money(512.7, "KRW") == "513 KRW"
    )
    assert compact_money(94_412.35, "KRW", "ko") == "9.44만 KRW"
    assert compact_money(123_456_789, "KRW", "ko") == "1.23억 KRW"
    assert compact_money(float("nan"), "USD") == "\u2014"


def test_alternatives_that_lose_money_are_not_offered(client: TestClient) -> None:
    engine = RUNTIME.engine
    ids = engine.lookup.frame["customer_id"].astype(str).tolist()
    answers = engine.predict([PredictRequest(customer_id=c) for c in ids[:400]])
    losing = [
        a for a in answers if any(alt.expected_value < 0 for alt in a.next_best_action.alternatives)
    ]
    assert losing, "no customer of the test world has an alternative that loses money"
    for answer in losing[:5]:
        html = client.get(f"/customer?id={answer.customer_id}").text
        offered = re.findall(r'<ul id="alternatives">(.*?)</ul>', html, re.S)
        shown = offered[0] if offered else ""
        for alt in answer.next_best_action.alternatives:
            assert (str(escape(alt.name)) in shown) == (alt.expected_value >= 0), alt


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_feature_labels_name_events_and_channels_in_words(lang: Lang) -> None:
    from lifecycle.features.config import LifecycleConfig
    from lifecycle.features.definitions import model_features
    from lifecycle.serving.i18n import feature_label

    named = [f for f in model_features(LifecycleConfig()) if {"event", "channel"} & set(f.params)]
    assert len(named) > 10
    for feature in named:
        label = feature_label(feature.name, lang)
        code = str(feature.params.get("event", feature.params.get("channel")))
        words = event_name(code, lang) if "event" in feature.params else channel_name(code, lang)
        assert words.casefold() in label.casefold(), (feature.name, label)
        if "_" in code:
            assert code not in label, label


def test_customer_charts_write_no_code_names(client: TestClient) -> None:
    cid = a_buyer(client)
    for lang in ("en", "ko"):
        client.get(f"/lang/{lang}")
        html = client.get(f"/customer?id={cid}").text
        texts = re.findall(r'<text class="label"[^>]*>(.*?)</text>', html)
        assert texts
        for text_ in texts:
            assert not re.search(r"[a-z]+_[a-z_]+", text_), text_
    client.get("/lang/en")


def test_stage_flow_is_where_each_stage_went(client: TestClient, world: World) -> None:
    import pandas as pd

    from lifecycle.features.build import build_features

    data = client.get("/overview.json").json()
    flows = data["stage_flow"]
    assert sorted(flows, key=int) == ["30", "90", "180"]
    cutoff = pd.Timestamp(data["cutoff"])
    then = build_features(world.events, cutoffs=cutoff - pd.Timedelta(days=90))
    now = RUNTIME.engine.lookup.frame.set_index("customer_id")["stage"].astype(str)
    stage_then = then.set_index("customer_id")["stage"].astype(str).reindex(now.index)
    for row in flows["90"]:
        cohort = now[stage_then.isna() if row["stage"] == "new" else stage_then == row["stage"]]
        assert row["customers"] == len(cohort), row["stage"]
        assert {s: row[s] for s in STAGES} == {s: int((cohort == s).sum()) for s in STAGES}
        assert row["moved_on"] + row["stayed"] + row["moved_back"] == row["customers"]
    assert sum(r["customers"] for r in flows["90"]) == data["customers"]
    # the page shows the period asked for, 90 days by default
    html = client.get("/").text
    assert re.search(r'id="stage-flow"[^>]*data-days="90"', html)
    thirty = client.get("/?flow=30").text
    assert re.search(r'id="stage-flow"[^>]*data-days="30"', thirty)
    thirty = thirty[thirty.index('id="stage-flow"') :]
    for row in flows["30"]:
        within_row = r"(?:(?!</tr>).)*?"
        cell = re.search(
            rf'<tr data-stage="{row["stage"]}">{within_row}data-field="customers"[^>]*>([^<]*)<',
            thirty,
            re.S,
        )
        assert cell is not None and cell.group(1) == f"{row['customers']:,}"
    unknown = client.get("/?flow=7").text  # a period not computed: the default
    assert re.search(r'id="stage-flow"[^>]*data-days="90"', unknown)


def test_stage_flow_says_it_needs_the_events(client: TestClient) -> None:
    from dataclasses import replace

    from lifecycle.serving.service import PAGE

    state = PAGE.state.page
    population = state.population()
    state._population = replace(population, flows={}, flow_seconds=None)
    try:
        html = client.get("/").text
        assert 'id="flow-missing"' in html and "LIFECYCLE_EVENTS" in html
        assert 'id="stage-flow"' not in html
    finally:
        state._population = population
