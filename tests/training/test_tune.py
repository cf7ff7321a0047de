"""Optuna tuning: defaults with zero trials, seeded reproducibility, shared storage."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from lifecycle.models.lgbm import LifecycleClassifier
from lifecycle.training.config import TuningSettings
from lifecycle.training.tune import DEFAULT_PARAMS, tune

NAMES = ["x1", "x2", "x3"]


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1])))).astype(float)
    return x, y


def run(settings: TuningSettings, seed: int = 1):
    (xt, yt), (xv, yv) = data(1500, 0), data(600, 1)
    base = LifecycleClassifier("churn", NAMES).lgb_params()
    return tune("churn", base, xt, yt, xv, yv, feature_names=NAMES, settings=settings, seed=seed)


def test_tune_zero_trials_uses_defaults() -> None:
    result = run(TuningSettings(trials=0))
    assert result.best_params == DEFAULT_PARAMS
    assert 0 < result.best_value < 0.69  # better than a coin on this signal


def test_tune_same_seed_same_trials() -> None:
    a, b = run(TuningSettings(trials=4)), run(TuningSettings(trials=4))
    assert a.best_params == b.best_params
    np.testing.assert_array_equal(a.trials["value"].to_numpy(), b.trials["value"].to_numpy())
    assert a.summary()["trials"] == 4
    assert a.trials["state"].isin(["COMPLETE", "PRUNED"]).all()
    # the first trial is the defaults, so tuning never ends worse than them
    assert a.best_value <= run(TuningSettings(trials=0)).best_value + 1e-12


def test_tune_workers_share_a_sqlite_study(tmp_path) -> None:
    settings = TuningSettings(
        trials=2, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s", pruning=False
    )
    run(settings)
    second = run(settings, seed=2)
    assert len(second.trials) == 4  # the second worker sees the first one's trials


def test_tune_workers_share_a_postgres_study() -> None:
    url = os.environ.get(
        "LIFECYCLE_TEST_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test?connect_timeout=3",
    )
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as exc:
        pytest.skip(f"PostgreSQL not reachable at {engine.url!r}: {type(exc).__name__}")
    finally:
        engine.dispose()
    name = f"lc-test-{uuid.uuid4().hex[:8]}"
    settings = TuningSettings(trials=2, storage=url, study_name=name, pruning=False)
    run(settings)
    second = run(settings, seed=2)
    assert len(second.trials) == 4
    import optuna

    optuna.delete_study(study_name=f"{name}-churn", storage=url)
