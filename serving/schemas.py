"""Request and response models of the prediction API (pydantic; published in the OpenAPI).

Requests are strict: unknown fields, wrong JSON types (a string for a number, a number for a
flag), NaN and infinities are refused, and every refusal names the field. Responses are plain
models whose list fields default to empty lists (never ``null``), which typed clients rely on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

Lang = Literal["en", "ko"]
Source = Literal["lookup", "events", "features"]

MAX_ID_LENGTH = 200
MAX_EVENTS = 10_000
MAX_REVENUE = 1e9  # features sum revenue in millionths as 64-bit integers
ID_PATTERN = r"^[^\x00-\x1f\x7f]*$"
"""Ids hold no ASCII control character (NUL, tab, newline, DEL): ``validate`` quarantines them."""


def _iso_text(value: Any) -> Any:
    # Lax datetime parsing would read a number as seconds since 1970: only text is a time.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date or time string")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class EventIn(_Strict):
    """One raw event of the customer, in the canonical event shape."""

    customer_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="Optional; when given, every event must name the same customer.",
    )
    event_ts: IsoTime = Field(
        strict=False,
        description="ISO 8601 time or date; a time without a zone is read as UTC.",
    )
    event_type: str = Field(
        min_length=1,
        max_length=100,
        description="One of the event types of the lifecycle config the models were trained with.",
    )
    revenue: float | None = Field(
        None,
        ge=-MAX_REVENUE,
        le=MAX_REVENUE,
        description="Amount of a purchase or refund.",
    )
    currency: str | None = Field(None, max_length=10)
    channel: str | None = Field(None, max_length=100)
    campaign_id: str | None = Field(None, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)


_ONE_INPUT: dict[str, Any] = {
    # The rule of _exactly_one_input, published: exactly one of the three inputs is not null,
    # and as_of only with events or features.
    "oneOf": [
        {
            "title": "by customer_id",
            "required": ["customer_id"],
            "properties": {"customer_id": {"type": "string"}, "as_of": {"type": "null"}},
        },
        {"title": "by events", "required": ["events"], "properties": {"events": {"type": "array"}}},
        {
            "title": "by features",
            "required": ["features"],
            "properties": {"features": {"type": "object"}},
        },
    ]
}


class PredictRequest(_Strict):
    """Score one customer, given exactly one of ``customer_id``, ``events`` or ``features``."""

    model_config = ConfigDict(json_schema_extra=_ONE_INPUT)

    customer_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="A customer of the lookup table (the last batch scoring).",
        examples=["C0000001"],
    )
    events: list[EventIn] | None = Field(
        None,
        min_length=1,
        max_length=MAX_EVENTS,
        description="The raw events of a customer the service has not seen; features are "
        "computed on the spot with the same definitions as training.",
    )
    features: dict[str, float | None] | None = Field(
        None,
        description="A ready feature row: every model feature by name (see model_info); "
        "null only where a feature can be missing (e.g. days since the last purchase of "
        "a customer who never bought).",
    )
    as_of: IsoTime | None = Field(
        None,
        strict=False,
        description="For events and features: the time the prediction is for (default: "
        "now for events; the response's as_of is null for features without it). Events "
        "must be before it.",
    )
    explain: bool = Field(True, description="Add the top drivers of each prediction.")
    top_k: int = Field(5, ge=1, le=20, description="Drivers per prediction.")
    lang: Lang = Field("en", description="Language of the sentences and action names.")

    @model_validator(mode="after")
    def _exactly_one_input(self) -> PredictRequest:
        given = [k for k in ("customer_id", "events", "features") if getattr(self, k) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"give exactly one of customer_id, events or features (found: {found})"
            )
        if self.as_of is not None and self.customer_id is not None:
            raise ValueError(
                "as_of applies to events and features; a looked-up customer is scored "
                "as of the lookup table's cutoff"
            )
        return self


class BatchRequest(_Strict):
    """Several predictions in one call; each item has the shape of a /predict request."""

    items: list[PredictRequest] = Field(
        min_length=1, description="At most the configured batch limit (model_info)."
    )


class Driver(BaseModel):
    """One feature's push on a prediction (a SHAP value) and a sentence saying so."""

    feature: str
    value: float | None = Field(description="The customer's value (null: missing).")
    contribution: float = Field(
        description="SHAP value on the model's raw scale (log-odds for next_stage and churn, "
        "log of the value for clv): base_value plus every contribution is raw_output. Use "
        "points for what a marketer reads."
    )
    points: float | None = Field(
        None,
        description="next_stage and churn: the push in percentage points of the reported "
        "probability (6.0: six points more). The gap between the probability and "
        "base_probability is shared among the features in proportion to their contributions, "
        "so the points of all features add up to it. Null for clv.",
    )
    direction: Literal["up", "down"]
    typical: float | None = Field(
        None,
        description="The value the sentence compares with: the median among customers of the "
        "same stage, else of everyone (null: none).",
    )
    as_typical: bool = Field(
        False,
        description="The value reads the same as the typical one: the sentence claims no push.",
    )
    lever: bool = Field(
        True,
        description="False for a feature that records a marketing action (campaign offers "
        "received): its association with the prediction is not an effect, and no action's "
        "reason cites it.",
    )
    text: str


class Explanation(BaseModel):
    """Tree SHAP of one prediction: base value plus contributions equals the raw output."""

    base_value: float
    base_probability: float | None = Field(
        None,
        description="next_stage and churn: the probability reported at the base value (the "
        "model's average raw output); the drivers' points are shares of the gap from it. Null "
        "for clv.",
    )
    drivers: list[Driver] = Field(default_factory=list)
    raw_output: float = Field(description="Base value plus every feature's contribution.")
    scale: Literal["log_odds", "log_value"]


class Clv(BaseModel):
    """Revenue over the CLV horizon: its mean and P10-P90 interval, and the purchases in it."""

    expected: float
    p10: float
    p90: float
    median: float | None = Field(
        None, description="Median revenue over the horizon (null for a model without one)."
    )
    expected_transactions: float | None = Field(
        None,
        description=(
            "Expected number of days with a purchase over the horizon (same-day purchases "
            "count once; null for a model that does not predict them)."
        ),
    )
    p_no_purchase: float | None = Field(
        None,
        description="Probability of no purchase over the horizon (null when not predicted).",
    )
    currency: str
    horizon_days: int


class Segment(BaseModel):
    """RFM scores (1-5; 0 = no purchase yet) and the named segment."""

    r: int
    f: int
    m: int
    name: str


class Alternative(BaseModel):
    """A runner-up action."""

    action: str
    name: str
    expected_value: float
    effect_source: Literal["assumed", "estimated"]


class NextBestAction(BaseModel):
    """The action with the highest expected value, why, and the next two."""

    action: str
    name: str
    expected_value: float
    effect: float
    effect_source: Literal["assumed", "estimated"] = Field(
        description="assumed: the catalog's effect; estimated: uplift learnt from campaigns "
        "with a control group."
    )
    outcome: str
    reason: str
    alternatives: list[Alternative] = Field(default_factory=list)


class PredictResponse(BaseModel):
    """Everything the service predicts for one customer, and which models said it."""

    customer_id: str | None
    as_of: datetime | None
    source: Source
    stage: str
    next_stage: str | None
    next_stage_probability: float | None = Field(
        description="Probability of reaching the next stage within its horizon; null at "
        "the last stage."
    )
    churn_risk: float | None = Field(
        description="Probability of no purchase within the churn horizon; null for a "
        "customer who never bought."
    )
    clv: Clv
    segment: Segment
    horizons_days: dict[str, int]
    next_best_action: NextBestAction
    explanations: dict[str, Explanation] = Field(
        default_factory=dict,
        description="Per prediction (next_stage, churn, clv) when explain is true.",
    )
    model_versions: dict[str, str]


class BatchResponse(BaseModel):
    """One response per item, in order."""

    items: list[PredictResponse] = Field(default_factory=list)
    model_versions: dict[str, str]


class ModelInfoRequest(_Strict):
    """model_info takes no parameters (an empty JSON object, or no body)."""


class ReloadRequest(_Strict):
    """reload takes no parameters (an empty JSON object, or no body)."""


class ReloadInfo(BaseModel):
    """The worker's model reloads: what is served and what the last attempt did."""

    poll_seconds: float = Field(
        description="Seconds between registry checks (LIFECYCLE_RELOAD_SECONDS; 0: only "
        "POST /reload)."
    )
    serving_versions: dict[str, str] = Field(description="Registered name -> version served.")
    checked_at: datetime | None = Field(None, description="Last time the registry was read.")
    last_attempt: datetime | None = Field(
        None, description="Last time a moved alias was loaded (null: never since start-up)."
    )
    ok: bool | None = Field(
        None, description="Whether that attempt is served (false: the old set still serves)."
    )
    error: str | None = Field(None, description="Why the last attempt failed.")
    candidate_versions: dict[str, str] | None = Field(
        None, description="The versions the last attempt loaded (or tried to)."
    )
    last_swap: datetime | None = Field(None, description="When the served set last changed.")
    swaps: int = Field(0, description="Swaps since start-up.")
    seconds: float | None = Field(
        None, description="Load, check and warm-up time of the last swap."
    )
    loading: bool = Field(
        False,
        description="A new set is being loaded and checked now (POST /reload answered 202); "
        "the fields above describe the previous attempt until it ends.",
    )


class ServedModelInfo(BaseModel):
    """One served model: registry version, training period and headline metrics."""

    name: str
    version: str
    run_id: str
    horizon_days: int | None
    protocol: str | None
    trained_on: list[str] = Field(default_factory=list, description="Training cutoffs.")
    validated_on: str | None
    evaluated_on: str | None
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelInfo(BaseModel):
    """What the service serves."""

    alias: str
    models: dict[str, ServedModelInfo]
    feature_names: list[str] = Field(default_factory=list)
    nullable_features: list[str] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=list)
    lookup: dict[str, str | int | None]
    max_batch: int
    uplift: dict[str, str] | None
    currency: str
    reload: ReloadInfo | None = Field(
        None, description="Champion changes: the registry checks and the last swap."
    )


class FieldError(BaseModel):
    """One problem with the request."""

    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx answer: a code, a sentence, and the fields at fault."""

    error: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)


MAX_PLAN_CONTACTS = 1000
"""Most contacts one ``POST /plan`` answer lists (the page's ``/plan.csv`` has them all)."""
MAX_BUDGET = 1e12


def _whole_number(value: Any) -> Any:
    # JSON Schema's integer includes 2.0: take it as 2 (2.5 and "2" are still refused).
    return int(value) if isinstance(value, float) and value.is_integer() else value


_ONE_BUDGET: dict[str, Any] = {
    # The rule of _whole_count, published: a count budget (the default kind) is a whole number.
    "oneOf": [
        {
            "title": "contacts",
            "properties": {"budget_kind": {"const": "count"}, "budget": {"multipleOf": 1}},
        },
        {
            "title": "money",
            "required": ["budget_kind"],
            "properties": {"budget_kind": {"const": "money"}},
        },
    ]
}


class PlanRequest(_Strict):
    """A budgeted next-best-action plan over the lookup table's customers."""

    model_config = ConfigDict(json_schema_extra=_ONE_BUDGET)

    budget_kind: Literal["count", "money"] = Field(
        "count",
        description="What the budget counts: contacts, or money in the catalog's currency.",
    )
    budget: float = Field(
        gt=0,
        le=MAX_BUDGET,
        description="Contacts (a whole number) or money to spend on the plan.",
        examples=[200],
    )
    costs: dict[str, Annotated[float, Field(ge=0, le=MAX_BUDGET)]] | None = Field(
        None,
        description="Action id -> cost per contact, replacing the catalog's (the action ids "
        "of model_info's catalog; not the no-action).",
    )
    contacts: Annotated[int, BeforeValidator(_whole_number)] = Field(
        100,
        ge=0,
        le=MAX_PLAN_CONTACTS,
        description="How many contacts the answer lists, highest net value first; the totals "
        "count them all.",
    )
    lang: Lang = Field("en", description="Language of the action names.")

    @field_validator("budget")
    @classmethod
    def _whole_count(cls, budget: float, info: ValidationInfo) -> float:
        # budget_kind is declared first, so it is validated (and in info.data) by now
        if info.data.get("budget_kind", "count") == "count" and budget != int(budget):
            raise ValueError("a count budget is a whole number of contacts")
        return budget


class PlannedAction(BaseModel):
    """One action of the plan: how many customers get it and what that is expected to earn."""

    action: str
    name: str
    customers: int
    cost: float = Field(description="Total cost of these contacts.")
    expected_value: float = Field(description="Expected incremental value before cost.")
    net_value: float = Field(description="Expected incremental value net of cost.")
    net_low: float = Field(description="Lower bound of the net value's interval.")
    net_high: float = Field(description="Upper bound of the net value's interval.")


class PlanTotals(BaseModel):
    """The whole plan, and the customers it leaves alone, by why."""

    customers: int = Field(description="Customers planned for (the lookup table's).")
    contacts: int
    cost: float
    expected_value: float
    net_value: float
    net_low: float
    net_high: float
    interval: float = Field(description="Coverage of the intervals (a bootstrap over customers).")
    budget: float
    budget_kind: Literal["count", "money"]
    over_budget: int = Field(description="Left alone: worth contacting, but over the budget.")
    no_gain: int = Field(description="Left alone: no action is expected to pay off.")
    no_eligible_action: int = Field(description="Left alone: no action applies to them.")


class PlannedContact(BaseModel):
    """One customer to contact, with the action and its expected value."""

    customer_id: str
    action: str
    name: str
    offer: str | None
    expected_value: float
    cost: float
    net_value: float
    effect: float
    effect_source: Literal["assumed", "estimated"]
    stage: str
    segment: str


class PlanResponse(BaseModel):
    """A budgeted plan: per action, the totals, and the first contacts."""

    actions: list[PlannedAction] = Field(default_factory=list)
    totals: PlanTotals
    contacts: list[PlannedContact] = Field(
        default_factory=list,
        description="The first contacts by net value (at most the request's `contacts`, "
        f"itself at most {MAX_PLAN_CONTACTS}); `totals.contacts` counts them all.",
    )
    currency: str
    as_of: datetime = Field(description="The lookup table's cutoff the predictions are for.")
    model_versions: dict[str, str]
