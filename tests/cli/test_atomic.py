"""kill -9 at the moment a command writes: the previous output stays whole, byte for byte.

Each command runs as a real subprocess. The test watches the output folder and sends SIGKILL
as soon as the write has begun: a temporary ``.NAME.PID.part`` file appears, or (were the
write not atomic) an output file changes. The second run reads a different input, so any
change to an output file is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lifecycle.features.io import replace_atomically
from lifecycle.features.simulate import simulate

EXE = shutil.which("lifecycle", path=str(Path(sys.executable).parent))


def _csv(folder: Path, customers: int, seed: int) -> Path:
    simulate(customers, seed=seed, out_dir=folder, days=730)
    events = pd.read_parquet(folder / "events.parquet")
    path = folder / "events.csv"
    events.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    small = _csv(tmp_path_factory.mktemp("small"), 300, 1)
    large = _csv(tmp_path_factory.mktemp("large"), 4000, 2)
    return small, large


def _snapshot(folder: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def _kill_at_write(args: list[str], folder: Path, before: dict[str, bytes]) -> None:
    """Run the command; SIGKILL it once a temp file exists or an output changed."""
    stamps = {name: os.stat(folder / name).st_mtime_ns for name in before}
    proc = subprocess.Popen([EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            started = any(entry.name.endswith(".part") for entry in os.scandir(folder)) or any(
                not (folder / n).exists() or os.stat(folder / n).st_mtime_ns != stamps[n]
                for n in before
            )
            if started:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                assert proc.returncode == -signal.SIGKILL, "the command ended before the kill"
                return
            if proc.poll() is not None:
                pytest.fail(f"the command ended before its write was seen: {proc.stderr!r}")
            time.sleep(0.0005)
        pytest.fail("the command never started writing")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_intact(folder: Path, before: dict[str, bytes]) -> None:
    for name, content in before.items():
        assert (folder / name).read_bytes() == content, f"{name} changed after the kill"


@pytest.mark.skipif(EXE is None, reason="the lifecycle console script is not installed")
def test_validate_killed_while_writing_keeps_the_old_output(
    logs: tuple[Path, Path], tmp_path: Path
) -> None:
    small, large = logs
    out = tmp_path / "validated"
    done = subprocess.run(
        [EXE, "validate", "--events", str(small), "--out", str(out), "--json"],
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    names = ["events.parquet", "quarantine.csv", "quarantine.parquet", "summary.json"]
    before = _snapshot(out, names)
    _kill_at_write(["validate", "--events", str(large), "--out", str(out), "--json"], out, before)
    _assert_intact(out, before)
    # The next run is not disturbed by the stray temp file of the killed one.
    done = subprocess.run(
        [EXE, "validate", "--events", str(large), "--out", str(out), "--json"],
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "events.parquet").read_bytes() != before["events.parquet"]


@pytest.mark.skipif(EXE is None, reason="the lifecycle console script is not installed")
def test_features_killed_while_writing_keeps_the_old_table(
    logs: tuple[Path, Path], tmp_path: Path
) -> None:
    small, large = logs
    out = tmp_path / "features.parquet"
    args = ["features", "--cutoffs", "monthly", "--out", str(out), "--json"]
    done = subprocess.run(
        [EXE, *args, "--events", str(small)], capture_output=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    before = _snapshot(tmp_path, ["features.parquet"])
    _kill_at_write([*args, "--events", str(large)], tmp_path, before)
    _assert_intact(tmp_path, before)


_SLOW_WRITER = """
import sys, time
from pathlib import Path
from lifecycle.features.io import replace_atomically

def write(temp: Path) -> None:
    with temp.open("wb") as handle:
        for _ in range(1000):
            handle.write(b"x" * 1000)
            handle.flush()
            time.sleep(0.01)

replace_atomically(Path(sys.argv[1]), write)
"""


def test_replace_atomically_survives_a_kill_mid_write(tmp_path: Path) -> None:
    # The helper every writer uses (validate, features, score): killed half-way, old file whole.
    target = tmp_path / "scores.parquet"
    replace_atomically(target, lambda temp: temp.write_bytes(b"good lookup table"))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)])
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 10_000 for p in tmp_path.glob(".*.part")):
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never started"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_bytes() == b"good lookup table"


def test_replace_atomically_removes_its_temp_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.parquet"
    target.write_bytes(b"old")

    def broken(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, broken)
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
