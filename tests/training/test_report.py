"""Run report: figures are real PNGs, the HTML report is self-contained and safe, model cards."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.training.metrics import classification_metrics, regression_metrics
from lifecycle.training.report import (
    MISSING,
    format_value,
    metrics_table,
    plot_calibration,
    plot_clv_deciles,
    plot_cumulative_gain,
    plot_importance,
    plot_shap_summary,
    render_html_report,
    render_model_card,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT = "<script>alert('x')</script>"


def png_size(path: Path) -> tuple[int, int]:
    """Check the PNG signature and return (width, height) from the IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def binary_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    prob = rng.uniform(0.02, 0.98, size=300)
    y = (rng.uniform(size=300) < prob).astype(int)
    return y, prob


@pytest.fixture(scope="module")
def shap_inputs() -> tuple[np.ndarray, pd.DataFrame]:
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 365, 200).astype(float),
            "frequency_90d": rng.poisson(3, 200).astype(float),
            "monetary_90d": rng.gamma(2.0, 50.0, 200),
            "stage": pd.Categorical(rng.choice(["conversion", "retention"], 200)),
        }
    )
    y = (X["recency_days"] + rng.normal(0, 60, 200) > 180).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 10, "verbose": -1},
        lgb.Dataset(X, y),
        num_boost_round=10,
    )
    return booster.predict(X, pred_contrib=True), X


# --- figures ------------------------------------------------------------------------------------


def test_plot_calibration_writes_png(tmp_path, binary_data):
    y, prob = binary_data
    out = plot_calibration(
        y, {"uncalibrated": prob**2, "calibrated": prob}, tmp_path / "sub" / "cal.png"
    )
    assert out == tmp_path / "sub" / "cal.png"
    width, height = png_size(out)
    assert 500 < width < 800 and 300 < height < 600  # ~6 x 4 in at 110 dpi
    assert out.stat().st_size > 5_000


def test_plot_cumulative_gain_writes_png_for_binary_and_value_targets(tmp_path, binary_data):
    y, prob = binary_data
    out = plot_cumulative_gain(
        y, {"model": prob, "rfm": -prob, "oracle": y}, tmp_path / "gain.png", title="Churn"
    )
    png_size(out)
    clv = np.random.default_rng(1).gamma(1.0, 100.0, size=300)
    out = plot_cumulative_gain(clv, {"model": clv + 10}, tmp_path / "gain_clv.png")
    png_size(out)


def test_plot_cumulative_gain_zero_total_still_draws(tmp_path):
    # an evaluation window without positives must not break the report
    png_size(plot_cumulative_gain([0, 0, 0], {"model": [1, 2, 3]}, tmp_path / "gain.png"))


def test_plot_cumulative_gain_rejects_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        plot_cumulative_gain([0, 1, 1], {"model": [1, 2]}, tmp_path / "gain.png")


def test_plot_clv_deciles_writes_png(tmp_path):
    rng = np.random.default_rng(2)
    pred = rng.gamma(2.0, 50.0, size=250)
    actual = pred * rng.uniform(0.5, 1.5, size=250)
    width, _ = png_size(plot_clv_deciles(actual, pred, tmp_path / "deciles.png"))
    assert 500 < width < 800
    # fewer rows than deciles still draws (empty deciles left out)
    png_size(plot_clv_deciles([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], tmp_path / "tiny.png"))


def test_plot_shap_summary_writes_png_and_keeps_global_rng(tmp_path, shap_inputs):
    contributions, X = shap_inputs
    assert contributions.shape == (200, 5)
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    out = plot_shap_summary(contributions, X, tmp_path / "shap.png", max_display=3)
    assert np.random.random() == expected_next
    png_size(out)
    assert out.stat().st_size > 5_000


def test_plot_shap_summary_rejects_contributions_without_bias_column(tmp_path, shap_inputs):
    contributions, X = shap_inputs
    with pytest.raises(ValueError, match=r"\(n, p \+ 1\)"):
        plot_shap_summary(contributions[:, :-1], X, tmp_path / "shap.png")


def test_plot_importance_writes_png(tmp_path):
    importance = pd.Series({f"feature_{i}": float(i) for i in range(30)})
    width, height = png_size(plot_importance(importance, tmp_path / "imp.png", top=20))
    assert 500 < width < 900 and height > 400  # taller than 4 in for 20 bars


# --- formatting ---------------------------------------------------------------------------------


def test_format_value_significant_digits_counts_and_missing():
    assert format_value(0.123456) == "0.1235"
    assert format_value(12.3456) == "12.35"
    assert format_value(0.000123456) == "0.0001235"
    assert format_value(123456) == "123,456"
    assert format_value(np.int64(2000)) == "2,000"
    assert format_value(1600.0) == "1,600"
    assert format_value(float("nan")) == MISSING == "\N{EN DASH}"
    assert format_value(np.float64("nan")) == MISSING
    assert format_value(None) == MISSING
    assert format_value(["2024-02-01", "2024-03-01"]) == "2024-02-01, 2024-03-01"
    assert format_value(True) == "yes"


# --- summary fixture ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def summary(binary_data) -> dict:
    y, prob = binary_data
    clv = np.random.default_rng(4).gamma(1.0, 100.0, size=300)
    cls = classification_metrics(y, prob)
    cls_base = classification_metrics(y, np.clip(prob + 0.1, 0, 1))
    cls_nan = dict(cls_base, ece=math.nan)
    reg = regression_metrics(clv, clv * 0.9, lower=clv * 0.5, upper=clv * 1.5)
    reg_base = regression_metrics(clv, np.full_like(clv, clv.mean()))
    train_cutoffs = [f"2024-{m:02d}-01" for m in range(2, 13)]
    return {
        "run": {
            "run_id": "abc123run",
            "experiment": "lifecycle",
            "created": "2026-11-22T10:00:00Z",
            "git_commit": "8b74a76",
        },
        "data": {
            "fingerprint": "sha256:0f1e2d3c",
            "rows": 123456,
            "customers": 2000,
            "period_start": "2024-01-01",
            "period_end": "2027-12-31",
            "source": "demo/sim/events.parquet",
        },
        "tasks": {
            "churn": {
                "target": "churn",
                "horizon_days": 90,
                "protocol": "time",
                "cutoffs": {"train": train_cutoffs, "valid": "2025-01-01", "eval": "2025-04-01"},
                "rows": {"train": 20000, "valid": 1500, "eval": 1600},
                "calibration": {
                    "method": "isotonic",
                    "ece_before": 0.05,
                    "ece_after": 0.01,
                    "brier_before": 0.2,
                    "brier_after": 0.19,
                },
                "metrics": {
                    "oracle": {"overall": cls},
                    "model": {
                        "overall": cls,
                        "by_stage": {"conversion": cls_base, "retention": cls},
                    },
                    "model_uncalibrated": {"overall": cls_nan},
                    "rfm": {"overall": cls_base},
                    "last_period": {"overall": cls_base},
                    "bgnbd": {"overall": cls_base},
                },
                "customer_split": {"model": {"overall": cls}, "rfm": {"overall": cls_base}},
                "tuning": {
                    "trials": 20,
                    "completed": 12,
                    "pruned": 8,
                    "best_value": 0.41234567,
                    "metric": "binary_logloss",
                    "best_params": {"num_leaves": 31, "learning_rate": 0.05, "note": SCRIPT},
                },
                "limits": ["Churn is defined as no purchase within 90 days."],
                "registered": {"name": "lifecycle-churn", "version": "3"},
            },
            "clv": {
                "target": "clv",
                "horizon_days": 365,
                "protocol": "time",
                "cutoffs": {"train": train_cutoffs, "valid": "2025-01-01", "eval": "2025-04-01"},
                "rows": {"train": 20000, "valid": 1500, "eval": 1600},
                "interval": {
                    "method": "conformalized quantile regression",
                    "coverage": 0.79,
                    "target_coverage": 0.8,
                },
                "metrics": {
                    "model": {"overall": reg, "by_stage": {"retention": reg}},
                    "rfm": {"overall": reg_base},
                    "oracle": {"overall": regression_metrics(clv, clv)},
                },
                "tuning": {
                    "trials": 10,
                    "completed": 10,
                    "pruned": 0,
                    "best_value": 52.1,
                    "metric": "l2",
                    "best_params": {"num_leaves": 15},
                },
                "limits": [],
            },
            "next_stage": {
                "target": "next_stage",
                "horizon_days": 90,
                "protocol": "customer",
                "cutoffs": {"train": train_cutoffs, "valid": "2025-01-01", "eval": "2025-04-01"},
                "metrics": {"model": {"overall": {"n": 1600.0, "log_loss": 0.8123}}},
            },
        },
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory, binary_data) -> dict[str, Path]:
    y, prob = binary_data
    folder = tmp_path_factory.mktemp("figures")
    return {
        "churn/calibration": plot_calibration(y, {"model": prob}, folder / "cal.png"),
        "clv_gain": plot_cumulative_gain(y, {"model": prob}, folder / "gain.png"),
        "overview": plot_cumulative_gain(y, {"model": prob}, folder / "overview.png"),
    }


@pytest.fixture(scope="module")
def html(tmp_path_factory, summary, images) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    out = render_html_report(summary, images, path)
    assert out == path
    return path.read_text(encoding="utf-8")


def section(html: str, task: str) -> str:
    match = re.search(rf'<section id="task-{task}">(.*?)</section>', html, re.S)
    assert match, task
    return match.group(1)


# --- HTML report --------------------------------------------------------------------------------


def test_render_html_report_header_and_data(html):
    assert "abc123run" in html
    assert "2026-11-22T10:00:00Z" in html and "8b74a76" in html and "lifecycle" in html
    assert "sha256:0f1e2d3c" in html
    assert "123,456" in html and "2,000" in html
    assert "2024-01-01 to 2027-12-31" in html


def test_render_html_report_has_a_section_per_task(html):
    for task in ("churn", "clv", "next_stage"):
        assert f"Task: {task}" in section(html, task)


def test_render_html_report_churn_section_content(html):
    churn = section(html, "churn")
    assert "90 days" in churn
    assert "2025-01-01" in churn and "2025-04-01" in churn and "(11 cutoffs)" in churn
    assert "isotonic" in churn
    # calibration table: ECE 0.05 -> 0.01, Brier 0.2 -> 0.19
    assert "<tr><td>ECE</td><td>0.05</td><td>0.01</td></tr>" in churn
    assert "<tr><td>Brier</td><td>0.2</td><td>0.19</td></tr>" in churn
    # metrics rows in the fixed order, whatever the summary's order
    positions = [
        churn.index(f"<tr><td>{row}</td>")
        for row in ("model", "model_uncalibrated", "rfm", "last_period", "bgnbd", "oracle")
    ]
    assert positions == sorted(positions)
    assert "<th>roc_auc</th>" in churn and "<th>capture_top10</th>" in churn
    assert "<td>conversion</td>" in churn and "<td>retention</td>" in churn
    assert "time-honest" in churn
    assert "Customer split (not time-honest)" in churn
    assert "binary_logloss" in churn and "0.4123" in churn and "learning_rate" in churn
    assert "Churn is defined as no purchase within 90 days." in churn
    assert "lifecycle-churn v3" in churn


def test_render_html_report_clv_interval_and_protocol_labels(html):
    clv = section(html, "clv")
    assert "conformalized quantile regression" in clv and "0.79" in clv
    assert "<th>normalized_gini</th>" in clv and "<th>coverage_p10_p90</th>" in clv
    assert "Customer split (not time-honest)" not in clv  # no customer_split given
    assert "Calibration" not in clv  # no calibration given
    assert "customer split (not time-honest)" in section(html, "next_stage")


def test_render_html_report_embeds_images_in_their_task_section(html):
    assert html.count('src="data:image/png;base64,') == 3
    assert 'src="data:image/png;base64,iVBORw0KGgo' in section(html, "churn")  # PNG signature
    assert "data:image/png;base64," in section(html, "clv")  # "clv_gain" key
    assert "data:image/png;base64," not in section(html, "next_stage")
    assert "Other figures" in html and ">overview<" in html
    assert "<link" not in html and "http" not in html  # self-contained


def test_render_html_report_escapes_values(html):
    assert SCRIPT not in html
    assert "&lt;script&gt;" in html
    assert "<script" not in html


def test_render_html_report_shows_nan_as_dash(html):
    churn = section(html, "churn")
    row = re.search(r"<tr><td>model_uncalibrated</td>(.*?)</tr>", churn).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[7] == "\N{EN DASH}"  # ece: n, positive_rate, ..., brier, ece
    assert "nan" not in churn.lower().replace("conformalized", "")


def test_render_html_report_missing_keys_do_not_crash(tmp_path, summary):
    thin = copy.deepcopy(summary)
    del thin["data"]
    thin["tasks"]["churn"] = {"target": "churn"}
    del thin["tasks"]["clv"]["metrics"]
    thin["tasks"]["broken"] = "not a mapping"
    html = render_html_report(thin, {}, tmp_path / "thin.html").read_text(encoding="utf-8")
    assert "abc123run" in html and "Task: churn" in html and "Task: clv" in html
    assert 'id="data"' not in html and "Task: broken" not in html
    assert "<h3>Metrics" not in section(html, "churn")
    empty = render_html_report({}, {}, tmp_path / "empty.html").read_text(encoding="utf-8")
    assert "<html" in empty and "<section" not in empty


# --- model card ---------------------------------------------------------------------------------


def test_render_model_card_churn(summary):
    card = render_model_card(summary, "churn")
    assert card.startswith("# Model card: lifecycle-churn (version 3)\n")
    assert "| scorer | n | positive_rate | mean_prediction | roc_auc | pr_auc |" in card
    assert "| model_uncalibrated |" in card
    assert 'mlflow.pyfunc.load_model("models:/lifecycle-churn@champion")' in card
    assert "- Validation cutoff: 2025-01-01" in card
    assert "- Evaluation cutoff: 2025-04-01" in card
    assert "- Protocol: time-honest" in card
    assert "`sha256:0f1e2d3c`" in card
    assert "- ECE: 0.05 before, 0.01 after" in card
    assert "- Churn is defined as no purchase within 90 days." in card
    assert "demo/sim/events.parquet" in card and "fixed at 90 days" in card
    assert "Not causal" in card
    # NaN in the table is the dash, never "nan"
    assert "| \N{EN DASH} |" in card and "nan" not in card.lower()


def test_render_model_card_unregistered_task_uses_default_name(summary):
    card = render_model_card(summary, "clv")
    assert card.startswith("# Model card: lifecycle-clv\n")
    assert "Not registered in this run" in card
    assert "## Prediction interval" in card and "## Calibration" not in card
    assert "| scorer | n | mean_actual |" in card
    assert 'load_model("models:/lifecycle-clv@champion")' in card


def test_render_model_card_unknown_task_raises(summary):
    with pytest.raises(KeyError, match="retention"):
        render_model_card(summary, "retention")


def test_metrics_table_rows_in_report_order(summary):
    table = metrics_table(summary, "churn")
    assert table.index.name == "model"
    assert list(table.index)[:2] == ["model", "model_uncalibrated"]
    assert table.index.get_loc("rfm") < table.index.get_loc("oracle")
    assert np.isnan(table.loc["model_uncalibrated", "ece"])  # NaN in the summary stays NaN
    with pytest.raises(KeyError, match="no task 'uplift'"):
        metrics_table(summary, "uplift")
