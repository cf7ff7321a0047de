import json

import numpy as np
import pandas as pd
import pytest

from lifecycle.features.mapping import EventMapping
from lifecycle.features.schema import empty_events
from lifecycle.features.validate import SchemaError, parse_timestamps, validate_events

NOW = pd.Timestamp("2025-01-01", tz="UTC")
COLUMNS = ["customer_id", "event_ts", "event_type", "revenue"]


def _raw(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS, dtype="str")


def _utc(*stamps: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(s, tz="UTC") for s in stamps]


BAD_LOG = _raw(
    [
        ("a", "2024-01-01 10:00:00", "visit", ""),  # 0 good
        ("", "2024-01-01 11:00:00", "visit", ""),  # 1 blank id
        ("NULL", "2024-01-01 12:00:00", "visit", ""),  # 2 null token id
        ("b", "2024-02-30 10:00", "visit", ""),  # 3 impossible date
        ("b", "", "visit", ""),  # 4 blank timestamp
        ("b", "2031-01-01 00:00:00", "visit", ""),  # 5 future
        ("b", "2024-01-02 00:00:00", "teleport", ""),  # 6 unknown type
        ("b", "2024-01-02 00:00:00", " ", ""),  # 7 blank type
        ("b", "2024-01-03 00:00:00", "purchase", "12,50"),  # 8 non-numeric revenue
        ("a", "2024-01-01 10:00:00", "visit", ""),  # 9 duplicate of 0
        (" ", "soon", "teleport", "abc"),  # 10 four problems
        ("b", "2024-01-04 00:00:00", "purchase", "12.50"),  # 11 good
    ]
)


def test_validate_events_quarantines_every_bad_row_with_its_reasons():
    result = validate_events(BAD_LOG, now=NOW)

    expected = pd.DataFrame(
        {
            "source_row": np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], dtype=np.int64),
            "reason": [
                "missing customer_id",
                "missing customer_id",
                "unparsable event_ts '2024-02-30 10:00'",
                "missing event_ts",
                "event_ts in the future '2031-01-01 00:00:00'",
                "unknown event_type 'teleport'",
                "missing event_type",
                "non-numeric revenue '12,50'",
                "duplicate of source_row 0 (key: every source column)",
                "missing customer_id; unparsable event_ts 'soon'; "
                "unknown event_type 'teleport'; non-numeric revenue 'abc'",
            ],
        }
    ).astype({"reason": "str"})
    pd.testing.assert_frame_equal(result.quarantine[["source_row", "reason"]], expected)
    # the raw text is kept untouched next to the reasons
    assert result.quarantine.columns.tolist() == ["source_row", "reason", *COLUMNS]
    assert result.quarantine.loc[9, "revenue"] == "abc"
    assert result.quarantine.loc[0, "customer_id"] == ""
    assert result.quarantine.loc[1, "customer_id"] == "NULL"

    assert result.reasons == {
        "missing_customer_id": 3,
        "missing_timestamp": 1,
        "unparsable_timestamp": 2,
        "future_timestamp": 1,
        "missing_event_type": 1,
        "unknown_event_type": 2,
        "non_numeric_revenue": 2,
        "duplicate_row": 1,
    }
    assert (result.rows_in, result.rows_accepted, result.rows_quarantined) == (12, 2, 10)
    assert result.rows_in == result.rows_accepted + result.rows_quarantined
    assert result.events_out == 2


def test_validate_events_returns_canonical_events_sorted():
    raw = _raw(
        [
            ("b", "2024-01-02 00:00:00", "purchase", "5"),
            ("a", "2024-01-03 00:00:00", "visit", ""),
            ("a", "2024-01-01 00:00:00", "signup", " "),
            ("a", "2024-01-01 00:00:00", "email_open", "n/a"),
        ]
    )
    events = validate_events(raw, now=NOW).events

    expected = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "event_ts": _utc("2024-01-01", "2024-01-01", "2024-01-03", "2024-01-02"),
            "event_type": ["email_open", "signup", "visit", "purchase"],
            "revenue": [np.nan, np.nan, np.nan, 5.0],
            "currency": [np.nan] * 4,
            "channel": [np.nan] * 4,
            "campaign_id": [np.nan] * 4,
        }
    ).astype(empty_events().dtypes.to_dict())
    pd.testing.assert_frame_equal(events, expected)


def test_validate_events_shuffled_input_gives_same_events():
    rng = np.random.default_rng(1)
    n = 300
    raw = pd.DataFrame(
        {
            "customer_id": rng.choice(["a", "b", "c"], n),
            "event_ts": pd.Series(
                pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 5, n), unit="D")
            ).dt.strftime("%Y-%m-%d"),
            "event_type": rng.choice(["visit", "purchase"], n),
            "revenue": rng.choice(["1", "2", ""], n),
            "channel": rng.choice(["email", "direct", ""], n),
            "row_id": np.arange(n).astype(str),  # keeps exact duplicates apart
        },
    ).astype("str")
    raw.loc[raw["event_type"] == "visit", "revenue"] = ""  # visits carry no revenue
    first = validate_events(raw, now=NOW).events
    shuffled = validate_events(raw.sample(frac=1, random_state=3), now=NOW).events
    pd.testing.assert_frame_equal(first, shuffled)
    assert len(first) == n


def test_validate_events_schema_error_names_every_missing_column():
    raw = pd.DataFrame({"user": ["1"], "when": ["2024-01-01"], "amount": ["3"]})
    mapping = EventMapping(columns={"revenue": "price", "channel": "medium"})
    with pytest.raises(SchemaError) as excinfo:
        validate_events(raw, mapping=mapping)
    message = str(excinfo.value)
    for column in ("customer_id", "event_ts", "event_type", "'price'", "'medium'"):
        assert column in message
    assert len(excinfo.value.problems) == 5
    assert "['user', 'when', 'amount']" in message


def test_validate_events_schema_error_for_unmappable_event_types():
    raw = pd.DataFrame({"customer_id": ["1"], "event_ts": ["2024-01-01"]})
    mapping = EventMapping(constants={"event_type": "buy"}, event_types={"click": "tap"})
    with pytest.raises(SchemaError) as excinfo:
        validate_events(raw, mapping=mapping)
    assert "'buy' is not in the vocabulary" in str(excinfo.value)
    assert "['tap']" in str(excinfo.value)


def test_validate_events_nothing_usable_gives_zero_accepted():
    raw = _raw([("", "x", "visit", ""), ("a", "", "teleport", "")])
    result = validate_events(raw, now=NOW)
    assert result.rows_accepted == 0
    assert result.rows_quarantined == result.rows_in == 2
    pd.testing.assert_frame_equal(result.events, empty_events())
    assert result.summary()["first_event_ts"] is None


def test_validate_events_empty_source_reconciles():
    result = validate_events(_raw([]), now=NOW)
    assert (result.rows_in, result.rows_accepted, result.rows_quarantined) == (0, 0, 0)
    pd.testing.assert_frame_equal(result.events, empty_events())
    assert result.quarantine.columns.tolist() == ["source_row", "reason", *COLUMNS]


def test_validate_events_without_revenue_column_says_so():
    raw = pd.DataFrame({"customer_id": ["a"], "event_ts": ["2024-01-01"], "event_type": ["visit"]})
    result = validate_events(raw, now=NOW)
    assert result.events["revenue"].isna().all()
    summary = result.summary()
    assert summary["revenue_source"] is None
    assert any("no revenue column" in note for note in summary["notes"])


def test_validate_events_duplicates_can_be_kept():
    raw = _raw([("a", "2024-01-01", "purchase", "3")] * 2)
    assert validate_events(raw, now=NOW).rows_quarantined == 1
    kept = validate_events(raw, mapping=EventMapping(duplicates="keep"), now=NOW)
    assert (kept.rows_quarantined, kept.events_out) == (0, 2)


def test_validate_events_default_now_is_current_time():
    raw = _raw([("a", "2999-01-01", "visit", ""), ("a", "2000-01-01", "visit", "")])
    result = validate_events(raw)
    assert result.reasons == {"future_timestamp": 1}


def test_validate_events_accepts_typed_columns():
    raw = pd.DataFrame(
        {
            "customer_id": [17850.0, 12346.0, np.nan],
            "event_ts": pd.to_datetime(
                ["2024-07-01 12:00", "2024-01-01 12:00", "2024-01-01 00:00"]
            ),
            "event_type": ["purchase"] * 3,
            "revenue": [1.5, np.inf, 2.0],
        }
    )
    result = validate_events(raw, mapping=EventMapping(timezone="Europe/London"), now=NOW)
    assert result.events["customer_id"].tolist() == ["17850"]
    assert result.events["event_ts"].tolist() == _utc("2024-07-01 11:00")
    assert result.quarantine["reason"].tolist() == [
        "non-numeric revenue 'inf'",
        "missing customer_id",
    ]


def test_validation_result_summary_is_json_able():
    summary = validate_events(BAD_LOG, now=NOW).summary()
    again = json.loads(json.dumps(summary))
    assert again["rows_in"] == 12
    assert again["rows_accepted"] + again["rows_quarantined"] == again["rows_in"]
    assert again["customers"] == 2
    assert again["event_types"] == {"purchase": 1, "visit": 1}
    assert again["revenue_total"] == 12.5


# Time zones and daylight saving ------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        # Europe/London: spring forward 2024-03-31 01:00 GMT -> 02:00 BST
        ("Europe/London", "2024-03-31 00:59:59", "2024-03-31 00:59:59"),
        ("Europe/London", "2024-03-31 01:30:00", "2024-03-31 01:30:00"),  # gap: GMT offset
        ("Europe/London", "2024-03-31 02:00:00", "2024-03-31 01:00:00"),
        # fall back 2024-10-27 02:00 BST -> 01:00 GMT
        ("Europe/London", "2024-10-27 00:59:00", "2024-10-26 23:59:00"),
        ("Europe/London", "2024-10-27 01:30:00", "2024-10-27 00:30:00"),  # ambiguous: earlier
        ("Europe/London", "2024-10-27 02:00:00", "2024-10-27 02:00:00"),
        # America/New_York: spring forward 2024-03-10 02:00 EST -> 03:00 EDT
        ("America/New_York", "2024-03-10 01:59:59", "2024-03-10 06:59:59"),
        ("America/New_York", "2024-03-10 02:30:00", "2024-03-10 07:30:00"),  # gap: EST offset
        ("America/New_York", "2024-03-10 03:00:00", "2024-03-10 07:00:00"),
        # fall back 2024-11-03 02:00 EDT -> 01:00 EST
        ("America/New_York", "2024-11-03 00:59:00", "2024-11-03 04:59:00"),
        ("America/New_York", "2024-11-03 01:30:00", "2024-11-03 05:30:00"),  # ambiguous: earlier
        ("America/New_York", "2024-11-03 02:00:00", "2024-11-03 07:00:00"),
    ],
)
def test_validate_events_naive_times_across_dst_map_to_utc(zone, local, utc):
    raw = _raw([("a", local, "visit", "")])
    result = validate_events(raw, mapping=EventMapping(timezone=zone), now=NOW)
    assert result.rows_accepted == 1
    assert result.events["event_ts"].tolist() == _utc(utc)


def test_validate_events_aware_timestamps_convert_to_utc():
    raw = _raw(
        [
            ("a", "2024-03-31T01:30:00+01:00", "visit", ""),
            ("b", "2024-11-03 01:30:00-05:00", "visit", ""),
            ("c", "2024-01-01T10:00:00Z", "visit", ""),
            ("d", "2024-01-01 10:00:00.250+0530", "visit", ""),
            ("e", "2024-07-01 12:00", "visit", ""),  # naive, read in the mapping zone
        ]
    )
    result = validate_events(raw, mapping=EventMapping(timezone="America/New_York"), now=NOW)
    assert result.events["event_ts"].tolist() == _utc(
        "2024-03-31 00:30",
        "2024-11-03 06:30",
        "2024-01-01 10:00",
        "2024-01-01 04:30:00.250",
        "2024-07-01 16:00",
    )
    assert str(result.events["event_ts"].dtype) == "datetime64[us, UTC]"


def test_parse_timestamps_typed_aware_values_convert():
    values = pd.Series(pd.to_datetime(["2024-03-10 03:00"]).tz_localize("America/New_York"))
    ts, missing, bad = parse_timestamps(values, timezone="Europe/London")
    assert ts.tolist() == _utc("2024-03-10 07:00")
    assert not missing.any() and not bad.any()


def test_parse_timestamps_with_format_and_lenient_fallback():
    ts, _, bad = parse_timestamps(
        pd.Series(["31/12/2023 23:00", "nonsense"]),
        timezone="Europe/London",
        timestamp_format="%d/%m/%Y %H:%M",
    )
    assert ts[0] == pd.Timestamp("2023-12-31 23:00", tz="UTC")
    assert bad.tolist() == [False, True]
    aware, _, _ = parse_timestamps(
        pd.Series(["2024-07-01 12:00 +0200"]), timestamp_format="%Y-%m-%d %H:%M %z"
    )
    assert aware.tolist() == _utc("2024-07-01 10:00")
    # no format: ISO first, then other layouts
    lenient, _, bad = parse_timestamps(pd.Series(["2024-07-01", "July 2, 2024 10:00"]))
    assert lenient.tolist() == _utc("2024-07-01", "2024-07-02 10:00")
    assert not bad.any()


def _lines(n: int = 10) -> pd.DataFrame:
    """Order lines: two products per order, each order at its own minute."""
    rows = []
    for i in range(n):
        order, product = f"o{i // 2}", f"p{i % 2}"
        rows.append((f"line{i}", order, product, "c1", f"2024-01-01 10:{i // 2:02d}", "1", "5"))
    return pd.DataFrame(
        rows, columns=["line_id", "order", "product", "cust", "ts", "qty", "price"], dtype="str"
    )


LINE_MAPPING = {
    "columns": {"customer_id": "cust", "event_ts": "ts"},
    "constants": {"event_type": "purchase"},
    "transactions": {"order_id_col": "order", "quantity_col": "qty", "unit_price_col": "price"},
}


def test_duplicate_key_decides_what_a_duplicate_is():
    raw = _lines()
    raw.loc[[3, 7], ["product"]] = ["p0", "p0"]  # rows 3 and 7 repeat their order's product
    everything = validate_events(raw, mapping=EventMapping(**LINE_MAPPING), now=NOW)
    assert everything.rows_quarantined == 0  # the line ids differ: no row is a copy
    keyed = EventMapping(**LINE_MAPPING, duplicate_key=["order", "product"])
    result = validate_events(raw, mapping=keyed, now=NOW)
    assert result.quarantine["source_row"].tolist() == [3, 7]
    assert result.quarantine["reason"].tolist() == [
        "duplicate of source_row 2 (key: order, product)",
        "duplicate of source_row 6 (key: order, product)",
    ]
    assert result.reasons == {"duplicate_row": 2}
    assert any("order, product" in note for note in result.notes)
    # A key without the customer or timestamp columns still finds them.
    by_product = validate_events(
        raw, mapping=EventMapping(**LINE_MAPPING, duplicate_key=["product"]), now=NOW
    )
    assert by_product.quarantine["source_row"].tolist() == list(range(2, 10))


def test_duplicate_key_must_name_source_columns():
    keyed = EventMapping(**LINE_MAPPING, duplicate_key=["order", "sku"])
    with pytest.raises(SchemaError, match=r"duplicate_key: columns \['sku'\]"):
        validate_events(_lines(), mapping=keyed, now=NOW)
    with pytest.raises(ValueError, match="one or more source column"):
        EventMapping(duplicate_key=[])


def test_a_dropped_column_that_makes_duplicates_warns_loudly():
    raw = _lines()
    raw.loc[[1, 3], ["product"]] = ["p0", "p0"]  # only the line id tells these lines apart
    kept = validate_events(raw, mapping=EventMapping(**LINE_MAPPING), now=NOW)
    assert kept.warnings == ()
    assert kept.summary()["warnings"] == [] and kept.summary()["quarantined_share"] == 0.0
    dropped = validate_events(
        raw.drop(columns="line_id"), mapping=EventMapping(**LINE_MAPPING), now=NOW
    )
    assert dropped.rows_quarantined == 2
    summary = dropped.summary()
    assert summary["quarantined_share"] == 0.2
    assert summary["warnings"] == [
        "20.0% of rows (2 of 10) were quarantined, above the 5% alert line; largest reasons: "
        "duplicate_row 2; check the mapping (columns, duplicate_key, timestamp_format) before use"
    ]


def test_the_warning_line_is_above_five_percent_not_at_it():
    raw = _lines(20)
    raw.loc[19, "cust"] = ""  # 1 of 20 = 5%: no warning
    assert validate_events(raw, mapping=EventMapping(**LINE_MAPPING), now=NOW).warnings == ()
    raw.loc[18, "cust"] = ""  # 2 of 20 = 10%
    assert len(validate_events(raw, mapping=EventMapping(**LINE_MAPPING), now=NOW).warnings) == 1
