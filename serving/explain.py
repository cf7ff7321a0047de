"""Driver sentences for one prediction: SHAP contributions in words a marketer reads (en, ko).

LightGBM's ``pred_contrib`` gives, for one customer and one task, an additive contribution per
feature plus the base value, on the model's raw scale: log-odds for ``next_stage`` and
``churn``, the log of the expected value for ``clv`` (a Tweedie model, so its contributions
multiply the value). :func:`explain` keeps the ``top_k`` largest, quotes the customer's value
next to a typical one and says, in words, which way the feature moves the prediction and by how
much.

**Points, not log-odds.** A marketer reads a probability, so a classifier's driver says how many
percentage points it moves the probability the service reports (:func:`probability_points`):
the gap between the customer's probability and the probability at the base value (the model's
average raw output) is shared among the features in proportion to their log-odds
contributions. Of the usual conversions this is the one whose points add up exactly to that
gap, keep each contribution's sign and keep the drivers' order; leaving one feature out at a
time (``p(all) - p(all - phi_i)``) keeps the sign too, but its points do not add up, and two
strong drivers of a customer far from 50% would each look small. The map from raw output to
probability is the model's calibrator when the caller gives it (the service does), else the
logistic function. CLV keeps the strength words (:data:`STRENGTH_THRESHOLDS`): its
contributions multiply a value that is not a probability.

**Typical customers of the same stage.** A value is compared with the median of the
customer's own lifecycle stage when the caller gives it (a one-time buyer against other
one-time buyers, not against a population where most never bought), else with everyone's. A
value that reads the same as the typical one is not said to raise or lower anything: it does
not set the customer apart.

**Marketing actions are not levers.** A feature that records what marketing did
(:attr:`lifecycle.features.definitions.Feature.marketing_action`, campaign offers received)
goes with the prediction because customers are chosen for offers; its sentence says the
association is not an effect, and its driver carries ``lever: false`` so that no action's
reason cites it.

SHAP values describe the model, not the customer's motives, so a sentence only ever says that a
value *raises* or *lowers* the predicted score; it never claims a cause.

A feature's sentence comes from its definition (:class:`lifecycle.features.definitions.Feature`):
its
``sentence`` key names the wording in :mod:`lifecycle.features.glossary`, its ``params`` (window
days,
event type, channel) fill it, and its ``kind`` says how the value is written
(:mod:`lifecycle.features.formatting`). So every feature a config defines has its own sentence,
whatever
its windows, event types and channels; a sentence key the glossary lacks is an error, raised
when a config's sentences are first built.

A name no definition of the config produces (a model trained under another config, a caller's
own column) still gets a sentence: from the shape of the name when it is one the definitions
use (``n_events_{w}d``, ``n_{event_type}``, ...), else from the family and description the
caller gives, else a plain one built from the name. Such a name never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from lifecycle.features import formatting as fmt
from lifecycle.features.config import LifecycleConfig
from lifecycle.features.definitions import Feature, Kind, model_features
from lifecycle.features.glossary import (
    FAMILY_LABELS,
    LANGS,
    STAGE_NAMES_BY_CODE,
    Lang,
    channel_name,
    event_name,
    object_particle,
    plain,
    stage_name,
    text,
    with_particle,
)
from lifecycle.models.tasks import TASKS, Task, spec

Strength = Literal["slightly", "moderately", "strongly"]
Direction = Literal["up", "down"]

STRENGTH_THRESHOLDS: Mapping[Task, tuple[float, float]] = {
    task: spec(task).strength_thresholds for task in TASKS
}
"""Bounds on ``|contribution|`` per task
(:attr:`lifecycle.models.tasks.TaskSpec.strength_thresholds`):
below the first reads "slightly", below the second "moderately", anything else "strongly". Used for
``clv`` and for a classifier's sentence written without its points."""

FloatArray = npt.NDArray[np.float64]
Probability: TypeAlias = Callable[[FloatArray], FloatArray]
"""Raw model outputs (log-odds) -> the probabilities the service reports (a calibrator)."""

PROBABILITY_TASKS: frozenset[Task] = frozenset(t for t in TASKS if spec(t).scale == "log_odds")
"""Tasks whose drivers are read in percentage points of a probability."""


# --------------------------------------------------------------------------------------------
# Templates

ValueKind: TypeAlias = Literal[Kind, "number"]
"""A feature's kind, or ``number`` for a name without a definition whose meaning is unknown."""

_PARTS = ("fact", "missing", "typical", "unit")
_OWN_GAP_SENTENCES = frozenset({"last_purchase_ago"})
"""Sentences that compare with the customer's own mean purchase gap, when it is known."""
MEAN_GAP_FEATURE = "mean_purchase_gap_days"


@dataclass(frozen=True, slots=True)
class _Wording:
    """One language's sentence parts; ``{v}`` and ``{t}`` take the formatted values."""

    fact: str
    missing: str
    typical: str
    unit: str


@dataclass(frozen=True, slots=True)
class _Template:
    """How one feature is quoted: its value kind and its wording in each language."""

    kind: ValueKind
    en: _Wording
    ko: _Wording
    zero_is_missing: bool = False
    own_gap: bool = False
    marketing_action: bool = False


def _wording(
    sentence: str, lang: Lang, values: Mapping[str, object], unit: str | None = None
) -> _Wording:
    """Fill one language's parts of a glossary sentence, keeping ``{v}``, ``{t}`` and ``{who}``."""
    filled = {"v": "{v}", "t": "{t}", "who": "{who}", **values}
    fact, missing, typical, own_unit = (
        text(f"sentence.{sentence}.{part}", lang, **filled) for part in _PARTS
    )
    return _Wording(fact, missing, typical, own_unit if unit is None else unit)


def _words(params: Mapping[str, str | int], lang: Lang) -> dict[str, object]:
    """Return a feature's parameters with the names of its event type or channel in ``lang``."""
    values: dict[str, object] = dict(params)
    if "event" in params:
        name = event_name(str(params["event"]), lang)
        values["event_name"] = name
        values["event_names"] = fmt.plural(name, 2)
    if "channel" in params:
        values["channel_name"] = channel_name(str(params["channel"]), lang)
    return values


def _template(
    kind: ValueKind,
    sentence: str,
    params: Mapping[str, str | int],
    marketing_action: bool = False,
) -> _Template:
    """Build the template of a glossary sentence for a feature of ``kind``."""
    return _Template(
        kind,
        _wording(sentence, "en", _words(params, "en")),
        _wording(sentence, "ko", _words(params, "ko")),
        zero_is_missing=kind == "score",
        own_gap=sentence in _OWN_GAP_SENTENCES,
        marketing_action=marketing_action,
    )


def _declared(feature: Feature) -> _Template:
    """Build the template of a defined feature from its sentence key; a missing one raises."""
    if feature.kind is None or not feature.sentence:
        raise ValueError(f"feature {feature.name!r} has no kind or sentence key")
    try:
        return _template(feature.kind, feature.sentence, feature.params, feature.marketing_action)
    except KeyError as exc:
        raise ValueError(f"feature {feature.name!r}: {exc.args[0]}") from exc


_SHAPES: tuple[tuple[re.Pattern[str], str, str, Kind, tuple[str, ...]], ...] = (
    (re.compile(r"n_events_(\d+)d"), "activity", "events_window", "count", ("window",)),
    (re.compile(r"n_purchases_(\d+)d"), "frequency", "purchases_window", "count", ("window",)),
    (re.compile(r"revenue_(\d+)d"), "monetary", "revenue_window", "money", ("window",)),
    (re.compile(r"purchase_trend_(\d+)d"), "trend", "purchase_trend", "count_change", ("window",)),
    (re.compile(r"revenue_trend_(\d+)d"), "trend", "revenue_trend", "money_change", ("window",)),
    (re.compile(r"activity_trend_(\d+)d"), "trend", "activity_trend", "count_change", ("window",)),
    (re.compile(r"n_channel_other"), "channel", "channel_other", "count", ()),
    (re.compile(r"n_channel_(\w+)"), "channel", "channel", "count", ("channel",)),
    (re.compile(r"n_(\w+)_(\d+)d"), "activity", "event_window", "count", ("event", "window")),
    (re.compile(r"n_(\w+)"), "activity", "event_total", "count", ("event",)),
)
"""For names without a definition only: the name shapes the definitions use (full match), the
family each implies, its sentence key, kind and the parameters its groups hold."""

_FAMILY_KINDS: dict[str, ValueKind] = {"monetary": "money", "recency": "days", "tenure": "days"}


def _capitalised(words: str) -> str:
    return words[:1].upper() + words[1:]


def _fallback(
    sentence: str, kind: ValueKind, description: str, family: str | None = None
) -> _Template:
    """Build a ``family`` or ``generic`` template quoting a description (or a name)."""
    desc = plain(description)

    def wording(lang: Lang) -> _Wording:
        values = {"description": desc, "Description": _capitalised(desc)}
        if family is not None:
            values["family"] = FAMILY_LABELS[family][lang]
        unit = text("phrase.day", lang) if kind == "days" else None
        return _wording(sentence, lang, values, unit)

    return _Template(kind, wording("en"), wording("ko"))


def _undeclared(name: str, family: str | None, description: str | None) -> _Template:
    """Pick the template of a name no definition produces: shape, then family, then generic."""
    for pattern, shape_family, sentence, kind, keys in _SHAPES:
        match = pattern.fullmatch(name)
        # A feature of another family only shares the name's shape: trust the family.
        if match is not None and family in (None, shape_family):
            return _template(kind, sentence, dict(zip(keys, match.groups(), strict=True)))
    if family in FAMILY_LABELS and description:
        return _fallback("family", _FAMILY_KINDS.get(family, "number"), description, family)
    return _fallback("generic", "number", description or name)


class _Book:
    """Templates for one config: every defined feature's built up front, others on demand."""

    def __init__(self, config: LifecycleConfig) -> None:
        self.bins = config.rfm.bins
        self._templates = {f.name: _declared(f) for f in model_features(config)}
        self._undeclared: dict[str, _Template] = {}

    def template(
        self, name: str, family: str | None = None, description: str | None = None
    ) -> _Template:
        """Return the template of ``name``; ``family`` and ``description`` serve other names."""
        found = self._templates.get(name)
        if found is not None:
            return found
        if family is not None or description is not None:
            return _undeclared(name, family, description)
        found = self._undeclared.get(name)
        if found is None:
            found = self._undeclared[name] = _undeclared(name, None, None)
        return found


@lru_cache(maxsize=8)
def _book(config: LifecycleConfig | None) -> _Book:
    """Return the template book of a config (the shipped default when None)."""
    return _Book(config or LifecycleConfig())


# --------------------------------------------------------------------------------------------
# Numbers in words


def _delta(x: float, tpl: _Template, lang: Lang, currency: str) -> str:
    """Write a change against the previous window ("2 more purchases", ko "+2회")."""
    if tpl.kind == "money_change":
        amount = fmt.tidy(x, fmt.currency_digits(currency))
        key = "more_money" if amount > 0 else "less_money" if amount < 0 else "same_money"
        return text(f"phrase.{key}", lang, amount=fmt.money(abs(amount), currency, lang))
    unit = (tpl.ko if lang == "ko" else tpl.en).unit
    n = round(x)
    if n == 0:
        return text("phrase.same_count", lang, n=0, unit=unit, units=fmt.plural(unit, 2))
    word = unit if lang == "ko" else fmt.plural(unit, n)
    return text("phrase.more" if n > 0 else "phrase.fewer", lang, n=f"{abs(n):,}", unit=word)


def _format(x: float, tpl: _Template, lang: Lang, currency: str, bins: int) -> str:
    """Write a finite value the way its template's kind reads."""
    kind = tpl.kind
    unit = (tpl.ko if lang == "ko" else tpl.en).unit
    if kind == "money":
        return fmt.money(x, currency, lang)
    if kind in ("count", "days"):
        return fmt.counted(round(x), unit, lang)
    if kind == "days_squared":
        return fmt.counted(round(math.sqrt(max(x, 0.0))), unit, lang)
    if kind == "ratio":
        return fmt.with_unit(f"{fmt.tidy(x, 1):.1f}", unit, lang)
    if kind == "share":
        return fmt.percent(x, lang)
    if kind == "score":
        return text("phrase.score", lang, unit=unit, n=round(x), bins=bins)
    if kind == "code":
        code = round(x)
        names = STAGE_NAMES_BY_CODE[lang]
        return names[code] if 0 <= code < len(names) else str(code)
    if kind in ("count_change", "money_change"):
        return _delta(x, tpl, lang, currency)
    return fmt.trimmed_number(x)


# --------------------------------------------------------------------------------------------
# Effect sentences


def _effect_table() -> dict[tuple[Task, Lang, Direction, Strength], str]:
    """Every closing sentence in strength words, by task, language, direction and strength."""
    table: dict[tuple[Task, Lang, Direction, Strength], str] = {}
    for task in TASKS:
        for lang in LANGS:
            what = text(f"phrase.object.{task}", lang)
            for strength in ("slightly", "moderately", "strongly"):
                for direction in ("up", "down"):
                    table[task, lang, direction, strength] = text(
                        "phrase.effect",
                        lang,
                        strength=text(f"strength.{strength}", lang),
                        verb=text("phrase.raises" if direction == "up" else "phrase.lowers", lang),
                        object=what,
                        particle=object_particle(what),
                    )
    return table


_EFFECTS = _effect_table()


def strength(task: Task, contribution: float) -> Strength:
    """Say how strongly a contribution moves a prediction, in a word.

    Parameters
    ----------
    task
        ``next_stage``, ``churn`` (log-odds) or ``clv`` (log of the value).
    contribution
        The feature's SHAP value on the model's raw scale.

    Returns
    -------
    str
        ``slightly``, ``moderately`` or ``strongly`` (see :data:`STRENGTH_THRESHOLDS`).

    Examples
    --------
    >>> strength("churn", -0.2), strength("clv", 0.4)
    ('moderately', 'strongly')
    """
    low, high = STRENGTH_THRESHOLDS[task]
    size = abs(contribution)
    if size < low:
        return "slightly"
    if size < high:
        return "moderately"
    return "strongly"


def _amount(points: float, lang: Lang) -> str:
    """Write a size in percentage points ("about 6 points", "less than 1 point")."""
    size = abs(points)
    if size < 0.5:
        return text("phrase.under_a_point", lang)
    whole = math.floor(size + 0.5)  # half up: 0.5 reads "about 1 point", never "about 0"
    if whole == 1:
        return text("phrase.one_point", lang)
    return text("phrase.points", lang, n=whole)


def _effect(
    task: Task, lang: Lang, direction: Direction, contribution: float, points: float | None
) -> str:
    """Return the closing sentence: in percentage points when known, else in strength words."""
    if points is None:
        return _EFFECTS[task, lang, direction, strength(task, contribution)]
    what = text(f"phrase.object.{task}", lang)
    return text(
        "phrase.effect_points",
        lang,
        verb=text("phrase.raises" if direction == "up" else "phrase.lowers", lang),
        object=what,
        particle=object_particle(what),
        points=_amount(points, lang),
    )


def _not_lever(task: Task, lang: Lang, direction: Direction, points: float | None) -> str:
    """Return the closing sentence of a marketing action: an association, not an effect."""
    subject = text(f"phrase.subject.{task}", lang)
    size = "" if points is None else text("phrase.size", lang, amount=_amount(points, lang))
    return text(
        "phrase.not_lever",
        lang,
        direction=text("phrase.higher" if direction == "up" else "phrase.lower", lang),
        subject=subject,
        particle=with_particle(subject),
        size=size,
    )


def probability_points(
    contributions: npt.ArrayLike, probability: Probability | None = None
) -> tuple[FloatArray, float]:
    """Convert one prediction's log-odds contributions to percentage points of its probability.

    The gap between the probability of the customer's raw output and that of the base value
    is shared among the features in proportion to their contributions, so the points add up
    to the gap exactly, and each keeps its contribution's sign (for a probability map that
    never decreases) and its rank. When the contributions cancel out (a raw output equal to
    the base value) each gets its contribution times the map's slope at the base value.

    Parameters
    ----------
    contributions
        Tree SHAP of one prediction on the log-odds scale: one value per feature, then the
        base value (NaN contributions count as 0).
    probability
        Raw output -> reported probability (the model's calibrator); the logistic function
        when None.

    Returns
    -------
    (numpy.ndarray, float)
        Points per feature (6.0: the feature adds 6 percentage points) and the probability
        at the base value.

    Examples
    --------
    >>> points, base = probability_points([1.0, 1.0, 0.0])
    >>> points.round(1).tolist(), round(base, 2)
    ([19.0, 19.0], 0.5)
    """
    contrib = np.asarray(contributions, dtype=np.float64)
    phi = np.where(np.isfinite(contrib[:-1]), contrib[:-1], 0.0)
    base = float(contrib[-1])
    total = float(phi.sum())
    to_p = probability or _logistic
    step = 1e-4
    p0, p1, below, above = to_p(
        np.array([base, base + total, base - step, base + step], dtype=np.float64)
    ).tolist()
    if abs(total) > 1e-9:
        slope = (p1 - p0) / total
    else:
        slope = (above - below) / (2 * step)
    return np.asarray(100.0 * slope * phi, dtype=np.float64).reshape(-1), float(p0)


def _logistic(raw: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-raw)), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Sentences


def _finite(x: float | None) -> float | None:
    """Return ``x`` as a float, or None when it is missing, NaN or infinite."""
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class _Compared:
    """The value a driver is compared with and whose it is (a stage's customers or everyone)."""

    value: float | None
    stage: str | None = None

    def who(self, lang: Lang) -> str:
        if self.stage is None:
            return text("phrase.typical_customer", lang)
        return text("phrase.typical_stage_customer", lang, stage=stage_name(self.stage, lang))


def _sentence(
    tpl: _Template,
    value: float | None,
    typical: _Compared,
    own_gap: float | None,
    effect: str,
    lang: Lang,
    currency: str,
    bins: int,
) -> tuple[str, bool]:
    """Join the fact (or the missing wording), the comparison and the effect.

    Returns the sentence and whether the value reads as the typical one (then no effect is
    claimed).
    """
    wording = tpl.ko if lang == "ko" else tpl.en
    if value is None or (tpl.zero_is_missing and round(value) <= 0):
        return f"{wording.missing}. {effect}", False
    written = _format(value, tpl, lang, currency, bins)
    fact = wording.fact.replace("{v}", written)
    gap = "; " if lang == "en" else ". "
    if own_gap is not None and tpl.own_gap:
        compare = text("phrase.own_gap", lang, t=fmt.days(own_gap, lang))
    elif typical.value is not None:
        who = typical.who(lang)
        usual = _format(typical.value, tpl, lang, currency, bins)
        if usual == written:
            same = text("phrase.as_typical", lang, who=who, particle=with_particle(who))
            return f"{fact}{gap}{same}.", True
        compare = wording.typical.replace("{t}", usual).replace("{who}", who)
    else:
        return f"{fact}. {effect}", False
    return f"{fact}{gap}{compare}. {effect}", False


def _check(task: str, lang: str, top_k: int = 1) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGS)}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")


def _closing(
    tpl: _Template,
    task: Task,
    lang: Lang,
    direction: Direction,
    contribution: float,
    points: float | None,
) -> str:
    """Return the effect sentence, or the association sentence of a marketing action."""
    if tpl.marketing_action:
        return _not_lever(task, lang, direction, points)
    return _effect(task, lang, direction, contribution, points)


def describe_driver(
    task: Task,
    feature: str,
    value: float | None,
    contribution: float,
    *,
    typical: float | None = None,
    lang: Lang = "en",
    currency: str | None = "USD",
    own_gap_days: float | None = None,
    family: str | None = None,
    description: str | None = None,
    config: LifecycleConfig | None = None,
    points: float | None = None,
    stage: str | None = None,
) -> str:
    """Write the sentence for one feature's contribution to one prediction.

    Parameters
    ----------
    task
        ``next_stage``, ``churn`` or ``clv``.
    feature
        Feature name; a name ``config`` does not define gets a fallback sentence.
    value
        The customer's value (None or NaN: missing).
    contribution
        The feature's SHAP value on the model's raw scale (its sign is the direction; its
        size is put in words when ``points`` is None).
    typical
        The typical value (median of the reference population, or of the customers of
        ``stage``); None or NaN leaves the comparison out. A value that reads the same is not
        said to raise or lower anything.
    lang
        ``en`` or ``ko``.
    currency
        Currency code quoted after amounts, with its decimals (None or empty: none).
    own_gap_days
        The customer's own mean days between purchases: compared with
        ``days_since_last_purchase`` in place of ``typical`` when given and finite.
    family, description
        Family and description of a feature that ``config`` does not define (they choose the
        fallback sentence; a defined feature always reads its own sentence).
    config
        Lifecycle config whose feature definitions give each feature its sentence (the
        default when None).
    points
        The effect in percentage points of the probability (see :func:`probability_points`);
        the sentence quotes it in place of a strength word.
    stage
        The lifecycle stage whose customers ``typical`` describes (None: everyone).

    Returns
    -------
    str
        The customer's value, the typical one and the push on the prediction in words.

    Examples
    --------
    >>> text = describe_driver("churn", "days_since_last_purchase", 94.0, 0.8, own_gap_days=21.0)
    >>> text.split(". ")
    ['Last purchase was 94 days ago; this customer usually buys every 21 days', \
'This strongly raises the predicted churn risk.']
    >>> describe_driver("churn", "rfm_r", 2.0, -0.2, typical=3.0, lang="ko").split(". ")
    ['최근성 등급은 R 점수 5점 중 2점입니다', '일반적인 고객의 경우 R 점수 5점 중 3점입니다', \
'이 점이 이탈 위험을 어느 정도 낮춥니다.']
    >>> describe_driver("churn", "n_purchases", 1.0, -0.4, typical=1.0, stage="conversion")
    'The customer has made 1 purchase in total; the same as for a typical customer in the \
conversion stage, so it does not set this customer apart.'
    """
    _check(task, lang)
    book = _book(config)
    tpl = book.template(feature, family, description)
    direction: Direction = "up" if contribution > 0 else "down"
    effect = _closing(tpl, task, lang, direction, contribution, _finite(points))
    sentence, _ = _sentence(
        tpl,
        _finite(value),
        _Compared(_finite(typical), stage if tpl.kind != "code" else None),
        _finite(own_gap_days),
        effect,
        lang,
        currency or "",
        book.bins,
    )
    return sentence


def explain(
    task: Task,
    contributions: npt.ArrayLike,
    feature_names: Sequence[str],
    values: npt.ArrayLike,
    *,
    typical: Mapping[str, float | None],
    top_k: int = 5,
    lang: Lang = "en",
    currency: str | None = "USD",
    config: LifecycleConfig | None = None,
    stage: str | None = None,
    stage_typical: Mapping[str, float | None] | None = None,
    probability: Probability | None = None,
) -> dict[str, Any]:
    """Turn one prediction's SHAP contributions into its top drivers, each with a sentence.

    Parameters
    ----------
    task
        ``next_stage`` or ``churn`` (contributions in log-odds) or ``clv`` (log of the value).
    contributions
        LightGBM ``pred_contrib`` for one customer: one value per feature, then the base value.
    feature_names
        Feature names, in the order of ``contributions``.
    values
        The customer's feature values in the same order (NaN: missing).
    typical
        Feature -> typical value (median of the reference population); a feature may be
        absent or NaN, and its sentence then leaves the comparison out.
    top_k
        Most drivers to return (at least 1).
    lang
        ``en`` or ``ko``.
    currency
        Currency code quoted after amounts, with its decimals (None or empty: none).
    config
        Lifecycle config whose feature definitions give each feature its sentence (the
        shipped default when None).
    stage
        The customer's lifecycle stage, whose typical values ``stage_typical`` holds.
    stage_typical
        Feature -> typical value among customers of ``stage``; a feature it lacks (or the
        stage code itself) is compared with ``typical``. None: everyone's.
    probability
        For ``next_stage`` and ``churn``: raw output -> the probability reported (the model's
        calibrator); the logistic function when None.

    Returns
    -------
    dict
        ``base_value`` (the last contribution), ``base_probability`` (the probability at the
        base value; None for ``clv``) and ``drivers``: at most ``top_k`` dicts with
        ``feature``, ``value`` (None when missing or infinite), ``contribution`` (raw scale),
        ``points`` (percentage points of the probability; None for ``clv``), ``direction``
        (``up`` or ``down``), ``typical`` (the value compared with, or None), ``as_typical``
        (the value reads as the typical one, so no effect is claimed), ``lever`` (False for a
        marketing action, whose association is not an effect) and ``text``, largest
        ``|contribution|`` first (ties in feature order). Zero (and NaN) contributions are
        never drivers.

    Raises
    ------
    ValueError
        On an unknown task or language, ``top_k < 1``, or lengths that do not line up.

    Examples
    --------
    >>> out = explain("churn", [0.9, -0.1, -1.2], ["days_since_last_purchase", "n_purchases"],
    ...               [94.0, 3.0], typical={"days_since_last_purchase": 30.0}, top_k=1)
    >>> out["base_value"], out["drivers"][0]["direction"], round(out["drivers"][0]["points"], 1)
    (-1.2, 'up', 19.1)
    >>> out["drivers"][0]["text"].split(". ")
    ['Last purchase was 94 days ago; for a typical customer it is 30 days', \
'This raises the predicted churn risk by about 19 points.']
    """
    _check(task, lang, top_k)
    contrib = np.asarray(contributions, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    n = len(feature_names)
    if contrib.shape != (n + 1,):
        raise ValueError(
            f"contributions must be 1-D with one entry per feature plus the base value "
            f"({n + 1}), got shape {contrib.shape}"
        )
    if vals.shape != (n,):
        raise ValueError(f"values must be 1-D with one entry per feature ({n}), got {vals.shape}")
    points: FloatArray | None = None
    base_probability: float | None = None
    if task in PROBABILITY_TASKS:
        points, base_probability = probability_points(contrib, probability)
    size = np.abs(contrib[:n])
    size[~np.isfinite(size)] = 0.0
    order = np.argsort(-size, kind="stable")[:top_k]
    book = _book(config)
    money = currency or ""
    peers = stage_typical if stage is not None else None
    drivers: list[dict[str, Any]] = []
    for i in order.tolist():
        if size[i] == 0.0:
            break  # sorted: the rest are zero too
        name = feature_names[i]
        c = float(contrib[i])
        direction: Direction = "up" if c > 0 else "down"
        tpl = book.template(name)
        value = _finite(vals[i])
        own_gap = _own_gap(feature_names, vals) if tpl.own_gap else None
        compared = _typical_of(name, tpl, typical, peers, stage)
        pts = None if points is None else float(points[i])
        effect = _closing(tpl, task, lang, direction, c, pts)
        text, as_typical = _sentence(tpl, value, compared, own_gap, effect, lang, money, book.bins)
        drivers.append(
            {
                "feature": name,
                "value": value,
                "contribution": c,
                "points": pts,
                "direction": direction,
                "typical": compared.value,
                "as_typical": as_typical,
                "lever": not tpl.marketing_action,
                "text": text,
            }
        )
    return {
        "base_value": float(contrib[n]),
        "base_probability": base_probability,
        "drivers": drivers,
    }


def _typical_of(
    name: str,
    tpl: _Template,
    typical: Mapping[str, float | None],
    peers: Mapping[str, float | None] | None,
    stage: str | None,
) -> _Compared:
    """Return the stage's typical value when known (never for the stage code), else everyone's."""
    if peers is not None and tpl.kind != "code":
        found = _finite(peers.get(name))
        if found is not None:
            return _Compared(found, stage)
    return _Compared(_finite(typical.get(name)))


def _own_gap(feature_names: Sequence[str], values: FloatArray) -> float | None:
    """Return the customer's mean purchase gap when it is a feature with a finite value."""
    try:
        i = list(feature_names).index(MEAN_GAP_FEATURE)
    except ValueError:
        return None
    return _finite(values[i])


RAISES_WHEN_CORRELATION = 0.3
"""Rank correlation between a feature's values and its churn contributions from which the
overview says which values raise the risk."""


def raises_when(
    values: npt.ArrayLike, contributions: npt.ArrayLike, feature: Feature | None = None
) -> str:
    """Say which of a feature's values raise churn risk, over a sample of customers.

    From the rank correlation of the values with their contributions: ``high`` or ``low``
    (values raise it when high, or when low), or ``""`` when the correlation is weaker than
    :data:`RAISES_WHEN_CORRELATION` in size (or cannot be measured). A feature whose
    definition says it measures recent activity (a churn direction) reads in those terms:
    ``low_activity`` (counts and trends: low values raise it) or ``long_inactivity`` (days
    since: high values raise it); a marketing action reads ``marketing_action`` whatever the
    correlation (an association, not an effect). The key names the page's sentence
    ``page.raises_when.<key>``.

    Examples
    --------
    >>> raises_when([0, 1, 2, 3], [0.4, 0.2, -0.1, -0.3])
    'low'
    """
    if feature is not None and feature.marketing_action:
        return "marketing_action"
    x = pd.Series(np.asarray(values, dtype=np.float64))
    c = pd.Series(np.asarray(contributions, dtype=np.float64))
    usable = x.notna() & c.notna() & np.isfinite(x) & np.isfinite(c)
    if usable.sum() < 3 or x[usable].nunique() < 2 or c[usable].nunique() < 2:
        return ""
    rho = float(x[usable].rank().corr(c[usable].rank()))
    if not math.isfinite(rho) or abs(rho) < RAISES_WHEN_CORRELATION:
        return ""
    side = "high" if rho > 0 else "low"
    direction = feature.churn_direction if feature is not None else 0
    if direction == -1 and side == "low":
        return "low_activity"
    if direction == 1 and side == "high":
        return "long_inactivity"
    return side
