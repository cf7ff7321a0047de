"""The glossary and the formatter: both languages everywhere, currency decimals, one name each."""

from __future__ import annotations

import math
from datetime import date

import pytest

from lifecycle.features.formatting import counted, currency_digits, days, money, number, percent
from lifecycle.features.formatting import date as write_date
from lifecycle.features.glossary import (
    LANGS,
    SENTENCES,
    STAGE_NAMES,
    STAGE_NAMES_BY_CODE,
    TABLES,
    event_name,
    object_particle,
    stage_name,
    text,
    with_particle,
)
from lifecycle.features.rfm import NO_PURCHASE, SEGMENTS
from lifecycle.features.schema import DEFAULT_CHANNELS, DEFAULT_VOCABULARY, STAGES


@pytest.mark.parametrize("table", sorted(TABLES))
def test_both_languages_have_exactly_the_same_keys(table: str) -> None:
    entries = TABLES[table]
    keys = {lang: {key for key, words in entries.items() if lang in words} for lang in LANGS}
    assert keys["en"] == keys["ko"] == set(entries)
    for key, words in entries.items():
        assert set(words) == set(LANGS), key
        if key.endswith(".unit"):
            assert bool(words["en"]) == bool(words["ko"]), key  # both or neither have a unit
        else:
            assert all(words[lang].strip() for lang in LANGS), key


def test_the_glossary_names_every_stage_segment_event_and_channel() -> None:
    assert set(TABLES["stage"]) == set(STAGES)
    assert set(TABLES["segment"]) == {*SEGMENTS, NO_PURCHASE}
    assert set(DEFAULT_VOCABULARY) <= set(TABLES["event"])
    assert set(DEFAULT_CHANNELS) <= set(TABLES["channel"])


def test_every_sentence_has_all_its_parts() -> None:
    sentences = {key.rpartition(".")[0] for key in SENTENCES}
    for sentence in sentences:
        for part in ("fact", "missing", "typical", "unit"):
            assert f"{sentence}.{part}" in SENTENCES, (sentence, part)


def test_korean_stage_names_are_the_page_names() -> None:
    assert STAGE_NAMES_BY_CODE["ko"] == ("인지", "가입", "첫 구매", "재구매", "충성")
    assert STAGE_NAMES_BY_CODE["en"] == STAGES
    assert [stage_name(s, "ko") for s in STAGES] == [STAGE_NAMES[s]["ko"] for s in STAGES]


def test_text_fills_values_and_names_an_unknown_key() -> None:
    assert text("page.list_title", "ko", name="이탈 고객") == "이탈 고객: 고객 목록"
    with pytest.raises(KeyError, match=r"page\.nope"):
        text("page.nope", "en")
    with pytest.raises(KeyError, match="name"):
        text("page.list_title", "en")


def test_unknown_event_types_are_quoted() -> None:
    assert event_name("wishlist_add", "en") == "'wishlist add' event"
    assert event_name("wishlist_add", "ko") == "'wishlist add' 이벤트"


@pytest.mark.parametrize("currency", ["KRW", "JPY", "krw"])
@pytest.mark.parametrize("lang", LANGS)
def test_zero_decimal_currencies_never_print_decimals(currency: str, lang: str) -> None:
    assert currency_digits(currency) == 0
    assert money(12000.4, currency, lang) == f"12,000 {currency}"  # type: ignore[arg-type]
    assert money(-0.3, currency, lang) == f"0 {currency}"  # type: ignore[arg-type]


def test_other_currencies_have_two_decimals_and_missing_is_a_dash() -> None:
    assert money(1234.5, "USD") == "1,234.50 USD"
    assert money(7.5, None) == "7.50"
    assert money(math.nan, "USD") == money(None, "KRW") == "\u2014"


def test_numbers_percentages_dates_and_days() -> None:
    assert number(12345.6) == "12,346"
    assert number(0.256, "en", 2) == "0.26"
    assert percent(0.256) == "26%"
    assert percent(-0.001) == "0%"
    assert percent(None) == "\u2014"
    assert counted(1, "purchase") == "1 purchase"
    assert counted(3, "purchase") == "3 purchases"
    assert counted(1200, "회", "ko") == "1,200회"
    assert days(20.6) == "21 days"
    assert days(1.0, "ko") == "1일"
    assert write_date(date(2026, 1, 5), "en") == "Jan 5, 2026"
    assert write_date(date(2026, 1, 5), "ko") == "2026년 1월 5일"


def test_every_comparison_names_whose_typical_value_it_is() -> None:
    """The typical part says {who}: everyone's, or the customer's own stage's."""
    typical = {key: words for key, words in SENTENCES.items() if key.endswith(".typical")}
    assert typical
    for key, words in typical.items():
        for lang in LANGS:
            assert "{who}" in words[lang] and "{t}" in words[lang], (key, lang)
            assert "typical customer" not in words[lang] and "일반적인" not in words[lang], key
    for lang in LANGS:
        stage = stage_name("conversion", lang)
        who = text("phrase.typical_stage_customer", lang, stage=stage)
        assert stage in who
        filled = text("sentence.purchases_total.typical", lang, who=who, t="1")
        assert filled in (
            "for a typical customer in the conversion stage it is 1",
            "첫 구매 단계의 일반적인 고객의 경우 1입니다",
        )


def test_korean_particles_follow_the_final_sound() -> None:
    assert [with_particle(w) for w in ("이탈 위험", "예상 고객 가치", "일반적인 고객")] == [
        "과",
        "와",
        "과",
    ]
    assert [object_particle(w) for w in ("이탈 위험", "예상 고객 가치")] == ["을", "를"]


def test_every_overview_direction_has_its_words() -> None:
    keys = ("low_activity", "long_inactivity", "low", "high", "marketing_action")
    for key in keys:
        for lang in LANGS:
            assert text(f"page.raises_when.{key}", lang).strip()
    assert text("page.raises_when.low_activity", "en") == "Low activity raises the risk"
