"""Plausible data only (issue 17, point 5): implausible rows are quarantined with their reason,
decoding errors name the fix, and a wrong delimiter is detected or named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from lifecycle.features.config import LifecycleConfig, ValidationRules
from lifecycle.features.io import SourceError, load_events, read_source
from lifecycle.features.mapping import EventMapping, TransactionMapping
from lifecycle.features.validate import Plausibility, has_control_characters, validate_events


def _raw(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "event_type", "revenue"])
    frame["campaign_id"] = ""
    return frame


def _reasons(result) -> dict[int, str]:  # type: ignore[no-untyped-def]
    q = result.quarantine
    return dict(zip(q["source_row"].tolist(), q["reason"].tolist(), strict=True))


def test_each_implausible_row_is_quarantined_with_its_reason() -> None:
    raw = _raw(
        ("a", "2024-01-01", "purchase", "10"),  # fine
        ("b", "2024-01-01", "purchase", "-5"),  # negative purchase
        ("c", "2024-01-01", "visit", "3"),  # revenue on a visit
        ("d", "0001-01-01", "visit", ""),  # year 0001
        ("e\x00f", "2024-01-01", "visit", ""),  # NUL in the id
        ("g\th", "2024-01-01", "visit", ""),  # tab inside the id
        ("i", "2024-01-01", "refund", "-5"),  # a refund may be negative
        ("j", "2024-01-01", "visit", "0"),  # zero revenue on a visit is no revenue
    )
    raw.loc[7, "campaign_id"] = "x\ny"
    result = validate_events(raw)
    reasons = _reasons(result)
    assert sorted(reasons) == [1, 2, 3, 4, 5, 7]
    assert "negative revenue" in reasons[1] and "'purchase'" in reasons[1]
    assert "revenue on an event type that carries none" in reasons[2] and "'visit'" in reasons[2]
    assert "before 1970-01-01" in reasons[3] and "'0001-01-01'" in reasons[3]
    assert "control character" in reasons[4] and "customer_id" in reasons[4]
    assert "control character" in reasons[5]
    assert "campaign_id" in reasons[7]
    assert result.reasons == {
        "negative_revenue": 1,
        "revenue_on_non_revenue_event": 1,
        "before_earliest_event": 1,
        "control_character_in_customer_id": 2,
        "control_character_in_campaign_id": 1,
    }
    assert result.rows_in == result.rows_accepted + result.rows_quarantined == 8


def test_the_rules_come_from_the_config() -> None:
    config = LifecycleConfig(
        validation=ValidationRules(
            earliest_event=dt.date(2020, 1, 1),
            revenue_events=("purchase", "refund", "offer_redemption"),
        )
    )
    rules = Plausibility.from_config(config)
    raw = _raw(
        ("a", "2019-12-31", "purchase", "1"),
        ("b", "2024-01-01", "offer_redemption", "4"),
    )
    reasons = _reasons(validate_events(raw, plausibility=rules))
    assert list(reasons) == [0]
    assert "before 2020-01-01" in reasons[0]
    # The default rules refuse the redemption's revenue and accept 2019.
    assert list(_reasons(validate_events(raw))) == [1]


def test_refund_and_purchase_roles_follow_the_config() -> None:
    config = LifecycleConfig.model_validate(
        {
            "stages": {"purchase_events": ["order"]},
            "features": {"refund_events": ["return"]},
            "vocabulary": ["visit", "order", "return"],
        }
    )
    rules = Plausibility.from_config(config)
    assert rules.revenue_events == ("order", "return")
    raw = _raw(("a", "2024-01-01", "order", "3"), ("a", "2024-01-02", "return", "-3"))
    result = validate_events(raw, vocabulary=config.vocabulary, plausibility=rules)
    assert result.rows_quarantined == 0


def test_transactions_keep_their_own_sign_rules() -> None:
    raw = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a"],
            "event_ts": ["2024-01-01", "2024-01-01", "2024-01-03"],
            "order": ["1", "1", "C2"],
            "amount": ["5", "-1", "-5"],
        }
    )
    mapping = EventMapping(
        constants={"event_type": "purchase"},
        transactions=TransactionMapping(
            order_id_col="order", amount_col="amount", refund_prefix="C"
        ),
    )
    result = validate_events(raw, mapping=mapping)
    assert result.reasons == {"negative_amount": 1}
    assert sorted(result.events["event_type"]) == ["purchase", "refund"]


def test_control_characters() -> None:
    assert has_control_characters("a\x00") and has_control_characters("a\x7fb")
    assert not has_control_characters("Ünïcødé id 42")


def test_load_events_quarantines_year_one_from_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "customer_id,event_ts,event_type,revenue\n1,0001-01-01,visit,\n1,2024-01-01,visit,\n"
    )
    result = load_events(path)
    assert result.rows_quarantined == 1 and result.reasons == {"before_earliest_event": 1}


def test_a_decoding_error_names_the_mapping_fix(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes("customer_id,event_ts,event_type\nJosé,2024-01-01,visit\n".encode("latin-1"))
    with pytest.raises(SourceError) as caught:
        read_source(path)
    message = str(caught.value)
    assert "not valid utf-8" in message and "read: {encoding: latin-1}" in message
    assert "\n" not in message
    frame = read_source(path, read_options={"encoding": "latin-1"})
    assert frame["customer_id"].tolist() == ["José"]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_wrong_delimiter_is_detected(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "events.csv"
    lines = ["customer_id", "event_ts", "event_type"], ["1", "2024-01-01", "visit"]
    path.write_text("".join(sep.join(line) + "\n" for line in lines))
    frame = read_source(path)
    assert list(frame.columns) == ["customer_id", "event_ts", "event_type"]
    assert load_events(path).rows_accepted == 1


def test_a_wrong_explicit_delimiter_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("customer_id;event_ts;event_type\n1;2024-01-01;visit\n")
    with pytest.raises(SourceError, match=r"looks delimited by ';'.*read: \{sep: ';'\}"):
        read_source(path, read_options={"sep": "|"})
