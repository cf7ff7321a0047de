"""Driver sentences: every feature in both languages, order and top_k, strength words, no claims
of cause, fallbacks for unknown names, and speed."""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lifecycle.features.config import FeatureSettings, LifecycleConfig
from lifecycle.features.definitions import RFM_FEATURES, feature_definitions
from lifecycle.features.definitions import model_features as model_feature_defs
from lifecycle.features.glossary import FAMILY_LABELS, LANGS, TASK_LABELS, Lang
from lifecycle.features.glossary import STAGE_NAMES_BY_CODE as STAGE_NAMES
from lifecycle.serving import explain as explain_module
from lifecycle.serving.explain import (
    STRENGTH_THRESHOLDS,
    TASKS,
    Task,
    describe_driver,
    explain,
    strength,
)
from lifecycle.training.config import load_training_config


def model_features(config: LifecycleConfig | None = None) -> list[str]:
    defs = feature_definitions(config or LifecycleConfig())
    return [f.name for f in defs if not f.internal] + list(RFM_FEATURES)


FEATURES = model_features()
EN_CAUSAL = re.compile(
    r"\b(because|cause[sd]?|causing|due to|leads? to|led to|results? in|thanks to)\b", re.I
)
KO_CAUSAL = ("때문", "원인", "인해", "덕분", "탓", "초래", "유발")
NAN_WORD = re.compile(r"\bnan\b", re.I)


def distinct_contributions(n: int, base: float = -1.5) -> np.ndarray:
    """Non-zero, all different, alternating in sign, so every feature is a driver."""
    c = np.array([(0.01 + 0.001 * i) * (1 if i % 2 else -1) for i in range(n)])
    return np.append(c, base)


def assert_clean(text: str) -> None:
    assert text, "empty sentence"
    assert "{" not in text and "}" not in text, text
    assert not NAN_WORD.search(text), text
    assert "inf" not in text.lower().split(), text
    assert text.endswith("."), text


def assert_not_causal(text: str) -> None:
    assert not EN_CAUSAL.search(text), text
    assert not any(word in text for word in KO_CAUSAL), text


# ------------------------------------------------------------------------------ every feature


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case", ["finite", "nan", "no_typical", "nan_typical"])
def test_explain_renders_every_feature_in_both_languages(lang: Lang, case: str) -> None:
    n = len(FEATURES)
    value = math.nan if case == "nan" else 777.0
    if case == "no_typical":
        typical: dict[str, float | None] = {}
    elif case == "nan_typical":
        typical = {name: math.nan for name in FEATURES}
    else:
        typical = dict.fromkeys(FEATURES, 2.0)
    out = explain(
        "churn",
        distinct_contributions(n),
        FEATURES,
        np.full(n, value),
        typical=typical,
        top_k=n,
        lang=lang,
    )
    assert sorted(d["feature"] for d in out["drivers"]) == sorted(FEATURES)
    compare = "typical customer" if lang == "en" else "일반적인 고객"
    for driver in out["drivers"]:
        text = driver["text"]
        assert_clean(text)
        assert_not_causal(text)
        if case == "nan":
            assert driver["value"] is None
            assert "777" not in text, text  # the missing wording, not a number
        else:
            assert driver["value"] == 777.0
        if case != "finite":
            assert compare not in text, text  # no comparison without a usable typical value
        elif driver["feature"] != "days_since_last_purchase":
            assert compare in text, text


@pytest.mark.parametrize("lang", LANGS)
def test_korean_sentences_are_korean(lang: Lang) -> None:
    text = describe_driver("clv", "n_visit_30d", 4.0, 0.2, typical=1.0, lang=lang)
    hangul = re.search(r"[가-힣]", text) is not None
    assert hangul == (lang == "ko")


def test_every_feature_of_another_config_renders() -> None:
    config = LifecycleConfig(
        vocabulary=("visit", "purchase", "wishlist_add", "signup", "refund"),
        features=FeatureSettings(windows_days=(14, 60), channels=("tiktok", "email")),
    )
    names = model_features(config)
    assert {"n_events_14d", "n_wishlist_add_30d", "n_channel_tiktok"} <= set(names)
    for lang in LANGS:
        out = explain(
            "next_stage",
            distinct_contributions(len(names)),
            names,
            np.full(len(names), 5.0),
            typical=dict.fromkeys(names, 1.0),
            top_k=len(names),
            lang=lang,
            config=config,
        )
        texts = {d["feature"]: d["text"] for d in out["drivers"]}
        for text in texts.values():
            assert_clean(text)
        if lang == "en":
            assert texts["n_events_14d"].startswith("The customer had 5 events in the last 14 days")
            assert texts["n_wishlist_add"].startswith("The customer has 5 'wishlist add' events")
            assert texts["n_channel_tiktok"].startswith("The customer has 5 events on the 'tiktok'")
        else:
            assert texts["n_events_14d"].startswith("최근 14일 활동 건수는 5건입니다")


# ------------------------------------------------------------------------------ order, top_k


NAMES = ["n_events", "revenue_total", "days_since_last_purchase", "stage_code", "rfm_r"]


def test_explain_orders_by_size_with_ties_in_feature_order_and_skips_zeros() -> None:
    contrib = [0.2, -0.5, 0.0, 0.5, -0.2, -1.0]
    out = explain("churn", contrib, NAMES, [3, 120.0, 10, 2, 4], typical={}, top_k=10)
    assert out["base_value"] == -1.0
    drivers = out["drivers"]
    assert [d["feature"] for d in drivers] == ["revenue_total", "stage_code", "n_events", "rfm_r"]
    assert [d["direction"] for d in drivers] == ["down", "up", "up", "down"]
    assert [d["contribution"] for d in drivers] == [-0.5, 0.5, 0.2, -0.2]
    assert [d["value"] for d in drivers] == [120.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_explain_keeps_at_most_top_k(top_k: int) -> None:
    contrib = [0.2, -0.5, 0.1, 0.4, -0.3, 0.7]
    out = explain("clv", contrib, NAMES, np.ones(5), typical={}, top_k=top_k)
    expected = ["revenue_total", "stage_code", "rfm_r"][:top_k]
    assert [d["feature"] for d in out["drivers"]] == expected
    assert out["base_value"] == 0.7


def test_explain_with_only_zero_or_nan_contributions_has_no_drivers() -> None:
    contrib = [0.0, math.nan, 0.0, -0.0, 0.0, 2.5]
    out = explain("next_stage", contrib, NAMES, np.ones(5), typical={})
    assert out["base_value"] == 2.5
    assert out["drivers"] == []
    assert out["base_probability"] == pytest.approx(1 / (1 + math.exp(-2.5)))


def test_explain_value_is_none_when_missing_or_infinite() -> None:
    out = explain(
        "churn", [0.3, 0.2, 0.0], ["n_events", "revenue_total"], [math.nan, math.inf], typical={}
    )
    assert [d["value"] for d in out["drivers"]] == [None, None]
    for d in out["drivers"]:
        assert_clean(d["text"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ltv"}, "unknown task"),
        ({"lang": "fr"}, "unknown language"),
        ({"top_k": 0}, "top_k"),
        ({"contributions": [0.1, 0.2]}, "contributions"),
        ({"values": [1.0]}, "values"),
    ],
)
def test_explain_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "task": "churn",
        "contributions": [0.1, 0.2, 0.0],
        "feature_names": ["n_events", "revenue_total"],
        "values": [1.0, 2.0],
        "typical": {},
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        explain(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ the spec's shape


def test_days_since_last_purchase_against_the_customers_own_rhythm() -> None:
    names = ["days_since_last_purchase", "n_purchases", "mean_purchase_gap_days"]
    contrib = [0.9, 0.1, 0.05, -2.0]
    values = [94.2, 5, 21.4]
    typical = {"days_since_last_purchase": 30.0}
    en = explain("churn", contrib, names, values, typical=typical, top_k=1)["drivers"][0]["text"]
    ko = explain("churn", contrib, names, values, typical=typical, top_k=1, lang="ko")
    assert en == (
        "Last purchase was 94 days ago; this customer usually buys every 21 days. "
        "This raises the predicted churn risk by about 14 points."
    )
    assert ko["drivers"][0]["text"] == (
        "마지막 구매는 94일 전입니다. 이 고객은 보통 21일마다 구매합니다. "
        "이 점이 이탈 위험을 약 14%p 높입니다."
    )


@pytest.mark.parametrize("gap", [math.nan, None])
def test_days_since_last_purchase_falls_back_to_the_typical_customer(gap: float | None) -> None:
    names = ["days_since_last_purchase"] + ([] if gap is None else ["mean_purchase_gap_days"])
    values = [94.0] + ([] if gap is None else [gap])
    contrib = [0.3] + [0.0] * (len(names) - 1) + [-2.0]
    typical = {"days_since_last_purchase": 30.0}
    en = explain("churn", contrib, names, values, typical=typical)["drivers"][0]["text"]
    ko = explain("churn", contrib, names, values, typical=typical, lang="ko")["drivers"][0]
    assert en == (
        "Last purchase was 94 days ago; for a typical customer it is 30 days. "
        "This raises the predicted churn risk by about 4 points."
    )
    assert ko["text"] == (
        "마지막 구매는 94일 전입니다. 일반적인 고객의 경우 30일 전입니다. "
        "이 점이 이탈 위험을 약 4%p 높입니다."
    )


def test_missing_last_purchase_says_no_purchase_yet() -> None:
    names = ["days_since_last_purchase", "mean_purchase_gap_days"]
    contrib, values = [0.6, 0.0, -2.0], [math.nan, math.nan]
    typical = {"days_since_last_purchase": 30.0}
    en = explain("churn", contrib, names, values, typical=typical)
    ko = explain("churn", contrib, names, values, typical=typical, lang="ko")
    assert en["drivers"][0]["text"] == (
        "No purchase yet. This raises the predicted churn risk by about 8 points."
    )
    assert (
        ko["drivers"][0]["text"]
        == "아직 구매 이력이 없습니다. 이 점이 이탈 위험을 약 8%p 높입니다."
    )


# ------------------------------------------------------------------------------ numbers in words


@pytest.mark.parametrize(
    ("feature", "value", "typical", "en", "ko"),
    [
        ("revenue_total", 1234.5, 300.0, "Total spend is 1,234.50 USD", "1,234.50 USD입니다"),
        ("n_purchases", 3.0, 1.0, "has made 3 purchases in total", "누적 구매 횟수는 3회입니다"),
        ("n_purchases_30d", 1.0, 2.0, "made 1 purchase in the last 30 days", "1회입니다"),
        ("n_events", 12345.0, 20.0, "has 12,345 events in total", "12,345건입니다"),
        ("days_since_last_event", 6.6, 3.2, "was 7 days ago", "7일 전입니다"),
        ("purchase_gap_ratio", 3.24, 1.0, "is 3.2 times the usual gap", "평소 구매 간격의 3.2배"),
        ("rfm_r", 2.0, 3.0, "R score 2 of 5", "R 점수 5점 중 2점"),
        ("days_in_stage", 40.0, 25.0, "In the current stage for 40 days", "들어온 지 40일이"),
        ("refund_rate", 0.25, 0.0, "Refunds equal 25% of purchases", "환불 비율은 25%입니다"),
        ("var_purchase_gap_days", 144.0, 16.0, "varies by about 12 days", "편차는 약 12일"),
        ("purchase_trend_30d", -2.0, 0.0, "had 2 fewer purchases", "변화는 -2회입니다"),
        ("revenue_trend_30d", 50.0, 0.0, "had 50.00 USD more revenue", "+50.00 USD입니다"),
        ("activity_trend_30d", 0.0, 1.0, "had the same number of events", "변화는 0건입니다"),
    ],
)
def test_values_are_quoted_in_their_units(
    feature: str, value: float, typical: float, en: str, ko: str
) -> None:
    assert en in describe_driver("clv", feature, value, 0.2, typical=typical)
    assert ko in describe_driver("clv", feature, value, 0.2, typical=typical, lang="ko")


def test_money_follows_the_currency() -> None:
    assert "12,000 KRW" in describe_driver("clv", "revenue_90d", 12000.4, 0.2, currency="KRW")
    assert "-5.00 EUR" in describe_driver("clv", "net_revenue_total", -5.0, 0.2, currency="EUR")
    assert "is 7.50;" in describe_driver("clv", "revenue_7d", 7.5, 0.2, typical=1, currency=None)


@pytest.mark.parametrize("code", range(5))
def test_stage_code_reads_as_the_stage_name(code: int) -> None:
    en = describe_driver("next_stage", "stage_code", float(code), 0.3, typical=1.0)
    ko = describe_driver("next_stage", "stage_code", float(code), 0.3, typical=1.0, lang="ko")
    assert en.startswith(f"The customer is in the {STAGE_NAMES['en'][code]} stage;")
    assert ko.startswith(f"현재 라이프사이클 단계는 {STAGE_NAMES['ko'][code]} 단계입니다.")
    if code == 1:  # the typical stage: nothing is said to raise or lower anything
        assert en.endswith(
            "the same as for a typical customer, so it does not set this customer apart."
        )
        assert ko.endswith("일반적인 고객과 같아 이 고객을 구별하는 점은 아닙니다.")
        assert "raises" not in en and "높입니다" not in ko
    else:
        assert "a typical customer is in the acquisition stage" in en
        assert "일반적인 고객은 가입 단계입니다" in ko


def test_rfm_score_zero_reads_as_no_purchase() -> None:
    assert describe_driver("churn", "rfm_f", 0.0, 0.3, typical=2.0).startswith(
        "No purchase yet (F score 0)."
    )
    assert describe_driver("churn", "rfm_f", 0.0, 0.3, lang="ko").startswith(
        "아직 구매 이력이 없습니다(F 점수 0점)."
    )


# ------------------------------------------------------------------------------ strength words


@pytest.mark.parametrize("task", TASKS)
def test_strength_words_at_the_thresholds(task: Task) -> None:
    low, high = STRENGTH_THRESHOLDS[task]
    assert (low, high) == ((0.1, 0.4) if task == "clv" else (0.15, 0.5))
    cases = [
        (np.nextafter(low, 0.0), "slightly"),
        (low, "moderately"),
        (np.nextafter(high, 0.0), "moderately"),
        (high, "strongly"),
        (5.0, "strongly"),
    ]
    ko_words = {"slightly": "약간", "moderately": "어느 정도", "strongly": "크게"}
    for size, word in cases:
        for sign, verb, ko_verb in ((1, "raises", "높입니다"), (-1, "lowers", "낮춥니다")):
            c = sign * float(size)
            assert strength(task, c) == word
            en = describe_driver(task, "n_events", 4.0, c)
            ko = describe_driver(task, "n_events", 4.0, c, lang="ko")
            assert en.endswith(f"This {word} {verb} the predicted {en_object(task)}."), en
            label = TASK_LABELS[task]["ko"]
            assert ko.endswith(
                f"{label}{'를' if task == 'clv' else '을'} {ko_words[word]} {ko_verb}."
            )


def en_object(task: Task) -> str:
    label = TASK_LABELS[task]["en"]
    return "customer value" if task == "clv" else label.removeprefix("the ")


# ------------------------------------------------------------------------------ no causal claims


def test_no_sentence_claims_a_cause() -> None:
    """Every template, both languages, every direction and strength, values and missing."""
    n = len(FEATURES)
    sizes = [0.05, -0.05, 0.3, -0.3, 0.9, -0.9]
    count = 0
    for task in TASKS:
        for lang in LANGS:
            for values in (np.full(n, 3.0), np.full(n, math.nan), np.zeros(n), np.full(n, -2.0)):
                for typical in (dict.fromkeys(FEATURES, 1.0), {}):
                    for shift in range(len(sizes)):
                        contrib = np.array([sizes[(i + shift) % len(sizes)] for i in range(n)])
                        out = explain(
                            task,
                            np.append(contrib, 0.0),
                            FEATURES,
                            values,
                            typical=typical,
                            top_k=n,
                            lang=lang,
                        )
                        for driver in out["drivers"]:
                            assert_not_causal(driver["text"])
                            assert_clean(driver["text"])
                            count += 1
            for family in FAMILY_LABELS:
                for value in (2.0, None):
                    text = describe_driver(
                        task,
                        "some_new_feature",
                        value,
                        0.3,
                        typical=1.0,
                        lang=lang,
                        family=family,
                        description="a new measure",
                    )
                    assert_not_causal(text)
                    count += 1
    assert count > 10_000


# ------------------------------------------------------------------------------ sentence keys


TRAINING_DEFAULTS = Path(__file__).parents[2] / "training" / "defaults"
SENTENCE_CONFIGS = {
    "default": LifecycleConfig(),
    "other": LifecycleConfig(
        vocabulary=("visit", "purchase", "wishlist_add", "Gift Card", "signup", "refund"),
        features=FeatureSettings(windows_days=(1, 14, 60, 180), channels=("tiktok", "email")),
    ),
    "transactions_only": LifecycleConfig(
        vocabulary=("purchase", "refund"),
        features=FeatureSettings(windows_days=(30, 90, 365), channels=()),
    ),
    **{
        name: load_training_config(TRAINING_DEFAULTS / f"{name}.yaml").lifecycle
        for name in ("cdnow", "online_retail")
    },
}


@pytest.mark.parametrize("name", sorted(SENTENCE_CONFIGS))
def test_every_defined_feature_has_its_own_sentence_in_both_languages(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No defined feature reaches the name-shape, family or generic fallback."""

    def no_fallback(feature: str, *args: object) -> None:
        raise AssertionError(f"{feature} fell back")

    monkeypatch.setattr(explain_module, "_undeclared", no_fallback)
    config = SENTENCE_CONFIGS[name]
    features = model_feature_defs(config)
    names = [f.name for f in features]
    for lang in LANGS:
        for values in (np.full(len(names), 3.0), np.full(len(names), math.nan)):
            out = explain(
                "churn",
                distinct_contributions(len(names)),
                names,
                values,
                typical=dict.fromkeys(names, 1.0),
                top_k=len(names),
                lang=lang,
                config=config,
            )
            assert len(out["drivers"]) == len(names)
            for driver in out["drivers"]:
                assert_clean(driver["text"])
                hangul = re.search(r"[가-힣]", driver["text"]) is not None
                assert hangul == (lang == "ko"), driver["text"]


def test_an_unknown_sentence_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    config = LifecycleConfig(features=FeatureSettings(windows_days=(3,)))
    broken = [
        replace(f, sentence="no_such_sentence") if f.name == "n_events" else f
        for f in model_feature_defs(config)
    ]
    monkeypatch.setattr(explain_module, "model_features", lambda _config: broken)
    with pytest.raises(ValueError, match=r"n_events.*no_such_sentence"):
        describe_driver("churn", "n_events", 1.0, 0.2, config=config)


# ------------------------------------------------------------------------------ fallbacks


@pytest.mark.parametrize("lang", LANGS)
def test_unknown_feature_names_fall_back_gracefully(lang: Lang) -> None:
    names = ["basket_breadth", "n_wishlist_add", "n_channel_tiktok", "x{weird}", "", "_hidden"]
    out = explain(
        "clv",
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
        names,
        [3.5, 2, 7, 1, 4, math.nan],
        typical={"basket_breadth": 2.0},
        top_k=10,
        lang=lang,
    )
    texts = [d["text"] for d in out["drivers"]]
    assert len(texts) == len(names)
    for text in texts:
        assert_clean(text)
    if lang == "en":
        assert texts[0].startswith("Basket breadth: 3.5; for a typical customer it is 2.")
        assert texts[1].startswith("The customer has 2 'wishlist add' events in total")
    else:
        assert texts[0].startswith(
            "'basket breadth' 지표는 3.5입니다. 일반적인 고객의 경우 2입니다."
        )


@pytest.mark.parametrize("family", sorted(FAMILY_LABELS))
def test_every_family_has_a_fallback_in_both_languages(family: str) -> None:
    for lang in LANGS:
        text = describe_driver(
            "churn",
            "some_new_feature",
            5.0,
            -0.3,
            typical=2.0,
            lang=lang,
            family=family,
            description="a new measure",
        )
        assert_clean(text)
        assert FAMILY_LABELS[family][lang] in text
        assert "new measure" in text


def test_a_declared_feature_of_another_family_uses_its_family() -> None:
    text = describe_driver(
        "clv", "n_basket", 5.0, 0.3, family="monetary", description="basket value"
    )
    assert text.startswith("Basket value (spend): 5.00 USD.")


# ------------------------------------------------------------------------------ speed


def test_explain_is_fast() -> None:
    names = [*FEATURES, "extra_one", "extra_two"][:78]
    assert len(names) == 78
    rng = np.random.default_rng(0)
    contrib = np.append(rng.normal(0, 0.3, len(names)), -1.0)
    values = rng.integers(0, 100, len(names)).astype(float)
    values[::7] = np.nan
    typical = dict.fromkeys(names, 10.0)
    for lang in LANGS:
        explain("churn", contrib, names, values, typical=typical, lang=lang)
    start = time.perf_counter()
    for i in range(1000):
        explain(
            "churn",
            contrib,
            names,
            values,
            typical=typical,
            top_k=5,
            lang=LANGS[i % 2],
        )
    assert time.perf_counter() - start < 1.0


# ------------------------------------------------------------------------------ not a lever

MARKETING_ACTIONS = {
    "n_campaign_exposures",
    "days_since_last_campaign_exposure",
    "n_campaign_exposure",
    "n_campaign_exposure_30d",
}
"""The default config's features that record an offer marketing sent."""
EN_EFFECT_VERBS = re.compile(r"\b(raises|lowers)\b")
KO_EFFECT_VERBS = ("높입니다", "낮춥니다")


def test_only_offers_sent_are_marketing_actions() -> None:
    flagged = {f.name for f in model_feature_defs(LifecycleConfig()) if f.marketing_action}
    assert flagged == MARKETING_ACTIONS
    # a customer's response to an offer is behaviour, not the marketer's action
    assert not flagged & {"n_offer_redemptions", "offer_redemption_rate", "n_campaign_responses"}


def test_an_exposure_event_of_another_config_is_a_marketing_action() -> None:
    config = LifecycleConfig(
        vocabulary=("visit", "purchase", "email_sent", "email_open"),
        features=FeatureSettings(exposure_events=("email_sent",)),
    )
    flagged = {f.name for f in model_feature_defs(config) if f.marketing_action}
    assert {"n_email_sent", "n_email_sent_30d"} <= flagged
    assert not {"n_email_open", "n_email_open_30d"} & flagged


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_marketing_action_is_an_association_not_an_effect(
    lang: Lang, task: Task, sign: float
) -> None:
    names = [*sorted(MARKETING_ACTIONS), "n_purchases"]
    contrib = np.append(sign * np.array([0.9, 0.7, 0.5, 0.3, 0.1]), -1.0)
    values = np.array([10.0, 3.0, 10.0, 2.0, 4.0])
    out = explain(
        task, contrib, names, values, typical=dict.fromkeys(names, 1.0), top_k=5, lang=lang
    )
    for driver in out["drivers"]:
        text = driver["text"]
        assert_clean(text)
        assert_not_causal(text)
        if driver["feature"] in MARKETING_ACTIONS:
            assert driver["lever"] is False
            assert not EN_EFFECT_VERBS.search(text), text
            assert not any(verb in text for verb in KO_EFFECT_VERBS), text
            if lang == "en":
                assert "a marketing action" in text
                assert "an association, not an effect of the action." in text
                assert ("a higher predicted" if sign > 0 else "a lower predicted") in text
            else:
                assert "마케팅 조치" in text and "효과가 아닙니다." in text
        else:
            assert driver["lever"] is True


def test_the_issue_s_win_back_sentence_no_longer_says_offers_raise_risk() -> None:
    en = describe_driver("churn", "n_campaign_exposures", 10.0, 0.3, typical=3.0, points=6.2)
    assert en == (
        "The customer has received 10 campaign offers; for a typical customer it is 3 "
        "campaign offers. The model links it with a higher predicted churn risk (about 6 "
        "points); it records a marketing action, not the customer's behaviour, so this is an "
        "association, not an effect of the action."
    )
    ko = describe_driver("churn", "n_campaign_exposures", 10.0, 0.3, points=6.2, lang="ko")
    assert ko == (
        "캠페인 제안을 받은 횟수는 10회입니다. 모델에서 이 값은 더 높은 이탈 위험과 함께 "
        "나타납니다(약 6%p). 고객의 행동이 아닌 마케팅 조치이므로 상관관계일 뿐 조치의 효과가 "
        "아닙니다."
    )


# ------------------------------------------------------------------------------ typical by stage


def test_a_one_time_buyer_is_compared_with_one_time_buyers() -> None:
    names = ["n_purchases", "days_since_first_event"]
    contrib = [-0.4, 0.2, -1.0]
    values = [1.0, 200.0]
    everyone = {"n_purchases": 0.0, "days_since_first_event": 100.0}
    conversion = {"n_purchases": 1.0, "days_since_first_event": 150.0}
    kwargs = {"typical": everyone, "stage": "conversion", "stage_typical": conversion}
    en = explain("churn", contrib, names, values, **kwargs)["drivers"]  # type: ignore[arg-type]
    ko = explain("churn", contrib, names, values, lang="ko", **kwargs)["drivers"]  # type: ignore[arg-type]
    # equal to the stage's typical value: nothing raised or lowered
    assert en[0]["text"] == (
        "The customer has made 1 purchase in total; the same as for a typical customer in the "
        "conversion stage, so it does not set this customer apart."
    )
    assert ko[0]["text"] == (
        "누적 구매 횟수는 1회입니다. 첫 구매 단계의 일반적인 고객과 같아 이 고객을 구별하는 "
        "점은 아닙니다."
    )
    assert (en[0]["typical"], en[0]["as_typical"]) == (1.0, True)
    assert en[1]["typical"] == 150.0 and en[1]["as_typical"] is False
    assert "; for a typical customer in the conversion stage it is 150 days. " in en[1]["text"]
    assert "첫 구매 단계의 일반적인 고객의 경우 150일 전입니다." in ko[1]["text"]


@pytest.mark.parametrize("stage_typical", [None, {}])
def test_without_per_stage_values_the_comparison_is_with_everyone(
    stage_typical: dict[str, float] | None,
) -> None:
    """Model records written before per-stage values still explain, against everyone."""
    out = explain(
        "churn",
        [-0.4, -1.0],
        ["n_purchases"],
        [1.0],
        typical={"n_purchases": 0.0},
        stage="conversion",
        stage_typical=stage_typical,
    )
    driver = out["drivers"][0]
    assert driver["typical"] == 0.0 and driver["as_typical"] is False
    assert "; for a typical customer it is 0 purchases. This lowers" in driver["text"]


def test_the_stage_code_is_compared_with_everyone_not_with_its_own_stage() -> None:
    out = explain(
        "next_stage",
        [0.5, -1.0],
        ["stage_code"],
        [2.0],
        typical={"stage_code": 1.0},
        stage="conversion",
        stage_typical={"stage_code": 2.0},
    )
    text = out["drivers"][0]["text"]
    assert "a typical customer is in the acquisition stage" in text
    assert "raises the predicted chance of moving to the next stage" in text


@pytest.mark.parametrize("lang", LANGS)
def test_a_value_equal_to_typical_is_never_said_to_raise_or_lower(lang: Lang) -> None:
    n = len(FEATURES)
    values = np.full(n, 3.0)
    for task in TASKS:
        out = explain(
            task,
            distinct_contributions(n),
            FEATURES,
            values,
            typical=dict.fromkeys(FEATURES, 3.0),
            top_k=n,
            lang=lang,
        )
        for driver in out["drivers"]:
            text = driver["text"]
            assert_clean(text)
            if driver["as_typical"]:
                assert not EN_EFFECT_VERBS.search(text), text
                assert not any(verb in text for verb in KO_EFFECT_VERBS), text
        said = {d["feature"] for d in out["drivers"] if d["as_typical"]}
        # everything but the sentences with their own comparison or a missing wording
        assert len(said) > n - 5, set(FEATURES) - said


# ------------------------------------------------------------------------------ points


def logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("seed", range(5))
def test_points_add_up_to_the_probability_gap_and_keep_signs_and_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    contrib = np.append(rng.normal(0, 0.8, 12), rng.normal(-1, 1))
    points, base_p = explain_module.probability_points(contrib)
    raw = contrib.sum()
    assert base_p == pytest.approx(logistic(contrib[-1]))
    assert points.sum() == pytest.approx(100 * (logistic(raw) - logistic(contrib[-1])))
    assert np.all(np.sign(points) == np.sign(contrib[:-1]))
    assert np.array_equal(np.argsort(-np.abs(points)), np.argsort(-np.abs(contrib[:-1])))


def test_points_follow_the_calibrator() -> None:
    """The service reports calibrated probabilities: the points add up to their gap."""

    def calibrate(raw: np.ndarray) -> np.ndarray:
        return 0.2 + 0.5 * logistic(2.0 * raw)

    contrib = [1.0, -0.25, 0.5, -0.5]
    points, base_p = explain_module.probability_points(contrib, calibrate)
    assert base_p == pytest.approx(0.2 + 0.5 * logistic(-1.0))
    gap = calibrate(np.array([0.75]))[0] - calibrate(np.array([-0.5]))[0]
    assert points.sum() == pytest.approx(100 * gap)
    assert points.tolist() == pytest.approx([100 * gap / 1.25, -25 * gap / 1.25, 50 * gap / 1.25])


def test_points_when_contributions_cancel_use_the_slope_at_the_base() -> None:
    points, base_p = explain_module.probability_points([0.3, -0.3, 0.0])
    assert base_p == 0.5
    assert points.tolist() == pytest.approx([7.5, -7.5], rel=1e-6)  # slope 0.25 at 50%


def test_explain_quotes_points_for_probabilities_and_keeps_strength_words_for_value() -> None:
    names = ["n_events_30d", "n_purchases"]
    contrib, values = [-0.9, 0.02, -0.5], [0.0, 2.0]
    churn = explain("churn", contrib, names, values, typical={})
    clv = explain("clv", contrib, names, values, typical={})
    p = logistic(np.array([-1.38]))[0]
    expected = 100 * (p - logistic(np.array([-0.5]))[0]) * np.array([-0.9, 0.02]) / -0.88
    assert [d["points"] for d in churn["drivers"]] == pytest.approx(expected.tolist())
    assert churn["drivers"][0]["text"].endswith(
        f"This lowers the predicted churn risk by about {round(abs(expected[0]))} points."
    )
    assert churn["drivers"][1]["text"].endswith(
        "This raises the predicted churn risk by less than 1 point."
    )
    assert clv["base_probability"] is None
    assert [d["points"] for d in clv["drivers"]] == [None, None]
    assert clv["drivers"][0]["text"].endswith("This strongly lowers the predicted customer value.")


@pytest.mark.parametrize(
    ("points", "en", "ko"),
    [
        (0.49, "by less than 1 point.", "1%p 미만 높입니다."),
        (0.5, "by about 1 point.", "약 1%p 높입니다."),
        (1.49, "by about 1 point.", "약 1%p 높입니다."),
        (6.2, "by about 6 points.", "약 6%p 높입니다."),
    ],
)
def test_points_in_words(points: float, en: str, ko: str) -> None:
    assert describe_driver("churn", "n_events", 4.0, 0.1, points=points).endswith(en)
    assert describe_driver("churn", "n_events", 4.0, 0.1, points=points, lang="ko").endswith(ko)


# ------------------------------------------------------------------------------ the overview


def test_raises_when_reads_activity_in_words() -> None:
    defs = {f.name: f for f in model_feature_defs(LifecycleConfig())}
    few = np.arange(50.0)
    assert explain_module.raises_when(few, -few / 10, defs["n_events_30d"]) == "low_activity"
    assert (
        explain_module.raises_when(few, few / 10, defs["days_since_last_purchase"])
        == "long_inactivity"
    )
    assert explain_module.raises_when(few, few / 10, defs["n_events_30d"]) == "high"
    assert explain_module.raises_when(few, -few, defs["avg_order_value"]) == "low"
    u_shaped = (few - 24.5) ** 2  # no rank correlation
    assert explain_module.raises_when(few, u_shaped, defs["n_events_30d"]) == ""
    assert explain_module.raises_when(np.ones(50), few, defs["n_events_30d"]) == ""
    assert explain_module.raises_when(few, few, defs["n_campaign_exposures"]) == "marketing_action"
