"""The hybrid learner: BTYD margins far outside the training range, explanations, CLV bounds.

One simulated log and one training run (no tuning) per module.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.features.build import build_features
from lifecycle.features.simulate import simulate
from lifecycle.models import btyd
from lifecycle.models.distribution import ClvDistribution
from lifecycle.models.hybrid import BTYD_INPUTS, history
from lifecycle.models.lgbm import PROBABILITY_FLOOR, LifecycleClassifier, matrix
from lifecycle.training.config import TrainingConfig, TuningSettings
from lifecycle.training.pipeline import TrainingResult, run_training

CONFIG = TrainingConfig(
    max_train_cutoffs=3,
    report_customer_split=False,
    baselines=("rfm",),
    tuning=TuningSettings(trials=0),
    shap_sample=100,
    seed=5,
)
YEARS = (0, 1, 2, 4, 8, 16)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(1500, seed=8, out_dir=out, days=1460)
    return out


@pytest.fixture(scope="module")
def trained(sim: Path) -> TrainingResult:
    return run_training(sim / "events.parquet", config=CONFIG)


@pytest.fixture(scope="module")
def aged(sim: Path, trained: TrainingResult) -> dict[int, pd.DataFrame]:
    """The same buyers as of the evaluation cutoff and 1 ... 16 years later, with no new event."""
    evaluation = trained.tasks["churn"].evaluation
    ids = evaluation["customer_id"].astype(str).sort_values().head(60).tolist()
    events = pd.read_parquet(sim / "events.parquet")
    cut = trained.tasks["churn"].split.eval
    events = events[events["customer_id"].isin(ids) & (events["event_ts"] < cut)]
    cutoffs = [cut + pd.Timedelta(days=365 * y) for y in YEARS]
    built = build_features(events, cutoffs=cutoffs, config=CONFIG.lifecycle)
    return {
        y: built[built["cutoff"] == c].sort_values("customer_id").reset_index(drop=True)
        for y, c in zip(YEARS, cutoffs, strict=True)
    }


def test_the_default_learner_is_the_hybrid(trained: TrainingResult) -> None:
    assert trained.data["learner"] == "hybrid"
    assert trained.btyd  # the BTYD parameters of every cutoff, for the run's record
    for task, result in trained.tasks.items():
        assert result.estimator.prior is not None, task
        assert result.estimator.prior.params is not None, task
    assert isinstance(trained.tasks["clv"].estimator, ClvDistribution)


def test_recency_far_beyond_training_raises_churn_and_lowers_next_stage(
    trained: TrainingResult, aged: dict[int, pd.DataFrame]
) -> None:
    churn = trained.tasks["churn"].estimator
    nxt = trained.tasks["next_stage"].estimator
    assert isinstance(churn, LifecycleClassifier) and isinstance(nxt, LifecycleClassifier)
    # a grid of years away that no training row reached
    longest = trained.tasks["churn"].fit_data[0]["days_since_last_purchase"].max()  # type: ignore[index]
    beyond = [y for y in YEARS if aged[y]["days_since_last_purchase"].min() > longest]
    assert len(beyond) >= 3 and aged[YEARS[-1]]["days_since_last_purchase"].min() > 4 * longest
    risk = np.column_stack([churn.predict_proba(aged[y]) for y in beyond])
    moving_on = np.column_stack([nxt.predict_proba(aged[y]) for y in beyond])
    assert (np.diff(risk, axis=1) >= -1e-9).all(), "churn risk fell as the customer stayed away"
    at_cap = 1 - PROBABILITY_FLOOR  # calibrated probabilities stop there
    assert ((risk[:, -1] > risk[:, 0]) | (risk[:, -1] >= at_cap)).all()
    assert (np.diff(moving_on, axis=1) <= 1e-9).all(), "next stage rose as the customer stayed away"
    assert ((moving_on[:, -1] < moving_on[:, 0]) | (moving_on[:, -1] <= PROBABILITY_FLOOR)).all()
    # ... towards what the BTYD model says: it is almost surely gone
    params = churn.prior.params  # type: ignore[union-attr]
    inputs = aged[YEARS[-1]][list(BTYD_INPUTS)].to_numpy(dtype=float)
    x, t_x, T, _, _ = history(*(inputs[:, j] for j in range(4)))
    not_alive = 1.0 - btyd.p_alive(params, x, t_x, T)  # type: ignore[arg-type]
    assert not_alive.min() > 0.95
    assert risk[:, -1].min() > 0.95
    assert moving_on[:, -1].max() < 0.02


def test_trees_alone_do_not_extrapolate(sim: Path, aged: dict[int, pd.DataFrame]) -> None:
    """What the hybrid fixes: the lightgbm learner's risk stops moving past its training data."""
    config = CONFIG.model_copy(update={"learner": "lightgbm", "tasks": ("churn",)})
    plain = run_training(sim / "events.parquet", config=config).tasks["churn"].estimator
    assert isinstance(plain, LifecycleClassifier) and plain.prior is None
    far = plain.predict_proba(aged[YEARS[-3]])
    farther = plain.predict_proba(aged[YEARS[-1]])
    assert np.abs(farther - far).max() < 0.02  # four years away or sixteen: much the same


def test_explanations_add_up_to_the_hybrid_score(trained: TrainingResult) -> None:
    for task, result in trained.tasks.items():
        est = result.estimator
        rows = result.evaluation.head(40)
        x = matrix(rows, est.feature_names)
        contributions = est.contributions_matrix(x)
        assert contributions.shape == (len(rows), len(est.feature_names) + 1), task
        np.testing.assert_allclose(
            contributions.sum(axis=1), est.raw_score_matrix(x), rtol=1e-6, atol=1e-6
        )
        if isinstance(est, ClvDistribution):
            log_mean = np.log(est.predict_clv(rows))
            np.testing.assert_allclose(contributions.sum(axis=1), log_mean, rtol=1e-6, atol=1e-6)


def test_clv_distribution_never_goes_below_zero(trained: TrainingResult) -> None:
    est = trained.tasks["clv"].estimator
    assert isinstance(est, ClvDistribution)
    out = est.predict_frame(trained.tasks["clv"].evaluation)
    assert (out["clv_p10"] >= 0).all() and (out["transactions_p10"] >= 0).all()
    assert (out["clv_p10"] <= out["clv_median"] + 1e-9).all()
    assert (out["clv_median"] <= out["clv_p90"] + 1e-9).all()
    assert (out["transactions_p10"] <= out["transactions_median"]).all()
    assert (out["transactions_median"] <= out["transactions_p90"]).all()
    assert out["p_no_purchase"].between(0, 1).all()
    # E[N] >= P(N > 0)
    assert (out["expected_transactions"] >= 1 - out["p_no_purchase"] - 1e-9).all()
    whole = out[["transactions_p10", "transactions_median", "transactions_p90"]].to_numpy()
    np.testing.assert_array_equal(whole, np.round(whole))


def test_a_pickled_hybrid_predicts_the_same(trained: TrainingResult) -> None:
    """What the registry stores (the estimator with its BTYD parameters) scores alike."""
    for result in trained.tasks.values():
        est = result.estimator
        rows = result.evaluation.head(30)
        copy = pickle.loads(pickle.dumps(est))  # noqa: S301 - our own object
        x = matrix(rows, est.feature_names)
        for name, values in est.predict_matrix(x).items():
            np.testing.assert_array_equal(copy.predict_matrix(x)[name], values, err_msg=name)
