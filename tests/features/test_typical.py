"""Typical values per lifecycle stage: what a customer's driver sentences compare with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lifecycle.features.build import typical_values, typical_values_by_stage


def population() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(9)],
            "stage_code": [0, 0, 2, 2, 2, 3, 3, 3, 3],
            "n_purchases": [0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 4.0, 5.0, 9.0],
            "mean_purchase_gap_days": [np.nan] * 5 + [10.0, 20.0, 30.0, np.nan],
        }
    )


def test_typical_values_by_stage_are_the_medians_of_each_stage() -> None:
    frame = population()
    names = ["n_purchases", "mean_purchase_gap_days"]
    assert typical_values(frame, names) == {"n_purchases": 1.0, "mean_purchase_gap_days": 20.0}
    assert typical_values_by_stage(frame, names) == {
        "reach": {"n_purchases": 0.0},
        "conversion": {"n_purchases": 1.0},
        "retention": {"n_purchases": 4.5, "mean_purchase_gap_days": 20.0},
    }


def test_typical_values_by_stage_ignore_row_order() -> None:
    frame = population()
    shuffled = frame.sample(frac=1.0, random_state=3)
    names = ["n_purchases", "mean_purchase_gap_days"]
    assert typical_values_by_stage(shuffled, names) == typical_values_by_stage(frame, names)


def test_typical_values_by_stage_need_the_stage_column() -> None:
    with pytest.raises(ValueError, match="stage_code"):
        typical_values_by_stage(population().drop(columns="stage_code"), ["n_purchases"])
