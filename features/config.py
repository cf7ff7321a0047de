"""Typed lifecycle configuration (vocabulary, stage rules, feature settings), loaded from YAML.

Nothing here reads the environment or touches the disk on import; callers load a config and
pass it down explicitly.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lifecycle.features.schema import DEFAULT_CHANNELS, DEFAULT_VOCABULARY

T = TypeVar("T", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StickyStages(_Strict):
    """What leaving a stage means: how long loyalty reached by the top RFM tier is kept.

    The event-based stages never go down (they count events). Loyalty through the top RFM tier
    is checked at each cutoff and at the start of every month (UTC) before it; a customer the
    tier found at a check stays loyal ``loyalty_days`` after that check (None: for ever, 0: only
    while in the tier at the cutoff itself). See docs/architecture.md, "Sticky loyalty".
    """

    loyalty_days: int | None = Field(None, ge=0)


class StageRules(_Strict):
    """Which events move a customer up the lifecycle (see DESIGN.md)."""

    signup_events: tuple[str, ...] = ("signup",)
    purchase_events: tuple[str, ...] = ("purchase",)
    retention_min_purchases: int = Field(2, ge=2)
    loyalty_events: tuple[str, ...] = ("referral", "loyalty_join", "review")
    loyalty_top_rfm_tier: Literal["auto", "always", "never"] = "auto"
    top_rfm_segments: tuple[str, ...] = ("Champions",)
    sticky: StickyStages = StickyStages()
    active_days: int = Field(90, gt=0)


class FeatureSettings(_Strict):
    """Windows, fixed category lists and event roles that shape the feature columns."""

    windows_days: tuple[int, ...] = (7, 30, 90, 365)
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    refund_events: tuple[str, ...] = ("refund",)
    exposure_events: tuple[str, ...] = ("campaign_exposure",)
    redemption_events: tuple[str, ...] = ("offer_redemption",)
    """Responses to a campaign (a coupon or offer redeemed), counted apart from purchases."""

    @field_validator("windows_days")
    @classmethod
    def _positive_sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w <= 0 for w in value):
            raise ValueError("windows_days must be a non-empty list of positive day counts")
        return tuple(sorted(set(value)))


class RfmSettings(_Strict):
    """RFM scoring: number of quantile bins (5 gives the usual 1-5 scores) and what R measures.

    ``recency``: ``absolute`` scores R on the days since the last purchase; ``rhythm`` on those
    days divided by the customer's own mean gap between purchases (one-time buyers: the typical
    gap of the population scored against), see :func:`lifecycle.features.rfm.recency_values`.
    """

    bins: int = Field(5, ge=2, le=10)
    recency: Literal["absolute", "rhythm"] = "absolute"


class ValidationRules(_Strict):
    """What ``validate`` (and the API) accept as a plausible event, beyond value types.

    ``earliest_event``: events before this date (UTC) are quarantined. ``revenue_events``: the
    event types that may carry non-zero revenue; None means the purchase events plus the refund
    events. Negative revenue is only accepted on ``features.refund_events``.
    """

    earliest_event: date = date(1970, 1, 1)
    revenue_events: tuple[str, ...] | None = None


class LifecycleConfig(_Strict):
    """Everything that defines a business's lifecycle, in one object passed down explicitly."""

    vocabulary: tuple[str, ...] = DEFAULT_VOCABULARY
    stages: StageRules = StageRules()
    features: FeatureSettings = FeatureSettings()
    rfm: RfmSettings = RfmSettings()
    validation: ValidationRules = ValidationRules()

    @field_validator("vocabulary")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("vocabulary lists an event type twice")
        return value


def load_yaml(path: str | Path, model: type[T]) -> T:
    """Load a YAML file into a pydantic model, naming the file in any error.

    Parameters
    ----------
    path
        YAML file.
    model
        The pydantic model class to validate against.

    Returns
    -------
    BaseModel
        An instance of ``model``.

    Raises
    ------
    ValueError
        When the file is not valid YAML or does not match the model.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def default_config_path() -> Path:
    """Return the path of the shipped default ``lifecycle.yaml``."""
    return Path(str(resources.files("lifecycle.features") / "defaults" / "lifecycle.yaml"))


def load_config(path: str | Path | None = None) -> LifecycleConfig:
    """Load a lifecycle config from YAML, or the shipped default when ``path`` is None.

    Examples
    --------
    >>> load_config().stages.retention_min_purchases
    2
    """
    return load_yaml(path or default_config_path(), LifecycleConfig)
