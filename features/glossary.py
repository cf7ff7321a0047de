"""Every word a person reads, in English and Korean: the project's one glossary.

This module owns the words; :mod:`lifecycle.features.formatting` owns how numbers, percentages,
money,
dates and day counts are written. Together they are the only home of reader-facing text: the
marketer page (``lifecycle.serving.i18n`` and its templates), the driver sentences
(``lifecycle.serving.explain``)
and the next-best-action reasons (``lifecycle.models.nba``) all take their words from here, so a
stage,
segment, event or channel has one name per language everywhere.

The tables, each a mapping from a key to a phrase in both languages:

- :data:`STAGE_NAMES`, :data:`SEGMENT_NAMES`: lifecycle stages and RFM segments;
- :data:`TASK_LABELS`, :data:`STRENGTH_WORDS`, :data:`FAMILY_LABELS`: what the predictions are
  called, how strongly a feature moves one, and the feature families;
- :data:`EVENT_NAMES`, :data:`CHANNEL_NAMES`: event types and channels (English singular; the
  plural adds an ``s``, see :func:`lifecycle.features.formatting.plural`);
- :data:`FEATURE_LABELS`: a feature's short name, by its sentence key (the English one is the
  feature's description in :mod:`lifecycle.features.definitions`);
- :data:`SENTENCES`: the driver sentence of each sentence key, in parts (``fact``, ``missing``,
  ``typical``, ``unit``); :data:`PHRASES`: the parts sentences share;
- :data:`REASONS`: the next-best-action reasons; :data:`PAGE_WORDS`: the page's words.

:func:`text` reads any phrase by ``"<table>.<key>"`` and fills its ``{placeholders}``. Keys are
never derived from a feature's name: a feature carries its sentence key and parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias

from lifecycle.features.schema import STAGES

Lang: TypeAlias = Literal["en", "ko"]
"""A language of the glossary."""

LANGS: tuple[Lang, ...] = ("en", "ko")
"""Every language; every phrase exists in each of them."""

Phrase: TypeAlias = Mapping[Lang, str]
"""One phrase in every language."""


def _pairs(table: Mapping[str, tuple[str, str]]) -> dict[str, Phrase]:
    """Build a table from ``key: (english, korean)`` pairs."""
    return {key: {"en": en, "ko": ko} for key, (en, ko) in table.items()}


STAGE_NAMES: dict[str, Phrase] = _pairs(
    {
        "reach": ("reach", "인지"),
        "acquisition": ("acquisition", "가입"),
        "conversion": ("conversion", "첫 구매"),
        "retention": ("retention", "재구매"),
        "loyalty": ("loyalty", "충성"),
    }
)
"""Lifecycle stages, by id (English: the id itself, lower case, as sentences quote it)."""

STAGE_NAMES_BY_CODE: dict[Lang, tuple[str, ...]] = {
    lang: tuple(STAGE_NAMES[stage][lang] for stage in STAGES) for lang in LANGS
}
"""The same names by ``stage_code`` (0 reach ... 4 loyalty)."""

SEGMENT_NAMES: dict[str, Phrase] = _pairs(
    {
        "Champions": ("Champions", "챔피언"),
        "Loyal": ("Loyal", "충성 고객"),
        "Potential loyalist": ("Potential loyalist", "잠재 충성 고객"),
        "New": ("New", "신규 고객"),
        "Promising": ("Promising", "유망 고객"),
        "Need attention": ("Need attention", "관심 필요"),
        "About to sleep": ("About to sleep", "휴면 직전"),
        "Cannot lose them": ("Cannot lose them", "놓치면 안 되는 고객"),
        "At risk": ("At risk", "이탈 우려 고객"),
        "Hibernating": ("Hibernating", "휴면"),
        "Lost": ("Lost", "이탈 고객"),
        "No purchase yet": ("No purchase yet", "구매 전"),
    }
)
"""RFM segments, by the segment id of :mod:`lifecycle.features.rfm`."""

TASK_LABELS: dict[str, Phrase] = _pairs(
    {
        "next_stage": ("the chance of moving to the next stage", "다음 단계로 넘어갈 가능성"),
        "churn": ("churn risk", "이탈 위험"),
        "clv": ("expected customer value", "예상 고객 가치"),
    }
)
"""What each prediction is called in a sentence."""

STRENGTH_WORDS: dict[str, Phrase] = _pairs(
    {
        "slightly": ("slightly", "약간"),
        "moderately": ("moderately", "어느 정도"),
        "strongly": ("strongly", "크게"),
    }
)
"""How strongly a feature moves a prediction."""

FAMILY_LABELS: dict[str, Phrase] = _pairs(
    {
        "activity": ("activity", "활동"),
        "tenure": ("tenure", "이용 기간"),
        "recency": ("recency", "최근성"),
        "frequency": ("purchase frequency", "구매 빈도"),
        "monetary": ("spend", "구매 금액"),
        "rhythm": ("buying rhythm", "구매 주기"),
        "trend": ("recent trend", "최근 추세"),
        "refunds": ("refunds", "환불"),
        "campaigns": ("campaigns", "캠페인"),
        "advocacy": ("advocacy", "추천·충성 활동"),
        "channel": ("channel", "유입 채널"),
        "stage": ("lifecycle stage", "라이프사이클 단계"),
    }
)
"""Feature families (the ``family`` of :class:`lifecycle.features.definitions.Feature`)."""

EVENT_NAMES: dict[str, Phrase] = _pairs(
    {
        "visit": ("visit", "방문"),
        "ad_click": ("ad click", "광고 클릭"),
        "app_install": ("app install", "앱 설치"),
        "app_open": ("app open", "앱 실행"),
        "email_open": ("email open", "이메일 열람"),
        "signup": ("sign-up", "회원 가입"),
        "add_to_cart": ("cart addition", "장바구니 담기"),
        "purchase": ("purchase", "구매"),
        "refund": ("refund", "환불"),
        "referral": ("referral", "추천"),
        "loyalty_join": ("loyalty-programme join", "멤버십 가입"),
        "review": ("review", "리뷰 작성"),
        "support_ticket": ("support ticket", "고객 문의"),
        "campaign_exposure": ("campaign offer", "캠페인 노출"),
        "offer_redemption": ("offer redemption", "쿠폰·혜택 사용"),
    }
)
"""Event types of the default vocabulary (English singular)."""

CHANNEL_NAMES: dict[str, Phrase] = _pairs(
    {
        "organic_search": ("organic search", "자연 검색"),
        "paid_social": ("paid social", "유료 소셜"),
        "email": ("email", "이메일"),
        "referral": ("referral", "추천"),
        "affiliate": ("affiliate", "제휴"),
        "direct": ("direct", "직접 유입"),
    }
)
"""Channels of the default channel list."""

FEATURE_LABELS: dict[str, Phrase] = _pairs(
    {
        "events_total": ("events of any type, all time", "총 활동 건수"),
        "first_event_ago": ("days since the first event (tenure)", "첫 활동 후 경과일"),
        "last_event_ago": ("days since the latest event of any type", "마지막 활동 후 경과일"),
        "events_window": (
            "events of any type in the last {window} days",
            "최근 {window}일 활동 건수",
        ),
        "purchases_total": ("purchases, all time", "총 구매 횟수"),
        "revenue_total": ("purchase revenue, all time", "총 구매 금액"),
        "net_revenue_total": ("purchase revenue less refunds, all time", "순 구매 금액"),
        "purchases_window": ("purchases in the last {window} days", "최근 {window}일 구매 횟수"),
        "revenue_window": (
            "purchase revenue in the last {window} days",
            "최근 {window}일 구매 금액",
        ),
        "avg_order_value": ("mean revenue per purchase", "평균 주문 금액"),
        "max_order_value": ("largest single purchase", "최대 주문 금액"),
        "last_purchase_ago": ("days since the latest purchase", "마지막 구매 후 경과일"),
        "first_purchase_ago": ("days since the first purchase", "첫 구매 후 경과일"),
        "signup_ago": ("days since sign-up", "가입 후 경과일"),
        "mean_purchase_gap": ("mean days between consecutive purchases", "평균 구매 간격"),
        "purchase_gap_spread": (
            "variance of days between consecutive purchases",
            "구매 간격의 변동",
        ),
        "repeat_purchase_days": (
            "days with a purchase after the first purchase",
            "첫 구매 이후 구매한 날 수",
        ),
        "purchase_rate": ("purchases per 30 days since the first visit", "30일당 구매 횟수"),
        "purchase_gap_ratio": (
            "days since the last purchase relative to the usual gap",
            "평소 구매 간격 대비 경과",
        ),
        "purchase_trend": (
            "purchases in the last {window} days minus the {window} days before",
            "최근 {window}일 구매 추세",
        ),
        "revenue_trend": (
            "revenue in the last {window} days minus the {window} days before",
            "최근 {window}일 구매 금액 추세",
        ),
        "activity_trend": (
            "events in the last {window} days minus the {window} days before",
            "최근 {window}일 활동 추세",
        ),
        "refunds_total": ("refunds, all time", "환불 횟수"),
        "refund_amount": ("refunded amount, all time", "환불 금액"),
        "refund_rate": ("refunds per purchase", "환불 비율"),
        "campaign_offers": ("campaign offers received", "캠페인 노출 횟수"),
        "campaign_purchases": ("purchases attributed to a campaign", "캠페인 반응 구매 횟수"),
        "last_campaign_offer_ago": (
            "days since the latest campaign offer",
            "마지막 캠페인 노출 후 경과일",
        ),
        "redemptions": ("offers redeemed, all time", "쿠폰·혜택 사용 횟수"),
        "redemptions_window": (
            "offers redeemed in the last {window} days",
            "최근 {window}일 쿠폰·혜택 사용 횟수",
        ),
        "redemption_rate": (
            "offers redeemed per campaign offer",
            "캠페인 노출 대비 혜택 사용 비율",
        ),
        "loyalty_signals": (
            "referrals, loyalty-programme joins and reviews",
            "충성 신호(추천·가입·리뷰) 횟수",
        ),
        "event_total": ("'{event}' events, all time", "'{event}' 이벤트 수"),
        "event_window": (
            "'{event}' events in the last {window} days",
            "최근 {window}일 '{event}' 이벤트 수",
        ),
        "channel": ("events on the '{channel}' channel", "'{channel}' 채널 이벤트 수"),
        "channel_other": ("events on any other channel", "기타 채널 이벤트 수"),
        "stage": ("lifecycle stage, 0-4", "라이프사이클 단계"),
        "days_in_stage": (
            "days since the customer entered the current stage",
            "현재 단계 유지 기간",
        ),
        "rfm_r": ("R score (recency)", "R 점수(최근성)"),
        "rfm_f": ("F score (frequency)", "F 점수(빈도)"),
        "rfm_m": ("M score (monetary)", "M 점수(금액)"),
        # the page's labels with the event or channel already in words (i18n.feature_label)
        "event_total_named": ("{event_names}, all time", "{event} 횟수"),
        "event_window_named": (
            "{event_names} in the last {window} days",
            "최근 {window}일 {event} 횟수",
        ),
        "channel_named": ("events on the {channel} channel", "{channel} 채널 활동 건수"),
    }
)
"""A feature's short name, by sentence key; ``{window}``, ``{event}`` and ``{channel}`` are
the feature's parameters."""

_TYPICAL = ("for {who} it is {t}", "{who}의 경우 {t}입니다")
_TYPICAL_AGO = ("for {who} it is {t}", "{who}의 경우 {t} 전입니다")
_NO_PURCHASE = ("No purchase yet", "아직 구매 이력이 없습니다")
_NO_ACTIVITY = ("No activity recorded yet", "아직 활동 기록이 없습니다")
_NO_UNIT = ("", "")
_DAY = ("day", "일")
_EVENT = ("event", "건")
_PURCHASE = ("purchase", "회")

SENTENCES: dict[str, Phrase] = {}
"""Driver sentence parts by ``"<sentence key>.<part>"``; the parts are ``fact`` (with ``{v}``,
the customer's value), ``missing`` (no value), ``typical`` (with ``{t}``, the typical value, and
``{who}``, whose it is: ``phrase.typical_customer`` or ``phrase.typical_stage_customer``) and
``unit`` (English: the counted noun, singular; Korean: the counter)."""


def _sentence(
    key: str,
    fact: tuple[str, str],
    missing: tuple[str, str],
    *,
    unit: tuple[str, str] = _NO_UNIT,
    typical: tuple[str, str] = _TYPICAL,
) -> None:
    """Add one sentence's parts to :data:`SENTENCES`."""
    for part, pair in (("fact", fact), ("missing", missing), ("typical", typical), ("unit", unit)):
        SENTENCES[f"{key}.{part}"] = {"en": pair[0], "ko": pair[1]}


def _ago(key: str, fact: tuple[str, str], missing: tuple[str, str]) -> None:
    """Add the sentence of a "days since ..." feature."""
    _sentence(key, fact, missing, unit=_DAY, typical=_TYPICAL_AGO)


def _rfm(key: str, letter: str, what: tuple[str, str]) -> None:
    """Add the sentence of one RFM score (0 means no purchase yet)."""
    _sentence(
        key,
        (f"Rated {{v}} for {what[0]}", f"{what[1]} 등급은 {{v}}입니다"),
        (f"No purchase yet ({letter} score 0)", f"아직 구매 이력이 없습니다({letter} 점수 0점)"),
        unit=(f"{letter} score", f"{letter} 점수"),
    )


_sentence(
    "events_total",
    ("The customer has {v} in total", "누적 활동 건수는 {v}입니다"),
    ("The number of events is not known", "활동 건수 정보가 없습니다"),
    unit=_EVENT,
)
_ago("first_event_ago", ("First activity was {v} ago", "첫 활동은 {v} 전입니다"), _NO_ACTIVITY)
_ago("last_event_ago", ("Last activity was {v} ago", "마지막 활동은 {v} 전입니다"), _NO_ACTIVITY)
_sentence(
    "events_window",
    (
        "The customer had {v} in the last {window} days",
        "최근 {window}일 활동 건수는 {v}입니다",
    ),
    (
        "The number of events in the last {window} days is not known",
        "최근 {window}일 활동 건수 정보가 없습니다",
    ),
    unit=_EVENT,
)
_sentence(
    "purchases_total",
    ("The customer has made {v} in total", "누적 구매 횟수는 {v}입니다"),
    ("The number of purchases is not known", "구매 횟수 정보가 없습니다"),
    unit=_PURCHASE,
)
_sentence(
    "revenue_total",
    ("Total spend is {v}", "누적 구매 금액은 {v}입니다"),
    ("Total spend is not known", "누적 구매 금액 정보가 없습니다"),
)
_sentence(
    "net_revenue_total",
    ("Total spend after refunds is {v}", "환불을 뺀 누적 구매 금액은 {v}입니다"),
    ("Total spend after refunds is not known", "환불을 뺀 누적 구매 금액 정보가 없습니다"),
)
_sentence(
    "purchases_window",
    (
        "The customer made {v} in the last {window} days",
        "최근 {window}일 구매 횟수는 {v}입니다",
    ),
    (
        "The number of purchases in the last {window} days is not known",
        "최근 {window}일 구매 횟수 정보가 없습니다",
    ),
    unit=_PURCHASE,
)
_sentence(
    "revenue_window",
    ("Spend in the last {window} days is {v}", "최근 {window}일 구매 금액은 {v}입니다"),
    (
        "Spend in the last {window} days is not known",
        "최근 {window}일 구매 금액 정보가 없습니다",
    ),
)
_sentence(
    "avg_order_value",
    ("Average order value is {v}", "평균 주문 금액은 {v}입니다"),
    _NO_PURCHASE,
)
_sentence(
    "max_order_value",
    ("Largest single order is {v}", "가장 큰 주문 금액은 {v}입니다"),
    _NO_PURCHASE,
)
_ago("last_purchase_ago", ("Last purchase was {v} ago", "마지막 구매는 {v} 전입니다"), _NO_PURCHASE)
_ago("first_purchase_ago", ("First purchase was {v} ago", "첫 구매는 {v} 전입니다"), _NO_PURCHASE)
_sentence(
    "signup_ago",
    ("Signed up {v} ago", "가입한 지 {v}이 지났습니다"),
    ("Has not signed up yet", "아직 가입하지 않았습니다"),
    unit=_DAY,
)
_sentence(
    "mean_purchase_gap",
    ("Buys every {v} on average", "평균 구매 간격은 {v}입니다"),
    (
        "Not enough purchases yet to measure a buying rhythm",
        "구매 주기를 알 수 있을 만큼 구매 이력이 쌓이지 않았습니다",
    ),
    unit=_DAY,
)
_sentence(
    "purchase_gap_spread",
    ("The gap between purchases varies by about {v}", "구매 간격의 편차는 약 {v}입니다"),
    (
        "Not enough purchases yet to measure how regular the buying is",
        "구매 간격이 얼마나 규칙적인지 알 수 있을 만큼 구매 이력이 쌓이지 않았습니다",
    ),
    unit=_DAY,
    typical=("for {who} it is about {t}", "{who}의 경우 약 {t}입니다"),
)
_sentence(
    "repeat_purchase_days",
    (
        "The customer has come back to buy on {v} since the first purchase",
        "첫 구매 이후 다시 구매한 날은 {v}입니다",
    ),
    _NO_PURCHASE,
    unit=("day", "일"),
)
_sentence(
    "purchase_rate",
    (
        "Buys {v} per 30 days since the first visit",
        "첫 방문 이후 30일당 {v} 구매합니다",
    ),
    _NO_PURCHASE,
    unit=("times", "회"),
    typical=_TYPICAL,
)
_sentence(
    "purchase_gap_ratio",
    (
        "Time since the last purchase is {v}",
        "마지막 구매 이후 지난 기간은 평소 구매 간격의 {v}입니다",
    ),
    (
        "Not enough purchases yet to compare with a usual gap",
        "평소 구매 간격과 비교할 만큼 구매 이력이 쌓이지 않았습니다",
    ),
    unit=("times the usual gap", "배"),
)
for _key, _what_en, _what_ko, _unit in (
    ("purchase_trend", "purchases", "구매 횟수", _PURCHASE),
    ("revenue_trend", "revenue", "구매 금액", _NO_UNIT),
    ("activity_trend", "events", "활동 건수", _EVENT),
):
    _sentence(
        _key,
        (
            "Compared with the {window} days before, the last {window} days had {v}",
            f"최근 {{window}}일 {_what_ko}의 직전 {{window}}일 대비 변화는 {{v}}입니다",
        ),
        (
            f"The change in {_what_en} over the last {{window}} days is not known",
            f"최근 {{window}}일 {_what_ko} 변화 정보가 없습니다",
        ),
        unit=_unit,
        typical=("{who} had {t}", _TYPICAL[1]),
    )
_sentence(
    "refunds_total",
    ("The customer has {v} in total", "누적 환불 건수는 {v}입니다"),
    ("The number of refunds is not known", "환불 건수 정보가 없습니다"),
    unit=("refund", "건"),
)
_sentence(
    "refund_amount",
    ("Refunded amount is {v}", "누적 환불 금액은 {v}입니다"),
    ("Refunded amount is not known", "누적 환불 금액 정보가 없습니다"),
)
_sentence(
    "refund_rate",
    ("Refunds equal {v} of purchases", "구매 대비 환불 비율은 {v}입니다"),
    _NO_PURCHASE,
)
_sentence(
    "campaign_offers",
    ("The customer has received {v}", "캠페인 제안을 받은 횟수는 {v}입니다"),
    ("The number of campaign offers is not known", "캠페인 제안 횟수 정보가 없습니다"),
    unit=("campaign offer", "회"),
)
_sentence(
    "campaign_purchases",
    ("The customer has made {v} through a campaign", "캠페인을 통한 구매 횟수는 {v}입니다"),
    ("The number of campaign purchases is not known", "캠페인을 통한 구매 정보가 없습니다"),
    unit=_PURCHASE,
)
_ago(
    "last_campaign_offer_ago",
    ("Last campaign offer was {v} ago", "마지막 캠페인 제안은 {v} 전입니다"),
    ("No campaign offer received yet", "아직 받은 캠페인 제안이 없습니다"),
)
_sentence(
    "redemptions",
    ("The customer has redeemed {v}", "쿠폰·혜택을 사용한 횟수는 {v}입니다"),
    ("The number of offers redeemed is not known", "쿠폰·혜택 사용 정보가 없습니다"),
    unit=("offer", "회"),
)
_sentence(
    "redemptions_window",
    (
        "The customer redeemed {v} in the last {window} days",
        "최근 {window}일 쿠폰·혜택 사용 횟수는 {v}입니다",
    ),
    (
        "The number of offers redeemed in the last {window} days is not known",
        "최근 {window}일 쿠폰·혜택 사용 정보가 없습니다",
    ),
    unit=("offer", "회"),
)
_sentence(
    "redemption_rate",
    (
        "Offers redeemed equal {v} of campaign offers received",
        "캠페인 노출 대비 혜택 사용 비율은 {v}입니다",
    ),
    ("No campaign offer received yet", "아직 받은 캠페인 제안이 없습니다"),
)
_sentence(
    "loyalty_signals",
    (
        "The customer has {v} (referrals, loyalty-programme joins, reviews)",
        "추천·멤버십 가입·리뷰 같은 충성 활동은 {v}입니다",
    ),
    ("The number of loyalty signals is not known", "충성 활동 정보가 없습니다"),
    unit=("loyalty signal", "건"),
)
_sentence(
    "event_total",
    ("The customer has {v} in total", "누적 {event_name} 횟수는 {v}입니다"),
    ("The number of {event_names} is not known", "{event_name} 횟수 정보가 없습니다"),
    unit=("{event_name}", "회"),
)
_sentence(
    "event_window",
    (
        "The customer had {v} in the last {window} days",
        "최근 {window}일 {event_name} 횟수는 {v}입니다",
    ),
    (
        "The number of {event_names} in the last {window} days is not known",
        "최근 {window}일 {event_name} 횟수 정보가 없습니다",
    ),
    unit=("{event_name}", "회"),
)
_sentence(
    "channel",
    (
        "The customer has {v} on the {channel_name} channel",
        "{channel_name} 채널 활동 건수는 {v}입니다",
    ),
    (
        "The number of events on the {channel_name} channel is not known",
        "{channel_name} 채널 활동 건수 정보가 없습니다",
    ),
    unit=_EVENT,
)
_sentence(
    "channel_other",
    ("The customer has {v} on other channels", "기타 채널 활동 건수는 {v}입니다"),
    ("The number of events on other channels is not known", "기타 채널 활동 건수 정보가 없습니다"),
    unit=_EVENT,
)
_sentence(
    "stage",
    ("The customer is in the {v} stage", "현재 라이프사이클 단계는 {v} 단계입니다"),
    ("The lifecycle stage is not known", "라이프사이클 단계 정보가 없습니다"),
    typical=("{who} is in the {t} stage", "{who}은 {t} 단계입니다"),
)
_sentence(
    "days_in_stage",
    ("In the current stage for {v}", "현재 단계에 들어온 지 {v}이 되었습니다"),
    ("Time in the current stage is not known", "현재 단계에 머문 기간 정보가 없습니다"),
    unit=_DAY,
)
_rfm("rfm_r", "R", ("recency", "최근성"))
_rfm("rfm_f", "F", ("purchase frequency", "구매 빈도"))
_rfm("rfm_m", "M", ("spend", "구매 금액"))
# For names no feature definition produces (a model trained under another config).
_sentence(
    "family",
    (
        "{Description} ({family}): {v}",
        "{family} 지표({description})는 {v}입니다",
    ),
    (
        "{Description} ({family}) is not recorded for this customer",
        "{family} 지표({description}) 값이 없습니다",
    ),
)
_sentence(
    "generic",
    ("{Description}: {v}", "'{description}' 지표는 {v}입니다"),
    ("{Description} is not recorded", "'{description}' 지표 값이 없습니다"),
)

PHRASES: dict[str, Phrase] = _pairs(
    {
        "own_gap": ("this customer usually buys every {t}", "이 고객은 보통 {t}마다 구매합니다"),
        "effect": (
            "This {strength} {verb} {object}.",
            "이 점이 {object}{particle} {strength} {verb}.",
        ),
        "raises": ("raises", "높입니다"),
        "lowers": ("lowers", "낮춥니다"),
        # Classifiers: the effect in percentage points of the probability (see serving.explain).
        "effect_points": (
            "This {verb} {object} by {points}.",
            "이 점이 {object}{particle} {points} {verb}.",
        ),
        "points": ("about {n} points", "약 {n}%p"),
        "one_point": ("about 1 point", "약 1%p"),
        "under_a_point": ("less than 1 point", "1%p 미만"),
        "typical_customer": ("a typical customer", "일반적인 고객"),
        "typical_stage_customer": (
            "a typical customer in the {stage} stage",
            "{stage} 단계의 일반적인 고객",
        ),
        # A value that reads as the typical one is not said to raise or lower anything.
        "as_typical": (
            "the same as for {who}, so it does not set this customer apart",
            "{who}{particle} 같아 이 고객을 구별하는 점은 아닙니다",
        ),
        # A feature that records a marketing action (definitions.Feature.marketing_action).
        "not_lever": (
            "The model links it with a {direction} {subject}{size}; it records a marketing "
            "action, not the customer's behaviour, so this is an association, not an effect "
            "of the action.",
            "모델에서 이 값은 더 {direction} {subject}{particle} 함께 나타납니다{size}. 고객의 "
            "행동이 아닌 마케팅 조치이므로 상관관계일 뿐 조치의 효과가 아닙니다.",
        ),
        "higher": ("higher", "높은"),
        "lower": ("lower", "낮은"),
        "size": (" ({amount})", "({amount})"),
        "subject.next_stage": (
            "predicted chance of moving to the next stage",
            "다음 단계로 넘어갈 가능성",
        ),
        "subject.churn": ("predicted churn risk", "이탈 위험"),
        "subject.clv": ("predicted customer value", "예상 고객 가치"),
        "object.next_stage": (
            "the predicted chance of moving to the next stage",
            "다음 단계로 넘어갈 가능성",
        ),
        "object.churn": ("the predicted churn risk", "이탈 위험"),
        "object.clv": ("the predicted customer value", "예상 고객 가치"),
        "score": ("{unit} {n} of {bins}", "{unit} {bins}점 중 {n}점"),
        "more": ("{n} more {unit}", "+{n}{unit}"),
        "fewer": ("{n} fewer {unit}", "-{n}{unit}"),
        "same_count": ("the same number of {units}", "{n}{unit}"),
        "more_money": ("{amount} more revenue", "+{amount}"),
        "less_money": ("{amount} less revenue", "-{amount}"),
        "same_money": ("the same revenue", "{amount}"),
        "unknown_event": ("'{name}' event", "'{name}' 이벤트"),
        "unknown_channel": ("'{name}'", "'{name}'"),
        "day": _DAY,
    }
)
"""Parts the driver sentences share: comparisons, effects, scores and changes."""

REASONS: dict[str, Phrase] = _pairs(
    {
        "retention": (
            "Churn risk is {churn} and {at_risk} of value is at risk",
            "이탈 위험이 {churn}로, {at_risk} 규모의 고객 가치가 위태롭습니다",
        ),
        "next_stage": (
            "Moving from {stage} to {next_stage} is worth {worth}",
            "{stage} 단계에서 {next_stage} 단계로 올라가면 {worth}의 가치가 있으며, 조치 없이 "
            "올라갈 확률은 알 수 없습니다",
        ),
        "next_stage_chance": (
            "Moving from {stage} to {next_stage} is worth {worth} and the chance of it without "
            "action is {chance}",
            "{stage} 단계에서 {next_stage} 단계로 올라가면 {worth}의 가치가 있으며, 조치 없이 "
            "올라갈 확률은 {chance}입니다",
        ),
        "value": (
            "Expected 365-day value is {clv} and the action adds about {effect} of it",
            "예상 365일 고객 가치가 {clv}이며, 이 조치로 그중 약 {effect}가 늘어날 것으로 "
            "예상됩니다",
        ),
        "no_action": (
            "No action is expected to pay off, so leave the customer undisturbed",
            "기대 이익이 비용을 넘는 조치가 없으므로 고객을 방해하지 않습니다",
        ),
        "no_action_churn": (
            "No action is expected to pay off at a churn risk of {churn}, so leave the "
            "customer undisturbed",
            "이탈 위험이 {churn}인 상황에서 기대 이익이 비용을 넘는 조치가 없으므로 고객을 "
            "방해하지 않습니다",
        ),
        # Why a budgeted plan (lifecycle.models.policy) leaves a customer alone.
        "plan_no_eligible": (
            "No action of the catalog applies to a {stage} customer in the {segment} segment",
            "카탈로그의 어떤 조치도 {segment} 세그먼트의 {stage} 단계 고객에게 해당하지 않습니다",
        ),
        "plan_no_gain": (
            "The best action, {action}, is expected to return {gain} for a cost of {cost}, so "
            "leave the customer undisturbed",
            "가장 나은 조치인 {action}도 기대 이익({gain})이 비용({cost})보다 작으므로 고객을 "
            "방해하지 않습니다",
        ),
        "plan_over_budget": (
            "{action} would add {net} net, but the budget goes to customers expected to add more",
            "{action}의 기대 순이익({net})은 양수이지만, 예산은 기대 이익이 더 큰 고객에게 "
            "먼저 배정됩니다",
        ),
        "top_driver": ("{reason}. Top driver: {driver}", "{reason}. 주요 요인: {driver}"),
        "end": ("{reason}.", "{reason}."),
    }
)
"""Why the next-best-action was chosen, by the action's outcome."""

PAGE_WORDS: dict[str, Phrase] = _pairs(
    {
        "title": ("Customer lifecycle", "고객 라이프사이클"),
        "skip": ("Skip to the content", "본문으로 건너뛰기"),
        "overview": ("Overview", "개요"),
        "language": ("Language", "언어"),
        "switch_to": ("한국어", "English"),
        "as_of_date": ("as of {date}", "{date} 기준"),
        "n_customers": ("{n} customers", "{n}명"),
        "no_lookup": (
            "This service has no customer table (start it with --lookup or --events), so "
            "there is nothing to show here. The API still answers for events and feature rows.",
            "이 서비스에는 고객 테이블이 없어(--lookup 또는 --events로 시작하세요) 여기에 "
            "보여 줄 내용이 없습니다. API는 이벤트와 특성 행으로 계속 응답합니다.",
        ),
        "page_failed": (
            "The page's tables could not be built; the API still answers. See the service log.",
            "페이지 표를 만들 수 없었습니다. API는 계속 응답합니다. 서비스 로그를 확인하세요.",
        ),
        "unknown_list": (
            "There is no such segment or stage.",
            "그런 세그먼트나 단계가 없습니다.",
        ),
        "funnel": ("Lifecycle funnel", "라이프사이클 퍼널"),
        "funnel_note": (
            "Customers in each stage now; the percentage is the share of those who reached the "
            "previous stage and went on to reach this one.",
            "현재 각 단계의 고객 수입니다. 백분율은 이전 단계에 도달한 고객 중 이 단계까지 온 "
            "비율입니다.",
        ),
        "stage": ("Stage", "단계"),
        "reached": ("Reached", "도달"),
        "from_previous": ("From previous", "이전 단계 대비"),
        "active": ("Active", "활동"),
        "lapsed": ("Lapsed", "비활동"),
        "segments": ("Segments and value at risk", "세그먼트와 이탈 위험 CLV"),
        "segments_note": (
            "CLV at risk = expected 365-day value x churn risk, summed over the segment.",
            "이탈 위험 CLV = 365일 예상 가치 x 이탈 위험을 세그먼트별로 합한 값입니다.",
        ),
        "segment": ("Segment", "세그먼트"),
        "size": ("Customers", "고객 수"),
        "share": ("Share", "비중"),
        "avg_clv": ("Average CLV", "평균 CLV"),
        "avg_churn": ("Average churn risk", "평균 이탈 위험"),
        "observed_churn": ("{rate} churned in the last {days} days", "최근 {days}일 이탈 {rate}"),
        "observed_churn_note": (
            "Churned in the last {days} days: the share of the segment's customers {days} days "
            "ago who made no purchase since. Observed on the event log, not predicted.",
            "최근 {days}일 이탈: {days}일 전 이 세그먼트에 속했던 고객 중 그 뒤로 구매하지 "
            "않은 고객의 비율입니다. 예측이 아니라 이벤트 로그에서 관측한 값입니다.",
        ),
        "observed_churn_segment": (
            "Of this segment's customers {days} days ago, {rate} made no purchase since "
            "(observed on the event log, not predicted).",
            "{days}일 전 이 세그먼트에 속했던 고객 중 {rate}가 그 뒤로 구매하지 않았습니다"
            "(예측이 아닌 이벤트 로그 관측값).",
        ),
        "clv_at_risk": ("CLV at risk", "이탈 위험 CLV"),
        "top_action": ("Most common next action", "가장 많이 추천된 조치"),
        "feature": ("Feature", "특성"),
        "mean_effect": ("Average effect (points)", "평균 영향(%p)"),
        "raises_share": ("Raises the risk for", "위험을 높이는 고객 비중"),
        "churn_drivers": ("What drives churn risk", "이탈 위험의 주요 요인"),
        "churn_drivers_note": (
            "Average size of each feature's effect on churn risk over {n} customers, in "
            "percentage points (from the model's SHAP values); the share says how often it "
            "raises the risk. Correlation, not cause.",
            "고객 {n}명에 대한 각 특성의 이탈 위험 영향 평균 크기(%p, 모델의 SHAP 값에서 계산)"
            "입니다. 비율은 위험을 높이는 경우의 비중입니다. 상관관계이며 원인은 아닙니다.",
        ),
        "raises_in": ("raises it for {share} of customers", "고객의 {share}에서 위험을 높임"),
        # How a churn driver's value goes with the risk (serving.population.churn_drivers).
        "raises_when.low_activity": ("Low activity raises the risk", "활동이 적을수록 위험이 높음"),
        "raises_when.long_inactivity": (
            "A long time without activity raises the risk",
            "활동이 없는 기간이 길수록 위험이 높음",
        ),
        "raises_when.low": ("Low values raise the risk", "값이 낮을수록 위험이 높음"),
        "raises_when.high": ("High values raise the risk", "값이 높을수록 위험이 높음"),
        "raises_when.marketing_action": (
            "A marketing action: an association, not an effect",
            "마케팅 조치: 상관관계이며 효과가 아님",
        ),
        "search": ("Find a customer", "고객 찾기"),
        "customer_id": ("Customer id", "고객 ID"),
        "go": ("Show", "보기"),
        "not_found": (
            "We could not find the customer \u201c{id}\u201d. Check the id, or look through a "
            "segment below.",
            "\u201c{id}\u201d 고객을 찾을 수 없습니다. ID를 확인하거나 아래 세그먼트에서 찾아 "
            "보세요.",
        ),
        "list_title": ("Customers in {name}", "{name}: 고객 목록"),
        "sort_by": ("Sort by", "정렬 기준"),
        "sort": ("Sort", "정렬"),
        "download": ("Download CSV", "CSV 다운로드"),
        "showing": ("Showing {shown} of {total}", "{total}명 중 {shown}명 표시"),
        "churn_risk": ("Churn risk", "이탈 위험"),
        "next_stage_probability": ("Next-stage chance", "다음 단계 가능성"),
        "clv": ("Expected value (365 days)", "예상 가치(365일)"),
        "action": ("Next best action", "추천 조치"),
        "path": ("Path so far", "지금까지의 여정"),
        "predictions": ("Predictions", "예측"),
        "why": ("Why", "이유"),
        "why_note": (
            "Bars show how each feature pushes the prediction up (right) or down (left), from "
            "the model's own explanation (SHAP): for churn risk and the next-stage chance in "
            "percentage points, for value on the model's log scale. Correlation, not cause.",
            "막대는 각 특성이 예측을 높이는지(오른쪽) 낮추는지(왼쪽) 보여 줍니다(SHAP). 이탈 "
            "위험과 다음 단계 가능성은 %p 단위, 고객 가치는 모델의 로그 척도입니다. 상관관계이며 "
            "원인은 아닙니다.",
        ),
        "what_to_do": ("What to do next", "다음에 할 일"),
        "expected_value": ("expected value", "기대 가치"),
        "alternatives": ("Alternatives", "대안"),
        "effect_estimated": ("effect measured from past campaigns", "과거 캠페인에서 측정한 효과"),
        "effect_assumed": ("assumed effect", "가정한 효과"),
        "timeline": ("Recent events", "최근 이벤트"),
        "no_timeline": (
            "No event log is attached to this service (start it with --events to see events).",
            "이 서비스에는 이벤트 로그가 연결되어 있지 않습니다(--events로 시작하면 표시됩니다).",
        ),
        "no_events": ("No events before the cutoff.", "기준 시점 이전 이벤트가 없습니다."),
        "when": ("When", "일시"),
        "event": ("Event", "이벤트"),
        "revenue": ("Revenue", "금액"),
        "channel": ("Channel", "채널"),
        "signin": ("Sign in", "로그인"),
        "signout": ("Sign out", "로그아웃"),
        "api_key": ("API key", "API 키"),
        "signin_note": (
            "This service needs its API key. The browser keeps only a signed session cookie "
            "derived from it, for 12 hours; the key itself is not stored.",
            "이 서비스에는 API 키가 필요합니다. 브라우저에는 키에서 만든 서명된 세션 "
            "쿠키만 12시간 동안 보관되며, 키 자체는 저장되지 않습니다.",
        ),
        "wrong_key": ("That key is not right.", "키가 올바르지 않습니다."),
        "loading": (
            "The service is still starting; this page refreshes in a few seconds.",
            "서비스가 시작되는 중입니다. 잠시 후 새로 고침됩니다.",
        ),
        "models": ("Models", "모델"),
        "api_docs": ("API (OpenAPI)", "API(OpenAPI)"),
        "not_applicable": ("not applicable", "해당 없음"),
        "reached_on": ("reached {date}", "{date} 도달"),
        "since": ("since {date}", "{date}부터"),
        "risk_low": ("Low risk", "낮은 위험"),
        "risk_medium": ("Medium risk", "중간 위험"),
        "risk_high": ("High risk", "높은 위험"),
        "churn_chance": (
            "{level}: about {n} in 10 similar customers do not come back within {horizon} days.",
            "{level}: 비슷한 고객 10명 중 약 {n}명이 {horizon}일 안에 다시 구매하지 않습니다.",
        ),
        "next_stage_chance": (
            "About {n} in 10 similar customers move on to {stage} within {horizon} days.",
            "비슷한 고객 10명 중 약 {n}명이 {horizon}일 안에 '{stage}' 단계로 넘어갑니다.",
        ),
        "clv_sentence": (
            "Expected to spend about {expected} in the next 365 days (likely between {low} "
            "and {high}).",
            "앞으로 365일 동안 약 {expected}를 지출할 것으로 예상됩니다(대체로 {low}~{high}).",
        ),
        # the stage flow and the unknown-customer page (serving/page.py)
        "flow": ("How customers moved through the stages", "단계 사이의 이동"),
        "flow_note": (
            "Customers in each stage on {date} ({days} days earlier) and where they are now. "
            "Moved on: reached a later stage since.",
            "{date}({days}일 전)에 각 단계에 있던 고객이 지금 어느 단계에 있는지 보여 줍니다. "
            "다음 단계로: 그 뒤 더 뒤의 단계에 도달한 고객입니다.",
        ),
        "flow_period": ("Look back", "기간"),
        "n_days": ("{n} days", "{n}일"),
        "flow_chart": (
            "Moved on to a later stage within {days} days",
            "{days}일 안에 다음 단계로 넘어간 비율",
        ),
        "k_of_n": ("({k} of {n})", "({n}명 중 {k}명)"),
        "stage_then": ("Stage then", "당시 단계"),
        "moved_on": ("Moved on", "다음 단계로"),
        "stayed": ("Stayed", "그대로"),
        "moved_back": ("Moved back", "이전 단계로"),
        "not_yet": ("New since then", "이후 신규 유입"),
        "flow_where": ("Where each went: customers now in each stage", "단계별 현재 위치(고객 수)"),
        "flow_needs_events": (
            "The stage flow needs the event log: start the service with LIFECYCLE_EVENTS "
            "(lifecycle serve --events).",
            "단계 사이의 이동을 보려면 이벤트 로그가 필요합니다. LIFECYCLE_EVENTS"
            "(lifecycle serve --events)로 서비스를 시작하세요.",
        ),
        "similar_ids": ("Customers with a similar id", "비슷한 ID의 고객"),
        # the budgeted plan (/planner, serving/templates/plan.html)
        "plan_nav": ("Plan", "캠페인 계획"),
        "plan_title": ("Plan a campaign within a budget", "예산 안에서 캠페인 계획하기"),
        "plan_intro": (
            "Whom to contact, and with which action, to earn the most expected incremental "
            "value net of cost within the budget: at most one action per customer.",
            "예산 안에서 비용을 뺀 기대 증분 가치가 가장 크도록 누구에게 어떤 액션을 보낼지 "
            "정합니다. 고객 한 명에게는 액션을 최대 하나만 보냅니다.",
        ),
        "plan_budget": ("Budget", "예산"),
        "plan_kind": ("Budget in", "예산 단위"),
        "plan_kind_count": ("contacts", "연락 수"),
        "plan_kind_money": ("money ({currency})", "금액({currency})"),
        "plan_submit": ("Make the plan", "계획 세우기"),
        "plan_bad_budget": (
            "Enter a budget above 0: a whole number of contacts, or an amount of money.",
            "0보다 큰 예산을 입력하세요. 연락 수는 정수, 금액은 숫자로 입력합니다.",
        ),
        "plan_summary": (
            "Contact {contacts} of {customers} customers for {cost}: expected incremental value "
            "{net} net of cost (likely between {low} and {high}).",
            "고객 {customers}명 중 {contacts}명에게 {cost}를 들여 연락하면 비용을 뺀 기대 증분 "
            "가치는 {net}입니다(대체로 {low}~{high}).",
        ),
        "plan_action": ("Action", "액션"),
        "plan_customers": ("Customers", "고객 수"),
        "plan_cost": ("Cost", "비용"),
        "plan_expected": ("Expected incremental value", "기대 증분 가치"),
        "plan_net": ("Net of cost", "비용 차감 후"),
        "plan_interval": ("{pct} interval", "{pct} 구간"),
        "plan_to": (" to ", " ~ "),
        "plan_total": ("Total", "합계"),
        "plan_nobody": (
            "Nobody to contact: no action is expected to pay off for these customers.",
            "연락할 고객이 없습니다. 이 고객들에게는 비용을 넘는 이익이 기대되는 액션이 없습니다.",
        ),
        "plan_left_alone": ("Do nothing", "아무것도 하지 않음"),
        "plan_no_gain": (
            "{n} customers: no action's expected gain covers its cost, so contacting them "
            "would lose money.",
            "{n}명: 어떤 액션도 기대 이익이 비용을 넘지 않아 연락하면 손해입니다.",
        ),
        "plan_no_eligible": (
            "{n} customers: no action in the catalog applies to their stage and segment.",
            "{n}명: 카탈로그에 이 고객들의 단계와 세그먼트에 맞는 액션이 없습니다.",
        ),
        "plan_over_budget": (
            "{n} customers: worth contacting, but the budget goes to customers expected to "
            "earn more.",
            "{n}명: 연락할 가치는 있지만 예산은 더 큰 이익이 기대되는 고객에게 먼저 씁니다.",
        ),
        "plan_download": ("Download CSV", "CSV 내려받기"),
        "plan_download_note": (
            "For the campaign tool: every customer to contact, with the action and the exact "
            "amounts.",
            "캠페인 도구용: 연락할 모든 고객과 액션, 정확한 금액이 들어 있습니다.",
        ),
        "plan_interval_note": (
            "The interval says how much the total depends on the particular customers, not how "
            "wrong the uplift estimates may be: the offline evaluation below checks those "
            "against past campaigns.",
            "구간은 합계가 어떤 고객이 포함되었는지에 얼마나 좌우되는지를 보여 줄 뿐, 업리프트 "
            "추정이 얼마나 틀릴 수 있는지는 보여 주지 않습니다. 그것은 아래의 오프라인 평가가 "
            "과거 캠페인으로 확인합니다.",
        ),
        "plan_eval": ("Offline evaluation on past campaigns", "과거 캠페인으로 한 오프라인 평가"),
        "plan_eval_note": (
            "What each policy would have earned on the randomised campaign history ({sends} "
            "sends, {rows} targeted customers), contacting {share} of each send: incremental "
            "value net of cost per targeted customer, with a {pct} interval. Uplift model "
            "{model} v{version}.",
            "무작위 배정된 캠페인 이력({sends}회 발송, 대상 고객 {rows}명)에서 발송마다 "
            "{share}에게 연락했다면 각 정책이 얻었을 값입니다. 대상 고객 1명당 비용을 뺀 증분 "
            "가치이며 {pct} 구간을 함께 보여 줍니다. 업리프트 모델 {model} v{version}.",
        ),
        "plan_eval_missing": (
            "There is no offline evaluation of the served uplift model yet. Learn the uplift "
            "model from campaigns with a control group (lifecycle uplift --events "
            "events.parquet --campaigns campaigns.parquet) and the same run evaluates the "
            "plan.",
            "제공 중인 업리프트 모델의 오프라인 평가가 아직 없습니다. 대조군이 있는 캠페인으로 "
            "업리프트 모델을 학습하면(lifecycle uplift --events events.parquet --campaigns "
            "campaigns.parquet) 같은 실행에서 계획을 평가합니다.",
        ),
        "plan_eval_unreadable": (
            "The offline evaluation could not be read from the model registry just now; the "
            "service log says why.",
            "지금은 모델 레지스트리에서 오프라인 평가를 읽을 수 없습니다. 이유는 서비스 로그에 "
            "있습니다.",
        ),
        "plan_policy": ("Policy", "정책"),
        "plan_contacted": ("Contacted", "연락 비율"),
        "plan_dr": ("Doubly robust", "이중 강건(DR)"),
        "plan_ipw": ("Inverse propensity", "역성향 가중(IPW)"),
        "plan_true": ("True (simulation)", "실제 값(시뮬레이션)"),
        "policy_plan": ("The plan", "이 계획"),
        "policy_send_nothing": ("Send nothing", "보내지 않음"),
        "policy_random": ("Random customers", "무작위 고객"),
        "policy_churn_risk": ("Highest churn risk first", "이탈 위험 높은 순"),
        "policy_clv": ("Highest CLV first", "CLV 높은 순"),
        "policy_oracle": ("Oracle (knows the true uplift)", "오라클(실제 업리프트를 앎)"),
    }
)
"""The marketer page's words (headings, notes, messages and its plain-language sentences)."""

TABLES: dict[str, dict[str, Phrase]] = {
    "stage": STAGE_NAMES,
    "segment": SEGMENT_NAMES,
    "task": TASK_LABELS,
    "strength": STRENGTH_WORDS,
    "family": FAMILY_LABELS,
    "event": EVENT_NAMES,
    "channel": CHANNEL_NAMES,
    "label": FEATURE_LABELS,
    "sentence": SENTENCES,
    "phrase": PHRASES,
    "reason": REASONS,
    "page": PAGE_WORDS,
}
"""Every table, by the prefix :func:`text` reads it under."""


def phrase(key: str) -> Phrase:
    """Return the phrase ``"<table>.<key>"`` in every language.

    Raises
    ------
    KeyError
        When the glossary has no such phrase; the message names the key.
    """
    table, _, entry = key.partition(".")
    found = TABLES.get(table, {}).get(entry)
    if found is None:
        raise KeyError(f"the glossary has no phrase {key!r}")
    return found


def text(key: str, lang: Lang, **values: object) -> str:
    """Return the phrase ``"<table>.<key>"`` in ``lang`` with its placeholders filled.

    Parameters
    ----------
    key
        The table's prefix (see :data:`TABLES`), a dot, and the entry, e.g. ``"stage.reach"``
        or ``"page.title"``.
    lang
        ``en`` or ``ko``.
    **values
        Values of the phrase's ``{placeholders}``.

    Returns
    -------
    str
        The phrase, filled in.

    Raises
    ------
    KeyError
        For an unknown key, or a placeholder without a value.

    Examples
    --------
    >>> text("stage.conversion", "ko")
    '첫 구매'
    >>> text("page.as_of_date", "en", date="Jan 5, 2026")
    'as of Jan 5, 2026'
    """
    try:
        return phrase(key)[lang].format_map(values)
    except KeyError as exc:
        raise KeyError(f"the glossary phrase {key!r} needs a value for {exc.args[0]!r}") from None


def stage_name(stage: str, lang: Lang) -> str:
    """Return a lifecycle stage's name (an unknown stage as given).

    Examples
    --------
    >>> stage_name("acquisition", "en"), stage_name("acquisition", "ko")
    ('acquisition', '가입')
    """
    found = STAGE_NAMES.get(stage)
    return found[lang] if found is not None else stage


def segment_name(segment: str, lang: Lang) -> str:
    """Return an RFM segment's name (an unknown segment as given)."""
    found = SEGMENT_NAMES.get(segment)
    return found[lang] if found is not None else segment


def plain(code: str) -> str:
    """Return a code or name safe to quote: underscores as spaces, no braces.

    Examples
    --------
    >>> plain("wishlist_add"), plain("{x}")
    ('wishlist add', 'x')
    """
    return code.replace("_", " ").replace("{", "").replace("}", "").strip() or "unnamed"


def event_name(event_type: str, lang: Lang) -> str:
    """Return an event type's name (English singular); one outside the glossary is quoted.

    Examples
    --------
    >>> event_name("add_to_cart", "en"), event_name("wishlist_add", "en")
    ('cart addition', "'wishlist add' event")
    """
    found = EVENT_NAMES.get(event_type)
    if found is not None:
        return found[lang]
    return text("phrase.unknown_event", lang, name=plain(event_type))


def channel_name(channel: str, lang: Lang) -> str:
    """Return a channel's name; one outside the glossary is quoted."""
    found = CHANNEL_NAMES.get(channel)
    if found is not None:
        return found[lang]
    return text("phrase.unknown_channel", lang, name=plain(channel))


def _final_consonant(word: str) -> bool:
    """Whether a Korean word ends in a syllable with a final consonant (batchim)."""
    last = word[-1]
    return "가" <= last <= "힣" and (ord(last) - ord("가")) % 28 != 0


def with_particle(word: str) -> str:
    """Return the Korean particle "with" after ``word``: 과 after a final consonant, else 와.

    Examples
    --------
    >>> with_particle("이탈 위험"), with_particle("예상 고객 가치")
    ('과', '와')
    """
    return "과" if _final_consonant(word) else "와"


def object_particle(word: str) -> str:
    """Return the Korean object particle after ``word``: 을 after a final consonant, else 를.

    Examples
    --------
    >>> object_particle("이탈 위험"), object_particle("예상 고객 가치")
    ('을', '를')
    """
    last = word[-1]
    if "가" <= last <= "힣" and (ord(last) - ord("가")) % 28 == 0:
        return "를"
    return "을"
