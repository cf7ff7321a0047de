"""Which driver an action's reason cites: never a marketing action, never a typical value.

The issue's case: a customer active 4 days ago got a win-back justified by "has received 10
campaign offers ... this moderately raises the predicted churn risk" (a campaign recommended
because campaigns go with risk). The drivers here are the real explanations.
"""

from __future__ import annotations

import pytest

from lifecycle.features.glossary import LANGS, Lang
from lifecycle.models.nba import load_catalog, reason_driver, recommend
from lifecycle.models.tasks import REASON_DRIVER
from lifecycle.serving.explain import explain

NAMES = ["n_campaign_exposures", "days_since_last_campaign_exposure", "n_events_30d", "rfm_r"]
VALUES = [10.0, 2.0, 1.0, 4.0]


def churn_drivers(lang: Lang, typical_events: float = 6.0) -> list[dict[str, object]]:
    """Offers received push churn risk up hardest; low activity comes third."""
    out = explain(
        "churn",
        [0.6, 0.5, 0.4, -0.1, -1.0],
        NAMES,
        VALUES,
        typical={"n_campaign_exposures": 3.0, "n_events_30d": 2.0, "rfm_r": 3.0},
        stage="retention",
        stage_typical={"n_events_30d": typical_events},
        lang=lang,
    )
    drivers: list[dict[str, object]] = out["drivers"]
    return drivers


@pytest.mark.parametrize("lang", LANGS)
def test_a_win_back_is_never_justified_by_the_offers_the_customer_received(lang: Lang) -> None:
    drivers = churn_drivers(lang)
    assert [d["feature"] for d in drivers[:2]] == NAMES[:2]
    assert [d["lever"] for d in drivers] == [False, False, True, True]
    task, direction = REASON_DRIVER["retention"]
    assert task == "churn"
    cited = reason_driver(drivers, direction)
    assert cited == drivers[2]["text"]
    rec = recommend(
        load_catalog(),
        stage="retention",
        segment="At risk",
        predictions={"next_stage_probability": 0.1, "churn_risk": 0.8, "clv": 500.0},
        lang=lang,
        top_drivers={"retention": cited} if cited else None,
    )
    assert rec.outcome == "retention"
    assert drivers[2]["text"] in rec.reason
    for offers in drivers[:2]:
        assert offers["text"] not in rec.reason
    assert ("campaign" not in rec.reason) if lang == "en" else ("캠페인" not in rec.reason)


def test_a_value_as_typical_as_the_stage_s_is_not_a_reason() -> None:
    drivers = churn_drivers("en", typical_events=1.0)  # 1 event in 30 days is typical here
    assert drivers[2]["as_typical"] is True
    assert reason_driver(drivers, "up") is None  # nothing else pushes churn risk up
    assert reason_driver(drivers, None) == drivers[3]["text"]  # the R score, pushing down


def test_reason_driver_keeps_direction_and_order_and_reads_old_drivers() -> None:
    old = [  # drivers without the lever and as_typical keys (a client of an older service)
        {"text": "A", "direction": "down"},
        {"text": "B", "direction": "up"},
        {"text": "C", "direction": "up"},
    ]
    assert reason_driver(old, "up") == "B"
    assert reason_driver(old, "down") == "A"
    assert reason_driver(old) == "A"
    assert reason_driver([], "up") is None
