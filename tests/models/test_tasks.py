"""The task specifications: one per task, complete, and read by everything else."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import get_args

import pytest

from lifecycle.models import nba
from lifecycle.models.rules import LAST_PERIOD
from lifecycle.models.tasks import (
    REASON_DRIVER,
    REGISTERED_NAMES,
    SPECS,
    TASKS,
    TaskSpec,
    check_specs,
    spec,
)
from lifecycle.training.config import Horizons
from lifecycle.training.labels import LABELS


def test_every_task_has_one_spec_named_after_it() -> None:
    assert tuple(SPECS) == TASKS
    assert all(SPECS[t].name == t for t in TASKS)
    assert set(REGISTERED_NAMES) == set(TASKS)


def test_a_spec_missing_a_fact_does_not_construct() -> None:
    facts = {f.name: getattr(SPECS["churn"], f.name) for f in dataclasses.fields(TaskSpec)}
    for missing in facts:
        partial = {k: v for k, v in facts.items() if k != missing}
        with pytest.raises(TypeError, match=missing):
            TaskSpec(**partial)


def test_a_task_without_a_spec_fails_the_import_check() -> None:
    with pytest.raises(TypeError, match="without a TaskSpec: retention"):
        check_specs(SPECS, (*TASKS, "retention"))
    broken = {**SPECS, "churn": dataclasses.replace(SPECS["churn"], name="clv")}
    with pytest.raises(TypeError, match="named 'clv'"):
        check_specs(MappingProxyType(broken), TASKS)
    twice = {**SPECS, "clv": dataclasses.replace(SPECS["clv"], reason_for={"retention": None})}
    with pytest.raises(TypeError, match="outcome 'retention'"):
        check_specs(twice, TASKS)


def test_every_task_has_a_horizon_a_label_and_a_naive_baseline() -> None:
    horizons = Horizons()
    assert {t: horizons.of(t) for t in TASKS} == {"next_stage": 30, "churn": 90, "clv": 365}
    assert set(LABELS) == set(TASKS)
    assert set(LAST_PERIOD) == set(TASKS)
    with pytest.raises(ValueError, match="unknown task 'ltv'"):
        horizons.of("ltv")  # type: ignore[arg-type]


def test_every_action_outcome_cites_the_driver_of_one_task() -> None:
    assert set(REASON_DRIVER) == set(get_args(nba.Outcome))
    assert REASON_DRIVER["retention"] == ("churn", "up")


def test_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tasks are next_stage, churn, clv"):
        spec("ltv")
