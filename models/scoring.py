"""Scoring every customer: one function that runs each task's model on a feature matrix.

Batch scoring (``lifecycle score``), the service's answers and the page's population all
call :func:`predict_outputs`, so one customer gets the same numbers wherever they are scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from lifecycle.models.tasks import Task, eligible

FloatArray = npt.NDArray[np.float64]


class Scorer(Protocol):
    """A fitted task model and where its features sit in the matrix it is given."""

    @property
    def estimator(self) -> Any:
        """The fitted estimator (``predict_matrix(x, threads)``)."""

    @property
    def columns(self) -> npt.NDArray[np.intp] | None:
        """Positions of the model's features in the matrix (None: the matrix as it is)."""


def feature_positions(
    model_features: Sequence[str], all_features: Sequence[str]
) -> npt.NDArray[np.intp] | None:
    """Return the positions of a model's features in a feature list (None: the same list).

    Raises
    ------
    KeyError
        Naming the first features the list lacks.

    Examples
    --------
    >>> feature_positions(["b", "a"], ["a", "b", "c"])
    array([1, 0])
    >>> feature_positions(["a", "b"], ["a", "b"]) is None
    True
    """
    position = {name: i for i, name in enumerate(all_features)}
    unknown = [name for name in model_features if name not in position]
    if unknown:
        raise KeyError(", ".join(unknown[:5]))
    if list(model_features) == list(all_features):
        return None
    return np.array([position[name] for name in model_features], dtype=np.intp)


@dataclass(frozen=True)
class PlacedModel:
    """A fitted estimator with the positions of its features in a feature list (a Scorer)."""

    estimator: Any
    columns: npt.NDArray[np.intp] | None


def place(estimators: Mapping[Task, Any], all_features: Sequence[str]) -> dict[Task, PlacedModel]:
    """Pair each task's estimator with its feature positions in ``all_features``."""
    return {
        task: PlacedModel(est, feature_positions(est.feature_names, all_features))
        for task, est in estimators.items()
    }


def eligibility(
    x: FloatArray, feature_names: Sequence[str], tasks: Sequence[Task]
) -> dict[Task, npt.NDArray[np.bool_]]:
    """Which rows of a feature matrix each task scores (:func:`lifecycle.models.tasks.eligible`)."""
    cols = {
        "stage_code": x[:, list(feature_names).index("stage_code")],
        "n_purchases": x[:, list(feature_names).index("n_purchases")],
    }
    return {task: eligible(task, cols) for task in tasks}


def predict_outputs(
    models: Mapping[Task, Scorer],
    x: FloatArray,
    masks: Mapping[Task, npt.NDArray[np.bool_]],
    *,
    threads: int | None = None,
) -> dict[str, FloatArray]:
    """Run every task's model on a feature matrix; NaN where a task does not apply.

    Parameters
    ----------
    models
        Task -> fitted model and its feature positions in ``x``.
    x
        Feature rows (float64, missing values NaN).
    masks
        Task -> rows it applies to (:func:`eligibility`).
    threads
        LightGBM threads (None: the estimator's own).

    Returns
    -------
    dict
        Every output column of every task (``churn_risk``, ``clv_p10``, ...), one value per row.
    """
    outputs: dict[str, FloatArray] = {}
    for task, model in models.items():
        xm = x if model.columns is None else x[:, model.columns]
        for name, values in model.estimator.predict_matrix(xm, threads).items():
            outputs[name] = np.where(masks[task], values, np.nan)
    return outputs
