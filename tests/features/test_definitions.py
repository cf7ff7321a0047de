"""Feature definitions carry their meaning: kind, sign, bounds, churn direction, sentence key."""

from __future__ import annotations

import re

import pytest

from lifecycle.features.build import feature_columns
from lifecycle.features.config import FeatureSettings, LifecycleConfig, RfmSettings, StageRules
from lifecycle.features.definitions import (
    RFM_FEATURES,
    churn_monotone,
    feature_definitions,
    model_features,
    rfm_features,
)
from lifecycle.features.glossary import LANGS, phrase, text
from lifecycle.features.schema import STAGES

CONFIGS = {
    "default": LifecycleConfig(),
    "other_windows_types_channels": LifecycleConfig(
        vocabulary=("visit", "purchase", "wishlist_add", "Gift Card", "signup", "refund"),
        features=FeatureSettings(windows_days=(1, 14, 60, 180), channels=("tiktok", "email")),
        stages=StageRules(active_days=60),
        rfm=RfmSettings(bins=4),
    ),
    "transactions_only": LifecycleConfig(
        vocabulary=("purchase", "refund"),
        features=FeatureSettings(windows_days=(30, 90, 365), channels=()),
    ),
}

FORMER_CHURN_MONOTONE = {
    "days_since_last_purchase": 1,
    "days_since_last_event": 1,
    "purchase_gap_ratio": 1,
    "rfm_r": -1,
    **{f"n_events_{w}d": -1 for w in (7, 30, 90)},
    **{f"n_purchases_{w}d": -1 for w in (7, 30, 90)},
    **{f"revenue_{w}d": -1 for w in (7, 30, 90)},
    "purchase_trend_30d": -1,
    "revenue_trend_30d": -1,
    "activity_trend_30d": -1,
}
"""lifecycle.models.lgbm.CHURN_MONOTONE before the directions moved onto the definitions."""


@pytest.fixture(params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> LifecycleConfig:
    return CONFIGS[request.param]


def test_model_features_are_the_feature_columns(config: LifecycleConfig) -> None:
    assert [f.name for f in model_features(config)] == feature_columns(config)
    assert [f.name for f in rfm_features(config)] == list(RFM_FEATURES)


def test_churn_monotone_of_the_default_config_is_the_former_constraint_set() -> None:
    assert churn_monotone(LifecycleConfig()) == FORMER_CHURN_MONOTONE


def test_churn_monotone_follows_the_configured_windows() -> None:
    monotone = churn_monotone(CONFIGS["other_windows_types_channels"])
    windowed = {name for name in monotone if re.fullmatch(r"\w+_\d+d", name)}
    assert windowed == {
        f"{prefix}_{w}d" for prefix in ("n_events", "n_purchases", "revenue") for w in (1, 14, 60)
    } | {"purchase_trend_30d", "revenue_trend_30d", "activity_trend_30d"}
    assert set(monotone.values()) == {-1, 1}


def test_every_output_feature_states_its_meaning(config: LifecycleConfig) -> None:
    for f in model_features(config):
        assert f.kind is not None and f.sentence, f.name
        assert f.integer == (f.kind in ("count", "code", "score")), f.name
        assert (f.bounds is not None) == (f.kind in ("code", "score")), f.name
        if f.kind == "count":
            assert f.non_negative, f.name
        if f.kind in ("money_change", "count_change"):
            assert not f.non_negative, f.name
    by_name = {f.name: f for f in model_features(config)}
    assert by_name["stage_code"].bounds == (0, len(STAGES) - 1)
    assert by_name["rfm_m"].bounds == (0, config.rfm.bins)


def test_intermediate_columns_have_no_meaning() -> None:
    for f in feature_definitions(LifecycleConfig()):
        if f.internal:
            assert f.kind is None and not f.sentence and f.churn_direction == 0, f.name


def test_every_feature_has_a_label_and_sentence_in_both_languages(config: LifecycleConfig) -> None:
    for f in model_features(config):
        assert f.description == text(f"label.{f.sentence}", "en", **f.params), f.name
        for lang in LANGS:
            assert text(f"label.{f.sentence}", lang, **f.params), f.name
            for part in ("fact", "missing", "typical"):
                assert phrase(f"sentence.{f.sentence}.{part}")[lang], (f.name, part)
