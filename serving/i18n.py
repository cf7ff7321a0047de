"""The marketer page's words and formats: thin helpers over the glossary and the formatter.

Every word lives in :mod:`lifecycle.features.glossary` and every number, percentage, amount and date
format in :mod:`lifecycle.features.formatting` (shared with the driver sentences and the
next-best-action
reasons). This module gives the page and its templates the helpers they call, with the page's
choices: English stage names capitalised, feature labels by each feature's sentence key.
"""

from __future__ import annotations

from functools import lru_cache

from lifecycle.features import glossary
from lifecycle.features.config import LifecycleConfig
from lifecycle.features.definitions import Feature, model_features
from lifecycle.features.formatting import date, money, number, percent
from lifecycle.features.glossary import LANGS, Lang

__all__ = [
    "LANGS",
    "Lang",
    "chance_sentence",
    "clv_sentence",
    "code_name",
    "date",
    "feature_label",
    "money",
    "number",
    "percent",
    "segment_name",
    "stage_name",
    "text",
]


def text(key: str, lang: Lang, **values: object) -> str:
    """Return the page's phrase ``key`` (:data:`~lifecycle.features.glossary.PAGE_WORDS`)."""
    return glossary.text(f"page.{key}", lang, **values)


@lru_cache(maxsize=8)
def _features(config: LifecycleConfig) -> dict[str, Feature]:
    return {f.name: f for f in model_features(config)}


def feature_label(name: str, lang: Lang, config: LifecycleConfig | None = None) -> str:
    """Return a feature's name for people, from its sentence key (others: the name as is)."""
    feature = _features(config or LifecycleConfig()).get(name)
    if feature is None:
        return name if lang == "ko" else name.replace("_", " ")
    label = glossary.text(f"label.{feature.sentence}", lang, **feature.params)
    return label[:1].upper() + label[1:]


def stage_name(stage: str, lang: Lang) -> str:
    """Return a stage's name in ``lang``, capitalised in English (an unknown stage as given)."""
    if stage not in glossary.STAGE_NAMES:
        return stage
    name = glossary.stage_name(stage, lang)
    return name[:1].upper() + name[1:]


def segment_name(segment: str, lang: Lang) -> str:
    """Return an RFM segment's name in ``lang``."""
    return glossary.segment_name(segment, lang)


def chance_sentence(task: str, p: float, lang: Lang, *, horizon: int, next_stage: str) -> str:
    """Plain-language meaning of a probability, as "about N in 10 similar customers"."""
    in_ten = max(0, min(10, round(p * 10)))
    if task == "churn":
        level = ("low", "medium", "high")[(p >= 0.3) + (p >= 0.6)]
        return text(
            "churn_chance", lang, level=text(f"risk_{level}", lang), n=in_ten, horizon=horizon
        )
    return text("next_stage_chance", lang, n=in_ten, horizon=horizon, stage=next_stage)


def clv_sentence(expected: float, low: float, high: float, currency: str, lang: Lang) -> str:
    """Plain-language meaning of the CLV and its interval."""
    return text(
        "clv_sentence",
        lang,
        expected=money(expected, currency, lang),
        low=money(low, currency, lang),
        high=money(high, currency, lang),
    )


def code_name(code: str | None, lang: Lang) -> str:
    """Return an event type or channel code for people ("cart addition" / "장바구니 담기")."""
    if not code:
        return ""
    for table in (glossary.EVENT_NAMES, glossary.CHANNEL_NAMES):
        if code in table:
            return table[code][lang]
    return code.replace("_", " ")
