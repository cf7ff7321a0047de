"""Implausible events are refused by the API with 422 naming the event (issue 17, point 5)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from lifecycle.serving.schemas import ErrorResponse

GOOD = {"event_ts": "2025-01-01", "event_type": "purchase", "revenue": 10.0}


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        ({"event_type": "purchase", "revenue": -5.0}, "events[1]", "negative revenue"),
        ({"event_type": "visit", "revenue": 5.0}, "events[1]", "revenue on an event type"),
        ({"event_ts": "0001-01-01", "event_type": "visit"}, "events[1]", "before 1970-01-01"),
        (
            {"event_type": "visit", "campaign_id": "c\x001"},
            "events[1].campaign_id",
            "control character",
        ),
        (
            {"event_type": "visit", "customer_id": "a\nb"},
            "events[1].customer_id",
            "control character",
        ),
    ],
)
def test_implausible_events_are_422_naming_the_event(
    client: TestClient, bad: dict[str, Any], field: str, words: str
) -> None:
    event = {"event_ts": "2025-02-01", **bad}
    response = client.post("/predict", json={"events": [GOOD, event]})
    assert response.status_code == 422, response.text
    error = ErrorResponse.model_validate(response.json())
    assert [f.field for f in error.fields] == [field]
    assert words in error.fields[0].message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "C\x00001"}, "customer_id"),
        ({"items": [{"customer_id": "C1\t"}]}, "items[0].customer_id"),
    ],
)
def test_a_looked_up_id_with_a_control_character_is_422_not_404(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    path = "/predict_batch" if "items" in body else "/predict"
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    error = ErrorResponse.model_validate(response.json())
    assert [(f.field, f.message) for f in error.fields] == [
        (field, "control character (NUL, tab, newline, ...) in customer_id")
    ]


def test_a_refund_may_be_negative_and_a_visit_may_carry_zero(client: TestClient) -> None:
    events = [
        GOOD,
        {"event_ts": "2025-01-05", "event_type": "refund", "revenue": -10.0},
        {"event_ts": "2025-01-06", "event_type": "visit", "revenue": 0.0},
    ]
    response = client.post("/predict", json={"events": events})
    assert response.status_code == 200, response.text
