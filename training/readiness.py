"""Data readiness: what an event log can support, per task, before any model is trained.

:func:`assess` reads the log once and answers in a few seconds on a million events (features at
the few cutoffs that decide it, not at every training cutoff): for each task, whether the log
supports it, and if not why (no revenue, too little history for the horizon, too few positives
at the validation or evaluation cutoff); how many training cutoffs the time-honest split leaves
and how far back their recency reaches; whether the hybrid learner's BTYD model can be fitted.
``lifecycle check`` prints it; :func:`lifecycle.training.pipeline.run_training` runs it first
and trains only the supported tasks, reporting the others as skipped with their reason.

The minimums, and where they come from:

- Hard (below them a task is skipped): :data:`MIN_ROWS` eligible customers at the latest
  training, the validation and the evaluation cutoff (the pipeline's own minimum), and
  :data:`MIN_OUTCOMES` customers of each outcome at the validation and evaluation cutoffs (fewer
  cannot calibrate a probability or measure it); CLV needs revenue in the label windows.
- Reference (below it a task trains, marked ``weak``): :data:`REFERENCE_OUTCOMES` of each
  outcome at the evaluation cutoff, the threshold Google Analytics 4 sets before it offers its
  purchase and churn probabilities (1,000 users who did and 1,000 who did not). Below it,
  metrics move by several points between runs.
- The hybrid learner needs a BTYD fit at the latest cutoff it uses: ``models.btyd.fit_btyd``'s own
  minimum of ``MIN_CUSTOMERS`` buyers, some with a repeat purchase day; else it trains ``lightgbm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from lifecycle.features.build import EventLog, build_features, connect, read_event_log
from lifecycle.features.config import LifecycleConfig
from lifecycle.models.tasks import TASKS, Task, eligible, spec
from lifecycle.training.config import TrainingConfig
from lifecycle.training.labels import build_labels, observation_end, window_end
from lifecycle.training.splits import (
    Split,
    SplitError,
    candidate_cutoffs,
    customer_split,
    time_split,
)

MIN_ROWS = 50
"""Eligible customers needed at each cutoff a task trains, validates or is evaluated on."""
MIN_OUTCOMES = 10
"""Customers of each outcome (or with revenue, for CLV) needed at validation and evaluation."""
REFERENCE_OUTCOMES = 1000
"""Of each outcome at evaluation for a ``ready`` task (Google Analytics 4's predictive minimum)."""

Status = Literal["ready", "weak", "unsupported"]


class NotReady(SplitError):
    """The log supports none of the tasks asked for; ``readiness`` says why, per task."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness
        reasons = "; ".join(f"{t}: {why}" for t, why in readiness.skipped().items())
        super().__init__(f"this log supports none of the tasks asked for ({reasons})")


@dataclass(frozen=True)
class TaskReadiness:
    """Whether one task can be trained on this log, and the numbers that decide it."""

    task: Task
    status: Status
    reasons: tuple[str, ...]
    """Why it is unsupported or weak (empty when ready)."""
    horizon_days: int
    cutoffs: dict[str, Any] = field(default_factory=dict)
    """``train`` (count), ``first_train``, ``last_train``, ``valid``, ``eval`` (ISO dates)."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per cutoff (``valid``, ``eval``): eligible ``rows`` and ``positives``/``negatives``
    (classifiers) or ``with_revenue`` (CLV)."""
    recency_reach_days: float | None = None
    """Longest days since the last purchase among the latest training cutoff's customers: what
    the trees saw; beyond it only the BTYD part of the hybrid keeps moving."""

    @property
    def supported(self) -> bool:
        """True when training this task can proceed."""
        return self.status != "unsupported"


@dataclass(frozen=True)
class Readiness:
    """A log's readiness: its profile, the learner it allows and every task's verdict."""

    data: dict[str, Any]
    learner: str
    learner_reason: str
    tasks: dict[Task, TaskReadiness]

    def supported(self) -> tuple[Task, ...]:
        """Return the tasks this log supports, in task order."""
        return tuple(t for t, r in self.tasks.items() if r.supported)

    def skipped(self) -> dict[Task, str]:
        """Return each unsupported task with its reasons in one sentence."""
        return {t: "; ".join(r.reasons) for t, r in self.tasks.items() if not r.supported}

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-ready values."""
        return {
            "data": self.data,
            "learner": {"name": self.learner, "reason": self.learner_reason},
            "tasks": {t: asdict(r) for t, r in self.tasks.items()},
        }

    def lines(self) -> list[str]:
        """Return the report as short lines (one screen): the log, the learner, each task."""
        d = self.data
        out = [
            f"log: {d['events']:,} events, {d['customers']:,} customers, {d['buyers']:,} buyers "
            f"({d['repeat_buyers']:,} on two or more days), {d['days']} days "
            f"({d['period_start'][:10]} .. {d['period_end'][:10]})",
            f"learner: {self.learner} ({self.learner_reason})",
        ]
        out += [f"note: {n}" for n in d["notes"]]
        for task, r in self.tasks.items():
            out.append(f"{task} ({r.horizon_days} d): {r.status}")
            if r.cutoffs:
                c = r.cutoffs
                recency = (
                    ""
                    if r.recency_reach_days is None
                    else f"; recency seen up to {r.recency_reach_days:,.0f} d"
                )
                out.append(
                    f"  cutoffs: {c['train']} training {c['first_train']} .. {c['last_train']}, "
                    f"validation {c['valid']}, evaluation {c['eval']}{recency}"
                )
            ev = r.counts.get("eval")
            if ev:
                counts = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in ev.items())
                out.append(f"  at evaluation: {counts}")
            out += [f"  - {reason}" for reason in r.reasons]
        return out


def _profile(log: EventLog, config: LifecycleConfig) -> dict[str, Any]:
    """Count what the log holds: buyers, repeat buyers, priced purchases, sign-ups."""
    stages = config.stages
    con = connect()
    try:
        con.register("events_in", log.events)
        row = con.sql(
            """
            WITH p AS (
                SELECT customer_id, revenue, CAST(event_ts AS DATE) AS day
                FROM events_in WHERE list_contains($purchases, event_type))
            SELECT
                (SELECT count(DISTINCT customer_id) FROM p),
                (SELECT count(*) FROM (SELECT customer_id FROM p GROUP BY customer_id
                                       HAVING count(DISTINCT day) >= 2)),
                (SELECT count(*) FROM p),
                (SELECT count(*) FROM p WHERE revenue > 0),
                (SELECT count(*) FROM events_in WHERE list_contains($signups, event_type)),
                (SELECT count(*) FROM events_in WHERE list_contains($loyal, event_type))
            """,
            params={
                "purchases": list(stages.purchase_events),
                "signups": list(stages.signup_events),
                "loyal": list(stages.loyalty_events),
            },
        ).fetchall()[0]
    finally:
        con.close()
    buyers, repeaters, purchases, priced, signups, loyal = (int(v) for v in row)
    notes = []
    if purchases and not priced:
        notes.append("no purchase carries an amount: no CLV in money, no Gamma-Gamma spend")
    elif purchases and priced < purchases:
        notes.append(f"{purchases - priced:,} of {purchases:,} purchases have no positive amount")
    if not signups:
        notes.append(
            "no sign-up events: nobody is in acquisition; customers enter at their first "
            "event (reach) or their first purchase (conversion)"
        )
    if not loyal and config.stages.loyalty_top_rfm_tier != "never":
        notes.append("no loyalty events: loyalty comes from the top RFM tier")
    return {
        "events": log.rows,
        "customers": log.customers,
        "buyers": buyers,
        "repeat_buyers": repeaters,
        "purchases": purchases,
        "purchases_with_amount": priced,
        "signups": signups,
        "days": int((log.last - log.first).total_seconds() // 86400) + 1,
        "period_start": log.first.isoformat(),
        "period_end": log.last.isoformat(),
        "fingerprint": log.digest,
        "notes": notes,
    }


def _split(
    config: TrainingConfig, task: Task, cutoffs: Sequence[pd.Timestamp], end: pd.Timestamp
) -> Split:
    chooser = time_split if config.protocol == "time" else customer_split
    return chooser(
        cutoffs,
        horizon_days=config.horizons.of(task),
        end=end,
        max_train_cutoffs=config.max_train_cutoffs,
    )


def _history_needed(config: TrainingConfig, task: Task) -> str:
    h = config.horizons.of(task)
    if config.protocol == "customer":
        return f"the customer split needs one cutoff with a complete {h}-day window after it"
    return (
        f"the time-honest split needs about {3 * h + 30:,} (a training, a validation and an "
        f"evaluation window of {h} days, one after the other)"
    )


def _counts(task: Task, rows: pd.DataFrame, labels: np.ndarray) -> dict[str, int]:
    keep = eligible(task, rows) & np.isfinite(labels)
    y = labels[keep]
    if spec(task).kind == "regression":
        return {"rows": int(keep.sum()), "with_revenue": int((y > 0).sum())}
    return {
        "rows": int(keep.sum()),
        "positives": int((y == 1).sum()),
        "negatives": int((y == 0).sum()),
    }


def _verdict(task: Task, counts: dict[str, dict[str, int]]) -> tuple[Status, list[str]]:
    reasons: list[str] = []
    regression = spec(task).kind == "regression"
    for role, c in counts.items():
        where = f"the {role}ation cutoff"
        if c["rows"] < MIN_ROWS:
            reasons.append(f"{c['rows']} eligible customers at {where} (at least {MIN_ROWS})")
            continue
        if regression and c["with_revenue"] < MIN_OUTCOMES:
            reasons.append(
                f"{c['with_revenue']} customers with revenue in the label window at {where} "
                f"(at least {MIN_OUTCOMES})"
            )
        for k in () if regression else ("positives", "negatives"):
            if c[k] < MIN_OUTCOMES:
                reasons.append(f"{c[k]} {k} at {where} (at least {MIN_OUTCOMES} of each)")
    if reasons:
        return "unsupported", reasons
    ev = counts["eval"]
    kinds = ("with_revenue",) if regression else ("positives", "negatives")
    low = [f"{ev[k]:,} {k.replace('_', ' ')}" for k in kinds if ev[k] < REFERENCE_OUTCOMES]
    if low:
        return "weak", [
            f"{' and '.join(low)} at evaluation, below the {REFERENCE_OUTCOMES:,} of each "
            "commercial tools ask for: the metrics are noisy"
        ]
    return "ready", []


def assess(
    events: Any,
    *,
    config: TrainingConfig | None = None,
    truth: pd.DataFrame | None = None,
) -> Readiness:
    """Say, per task, whether an event log supports training it, and why not.

    Parameters
    ----------
    events
        Canonical events (a Parquet path or folder, a frame), or an already read
        :class:`lifecycle.features.build.EventLog`.
    config
        Training config: tasks, horizons, protocol, cutoffs, lifecycle rules.
    truth
        The simulator's truth table (it puts the cutoffs on its grid, as training does).

    Returns
    -------
    Readiness
        The log's profile, the learner it allows and each configured task's verdict.

    Examples
    --------
    >>> from lifecycle.features.simulate import simulate
    >>> _ = simulate(400, seed=1, days=365, out_dir="sim")
    >>> report = assess("sim/events.parquet")
    >>> report.tasks["clv"].status, report.tasks["clv"].reasons[0][:40]
    ('unsupported', 'too little history for a 365-day horizon')
    """
    config = config or TrainingConfig()
    log = events if isinstance(events, EventLog) else read_event_log(events)
    data = _profile(log, config.lifecycle)
    end = observation_end(log, config.cutoffs.observed_until)
    cutoffs = candidate_cutoffs(log, config, end, truth)

    splits: dict[Task, Split] = {}
    verdicts: dict[Task, TaskReadiness] = {}
    for task in config.tasks:
        h = config.horizons.of(task)
        if spec(task).kind == "regression" and data["purchases_with_amount"] == 0:
            reason = "no revenue in the log: the purchases carry no amounts, so no CLV in money"
            verdicts[task] = TaskReadiness(task, "unsupported", (reason,), h)
            continue
        try:
            splits[task] = _split(config, task, cutoffs, end)
        except SplitError:  # its message says the same as this reason, less plainly
            reason = (
                f"too little history for a {h}-day horizon: the log spans {data['days']:,} days "
                f"and {_history_needed(config, task)}; lower the horizon or add history"
            )
            verdicts[task] = TaskReadiness(task, "unsupported", (reason,), h)

    roles = {t: {"valid": s.valid, "eval": s.eval} for t, s in splits.items()}
    needed = sorted({c for r in roles.values() for c in r.values()})
    later = set()
    if "next_stage" in splits:
        h = config.horizons.next_stage_days
        later = {window_end(c, h) for c in roles["next_stage"].values()}
    features = (
        build_features(log.events, cutoffs=sorted(set(needed) | later), config=config.lifecycle)
        if needed
        else pd.DataFrame()
    )
    for task, split in splits.items():
        at = roles[task]
        rows = features[features["cutoff"].isin(sorted(set(at.values())))].reset_index(drop=True)
        labels = build_labels(
            log.events,
            rows,
            task=task,
            horizon_days=split.horizon_days,
            end=end,
            config=config.lifecycle,
            qualifying_events=config.qualifying_events(),
            later_features=features,
        )
        counts = {
            role: _counts(task, rows[(rows["cutoff"] == c).to_numpy()], labels[rows["cutoff"] == c])
            for role, c in at.items()
        }
        status, reasons = _verdict(task, counts)
        verdicts[task] = TaskReadiness(
            task,
            status,
            tuple(reasons),
            split.horizon_days,
            cutoffs={
                "train": len(split.train),
                "first_train": split.train[0].date().isoformat(),
                "last_train": split.train[-1].date().isoformat(),
                "valid": split.valid.date().isoformat(),
                "eval": split.eval.date().isoformat(),
            },
            counts=counts,
            recency_reach_days=_recency_reach(log, config.lifecycle, split.train[-1]),
        )

    learner, why = _learner(config, features, roles)
    ordered = {t: verdicts[t] for t in TASKS if t in verdicts}
    return Readiness(data, learner, why, ordered)


def _recency_reach(log: EventLog, config: LifecycleConfig, cutoff: pd.Timestamp) -> float | None:
    """Return the longest days since a last purchase before ``cutoff``, over its buyers."""
    con = connect()
    try:
        con.register("events_in", log.events)
        (value,) = con.sql(
            "SELECT max(epoch_us($cutoff) - last_us) / 86400e6 FROM ("
            "  SELECT max(epoch_us(event_ts)) AS last_us FROM events_in"
            "  WHERE list_contains($purchases, event_type) AND event_ts < $cutoff"
            "  GROUP BY customer_id)",
            params={"cutoff": cutoff, "purchases": list(config.stages.purchase_events)},
        ).fetchall()[0]
    finally:
        con.close()
    return None if value is None else float(value)


def _learner(
    config: TrainingConfig, features: pd.DataFrame, roles: dict[Task, dict[str, pd.Timestamp]]
) -> tuple[str, str]:
    """Return the learner training will use, and why (the hybrid needs a BTYD fit)."""
    if config.learner != "hybrid":
        return config.learner, "as configured"
    if not roles or features.empty:
        return "lightgbm", "no task can be trained, so no BTYD model is fitted"
    from lifecycle.models.btyd import MIN_CUSTOMERS

    latest = max(r["eval"] for r in roles.values())
    at = features[features["cutoff"] == latest]
    buyers = int((at["n_purchases"] > 0).sum())
    repeaters = int((at["repeat_purchase_days"] > 0).sum())
    if buyers < MIN_CUSTOMERS or not repeaters:
        return "lightgbm", (
            f"the hybrid's BTYD model needs {MIN_CUSTOMERS} buyers, some on two or more days; "
            f"the latest cutoff {latest.date()} has {buyers} and {repeaters}: "
            "training falls back to lightgbm"
        )
    return (
        "hybrid",
        f"a BTYD model fits: {buyers:,} buyers, {repeaters:,} repeat, at {latest.date()}",
    )
