"""Customer lifecycle intelligence: the Python API in one place.

Notebooks and scripts import from here; every name is the library function the ``lifecycle``
command of the same job calls (the command line itself is :mod:`lifecycle.cli`). Importing
this package imports nothing heavy: each name is loaded from its module on first use.

Events and features (``features``)
    :func:`simulate`, :func:`load_events`, :func:`load_mapping`, :func:`validate_events`,
    :func:`write_events`, :func:`load_config`, :class:`LifecycleConfig`,
    :func:`build_features`, :func:`feature_columns`, :func:`feature_definitions`,
    :func:`funnel`, :func:`segment_table`, :data:`STAGES`.
Training and the registry (``training``, ``models``)
    :func:`load_training_config`, :class:`TrainingConfig`, :func:`train_and_log`,
    :func:`load_run_summary`, :func:`metrics_table`, :func:`load_evaluation_scores`,
    :func:`evaluation_figures`, :func:`lift_and_capture`, :func:`connect_store` (an MLflow
    client of the model store), :func:`promote`, :func:`format_promotions`,
    :func:`rollback`, :func:`format_rollbacks`, :func:`learn_uplift`,
    :func:`score_customers`, :func:`quiet_mlflow`.
Serving (``serving``)
    :class:`Engine`, :func:`connect` (a client of the prediction API: over HTTP, else
    in-process), :class:`RequestError`, :func:`build_population`.

Examples
--------
>>> import lifecycle
>>> lifecycle.simulate.__module__
'features.simulate'
>>> from lifecycle import connect_store, promote  # doctest: +SKIP
>>> promote(connect_store("sqlite:///mlflow.db"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from features.build import build_features, feature_columns
    from features.config import LifecycleConfig, load_config
    from features.definitions import feature_definitions
    from features.io import load_events, write_events
    from features.mapping import load_mapping
    from features.rfm import segment_table
    from features.schema import STAGES
    from features.simulate import simulate
    from features.stages import funnel
    from features.validate import validate_events
    from models.store import connect as connect_store
    from serving.client import connect
    from serving.engine import Engine
    from serving.errors import RequestError
    from serving.population import build_population
    from training.config import TrainingConfig, load_training_config
    from training.metrics import lift_and_capture
    from training.report import metrics_table
    from training.tracking import (
        format_promotions,
        format_rollbacks,
        promote,
        quiet_mlflow,
        rollback,
    )
    from training.train import (
        evaluation_figures,
        load_evaluation_scores,
        load_run_summary,
        score_customers,
        train_and_log,
    )
    from training.uplift import learn_uplift

_EXPORTS: dict[str, tuple[str, str]] = {
    # features
    "STAGES": ("features.schema", "STAGES"),
    "LifecycleConfig": ("features.config", "LifecycleConfig"),
    "build_features": ("features.build", "build_features"),
    "feature_columns": ("features.build", "feature_columns"),
    "feature_definitions": ("features.definitions", "feature_definitions"),
    "funnel": ("features.stages", "funnel"),
    "load_config": ("features.config", "load_config"),
    "load_events": ("features.io", "load_events"),
    "load_mapping": ("features.mapping", "load_mapping"),
    "segment_table": ("features.rfm", "segment_table"),
    "simulate": ("features.simulate", "simulate"),
    "validate_events": ("features.validate", "validate_events"),
    "write_events": ("features.io", "write_events"),
    # training and the model store
    "TrainingConfig": ("training.config", "TrainingConfig"),
    "connect_store": ("models.store", "connect"),
    "evaluation_figures": ("training.train", "evaluation_figures"),
    "format_promotions": ("training.tracking", "format_promotions"),
    "format_rollbacks": ("training.tracking", "format_rollbacks"),
    "learn_uplift": ("training.uplift", "learn_uplift"),
    "lift_and_capture": ("training.metrics", "lift_and_capture"),
    "load_evaluation_scores": ("training.train", "load_evaluation_scores"),
    "load_run_summary": ("training.train", "load_run_summary"),
    "load_training_config": ("training.config", "load_training_config"),
    "metrics_table": ("training.report", "metrics_table"),
    "promote": ("training.tracking", "promote"),
    "quiet_mlflow": ("training.tracking", "quiet_mlflow"),
    "rollback": ("training.tracking", "rollback"),
    "score_customers": ("training.train", "score_customers"),
    "train_and_log": ("training.train", "train_and_log"),
    # serving
    "Engine": ("serving.engine", "Engine"),
    "RequestError": ("serving.errors", "RequestError"),
    "build_population": ("serving.population", "build_population"),
    "connect": ("serving.client", "connect"),
}

__all__ = [
    "STAGES",
    "Engine",
    "LifecycleConfig",
    "RequestError",
    "TrainingConfig",
    "build_features",
    "build_population",
    "connect",
    "connect_store",
    "evaluation_figures",
    "feature_columns",
    "feature_definitions",
    "format_promotions",
    "format_rollbacks",
    "funnel",
    "learn_uplift",
    "lift_and_capture",
    "load_config",
    "load_evaluation_scores",
    "load_events",
    "load_mapping",
    "load_run_summary",
    "load_training_config",
    "metrics_table",
    "promote",
    "quiet_mlflow",
    "rollback",
    "score_customers",
    "segment_table",
    "simulate",
    "train_and_log",
    "validate_events",
    "write_events",
]
"""The public names; each is loaded from the module named in ``_EXPORTS`` on first use."""


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'lifecycle' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
