"""Next-best-action: the catalog contract and the ranking on hand-built customers."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lifecycle.models.nba import (
    ActionCatalog,
    Recommendation,
    default_catalog_path,
    load_catalog,
    prediction_values,
    recommend,
)

HANGUL = re.compile(r"[가-힣]")


@pytest.fixture(scope="module")
def catalog() -> ActionCatalog:
    return load_catalog()


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_catalog_path().read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "actions.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def action(data: dict[str, Any], action_id: str) -> dict[str, Any]:
    return next(a for a in data["actions"] if a["id"] == action_id)


# --- the catalog -------------------------------------------------------------------------------


def test_load_catalog_shipped_default_has_the_documented_actions(catalog: ActionCatalog) -> None:
    assert [a.id for a in catalog.actions] == [
        "no_action",
        "onboarding_nudge",
        "first_purchase_incentive",
        "second_purchase_offer",
        "win_back",
        "loyalty_invite",
        "referral_ask",
    ]
    assert catalog.no_action.id == "no_action"
    assert catalog.currency == "USD"
    assert catalog.stage_values == {
        "reach": 5.0,
        "acquisition": 40.0,
        "conversion": 60.0,
        "retention": 80.0,
    }
    for a in catalog.actions:
        assert HANGUL.search(a.names["ko"]), a.id
        assert HANGUL.search(a.description["ko"]), a.id
        assert 0 <= a.cost <= 5 and 0 <= a.effect <= 0.15, a.id


def test_load_catalog_accepts_an_explicit_path(tmp_path: Path, catalog: ActionCatalog) -> None:
    assert load_catalog(write(tmp_path, shipped())) == catalog


def break_stage(data: dict[str, Any]) -> None:
    action(data, "win_back")["stages"] = ["retension"]


def break_duplicate_id(data: dict[str, Any]) -> None:
    action(data, "loyalty_invite")["id"] = "win_back"


def break_ko_name(data: dict[str, Any]) -> None:
    del action(data, "referral_ask")["names"]["ko"]


def break_second_no_action(data: dict[str, Any]) -> None:
    action(data, "referral_ask")["outcome"] = "none"


def break_segment(data: dict[str, Any]) -> None:
    action(data, "referral_ask")["segments"] = ["Champion"]


def break_loyalty_next_stage(data: dict[str, Any]) -> None:
    action(data, "loyalty_invite")["stages"] = ["retention", "loyalty"]


def break_effect(data: dict[str, Any]) -> None:
    action(data, "win_back")["effect"] = 1.5


def break_extra_field(data: dict[str, Any]) -> None:
    action(data, "win_back")["costs"] = 1.0


def break_effect_type(data: dict[str, Any]) -> None:
    action(data, "win_back")["effect"] = "0.1"


def break_condition(data: dict[str, Any]) -> None:
    action(data, "win_back")["conditions"] = [{"prediction": "churn", "op": ">=", "value": 0.5}]


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (break_stage, r"actions\.4\.stages[\s\S]*unknown stage 'retension'"),
        (break_duplicate_id, r"action ids must be unique; repeated: win_back"),
        (break_ko_name, r"actions\.6\.names[\s\S]*exactly the languages en, ko \(missing ko\)"),
        (break_second_no_action, r"exactly one action must have outcome 'none'.*found 2"),
        (break_segment, r"actions\.6\.segments[\s\S]*unknown segment 'Champion'"),
        (break_loyalty_next_stage, r"'loyalty_invite'.*no stage_values entry for loyalty"),
        (break_effect, r"actions\.4\.effect[\s\S]*less than or equal to 1"),
        (break_extra_field, r"actions\.4\.costs[\s\S]*Extra inputs are not permitted"),
        (break_effect_type, r"actions\.4\.effect[\s\S]*valid number"),
        (break_condition, r"actions\.4\.conditions\.0\.prediction"),
    ],
)
def test_load_catalog_bad_contents_name_file_and_field(
    tmp_path: Path, corrupt: Any, message: str
) -> None:
    data = shipped()
    corrupt(data)
    path = write(tmp_path, data)
    with pytest.raises(ValueError, match=message) as excinfo:
        load_catalog(path)
    assert str(path) in str(excinfo.value)


def test_load_catalog_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("actions: [\n  - id: x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML"):
        load_catalog(path)


# --- the ranking -------------------------------------------------------------------------------


def test_recommend_at_risk_high_value_retention_customer_gets_win_back(
    catalog: ActionCatalog,
) -> None:
    rec = recommend(
        catalog,
        stage="retention",
        segment="Cannot lose them",
        predictions={"next_stage_probability": 0.1, "churn_risk": 0.72, "clv": 472.25},
        top_driver="days_since_last_purchase",
    )
    assert rec.action == "win_back"
    assert rec.outcome == "retention"
    # 0.10 * 0.72 * 472.25 - 3.0
    assert rec.expected_value == 31.0
    assert rec.reason == (
        "Churn risk is 72% and 340.02 USD of value is at risk. Top driver: days_since_last_purchase"
    )


def test_recommend_healthy_champion_gets_no_action(catalog: ActionCatalog) -> None:
    rec = recommend(
        catalog,
        stage="loyalty",
        segment="Champions",
        predictions={"next_stage_probability": None, "churn_risk": 0.05, "clv": 1500.0},
    )
    assert rec.action == "no_action"
    assert rec.expected_value == 0.0
    assert rec.outcome == "none"
    assert "churn risk of 5%" in rec.reason


def test_recommend_acquisition_customer_gets_a_first_purchase_nudge(
    catalog: ActionCatalog,
) -> None:
    rec = recommend(
        catalog,
        stage="acquisition",
        segment="No purchase yet",
        predictions={"next_stage_probability": 0.2, "churn_risk": None, "clv": 30.0},
    )
    assert rec.action in {"first_purchase_incentive", "onboarding_nudge"}
    assert {rec.action, rec.alternatives[0].action} == {
        "first_purchase_incentive",
        "onboarding_nudge",
    }


def test_recommend_conversion_customer_gets_second_purchase_offer(
    catalog: ActionCatalog,
) -> None:
    rec = recommend(
        catalog,
        stage="conversion",
        segment="New",
        predictions={"next_stage_probability": 0.3, "churn_risk": 0.3, "clv": 80.0},
    )
    assert rec.action == "second_purchase_offer"


def test_recommend_healthy_retention_customer_gets_loyalty_invite_or_referral(
    catalog: ActionCatalog,
) -> None:
    rec = recommend(
        catalog,
        stage="retention",
        segment="Loyal",
        predictions={"next_stage_probability": 0.4, "churn_risk": 0.1, "clv": 600.0},
    )
    assert rec.action in {"loyalty_invite", "referral_ask"}
    assert "win_back" not in {a.action for a in rec.alternatives}


def test_recommend_expected_value_is_exact(catalog: ActionCatalog) -> None:
    rec = recommend(
        catalog,
        stage="acquisition",
        segment="No purchase yet",
        predictions={"next_stage_probability": 0.25, "churn_risk": None, "clv": 30.0},
    )
    # first_purchase_incentive: 0.15 * (1 - 0.25) * 40 - 2.0 = 2.5
    # onboarding_nudge:         0.08 * (1 - 0.25) * 40 - 0.3 = 2.1
    assert (rec.action, rec.expected_value, rec.effect) == ("first_purchase_incentive", 2.5, 0.15)
    assert [(a.action, a.expected_value) for a in rec.alternatives] == [
        ("onboarding_nudge", 2.1),
        ("no_action", 0.0),
    ]


def test_recommend_missing_next_stage_probability_counts_as_zero(catalog: ActionCatalog) -> None:
    rec = recommend(catalog, stage="conversion", segment="New", predictions={"clv": 50.0})
    # second_purchase_offer: 0.10 * (1 - 0) * 60 - 1.5
    assert (rec.action, rec.expected_value) == ("second_purchase_offer", 4.5)
    assert rec.reason == "Moving from conversion to retention is worth 60.00 USD."


def test_recommend_estimated_uplift_replaces_assumed_effect(catalog: ActionCatalog) -> None:
    predictions = {"next_stage_probability": 0.25, "churn_risk": None, "clv": 30.0}
    rec = recommend(
        catalog,
        stage="acquisition",
        segment="No purchase yet",
        predictions=predictions,
        uplift={"discount_10": 0.3, "bundle": 0.9},
    )
    # a measured uplift is already net of those who move anyway: 0.3 * 40 - 2.0
    assert (rec.action, rec.effect, rec.effect_source, rec.expected_value) == (
        "first_purchase_incentive",
        0.3,
        "estimated",
        10.0,
    )
    # the onboarding nudge has no offer: still the catalog's assumption
    assert rec.alternatives[0].action == "onboarding_nudge"
    assert rec.alternatives[0].effect_source == "assumed"


def test_recommend_nan_uplift_falls_back_to_assumed_effect(catalog: ActionCatalog) -> None:
    rec = recommend(
        catalog,
        stage="conversion",
        segment="New",
        predictions={"next_stage_probability": 0.3, "clv": 80.0},
        uplift={"free_shipping": math.nan},
    )
    assert (rec.effect, rec.effect_source) == (0.1, "assumed")


def test_recommend_estimated_uplift_is_clipped(catalog: ActionCatalog) -> None:
    rec = recommend(
        catalog,
        stage="conversion",
        segment="New",
        predictions={"next_stage_probability": 0.5},
        uplift={"free_shipping": 3.0},
    )
    assert (rec.effect, rec.expected_value) == (1.0, 58.5)  # 1.0 * 60 - 1.5


def test_recommend_negative_estimated_uplift_makes_no_action_win(catalog: ActionCatalog) -> None:
    predictions = {"next_stage_probability": 0.3, "churn_risk": 0.3, "clv": 80.0}
    rec = recommend(
        catalog,
        stage="conversion",
        segment="New",
        predictions=predictions,
        uplift={"free_shipping": -0.05},
    )
    assert rec.action == "no_action"
    # -0.05 * 60 - 1.5
    assert [(a.action, a.expected_value, a.effect_source) for a in rec.alternatives] == [
        ("second_purchase_offer", -4.5, "estimated")
    ]


def test_recommend_estimated_retention_uplift_keeps_the_clv(catalog: ActionCatalog) -> None:
    """A measured purchase uplift on a win-back is valued on the whole CLV, not CLV at risk."""
    predictions = {"next_stage_probability": 0.1, "churn_risk": 0.7, "clv": 300.0}
    rec = recommend(
        catalog,
        stage="retention",
        segment="At risk",
        predictions=predictions,
        uplift={"discount_10": 0.05},
    )
    assert (rec.action, rec.effect_source, rec.expected_value) == ("win_back", "estimated", 12.0)


def test_recommend_retention_action_needs_churn_risk(catalog: ActionCatalog) -> None:
    rec = recommend(
        catalog,
        stage="retention",
        segment="At risk",
        predictions={"next_stage_probability": 0.1, "churn_risk": math.nan, "clv": 900.0},
    )
    assert rec.action == "loyalty_invite"
    assert "win_back" not in {a.action for a in rec.alternatives}


def test_recommend_korean_names_and_reason(catalog: ActionCatalog) -> None:
    rec = recommend(
        catalog,
        stage="retention",
        segment="At risk",
        predictions={"next_stage_probability": 0.1, "churn_risk": 0.8, "clv": 500.0},
        lang="ko",
        top_driver="days_since_last_purchase",
    )
    assert rec.name == "윈백 캠페인(이탈 고객 재유치)"
    assert rec.reason == (
        "이탈 위험이 80%로, 400.00 USD 규모의 고객 가치가 위태롭습니다. "
        "주요 요인: days_since_last_purchase"
    )
    assert all(HANGUL.search(a.name) for a in rec.alternatives)
    healthy = recommend(
        catalog, stage="loyalty", segment="Champions", predictions={"churn_risk": 0.05}, lang="ko"
    )
    assert healthy.name == "조치 없음(방해하지 않기)"
    assert HANGUL.search(healthy.reason) and "5%" in healthy.reason


@pytest.mark.parametrize(
    ("stage", "segment", "predictions"),
    [
        ("reach", "No purchase yet", {"next_stage_probability": 0.1}),
        ("acquisition", "No purchase yet", {"next_stage_probability": 0.2}),
        ("conversion", "At risk", {"next_stage_probability": 0.2, "churn_risk": 0.9, "clv": 90}),
        ("retention", "Champions", {"next_stage_probability": 0.2, "churn_risk": 0.6, "clv": 900}),
        ("loyalty", "Loyal", {"churn_risk": 0.7, "clv": 300.0}),
    ],
)
def test_recommend_alternatives_are_at_most_two_and_never_the_best(
    catalog: ActionCatalog, stage: str, segment: str, predictions: dict[str, float]
) -> None:
    rec = recommend(catalog, stage=stage, segment=segment, predictions=predictions)
    others = [a.action for a in rec.alternatives]
    assert len(others) <= 2
    assert rec.action not in others
    assert len(set(others)) == len(others)
    values = [rec.expected_value, *(a.expected_value for a in rec.alternatives)]
    assert values == sorted(values, reverse=True)


def small_catalog(order: list[str]) -> ActionCatalog:
    """Actions whose expected values are exact in binary: 0.25 * (1 - 0.5) * 8 - cost."""
    text = {"en": "x", "ko": "엑스"}
    actions = {
        "no_action": {"outcome": "none", "cost": 0.0, "effect": 0.0},
        "nudge_a": {"outcome": "next_stage", "cost": 0.5, "effect": 0.25},
        "nudge_b": {"outcome": "next_stage", "cost": 0.5, "effect": 0.25},
        "break_even": {"outcome": "next_stage", "cost": 1.0, "effect": 0.25},
    }
    return ActionCatalog.model_validate(
        {
            "stage_values": {"reach": 8.0},
            "actions": [
                {"id": i, "names": text, "description": text, "stages": ["reach"], **actions[i]}
                for i in order
            ],
        }
    )


def test_recommend_ties_go_to_the_earlier_catalog_action() -> None:
    predictions = {"next_stage_probability": 0.5}
    ranked = recommend(
        small_catalog(["nudge_b", "no_action", "break_even", "nudge_a"]),
        stage="reach",
        segment="No purchase yet",
        predictions=predictions,
    )
    assert [ranked.action, *(a.action for a in ranked.alternatives)] == [
        "nudge_b",
        "nudge_a",
        "no_action",
    ]
    even = recommend(
        small_catalog(["no_action", "break_even"]),
        stage="reach",
        segment="No purchase yet",
        predictions=predictions,
    )
    assert (even.action, even.alternatives[0].action) == ("no_action", "break_even")
    assert even.alternatives[0].expected_value == 0.0


def test_recommend_as_dict_is_plain_json(catalog: ActionCatalog) -> None:
    rec = recommend(
        catalog, stage="conversion", segment="New", predictions={"next_stage_probability": 0.3}
    )
    assert isinstance(rec, Recommendation)
    assert rec.as_dict() == {
        "action": "second_purchase_offer",
        "name": "Second-purchase offer",
        "expected_value": 2.7,
        "effect": 0.1,
        "effect_source": "assumed",
        "outcome": "next_stage",
        "reason": (
            "Moving from conversion to retention is worth 60.00 USD and the chance of it "
            "without action is 30%."
        ),
        "alternatives": [
            {
                "action": "no_action",
                "name": "No action (do not disturb)",
                "expected_value": 0.0,
                "effect_source": "assumed",
            }
        ],
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage": "loyal", "segment": "Loyal"}, "unknown stage 'loyal'"),
        ({"stage": "loyalty", "segment": "Loyalists"}, "unknown segment 'Loyalists'"),
        ({"stage": "loyalty", "segment": "Loyal", "lang": "fr"}, "unknown language 'fr'"),
    ],
)
def test_recommend_rejects_unknown_inputs(
    catalog: ActionCatalog, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        recommend(catalog, predictions={}, **kwargs)


def test_recommend_no_eligible_action_is_a_clear_error(tmp_path: Path) -> None:
    data = shipped()
    action(data, "no_action")["stages"] = ["reach"]
    catalog = load_catalog(write(tmp_path, data))
    with pytest.raises(
        ValueError, match="no action of the catalog is eligible for stage 'loyalty'"
    ):
        recommend(catalog, stage="loyalty", segment="Champions", predictions={"churn_risk": 0.1})


def test_prediction_values_treats_nan_as_missing() -> None:
    values = prediction_values({"churn_risk": math.nan, "clv": 10.0})
    assert values == {
        "next_stage_probability": None,
        "churn_risk": None,
        "clv": 10.0,
        "clv_at_risk": None,
    }
