"""Learn each campaign offer's uplift from randomised campaigns, log it and register it.

:func:`learn_uplift` fits :class:`lifecycle.models.uplift.TwoModelUplift` on the sends with a
complete
outcome window, logs an MLflow run (per-offer arm sizes, observed effect, held-out Qini) and
registers the model as ``lifecycle-uplift``. When the project has champion models, the run
also holds the offline evaluation of a budgeted plan (10% of each send's customers) against
the heuristics (:func:`log_policy_evaluation`, :mod:`lifecycle.models.policy`). The prediction
service uses the version holding ``champion`` for next-best-action instead of the catalog's
assumed effects, and says so in each answer. ``lifecycle uplift`` is this function with options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from lifecycle.features.build import EventSource


@dataclass(frozen=True)
class UpliftResult:
    """What :func:`learn_uplift` logged and registered.

    Attributes
    ----------
    run_id
        The MLflow run.
    name, version
        The registered model version.
    champion
        Whether the version was given the alias ``champion``.
    rows
        Targeted customers (sends) learnt from.
    sends
        Campaign sends (distinct send times) learnt from.
    offers
        Per offer: arm sizes, observed effect, mean predicted uplift, held-out Qini, and
        whether per-customer estimates are used
        (:meth:`lifecycle.models.uplift.TwoModelUplift.summary`).
    """

    run_id: str
    name: str
    version: str
    champion: bool
    rows: int
    sends: int
    offers: dict[str, dict[str, Any]]
    policy_evaluation: dict[str, Any] | None = None
    """The offline evaluation of the budgeted plan logged with the run
    (:meth:`lifecycle.models.policy.Evaluation.as_dict`); None when it was skipped."""

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-able data, as ``lifecycle uplift --json`` prints it."""
        return {
            "run_id": self.run_id,
            "registered": {"name": self.name, "version": self.version},
            "champion": self.champion,
            "rows": self.rows,
            "sends": self.sends,
            "offers": self.offers,
            "policy_evaluation": self.policy_evaluation,
        }


POLICY_SHARE = 0.1
"""Share of each send's customers the plan logged with the uplift run contacts."""


def log_policy_evaluation(
    frame: pd.DataFrame,
    feature_names: list[str],
    *,
    client: Any,
    project: str,
    share: float = POLICY_SHARE,
    campaigns: pd.DataFrame | None = None,
    truth: pd.DataFrame | None = None,
) -> dict[str, Any] | None:
    """Evaluate the budgeted plan offline on the campaign frame and log it in the active run.

    Needs the project's champion models (the plan ranks customers by their predictions at each
    send); without them the evaluation is skipped and the run's tag
    ``policy_evaluation`` says why. Metrics ``policy.<policy>.<estimator>_<unit>`` (per
    targeted customer), the table as ``policy_evaluation.csv`` and the whole evaluation as
    ``policy_evaluation.json``. With ``truth`` (the simulator's truth table) and the
    campaigns' ``true_uplift``, the oracle and the true values too.

    Returns
    -------
    dict or None
        :meth:`lifecycle.models.policy.Evaluation.as_dict`, or None when skipped.
    """
    import mlflow

    from lifecycle.models.nba import load_catalog
    from lifecycle.models.policy import attach_true_uplift, campaign_history, offline_evaluation
    from lifecycle.models.scoring import place
    from lifecycle.models.store import StoreError, load_champions

    try:
        champions = load_champions(client, project=project)
    except StoreError as exc:
        mlflow.set_tag("policy_evaluation", f"skipped: {exc}")
        return None
    models = place({task: m.estimator for task, m in champions.items()}, feature_names)
    history = campaign_history(frame, models, feature_names)
    if truth is not None:
        if campaigns is None:
            raise ValueError("the true values need the campaigns (their true_uplift column)")
        history = attach_true_uplift(history, campaigns)
    evaluation = offline_evaluation(
        history,
        load_catalog(),
        feature_names,
        share=share,
        truth=truth,
        num_boost_round=100,  # the evaluation's cross-fitting, kept fast
    )
    mlflow.log_param("policy_share", share)
    mlflow.log_metrics(  # one batch: a call per metric costs a store round trip each
        {
            f"policy.{row['policy']}.{key}": value
            for row in evaluation.table.to_dict(orient="records")
            for key, value in row.items()
            if key not in ("policy", "contacts") and isinstance(value, float) and value == value
        }
    )
    mlflow.log_text(evaluation.table.to_csv(index=False), "policy_evaluation.csv")
    result = evaluation.as_dict()
    mlflow.log_dict(result, "policy_evaluation.json")
    mlflow.set_tag("policy_evaluation", "logged")
    return result


def learn_uplift(
    events: EventSource,
    campaigns: pd.DataFrame | str | Path,
    *,
    window_days: int = 30,
    max_campaigns: int = 12,
    promote: bool = True,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    project: str = "lifecycle",
    dataset: str | None = None,
    truth: pd.DataFrame | str | Path | None = None,
    evaluate_policy: bool = True,
) -> UpliftResult:
    """Learn per-offer uplift (two-model learner) from campaigns with a control group.

    Features are built with the lifecycle config the project's champion models were trained
    with (the default config when there is none), so they match the served models' features.
    Per-customer estimates are calibrated on held-out customers and stored with the model
    (:meth:`lifecycle.models.uplift.TwoModelUplift.predict_matrix`): shrunk toward the offer's
    observed average effect (treated minus control purchase rate) by how much signal they
    showed, all the way to the average when they showed none. Serving, ``lifecycle plan`` and
    the logged policy evaluation all use the calibrated estimates.

    Parameters
    ----------
    events
        Canonical events: Parquet from ``lifecycle simulate`` or ``lifecycle validate``, or
        a frame.
    campaigns
        Randomised campaign assignments, a frame or the simulator's ``campaigns.parquet``:
        ``customer_id``, ``campaign_id``, ``offer``, ``sent_ts``, ``group``
        (treatment/control).
    window_days
        Days after a send in which a purchase counts.
    max_campaigns
        Latest sends to learn from (those with complete windows).
    promote
        Give the new version the alias ``champion`` (the service uses it).
    tracking_uri
        MLflow store; default ``MLFLOW_TRACKING_URI``, else ``./mlflow.db``.
    experiment
        MLflow experiment of the run; default: the project's name.
    project
        Project whose uplift model (``<project>-uplift``) is registered.
    dataset
        Name of the data set, recorded with the run and the version; default: the events
        file's (:func:`lifecycle.training.tracking.default_dataset`).
    truth
        The simulator's ``truth.parquet`` (frame or path): the logged policy evaluation then
        adds the oracle and the true values (needs the campaigns' ``true_uplift``).
    evaluate_policy
        Evaluate the budgeted plan offline and log it in the run
        (:func:`log_policy_evaluation`; skipped without champion models).

    Returns
    -------
    UpliftResult
        The run, the registered version and the per-offer summary.

    Raises
    ------
    ValueError
        When the campaigns cannot be learnt from: a missing column, an unknown group, no
        send with a complete outcome window, no events.

    Examples
    --------
    >>> result = learn_uplift("data/sim/events.parquet", "data/sim/campaigns.parquet",
    ...                       tracking_uri="sqlite:///mlflow.db")  # doctest: +SKIP
    >>> result.offers["discount"]["qini"]  # doctest: +SKIP
    """
    import mlflow

    from lifecycle.features.build import feature_columns, read_event_log
    from lifecycle.features.config import LifecycleConfig
    from lifecycle.models.store import (
        CHAMPION,
        Lineage,
        champion_lifecycle,
        connect,
        feature_config_id,
        uplift_name,
    )
    from lifecycle.models.uplift import TwoModelUplift, campaign_frame
    from lifecycle.training import tracking
    from lifecycle.training.pipeline import fingerprint
    from lifecycle.training.report import render_uplift_card

    name = uplift_name(project)  # a bad project name fails before any work
    client = connect(tracking_uri)
    log = read_event_log(events)  # read once: hashed for the run, then used in memory
    # Features for the uplift model are built exactly as the served models' features are.
    config = champion_lifecycle(client, project=project) or LifecycleConfig()
    frame = campaign_frame(
        log.events, campaigns, config=config, window_days=window_days, max_campaigns=max_campaigns
    )
    model = TwoModelUplift(feature_columns(config)).fit(frame)
    summary = model.summary()
    lineage = Lineage(
        project=project,
        dataset=dataset or tracking.default_dataset(events),
        feature_config=feature_config_id(config),
        data_fingerprint=log.digest,
    )
    data = fingerprint(log)
    run_name = tracking.run_name("uplift", lineage.dataset, f"{window_days}d")
    with mlflow.start_run(
        experiment_id=tracking.experiment_id(client, experiment or project), run_name=run_name
    ) as run:
        tracking.log_lineage(lineage)
        tracking.log_event_log_input(data, dataset=lineage.dataset)
        mlflow.log_params(
            {"window_days": window_days, "max_campaigns": max_campaigns, "rows": len(frame)}
        )
        for offer, entry in summary.items():
            for key in (
                "observed_ate",
                "mean_predicted_uplift",
                "qini",
                "relative_lift",
                "calibration_slope",
            ):
                if isinstance(entry.get(key), float):
                    mlflow.log_metric(f"{offer}.{key}", entry[key])
        mlflow.log_dict(summary, "uplift_summary.json")
        example = frame.head(5)[model.feature_names]
        version = tracking.log_estimator(
            model,  # type: ignore[arg-type]  # any estimator with predict_frame
            task="uplift",
            registered_name=name,
            input_example=example,
            tags={"window_days": str(window_days)},
            lineage=lineage,
        )
        card = render_uplift_card(
            {
                "name": name,
                "version": str(version.version),
                "run_id": run.info.run_id,
                "run_name": run_name,
                "project": project,
                "dataset": lineage.dataset,
                "fingerprint": log.digest,
                "window_days": window_days,
                "max_campaigns": max_campaigns,
                "rows": len(frame),
                "sends": int(frame["cutoff"].nunique()),
                "offers": summary,
            }
        )
        mlflow.log_text(card, "model_card.md")
        evaluation = None
        if evaluate_policy:
            evaluation = log_policy_evaluation(
                frame,
                model.feature_names,
                client=client,
                project=project,
                campaigns=_table(campaigns),
                truth=None if truth is None else _table(truth),
            )
        client.update_model_version(name, version.version, description=card)
        if promote:
            client.set_registered_model_alias(name, CHAMPION, version.version)
    return UpliftResult(
        run_id=run.info.run_id,
        name=name,
        version=str(version.version),
        champion=promote,
        rows=len(frame),
        sends=int(frame["cutoff"].nunique()),
        offers=summary,
        policy_evaluation=evaluation,
    )


def _table(source: pd.DataFrame | str | Path) -> pd.DataFrame:
    import pandas as pd

    return source if isinstance(source, pd.DataFrame) else pd.read_parquet(source)
