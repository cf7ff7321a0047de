"""The prediction engine behind the service: champion models, lookup table, explanations, action.

Everything here is plain Python (no BentoML), so the service, the benchmarks and notebooks
share it. One request or a batch takes the same path: resolve every item to a feature row
(looked up, computed from raw events with the training feature definitions, or given), stack
the rows into one matrix, run each model once on it (predictions and, when asked, LightGBM's
native Tree SHAP), then write each item's answer. A batch therefore gives exactly the numbers
the same items give one by one.

Models are pinned by version: the versions holding the alias are resolved once and loaded by
version number, and an engine never changes its models. A champion change reaches a running
service as a new engine, loaded and checked beside this one and swapped in whole
(:mod:`lifecycle.serving.reload`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.features.build import (
    build_features,
    feature_columns,
    parse_cutoff,
    typical_values,
    typical_values_by_stage,
)
from lifecycle.features.config import LifecycleConfig
from lifecycle.features.definitions import model_features
from lifecycle.features.rfm import (
    OBSERVED_CHURN_COLUMN,
    OBSERVED_CHURN_DAYS,
    rfm_segment,
    segment_churn_rates,
)
from lifecycle.features.schema import STAGES
from lifecycle.features.validate import (
    Plausibility,
    validate_events,
)
from lifecycle.models.lgbm import LifecycleEstimator
from lifecycle.models.nba import ActionCatalog, load_catalog, reason_driver, recommend
from lifecycle.models.scoring import eligibility, feature_positions, predict_outputs
from lifecycle.models.store import (
    ModelRecord,
    StoreError,
    load_champions,
    load_uplift,
    open_store,
    shared_lifecycle,
    uplift_name,
)
from lifecycle.models.tasks import REASON_DRIVER, TASKS, Task, spec
from lifecycle.serving.errors import RequestError
from lifecycle.serving.explain import explain
from lifecycle.serving.schemas import ModelInfo, PredictRequest, PredictResponse, ReloadInfo
from lifecycle.serving.settings import ServeSettings

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Estimator = LifecycleEstimator

BATCH_ROWS = 64
"""From this many rows on, a call uses ``batch_threads`` LightGBM threads instead of ``threads``."""


class ServiceError(RuntimeError):
    """The service cannot start: no champion, a model that does not fit, a bad lookup file."""


@dataclass(frozen=True)
class ServedModel:
    """One champion model, pinned by version."""

    task: Task
    name: str
    version: str
    run_id: str
    estimator: Estimator
    columns: npt.NDArray[np.intp] | None
    """Positions of the model's features in the engine's feature list (None: the same list)."""
    record: ModelRecord
    """What the training run recorded for serving (checked on load; see lifecycle.models.store)."""


@dataclass(frozen=True)
class UpliftModel:
    """The campaign uplift learner (optional), pinned by version."""

    name: str
    version: str
    estimator: Any
    columns: npt.NDArray[np.intp] | None


@dataclass(frozen=True)
class Lookup:
    """The customer lookup table: the last batch scoring's features, one row per customer."""

    source: str
    cutoff: pd.Timestamp
    index: dict[str, int]
    x: FloatArray
    frame: pd.DataFrame
    scored_with: dict[str, str]


@dataclass
class _Rows:
    """Resolved request items: one feature row each, plus what the response needs."""

    x: FloatArray
    customer_ids: list[str | None]
    as_of: list[datetime | None]
    sources: list[str]
    requests: list[PredictRequest]


@dataclass
class Engine:
    """Champion models, the lookup table and the action policy; answers prediction requests."""

    models: dict[Task, ServedModel]
    lifecycle: LifecycleConfig
    catalog: ActionCatalog
    alias: str = "champion"
    project: str = "lifecycle"
    """The project whose models these are (the page shows it)."""
    lookup: Lookup | None = None
    uplift: UpliftModel | None = None
    currency: str = "USD"
    max_batch: int = 1000
    threads: int = 1
    batch_threads: int = 1
    events_path: str | None = None
    """Canonical events behind the lookup table, for customer timelines (optional)."""
    feature_names: list[str] = field(init=False)
    nullable: frozenset[str] = field(init=False)
    typical: dict[str, float] = field(init=False)
    typical_by_stage: dict[str, dict[str, float]] = field(init=False)
    """Typical values among the customers of each stage (empty: compare with everyone's)."""
    reload_status: Callable[[], ReloadInfo] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """What the worker's reloads did (:class:`~lifecycle.serving.reload.Reloader`)."""

    def __post_init__(self) -> None:
        self.feature_names = feature_columns(self.lifecycle)
        self._position = {name: i for i, name in enumerate(self.feature_names)}
        self.nullable = nullable_features(self.lifecycle)
        self._features = {f.name: f for f in model_features(self.lifecycle)}
        self._integer = {name for name, f in self._features.items() if f.integer}
        if self.lookup:
            self.typical = typical_values(self.lookup.frame, self.feature_names)
            self.typical_by_stage = typical_values_by_stage(self.lookup.frame, self.feature_names)
        else:
            self.typical, self.typical_by_stage = self._recorded_typical()
        self.versions = {m.name: m.version for m in self.models.values()}
        if self.uplift is not None:
            self.versions[self.uplift.name] = self.uplift.version
        self._stage_col = self._position["stage_code"]
        self._rfm_cols = [self._position[c] for c in ("rfm_r", "rfm_f", "rfm_m")]

    def _recorded_typical(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Typical values, overall and per stage, from the training records (no lookup table).

        From the model that scores everyone (its evaluation population is the whole one),
        else from the first model. A record written before per-stage values has none: its
        explanations compare with the overall ones.
        """
        everyone = [m for t, m in self.models.items() if spec(t).eligibility == "everyone"]
        model = everyone[0] if everyone else next(iter(self.models.values()))
        by_stage = {k: dict(v) for k, v in model.record.typical_by_stage.items()}
        return dict(model.record.typical), by_stage

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        *,
        tracking_uri: str | None = None,
        alias: str = "champion",
        project: str = "lifecycle",
        names: Mapping[str, str] | None = None,
        lookup: str | Path | None = None,
        events: str | Path | None = None,
        cutoff: str | None = None,
        actions: str | Path | None = None,
        currency: str = "USD",
        max_batch: int = 1000,
        use_uplift: bool = True,
        batch_threads: int = 1,
    ) -> Engine:
        """Load the models holding ``alias``, check them, and load or build the lookup table.

        Parameters
        ----------
        tracking_uri
            MLflow store (default: ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``).
        alias
            Registry alias to serve.
        project
            Project whose models to serve (:func:`lifecycle.models.store.registered_names`).
        names
            Registered name per task (default: the project's).
        lookup
            Parquet written by ``lifecycle score``: the customers served by id.
        events
            Canonical events (Parquet): build the lookup table from them at start-up when no
            ``lookup`` is given; either way they back the customer timelines of the page.
        cutoff
            Cutoff for ``events`` (default: midnight after the last event).
        actions
            Action catalog YAML (default: the shipped one).
        currency
            Currency of revenue and CLV.
        max_batch
            Most items in one /predict_batch call.
        use_uplift
            Use the registered uplift model for next-best-action when one holds ``alias``.
        batch_threads
            LightGBM threads for calls of 64 rows or more (single rows always use one: OpenMP
            threads competing for the cores cost more than they save on small work).

        Raises
        ------
        ServiceError
            When a model, the store or the lookup table cannot be used, with the reason.
        """
        try:
            client = open_store(tracking_uri)
            champions = load_champions(client, alias=alias, project=project, names=names)
            found_uplift = load_uplift(client, alias, project) if use_uplift else None
            lifecycle = shared_lifecycle(champions)
        except StoreError as exc:
            raise ServiceError(str(exc)) from exc
        names_all = feature_columns(lifecycle)
        models: dict[Task, ServedModel] = {}
        for task, champion in champions.items():
            models[task] = ServedModel(
                task=task,
                name=champion.name,
                version=champion.version,
                run_id=champion.run_id,
                estimator=champion.estimator,
                columns=_columns(
                    champion.estimator.feature_names, names_all, champion.name, champion.version
                ),
                record=champion.record,
            )
        uplift = None
        if found_uplift is not None:
            version, estimator = found_uplift
            try:
                name = uplift_name(project)
                columns = _columns(estimator.feature_names, names_all, name, version)
                uplift = UpliftModel(name, version, estimator, columns)
            except ServiceError as exc:
                log.warning("not using the uplift model: %s", exc)
        table = None
        if lookup is not None:
            table = load_lookup(lookup, names_all)
        elif events is not None:
            table = build_lookup(events, lifecycle, cutoff=cutoff)
        return cls(
            models=models,
            lifecycle=lifecycle,
            catalog=load_catalog(actions),
            alias=alias,
            project=project,
            lookup=table,
            uplift=uplift,
            currency=currency,
            max_batch=max_batch,
            batch_threads=batch_threads,
            events_path=str(events) if events is not None else None,
        )

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> Engine:
        """Load the engine a service with ``settings`` serves (``LIFECYCLE_*`` variables)."""
        return cls.load(
            tracking_uri=settings.tracking_uri,
            alias=settings.alias,
            project=settings.project,
            names=settings.model_names,
            lookup=settings.lookup,
            events=settings.events,
            cutoff=settings.cutoff,
            actions=settings.actions,
            currency=settings.currency,
            max_batch=settings.max_batch,
            use_uplift=settings.uplift,
            batch_threads=settings.batch_threads,
        )

    # ----------------------------------------------------------------- answering

    def predict(
        self,
        requests: Sequence[PredictRequest],
        *,
        batch: bool = False,
        check: Callable[[], None] | None = None,
    ) -> list[PredictResponse]:
        """Answer prediction requests (one, or the items of a batch when ``batch``) in order.

        ``check`` is called between units of work (each item's events, each feature build,
        the scoring) and raises to stop the work (the service's :class:`~lifecycle.serving.
        guard.Work`: a timeout, a client gone).

        Raises
        ------
        RequestError
            For the first item that cannot be answered (unknown customer, bad feature row,
            bad events), naming the item and field; nothing is scored in that case. Or the
            error ``check`` raised.
        """
        if len(requests) > self.max_batch:
            raise RequestError(
                422,
                "batch_too_large",
                f"a batch holds at most {self.max_batch} items; got {len(requests)}",
                [("items", f"at most {self.max_batch} items")],
            )
        prefix = "items" if batch else ""
        check = check or _no_check
        rows = self._resolve(requests, prefix, check)
        check()
        outputs, contributions = self._score(rows)
        usable = self._eligible(rows.x)
        return [self._answer(rows, i, outputs, contributions, usable) for i in range(len(requests))]

    def warm_up(self) -> None:
        """Run one full prediction (with explanations) so the first request is not the slow one."""
        if self.lookup is not None and self.lookup.index:
            first = next(iter(self.lookup.index))
            self.predict([PredictRequest(customer_id=first)])
        else:
            row = {name: (None if name in self.nullable else 0.0) for name in self.feature_names}
            self.predict([PredictRequest(features=row)])

    def _resolve(
        self, requests: Sequence[PredictRequest], prefix: str, check: Callable[[], None]
    ) -> _Rows:
        n = len(requests)
        x = np.empty((n, len(self.feature_names)), dtype=np.float64)
        ids: list[str | None] = [None] * n
        as_of: list[datetime | None] = [None] * n
        sources = [""] * n
        pending_events: list[int] = []
        for i, req in enumerate(requests):
            where = f"{prefix}[{i}]." if prefix else ""
            if req.customer_id is not None:
                x[i], as_of[i] = self._looked_up(req.customer_id, where)
                ids[i], sources[i] = req.customer_id, "lookup"
            elif req.features is not None:
                x[i] = self._feature_row(req.features, where)
                as_of[i], sources[i] = _utc(req.as_of), "features"
            else:
                pending_events.append(i)
                sources[i] = "events"
        if pending_events:
            self._from_events(requests, pending_events, x, ids, as_of, prefix, check)
        return _Rows(x, ids, as_of, sources, list(requests))

    def _looked_up(self, customer_id: str, where: str) -> tuple[FloatArray, datetime]:
        if self.lookup is None:
            raise RequestError(
                404,
                "no_lookup_table",
                "this service has no customer lookup table; send events or features instead "
                "(start it with `lifecycle serve --events` or LIFECYCLE_LOOKUP)",
                [(f"{where}customer_id", "no lookup table loaded")],
            )
        row = self.lookup.index.get(customer_id)
        if row is None:
            raise RequestError(
                404,
                "unknown_customer",
                "this customer is not in the lookup table (the last batch scoring); send the "
                "customer's events to score a new customer",
                [(f"{where}customer_id", "unknown customer")],
            )
        return self.lookup.x[row], self.lookup.cutoff.to_pydatetime()

    def _feature_row(self, values: Mapping[str, float | None], where: str) -> FloatArray:
        problems: list[tuple[str, str]] = []
        missing = [name for name in self.feature_names if name not in values]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            problems.append((f"{where}features", f"missing {len(missing)} feature(s): {shown}"))
        for name in values:
            if name not in self._position:
                problems.append((f"{where}features.{name}", "not a feature of the models"))
        row = np.full(len(self.feature_names), np.nan)
        for name, value in values.items():
            pos = self._position.get(name)
            if pos is None:
                continue
            problem = self._check_value(name, value)
            if problem:
                problems.append((f"{where}features.{name}", problem))
            elif value is not None:
                row[pos] = value
        if problems:
            raise RequestError(
                422, "invalid_features", "the feature row does not fit the models", problems
            )
        return row

    def _check_value(self, name: str, value: float | None) -> str | None:
        if value is None:
            return None if name in self.nullable else "may not be null"
        if name in self._integer and value != int(value):
            return "must be a whole number"
        feature = self._features.get(name)
        if feature is None:
            return None
        if feature.bounds is not None and not feature.bounds[0] <= value <= feature.bounds[1]:
            return f"must be {feature.bounds[0]}-{feature.bounds[1]}"
        if feature.non_negative and value < 0:
            return "may not be negative"
        return None

    def _from_events(
        self,
        requests: Sequence[PredictRequest],
        items: list[int],
        x: FloatArray,
        ids: list[str | None],
        as_of: list[datetime | None],
        prefix: str,
        check: Callable[[], None],
    ) -> None:
        if self.lookup is None:
            where = f"{prefix}[{items[0]}]." if prefix else ""
            raise RequestError(
                404,
                "no_lookup_table",
                "scoring raw events needs the service's lookup table (it sets the RFM scale "
                "and the loyalty rule); start it with `lifecycle serve --events` or "
                "LIFECYCLE_LOOKUP, or send a feature row",
                [(f"{where}events", "no lookup table loaded")],
            )
        now = pd.Timestamp.now(tz="UTC")
        frames, cut_of = [], {}
        for i in items:
            check()
            where = f"{prefix}[{i}]." if prefix else ""
            req = requests[i]
            cut = parse_cutoff(pd.Timestamp(req.as_of)) if req.as_of is not None else now
            frame, customer = self._event_frame(req, where, cut, now)
            key = f"__item{i}"  # items never share a customer, even with the same id
            frames.append(frame.assign(customer_id=key))
            cut_of[i] = (key, cut)
            ids[i], as_of[i] = customer, cut.to_pydatetime()
        events = pd.concat(frames, ignore_index=True)
        for cut in sorted({c for _, c in cut_of.values()}):
            check()  # one feature build per distinct cutoff: the unit of work to stop between
            keys = [key for key, c in cut_of.values() if c == cut]
            subset = events[events["customer_id"].isin(keys)]
            try:
                built = build_features(
                    subset,
                    cutoffs=cut,
                    config=self.lifecycle,
                    threads=1,
                    rfm_reference=self.lookup.frame,
                ).set_index("customer_id")
            except duckdb.Error as exc:  # values the schema allows but the SQL cannot hold
                raise RequestError(
                    422,
                    "invalid_events",
                    "the events could not be turned into features",
                    [(f"{prefix}events" if prefix else "events", str(exc).splitlines()[0])],
                ) from exc
            block = built[self.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
            for i, (key, c) in cut_of.items():
                if c == cut:
                    x[i] = block[built.index.get_loc(key)]

    def _event_frame(
        self, req: PredictRequest, where: str, cut: pd.Timestamp, now: pd.Timestamp
    ) -> tuple[pd.DataFrame, str | None]:
        events = req.events or []
        named = {e.customer_id for e in events if e.customer_id is not None}
        if len(named) > 1:
            raise RequestError(
                422,
                "mixed_customers",
                "the events of one request must belong to one customer",
                [(f"{where}events", f"{len(named)} different customer_id values")],
            )
        customer = next(iter(named), None)
        raw = pd.DataFrame(
            {
                "customer_id": "customer",
                "event_ts": [_utc(e.event_ts) for e in events],
                "event_type": [e.event_type for e in events],
                "revenue": [e.revenue for e in events],
                "currency": [e.currency for e in events],
                "channel": [e.channel for e in events],
                "campaign_id": [e.campaign_id for e in events],
            }
        )
        rules = Plausibility.from_config(self.lifecycle)
        result = validate_events(
            raw, vocabulary=self.lifecycle.vocabulary, now=now, plausibility=rules
        )
        quarantine = result.quarantine
        problems = [
            (f"{where}events[{pos}]", str(reason))
            for pos, reason in zip(
                quarantine["source_row"].tolist(), quarantine["reason"].tolist(), strict=True
            )
        ]
        late = np.flatnonzero(pd.to_datetime(raw["event_ts"], utc=True) >= cut)
        problems += [
            (f"{where}events[{int(i)}].event_ts", "at or after as_of: it cannot be used")
            for i in late
            if not any(p[0].startswith(f"{where}events[{int(i)}]") for p in problems)
        ]
        if problems:
            problems.sort()
            raise RequestError(
                422, "invalid_events", "some events cannot be used; nothing was scored", problems
            )
        return result.events, customer

    def _score(self, rows: _Rows) -> tuple[dict[str, FloatArray], dict[Task, FloatArray]]:
        contributions: dict[Task, FloatArray] = {}
        threads = self.batch_threads if len(rows.requests) >= BATCH_ROWS else self.threads
        outputs = predict_outputs(self.models, rows.x, self._eligible(rows.x), threads=threads)
        if any(r.explain for r in rows.requests):
            for task, model in self.models.items():
                xm = rows.x if model.columns is None else rows.x[:, model.columns]
                contributions[task] = model.estimator.contributions_matrix(xm, threads)
        if self.uplift is not None:
            cols = self.uplift.columns
            xu = rows.x if cols is None else rows.x[:, cols]
            for offer, values in self.uplift.estimator.predict_matrix(xu).items():
                outputs[f"uplift:{offer}"] = values
        return outputs, contributions

    def _answer(
        self,
        rows: _Rows,
        i: int,
        outputs: Mapping[str, FloatArray],
        contributions: Mapping[Task, FloatArray],
        eligible_rows: Mapping[Task, npt.NDArray[np.bool_]],
    ) -> PredictResponse:
        req = rows.requests[i]
        row = rows.x[i]
        code = int(row[self._stage_col])
        usable = {task: bool(mask[i]) for task, mask in eligible_rows.items()}
        p_next = _number(outputs["next_stage_probability"][i]) if usable["next_stage"] else None
        churn = _number(outputs["churn_risk"][i]) if usable["churn"] else None
        clv = {k: float(outputs[k][i]) for k in spec("clv").outputs}
        r, f, m = (int(row[c]) for c in self._rfm_cols)
        segment = _segment_name(r, f, m, self.lifecycle.rfm.bins)
        explanations: dict[str, dict[str, Any]] = {}
        if req.explain:
            for task in TASKS:
                if usable[task]:
                    explanations[task] = self._explanation(task, contributions[task][i], row, req)
        predictions = {
            "next_stage_probability": p_next,
            "churn_risk": churn,
            "clv": clv["clv"],
        }
        uplift = {
            key.split(":", 1)[1]: float(v[i]) for key, v in outputs.items() if key[:7] == "uplift:"
        }
        top_drivers: dict[str, str] = {
            outcome: text
            for outcome, (task, direction) in REASON_DRIVER.items()
            if task in explanations
            and (text := reason_driver(explanations[task]["drivers"], direction))
        }
        action = recommend(
            self.catalog,
            stage=STAGES[code],
            segment=segment,
            predictions=predictions,
            uplift=uplift or None,
            lang=req.lang,
            top_drivers=top_drivers,
        ).as_dict()
        return PredictResponse.model_validate(
            {
                "customer_id": rows.customer_ids[i],
                "as_of": rows.as_of[i],
                "source": rows.sources[i],
                "stage": STAGES[code],
                "next_stage": STAGES[code + 1] if code + 1 < len(STAGES) else None,
                "next_stage_probability": p_next,
                "churn_risk": churn,
                "clv": {
                    "expected": clv["clv"],
                    "p10": clv["clv_p10"],
                    "p90": clv["clv_p90"],
                    "median": _number(clv["clv_median"]),
                    "expected_transactions": _number(clv["expected_transactions"]),
                    "p_no_purchase": _number(clv["p_no_purchase"]),
                    "currency": self.currency,
                    "horizon_days": self.horizon("clv"),
                },
                "segment": {"r": r, "f": f, "m": m, "name": segment},
                "horizons_days": {task: self.horizon(task) for task in TASKS},
                "next_best_action": action,
                "explanations": explanations,
                "model_versions": self.versions,
            }
        )

    def _explanation(
        self, task: Task, contrib: FloatArray, row: FloatArray, req: PredictRequest
    ) -> dict[str, Any]:
        model = self.models[task]
        names = model.estimator.feature_names
        values = row if model.columns is None else row[model.columns]
        stage = STAGES[int(row[self._stage_col])]
        calibrate = getattr(model.estimator, "calibrate", None)  # classifiers only
        out = explain(
            task,
            contrib,
            names,
            values,
            typical=self.typical,
            top_k=req.top_k,
            lang=req.lang,
            currency=self.currency,
            config=self.lifecycle,
            stage=stage,
            stage_typical=self.typical_by_stage.get(stage),
            probability=calibrate if spec(task).scale == "log_odds" else None,
        )
        out["raw_output"] = float(contrib.sum())
        out["scale"] = spec(task).scale
        return out

    def recent_events(self, customer_id: str, limit: int = 15) -> list[dict[str, Any]]:
        """Return the customer's latest events before the lookup cutoff, newest first."""
        from lifecycle.features.build import event_files

        if self.events_path is None or self.lookup is None:
            return []
        files = [str(f) for f in event_files(Path(self.events_path))]
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            rows = con.execute(
                "SELECT CAST(event_ts AS TIMESTAMP), event_type, revenue, channel "
                "FROM read_parquet(?) WHERE customer_id = ? AND event_ts < ? "
                "ORDER BY event_ts DESC LIMIT ?",
                [files, customer_id, self.lookup.cutoff.to_pydatetime(), limit],
            ).fetchall()
        finally:
            con.close()
        keys = ("event_ts", "event_type", "revenue", "channel")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def explanation(self, task: Task, customer_ids: Sequence[str]) -> Any:
        """Tree SHAP of lookup customers for one model, as a :class:`shap.Explanation`.

        The values ``/predict`` explains with, for shap's plots:
        ``shap.plots.waterfall(engine.explanation("churn", [cid])[0])`` or
        ``shap.plots.beeswarm(engine.explanation("churn", ids))``. They explain the model's raw
        output before calibration (log-odds; the log of the value for CLV), as ``/predict``'s
        ``base_value`` and ``raw_output`` do; the probability is that output calibrated.

        Raises
        ------
        RequestError
            404 for a customer who is not in the lookup table; 422 for one the task does not
            apply to (churn for a customer who never bought; next stage at the last stage).
        """
        from lifecycle.models.lgbm import shap_explanation

        model = self.models[task]
        names = model.estimator.feature_names
        rows = [
            self._looked_up(str(c), f"customer_ids[{i}].")[0] for i, c in enumerate(customer_ids)
        ]
        x = np.vstack(rows) if rows else np.empty((0, len(self.feature_names)))
        problems = [
            (f"customer_ids[{i}]", f"{task} does not apply to {customer_ids[i]}")
            for i in np.flatnonzero(~self._eligible(x)[task]).tolist()
        ]
        if problems:
            raise RequestError(
                422, "not_applicable", f"the {task} model does not score these customers", problems
            )
        xm = x if model.columns is None else x[:, model.columns]
        contrib = (
            model.estimator.contributions_matrix(xm, self.batch_threads)
            if len(xm)
            else np.empty((0, len(names) + 1))
        )
        return shap_explanation(contrib, pd.DataFrame(xm, columns=names))

    def _eligible(self, x: FloatArray) -> dict[Task, npt.NDArray[np.bool_]]:
        """Which rows of a feature matrix each model scores (the rule training used)."""
        return eligibility(x, self.feature_names, TASKS)

    # ----------------------------------------------------------------- describing

    def horizon(self, task: Task) -> int:
        """Horizon in days the task's model was trained for."""
        return self.models[task].record.horizon_days

    def model_info(self) -> ModelInfo:
        """Describe the served models, features, lookup table and limits."""
        lookup: dict[str, str | int | None] = {"source": None, "cutoff": None, "customers": 0}
        if self.lookup is not None:
            lookup = {
                "source": self.lookup.source,
                "cutoff": self.lookup.cutoff.isoformat(),
                "customers": len(self.lookup.index),
                "scored_with": json.dumps(self.lookup.scored_with, sort_keys=True),
            }
        return ModelInfo.model_validate(
            {
                "alias": self.alias,
                "models": {
                    task: {
                        "name": m.name,
                        "version": m.version,
                        "run_id": m.run_id,
                        **m.record.info(),
                    }
                    for task, m in self.models.items()
                },
                "feature_names": self.feature_names,
                "nullable_features": sorted(self.nullable),
                "event_types": list(self.lifecycle.vocabulary),
                "lookup": lookup,
                "max_batch": self.max_batch,
                "uplift": (
                    {"name": self.uplift.name, "version": self.uplift.version}
                    if self.uplift is not None
                    else None
                ),
                "currency": self.currency,
                "reload": self.reload_status() if self.reload_status is not None else None,
            }
        )


# --------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=4096)
def _segment_name(r: int, f: int, m: int, bins: int) -> str:
    return str(rfm_segment(np.array([r]), np.array([f]), np.array([m]), bins)[0])


def _no_check() -> None:
    """Never stop (a prediction made outside a request: warm-up, the page)."""


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _columns(
    model_features: Sequence[str], all_features: Sequence[str], name: str, version: str
) -> npt.NDArray[np.intp] | None:
    try:
        return feature_positions(model_features, all_features)
    except KeyError as exc:
        raise ServiceError(
            f"{name} v{version} uses features its lifecycle config does not define: {exc.args[0]}"
        ) from exc


def nullable_features(config: LifecycleConfig) -> frozenset[str]:
    """Features that can be missing: those missing for a visitor or a one-time buyer.

    Derived from the feature definitions themselves (two tiny customers built at a cutoff),
    so a new definition never needs a list updated here.
    """
    ts = pd.Timestamp("2024-01-01", tz="UTC")
    probe = pd.DataFrame(
        {
            "customer_id": ["visitor", "buyer", "buyer"],
            "event_ts": [ts, ts, ts + pd.Timedelta(days=1)],
            "event_type": [config.vocabulary[0], config.vocabulary[0], _purchase_type(config)],
            "revenue": [None, None, 10.0],
            "currency": None,
            "channel": None,
            "campaign_id": None,
        }
    )
    built = build_features(probe, cutoffs=ts + pd.Timedelta(days=2), config=config, threads=1)
    names = feature_columns(config)
    return frozenset(name for name in names if built[name].isna().any())


def _purchase_type(config: LifecycleConfig) -> str:
    events = config.stages.purchase_events
    return events[0] if events else config.vocabulary[-1]


def load_lookup(path: str | Path, feature_names: Sequence[str]) -> Lookup:
    """Load the Parquet of ``lifecycle score`` as the lookup table.

    Raises
    ------
    ServiceError
        When the file is missing, lacks features the models use, or holds several cutoffs.
    """
    path = Path(path)
    if not path.exists():
        raise ServiceError(
            f"lookup table {path} does not exist; write it with `lifecycle score --out {path}`"
        )
    frame = pd.read_parquet(path)
    return _lookup_from_frame(frame, feature_names, str(path))


def build_lookup(
    events: str | Path | pd.DataFrame, config: LifecycleConfig, *, cutoff: str | None = None
) -> Lookup:
    """Build the lookup table from canonical events (features at ``cutoff``).

    Each row also gets its segment's observed churn over the window before ``cutoff``, as
    ``lifecycle score`` writes it (:data:`~lifecycle.features.rfm.OBSERVED_CHURN_COLUMN`).
    """
    from lifecycle.features.build import event_time_range

    if cutoff is None:
        last = event_time_range(events)[1]
        cut = (last + pd.Timedelta(days=1)).normalize()
    else:
        cut = parse_cutoff(cutoff)
    frame = build_features(events, cutoffs=cut, config=config)
    rates = segment_churn_rates(
        events, cutoff=cut, horizon_days=OBSERVED_CHURN_DAYS, config=config
    ).set_index("segment")["churn_rate"]
    frame[OBSERVED_CHURN_COLUMN] = frame["rfm_segment"].map(rates).astype("float64")
    source = str(events) if not isinstance(events, pd.DataFrame) else "events in memory"
    return _lookup_from_frame(frame, feature_columns(config), source)


def _lookup_from_frame(frame: pd.DataFrame, feature_names: Sequence[str], source: str) -> Lookup:
    missing = [c for c in ("customer_id", "cutoff", *feature_names) if c not in frame.columns]
    if missing:
        raise ServiceError(
            f"lookup table {source} lacks {len(missing)} column(s) the models need "
            f"({', '.join(missing[:5])}); rewrite it with `lifecycle score`"
        )
    cutoffs = frame["cutoff"].unique()
    if len(cutoffs) != 1:
        raise ServiceError(f"lookup table {source} holds {len(cutoffs)} cutoffs; it needs one")
    if frame["customer_id"].duplicated().any():
        raise ServiceError(f"lookup table {source} lists a customer twice")
    ids = frame["customer_id"].astype(str).tolist()
    scored = {}
    if "model_versions" in frame.columns and len(frame):
        scored = json.loads(str(frame["model_versions"].iloc[0]))
    return Lookup(
        source=source,
        cutoff=parse_cutoff(cutoffs[0]),
        index={cid: i for i, cid in enumerate(ids)},
        x=frame[list(feature_names)].to_numpy(dtype=np.float64, na_value=np.nan),
        frame=frame.reset_index(drop=True),
        scored_with=scored,
    )
