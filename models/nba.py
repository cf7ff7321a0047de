"""Next-best-action: an action catalog loaded from YAML, and a ranking by expected value.

The catalog lists what marketing can do (a welcome nudge, a first-purchase incentive, a win-back,
...), for which stages and RFM segments, under which conditions on the predictions, at what
cost, and with what effect on which outcome. :func:`recommend` scores every eligible action for
one customer and returns the best with the next two as alternatives.

Expected value of an action, in the catalog's currency:

- ``next_stage``: ``effect * (1 - p_next) * stage_values[stage] - cost``: the action moves some
  of the customers who would not have moved up anyway (a missing ``p_next`` counts as 0).
- ``retention``: ``effect * churn_risk * clv - cost``: the action saves a share of the value at
  risk (not computable, so not eligible, without ``churn_risk`` and ``clv``).
- ``value``: ``effect * clv - cost``: the action adds a share of the customer's value.
- ``none``: 0, the no-action every catalog has exactly one of.

``effect`` is the catalog's assumed absolute uplift unless a measured uplift for the action's
campaign offer is given (for instance a row of
:meth:`lifecycle.models.uplift.TwoModelUplift.predict_frame`);
the measured number then replaces it, whatever the outcome, and ``effect_source`` says
``estimated``. Ranking needs no pandas: it is plain Python over a handful of actions.

The reasons' words (stage names included) come from :mod:`lifecycle.features.glossary` and their
amounts
and percentages from :mod:`lifecycle.features.formatting`, as on the page and in the driver
sentences.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from lifecycle.features.config import load_yaml
from lifecycle.features.formatting import money, percent
from lifecycle.features.glossary import LANGS, Lang, stage_name, text
from lifecycle.features.rfm import NO_PURCHASE, SEGMENTS
from lifecycle.features.schema import STAGES
from lifecycle.models.tasks import Outcome as TaskOutcome

# What an action aims at; lifecycle.models.tasks says which task's drivers each one's reason cites.
Outcome: TypeAlias = TaskOutcome
EffectSource: TypeAlias = Literal["assumed", "estimated"]
PredictionName: TypeAlias = Literal["next_stage_probability", "churn_risk", "clv", "clv_at_risk"]

ALL_SEGMENTS: tuple[str, ...] = (*SEGMENTS, NO_PURCHASE)
"""RFM segment names an action may target (the grid's segments and ``No purchase yet``)."""

DEFAULT_STAGE_VALUES: dict[str, float] = {
    "reach": 5.0,
    "acquisition": 40.0,
    "conversion": 60.0,
    "retention": 80.0,
}
"""Value, in currency, of moving a customer up one stage from each stage (loyalty is the top)."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_STAGE_SET = frozenset(STAGES)
_SEGMENT_SET = frozenset(ALL_SEGMENTS)

# YAML gives lists; strict mode would refuse them for tuples, so tuple fields are lax (their
# items, strings and models, still validate strictly).
_Stages = Annotated[tuple[str, ...], Field(strict=False, min_length=1)]
_Segments = Annotated[tuple[str, ...], Field(strict=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _check_languages(value: dict[str, str], field: str) -> dict[str, str]:
    """Require exactly the keys of :data:`LANGS`, each with non-blank text."""
    missing = [lang for lang in LANGS if lang not in value]
    extra = sorted(set(value) - set(LANGS))
    if missing or extra:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown {', '.join(extra)}"] if extra else []
        raise ValueError(
            f"{field} needs exactly the languages {', '.join(LANGS)} ({'; '.join(problems)})"
        )
    blank = [lang for lang in LANGS if not value[lang].strip()]
    if blank:
        raise ValueError(f"{field} is blank for {', '.join(blank)}")
    return value


def _check_names(values: tuple[str, ...], known: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """Reject unknown or repeated stage or segment names."""
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(
            f"unknown {kind} {', '.join(map(repr, unknown))}; expected one of {', '.join(known)}"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"a {kind} is listed twice")
    return values


class Condition(_Strict):
    """A threshold on one prediction; a missing (None or NaN) prediction never satisfies it.

    ``clv_at_risk`` is ``clv * churn_risk``, the value a churn would lose.

    Examples
    --------
    >>> Condition(prediction="churn_risk", op=">=", value=0.5).holds({"churn_risk": 0.7})
    True
    """

    prediction: PredictionName
    op: Literal[">=", ">", "<=", "<"]
    value: float = Field(allow_inf_nan=False)

    def holds(self, values: Mapping[str, float | None]) -> bool:
        """Whether the condition holds for cleaned prediction values (see :func:`recommend`)."""
        found = values.get(self.prediction)
        return found is not None and _OPS[self.op](found, self.value)


class Action(_Strict):
    """One thing marketing can do, where it applies, what it costs and what it is worth."""

    id: str
    names: dict[str, str]
    stages: _Stages
    segments: _Segments = ()
    conditions: Annotated[tuple[Condition, ...], Field(strict=False)] = ()
    cost: float = Field(ge=0, allow_inf_nan=False)
    outcome: Outcome
    effect: float = Field(ge=0, le=1)
    offer: str | None = None
    description: dict[str, str]

    @field_validator("id")
    @classmethod
    def _id_is_a_name(cls, value: str) -> str:
        if not _ID_PATTERN.match(value):
            raise ValueError(f"id {value!r} must be lower-case letters, digits and underscores")
        return value

    @field_validator("names", "description")
    @classmethod
    def _both_languages(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return _check_languages(value, str(info.field_name))

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_names(value, STAGES, "stage")

    @field_validator("segments")
    @classmethod
    def _known_segments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_names(value, ALL_SEGMENTS, "segment")

    def applies_to(self, stage: str, segment: str, values: Mapping[str, float | None]) -> bool:
        """Whether the action is open to a customer: stage, segment and every condition."""
        return (
            stage in self.stages
            and (not self.segments or segment in self.segments)
            and all(c.holds(values) for c in self.conditions)
        )


class ActionCatalog(_Strict):
    """The actions to choose from, the currency and what moving up a stage is worth.

    Examples
    --------
    >>> catalog = load_catalog()
    >>> catalog.no_action.id
    'no_action'
    """

    currency: str = Field("USD", min_length=1)
    stage_values: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_STAGE_VALUES))
    actions: Annotated[tuple[Action, ...], Field(strict=False, min_length=1)]

    @field_validator("stage_values")
    @classmethod
    def _stage_values_valid(cls, value: dict[str, float]) -> dict[str, float]:
        below_top = STAGES[:-1]
        unknown = [s for s in value if s not in below_top]
        if unknown:
            raise ValueError(
                f"unknown stage(s) {', '.join(map(repr, unknown))}; expected some of "
                f"{', '.join(below_top)} ({STAGES[-1]} has no next stage)"
            )
        bad = [s for s, v in value.items() if not (math.isfinite(v) and v >= 0)]
        if bad:
            raise ValueError(f"value of {', '.join(bad)} must be a finite number >= 0")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ActionCatalog:
        ids = [a.id for a in self.actions]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"action ids must be unique; repeated: {', '.join(repeated)}")
        none = [a.id for a in self.actions if a.outcome == "none"]
        if len(none) != 1:
            raise ValueError(
                "exactly one action must have outcome 'none' (the no-action), found "
                f"{len(none)}" + (f": {', '.join(none)}" if none else "")
            )
        for action in self.actions:
            if action.outcome != "next_stage":
                continue
            missing = [s for s in action.stages if s not in self.stage_values]
            if missing:
                raise ValueError(
                    f"action {action.id!r} has outcome next_stage but no stage_values entry for "
                    f"{', '.join(missing)} (a {STAGES[-1]} customer has no next stage)"
                )
        return self

    @property
    def no_action(self) -> Action:
        """The one action whose outcome is ``none``."""
        return next(a for a in self.actions if a.outcome == "none")


def default_catalog_path() -> Path:
    """Return the path of the shipped ``actions.yaml``."""
    return Path(__file__).parent / "defaults" / "actions.yaml"


def load_catalog(path: str | Path | None = None) -> ActionCatalog:
    """Load an action catalog from YAML, or the shipped default when ``path`` is None.

    Parameters
    ----------
    path
        YAML file with ``currency``, ``stage_values`` and ``actions``.

    Returns
    -------
    ActionCatalog
        The validated catalog.

    Raises
    ------
    ValueError
        When the file is not valid YAML or its contents do not validate; the message names the
        file and the field (for instance ``actions.2.stages``).

    Examples
    --------
    >>> [a.id for a in load_catalog().actions][:2]
    ['no_action', 'onboarding_nudge']
    """
    return load_yaml(path or default_catalog_path(), ActionCatalog)


@dataclass(frozen=True, slots=True)
class Alternative:
    """A runner-up action: its id, name, expected value and where its effect came from."""

    action: str
    name: str
    expected_value: float
    effect_source: EffectSource

    def as_dict(self) -> dict[str, Any]:
        """Return plain JSON types."""
        return {
            "action": self.action,
            "name": self.name,
            "expected_value": self.expected_value,
            "effect_source": self.effect_source,
        }


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The best action for one customer, why, and up to two alternatives.

    ``expected_value`` is rounded to cents; ``effect`` is the uplift used (assumed by the
    catalog or estimated from campaigns, as ``effect_source`` says).
    """

    action: str
    name: str
    expected_value: float
    effect: float
    effect_source: EffectSource
    outcome: Outcome
    reason: str
    alternatives: tuple[Alternative, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return plain JSON types (alternatives as a list of dicts)."""
        return {
            "action": self.action,
            "name": self.name,
            "expected_value": self.expected_value,
            "effect": self.effect,
            "effect_source": self.effect_source,
            "outcome": self.outcome,
            "reason": self.reason,
            "alternatives": [a.as_dict() for a in self.alternatives],
        }


@dataclass(frozen=True, slots=True)
class _Scored:
    expected_value: float
    position: int
    action: Action
    effect: float
    effect_source: EffectSource


def _clean(value: float | None) -> float | None:
    """Return a float, or None for None and NaN."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def prediction_values(predictions: Mapping[str, float | None]) -> dict[str, float | None]:
    """Return the four predictions conditions can name, None where missing or NaN.

    Examples
    --------
    >>> prediction_values({"churn_risk": 0.5, "clv": 100.0, "next_stage_probability": None})
    {'next_stage_probability': None, 'churn_risk': 0.5, 'clv': 100.0, 'clv_at_risk': 50.0}
    """
    p_next = _clean(predictions.get("next_stage_probability"))
    churn = _clean(predictions.get("churn_risk"))
    clv = _clean(predictions.get("clv"))
    at_risk = None if churn is None or clv is None else clv * churn
    return {
        "next_stage_probability": p_next,
        "churn_risk": churn,
        "clv": clv,
        "clv_at_risk": at_risk,
    }


def _effect(action: Action, uplift: Mapping[str, float] | None) -> tuple[float, EffectSource]:
    """Use the measured uplift of the action's offer when there is one, else the assumed effect."""
    if uplift is not None and action.offer is not None:
        measured = _clean(uplift.get(action.offer))
        if measured is not None:
            return min(1.0, max(-1.0, measured)), "estimated"
    return action.effect, "assumed"


def _expected_value(
    catalog: ActionCatalog,
    action: Action,
    stage: str,
    effect: float,
    values: Mapping[str, float | None],
    source: EffectSource = "assumed",
) -> float | None:
    """Return the expected value in currency, None when the outcome cannot be valued here.

    An assumed effect is a share of the customers who would not reach the outcome anyway
    (hence the ``1 - p_next`` and ``churn_risk`` factors). An estimated one is the measured
    increase in the chance of a purchase, already net of the control group: for a next-stage
    action whose next stage is a purchase it is the extra probability of moving up, and for
    retention or value the extra probability of buying again, which keeps the CLV.
    """
    if action.outcome == "none":
        return 0.0
    if action.outcome == "next_stage":
        stage_value = catalog.stage_values.get(stage)
        if stage_value is None:
            return None
        if source == "estimated":
            return effect * stage_value - action.cost
        p_next = values["next_stage_probability"] or 0.0
        return effect * (1.0 - p_next) * stage_value - action.cost
    if action.outcome == "retention" and source == "assumed":
        base = values["clv_at_risk"]
    else:
        base = values["clv"]
    return None if base is None else effect * base - action.cost


def _retention_reason(
    catalog: ActionCatalog, values: Mapping[str, float | None], lang: Lang
) -> str:
    churn = percent(values["churn_risk"] or 0.0, lang)
    at_risk = money(values["clv_at_risk"] or 0.0, catalog.currency, lang)
    return text("reason.retention", lang, churn=churn, at_risk=at_risk)


def _next_stage_reason(
    catalog: ActionCatalog, stage: str, values: Mapping[str, float | None], lang: Lang
) -> str:
    p_next = values["next_stage_probability"]
    words = {
        "stage": stage_name(stage, lang),
        "next_stage": stage_name(STAGES[STAGES.index(stage) + 1], lang),
        "worth": money(catalog.stage_values[stage], catalog.currency, lang),
    }
    if p_next is None:
        return text("reason.next_stage", lang, **words)
    return text("reason.next_stage_chance", lang, chance=percent(p_next, lang), **words)


def _value_reason(
    catalog: ActionCatalog, effect: float, values: Mapping[str, float | None], lang: Lang
) -> str:
    clv = money(values["clv"] or 0.0, catalog.currency, lang)
    return text("reason.value", lang, clv=clv, effect=percent(effect, lang))


def _no_action_reason(values: Mapping[str, float | None], lang: Lang) -> str:
    churn = values["churn_risk"]
    if churn is None:
        return text("reason.no_action", lang)
    return text("reason.no_action_churn", lang, churn=percent(churn, lang))


def reason_driver(drivers: Sequence[Mapping[str, Any]], direction: str | None = None) -> str | None:
    """Pick the driver sentence an action's reason may cite: the strongest that justifies one.

    A driver that records a marketing action (``lever`` false, e.g. campaign offers received)
    is never cited: it goes with churn risk because customers at risk are sent offers, so
    citing it would recommend a campaign because of campaigns. Nor is one whose value is as
    typical as its stage's (``as_typical``), which claims no push.

    Parameters
    ----------
    drivers
        One task's drivers, strongest first, as :func:`lifecycle.serving.explain.explain`
        gives them (``text``, ``direction``, and ``lever`` and ``as_typical`` when known).
    direction
        ``up`` or ``down``: only a driver pushing that way (None: either).

    Returns
    -------
    str or None
        The sentence, or None when no driver qualifies.

    Examples
    --------
    >>> offers = {"text": "Offers ...", "direction": "up", "lever": False}
    >>> recency = {"text": "Last purchase ...", "direction": "up", "lever": True}
    >>> reason_driver([offers, recency], "up")
    'Last purchase ...'
    """
    for driver in drivers:
        if not driver.get("lever", True) or driver.get("as_typical", False):
            continue
        if direction is None or driver["direction"] == direction:
            return str(driver["text"])
    return None


def _reason(
    catalog: ActionCatalog,
    best: _Scored,
    stage: str,
    values: Mapping[str, float | None],
    lang: Lang,
    top_driver: str | None,
) -> str:
    """One sentence in ``lang`` on why the best action was chosen, citing the top driver."""
    outcome = best.action.outcome
    if outcome == "retention":
        reason = _retention_reason(catalog, values, lang)
    elif outcome == "next_stage":
        reason = _next_stage_reason(catalog, stage, values, lang)
    elif outcome == "value":
        reason = _value_reason(catalog, best.effect, values, lang)
    else:
        reason = _no_action_reason(values, lang)
    if top_driver:
        return text("reason.top_driver", lang, reason=reason, driver=top_driver)
    return text("reason.end", lang, reason=reason)


def _check_inputs(stage: str, segment: str, lang: str) -> None:
    if stage not in _STAGE_SET:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    if segment not in _SEGMENT_SET:
        raise ValueError(f"unknown segment {segment!r}; expected one of {', '.join(ALL_SEGMENTS)}")
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGS)}")


def _rank(
    catalog: ActionCatalog,
    stage: str,
    segment: str,
    values: Mapping[str, float | None],
    uplift: Mapping[str, float] | None,
) -> list[_Scored]:
    """Score the eligible actions, best first; ties keep catalog order."""
    scored = []
    for position, action in enumerate(catalog.actions):
        if not action.applies_to(stage, segment, values):
            continue
        effect, source = _effect(action, uplift)
        value = _expected_value(catalog, action, stage, effect, values, source)
        if value is not None:
            scored.append(_Scored(value, position, action, effect, source))
    scored.sort(key=_rank_key)
    return scored


def _rank_key(scored: _Scored) -> tuple[float, int]:
    return (-scored.expected_value, scored.position)


def recommend(
    catalog: ActionCatalog,
    *,
    stage: str,
    segment: str,
    predictions: Mapping[str, float | None],
    uplift: Mapping[str, float] | None = None,
    lang: Lang = "en",
    top_driver: str | None = None,
    top_drivers: Mapping[str, str] | None = None,
) -> Recommendation:
    """Recommend the next-best action for one customer.

    Parameters
    ----------
    catalog
        The actions (see :func:`load_catalog`).
    stage
        The customer's lifecycle stage (one of :data:`lifecycle.features.schema.STAGES`).
    segment
        The customer's RFM segment (one of :data:`ALL_SEGMENTS`).
    predictions
        ``next_stage_probability``, ``churn_risk`` and ``clv``; None or NaN where a prediction
        does not apply (loyalty has no next stage, a customer who never bought cannot churn).
    uplift
        Measured uplift per campaign offer for this customer (e.g. one row of
        :meth:`lifecycle.models.uplift.TwoModelUplift.predict_frame`); it replaces an action's
        assumed
        effect, clipped to [-1, 1], when the action's offer is present and not NaN.
    lang
        Language of the names and the reason.
    top_driver
        The feature that most drives this customer's predictions, cited in the reason.
    top_drivers
        Top driver sentence per outcome (``next_stage``, ``retention``, ``value``, ``none``):
        the reason cites the one of the chosen action's outcome (``top_driver`` wins when
        both are given). Pick each with :func:`reason_driver`, which never picks a marketing
        action.

    Returns
    -------
    Recommendation
        The action with the highest expected value (ties: the earlier in the catalog) and the
        next two as alternatives.

    Raises
    ------
    ValueError
        For an unknown stage, segment or language, or when no action is eligible (only possible
        when the catalog's no-action does not list the stage).

    Examples
    --------
    >>> rec = recommend(load_catalog(), stage="retention", segment="At risk",
    ...                 predictions={"next_stage_probability": 0.1, "churn_risk": 0.8, "clv": 500})
    >>> rec.action, rec.expected_value
    ('win_back', 37.0)
    """
    _check_inputs(stage, segment, lang)
    values = prediction_values(predictions)
    ranked = _rank(catalog, stage, segment, values, uplift)
    if not ranked:
        raise ValueError(f"no action of the catalog is eligible for stage {stage!r}")
    best = ranked[0]
    return Recommendation(
        action=best.action.id,
        name=best.action.names[lang],
        expected_value=round(best.expected_value, 2),
        effect=best.effect,
        effect_source=best.effect_source,
        outcome=best.action.outcome,
        reason=_reason(
            catalog,
            best,
            stage,
            values,
            lang,
            top_driver or (top_drivers or {}).get(best.action.outcome),
        ),
        alternatives=tuple(
            Alternative(
                action=s.action.id,
                name=s.action.names[lang],
                expected_value=round(s.expected_value, 2),
                effect_source=s.effect_source,
            )
            for s in ranked[1:3]
        ),
    )


__all__ = [
    "ALL_SEGMENTS",
    "DEFAULT_STAGE_VALUES",
    "Action",
    "ActionCatalog",
    "Alternative",
    "Condition",
    "Recommendation",
    "default_catalog_path",
    "load_catalog",
    "prediction_values",
    "reason_driver",
    "recommend",
]
