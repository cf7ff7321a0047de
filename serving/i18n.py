"""The marketer page's words in English and Korean: labels, names and number formats."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Literal

from features.config import LifecycleConfig
from features.definitions import feature_definitions
from features.schema import STAGES
from serving.explain import STAGE_NAMES

Lang = Literal["en", "ko"]
LANGS: tuple[Lang, ...] = ("en", "ko")

SEGMENT_NAMES_KO: dict[str, str] = {
    "Champions": "챔피언",
    "Loyal": "충성 고객",
    "Potential loyalist": "잠재 충성 고객",
    "New": "신규 고객",
    "Promising": "유망 고객",
    "Need attention": "관심 필요",
    "About to sleep": "휴면 직전",
    "Cannot lose them": "놓치면 안 되는 고객",
    "At risk": "이탈 우려 고객",
    "Hibernating": "휴면",
    "Lost": "이탈 고객",
    "No purchase yet": "구매 전",
}

TEXT: dict[str, dict[Lang, str]] = {
    "title": {"en": "Customer lifecycle", "ko": "고객 라이프사이클"},
    "skip": {"en": "Skip to the content", "ko": "본문으로 건너뛰기"},
    "overview": {"en": "Overview", "ko": "개요"},
    "language": {"en": "Language", "ko": "언어"},
    "switch_to": {"en": "한국어", "ko": "English"},
    "as_of_date": {"en": "as of {date}", "ko": "{date} 기준"},
    "n_customers": {"en": "{n} customers", "ko": "{n}명"},
    "no_lookup": {
        "en": "This service has no customer table (start it with --lookup or --events), so "
        "there is nothing to show here. The API still answers for events and feature rows.",
        "ko": "이 서비스에는 고객 테이블이 없어(--lookup 또는 --events로 시작하세요) 여기에 "
        "보여 줄 내용이 없습니다. API는 이벤트와 특성 행으로 계속 응답합니다.",
    },
    "page_failed": {
        "en": "The page's tables could not be built; the API still answers. See the service log.",
        "ko": "페이지 표를 만들 수 없었습니다. API는 계속 응답합니다. 서비스 로그를 확인하세요.",
    },
    "unknown_list": {
        "en": "There is no such segment or stage.",
        "ko": "그런 세그먼트나 단계가 없습니다.",
    },
    "funnel": {"en": "Lifecycle funnel", "ko": "라이프사이클 퍼널"},
    "funnel_note": {
        "en": "Customers in each stage now; the percentage is the share of those who reached the "
        "previous stage and went on to reach this one.",
        "ko": "현재 각 단계의 고객 수입니다. 백분율은 이전 단계에 도달한 고객 중 이 단계까지 온 "
        "비율입니다.",
    },
    "stage": {"en": "Stage", "ko": "단계"},
    "reached": {"en": "Reached", "ko": "도달"},
    "from_previous": {"en": "From previous", "ko": "이전 단계 대비"},
    "active": {"en": "Active", "ko": "활동"},
    "lapsed": {"en": "Lapsed", "ko": "비활동"},
    "segments": {"en": "Segments and value at risk", "ko": "세그먼트와 이탈 위험 CLV"},
    "segments_note": {
        "en": "CLV at risk = expected 365-day value x churn risk, summed over the segment.",
        "ko": "이탈 위험 CLV = 365일 예상 가치 x 이탈 위험을 세그먼트별로 합한 값입니다.",
    },
    "segment": {"en": "Segment", "ko": "세그먼트"},
    "size": {"en": "Customers", "ko": "고객 수"},
    "share": {"en": "Share", "ko": "비중"},
    "avg_clv": {"en": "Average CLV", "ko": "평균 CLV"},
    "avg_churn": {"en": "Average churn risk", "ko": "평균 이탈 위험"},
    "clv_at_risk": {"en": "CLV at risk", "ko": "이탈 위험 CLV"},
    "top_action": {"en": "Most common next action", "ko": "가장 많이 추천된 조치"},
    "feature": {"en": "Feature", "ko": "특성"},
    "mean_effect": {"en": "Average effect (SHAP)", "ko": "평균 영향(SHAP)"},
    "raises_share": {"en": "Raises the risk for", "ko": "위험을 높이는 고객 비중"},
    "churn_drivers": {"en": "What drives churn risk", "ko": "이탈 위험의 주요 요인"},
    "churn_drivers_note": {
        "en": "Average size of each feature's effect on churn risk (SHAP) over {n} customers; "
        "the share says how often it raises the risk. Correlation, not cause.",
        "ko": "고객 {n}명에 대한 각 특성의 이탈 위험 영향(SHAP) 평균 크기입니다. 비율은 위험을 "
        "높이는 경우의 비중입니다. 상관관계이며 원인은 아닙니다.",
    },
    "raises_in": {
        "en": "raises it for {share} of customers",
        "ko": "고객의 {share}에서 위험을 높임",
    },
    "search": {"en": "Find a customer", "ko": "고객 찾기"},
    "customer_id": {"en": "Customer id", "ko": "고객 ID"},
    "go": {"en": "Show", "ko": "보기"},
    "not_found": {
        "en": "We could not find the customer \u201c{id}\u201d. Check the id, or look through a "
        "segment below.",
        "ko": "\u201c{id}\u201d 고객을 찾을 수 없습니다. ID를 확인하거나 아래 세그먼트에서 찾아 "
        "보세요.",
    },
    "list_title": {"en": "Customers in {name}", "ko": "{name} 고객"},
    "sort_by": {"en": "Sort by", "ko": "정렬 기준"},
    "sort": {"en": "Sort", "ko": "정렬"},
    "download": {"en": "Download CSV", "ko": "CSV 다운로드"},
    "showing": {"en": "Showing {shown} of {total}", "ko": "{total}명 중 {shown}명 표시"},
    "churn_risk": {"en": "Churn risk", "ko": "이탈 위험"},
    "next_stage_probability": {"en": "Next-stage chance", "ko": "다음 단계 가능성"},
    "clv": {"en": "Expected value (365 days)", "ko": "예상 가치(365일)"},
    "action": {"en": "Next best action", "ko": "추천 조치"},
    "path": {"en": "Path so far", "ko": "지금까지의 여정"},
    "predictions": {"en": "Predictions", "ko": "예측"},
    "why": {"en": "Why", "ko": "이유"},
    "why_note": {
        "en": "Bars show how each feature pushes the prediction up (right) or down (left), from "
        "the model's own explanation (SHAP). Correlation, not cause.",
        "ko": "막대는 각 특성이 예측을 높이는지(오른쪽) 낮추는지(왼쪽) 보여 줍니다(SHAP). "
        "상관관계이며 원인은 아닙니다.",
    },
    "what_to_do": {"en": "What to do next", "ko": "다음에 할 일"},
    "expected_value": {"en": "expected value", "ko": "기대 가치"},
    "alternatives": {"en": "Alternatives", "ko": "대안"},
    "effect_estimated": {
        "en": "effect measured from past campaigns",
        "ko": "과거 캠페인에서 측정한 효과",
    },
    "effect_assumed": {"en": "assumed effect", "ko": "가정한 효과"},
    "timeline": {"en": "Recent events", "ko": "최근 이벤트"},
    "no_timeline": {
        "en": "No event log is attached to this service (start it with --events to see events).",
        "ko": "이 서비스에는 이벤트 로그가 연결되어 있지 않습니다(--events로 시작하면 표시됩니다).",
    },
    "no_events": {"en": "No events before the cutoff.", "ko": "기준 시점 이전 이벤트가 없습니다."},
    "when": {"en": "When", "ko": "일시"},
    "event": {"en": "Event", "ko": "이벤트"},
    "revenue": {"en": "Revenue", "ko": "금액"},
    "channel": {"en": "Channel", "ko": "채널"},
    "signin": {"en": "Sign in", "ko": "로그인"},
    "signout": {"en": "Sign out", "ko": "로그아웃"},
    "api_key": {"en": "API key", "ko": "API 키"},
    "signin_note": {
        "en": "This service needs its API key. The browser keeps only a signed session cookie "
        "derived from it, for 12 hours; the key itself is not stored.",
        "ko": "이 서비스에는 API 키가 필요합니다. 브라우저에는 키에서 만든 서명된 세션 "
        "쿠키만 12시간 동안 보관되며, 키 자체는 저장되지 않습니다.",
    },
    "wrong_key": {"en": "That key is not right.", "ko": "키가 올바르지 않습니다."},
    "loading": {
        "en": "The service is still starting; this page refreshes in a few seconds.",
        "ko": "서비스가 시작되는 중입니다. 잠시 후 새로 고침됩니다.",
    },
    "models": {"en": "Models", "ko": "모델"},
    "api_docs": {"en": "API (OpenAPI)", "ko": "API(OpenAPI)"},
    "not_applicable": {"en": "not applicable", "ko": "해당 없음"},
    "reached_on": {"en": "reached {date}", "ko": "{date} 도달"},
    "since": {"en": "since {date}", "ko": "{date}부터"},
}

_FIXED_KO: dict[str, str] = {
    "n_events": "총 활동 건수",
    "days_since_first_event": "첫 활동 후 경과일",
    "days_since_last_event": "마지막 활동 후 경과일",
    "n_purchases": "총 구매 횟수",
    "revenue_total": "총 구매 금액",
    "net_revenue_total": "순 구매 금액",
    "avg_order_value": "평균 주문 금액",
    "max_order_value": "최대 주문 금액",
    "days_since_last_purchase": "마지막 구매 후 경과일",
    "days_since_first_purchase": "첫 구매 후 경과일",
    "days_since_signup": "가입 후 경과일",
    "mean_purchase_gap_days": "평균 구매 간격",
    "var_purchase_gap_days": "구매 간격의 변동",
    "purchase_gap_ratio": "평소 구매 간격 대비 경과",
    "purchase_trend_30d": "최근 30일 구매 추세",
    "revenue_trend_30d": "최근 30일 구매 금액 추세",
    "activity_trend_30d": "최근 30일 활동 추세",
    "n_refunds": "환불 횟수",
    "refund_amount": "환불 금액",
    "refund_rate": "환불 비율",
    "n_campaign_exposures": "캠페인 노출 횟수",
    "n_campaign_responses": "캠페인 반응 구매 횟수",
    "days_since_last_campaign_exposure": "마지막 캠페인 노출 후 경과일",
    "n_loyalty_signals": "충성 신호(추천·가입·리뷰) 횟수",
    "stage_code": "라이프사이클 단계",
    "days_in_stage": "현재 단계 유지 기간",
    "rfm_r": "R 점수(최근성)",
    "rfm_f": "F 점수(빈도)",
    "rfm_m": "M 점수(금액)",
}
_PATTERNS_KO: tuple[tuple[str, str], ...] = (
    (r"n_events_(\d+)d", "최근 {0}일 활동 건수"),
    (r"n_purchases_(\d+)d", "최근 {0}일 구매 횟수"),
    (r"revenue_(\d+)d", "최근 {0}일 구매 금액"),
    (r"n_channel_(\w+)", "'{0}' 채널 이벤트 수"),
    (r"n_(\w+)_30d", "최근 30일 '{0}' 이벤트 수"),
    (r"n_(\w+)", "'{0}' 이벤트 수"),
)
_FIXED_EN: dict[str, str] = {
    "rfm_r": "R score (recency)",
    "rfm_f": "F score (frequency)",
    "rfm_m": "M score (monetary)",
}


def text(key: str, lang: Lang, **values: object) -> str:
    """Return the UI string ``key`` in ``lang``, with ``values`` filled in."""
    template = TEXT[key][lang]
    return template.format(**values) if values else template


@lru_cache(maxsize=8)
def _descriptions(config_json: str) -> dict[str, str]:
    config = LifecycleConfig.model_validate_json(config_json)
    return {f.name: f.description for f in feature_definitions(config) if not f.internal}


def feature_label(name: str, lang: Lang, config: LifecycleConfig | None = None) -> str:
    """Return a feature's name for people: its description (en) or a Korean label."""
    if lang == "ko":
        if name in _FIXED_KO:
            return _FIXED_KO[name]
        for pattern, label in _PATTERNS_KO:
            match = re.fullmatch(pattern, name)
            if match:
                return label.format(*match.groups())
        return name
    if name in _FIXED_EN:
        return _FIXED_EN[name]
    described = _descriptions((config or LifecycleConfig()).model_dump_json()).get(name)
    return (described[0].upper() + described[1:]) if described else name.replace("_", " ")


def stage_name(stage: str, lang: Lang) -> str:
    """Return a stage's name in ``lang`` (Korean names from the explanations' table)."""
    if stage not in STAGES:
        return stage
    return STAGE_NAMES[lang][STAGES.index(stage)] if lang == "ko" else stage.capitalize()


def segment_name(segment: str, lang: Lang) -> str:
    """Return an RFM segment's name in ``lang``."""
    return SEGMENT_NAMES_KO.get(segment, segment) if lang == "ko" else segment


def number(value: float | None, lang: Lang, digits: int = 0) -> str:
    """Format a number with thousands separators; an em dash when missing."""
    if value is None or value != value:
        return "\u2014"
    return f"{value:,.{digits}f}"


def percent(value: float | None, lang: Lang) -> str:
    """Format a share as a whole percentage."""
    if value is None or value != value:
        return "\u2014"
    return f"{value:.0%}"


def money(value: float | None, currency: str, lang: Lang) -> str:
    """Format an amount with two decimals and the currency code."""
    if value is None or value != value:
        return "\u2014"
    return f"{value:,.2f} {currency}"


def date(value: datetime, lang: Lang) -> str:
    """Format a date: "Jan 5, 2026" or "2026년 1월 5일"."""
    if lang == "ko":
        return f"{value.year}년 {value.month}월 {value.day}일"
    return f"{value:%b} {value.day}, {value.year}"


def chance_sentence(task: str, p: float, lang: Lang, *, horizon: int, next_stage: str) -> str:
    """Plain-language meaning of a probability, as "about N in 10 similar customers"."""
    in_ten = max(0, min(10, round(p * 10)))
    if task == "churn":
        level = ("low", "medium", "high")[(p >= 0.3) + (p >= 0.6)]
        if lang == "ko":
            word = {"low": "낮은 위험", "medium": "중간 위험", "high": "높은 위험"}[level]
            return (
                f"{word}: 비슷한 고객 10명 중 약 {in_ten}명이 {horizon}일 안에 다시 구매하지 "
                "않습니다."
            )
        word = {"low": "Low risk", "medium": "Medium risk", "high": "High risk"}[level]
        return (
            f"{word}: about {in_ten} in 10 similar customers do not come back within "
            f"{horizon} days."
        )
    if lang == "ko":
        return (
            f"비슷한 고객 10명 중 약 {in_ten}명이 {horizon}일 안에 '{next_stage}' 단계로 "
            "넘어갑니다."
        )
    return f"About {in_ten} in 10 similar customers move on to {next_stage} within {horizon} days."


def clv_sentence(expected: float, low: float, high: float, currency: str, lang: Lang) -> str:
    """Plain-language meaning of the CLV and its interval."""
    if lang == "ko":
        return (
            f"앞으로 365일 동안 약 {money(expected, currency, lang)}를 지출할 것으로 예상됩니다"
            f"(대체로 {money(low, currency, lang)}~{money(high, currency, lang)})."
        )
    return (
        f"Expected to spend about {money(expected, currency, lang)} in the next 365 days "
        f"(likely between {money(low, currency, lang)} and {money(high, currency, lang)})."
    )


EVENT_NAMES_KO: dict[str, str] = {
    "visit": "방문",
    "ad_click": "광고 클릭",
    "app_install": "앱 설치",
    "app_open": "앱 실행",
    "email_open": "이메일 열람",
    "signup": "가입",
    "add_to_cart": "장바구니 담기",
    "purchase": "구매",
    "refund": "환불",
    "referral": "추천",
    "loyalty_join": "로열티 가입",
    "review": "리뷰",
    "support_ticket": "문의",
    "campaign_exposure": "캠페인 노출",
    "organic_search": "자연 검색",
    "paid_social": "유료 소셜",
    "email": "이메일",
    "affiliate": "제휴",
    "direct": "직접 방문",
}


def code_name(code: str | None, lang: Lang) -> str:
    """Return an event type or channel code for people ("add to cart" / "장바구니 담기")."""
    if not code:
        return ""
    if lang == "ko" and code in EVENT_NAMES_KO:
        return EVENT_NAMES_KO[code]
    return code.replace("_", " ")
