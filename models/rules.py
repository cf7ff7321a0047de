"""Rule baselines every model must beat: RFM cells and "last period repeats".

- :class:`RfmCellRate` is what a marketing team does with RFM: the average outcome of each
  (stage, RFM segment) cell on past cutoffs, applied to today's customers.
- :func:`last_period` assumes the next window looks like the last one of the same length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.models.tasks import TASKS, Task

FloatArray = npt.NDArray[np.float64]

CELL_COLUMNS = ("stage", "rfm_segment")


class RfmCellRate:
    """Mean label per (stage, RFM segment) cell, learnt on training rows.

    Cells not seen in training fall back to the stage mean, then the overall mean.

    Examples
    --------
    >>> rows = pd.DataFrame({"stage": ["conversion"] * 3, "rfm_segment": ["New", "New", "Lost"]})
    >>> RfmCellRate().fit(rows, [1.0, 0.0, 1.0]).predict(rows).tolist()
    [0.5, 0.5, 1.0]
    """

    def fit(self, features: pd.DataFrame, y: npt.ArrayLike) -> Self:
        """Learn each cell's mean label."""
        frame = features[list(CELL_COLUMNS)].astype(str).assign(y=np.asarray(y, dtype=float))
        frame = frame[np.isfinite(frame["y"])]
        self.cells_ = frame.groupby(list(CELL_COLUMNS))["y"].mean()
        self.stages_ = frame.groupby("stage")["y"].mean()
        self.overall_ = float(frame["y"].mean()) if len(frame) else 0.0
        return self

    def predict(self, features: pd.DataFrame) -> FloatArray:
        """Return each row's cell mean."""
        keys = features[list(CELL_COLUMNS)].astype(str)
        index = pd.MultiIndex.from_frame(keys)
        cell = self.cells_.reindex(index).to_numpy(dtype=float)
        stage = self.stages_.reindex(keys["stage"]).to_numpy(dtype=float)
        return np.where(np.isnan(cell), np.where(np.isnan(stage), self.overall_, stage), cell)


def last_period(task: Task, features: pd.DataFrame, *, horizon_days: int) -> FloatArray:
    """Predict that the coming window repeats the last one.

    Parameters
    ----------
    task
        ``next_stage``: 1 when the customer entered the current stage within the last
        ``horizon_days``; ``churn``: 1 when the last purchase is at least ``horizon_days`` old;
        ``clv``: purchase revenue over the trailing feature window closest to the horizon,
        scaled to the horizon (:data:`LAST_PERIOD` holds one rule per task).
    features
        Rows of :func:`lifecycle.features.build.build_features`.
    horizon_days
        The task's horizon.

    Returns
    -------
    numpy.ndarray
        One score per row.
    """
    return LAST_PERIOD[task](features, horizon_days)


def _stage_entered_within(features: pd.DataFrame, horizon_days: int) -> FloatArray:
    return (features["days_in_stage"].to_numpy(dtype=float) < horizon_days).astype(float)


def _no_purchase_within(features: pd.DataFrame, horizon_days: int) -> FloatArray:
    recency = features["days_since_last_purchase"].to_numpy(dtype=float, na_value=np.inf)
    return (recency >= horizon_days).astype(float)


def _trailing_revenue(features: pd.DataFrame, horizon_days: int) -> FloatArray:
    windows = sorted(
        int(c.removeprefix("revenue_").removesuffix("d"))
        for c in features.columns
        if c.startswith("revenue_") and c.endswith("d") and c[8:-1].isdigit()
    )
    if not windows:
        raise ValueError("features have no trailing revenue window (revenue_<N>d)")
    window = min(windows, key=lambda w: (abs(np.log(w / horizon_days)), -w))
    revenue = features[f"revenue_{window}d"].to_numpy(dtype=float, na_value=0.0)
    return np.asarray(revenue * (horizon_days / window), dtype=np.float64)


LAST_PERIOD: Mapping[Task, Callable[[pd.DataFrame, int], FloatArray]] = MappingProxyType(
    {
        "next_stage": _stage_entered_within,
        "churn": _no_purchase_within,
        "clv": _trailing_revenue,
    }
)
"""The naive "same as last period" baseline of each task."""

_without = [t for t in TASKS if t not in LAST_PERIOD]
if _without:  # a new task must bring its naive baseline; fail at import
    raise TypeError(f"no last-period baseline for task(s) {', '.join(_without)}")
