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
'lifecycle.features.simulate'
>>> from lifecycle import connect_store, promote  # doctest: +SKIP
>>> promote(connect_store("sqlite:///mlflow.db"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Installed, lifecycle.features, .models, .training and .serving sit inside this package (the
# wheel) or are mapped to the repository's folders (the editable install). A Bento copies the
# folders beside this one instead: let the subpackages resolve there too. This only widens
# this package's search path; it puts nothing on sys.path.
_BESIDE = Path(__file__).resolve().parent.parent
if (
    importlib.util.find_spec(f"{__name__}.serving") is None
    and (_BESIDE / "serving" / "service.py").is_file()
):
    __path__.append(str(_BESIDE))

if TYPE_CHECKING:
    from lifecycle.features.build import build_features, feature_columns
    from lifecycle.features.config import LifecycleConfig, load_config
    from lifecycle.features.definitions import feature_definitions
    from lifecycle.features.io import load_events, write_events
    from lifecycle.features.mapping import load_mapping
    from lifecycle.features.rfm import segment_table
    from lifecycle.features.schema import STAGES
    from lifecycle.features.simulate import simulate
    from lifecycle.features.stages import funnel
    from lifecycle.features.validate import validate_events
    from lifecycle.models.store import connect as connect_store
    from lifecycle.serving.client import connect
    from lifecycle.serving.engine import Engine
    from lifecycle.serving.errors import RequestError
    from lifecycle.serving.population import build_population
    from lifecycle.training.config import TrainingConfig, load_training_config
    from lifecycle.training.metrics import lift_and_capture
    from lifecycle.training.report import metrics_table
    from lifecycle.training.tracking import (
        format_promotions,
        format_rollbacks,
        promote,
        quiet_mlflow,
        rollback,
    )
    from lifecycle.training.train import (
        evaluation_figures,
        load_evaluation_scores,
        load_run_summary,
        score_customers,
        train_and_log,
    )
    from lifecycle.training.uplift import learn_uplift

_EXPORTS: dict[str, tuple[str, str]] = {
    # features
    "STAGES": ("lifecycle.features.schema", "STAGES"),
    "LifecycleConfig": ("lifecycle.features.config", "LifecycleConfig"),
    "build_features": ("lifecycle.features.build", "build_features"),
    "feature_columns": ("lifecycle.features.build", "feature_columns"),
    "feature_definitions": ("lifecycle.features.definitions", "feature_definitions"),
    "funnel": ("lifecycle.features.stages", "funnel"),
    "load_config": ("lifecycle.features.config", "load_config"),
    "load_events": ("lifecycle.features.io", "load_events"),
    "load_mapping": ("lifecycle.features.mapping", "load_mapping"),
    "segment_table": ("lifecycle.features.rfm", "segment_table"),
    "simulate": ("lifecycle.features.simulate", "simulate"),
    "validate_events": ("lifecycle.features.validate", "validate_events"),
    "write_events": ("lifecycle.features.io", "write_events"),
    # training and the model store
    "TrainingConfig": ("lifecycle.training.config", "TrainingConfig"),
    "connect_store": ("lifecycle.models.store", "connect"),
    "evaluation_figures": ("lifecycle.training.train", "evaluation_figures"),
    "format_promotions": ("lifecycle.training.tracking", "format_promotions"),
    "format_rollbacks": ("lifecycle.training.tracking", "format_rollbacks"),
    "learn_uplift": ("lifecycle.training.uplift", "learn_uplift"),
    "lift_and_capture": ("lifecycle.training.metrics", "lift_and_capture"),
    "load_evaluation_scores": ("lifecycle.training.train", "load_evaluation_scores"),
    "load_run_summary": ("lifecycle.training.train", "load_run_summary"),
    "load_training_config": ("lifecycle.training.config", "load_training_config"),
    "metrics_table": ("lifecycle.training.report", "metrics_table"),
    "promote": ("lifecycle.training.tracking", "promote"),
    "quiet_mlflow": ("lifecycle.training.tracking", "quiet_mlflow"),
    "rollback": ("lifecycle.training.tracking", "rollback"),
    "score_customers": ("lifecycle.training.train", "score_customers"),
    "train_and_log": ("lifecycle.training.train", "train_and_log"),
    # serving
    "Engine": ("lifecycle.serving.engine", "Engine"),
    "RequestError": ("lifecycle.serving.errors", "RequestError"),
    "build_population": ("lifecycle.serving.population", "build_population"),
    "connect": ("lifecycle.serving.client", "connect"),
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
