"""The observed-data oracle: exact stages, valid probabilities, and AUC between the trivial
predictor and the latent oracle on a small simulated world."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.features.build import build_features
from lifecycle.features.schema import STAGES
from lifecycle.features.simulate import simulate
from lifecycle.training.labels import build_labels, observation_end
from lifecycle.training.metrics import classification_metrics

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "observed_oracle.py"
START = pd.Timestamp("2024-01-01", tz="UTC")
CUTOFF = START + pd.Timedelta(days=240)


def _load():
    spec = importlib.util.spec_from_file_location("observed_oracle", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("observed_oracle", module)
    spec.loader.exec_module(module)
    return module


oo = _load()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    simulate(2000, seed=7, start=START.date(), out_dir=out, days=360)
    events = pd.read_parquet(out / "events.parquet")
    truth = pd.read_parquet(out / "truth.parquet")
    pred = oo.observed_oracle(events, truth, cutoff=CUTOFF, draws=64, rounds=1, seed=0)
    features = build_features(events, cutoffs=[CUTOFF])
    end = observation_end(out / "events.parquet")
    at = truth[pd.to_datetime(truth["as_of"], utc=True) == CUTOFF].set_index("customer_id")
    return events, truth, pred.set_index("customer_id"), features, end, at


def test_observed_oracle_probabilities_and_stages(world):
    _, _, pred, _, _, at = world
    assert set(pred.index) == set(at.index)  # everyone who arrived before the cutoff
    stage = at["stage"].map({name: code for code, name in enumerate(STAGES)})
    assert (pred["stage"] == stage.reindex(pred.index)).all()
    for name in oo.TARGETS:
        values = pred[name].dropna()
        assert values.between(0.0, 1.0).all()
        assert (pred[f"{name}_se"].dropna() >= 0.0).all()
    assert pred["p_churn_90d"].isna().equals(pred["stage"] < 2)
    assert pred["p_next_stage_30d"].isna().equals(pred["stage"] == 4)
    buyers = pred.dropna(subset=["p_churn_90d"])
    assert (buyers["p_churn_90d"] <= buyers["p_churn_30d"] + 1e-12).all()
    assert (pred["ess"] >= 1.0 - 1e-9).all()


@pytest.mark.parametrize(
    ("task", "horizon", "column", "trivial", "mean_tolerance"),
    [
        ("next_stage", 30, "p_next_stage_30d", "n_events_30d", 0.015),
        ("churn", 90, "p_churn_90d", "days_since_last_purchase", 0.05),
    ],
)
def test_observed_oracle_auc_between_trivial_and_latent(
    world, task, horizon, column, trivial, mean_tolerance
):
    events, _, pred, features, end, at = world
    labels = build_labels(events, features, task=task, horizon_days=horizon, end=end)
    keep = np.isfinite(labels)
    y = labels[keep]
    ids = features.loc[keep, "customer_id"].astype(str)
    observed = pred[column].reindex(ids).to_numpy()
    latent = at[column].reindex(ids).to_numpy()
    heuristic = features.loc[keep, trivial].to_numpy(dtype=float)
    heuristic = (heuristic - heuristic.min()) / np.ptp(heuristic)
    by_stage = pd.Series(y).groupby(features.loc[keep, "stage_code"].to_numpy()).transform("mean")
    auc = {
        name: classification_metrics(y, score)["roc_auc"]
        for name, score in {
            "observed": observed,
            "latent": latent,
            "heuristic": heuristic,
            "stage": by_stage.to_numpy(),
        }.items()
    }
    assert auc["observed"] <= auc["latent"] + 0.02, auc
    assert auc["observed"] >= max(auc["heuristic"], auc["stage"]), auc
    # Tower property: the posterior predictive averages to the latent truth's average.
    assert abs(observed.mean() - latent.mean()) < mean_tolerance


def _events(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "days", "event_type", "channel"])
    frame["event_ts"] = START + pd.to_timedelta(frame.pop("days"), unit="D")
    frame["campaign_id"] = None
    return frame


def test_observed_oracle_dormant_customer_churns():
    grid = pd.DataFrame({"as_of": [START + pd.Timedelta(days=30 * k) for k in range(1, 13)]})
    rows = []
    for customer, active_steps in (("dormant", 1), ("active", 12)):
        rows += [
            (customer, 0.01, "visit", "organic_search"),
            (customer, 0.02, "signup", "organic_search"),
            (customer, 5.0, "purchase", "organic_search"),
            (customer, 10.0, "purchase", "organic_search"),
        ]
        for k in range(active_steps):
            rows += [(customer, 30 * k + 3.0 + i, "visit", "organic_search") for i in range(4)]
            rows += [(customer, 30 * k + 4.5, "email_open", "email")]
            if k >= 1:
                rows += [(customer, 30 * k + 8.0, "purchase", "organic_search")]
    cutoff = START + pd.Timedelta(days=360)
    pred = oo.observed_oracle(_events(rows), grid, cutoff=cutoff, draws=256, rounds=1, seed=3)
    pred = pred.set_index("customer_id")
    assert pred.loc["dormant", "p_churn_90d"] > 0.9
    assert pred.loc["dormant", "p_churn_30d"] > 0.9
    assert pred.loc["active", "p_churn_90d"] < pred.loc["dormant", "p_churn_90d"] - 0.3


def test_trait_pool_matches_the_simulator_prior():
    pool = oo.TraitPool.draw(np.random.default_rng(0), 200_000)
    for i, name in enumerate(oo.TRAIT_NAMES):
        if name not in oo._GAMMA_PRIOR:
            continue
        shape, scale = oo._GAMMA_PRIOR[name]
        for app in (False, True):  # the divided-out app factor must be the simulator's
            x = np.exp(pool.z[pool.app_user == app, i])
            assert x.mean() == pytest.approx(shape * scale, rel=0.02), name
            assert x.var() == pytest.approx(shape * scale**2, rel=0.06), name
    affinity = 1.0 / (1.0 + np.exp(-pool.z[:, 3]))
    beta = np.asarray(oo.sim._CHANNEL_AFFINITY_BETA)
    for ch in range(beta.shape[0]):
        a, b = beta[ch]
        assert affinity[pool.channel == ch].mean() == pytest.approx(a / (a + b), abs=0.01)
    # The prior density is normalised in the proposal coordinates: it is a product of 1-D
    # densities p_i, so the product over i of the integral of p_i(z) / p_i(0) is 1 / p(0).
    grid = np.linspace(-40.0, 12.0, 200_001)
    channel = np.zeros(grid.size, dtype=np.int64)
    at_zero = oo.log_prior(np.zeros((1, len(oo.TRAIT_NAMES))), channel[:1])[0]
    total = at_zero
    for i in range(len(oo.TRAIT_NAMES)):
        z = np.zeros((grid.size, len(oo.TRAIT_NAMES)))
        z[:, i] = grid
        total += np.log(np.trapezoid(np.exp(oo.log_prior(z, channel) - at_zero), grid))
    assert total == pytest.approx(0.0, abs=1e-3)
