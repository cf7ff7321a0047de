import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from lifecycle.features.mapping import (
    CustomerMapping,
    EventMapping,
    TransactionMapping,
    load_mapping,
    shipped_mappings,
)
from lifecycle.features.schema import empty_events
from lifecycle.features.validate import validate_events

NOW = pd.Timestamp("2025-01-01", tz="UTC")
DTYPES = empty_events().dtypes.to_dict()


def _events(**columns) -> pd.DataFrame:
    n = len(columns["customer_id"])
    base = {col: [np.nan] * n for col in DTYPES}
    base.update(columns)
    base["event_ts"] = [pd.Timestamp(t, tz="UTC") for t in columns["event_ts"]]
    return pd.DataFrame(base).astype(DTYPES)


def test_load_mapping_shipped_names():
    assert set(shipped_mappings()) >= {"cdnow", "cdnow_sample", "online_retail"}
    cdnow = load_mapping("cdnow")
    assert cdnow is not None
    assert cdnow.transactions is not None and cdnow.transactions.merge == "day"
    assert cdnow.read == {"sep": r"\s+"}
    assert cdnow.constants == {"event_type": "purchase", "currency": "USD"}
    sample = load_mapping("cdnow_sample")
    assert sample is not None and sample.read["header"] is None
    retail = load_mapping("online_retail")
    assert retail is not None and retail.timezone == "Europe/London"
    assert load_mapping(None) is None


def test_load_mapping_from_path(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text("columns: {customer_id: user}\nevent_types: {PageView: visit}\n")
    mapping = load_mapping(path)
    assert mapping == EventMapping(
        columns={"customer_id": "user"}, event_types={"PageView": "visit"}
    )
    assert load_mapping(str(path)) == mapping


def test_load_mapping_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_mapping("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: {customer: user}\n")
    with pytest.raises(ValueError, match=r"(?s)bad\.yaml.*not canonical"):
        load_mapping(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("columns: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_mapping(broken)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"columns": {"currency": "cur"}, "constants": {"currency": "EUR"}}, "both"),
        ({"constants": {"customer_id": "1"}}, "cannot be constants"),
        ({"extra_field": 1}, "extra"),
        (
            {"columns": {"revenue": "r"}, "transactions": {"amount_col": "a", "merge": "none"}},
            "drop columns.revenue",
        ),
    ],
)
def test_event_mapping_rejects_inconsistent_settings(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        EventMapping.model_validate(kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity_col": "q", "merge": "none"}, "set amount_col"),
        ({"amount_col": "a"}, "merge: order needs order_id_col"),
        ({"amount_col": "a", "merge": "day", "refund_prefix": "C"}, "needs order_id_col"),
    ],
)
def test_transaction_mapping_rejects_inconsistent_settings(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        TransactionMapping.model_validate(kwargs)


def test_customer_mapping_rejects_unknown_columns():
    with pytest.raises(ValidationError, match="not customer columns"):
        CustomerMapping(columns={"segment": "s"})


def test_mapping_renames_columns_maps_event_names_and_adds_constants():
    raw = pd.DataFrame(
        {
            "user": ["u1", "u1", "u2", "u2"],
            "when": ["2024-01-01 09:00", "2024-01-01 10:00", "2024-01-02 09:00", "2024-01-03"],
            "action": ["PageView", "Buy", "PageView", "Wave"],
            "value": ["", "20", "", ""],
            "utm_source": ["email", "email", "direct", "direct"],
        },
        dtype="str",
    )
    mapping = EventMapping(
        columns={
            "customer_id": "user",
            "event_ts": "when",
            "event_type": "action",
            "revenue": "value",
            "channel": "utm_source",
        },
        event_types={"PageView": "visit", "Buy": "purchase"},
        constants={"currency": "EUR", "campaign_id": "spring"},
    )
    result = validate_events(raw, mapping=mapping, now=NOW)

    expected = _events(
        customer_id=["u1", "u1", "u2"],
        event_ts=["2024-01-01 09:00", "2024-01-01 10:00", "2024-01-02 09:00"],
        event_type=["visit", "purchase", "visit"],
        revenue=[np.nan, 20.0, np.nan],
        currency=["EUR"] * 3,
        channel=["email", "email", "direct"],
        campaign_id=["spring"] * 3,
    )
    pd.testing.assert_frame_equal(result.events, expected)
    assert result.quarantine["reason"].tolist() == ["unknown event_type 'Wave'"]


ORDER_LINES = pd.DataFrame(
    {
        "invoice": ["1001", "1001", "1002", "C1003", "C1003", "1004", "1005", "1006"],
        "customer": ["7", "7", "7", "7", "7", "8", "8", "8"],
        "ts": [
            "2024-01-05 10:00:00",
            "2024-01-05 10:01:00",  # same order, a minute later
            "2024-01-06 09:00:00",
            "2024-01-07 12:00:00",
            "2024-01-07 12:00:00",
            "2024-01-05 11:00:00",
            "2024-01-05 12:00:00",
            "2024-01-05 13:00:00",
        ],
        "qty": ["2", "1", "3", "-1", "-2", "1", "-4", "x"],
        "price": ["1.50", "4.00", "2.00", "4.00", "1.50", "0", "2.00", "1"],
    },
    dtype="str",
)
ORDER_MAPPING = EventMapping(
    columns={"customer_id": "customer", "event_ts": "ts"},
    constants={"event_type": "purchase", "currency": "GBP"},
    timezone="Europe/London",
    transactions=TransactionMapping(
        order_id_col="invoice",
        quantity_col="qty",
        unit_price_col="price",
        refund_prefix="C",
        merge="order",
    ),
)


def test_mapping_transactions_merge_lines_by_order_with_refunds():
    result = validate_events(ORDER_LINES, mapping=ORDER_MAPPING, now=NOW)

    expected = _events(
        customer_id=["7", "7", "7", "8"],
        event_ts=["2024-01-05 10:00", "2024-01-06 09:00", "2024-01-07 12:00", "2024-01-05 11:00"],
        event_type=["purchase", "purchase", "refund", "purchase"],
        revenue=[7.0, 6.0, -7.0, 0.0],  # zero-price line kept as a zero-revenue purchase
        currency=["GBP"] * 4,
    )
    pd.testing.assert_frame_equal(result.events, expected)
    assert result.quarantine["source_row"].tolist() == [6, 7]
    assert result.quarantine["reason"].tolist() == [
        "negative quantity outside a refund order '-4'",
        "non-numeric quantity 'x'",
    ]
    assert (result.rows_in, result.rows_accepted, result.rows_quarantined) == (8, 6, 2)
    assert result.events_out == 4
    summary = result.summary()
    assert summary["mode"] == "transactions"
    assert summary["revenue_source"] == "qty * price"
    assert any("6 accepted lines merged into 4 events" in note for note in summary["notes"])


def test_mapping_transactions_missing_order_id_is_quarantined():
    lines = ORDER_LINES.copy()
    lines.loc[0, "invoice"] = " "
    result = validate_events(lines, mapping=ORDER_MAPPING, now=NOW)
    assert result.reasons["missing_order_id"] == 1
    assert result.quarantine.loc[0, "reason"] == "missing order id"


def test_mapping_transactions_merge_by_local_day():
    raw = pd.DataFrame(
        {
            "cust": ["1", "1", "1", "1", "2"],
            # New York: 20:00 and 23:30 on Jan 5 are one local day although UTC says Jan 6
            "date": [
                "2024-01-05 20:00",
                "2024-01-05 23:30",
                "2024-01-06 00:30",
                "2024-01-05 08:00",
                "2024-01-05 20:00",
            ],
            "amount": ["10", "5.5", "1", "0", "3"],
            "cds": ["1", "1", "1", "1", ""],
        },
        dtype="str",
    )
    mapping = EventMapping(
        columns={"customer_id": "cust", "event_ts": "date"},
        constants={"event_type": "purchase"},
        timezone="America/New_York",
        transactions=TransactionMapping(amount_col="amount", quantity_col="cds", merge="day"),
    )
    result = validate_events(raw, mapping=mapping, now=NOW)

    expected = _events(
        customer_id=["1", "1", "2"],
        event_ts=["2024-01-05 13:00", "2024-01-06 05:30", "2024-01-06 01:00"],
        event_type=["purchase"] * 3,
        revenue=[15.5, 1.0, 3.0],
    )
    pd.testing.assert_frame_equal(result.events, expected)
    assert (result.rows_accepted, result.events_out) == (5, 3)


def test_mapping_transactions_without_merge_keep_each_line():
    mapping = ORDER_MAPPING.model_copy(
        update={
            "transactions": TransactionMapping(
                order_id_col="invoice",
                quantity_col="qty",
                unit_price_col="price",
                refund_prefix="C",
                merge="none",
            )
        }
    )
    result = validate_events(ORDER_LINES, mapping=mapping, now=NOW)
    assert result.events_out == result.rows_accepted == 6
    refunds = result.events[result.events["event_type"] == "refund"]
    assert sorted(refunds["revenue"].tolist()) == [-4.0, -3.0]


def test_mapping_transactions_need_refund_in_vocabulary():
    vocabulary = ("visit", "purchase")
    with pytest.raises(ValueError, match="'refund' is not in the vocabulary"):
        validate_events(ORDER_LINES, mapping=ORDER_MAPPING, vocabulary=vocabulary, now=NOW)
