"""Evaluation protocols: the time-honest split (the default) and the customer split.

Time-honest (``time``): the evaluation cutoff ``T_e`` is the last cutoff whose label window is
complete; the validation cutoff ``T_v`` (early stopping, tuning, calibration) is the last one
whose window ends by ``T_e``; training cutoffs are those whose windows end by ``T_v``. So no
label a model learns from, or is tuned and calibrated on, overlaps the period it is scored on:
the score is what a model trained then would have achieved.

Customer split (``customer``, as much published work on CDNOW does): customers are assigned
to train / validation / evaluation by a seeded hash; models train on the training customers'
rows at every complete cutoff and are scored on the evaluation customers at ``T_e``. Label
windows of training rows overlap the evaluation period in time, so it is *not* time-honest;
reports always name the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.features.build import EventLog, monthly_cutoffs
from lifecycle.training.labels import complete_cutoffs, window_end

if TYPE_CHECKING:
    from lifecycle.training.config import TrainingConfig


class SplitError(ValueError):
    """The data is too short for the protocol and horizon asked for."""


@dataclass(frozen=True)
class Split:
    """Cutoffs of one protocol: training cutoffs, the validation and the evaluation cutoff."""

    protocol: str
    horizon_days: int
    train: tuple[pd.Timestamp, ...]
    valid: pd.Timestamp
    eval: pd.Timestamp

    def as_dict(self) -> dict[str, object]:
        """Return the cutoffs as ISO strings (for reports and MLflow)."""
        return {
            "protocol": self.protocol,
            "horizon_days": self.horizon_days,
            "train": [c.isoformat() for c in self.train],
            "valid": self.valid.isoformat(),
            "eval": self.eval.isoformat(),
        }


def candidate_cutoffs(
    log: EventLog, config: TrainingConfig, end: pd.Timestamp, truth: pd.DataFrame | None
) -> list[pd.Timestamp]:
    """Return the cutoffs training may use, ascending.

    The simulator's truth grid (every 30 days from its start) when a truth table is given and
    no cutoffs are configured, so the oracle is known at the evaluation cutoff; else a fixed
    step from ``cutoffs.start`` when ``cutoffs.every_days`` is set; else calendar months.
    """
    settings = config.cutoffs
    if truth is not None and settings.every_days is None and settings.start is None:
        grid = pd.to_datetime(truth["as_of"].unique(), utc=True)
        return sorted(c for c in grid if c < end)
    if settings.every_days is not None:
        start = pd.Timestamp(settings.start, tz="UTC") if settings.start else log.first.normalize()
        step = pd.Timedelta(days=settings.every_days)
        cuts, cut = [], start + step
        while cut < end:
            cuts.append(cut)
            cut += step
        return cuts
    return [c for c in monthly_cutoffs(log.events, start=log.first, end=log.last) if c < end]


def time_split(
    cutoffs: Sequence[pd.Timestamp],
    *,
    horizon_days: int,
    end: pd.Timestamp,
    max_train_cutoffs: int = 12,
) -> Split:
    """Pick the time-honest training, validation and evaluation cutoffs.

    Parameters
    ----------
    cutoffs
        Candidate cutoffs.
    horizon_days
        Label window length.
    end
        Exclusive end of the observed data.
    max_train_cutoffs
        Keep at most this many (the most recent) training cutoffs.

    Returns
    -------
    Split
        The cutoffs.

    Raises
    ------
    SplitError
        When there are not enough complete, non-overlapping cutoffs.

    Examples
    --------
    >>> cuts = list(pd.date_range("2024-01-01", periods=12, freq="MS", tz="UTC"))
    >>> s = time_split(cuts, horizon_days=30, end=pd.Timestamp("2025-01-01", tz="UTC"))
    >>> s.eval.date(), s.valid.date(), s.train[-1].date()
    (datetime.date(2024, 12, 1), datetime.date(2024, 11, 1), datetime.date(2024, 10, 1))
    """
    usable = complete_cutoffs(cutoffs, horizon_days=horizon_days, end=end)
    if not usable:
        raise SplitError(
            f"no cutoff has a complete {horizon_days}-day label window before {end.date()}: "
            "the data is shorter than the horizon; lower the horizon in the training config"
        )
    t_eval = usable[-1]
    before_eval = [c for c in usable if window_end(c, horizon_days) <= t_eval]
    if not before_eval:
        raise SplitError(_too_short(horizon_days, usable, "a validation cutoff"))
    t_valid = before_eval[-1]
    train = [c for c in before_eval if window_end(c, horizon_days) <= t_valid]
    if not train:
        raise SplitError(_too_short(horizon_days, usable, "training cutoffs"))
    return Split("time", horizon_days, tuple(train[-max_train_cutoffs:]), t_valid, t_eval)


def _too_short(horizon_days: int, usable: Sequence[pd.Timestamp], what: str) -> str:
    span = (usable[-1] - usable[0]).days
    return (
        f"the time-honest protocol needs {what} whose {horizon_days}-day label window ends "
        f"before the next one starts; complete cutoffs span only {span} days. Lower the "
        "horizon, add data, or use `protocol: customer` (not time-honest)"
    )


def customer_split(
    cutoffs: Sequence[pd.Timestamp],
    *,
    horizon_days: int,
    end: pd.Timestamp,
    max_train_cutoffs: int = 12,
) -> Split:
    """Cutoffs of the customer-split protocol: all complete ones train, the last evaluates."""
    usable = complete_cutoffs(cutoffs, horizon_days=horizon_days, end=end)
    if not usable:
        raise SplitError(
            f"no cutoff has a complete {horizon_days}-day label window before {end.date()}"
        )
    return Split(
        "customer", horizon_days, tuple(usable[-max_train_cutoffs:]), usable[-1], usable[-1]
    )


def customer_groups(
    customer_ids: pd.Series, *, seed: int, shares: tuple[float, float] = (0.6, 0.2)
) -> npt.NDArray[np.str_]:
    """Assign each customer to ``train``, ``valid`` or ``eval`` by a seeded hash of its id.

    The assignment of a customer never depends on which other customers are present.

    Examples
    --------
    >>> ids = pd.Series([f"c{i}" for i in range(1000)])
    >>> groups = customer_groups(ids, seed=1)
    >>> sorted(set(groups.tolist())), bool((groups == customer_groups(ids, seed=1)).all())
    (['eval', 'train', 'valid'], True)
    """
    key = f"{seed:016d}"[-16:]
    hashed = pd.util.hash_pandas_object(
        customer_ids.astype(str), index=False, hash_key=key
    ).to_numpy()
    u = (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.where(u < shares[0], "train", np.where(u < shares[0] + shares[1], "valid", "eval"))
