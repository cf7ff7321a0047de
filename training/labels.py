"""Labels: what happened to each customer in the window after a cutoff.

For a cutoff ``T`` and a horizon ``H`` the label window is ``[T, T + H)``: exactly the events the
features at ``T`` leave out (features use events strictly before ``T``), up to the features at
``T + H``. So an event belongs either to a feature or to a label, never to both.

- ``next_stage``: the stage at ``T + H`` (the feature pipeline's own stage, from events before
  ``T + H``) is above the stage at ``T``; customers already in loyalty have no label.
- ``churn``: no qualifying event (default: a purchase) in the window; only customers with at
  least one purchase before ``T`` have a label.
- ``clv``: net revenue in the window (purchases less refunds, refunds always reducing it).

A window that is not complete in the data (``T + H`` after the end of observation) would
understate activity, so :func:`build_labels` refuses it with :class:`IncompleteLabelWindow`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.features.build import (
    EventLog,
    build_features,
    connect,
    event_time_range,
    parse_cutoff,
    register_events,
    revenue_micro_sql,
    sql_list,
)
from lifecycle.features.config import LifecycleConfig
from lifecycle.features.definitions import DAY_US
from lifecycle.models.tasks import TASKS, Task, eligible

FloatArray = npt.NDArray[np.float64]


class IncompleteLabelWindow(ValueError):
    """A cutoff's label window runs past the end of the observed data."""


def observation_end(
    events: object, observed_until: str | pd.Timestamp | None = None
) -> pd.Timestamp:
    """Return the exclusive end of the observed data.

    Parameters
    ----------
    events
        Canonical events (frame, Arrow table or Parquet path), or an already read
        :class:`lifecycle.features.build.EventLog`.
    observed_until
        An explicit end; default: midnight UTC after the last event.

    Returns
    -------
    pandas.Timestamp
        UTC timestamp; a label window ``[T, T + H)`` is complete when ``T + H <= end``.
    """
    if observed_until is not None:
        return parse_cutoff(observed_until)
    _, last = (
        (events.first, events.last) if isinstance(events, EventLog) else event_time_range(events)
    )
    return last.normalize() + pd.Timedelta(days=1)


def window_end(cutoff: pd.Timestamp, horizon_days: int) -> pd.Timestamp:
    """Return ``cutoff + horizon_days`` as an absolute duration (24-hour days, like features)."""
    return cutoff + pd.Timedelta(microseconds=horizon_days * DAY_US)


def complete_cutoffs(
    cutoffs: Sequence[pd.Timestamp], *, horizon_days: int, end: pd.Timestamp
) -> list[pd.Timestamp]:
    """Return the cutoffs whose label window ends by ``end``, ascending."""
    return sorted(c for c in cutoffs if window_end(c, horizon_days) <= end)


def check_complete(
    cutoffs: Sequence[pd.Timestamp], *, horizon_days: int, end: pd.Timestamp
) -> None:
    """Raise :class:`IncompleteLabelWindow` naming every cutoff whose window is not complete."""
    late = [c for c in cutoffs if window_end(c, horizon_days) > end]
    if late:
        names = ", ".join(c.isoformat() for c in sorted(late))
        raise IncompleteLabelWindow(
            f"the {horizon_days}-day label window after {names} ends after the data "
            f"({end.isoformat()}): such a cutoff cannot be used for training or metrics"
        )


def window_activity(
    events: object,
    cutoffs: Sequence[pd.Timestamp],
    *,
    horizon_days: int,
    qualifying_events: Sequence[str],
    purchase_events: Sequence[str],
    refund_events: Sequence[str],
) -> pd.DataFrame:
    """Count qualifying events, purchase days and net revenue in ``[T, T + H)`` per cutoff.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``cutoff``, ``n_qualifying``, ``net_revenue`` and ``purchase_days``
        (distinct 24-hour days, counted from the cutoff, with a purchase: the BTYD models'
        repeat transactions); only customers with at least one event in a window have a row.
    """
    cuts = pd.DataFrame(
        {"cutoff_us": [int(c.value // 1000) for c in cutoffs]}, dtype="int64"
    ).drop_duplicates()
    con = connect()
    try:
        register_events(con, events)
        con.register("cuts", cuts)
        frame = con.sql(
            f"""
            WITH ev AS (
              SELECT customer_id, epoch_us(event_ts) AS ts_us, event_type,
                     CASE WHEN event_type IN ({sql_list([*purchase_events, *refund_events])})
                          THEN {revenue_micro_sql(refund_events)} ELSE 0 END AS rev_micro
              FROM events
            )
            SELECT customer_id, cutoff_us,
                   count(*) FILTER (WHERE event_type IN ({sql_list(qualifying_events)}))
                     AS n_qualifying,
                   CAST(coalesce(sum(rev_micro), 0) AS DOUBLE) / 1000000 AS net_revenue,
                   count(DISTINCT floor(CAST(ev.ts_us - cuts.cutoff_us AS DOUBLE) / $day))
                     FILTER (WHERE event_type IN ({sql_list(purchase_events)})) AS purchase_days
            FROM ev JOIN cuts
              ON ev.ts_us >= cuts.cutoff_us AND ev.ts_us < cuts.cutoff_us + $h
            GROUP BY customer_id, cutoff_us
            """,  # noqa: S608 - only quoted config values are interpolated
            params={"h": horizon_days * DAY_US, "day": DAY_US},
        ).df()
    finally:
        con.close()
    frame["cutoff"] = pd.to_datetime(frame.pop("cutoff_us"), unit="us", utc=True)
    return frame[["customer_id", "cutoff", "n_qualifying", "net_revenue", "purchase_days"]]


def _merge_on_keys(features: pd.DataFrame, values: pd.DataFrame, column: str) -> FloatArray:
    """Look up ``values[column]`` for each (customer_id, cutoff) row of ``features``."""
    keys = features[["customer_id", "cutoff"]].astype({"cutoff": "datetime64[us, UTC]"})
    right = values.astype({"cutoff": "datetime64[us, UTC]"})
    merged = keys.merge(right, on=["customer_id", "cutoff"], how="left", validate="one_to_one")
    return merged[column].to_numpy(dtype=np.float64, na_value=np.nan)


def build_labels(
    events: object,
    features: pd.DataFrame,
    *,
    task: Task,
    horizon_days: int,
    end: pd.Timestamp,
    config: LifecycleConfig | None = None,
    qualifying_events: Sequence[str] | None = None,
    later_features: pd.DataFrame | None = None,
) -> FloatArray:
    """Return one label per row of ``features`` (NaN where the task does not apply).

    Parameters
    ----------
    events
        The canonical events the features were built from.
    features
        Rows of :func:`lifecycle.features.build.build_features` (``customer_id``, ``cutoff``, ...).
    task
        ``next_stage``, ``churn`` or ``clv``.
    horizon_days
        Length of the label window after each cutoff.
    end
        Exclusive end of the observed data (:func:`observation_end`).
    config
        Lifecycle config used for the features (stage rules, event roles).
    qualifying_events
        Events that count as activity for churn (default: the purchase events).
    later_features
        Features already built at some ``T + H`` cutoffs, reused for the next-stage label; any
        missing ones are built here.

    Returns
    -------
    numpy.ndarray
        float64 labels aligned with ``features`` rows.

    Raises
    ------
    IncompleteLabelWindow
        When a cutoff's window ends after ``end``.
    """
    config = config or LifecycleConfig()
    cutoffs = sorted(pd.to_datetime(features["cutoff"].unique(), utc=True))
    check_complete(cutoffs, horizon_days=horizon_days, end=end)
    mask = eligible(task, features)
    labels = np.full(len(features), np.nan)
    window = LabelWindow(events, cutoffs, horizon_days, config, qualifying_events, later_features)
    labels[mask] = LABELS[task](window, features)[mask]
    return labels


def purchase_day_labels(
    events: object,
    features: pd.DataFrame,
    *,
    horizon_days: int,
    end: pd.Timestamp,
    config: LifecycleConfig | None = None,
) -> FloatArray:
    """Return the purchase days in ``[T, T + H)`` for every row of ``features`` (0 when none).

    The count the hybrid CLV model's transaction distribution is fitted to: same-day
    purchases count once, as in the BTYD literature.

    Raises
    ------
    IncompleteLabelWindow
        When a cutoff's window ends after ``end``.
    """
    config = config or LifecycleConfig()
    cutoffs = sorted(pd.to_datetime(features["cutoff"].unique(), utc=True))
    check_complete(cutoffs, horizon_days=horizon_days, end=end)
    window = LabelWindow(events, cutoffs, horizon_days, config, None, None)
    return np.nan_to_num(_merge_on_keys(features, window.activity(), "purchase_days"))


@dataclass(frozen=True)
class LabelWindow:
    """What a label function reads: the events, the cutoffs and the window after each."""

    events: object
    cutoffs: Sequence[pd.Timestamp]
    horizon_days: int
    config: LifecycleConfig
    qualifying_events: Sequence[str] | None
    later_features: pd.DataFrame | None

    def activity(self) -> pd.DataFrame:
        """Qualifying events and net revenue per customer and cutoff in the window."""
        return window_activity(
            self.events,
            self.cutoffs,
            horizon_days=self.horizon_days,
            qualifying_events=self.qualifying_events or self.config.stages.purchase_events,
            purchase_events=self.config.stages.purchase_events,
            refund_events=self.config.features.refund_events,
        )


def _next_stage_label(window: LabelWindow, features: pd.DataFrame) -> FloatArray:
    """1 when the stage at ``T + H`` is above the stage at ``T``."""
    later = _later_stages(
        window.events,
        window.cutoffs,
        window.horizon_days,
        window.config,
        window.later_features,
    )
    shifted = features[["customer_id", "cutoff"]].copy()
    shifted["cutoff"] = [window_end(c, window.horizon_days) for c in shifted["cutoff"]]
    stage_then = _merge_on_keys(shifted, later, "stage_code")
    now = features["stage_code"].to_numpy(dtype=np.float64)
    return (stage_then > now).astype(np.float64)


def _churn_label(window: LabelWindow, features: pd.DataFrame) -> FloatArray:
    """1 when no qualifying event falls in the window."""
    active = np.nan_to_num(_merge_on_keys(features, window.activity(), "n_qualifying"))
    return (active == 0).astype(np.float64)


def _clv_label(window: LabelWindow, features: pd.DataFrame) -> FloatArray:
    """Net revenue in the window (refunds reduce it)."""
    return np.nan_to_num(_merge_on_keys(features, window.activity(), "net_revenue"))


LABELS: Mapping[Task, Callable[[LabelWindow, pd.DataFrame], FloatArray]] = MappingProxyType(
    {"next_stage": _next_stage_label, "churn": _churn_label, "clv": _clv_label}
)
"""The label of each task: a function of the window and the feature rows (all rows; the caller
keeps the eligible ones)."""

_unlabelled = [t for t in TASKS if t not in LABELS]
if _unlabelled:  # a new task must bring its label; fail at import, not mid-training
    raise TypeError(f"no label defined for task(s) {', '.join(_unlabelled)}")


def _later_stages(
    events: object,
    cutoffs: Sequence[pd.Timestamp],
    horizon_days: int,
    config: LifecycleConfig,
    known: pd.DataFrame | None,
) -> pd.DataFrame:
    """Stage codes at every ``T + H``, reusing feature rows already built at those cutoffs."""
    wanted = {window_end(c, horizon_days) for c in cutoffs}
    frames = []
    have: set[pd.Timestamp] = set()
    if known is not None and len(known):
        have = set(pd.to_datetime(known["cutoff"].unique(), utc=True)) & wanted
        frames.append(
            known.loc[known["cutoff"].isin(list(have)), ["customer_id", "cutoff", "stage_code"]]
        )
    missing = sorted(wanted - have)
    if missing:
        built = build_features(events, cutoffs=missing, config=config)
        frames.append(built[["customer_id", "cutoff", "stage_code"]])
    return pd.concat(frames, ignore_index=True)
