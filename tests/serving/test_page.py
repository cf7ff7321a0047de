"""The marketer page through the ASGI app: status codes, sign-in, language, escaping, CSV."""

from __future__ import annotations

import csv
import io
import time

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from lifecycle.features.formatting import percent
from lifecycle.features.glossary import Lang, segment_name, text
from lifecycle.serving.guard import RUNTIME

from .conftest import API_KEY as KEY


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
