"""Streamed validation (issue 17, point 5) writes what the in-memory path writes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lifecycle.features import streaming
from lifecycle.features.io import load_events, write_validation
from lifecycle.features.mapping import EventMapping, SourcesMapping, load_mapping
from lifecycle.features.simulate import simulate
from lifecycle.features.streaming import (
    OutOfMemory,
    parse_size,
    source_kind,
    streams,
    validate_to_folder,
)
from lifecycle.features.validate import SchemaError, ValidationResult

NOW = pd.Timestamp("2026-06-01", tz="UTC")


@pytest.fixture(scope="module")
def messy_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated log as CSV with duplicates far apart and every kind of bad row."""
    folder = tmp_path_factory.mktemp("messy")
    simulate(600, seed=5, out_dir=folder, days=365)
    events = pd.read_parquet(folder / "events.parquet")
    events["event_ts"] = events["event_ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    events = events.astype("str").replace({"nan": "", "None": "", "<NA>": ""})
    rng = np.random.default_rng(0)
    copies = events.sample(300, random_state=1)  # exact duplicates, appended at the end
    bad = events.sample(40, random_state=2).copy()
    bad.iloc[:10, bad.columns.get_loc("event_ts")] = "0001-01-01"
    bad.iloc[10:20, bad.columns.get_loc("customer_id")] = "x\x01y"
    bad.iloc[20:30, bad.columns.get_loc("event_type")] = "teleport"
    bad.iloc[30:40, bad.columns.get_loc("revenue")] = "abc"
    frame = pd.concat([events, bad, copies], ignore_index=True)
    frame = frame.iloc[
        rng.permutation(len(frame) - 300).tolist() + list(range(len(frame) - 300, len(frame)))
    ]
    path = folder / "events.csv"
    frame.to_csv(path, index=False)
    return path


def _outputs(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, bytes, dict]:
    return (
        pd.read_parquet(folder / "events.parquet"),
        pd.read_parquet(folder / "quarantine.parquet"),
        (folder / "quarantine.csv").read_bytes(),
        json.loads((folder / "summary.json").read_text()),
    )


@pytest.mark.parametrize("parts", [1, 7])
def test_streamed_validation_equals_the_in_memory_one(
    messy_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 997)
    monkeypatch.setattr(streaming, "_parts_for", lambda path, limit: parts)
    in_memory = load_events(messy_csv, now=NOW)
    write_validation(in_memory, tmp_path / "memory")
    result, _ = validate_to_folder(messy_csv, tmp_path / "stream", now=NOW)
    events_m, quarantine_m, csv_m, summary_m = _outputs(tmp_path / "memory")
    events_s, quarantine_s, csv_s, summary_s = _outputs(tmp_path / "stream")
    assert in_memory.rows_quarantined > 300  # the log really is messy
    pd.testing.assert_frame_equal(events_s, events_m)
    pd.testing.assert_frame_equal(quarantine_s, quarantine_m)
    assert csv_s == csv_m
    assert summary_s.pop("revenue_total") == pytest.approx(summary_m.pop("revenue_total"))
    assert summary_s == summary_m
    assert result.summary()["customers"] == summary_m["customers"]
    assert not list((tmp_path / "stream").glob(".*"))  # no temporary file or folder is left


def test_a_file_of_only_bad_rows_writes_empty_outputs(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("customer_id,event_ts,event_type\n,2024-01-01,visit\n")
    result, paths = validate_to_folder(path, tmp_path / "out", now=NOW)
    assert (result.rows_in, result.rows_accepted) == (1, 0)
    assert pd.read_parquet(paths["events"]).empty
    assert pd.read_csv(paths["quarantine_csv"])["reason"].tolist() == ["missing customer_id"]


def test_sizes_and_what_streams() -> None:
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5 GiB") == int(1.5 * 2**30)
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert [source_kind(s) for s in ("e.csv.gz", "e.TSV", "e.parquet", "e.duckdb")] == [
        "csv",
        "csv",
        "parquet",
        "database",
    ]
    assert streams("e.csv", EventMapping()) and streams("e.parquet")
    assert not streams("sqlite:///e.db") and not streams(None)
    both = {"path": "a.csv", "constants": {"event_type": "visit"}}
    db = both | {"path": "postgresql://host/db"}
    assert streams(None, SourcesMapping(sources={"a": both, "b": both | {"path": "b.pq"}}))
    assert not streams(None, SourcesMapping(sources={"a": both, "b": db}))


def test_running_out_of_memory_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.csv"
    path.write_text("customer_id,event_ts,event_type\n1,2024-01-01,visit\n")

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(streaming, "_validate_streamed", no_memory)
    with pytest.raises(OutOfMemory) as caught:
        validate_to_folder(path, tmp_path / "out", memory_limit="1GB")
    assert "\n" not in str(caught.value) and "memory limit 1GB" in str(caught.value)


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child of
# a large pytest process would report the parent's size; VmHWM belongs to the new image.
_MEASURE = """
import sys
from lifecycle.features.streaming import validate_to_folder
validate_to_folder(sys.argv[1], sys.argv[2], memory_limit=sys.argv[3])
status = open("/proc/self/status").read().splitlines()
print(int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) * 1024)
"""


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated log of 1.06 M events as Parquet (10 MB), shared by the memory tests."""
    folder = tmp_path_factory.mktemp("big")
    simulate(20000, seed=9, out_dir=folder, days=1460)
    return folder / "events.parquet"


def _peak_validating(path: Path, out: Path, cap: str) -> int:
    """Validate ``path`` under ``cap`` in a fresh interpreter; return its peak RSS (VmHWM)."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(out), cap],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_peak_memory_stays_under_the_cap(big_log: Path, tmp_path: Path) -> None:
    # A 30 MB CSV under a 500 MB cap (the in-memory path needs about 6.6x the file on top of
    # the interpreter): the parts are sized to the cap.
    events = pd.read_parquet(big_log).iloc[:470_000]
    path = tmp_path / "big.csv"
    events.to_csv(path, index=False)
    size = path.stat().st_size
    peak = _peak_validating(path, tmp_path / "out", "500MB")
    assert size > 25e6
    assert peak < 500e6, f"peak RSS {peak / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"


def test_a_header_only_file_and_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("customer_id,event_ts,event_type\n")
    result, paths = validate_to_folder(path, tmp_path / "out", now=NOW)
    assert result.rows_in == 0 and pd.read_parquet(paths["events"]).empty
    path.write_text("customer_id,event_type\n1,visit\n")
    with pytest.raises(SchemaError, match="event_ts"):
        validate_to_folder(path, tmp_path / "out2", now=NOW)
    assert not (tmp_path / "out2").exists()


def _same_outputs(expected: ValidationResult, tmp_path: Path, **kwargs: Any) -> None:
    """Assert that the streamed folder equals what load_events + write_validation write."""
    write_validation(expected, tmp_path / "memory")
    result, _ = validate_to_folder(out_dir=tmp_path / "stream", now=NOW, **kwargs)
    events_m, quarantine_m, csv_m, summary_m = _outputs(tmp_path / "memory")
    events_s, quarantine_s, csv_s, summary_s = _outputs(tmp_path / "stream")
    pd.testing.assert_frame_equal(events_s, events_m)
    pd.testing.assert_frame_equal(quarantine_s, quarantine_m)
    assert csv_s == csv_m
    assert summary_s.pop("revenue_total") == pytest.approx(summary_m.pop("revenue_total"))
    assert summary_s == summary_m
    assert result.rows_in == expected.rows_in and result.events_out == expected.events_out
    assert not list((tmp_path / "stream").glob(".*"))


def _order_lines(rows: int, seed: int) -> pd.DataFrame:
    """Order lines, shuffled so an order's lines lie far apart, with every kind of bad line.

    Customer ids come in two spellings (``c7`` and `` c7 ``) that validate to one customer.
    """
    rng = np.random.default_rng(seed)
    order = rng.integers(0, rows // 3, rows)
    customer = order % 97
    day = pd.Timestamp("2024-03-01") + pd.to_timedelta(order % 60, unit="D")
    minutes = pd.to_timedelta((order * 37) % 1440, unit="min")  # some orders near midnight
    refund = order % 11 == 0
    frame = pd.DataFrame(
        {
            "invoice": np.where(refund, "C", "o") + order.astype(str),
            "product": "p" + rng.integers(0, 6, rows).astype(str),
            "cust": np.where(rng.random(rows) < 0.2, " c", "c") + customer.astype(str),
            "when": (day + minutes).strftime("%Y-%m-%d %H:%M:%S"),
            "qty": np.where(refund, -1, 1) * rng.integers(1, 4, rows),
            "price": rng.choice(["2.50", "0", "10.00", "3.99"], rows),
        }
    ).astype("str")
    bad = rng.choice(rows, 40, replace=False)
    frame.loc[bad[:10], "cust"] = ""
    frame.loc[bad[10:20], "when"] = "soon"
    frame.loc[bad[20:30], "qty"] = "-2"
    frame.loc[bad[30:], "price"] = "abc"
    copies = frame.sample(rows // 10, random_state=seed)  # duplicates, appended at the end
    return pd.concat([frame, copies], ignore_index=True)


LINES = {
    "order": {"merge": "order"},
    "day": {"merge": "day"},
    "order, key without customer": {"merge": "order", "key": ["invoice", "product"]},
    "day, key without customer": {"merge": "day", "key": ["invoice", "product"]},
    "none, key without customer": {"merge": "none", "key": ["invoice", "product"]},
}


@pytest.mark.parametrize("case", list(LINES))
def test_streamed_order_lines_equal_the_in_memory_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 331)
    monkeypatch.setattr(streaming, "_parts_for", lambda path, limit: 7)
    path = tmp_path / "lines.csv"
    _order_lines(3000, seed=3).to_csv(path, index=False)
    spec = LINES[case]
    mapping = EventMapping.model_validate(
        {
            "columns": {"customer_id": "cust", "event_ts": "when"},
            "constants": {"event_type": "purchase", "currency": "GBP"},
            "timezone": "Europe/London",
            "duplicate_key": spec.get("key"),
            "transactions": {
                "order_id_col": "invoice",
                "quantity_col": "qty",
                "unit_price_col": "price",
                "refund_prefix": "C",
                "merge": spec["merge"],
            },
        }
    )
    expected = load_events(path, mapping=mapping, now=NOW)
    merged = expected.rows_accepted > expected.events_out
    assert expected.mode == "transactions" and merged == (spec["merge"] != "none")
    assert {"duplicate_row", "missing_customer_id", "negative_quantity"} <= set(expected.reasons)
    _same_outputs(expected, tmp_path, source=path, mapping=mapping)


def test_partition_keys_keep_merged_lines_and_duplicates_together() -> None:
    lines = {"order_id_col": "o", "amount_col": "a"}
    columns = ["o", "c", "ts", "a"]

    def key(**fields: Any) -> tuple[list[str], bool] | None:
        mapping = EventMapping.model_validate({"columns": {"customer_id": "c"}, **fields})
        return streaming._partition_key(mapping, columns)

    assert key() == (columns, False)  # events: the duplicate key, raw
    assert key(transactions=lines) == (["c"], True)  # the customer, as validated text
    assert key(transactions=lines, duplicate_key=["o", "a"]) == (["o"], True)
    day = lines | {"merge": "day"}
    assert key(transactions=day, duplicate_key=["o", "a"]) is None  # one part
    assert key(transactions=day, duplicate_key=["o", "a"], duplicates="keep") == (["c"], True)
    none = lines | {"merge": "none"}
    assert key(transactions=none, duplicate_key=["o", "a"]) == (["o", "a"], False)


def _typed_events(rows: int, seed: int) -> pd.DataFrame:
    """Typed events as a Parquet export holds them: ids as numbers, nulls in an int column.

    ``campaign_id`` is integral except in the last rows and ``qty`` null only there, so the
    parts without those rows must still read them as the whole file does (floats, "7.0").
    """
    rng = np.random.default_rng(seed)
    campaign = rng.integers(1, 9, rows).astype(float)
    campaign[-5:] = 1.5
    frame = pd.DataFrame(
        {
            "customer_id": pd.array(rng.integers(0, 300, rows), dtype="Int64"),
            "event_ts": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="min"),
            "event_type": rng.choice(["visit", "purchase", "teleport"], rows, p=[0.6, 0.38, 0.02]),
            "revenue": np.round(rng.random(rows) * 50, 2),
            "campaign_id": campaign,
            "qty": pd.array(rng.integers(1, 4, rows), dtype="Int64"),
            "member": rng.random(rows) < 0.5,
            "region": rng.choice(["north", "south"], rows),
        }
    )
    frame.loc[frame["event_type"] == "visit", "revenue"] = np.nan
    frame.loc[rows - 3 :, "qty"] = pd.NA
    frame.loc[rng.choice(rows - 10, 8, replace=False), "customer_id"] = pd.NA
    copies = frame.sample(rows // 10, random_state=seed)
    return pd.concat([frame, copies], ignore_index=True)


@pytest.mark.parametrize("layout", ["file", "hive folder"])
def test_streamed_parquet_equals_the_in_memory_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 257)
    monkeypatch.setattr(streaming, "_parts_for", lambda path, limit: 5)
    frame = _typed_events(2000, seed=4)
    path = tmp_path / ("events.parquet" if layout == "file" else "events")
    if layout == "file":  # as other tools write it: no pandas dtypes, ints with nulls
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, path, row_group_size=300)
    else:
        frame.to_parquet(path, partition_cols=["region"], row_group_size=300)
    expected = load_events(path, now=NOW)
    assert {"duplicate_row", "missing_customer_id", "unknown_event_type"} <= set(expected.reasons)
    if layout == "file":
        assert expected.quarantine["qty"].str.endswith(".0").all()  # ints with nulls: floats
    assert expected.quarantine["campaign_id"].str.endswith(".0").any()
    _same_outputs(expected, tmp_path, source=path)


def test_a_parquet_part_reads_columns_as_the_whole_file() -> None:
    typing = streaming._Typing(frozenset({"campaign"}))
    typing.observe(pa.table({"n": pa.array([1, None]), "campaign": [1.5, 2.0]}))
    part = typing.apply(pd.DataFrame({"n": [1, 2], "campaign": [2.0, 3.0], "m": [4, 5]}))
    assert part["n"].dtype == "float64" and part["m"].dtype == "int64"
    kept = typing.apply(pd.DataFrame({"n": pd.array([1, 2], dtype="Int64")}))
    assert kept["n"].dtype == "Int64"  # pandas' own integers hold nulls: as the file says
    assert part["campaign"].tolist() == [
        "2.0",
        "3.0",
    ]  # as_text keeps ".0": the whole isn't integral


SOURCES = """
sources:
  orders:
    path: lines.csv
    columns: {customer_id: cust, event_ts: when}
    constants: {event_type: purchase, currency: GBP}
    transactions: {order_id_col: invoice, quantity_col: qty, unit_price_col: price,
                   refund_prefix: C}
  receipts:
    path: receipts.csv
    columns: {customer_id: member, event_ts: sent, campaign_id: campaign}
    constants: {event_type: campaign_exposure}
  typed:
    path: typed.parquet
  clean:
    path: clean.csv
  signups:
    path: sqlite:///{db}
    table: signups
    columns: {customer_id: id, event_ts: joined}
    constants: {event_type: signup}
"""


def test_streamed_sources_equal_the_combined_in_memory_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    monkeypatch.setattr(streaming, "CHUNK_ROWS", 211)
    monkeypatch.setattr(streaming, "_parts_for", lambda path, limit: 3)
    _order_lines(1500, seed=8).to_csv(tmp_path / "lines.csv", index=False)
    # A raw column named "source" becomes raw_source next to the source's name.
    (tmp_path / "receipts.csv").write_text(
        "member,sent,campaign,source\na,2024-01-01,SPRING,mail\nb,yesterday,SPRING,web\n"
    )
    _typed_events(600, seed=9).drop(columns="region").to_parquet(tmp_path / "typed.parquet")
    (tmp_path / "clean.csv").write_text("customer_id,event_ts,event_type\nz,2024-02-01,visit\n")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'signups.db'}")
    pd.DataFrame({"id": ["a", "", "q"], "joined": ["2023-12-31", "2024-01-01", "x"]}).to_sql(
        "signups", engine, index=False
    )
    engine.dispose()
    yaml_path = tmp_path / "shop.yaml"
    yaml_path.write_text(SOURCES.replace("{db}", str(tmp_path / "signups.db")))
    mapping = load_mapping(yaml_path)
    assert isinstance(mapping, SourcesMapping)
    expected = load_events(None, mapping=mapping, now=NOW)
    assert expected.mode == "sources" and "raw_source" in expected.quarantine
    assert expected.sources["clean"].rows_quarantined == 0
    _same_outputs(expected, tmp_path, source=None, mapping=mapping)
    summary = json.loads((tmp_path / "stream" / "summary.json").read_text())
    assert summary["sources"]["signups"]["rows_quarantined"] == 2


def test_a_sources_mapping_with_another_source_is_refused(tmp_path: Path) -> None:
    mapping = SourcesMapping(sources={"a": {"path": "a.csv"}})
    with pytest.raises(ValueError, match="names its own sources"):
        validate_to_folder("b.csv", tmp_path / "out", mapping=mapping)
    with pytest.raises(ValueError, match="no source given"):
        validate_to_folder(None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_peak_memory_stays_under_the_cap_for_parquet(big_log: Path, tmp_path: Path) -> None:
    # 1.06 M events in a 10 MB Parquet file: validated whole they peak at about 510 MB; streamed
    # under a 500 MB cap, about 410 MB (parts sized by the decoded bytes, not the file's).
    path = big_log
    peak = _peak_validating(path, tmp_path / "out", "500MB")
    assert pq.ParquetFile(path).metadata.num_rows > 1_000_000
    assert peak < 500e6, f"peak RSS {peak / 1e6:.0f} MB"


def test_duckdb_running_out_while_writing_is_out_of_memory() -> None:
    def batches() -> Iterator[pa.RecordBatch]:
        raise OSError("Out of Memory Error: failed to pin block of size 256.0 KiB\n\nPossible")
        yield  # a generator, as DuckDB's reader is

    with pytest.raises(MemoryError, match="failed to pin block"):
        list(streaming._out_of_memory_as_memory_error(batches()))
    with pytest.raises(OSError, match="disk full"):
        list(streaming._out_of_memory_as_memory_error(_fails("disk full")))


def _fails(message: str) -> Iterator[pa.RecordBatch]:
    raise OSError(message)
    yield


def test_a_database_table_is_validated_whole_into_the_same_folder(tmp_path: Path) -> None:
    import duckdb

    frame = _typed_events(300, seed=2).astype({"customer_id": "str"})
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE events AS SELECT * FROM frame")
        con.execute("CREATE TABLE other AS SELECT 1 AS x")
    assert not streams(path)
    expected = load_events(path, table="events", now=NOW)
    assert expected.rows_quarantined > 0
    _same_outputs(expected, tmp_path, source=path, table="events")
