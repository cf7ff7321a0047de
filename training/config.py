"""Typed training configuration (horizons, cutoffs, protocol, tuning), loaded from YAML.

Every field has a default that suits the simulator, so ``lifecycle train`` runs without a
config file; ``training/defaults/training.yaml`` documents each field. Nothing here touches the
environment or the disk on import.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lifecycle.features.config import LifecycleConfig, load_config
from lifecycle.models.tasks import TASKS, Task, spec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Horizons(_Strict):
    """Label windows ``[T, T + H)`` in days, one per prediction."""

    next_stage_days: int = Field(30, gt=0)
    churn_days: int = Field(90, gt=0)
    clv_days: int = Field(365, gt=0)

    def of(self, task: Task) -> int:
        """Return the horizon of one task in days (the field its :class:`TaskSpec` names).

        Raises
        ------
        ValueError
            For a name that is not a task.
        """
        return int(getattr(self, spec(task).horizon_field))


_missing_horizons = [t for t in TASKS if spec(t).horizon_field not in Horizons.model_fields]
if _missing_horizons:  # a new task must bring its horizon; fail at import, not mid-training
    raise TypeError(f"Horizons has no field for task(s) {', '.join(_missing_horizons)}")


class CutoffSettings(_Strict):
    """Which cutoffs to build training rows at.

    ``every_days`` None means the first of every calendar month; a number means a fixed step
    from ``start`` (default: the first event's midnight). ``observed_until`` is the exclusive
    end of the data (default: midnight after the last event); a label window must end by it.
    """

    every_days: int | None = Field(None, gt=0)
    start: str | None = None
    observed_until: str | None = None


class TuningSettings(_Strict):
    """Optuna: TPE with a seed, median pruning on the validation cutoff, a trial count and budget.

    ``storage`` None keeps the study in memory; any Optuna storage URL (``sqlite:///...``,
    ``postgresql://...``) lets several workers share one study named ``study_name``.
    """

    trials: int = Field(20, ge=0)
    timeout_seconds: float | None = Field(None, gt=0)
    max_rows: int | None = Field(None, gt=0)
    """Tune on a seeded random sample of at most this many training rows; the chosen
    parameters are then fit on all of them. None tunes on every row."""
    storage: str | None = None
    study_name: str | None = None
    pruning: bool = True


class TrainingConfig(_Strict):
    """Everything ``lifecycle train`` needs besides the events."""

    lifecycle: LifecycleConfig = LifecycleConfig()
    tasks: tuple[Task, ...] = TASKS
    horizons: Horizons = Horizons()
    cutoffs: CutoffSettings = CutoffSettings()
    learner: Literal["hybrid", "lightgbm"] = "hybrid"
    """``hybrid``: boosting that starts from a BTYD model fitted at each cutoff, and CLV as a
    distribution (:mod:`lifecycle.models.hybrid`); ``lightgbm``: boosting on the features alone
    (CLV from quantile boosters). A log without enough repeat buyers for a BTYD model trains
    ``lightgbm`` and says so."""
    protocol: Literal["time", "customer"] = "time"
    report_customer_split: bool = True
    max_train_cutoffs: int = Field(12, gt=0)
    churn_events: tuple[str, ...] | None = None
    calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto"
    clv_coverage: float = Field(0.8, gt=0, lt=1)
    baselines: tuple[Literal["rfm", "last_period", "bgnbd"], ...] = ("rfm", "last_period", "bgnbd")
    shap_sample: int = Field(2000, gt=0)
    seed: int = Field(42, ge=0)
    threads: int = Field(1, gt=0)
    tuning: TuningSettings = TuningSettings()

    @model_validator(mode="after")
    def _known_tasks(self) -> TrainingConfig:
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks must list next_stage, churn and/or clv, each once")
        return self

    def qualifying_events(self) -> tuple[str, ...]:
        """Event types that count as activity for churn (default: the purchase events)."""
        return self.churn_events or self.lifecycle.stages.purchase_events


def default_training_path() -> Path:
    """Return the path of the shipped, commented ``training.yaml``."""
    return Path(str(resources.files("lifecycle.training") / "defaults" / "training.yaml"))


def load_training_config(path: str | Path | None = None) -> TrainingConfig:
    """Load a training YAML; its ``lifecycle`` key may hold the config or a path to one.

    Parameters
    ----------
    path
        YAML file; None gives the defaults.

    Returns
    -------
    TrainingConfig
        The validated config.

    Raises
    ------
    ValueError
        When the file is not valid YAML or a field is wrong (the message names the file).
    """
    if path is None:
        return TrainingConfig()
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(raw, dict) and isinstance(raw.get("lifecycle"), str):
        target = Path(raw["lifecycle"])
        if not target.is_absolute():
            target = Path(path).parent / target
        raw["lifecycle"] = load_config(target).model_dump()
    try:
        return TrainingConfig.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
