"""Driver sentences for one prediction: SHAP contributions in words a marketer reads (en, ko).

LightGBM's ``pred_contrib`` gives, for one customer and one task, an additive contribution per
feature plus the base value, on the model's raw scale: log-odds for ``next_stage`` and
``churn``, the log of the expected value for ``clv`` (a Tweedie model, so its contributions
multiply the value). :func:`explain` keeps the ``top_k`` largest, quotes the customer's value
next to a typical one and says, in words, which way the feature moves the prediction and how
strongly (:data:`STRENGTH_THRESHOLDS`).

SHAP values describe the model, not the customer's motives, so a sentence only ever says that a
value *raises* or *lowers* the predicted score; it never claims a cause.

Templates are chosen by exact name, then by name pattern (windows, event types and channels
come from the config, so ``n_events_{w}d``, ``n_{event_type}_30d``, ``n_channel_{channel}``
and friends work for any config), then by the feature's family with its description, and last
by a generic sentence built from the name: an unknown feature never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from features.config import LifecycleConfig
from features.definitions import feature_definitions
from features.schema import STAGES

# Same names as models.lgbm.Task; not imported from there to keep lightgbm out of serving.
Task = Literal["next_stage", "churn", "clv"]
Lang = Literal["en", "ko"]
Strength = Literal["slightly", "moderately", "strongly"]
Direction = Literal["up", "down"]

TASKS: tuple[Task, ...] = ("next_stage", "churn", "clv")
LANGS: tuple[Lang, ...] = ("en", "ko")

TASK_LABELS: dict[Task, dict[Lang, str]] = {
    "next_stage": {
        "en": "the chance of moving to the next stage",
        "ko": "다음 단계로 넘어갈 가능성",
    },
    "churn": {"en": "churn risk", "ko": "이탈 위험"},
    "clv": {"en": "expected customer value", "ko": "예상 고객 가치"},
}
"""What each prediction is called in a sentence."""

STRENGTH_THRESHOLDS: dict[Task, tuple[float, float]] = {
    "next_stage": (0.15, 0.5),
    "churn": (0.15, 0.5),
    "clv": (0.1, 0.4),
}
"""Bounds on ``|contribution|``: below the first reads "slightly", below the second
"moderately", anything else "strongly".

The classifiers' contributions are log-odds: around a 50 % probability, 0.15 moves it by about
4 points and 0.5 by about 12. CLV's are in log space: 0.1 multiplies the expected value by about
1.1 and 0.4 by about 1.5."""

STRENGTH_WORDS: dict[Lang, dict[Strength, str]] = {
    "en": {"slightly": "slightly", "moderately": "moderately", "strongly": "strongly"},
    "ko": {"slightly": "약간", "moderately": "어느 정도", "strongly": "크게"},
}

STAGE_NAMES: dict[Lang, tuple[str, ...]] = {
    "en": STAGES,
    "ko": ("인지", "가입", "첫 구매", "재구매", "충성"),
}
"""Stage names by ``stage_code`` (0 reach ... 4 loyalty)."""

FAMILY_LABELS: dict[str, dict[Lang, str]] = {
    "activity": {"en": "activity", "ko": "활동"},
    "tenure": {"en": "tenure", "ko": "이용 기간"},
    "recency": {"en": "recency", "ko": "최근성"},
    "frequency": {"en": "purchase frequency", "ko": "구매 빈도"},
    "monetary": {"en": "spend", "ko": "구매 금액"},
    "rhythm": {"en": "buying rhythm", "ko": "구매 주기"},
    "trend": {"en": "recent trend", "ko": "최근 추세"},
    "refunds": {"en": "refunds", "ko": "환불"},
    "campaigns": {"en": "campaigns", "ko": "캠페인"},
    "advocacy": {"en": "advocacy", "ko": "추천·충성 활동"},
    "channel": {"en": "channel", "ko": "유입 채널"},
    "stage": {"en": "lifecycle stage", "ko": "라이프사이클 단계"},
}
"""Family names used by the fallback sentence of a feature without its own template."""

RFM_FEATURES: tuple[str, ...] = ("rfm_r", "rfm_f", "rfm_m")

# Currencies quoted without minor units.
_ZERO_DECIMAL_CURRENCIES = frozenset({"CLP", "ISK", "JPY", "KRW", "VND"})

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Templates

Kind = Literal[
    "count",
    "days",
    "spread_days",
    "money",
    "ratio",
    "percent",
    "score",
    "stage",
    "delta_count",
    "delta_money",
    "number",
]

_TYPICAL = {"en": "for a typical customer it is {t}", "ko": "일반적인 고객의 경우 {t}입니다"}
_TYPICAL_AGO_KO = "일반적인 고객의 경우 {t} 전입니다"
_OWN_GAP = {"en": "this customer usually buys every {t}", "ko": "이 고객은 보통 {t}마다 구매합니다"}
_NO_PURCHASE = {"en": "No purchase yet", "ko": "아직 구매 이력이 없습니다"}
_NO_ACTIVITY = {"en": "No activity recorded yet", "ko": "아직 활동 기록이 없습니다"}
_DAY = ("day", "days")
_EVENT = ("event", "events")
_PURCHASE = ("purchase", "purchases")


@dataclass(frozen=True, slots=True)
class _Wording:
    """One language's sentence parts; ``{v}`` and ``{t}`` take the formatted values."""

    fact: str
    missing: str
    typical: str


@dataclass(frozen=True, slots=True)
class _Template:
    """How one feature is quoted: value kind, units and the wording in each language."""

    kind: Kind
    en: _Wording
    ko: _Wording
    unit: tuple[str, str] = ("", "")
    counter: str = ""
    zero_is_missing: bool = False
    own_gap: bool = False


def _t(
    kind: Kind,
    en: tuple[str, str] | tuple[str, str, str],
    ko: tuple[str, str] | tuple[str, str, str],
    *,
    unit: tuple[str, str] = ("", ""),
    counter: str = "",
    zero_is_missing: bool = False,
    own_gap: bool = False,
) -> _Template:
    """Build a template from (fact, missing[, typical]) pairs, with the default typical clause."""
    en_typical = en[2] if len(en) == 3 else _TYPICAL["en"]
    ko_typical = ko[2] if len(ko) == 3 else _TYPICAL["ko"]
    return _Template(
        kind,
        _Wording(en[0], en[1], en_typical),
        _Wording(ko[0], ko[1], ko_typical),
        unit,
        counter,
        zero_is_missing,
        own_gap,
    )


def _days_ago(
    en_fact: str, ko_fact: str, missing: Mapping[str, str], *, own_gap: bool = False
) -> _Template:
    """Build a template for a "days since ..." feature."""
    return _t(
        "days",
        (en_fact, missing["en"]),
        (ko_fact, missing["ko"], _TYPICAL_AGO_KO),
        unit=_DAY,
        counter="일",
        own_gap=own_gap,
    )


def _rfm(letter: str, en_what: str, ko_what: str) -> _Template:
    """Build the template of one RFM score (0 means no purchase yet)."""
    return _t(
        "score",
        (f"Rated {{v}} for {en_what}", f"No purchase yet ({letter} score 0)"),
        (f"{ko_what} 등급은 {{v}}입니다", f"아직 구매 이력이 없습니다({letter} 점수 0점)"),
        unit=(f"{letter} score", f"{letter} score"),
        counter=f"{letter} 점수",
        zero_is_missing=True,
    )


_FIXED: dict[str, _Template] = {
    "n_events": _t(
        "count",
        ("The customer has {v} in total", "The number of events is not known"),
        ("누적 활동 건수는 {v}입니다", "활동 건수 정보가 없습니다"),
        unit=_EVENT,
        counter="건",
    ),
    "days_since_first_event": _days_ago(
        "First activity was {v} ago", "첫 활동은 {v} 전입니다", _NO_ACTIVITY
    ),
    "days_since_last_event": _days_ago(
        "Last activity was {v} ago", "마지막 활동은 {v} 전입니다", _NO_ACTIVITY
    ),
    "n_purchases": _t(
        "count",
        ("The customer has made {v} in total", "The number of purchases is not known"),
        ("누적 구매 횟수는 {v}입니다", "구매 횟수 정보가 없습니다"),
        unit=_PURCHASE,
        counter="회",
    ),
    "revenue_total": _t(
        "money",
        ("Total spend is {v}", "Total spend is not known"),
        ("누적 구매 금액은 {v}입니다", "누적 구매 금액 정보가 없습니다"),
    ),
    "net_revenue_total": _t(
        "money",
        ("Total spend after refunds is {v}", "Total spend after refunds is not known"),
        ("환불을 뺀 누적 구매 금액은 {v}입니다", "환불을 뺀 누적 구매 금액 정보가 없습니다"),
    ),
    "avg_order_value": _t(
        "money",
        ("Average order value is {v}", _NO_PURCHASE["en"]),
        ("평균 주문 금액은 {v}입니다", _NO_PURCHASE["ko"]),
    ),
    "max_order_value": _t(
        "money",
        ("Largest single order is {v}", _NO_PURCHASE["en"]),
        ("가장 큰 주문 금액은 {v}입니다", _NO_PURCHASE["ko"]),
    ),
    "days_since_last_purchase": _days_ago(
        "Last purchase was {v} ago", "마지막 구매는 {v} 전입니다", _NO_PURCHASE, own_gap=True
    ),
    "days_since_first_purchase": _days_ago(
        "First purchase was {v} ago", "첫 구매는 {v} 전입니다", _NO_PURCHASE
    ),
    "days_since_signup": _t(
        "days",
        ("Signed up {v} ago", "Has not signed up yet"),
        ("가입한 지 {v}이 지났습니다", "아직 가입하지 않았습니다"),
        unit=_DAY,
        counter="일",
    ),
    "mean_purchase_gap_days": _t(
        "days",
        ("Buys every {v} on average", "Not enough purchases yet to measure a buying rhythm"),
        ("평균 구매 간격은 {v}입니다", "구매 주기를 알 수 있을 만큼 구매 이력이 쌓이지 않았습니다"),
        unit=_DAY,
        counter="일",
    ),
    "var_purchase_gap_days": _t(
        "spread_days",
        (
            "The gap between purchases varies by about {v}",
            "Not enough purchases yet to measure how regular the buying is",
            "for a typical customer it is about {t}",
        ),
        (
            "구매 간격의 편차는 약 {v}입니다",
            "구매 간격이 얼마나 규칙적인지 알 수 있을 만큼 구매 이력이 쌓이지 않았습니다",
            "일반적인 고객의 경우 약 {t}입니다",
        ),
        unit=_DAY,
        counter="일",
    ),
    "purchase_gap_ratio": _t(
        "ratio",
        (
            "Time since the last purchase is {v}",
            "Not enough purchases yet to compare with a usual gap",
        ),
        (
            "마지막 구매 이후 지난 기간은 평소 구매 간격의 {v}입니다",
            "평소 구매 간격과 비교할 만큼 구매 이력이 쌓이지 않았습니다",
        ),
    ),
    "n_refunds": _t(
        "count",
        ("The customer has {v} in total", "The number of refunds is not known"),
        ("누적 환불 건수는 {v}입니다", "환불 건수 정보가 없습니다"),
        unit=("refund", "refunds"),
        counter="건",
    ),
    "refund_amount": _t(
        "money",
        ("Refunded amount is {v}", "Refunded amount is not known"),
        ("누적 환불 금액은 {v}입니다", "누적 환불 금액 정보가 없습니다"),
    ),
    "refund_rate": _t(
        "percent",
        ("Refunds equal {v} of purchases", _NO_PURCHASE["en"]),
        ("구매 대비 환불 비율은 {v}입니다", _NO_PURCHASE["ko"]),
    ),
    "n_campaign_exposures": _t(
        "count",
        ("The customer has received {v}", "The number of campaign offers is not known"),
        ("캠페인 제안을 받은 횟수는 {v}입니다", "캠페인 제안 횟수 정보가 없습니다"),
        unit=("campaign offer", "campaign offers"),
        counter="회",
    ),
    "n_campaign_responses": _t(
        "count",
        (
            "The customer has made {v} through a campaign",
            "The number of campaign purchases is not known",
        ),
        ("캠페인을 통한 구매 횟수는 {v}입니다", "캠페인을 통한 구매 정보가 없습니다"),
        unit=_PURCHASE,
        counter="회",
    ),
    "days_since_last_campaign_exposure": _days_ago(
        "Last campaign offer was {v} ago",
        "마지막 캠페인 제안은 {v} 전입니다",
        {"en": "No campaign offer received yet", "ko": "아직 받은 캠페인 제안이 없습니다"},
    ),
    "n_loyalty_signals": _t(
        "count",
        (
            "The customer has {v} (referrals, loyalty-programme joins, reviews)",
            "The number of loyalty signals is not known",
        ),
        ("추천·멤버십 가입·리뷰 같은 충성 활동은 {v}입니다", "충성 활동 정보가 없습니다"),
        unit=("loyalty signal", "loyalty signals"),
        counter="건",
    ),
    "stage_code": _t(
        "stage",
        (
            "The customer is in the {v} stage",
            "The lifecycle stage is not known",
            "a typical customer is in the {t} stage",
        ),
        (
            "현재 라이프사이클 단계는 {v} 단계입니다",
            "라이프사이클 단계 정보가 없습니다",
            "일반적인 고객은 {t} 단계입니다",
        ),
    ),
    "days_in_stage": _t(
        "days",
        ("In the current stage for {v}", "Time in the current stage is not known"),
        ("현재 단계에 들어온 지 {v}이 되었습니다", "현재 단계에 머문 기간 정보가 없습니다"),
        unit=_DAY,
        counter="일",
    ),
    "rfm_r": _rfm("R", "recency", "최근성"),
    "rfm_f": _rfm("F", "purchase frequency", "구매 빈도"),
    "rfm_m": _rfm("M", "spend", "구매 금액"),
}
"""Templates of the features with a fixed name."""

_EVENT_LABELS: dict[str, tuple[str, str, str]] = {
    "visit": ("visit", "visits", "방문"),
    "ad_click": ("ad click", "ad clicks", "광고 클릭"),
    "app_install": ("app install", "app installs", "앱 설치"),
    "app_open": ("app open", "app opens", "앱 실행"),
    "email_open": ("email open", "email opens", "이메일 열람"),
    "signup": ("sign-up", "sign-ups", "회원 가입"),
    "add_to_cart": ("cart addition", "cart additions", "장바구니 담기"),
    "purchase": ("purchase", "purchases", "구매"),
    "refund": ("refund", "refunds", "환불"),
    "referral": ("referral", "referrals", "추천"),
    "loyalty_join": ("loyalty-programme join", "loyalty-programme joins", "멤버십 가입"),
    "review": ("review", "reviews", "리뷰 작성"),
    "support_ticket": ("support ticket", "support tickets", "고객 문의"),
    "campaign_exposure": ("campaign offer", "campaign offers", "캠페인 노출"),
}
"""Event type (as a column-name suffix) -> en singular, en plural, ko noun."""

_CHANNEL_LABELS: dict[str, tuple[str, str]] = {
    "organic_search": ("organic search", "자연 검색"),
    "paid_social": ("paid social", "유료 소셜"),
    "email": ("email", "이메일"),
    "referral": ("referral", "추천"),
    "affiliate": ("affiliate", "제휴"),
    "direct": ("direct", "직접 유입"),
}


def _plain(text: str) -> str:
    """Return a name or description safe to quote: underscores as spaces, no braces."""
    return text.replace("_", " ").replace("{", "").replace("}", "").strip() or "unnamed"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _event_label(suffix: str) -> tuple[str, str, str]:
    """Return the en singular, en plural and ko noun of an event type suffix."""
    known = _EVENT_LABELS.get(suffix)
    if known is not None:
        return known
    name = _plain(suffix)
    return f"'{name}' event", f"'{name}' events", f"'{name}' 이벤트"


def _events_window(m: re.Match[str]) -> _Template:
    w = m.group(1)
    return _t(
        "count",
        (
            f"The customer had {{v}} in the last {w} days",
            f"The number of events in the last {w} days is not known",
        ),
        (f"최근 {w}일 활동 건수는 {{v}}입니다", f"최근 {w}일 활동 건수 정보가 없습니다"),
        unit=_EVENT,
        counter="건",
    )


def _purchases_window(m: re.Match[str]) -> _Template:
    w = m.group(1)
    return _t(
        "count",
        (
            f"The customer made {{v}} in the last {w} days",
            f"The number of purchases in the last {w} days is not known",
        ),
        (f"최근 {w}일 구매 횟수는 {{v}}입니다", f"최근 {w}일 구매 횟수 정보가 없습니다"),
        unit=_PURCHASE,
        counter="회",
    )


def _revenue_window(m: re.Match[str]) -> _Template:
    w = m.group(1)
    return _t(
        "money",
        (f"Spend in the last {w} days is {{v}}", f"Spend in the last {w} days is not known"),
        (f"최근 {w}일 구매 금액은 {{v}}입니다", f"최근 {w}일 구매 금액 정보가 없습니다"),
    )


_TREND_WORDS: dict[str, tuple[Kind, tuple[str, str], str, str]] = {
    # kind, en unit, ko counter, ko noun
    "purchase": ("delta_count", _PURCHASE, "회", "구매 횟수"),
    "revenue": ("delta_money", ("revenue", "revenue"), "", "구매 금액"),
    "activity": ("delta_count", _EVENT, "건", "활동 건수"),
}


def _trend(m: re.Match[str]) -> _Template:
    what, w = m.group(1), m.group(2)
    kind, unit, counter, ko_noun = _TREND_WORDS[what]
    return _t(
        kind,
        (
            f"Compared with the {w} days before, the last {w} days had {{v}}",
            f"The change in {unit[1]} over the last {w} days is not known",
            "a typical customer had {t}",
        ),
        (
            f"최근 {w}일 {ko_noun}의 직전 {w}일 대비 변화는 {{v}}입니다",
            f"최근 {w}일 {ko_noun} 변화 정보가 없습니다",
        ),
        unit=unit,
        counter=counter,
    )


def _channel(m: re.Match[str]) -> _Template:
    suffix = m.group(1)
    if suffix == "other":
        en_where, ko_where = "on other channels", "기타 채널"
    else:
        en_label, ko_label = _CHANNEL_LABELS.get(suffix, (f"'{_plain(suffix)}'", ""))
        en_where = f"on the {en_label} channel"
        ko_where = f"{ko_label or en_label} 채널"
    return _t(
        "count",
        (
            f"The customer has {{v}} {en_where}",
            f"The number of events {en_where} is not known",
        ),
        (f"{ko_where} 활동 건수는 {{v}}입니다", f"{ko_where} 활동 건수 정보가 없습니다"),
        unit=_EVENT,
        counter="건",
    )


def _event_type_window(m: re.Match[str]) -> _Template:
    one, many, ko_noun = _event_label(m.group(1))
    w = m.group(2)
    return _t(
        "count",
        (
            f"The customer had {{v}} in the last {w} days",
            f"The number of {many} in the last {w} days is not known",
        ),
        (f"최근 {w}일 {ko_noun} 횟수는 {{v}}입니다", f"최근 {w}일 {ko_noun} 횟수 정보가 없습니다"),
        unit=(one, many),
        counter="회",
    )


def _event_type_total(m: re.Match[str]) -> _Template:
    one, many, ko_noun = _event_label(m.group(1))
    return _t(
        "count",
        ("The customer has {v} in total", f"The number of {many} is not known"),
        (f"누적 {ko_noun} 횟수는 {{v}}입니다", f"{ko_noun} 횟수 정보가 없습니다"),
        unit=(one, many),
        counter="회",
    )


_PATTERNS: tuple[tuple[re.Pattern[str], str, Callable[[re.Match[str]], _Template]], ...] = (
    (re.compile(r"n_events_(\d+)d"), "activity", _events_window),
    (re.compile(r"n_purchases_(\d+)d"), "frequency", _purchases_window),
    (re.compile(r"revenue_(\d+)d"), "monetary", _revenue_window),
    (re.compile(r"(purchase|revenue|activity)_trend_(\d+)d"), "trend", _trend),
    (re.compile(r"n_channel_(\w+)"), "channel", _channel),
    (re.compile(r"n_(\w+)_(\d+)d"), "activity", _event_type_window),
    (re.compile(r"n_(\w+)"), "activity", _event_type_total),
)
"""Name patterns (full match), the family each implies, and the template they build."""

_FAMILY_KINDS: dict[str, Kind] = {"monetary": "money", "recency": "days", "tenure": "days"}


def _family_template(family: str, description: str) -> _Template:
    """Build the fallback template of a known family, quoting the feature's description."""
    desc = _plain(description)
    en_family, ko_family = FAMILY_LABELS[family]["en"], FAMILY_LABELS[family]["ko"]
    kind = _FAMILY_KINDS.get(family, "number")
    days = kind == "days"
    return _t(
        kind,
        (
            f"{_capitalised(desc)} ({en_family}): {{v}}",
            f"{_capitalised(desc)} ({en_family}) is not recorded for this customer",
        ),
        (f"{ko_family} 지표({desc})는 {{v}}입니다", f"{ko_family} 지표({desc}) 값이 없습니다"),
        unit=_DAY if days else ("", ""),
        counter="일" if days else "",
    )


def _generic_template(name: str, description: str | None = None) -> _Template:
    """Build the template of a feature nothing else knows, from its name or description."""
    label = _plain(description or name)
    return _t(
        "number",
        (f"{_capitalised(label)}: {{v}}", f"{_capitalised(label)} is not recorded"),
        (f"'{label}' 지표는 {{v}}입니다", f"'{label}' 지표 값이 없습니다"),
    )


def _resolve(name: str, family: str | None, description: str | None) -> _Template:
    """Pick a feature's template: exact name, then pattern, then family, then generic."""
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed
    for pattern, pattern_family, build in _PATTERNS:
        match = pattern.fullmatch(name)
        # A declared feature of another family only shares the name's shape: trust the family.
        if match is not None and family in (None, pattern_family):
            return build(match)
    if family in FAMILY_LABELS and description:
        return _family_template(family, description)
    return _generic_template(name, description)


class _Book:
    """Templates for one config, resolved once per feature name and kept."""

    def __init__(self, config: LifecycleConfig) -> None:
        self.catalog = {
            f.name: (f.family, f.description) for f in feature_definitions(config) if not f.internal
        }
        self.bins = config.rfm.bins
        self._templates: dict[str, _Template] = {}

    def template(
        self, name: str, family: str | None = None, description: str | None = None
    ) -> _Template:
        """Return the template of ``name``; ``family`` and ``description`` override the config."""
        if family is None and description is None:
            found = self._templates.get(name)
            if found is None:
                found = self._templates[name] = _resolve(
                    name, *self.catalog.get(name, (None, None))
                )
            return found
        known_family, known_description = self.catalog.get(name, (None, None))
        return _resolve(name, family or known_family, description or known_description)


@lru_cache(maxsize=8)
def _book(config: LifecycleConfig | None) -> _Book:
    """Return the template book of a config (the shipped default when None)."""
    return _Book(config or LifecycleConfig())


# --------------------------------------------------------------------------------------------
# Numbers in words


def _tidy(x: float, digits: int) -> float:
    """Round, turning -0.0 into 0.0 so no "-0" is ever printed."""
    return round(x, digits) + 0.0


def _money(x: float, currency: str) -> str:
    digits = 0 if currency.upper() in _ZERO_DECIMAL_CURRENCIES else 2
    amount = f"{_tidy(x, digits):,.{digits}f}"
    return f"{amount} {currency}" if currency else amount


def _number(x: float) -> str:
    """Format a number of unknown meaning: whole numbers bare, others with up to 2 decimals."""
    text = f"{_tidy(x, 2):,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _counted(n: int, lang: str, unit: tuple[str, str], counter: str) -> str:
    """Return ``n`` with its unit: "1 day", "3 days", "3일"."""
    if lang == "ko":
        return f"{n:,}{counter}"
    word = unit[0] if abs(n) == 1 else unit[1]
    return f"{n:,} {word}" if word else f"{n:,}"


def _delta(x: float, tpl: _Template, lang: str, currency: str) -> str:
    """Format a change against the previous window ("2 more purchases", ko "+2회")."""
    if tpl.kind == "delta_money":
        digits = 0 if currency.upper() in _ZERO_DECIMAL_CURRENCIES else 2
        amount = _tidy(x, digits)
        if lang == "ko":
            return ("+" if amount > 0 else "") + _money(amount, currency)
        if amount == 0:
            return "the same revenue"
        return f"{_money(abs(amount), currency)} {'more' if amount > 0 else 'less'} revenue"
    n = round(x)
    if lang == "ko":
        return ("+" if n > 0 else "") + _counted(n, lang, tpl.unit, tpl.counter)
    if n == 0:
        return f"the same number of {tpl.unit[1]}"
    word = tpl.unit[0] if abs(n) == 1 else tpl.unit[1]
    return f"{abs(n):,} {'more' if n > 0 else 'fewer'} {word}"


def _format(x: float, tpl: _Template, lang: str, currency: str, bins: int) -> str:
    """Write a finite value the way its template's kind reads."""
    kind = tpl.kind
    if kind == "money":
        return _money(x, currency)
    if kind in ("count", "days"):
        return _counted(round(x), lang, tpl.unit, tpl.counter)
    if kind == "spread_days":
        return _counted(round(math.sqrt(max(x, 0.0))), lang, tpl.unit, tpl.counter)
    if kind == "ratio":
        ratio = f"{_tidy(x, 1):.1f}"
        return f"{ratio}배" if lang == "ko" else f"{ratio} times the usual gap"
    if kind == "percent":
        return f"{_tidy(100 * x, 0):.0f}%"
    if kind == "score":
        n = round(x)
        if lang == "ko":
            return f"{tpl.counter} {bins}점 중 {n}점"
        return f"{tpl.unit[0]} {n} of {bins}"
    if kind == "stage":
        code = round(x)
        names = STAGE_NAMES["ko" if lang == "ko" else "en"]
        return names[code] if 0 <= code < len(names) else str(code)
    if kind in ("delta_count", "delta_money"):
        return _delta(x, tpl, lang, currency)
    return _number(x)


# --------------------------------------------------------------------------------------------
# Effect sentences


def _object_particle(word: str) -> str:
    """Return the Korean object particle for ``word``: 을 after a final consonant, else 를."""
    last = word[-1]
    if "가" <= last <= "힣" and (ord(last) - ord("가")) % 28 == 0:
        return "를"
    return "을"


_EN_OBJECTS: dict[Task, str] = {
    "next_stage": "the predicted chance of moving to the next stage",
    "churn": "the predicted churn risk",
    "clv": "the predicted customer value",
}


def _effect_table() -> dict[tuple[Task, str, Direction, Strength], str]:
    """Every closing sentence, by task, language, direction and strength."""
    table: dict[tuple[Task, str, Direction, Strength], str] = {}
    for task in TASKS:
        ko_label = TASK_LABELS[task]["ko"]
        for strength in ("slightly", "moderately", "strongly"):
            for direction in ("up", "down"):
                verb = "raises" if direction == "up" else "lowers"
                table[task, "en", direction, strength] = (
                    f"This {STRENGTH_WORDS['en'][strength]} {verb} {_EN_OBJECTS[task]}."
                )
                ko_verb = "높입니다" if direction == "up" else "낮춥니다"
                table[task, "ko", direction, strength] = (
                    f"이 점이 {ko_label}{_object_particle(ko_label)} "
                    f"{STRENGTH_WORDS['ko'][strength]} {ko_verb}."
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


# --------------------------------------------------------------------------------------------
# Sentences


def _finite(x: float | None) -> float | None:
    """Return ``x`` as a float, or None when it is missing, NaN or infinite."""
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _sentence(
    tpl: _Template,
    value: float | None,
    typical: float | None,
    own_gap: float | None,
    effect: str,
    lang: str,
    currency: str,
    bins: int,
) -> str:
    """Join the fact (or the missing wording), the comparison and the effect."""
    wording = tpl.ko if lang == "ko" else tpl.en
    if value is None or (tpl.zero_is_missing and round(value) <= 0):
        return f"{wording.missing}. {effect}"
    fact = wording.fact.replace("{v}", _format(value, tpl, lang, currency, bins))
    if own_gap is not None and tpl.own_gap:
        gap = _counted(round(own_gap), lang, _DAY, "일")
        compare = _OWN_GAP[lang].replace("{t}", gap)
    elif typical is not None:
        compare = wording.typical.replace("{t}", _format(typical, tpl, lang, currency, bins))
    else:
        return f"{fact}. {effect}"
    return f"{fact}{'. ' if lang == 'ko' else '; '}{compare}. {effect}"


def _check(task: str, lang: str, top_k: int = 1) -> None:
    if task not in STRENGTH_THRESHOLDS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGS)}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")


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
) -> str:
    """Write the sentence for one feature's contribution to one prediction.

    Parameters
    ----------
    task
        ``next_stage``, ``churn`` or ``clv``.
    feature
        Feature name; unknown names get a fallback sentence.
    value
        The customer's value (None or NaN: missing).
    contribution
        The feature's SHAP value on the model's raw scale (its sign and size are put in words).
    typical
        The typical value (median of the reference population); None or NaN leaves the
        comparison out.
    lang
        ``en`` or ``ko``.
    currency
        Currency code quoted after amounts (None or empty: none).
    own_gap_days
        The customer's own mean days between purchases: compared with
        ``days_since_last_purchase`` in place of ``typical`` when given and finite.
    family, description
        Family and description of a feature that ``config`` does not define (they choose the
        fallback sentence).
    config
        Lifecycle config whose feature definitions name the families (the default when None).

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
    """
    _check(task, lang)
    book = _book(config)
    tpl = book.template(feature, family, description)
    effect = _EFFECTS[
        task, lang, "up" if contribution > 0 else "down", strength(task, contribution)
    ]
    return _sentence(
        tpl,
        _finite(value),
        _finite(typical),
        _finite(own_gap_days),
        effect,
        lang,
        currency or "",
        book.bins,
    )


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
        Currency code quoted after amounts (None or empty: none).
    config
        Lifecycle config whose feature definitions name the families of features without a
        template of their own (the shipped default when None).

    Returns
    -------
    dict
        ``base_value`` (the last contribution) and ``drivers``: at most ``top_k`` dicts with
        ``feature``, ``value`` (None when missing or infinite), ``contribution``, ``direction``
        (``up`` or ``down``) and ``text``, largest ``|contribution|`` first (ties in feature
        order). Zero (and NaN) contributions are never drivers.

    Raises
    ------
    ValueError
        On an unknown task or language, ``top_k < 1``, or lengths that do not line up.

    Examples
    --------
    >>> out = explain("churn", [0.9, -0.1, -1.2], ["days_since_last_purchase", "n_purchases"],
    ...               [94.0, 3.0], typical={"days_since_last_purchase": 30.0}, top_k=1)
    >>> out["base_value"], out["drivers"][0]["direction"]
    (-1.2, 'up')
    >>> out["drivers"][0]["text"].split(". ")
    ['Last purchase was 94 days ago; for a typical customer it is 30 days', \
'This strongly raises the predicted churn risk.']
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
    size = np.abs(contrib[:n])
    size[~np.isfinite(size)] = 0.0
    order = np.argsort(-size, kind="stable")[:top_k]
    book = _book(config)
    money = currency or ""
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
        effect = _EFFECTS[task, lang, direction, strength(task, c)]
        text = _sentence(
            tpl, value, _finite(typical.get(name)), own_gap, effect, lang, money, book.bins
        )
        drivers.append(
            {
                "feature": name,
                "value": value,
                "contribution": c,
                "direction": direction,
                "text": text,
            }
        )
    return {"base_value": float(contrib[n]), "drivers": drivers}


def _own_gap(feature_names: Sequence[str], values: FloatArray) -> float | None:
    """Return the customer's mean purchase gap when it is a feature with a finite value."""
    try:
        i = list(feature_names).index("mean_purchase_gap_days")
    except ValueError:
        return None
    return _finite(values[i])
