"""One glossary and one formatter behind the page, the driver sentences and the action reasons."""

from __future__ import annotations

import re

import pytest

from lifecycle.features.glossary import LANGS, Lang, stage_name
from lifecycle.features.schema import STAGES
from lifecycle.models.nba import ActionCatalog, load_catalog, recommend
from lifecycle.serving import i18n
from lifecycle.serving.explain import describe_driver

DECIMALS_BEFORE_KRW = re.compile(r"\d\.\d+ KRW")
FORMER_KOREAN_STAGE_NAMES = ("도달", "획득", "전환", "유지")


def nudge_catalog(currency: str = "USD") -> ActionCatalog:
    """A no-action and one next-stage action open to every stage below loyalty."""
    return ActionCatalog.model_validate(
        {
            "currency": currency,
            "actions": [
                {
                    "id": "no_action",
                    "names": {"en": "No action", "ko": "조치 없음"},
                    "description": {"en": "Nothing", "ko": "없음"},
                    "stages": list(STAGES),
                    "cost": 0.0,
                    "outcome": "none",
                    "effect": 0.0,
                },
                {
                    "id": "nudge",
                    "names": {"en": "Nudge", "ko": "넛지"},
                    "description": {"en": "A nudge", "ko": "넛지"},
                    "stages": list(STAGES[:-1]),
                    "cost": 0.0,
                    "outcome": "next_stage",
                    "effect": 0.5,
                },
            ],
        },
        strict=False,
    )


@pytest.mark.parametrize("lang", LANGS)
def test_krw_amounts_have_no_decimals_in_sentences_reasons_and_page(lang: Lang) -> None:
    sentences = [
        describe_driver("clv", feature, 12345.6, 0.3, typical=999.5, lang=lang, currency="KRW")
        for feature in ("revenue_total", "avg_order_value", "revenue_30d", "revenue_trend_30d")
    ]
    catalog = load_catalog().model_copy(update={"currency": "KRW"})
    reasons = [
        recommend(
            catalog,
            stage="retention",
            segment="At risk",
            predictions={"next_stage_probability": 0.1, "churn_risk": 0.8, "clv": 500.55},
            lang=lang,
        ).reason,
        recommend(
            nudge_catalog("KRW"),
            stage="acquisition",
            segment="No purchase yet",
            predictions={"next_stage_probability": 0.2},
            lang=lang,
        ).reason,
    ]
    page = [
        i18n.money(1234.56, "KRW", lang),
        i18n.clv_sentence(1234.56, 10.5, 5000.5, "KRW", lang),
    ]
    for words in [*sentences, *reasons, *page]:
        assert "KRW" in words, words
        assert not DECIMALS_BEFORE_KRW.search(words), words
    assert "12,346 KRW" in sentences[0]
    assert "400 KRW" in reasons[0]  # 0.8 x 500.55 = 400.44
    assert page[0] == "1,235 KRW"


@pytest.mark.parametrize("code", range(len(STAGES) - 1))
def test_a_stage_has_one_korean_name_on_the_page_in_explanations_and_in_reasons(
    code: int,
) -> None:
    stage, next_stage = STAGES[code], STAGES[code + 1]
    name, next_name = stage_name(stage, "ko"), stage_name(next_stage, "ko")
    assert i18n.stage_name(stage, "ko") == name
    sentence = describe_driver("next_stage", "stage_code", float(code), 0.3, lang="ko")
    assert sentence.startswith(f"현재 라이프사이클 단계는 {name} 단계입니다.")
    reason = recommend(
        nudge_catalog(),
        stage=stage,
        segment="No purchase yet",
        predictions={"next_stage_probability": 0.2},
        lang="ko",
    ).reason
    assert reason.startswith(f"{name} 단계에서 {next_name} 단계로 올라가면")
    for former in FORMER_KOREAN_STAGE_NAMES:
        assert former not in sentence + reason


def test_the_page_capitalises_english_stage_names_only() -> None:
    assert [i18n.stage_name(s, "en") for s in STAGES] == [s.capitalize() for s in STAGES]
    assert i18n.stage_name("unknown", "ko") == "unknown"
