"""The marketer page's words and formats: thin helpers over the glossary and the formatter.

Every word lives in :mod:`lifecycle.features.glossary` and every number, percentage, amount and date
format in :mod:`lifecycle.features.formatting` (shared with the driver sentences and the
next-best-action
reasons). This module gives the page and its templates the helpers they call, with the page's
choices: English stage names capitalised, feature labels by each feature's sentence key with
event types and channels in words, and amounts compact (``94.4K USD``) with the exact amount
on hover (:func:`amount`; the CSV keeps the exact value).
"""

from __future__ import annotations

from functools import lru_cache

from markupsafe import Markup, escape

from lifecycle.features import glossary
from lifecycle.features.config import LifecycleConfig
from lifecycle.features.definitions import Feature, model_features
from lifecycle.features.formatting import compact_money, date, money, number, percent, plural
from lifecycle.features.glossary import LANGS, Lang

__all__ = [
    "LANGS",
    "Lang",
    "amount",
    "chance_sentence",
    "clv_sentence",
    "code_name",
    "compact_money",
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


NAMED_LABELS = {
    "event_total": "event_total_named",
    "event_window": "event_window_named",
    "channel": "channel_named",
}
"""Label keys whose event type or channel the page writes in words, and the words' key."""


def feature_label(name: str, lang: Lang, config: LifecycleConfig | None = None) -> str:
    """Return a feature's name for people, from its sentence key (others: the name as is).

    A per-event-type or per-channel feature names its event or channel in ``lang``, as the
    driver sentences do ("Cart additions in the last 30 days", "최근 30일 장바구니 담기 횟수"),
    never by its code.

    Examples
    --------
    >>> feature_label("n_add_to_cart_30d", "ko"), feature_label("n_add_to_cart_30d", "en")
    ('최근 30일 장바구니 담기 횟수', 'Cart additions in the last 30 days')
    """
    feature = _features(config or LifecycleConfig()).get(name)
    if feature is None:
        return name if lang == "ko" else name.replace("_", " ")
    values: dict[str, object] = dict(feature.params)
    key = feature.sentence
    if key in NAMED_LABELS and "event" in values:
        event = glossary.event_name(str(values["event"]), lang)
        values |= {"event": event, "event_names": plural(event, 2) if lang == "en" else event}
        key = NAMED_LABELS[key]
    elif key in NAMED_LABELS and "channel" in values:
        values["channel"] = glossary.channel_name(str(values["channel"]), lang)
        key = NAMED_LABELS[key]
    label = glossary.text(f"label.{key}", lang, **values)
    return label[:1].upper() + label[1:]


def amount(value: float | None, currency: str | None, lang: Lang) -> Markup:
    """Return a compact amount in a ``<span>`` whose title (shown on hover) is the exact one.

    Examples
    --------
    >>> str(amount(94412.35, "USD", "en"))
    '<span class="money" title="94,412.35 USD">94.4K USD</span>'
    """
    exact, shown = money(value, currency, lang), compact_money(value, currency, lang)
    if exact.replace(".00 ", " ") == shown:  # nothing rounded away: no hover needed
        return Markup(f'<span class="money">{escape(shown)}</span>')  # noqa: S704
    return Markup(  # noqa: S704
        f'<span class="money" title="{escape(exact)}">{escape(shown)}</span>'
    )


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
        expected=compact_money(expected, currency, lang),
        low=compact_money(low, currency, lang),
        high=compact_money(high, currency, lang),
    )


def code_name(code: str | None, lang: Lang) -> str:
    """Return an event type or channel code for people ("cart addition" / "장바구니 담기")."""
    if not code:
        return ""
    for table in (glossary.EVENT_NAMES, glossary.CHANNEL_NAMES):
        if code in table:
            return table[code][lang]
    return code.replace("_", " ")
