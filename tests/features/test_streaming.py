"""Streamed validation (issue 17, point 5) writes what the in-memory path writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.features import streaming
from lifecycle.features.io import load_events, write_validation
from lifecycle.features.mapping import EventMapping
from lifecycle.features.simulate import simulate
from lifecycle.features.streaming import (
    OutOfMemory,
    can_stream,
    parse_size,
    validate_csv_to_folder,
)
from lifecycle.features.validate import SchemaError

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
    result, _ = validate_csv_to_folder(messy_csv, tmp_path / "stream", now=NOW)
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
    result, paths = validate_csv_to_folder(path, tmp_path / "out", now=NOW)
    assert (result.rows_in, result.rows_accepted) == (1, 0)
    assert pd.read_parquet(paths["events"]).empty
    assert pd.read_csv(paths["quarantine_csv"])["reason"].tolist() == ["missing customer_id"]


def test_sizes_and_what_streams() -> None:
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5 GiB") == int(1.5 * 2**30)
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert can_stream("e.csv.gz", EventMapping())
    assert not can_stream("e.parquet", None)
    assert not can_stream(
        "e.csv",
        EventMapping.model_validate({"transactions": {"amount_col": "a", "order_id_col": "o"}}),
    )


def test_running_out_of_memory_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.csv"
    path.write_text("customer_id,event_ts,event_type\n1,2024-01-01,visit\n")

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(streaming, "_validate_parts", no_memory)
    with pytest.raises(OutOfMemory) as caught:
        validate_csv_to_folder(path, tmp_path / "out", memory_limit="1GB")
    assert "\n" not in str(caught.value) and "memory limit 1GB" in str(caught.value)


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child of
# a large pytest process would report the parent's size; VmHWM belongs to the new image.
_MEASURE = """
import sys
from lifecycle.features.streaming import validate_csv_to_folder
validate_csv_to_folder(sys.argv[1], sys.argv[2], memory_limit=sys.argv[3])
status = open("/proc/self/status").read().splitlines()
print(int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) * 1024)
"""


def test_peak_memory_stays_under_the_cap(tmp_path: Path) -> None:
    # A 30 MB CSV under a 500 MB cap (the in-memory path needs about 6.6x the file on top of
    # the interpreter): the parts are sized to the cap.
    simulate(9000, seed=9, out_dir=tmp_path, days=1460)
    events = pd.read_parquet(tmp_path / "events.parquet")
    path = tmp_path / "big.csv"
    events.to_csv(path, index=False)
    size = path.stat().st_size
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(tmp_path / "out"), "500MB"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    peak = int(done.stdout.strip().splitlines()[-1])
    assert size > 25e6
    assert peak < 500e6, f"peak RSS {peak / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"


def test_a_header_only_file_and_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("customer_id,event_ts,event_type\n")
    result, paths = validate_csv_to_folder(path, tmp_path / "out", now=NOW)
    assert result.rows_in == 0 and pd.read_parquet(paths["events"]).empty
    path.write_text("customer_id,event_type\n1,visit\n")
    with pytest.raises(SchemaError, match="event_ts"):
        validate_csv_to_folder(path, tmp_path / "out2", now=NOW)
    assert not (tmp_path / "out2").exists()
