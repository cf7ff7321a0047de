"""Explanations as the service gives them: points of the reported probability, typical values of
the customer's stage, and no marketing action ever cited as the reason for an action.

Uses the session's trained world (tests/serving/conftest.py) and the engine loaded from its
MLflow store, exactly as the service loads it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lifecycle.features.build import typical_values_by_stage
from lifecycle.features.schema import STAGES
from lifecycle.models.store import ModelRecord
from lifecycle.serving.engine import Engine
from lifecycle.serving.schemas import PredictRequest, PredictResponse

from .conftest import World

SAMPLE = 300


@pytest.fixture(scope="module")
def engine(world: World) -> Engine:
    return Engine.load(tracking_uri=world.tracking_uri, lookup=world.lookup)


@pytest.fixture(scope="module")
def answers(engine: Engine) -> list[PredictResponse]:
    assert engine.lookup is not None
    ids = sorted(engine.lookup.index)[:SAMPLE]
    requests = [PredictRequest(customer_id=c, top_k=20) for c in ids]
    return engine.predict(requests, batch=True)


def test_points_are_shares_of_the_reported_probability_gap(answers: list[PredictResponse]) -> None:
    checked = 0
    for answer in answers:
        reported = {"churn": answer.churn_risk, "next_stage": answer.next_stage_probability}
        for task, probability in reported.items():
            explanation = answer.explanations.get(task)
            if explanation is None or probability is None:
                continue
            assert explanation.base_probability is not None
            gap = explanation.raw_output - explanation.base_value
            if abs(gap) < 1e-6:
                continue
            per_logit = 100 * (probability - explanation.base_probability) / gap
            for driver in explanation.drivers:
                assert driver.points == pytest.approx(per_logit * driver.contribution, abs=1e-6)
                checked += 1
        clv = answer.explanations["clv"]
        assert clv.base_probability is None
        assert all(d.points is None for d in clv.drivers)
    assert checked > 1000


def test_typical_values_are_those_of_the_customer_s_stage(
    engine: Engine, answers: list[PredictResponse]
) -> None:
    assert engine.lookup is not None
    by_stage = typical_values_by_stage(engine.lookup.frame, engine.feature_names)
    assert set(by_stage) <= set(STAGES)
    assert engine.typical_by_stage == by_stage
    assert by_stage["conversion"]["n_purchases"] == 1.0
    assert engine.typical["n_purchases"] != 1.0  # everyone's: not the one-time buyers'
    for answer in answers:
        for explanation in answer.explanations.values():
            for driver in explanation.drivers:
                if driver.typical is None or driver.feature == "stage_code":
                    continue
                own = by_stage[answer.stage].get(driver.feature)
                expected = own if own is not None else engine.typical.get(driver.feature)
                assert driver.typical == expected, (answer.stage, driver.feature)


def test_no_marketing_action_or_typical_value_is_ever_an_action_s_reason(
    answers: list[PredictResponse],
) -> None:
    not_levers = 0
    for answer in answers:
        reason = answer.next_best_action.reason
        for explanation in answer.explanations.values():
            for driver in explanation.drivers:
                if not driver.lever or driver.as_typical:
                    not_levers += not driver.lever
                    assert driver.text not in reason, (answer.customer_id, reason)
                if not driver.lever and not driver.as_typical:
                    assert "association, not an effect" in driver.text
    assert not_levers > 0, "the simulated campaigns should make offers a driver somewhere"


def test_a_record_without_per_stage_values_still_explains(engine: Engine) -> None:
    """Models trained before per-stage values: their records load and compare with everyone."""
    old_models = {}
    for task, model in engine.models.items():
        old = model.record.model_dump(mode="json")
        assert old.pop("typical_by_stage")  # new records carry them
        old_models[task] = replace(model, record=ModelRecord.model_validate(old))
    served = Engine(
        models=old_models, lifecycle=engine.lifecycle, catalog=engine.catalog, uplift=None
    )
    assert served.typical_by_stage == {}
    assert served.typical  # the overall values of the record
    assert engine.lookup is not None
    row = engine.lookup.frame.iloc[0]
    features = {
        name: (None if np.isnan(row[name]) else float(row[name])) for name in served.feature_names
    }
    (answer,) = served.predict([PredictRequest(features=features, top_k=20)])
    drivers = [d for e in answer.explanations.values() for d in e.drivers]
    assert drivers
    for driver in drivers:
        assert driver.typical == served.typical.get(driver.feature)
        assert "a typical customer in the" not in driver.text


def test_the_overview_says_low_activity_raises_the_risk(engine: Engine) -> None:
    from lifecycle.serving.population import build_population, overview_json

    drivers = overview_json(build_population(engine))["churn_drivers"]
    said = {d["feature"]: d["raises_when"] for d in drivers}
    assert said["n_events_30d"] == "low_activity", said
    recency = [f for f in ("days_since_last_event", "days_since_last_purchase") if f in said]
    assert all(said[f] == "long_inactivity" for f in recency), said


def test_the_overview_sizes_churn_drivers_in_points_as_the_customers_drivers(
    engine: Engine,
) -> None:
    """The overview's average effect is the mean size of the per-customer points, not log-odds."""
    import numpy as np

    from lifecycle.serving.population import (
        DRIVER_SAMPLE,
        build_population,
        churn_drivers,
        eligible,
    )
    from lifecycle.serving.schemas import PredictRequest

    population = build_population(engine)
    assert engine.lookup is not None
    frame = engine.lookup.frame
    buyers = eligible("churn", frame)  # whom the overview's churn drivers are about
    assert buyers.sum() <= DRIVER_SAMPLE  # the sample is every buyer: comparable one to one
    drivers = churn_drivers(engine, engine.lookup.x, buyers, seed=0, top=3)
    top = str(drivers["feature"].iloc[0])
    ids = frame.loc[buyers, "customer_id"].astype(str).tolist()
    answers = engine.predict([PredictRequest(customer_id=c, top_k=20) for c in ids], batch=True)
    points = [
        next((abs(d.points) for d in a.explanations["churn"].drivers if d.feature == top), None)
        for a in answers
        if "churn" in a.explanations
    ]
    shown = [p for p in points if p is not None]
    # each customer lists its 20 strongest drivers; the top feature is nearly always among them
    assert len(shown) > 0.9 * len(points)
    assert float(drivers["mean_abs"].iloc[0]) >= np.mean(shown) * 0.9 - 1e-9
    assert 0 < float(drivers["mean_abs"].iloc[0]) < 100
    assert population.churn_drivers["mean_abs"].max() < 100
