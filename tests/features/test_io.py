import json
import os
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from lifecycle.features.io import (
    SourceError,
    load_customers,
    load_events,
    read_source,
    replace_atomically,
    replace_folder_atomically,
    write_events,
    write_validation,
)
from lifecycle.features.mapping import CustomerMapping, load_mapping
from lifecycle.features.schema import EVENT_SCHEMA, empty_events
from lifecycle.features.validate import SchemaError

NOW = pd.Timestamp("2025-01-01", tz="UTC")
DATA = Path(__file__).parents[2].parent / "shared" / "data"

# A small hand-built log: naive (UTC) and offset timestamps, blanks, one bad row (index 7).
RAW_LOG = pd.DataFrame(
    {
        "customer_id": ["c1", "c1", "c2", "c2", "c3", "c1", "c3", "", "c10"],
        "event_ts": [
            "2024-01-05 09:00:00",
            "2024-01-05 09:10:00",
            "2024-01-06T12:00:00Z",
            "2024-01-07 08:00:00+01:00",
            "2024-01-08 10:00:00",
            "2024-02-01 00:00:00",
            "2024-01-09 11:30:00",
            "2024-01-09 11:30:00",
            "2024-03-01 00:00:00",
        ],
        "event_type": [
            "visit",
            "purchase",
            "signup",
            "purchase",
            "visit",
            "refund",
            "purchase",
            "visit",
            "visit",
        ],
        "revenue": ["", "25.50", "", "10", "", "-25.5", "99.99", "", ""],
        "channel": ["email", "email", "direct", "direct", "paid_social", "email", "", "", ""],
    },
    dtype="str",
)


def _expected_events() -> pd.DataFrame:
    nan = np.nan
    frame = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c1", "c10", "c2", "c2", "c3", "c3"],
            "event_ts": [
                pd.Timestamp(t, tz="UTC")
                for t in (
                    "2024-01-05 09:00",
                    "2024-01-05 09:10",
                    "2024-02-01 00:00",
                    "2024-03-01 00:00",
                    "2024-01-06 12:00",
                    "2024-01-07 07:00",
                    "2024-01-08 10:00",
                    "2024-01-09 11:30",
                )
            ],
            "event_type": [
                "visit",
                "purchase",
                "refund",
                "visit",
                "signup",
                "purchase",
                "visit",
                "purchase",
            ],
            "revenue": [nan, 25.5, -25.5, nan, nan, 10.0, nan, 99.99],
            "currency": [nan] * 8,
            "channel": [
                "email",
                "email",
                "email",
                nan,
                "direct",
                "direct",
                "paid_social",
                nan,
            ],
            "campaign_id": [nan] * 8,
        }
    )
    return frame.astype(empty_events().dtypes.to_dict())


def _check(result) -> None:
    pd.testing.assert_frame_equal(result.events, _expected_events())
    assert (result.rows_in, result.rows_accepted, result.rows_quarantined) == (9, 8, 1)
    assert result.quarantine["source_row"].tolist() == [7]
    assert result.quarantine["reason"].tolist() == ["missing customer_id"]


def _typed_log() -> pd.DataFrame:
    """The same log with native types, as a warehouse would hold it."""
    typed = RAW_LOG.copy()
    typed["event_ts"] = pd.to_datetime(RAW_LOG["event_ts"], format="ISO8601", utc=True)
    typed["revenue"] = pd.to_numeric(RAW_LOG["revenue"].replace("", np.nan))
    return typed


def test_load_events_csv(tmp_path):
    path = tmp_path / "events.csv"
    RAW_LOG.to_csv(path, index=False)
    _check(load_events(path, now=NOW))


def test_load_events_compressed_csv(tmp_path):
    path = tmp_path / "events.csv.gz"
    RAW_LOG.to_csv(path, index=False)
    _check(load_events(path, now=NOW))


@pytest.mark.parametrize("typed", [False, True])
def test_load_events_parquet_file(tmp_path, typed):
    path = tmp_path / "events.parquet"
    (_typed_log() if typed else RAW_LOG).to_parquet(path, index=False)
    _check(load_events(path, now=NOW))


def test_load_events_parquet_folder(tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    RAW_LOG.iloc[:4].to_parquet(folder / "part-0.parquet", index=False)
    RAW_LOG.iloc[4:].to_parquet(folder / "part-1.parquet", index=False)
    result = load_events(folder, now=NOW)
    pd.testing.assert_frame_equal(result.events, _expected_events())
    assert result.rows_in == 9 and result.rows_quarantined == 1


@pytest.mark.parametrize("typed", [False, True])
def test_load_events_duckdb_table(tmp_path, typed):
    path = tmp_path / "warehouse.duckdb"
    frame = _typed_log() if typed else RAW_LOG
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE events AS SELECT * FROM frame")
        con.execute("CREATE TABLE other (x INTEGER)")
    _check(load_events(path, table="events", now=NOW))


def test_load_events_sqlite_via_sqlalchemy(tmp_path):
    db = tmp_path / "events.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    RAW_LOG.to_sql("events", engine, index=False)
    engine.dispose()
    _check(load_events(f"sqlite:///{db}", table="events", now=NOW))
    # a .db file holding SQLite is recognised by its header, the table being the only one
    _check(load_events(db, now=NOW))


def _postgres_engine() -> sa.Engine:
    url = os.environ.get("LIFECYCLE_TEST_POSTGRES_URL")
    if url is None:
        url = "postgresql+psycopg://postgres@127.0.0.1:5432/test?connect_timeout=3"
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable at {engine.url!r}: {type(exc).__name__}")
    return engine


def test_load_events_postgres_via_sqlalchemy():
    engine = _postgres_engine()
    table = f"lc_test_events_{uuid.uuid4().hex[:10]}"
    try:
        RAW_LOG.to_sql(table, engine, index=False)
        url = engine.url.render_as_string(hide_password=False)
        _check(load_events(url, table=table, now=NOW))
        with pytest.raises(SourceError, match="no table 'absent_table'"):
            read_source(url, table="absent_table")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


def test_read_source_keeps_csv_text_untouched(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("customer_id,revenue,event_ts\n007,1.50, 2024-01-01\n,NA,\n")
    raw = read_source(path)
    assert raw.to_dict("list") == {
        "customer_id": ["007", ""],
        "revenue": ["1.50", "NA"],
        "event_ts": [" 2024-01-01", ""],
    }


def test_read_source_applies_read_options(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text(" 01  19970101  2\r\n 02  19970102  1\r\n")
    raw = read_source(path, read_options={"sep": r"\s+", "header": None, "names": ["a", "b", "c"]})
    assert raw["a"].tolist() == ["01", "02"]


def test_read_source_errors_name_the_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        read_source(tmp_path / "missing.csv")
    odd = tmp_path / "events.xlsx"
    odd.write_text("x")
    with pytest.raises(SourceError, match=r"events\.xlsx.*unsupported"):
        read_source(odd)
    corrupt = tmp_path / "broken.parquet"
    corrupt.write_bytes(b"not parquet at all")
    with pytest.raises(SourceError, match=r"broken\.parquet"):
        read_source(corrupt)
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    with pytest.raises(SourceError, match=r"no \.parquet files"):
        read_source(empty_folder)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(SourceError, match=r"cut\.csv\.gz"):
        read_source(truncated)
    with pytest.raises(SourceError, match="nosuchdialect"):
        read_source("nosuchdialect://host/db", table="events")


def test_read_source_database_table_errors(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE a (x INTEGER)")
        con.execute("CREATE TABLE b (x INTEGER)")
    with pytest.raises(SourceError, match=r"w\.duckdb: no table 'events' \(tables: \['a', 'b'\]\)"):
        read_source(path, table="events")
    with pytest.raises(SourceError, match="name a table"):
        read_source(path)
    db = tmp_path / "s.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    pd.DataFrame({"x": [1]}).to_sql("a", engine, index=False)
    engine.dispose()
    with pytest.raises(SourceError, match="no table 'events'"):
        read_source(f"sqlite:///{db}", table="events")


def test_load_events_schema_error_on_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(SchemaError, match="customer_id"):
        load_events(path)


def test_write_validation_writes_events_quarantine_and_summary(tmp_path):
    source = tmp_path / "events.csv"
    RAW_LOG.to_csv(source, index=False)
    result = load_events(source, now=NOW)
    paths = write_validation(result, tmp_path / "out")

    assert set(paths) == {"events", "quarantine_csv", "quarantine_parquet", "summary"}
    table = pq.read_table(paths["events"])
    assert table.schema.equals(EVENT_SCHEMA, check_metadata=False)
    pd.testing.assert_frame_equal(table.to_pandas(), result.events)
    quarantine = pd.read_csv(paths["quarantine_csv"], dtype=str, keep_default_na=False)
    assert quarantine["reason"].tolist() == ["missing customer_id"]
    assert len(pd.read_parquet(paths["quarantine_parquet"])) == 1
    summary = json.loads(paths["summary"].read_text())
    assert (summary["rows_in"], summary["rows_accepted"], summary["rows_quarantined"]) == (9, 8, 1)


def test_write_events_round_trips_empty_frame(tmp_path):
    path = write_events(empty_events(), tmp_path / "nested" / "events.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), empty_events())


def test_load_customers_maps_columns_and_keeps_extras(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "id,source,country,joined,segment\nb2,email,UK,2024-07-01 12:00,gold\na1,, US ,,silver\n"
    )
    mapping = CustomerMapping(
        columns={"customer_id": "id", "acquisition_channel": "source", "signup_ts": "joined"},
        timezone="Europe/London",
    )
    customers = load_customers(path, mapping=mapping)
    assert customers.columns.tolist() == [
        "customer_id",
        "acquisition_channel",
        "country",
        "signup_ts",
        "segment",
    ]
    assert customers["customer_id"].tolist() == ["a1", "b2"]
    assert customers["acquisition_channel"].isna().tolist() == [True, False]
    assert customers["country"].tolist() == ["US", "UK"]
    assert str(customers["signup_ts"].dtype) == "datetime64[us, UTC]"
    assert customers.loc[1, "signup_ts"] == pd.Timestamp("2024-07-01 11:00", tz="UTC")


def test_load_customers_rejects_bad_ids(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id\na\na\n")
    with pytest.raises(ValueError, match="repeated customer_id"):
        load_customers(path)
    path.write_text("customer_id,country\na,UK\n ,US\n")
    with pytest.raises(ValueError, match="blank customer_id"):
        load_customers(path)
    path.write_text("id\na\n")
    with pytest.raises(SchemaError, match="customer_id"):
        load_customers(path)


# Real data --------------------------------------------------------------------------------


def _real(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset not available: {path} (shared/data is absent)")
    return path


@pytest.mark.slow
def test_load_events_cdnow_master():
    path = _real("cdnow", "CDNOW_master.txt")
    started = time.perf_counter()
    result = load_events(path, mapping=load_mapping("cdnow"), now=NOW)
    assert time.perf_counter() - started < 15

    assert result.rows_in == 69_659  # README
    assert result.rows_accepted == 69_659 and result.rows_quarantined == 0
    assert result.events["customer_id"].nunique() == 23_570  # README
    # Same-day lines merge into one purchase; check against a plain pandas reading.
    plain = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    assert result.events_out == len(plain.groupby(["customer_id", "date"]))
    assert result.events["revenue"].sum() == pytest.approx(plain["dollar_value"].sum())
    assert (result.events["event_type"] == "purchase").all()
    assert (result.events["currency"] == "USD").all()
    assert result.events["event_ts"].min() == pd.Timestamp("1997-01-01", tz="UTC")
    assert result.events["event_ts"].max() == pd.Timestamp("1998-06-30", tz="UTC")


@pytest.mark.slow
def test_load_events_cdnow_sample():
    result = load_events(
        _real("cdnow", "CDNOW_sample.txt"), mapping=load_mapping("cdnow_sample"), now=NOW
    )
    assert (result.rows_in, result.rows_quarantined) == (6_919, 0)  # README
    assert result.events["customer_id"].nunique() == 2_357  # README
    assert result.events["customer_id"].iloc[0] == "00004"  # master ids keep their zeros


@pytest.mark.slow
def test_load_events_online_retail_reconciles():
    path = _real("online_retail", "online_retail.csv.gz")
    result = load_events(path, mapping=load_mapping("online_retail"), now=NOW)

    assert result.rows_in == 541_909  # README
    assert result.rows_in == result.rows_accepted + result.rows_quarantined
    assert result.reasons["missing_customer_id"] == 135_080  # README
    assert result.events["customer_id"].nunique() == 4_372  # README
    plain = pd.read_csv(path, dtype=str, keep_default_na=False)
    with_customer = plain[plain["CustomerID"] != ""]
    assert result.events_out == with_customer["InvoiceNo"].nunique()  # one event per invoice
    refunds = result.events[result.events["event_type"] == "refund"]
    assert (
        len(refunds)
        == with_customer.loc[with_customer["InvoiceNo"].str.startswith("C"), "InvoiceNo"].nunique()
    )
    assert (refunds["revenue"] < 0).all()
    assert (result.events.loc[result.events["event_type"] == "purchase", "revenue"] >= 0).all()
    # InvoiceDate is UK local time: BST (summer) invoices move one hour back, GMT ones do not
    by_customer = result.events.set_index("customer_id")["event_ts"]
    assert pd.Timestamp("2011-07-01 07:16", tz="UTC") in by_customer.loc[["16317"]].tolist()
    assert pd.Timestamp("2011-01-04 10:00", tz="UTC") in by_customer.loc[["13313"]].tolist()
    assert (result.events["currency"] == "GBP").all()


def _dead_pid() -> int:
    """A process id that no process has now (a child that has exited and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_writers_part_is_removed_by_the_next_write_and_a_live_ones_is_kept(tmp_path):
    target = tmp_path / "lookup.parquet"
    dead = tmp_path / f".lookup.parquet.{_dead_pid()}.part"
    live = tmp_path / f".lookup.parquet.{os.getppid()}.part"  # a running process: a writer
    other = tmp_path / f".other.parquet.{_dead_pid()}.part"  # another target's: not ours
    for part in (dead, live, other):
        part.write_text("half a file")
    replace_atomically(target, lambda temp: temp.write_text("new"))
    assert target.read_text() == "new"
    assert not dead.exists() and live.exists() and other.exists()


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "report"
    replace_folder_atomically(target, lambda d: (d / "a.html").write_text("one"))

    def fails(folder: Path) -> None:
        (folder / "a.html").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_folder_atomically(target, fails)
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no part left, the old one kept
    assert (target / "a.html").read_text() == "one"
    replace_folder_atomically(target, lambda d: (d / "b.html").write_text("two"))
    assert sorted(p.name for p in target.iterdir()) == ["b.html"]
