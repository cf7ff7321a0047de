"""The budgeted plan (exact choices, budgets, costs, reasons) and its offline evaluation.

The evaluation is checked against the simulator's truth: on a simulated world, the IPW and DR
estimates of each policy must agree with the policy's true value (computed from the
campaigns' ``true_uplift``), and a deliberately bad policy must be told apart from the plan.
The world's per-send predictions are the simulator's true ones (no champion training here:
the evaluator's correctness does not depend on how good the predictions are).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from lifecycle.features.build import feature_columns
from lifecycle.features.simulate import simulate
from lifecycle.models.nba import load_catalog, recommend
from lifecycle.models.policy import (
    Budget,
    Evaluation,
    attach_true_uplift,
    cross_fit,
    evaluate_policies,
    plan,
    select,
    true_purchase_uplift,
    with_costs,
)
from lifecycle.models.uplift import TwoModelUplift, campaign_frame

STAGES = ("reach", "acquisition", "conversion", "retention", "loyalty")
SEGMENTS = ("Champions", "Loyal", "At risk", "Hibernating", "No purchase yet")


def customers(n: int, seed: int = 0) -> pd.DataFrame:
    """A varied population: every stage, churn on both sides of the win-back threshold."""
    rng = np.random.default_rng(seed)
    stage = rng.choice(STAGES, size=n)
    segment = np.where(stage == "reach", "No purchase yet", rng.choice(SEGMENTS[:4], size=n))
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "stage": stage,
            "segment": segment,
            "next_stage_probability": np.where(stage == "loyalty", np.nan, rng.random(n)),
            "churn_risk": rng.random(n),
            "clv": rng.gamma(1.0, 60.0, size=n),
        }
    )


def uplift_for(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "discount_10": rng.normal(0.02, 0.03, len(frame)),
            "free_shipping": rng.normal(0.03, 0.03, len(frame)),
        }
    )


# --- the plan ----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_uplift", [False, True])
def test_plan_without_budget_is_recommend_for_everyone(with_uplift: bool) -> None:
    """No budget: each customer gets exactly recommend()'s action, do-nothing included."""
    frame = customers(300)
    uplift = uplift_for(frame) if with_uplift else None
    catalog = load_catalog()
    result = plan(frame, catalog, None, uplift=uplift)
    expected = [
        recommend(
            catalog,
            stage=row.stage,
            segment=row.segment,
            predictions={
                "next_stage_probability": row.next_stage_probability,
                "churn_risk": row.churn_risk,
                "clv": row.clv,
            },
            uplift=None if uplift is None else uplift.iloc[i].to_dict(),
        ).action
        for i, row in enumerate(frame.itertuples())
    ]
    assert result.assignments["action"].tolist() == expected
    assert result.totals["over_budget"] == 0
    if with_uplift:
        sources = result.assignments.loc[result.assignments["offer"].notna(), "effect_source"]
        assert set(sources) == {"estimated"}


def test_plan_does_nothing_only_when_no_action_pays_off() -> None:
    result = plan(customers(400), load_catalog(), Budget(50), uplift=uplift_for(customers(400)))
    table = result.assignments
    left = table[table["action"] == "no_action"]
    gain = left["status"] == "no_gain"
    assert (left.loc[gain, "net_value"] <= 0).all()
    assert (left.loc[left["status"] == "over_budget", "net_value"] > 0).all()
    assert left.loc[left["status"] == "no_eligible_action", "best_action"].isna().all()
    assert (table.loc[table["status"] == "contact", "net_value"] > 0).all()
    # every left-alone customer has a sentence in both languages, contacts none
    assert (left["reason_en"].str.len() > 20).all() and (left["reason_ko"].str.len() > 10).all()
    assert (table.loc[table["status"] == "contact", "reason_en"] == "").all()
    some = left[gain].iloc[0]
    names = {a.id: a.names for a in load_catalog().actions}
    assert names[some["best_action"]]["ko"] in some["reason_ko"]
    assert names[some["best_action"]]["en"] in some["reason_en"]


def test_plan_count_budget_takes_the_highest_net_values() -> None:
    frame = customers(400)
    result = plan(frame, load_catalog(), Budget(40), uplift=uplift_for(frame))
    table = result.assignments
    contacts = table[table["status"] == "contact"]
    assert len(contacts) == 40 == result.totals["contacts"]
    assert (
        contacts["net_value"].min()
        >= table.loc[table["status"] == "over_budget", "net_value"].max()
    )
    assert result.summary["customers"].sum() == 40
    assert result.totals["net_value"] == pytest.approx(contacts["net_value"].sum())
    low, high = result.totals["net_low"], result.totals["net_high"]
    assert low < result.totals["net_value"] < high


def test_plan_money_budget_is_respected_and_close_to_the_best_choice() -> None:
    frame = customers(400)
    for amount in (25.0, 100.0, 333.3):
        result = plan(frame, load_catalog(), Budget(amount, "money"), uplift=uplift_for(frame))
        assert result.totals["cost"] <= amount + 1e-9
        assert result.totals["contacts"] > 0
    # the greedy against every subset of a small instance: never over budget, and within the
    # net value of one item of the best subset
    rng = np.random.default_rng(3)
    for _ in range(20):
        net, cost = rng.gamma(1.0, 2.0, 10), rng.uniform(0.5, 4.0, 10)
        amount = float(rng.uniform(2.0, 15.0))
        chosen = select(net, cost, Budget(amount, "money"))
        assert cost[chosen].sum() <= amount + 1e-9
        best = max(
            net[list(s)].sum()
            for k in range(11)
            for s in itertools.combinations(range(10), k)
            if cost[list(s)].sum() <= amount
        )
        assert net[chosen].sum() >= best - net.max() - 1e-9


def test_plan_cost_overrides_change_the_choice() -> None:
    frame = customers(400)
    base = plan(frame, load_catalog(), None)
    assert (base.assignments["action"] == "win_back").any()
    dear = plan(frame, load_catalog(), None, costs={"win_back": 1000.0})
    assert not (dear.assignments["action"] == "win_back").any()
    free = plan(frame, load_catalog(), None, costs={"win_back": 0.0})
    assert free.assignments.loc[free.assignments["action"] == "win_back", "cost"].eq(0).all()
    assert (free.assignments["action"] == "win_back").sum() >= (
        base.assignments["action"] == "win_back"
    ).sum()
    with pytest.raises(ValueError, match="unknown action"):
        with_costs(load_catalog(), {"wn_back": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        with_costs(load_catalog(), {"win_back": -1.0})
    with pytest.raises(ValueError, match="no-action"):
        with_costs(load_catalog(), {"no_action": 1.0})


def test_plan_bad_input_is_a_clear_error() -> None:
    frame = customers(10)
    with pytest.raises(ValueError, match="lack the column"):
        plan(frame.drop(columns="clv"), load_catalog())
    with pytest.raises(ValueError, match="more than once"):
        plan(pd.concat([frame, frame.head(1)]), load_catalog())
    with pytest.raises(ValueError, match="rows for 10 customers"):
        plan(frame, load_catalog(), uplift=uplift_for(frame).head(3))
    with pytest.raises(ValueError, match="whole number"):
        Budget(2.5)
    with pytest.raises(ValueError, match="unknown stage"):
        plan(frame.assign(stage="lost"), load_catalog())


def test_plan_csv_is_the_contacts(tmp_path: Path) -> None:
    frame = customers(200)
    result = plan(frame, load_catalog(), Budget(15))
    path = result.write_csv(tmp_path / "plan.csv")
    written = pd.read_csv(path)
    assert written["customer_id"].tolist() == result.contacts()["customer_id"].tolist()
    assert len(written) == 15 and written["net_value"].is_monotonic_decreasing
    everyone = pd.read_csv(result.write_csv(tmp_path / "all.csv", everyone=True))
    assert len(everyone) == 200 and {"status", "reason_ko"} <= set(everyone.columns)
    assert {p.name for p in tmp_path.iterdir()} == {"plan.csv", "all.csv"}  # no leftovers


# --- calibrated uplift -------------------------------------------------------------------------


def trial(n: int, seed: int, *, effect: str) -> pd.DataFrame:
    """A randomised campaign: a 20% base rate, the offer adds a constant or x1-driven effect."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "offer": "bundle",
            "treated": rng.random(n) < 0.5,
            "x1": rng.random(n),
            "x2": rng.random(n),
            "x3": rng.normal(size=n),
        }
    )
    lift = 0.05 if effect == "constant" else 0.3 * frame["x1"]
    frame["purchased"] = (rng.random(n) < 0.2 + frame["treated"] * lift).astype(int)
    return frame


FEATURES = ["x1", "x2", "x3"]


def test_calibration_shrinks_a_noise_only_uplift_model_to_the_average() -> None:
    """The same effect for everyone: the raw T-learner spreads it, the calibrated one does not."""
    frame = trial(6000, seed=1, effect="constant")
    model = TwoModelUplift(FEATURES, num_boost_round=100, seed=1).fit(frame)
    x = frame[FEATURES].to_numpy(np.float64)
    raw = model.predict_raw(x)["bundle"]
    calibrated = model.predict_matrix(x)["bundle"]
    entry = model.summary()["bundle"]
    assert raw.std() > 0.06  # the learner's noise: the true effect is 0.05 for everyone
    assert calibrated.std() < 0.3 * raw.std()
    assert calibrated.mean() == pytest.approx(entry["observed_ate"], abs=1e-9)
    assert np.abs(calibrated - 0.05).mean() < 0.3 * np.abs(raw - 0.05).mean()
    assert entry["calibration_slope"] < 0.2


def test_calibration_keeps_a_real_signal() -> None:
    """An effect growing with x1 (0 to 0.3): the calibrated estimates still rank by it."""
    frame = trial(6000, seed=2, effect="x1")
    model = TwoModelUplift(FEATURES, num_boost_round=100, seed=2).fit(frame)
    calibrated = model.predict_frame(frame)["bundle"]
    high = frame["x1"] > 0.5
    # true difference 0.15; a calibration collapsing to the average would give about 0
    assert calibrated[high].mean() - calibrated[~high].mean() > 0.05
    assert model.summary()["bundle"]["calibration_slope"] > 0.3


def test_an_uplift_model_saved_before_calibration_keeps_its_estimates() -> None:
    frame = trial(3000, seed=3, effect="x1")
    model = TwoModelUplift(FEATURES, num_boost_round=30, seed=3).fit(frame)
    del model.calibration_, model.baseline_  # what an older pickle holds
    x = frame[FEATURES].to_numpy(np.float64)
    assert model.summary()["bundle"]["individual"]
    np.testing.assert_array_equal(model.predict_matrix(x)["bundle"], model.predict_raw(x)["bundle"])
    model.summary_["bundle"]["individual"] = False
    expected = model.summary()["bundle"]["observed_ate"]
    assert (model.predict_matrix(x)["bundle"] == expected).all()


# --- offline evaluation against the simulator's truth ------------------------------------------


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    out = tmp_path_factory.mktemp("policy_sim")
    summary = simulate(8000, seed=5, out_dir=out)
    campaigns = pd.read_parquet(summary.files["campaigns"])
    truth = pd.read_parquet(summary.files["truth"])
    frame = campaign_frame(summary.files["events"], campaigns, max_campaigns=12)
    history = attach_true_uplift(with_true_predictions(frame, truth), campaigns)
    models = cross_fit(history, feature_columns(), num_boost_round=100)
    true_uplift = true_purchase_uplift(history, truth)
    # A deliberately bad policy: in each send, the 10% of customers the campaigns hurt most.
    sensitivity = history["true_uplift"] / history["offer"].map(
        {"discount_10": 1.0, "free_shipping": 0.7, "bundle": 0.5, "double_points": 0.8}
    )
    worst = sensitivity.groupby(history["cutoff"]).rank(method="first", pct=True) <= 0.1
    return evaluate_policies(
        history,
        load_catalog(),
        models,
        share=0.1,
        true_uplift=true_uplift,
        targets={"hurt_most": worst.to_numpy()},
    )


def with_true_predictions(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The campaign frame with the simulator's true predictions at each send."""
    table = truth.rename(columns={"as_of": "cutoff"})
    table["cutoff"] = table["cutoff"].astype("datetime64[us, UTC]")
    out = frame.rename(columns={"rfm_segment": "segment"}).merge(
        table[["customer_id", "cutoff", "p_next_stage_30d", "p_churn_90d"]].assign(
            clv=table["expected_revenue_365d"]
        ),
        on=["customer_id", "cutoff"],
        how="left",
        validate="many_to_one",
    )
    return out.rename(
        columns={"p_next_stage_30d": "next_stage_probability", "p_churn_90d": "churn_risk"}
    )


def row(evaluation: Evaluation, policy: str) -> dict[str, float]:
    found = evaluation.table[evaluation.table["policy"] == policy]
    assert len(found) == 1, policy
    return found.iloc[0].to_dict()


def test_send_nothing_is_worth_exactly_nothing(evaluation: Evaluation) -> None:
    nothing = row(evaluation, "send_nothing")
    for key, value in nothing.items():
        if key != "policy":
            assert value == 0.0, key


@pytest.mark.parametrize("estimator", ["ipw", "dr"])
def test_plan_estimates_agree_with_its_true_value(evaluation: Evaluation, estimator: str) -> None:
    plan_row = row(evaluation, "plan")
    for unit in ("purchases", "value"):
        truth = plan_row[f"true_{unit}"]
        assert plan_row[f"{estimator}_{unit}_low"] <= truth <= plan_row[f"{estimator}_{unit}_high"]


@pytest.mark.parametrize("estimator", ["ipw", "dr"])
def test_every_policy_estimate_is_within_its_error_of_the_truth(
    evaluation: Evaluation, estimator: str
) -> None:
    """|estimate - truth| within 3.3 standard errors (99.9%) for every policy and unit.

    Plus a hair (1e-4 purchases, 0.01 USD per customer): the highest-churn customers almost
    never buy, so their rows hold no purchase at all and the standard error is 0 while the
    true effect is a few hundred-thousandths.
    """
    z90 = NormalDist().inv_cdf(0.95)
    hair = {"purchases": 1e-4, "value": 0.01}
    for policy in ("plan", "random", "churn_risk", "clv", "oracle", "hurt_most"):
        found = row(evaluation, policy)
        for unit in ("purchases", "value"):
            estimate = found[f"{estimator}_{unit}"]
            se = (found[f"{estimator}_{unit}_high"] - found[f"{estimator}_{unit}_low"]) / (2 * z90)
            assert abs(estimate - found[f"true_{unit}"]) <= 3.3 * se + hair[unit], (policy, unit)


def test_a_bad_policy_is_told_apart_from_the_plan(evaluation: Evaluation) -> None:
    bad, good = row(evaluation, "hurt_most"), row(evaluation, "plan")
    assert bad["true_purchases"] < 0 < good["true_purchases"]
    for estimator in ("ipw", "dr"):
        # the bad policy's estimate matches its own truth ...
        low, high = bad[f"{estimator}_purchases_low"], bad[f"{estimator}_purchases_high"]
        assert low <= bad["true_purchases"] <= high
        # ... and its interval lies below the plan's estimate
        assert high < good[f"{estimator}_purchases"]


def test_oracle_beats_every_heuristic_in_truth(evaluation: Evaluation) -> None:
    oracle = row(evaluation, "oracle")["true_value"]
    for policy in ("plan", "random", "churn_risk", "clv"):
        assert oracle > row(evaluation, policy)["true_value"], policy


def test_evaluation_sizes_and_json(evaluation: Evaluation) -> None:
    data = evaluation.as_dict()
    assert [p["policy"] for p in data["policies"]] == [
        "plan",
        "send_nothing",
        "random",
        "churn_risk",
        "clv",
        "oracle",
        "hurt_most",
    ]
    assert data["sends"] == 12 and data["rows"] > data["customers"] > 0
    contacts = {p["policy"]: p["contacts"] for p in data["policies"]}
    assert contacts["random"] == pytest.approx(0.1, abs=0.01)
    assert contacts["plan"] <= contacts["random"] + 1e-9
