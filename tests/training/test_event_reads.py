"""A training run reads its event log once, and every later step reads the events in memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import lifecycle.features.build
import lifecycle.training.labels
from lifecycle.features.simulate import simulate
from lifecycle.training.config import TrainingConfig, TuningSettings
from lifecycle.training.pipeline import fingerprint, run_training


def test_run_training_opens_the_event_log_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulate(1200, seed=5, out_dir=tmp_path, days=1460)
    events = tmp_path / "events.parquet"
    listed: list[Path] = []
    registered: list[type] = []
    original_files, original_register = (
        lifecycle.features.build.event_files,
        lifecycle.features.build.register_events,
    )

    def counting_files(path: Path) -> list[Path]:
        listed.append(path)
        return original_files(path)

    def recording_register(con, source) -> None:  # type: ignore[no-untyped-def]
        registered.append(type(source))
        original_register(con, source)

    monkeypatch.setattr(lifecycle.features.build, "event_files", counting_files)
    monkeypatch.setattr(lifecycle.features.build, "register_events", recording_register)
    monkeypatch.setattr(lifecycle.training.labels, "register_events", recording_register)
    config = TrainingConfig(
        tasks=("churn", "clv"),
        max_train_cutoffs=2,
        report_customer_split=False,
        baselines=("rfm",),
        tuning=TuningSettings(trials=1),
        shap_sample=50,
    )
    result = run_training(events, config=config, truth=pd.read_parquet(tmp_path / "truth.parquet"))

    assert listed == [events]  # the source is opened once ...
    assert registered and all(kind not in (str, Path) for kind in registered)  # ... then memory
    assert set(result.tasks) == {"churn", "clv"}
    # the fingerprint still hashes the file's bytes
    import hashlib

    digest = hashlib.sha256(events.read_bytes()).hexdigest()
    assert result.data["fingerprint"] == f"sha256:{digest}"
    assert result.data == {
        **fingerprint(lifecycle.features.build.read_event_log(events)),
        **{"observed_until": result.data["observed_until"], "learner": "hybrid", "skipped": {}},
    }
