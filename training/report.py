"""What a training run leaves for people: figures, one HTML run report and model cards.

The figures are drawn on :class:`matplotlib.figure.Figure` objects, never through pyplot, so
they need no display and do not touch the caller's backend. The report and the cards read the
run ``summary`` dictionary built by the training pipeline (shape in
:func:`render_html_report`); a section whose keys are missing is left out.
"""

from __future__ import annotations

import base64
import math
import mimetypes
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd

from lifecycle.models.lgbm import import_shap, shap_explanation
from lifecycle.models.tasks import spec
from lifecycle.training.metrics import prediction_deciles

if TYPE_CHECKING:
    import numpy.typing as npt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE: tuple[float, float] = (6.0, 4.0)
DPI = 110
MISSING = "\N{EN DASH}"
"""How the report shows a missing or NaN value: an en dash."""

METRIC_ROWS: tuple[str, ...] = (
    "model",
    "model_uncalibrated",
    "rfm",
    "last_period",
    "bgnbd",
    "oracle",
)
"""Order of the rows of a metrics table; other rows present follow in their given order."""

PROTOCOL_LABELS: dict[str, str] = {
    "time": "time-honest",
    "customer": "customer split (not time-honest)",
}

GENERIC_LIMITS: tuple[str, ...] = (
    "Trained and evaluated on one data source ({source}); quality on other sources, markets "
    "or periods is unknown until measured there.",
    "The horizon is fixed at {horizon} days: scores answer for that window after the cutoff only.",
    "Not causal: scores describe who is likely to do what, not what an action would change.",
)


# --- figures ------------------------------------------------------------------------------------


def _new_axes(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    """Return a pyplot-free figure with one axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI)
    return fig, fig.add_subplot()


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path``, release its artists and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=DPI, bbox_inches="tight")
    # The figure is not registered with pyplot, so clearing it is all the closing it needs.
    fig.clear()
    return out


def _as_float(values: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``values`` as a 1-d float array."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    return arr


def calibration_figure(
    y_true: npt.ArrayLike,
    probs: Mapping[str, npt.ArrayLike],
    *,
    n_bins: int = 10,
    title: str = "",
) -> Figure:
    """Draw reliability curves (quantile bins) of named probability series.

    Parameters
    ----------
    y_true
        Binary outcomes (0/1).
    probs
        Named probabilities of the outcome 1, such as
        ``{"uncalibrated": p_raw, "calibrated": p_cal}``.
    n_bins
        Number of quantile bins (:func:`sklearn.calibration.calibration_curve`).
    title
        Figure title; a default is used when empty.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (a notebook shows it inline; :func:`plot_calibration` writes a PNG).

    Examples
    --------
    >>> calibration_figure([0, 1, 1], {"model": [0.2, 0.6, 0.9]})  # doctest: +SKIP
    """
    from sklearn.calibration import calibration_curve

    y = _as_float(y_true, "y_true")
    fig, ax = _new_axes()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, prob in probs.items():
        observed, predicted = calibration_curve(
            y, _as_float(prob, name), n_bins=n_bins, strategy="quantile"
        )
        ax.plot(predicted, observed, marker="o", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Mean predicted probability (quantile bins)")
    ax.set_ylabel("Observed positive rate")
    ax.set_title(title or "Calibration: reliability curve")
    ax.legend(loc="upper left")
    return fig


def gain_figure(
    y_true: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    *,
    title: str = "",
) -> Figure:
    """Draw cumulative gain curves: share of the outcome captured vs share of customers targeted.

    Customers are targeted by descending score (ties in their original order). For a 0/1
    outcome the curve is the share of positives captured; for a value such as CLV it is the
    share of the total of ``y_true``.

    Parameters
    ----------
    y_true
        Outcomes: 0/1 or non-negative values. When their total is not positive only the
        random line is drawn, with a note.
    scores
        Named ranking scores, such as ``{"model": p, "rfm": rfm_score, "oracle": y}``.
    title
        Figure title; a default is used when empty.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (:func:`plot_cumulative_gain` writes it as a PNG).

    Examples
    --------
    >>> gain_figure([0, 1, 1], {"model": [0.2, 0.6, 0.9]})  # doctest: +SKIP
    """
    y = _as_float(y_true, "y_true")
    total = float(y.sum())
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    share_targeted = np.arange(len(y) + 1) / max(len(y), 1)
    fig, ax = _new_axes()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    for name, score in scores.items():
        s = _as_float(score, name)
        if len(s) != len(y):
            raise ValueError(f"score {name!r} has {len(s)} rows but y_true has {len(y)}")
        if total > 0:
            captured = np.cumsum(y[np.argsort(-s, kind="stable")]) / total
            ax.plot(share_targeted, np.concatenate([[0.0], captured]), label=name)
    if total <= 0:
        # A report must still render when an evaluation window has no positives.
        ax.text(0.5, 0.5, "no gain curve: the outcome total is not positive", ha="center")
    ax.set_xlim(0, 1)
    ax.set_xlabel("Share of customers targeted (highest score first)")
    ax.set_ylabel("Share of positives captured" if binary else "Share of total value captured")
    ax.set_title(title or "Cumulative gain")
    ax.legend(loc="lower right")
    return fig


def deciles_figure(y_true: npt.ArrayLike, pred: npt.ArrayLike, *, title: str = "") -> Figure:
    """Draw mean actual and mean predicted value per prediction decile.

    Deciles follow :func:`lifecycle.training.metrics.prediction_deciles`: decile 1 holds the highest
    predictions.

    Parameters
    ----------
    y_true
        Actual values (for example realised CLV over the horizon).
    pred
        Predicted values.
    title
        Figure title; a default is used when empty.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (:func:`plot_clv_deciles` writes it as a PNG).

    Examples
    --------
    >>> deciles_figure([0.0, 5.0, 9.0], [1.0, 4.0, 8.0])  # doctest: +SKIP
    """
    y = _as_float(y_true, "y_true")
    p = _as_float(pred, "pred")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} rows but pred has {len(p)}")
    deciles = [rows for rows in prediction_deciles(p) if len(rows)]
    position = np.arange(1, len(deciles) + 1)
    width = 0.4
    fig, ax = _new_axes()
    ax.bar(position - width / 2, [y[rows].mean() for rows in deciles], width, label="mean actual")
    ax.bar(
        position + width / 2, [p[rows].mean() for rows in deciles], width, label="mean predicted"
    )
    ax.set_xticks(position)
    ax.set_xlabel("Prediction decile (1 = highest predictions)")
    ax.set_ylabel("Mean value per customer")
    ax.set_title(title or "Actual vs predicted by prediction decile")
    ax.legend(loc="upper right")
    return fig


def shap_summary_figure(
    contributions: np.ndarray,
    X: pd.DataFrame,
    *,
    max_display: int = 15,
    title: str = "",
) -> Figure:
    """Draw the SHAP beeswarm of LightGBM feature contributions.

    Parameters
    ----------
    contributions
        ``Booster.predict(X, pred_contrib=True)`` of a single-output model: ``n x (p + 1)``,
        the last column the bias, which is dropped.
    X
        The ``n x p`` features the contributions were computed on (colours the points).
    max_display
        Most features shown; the rest are summed in one row.
    title
        Figure title; a default is used when empty.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (:func:`plot_shap_summary` writes it as a PNG).

    Examples
    --------
    >>> contrib = booster.predict(X, pred_contrib=True)  # doctest: +SKIP
    >>> shap_summary_figure(contrib, X)  # doctest: +SKIP
    """
    shap = import_shap()
    explanation = shap_explanation(contributions, X)
    shown = min(max_display, X.shape[1])
    fig, ax = _new_axes((FIGSIZE[0], max(FIGSIZE[1], 0.35 * shown + 1.5)))
    # The beeswarm jitters points with numpy's global generator: fix it for a reproducible
    # figure and give the caller's state back afterwards.
    state = np.random.get_state()
    try:
        np.random.seed(0)
        shap.plots.beeswarm(explanation, max_display=max_display, ax=ax, plot_size=None, show=False)
    finally:
        np.random.set_state(state)
    ax.set_title(title or "SHAP values: impact of each feature on the model output")
    return fig


def importance_figure(importance: pd.Series, *, top: int = 20, title: str = "") -> Figure:
    """Draw a horizontal bar chart of the features with the highest importance (gain).

    Parameters
    ----------
    importance
        Importance by feature name, such as
        ``pd.Series(booster.feature_importance("gain"), index=booster.feature_name())``.
    top
        Number of features shown.
    title
        Figure title; a default is used when empty.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (:func:`plot_importance` writes it as a PNG).

    Examples
    --------
    >>> importance_figure(pd.Series({"recency": 9.0, "frequency": 4.0}))  # doctest: +SKIP
    """
    shown = importance.sort_values(ascending=False, kind="stable").head(top).iloc[::-1]
    fig, ax = _new_axes((FIGSIZE[0], max(FIGSIZE[1], 0.25 * len(shown) + 1.0)))
    ax.barh([str(name) for name in shown.index], shown.to_numpy(dtype=float))
    ax.set_xlabel("Total gain")
    ax.set_ylabel("Feature")
    ax.set_title(title or f"Feature importance (gain), top {len(shown)}")
    return fig


# The same figures written as PNG files, for the run report and MLflow.


def plot_calibration(
    y_true: npt.ArrayLike,
    probs: Mapping[str, npt.ArrayLike],
    path: str | Path,
    *,
    n_bins: int = 10,
    title: str = "",
) -> Path:
    """Write :func:`calibration_figure` to ``path`` as a PNG; return the path."""
    return save_png(calibration_figure(y_true, probs, n_bins=n_bins, title=title), path)


def plot_cumulative_gain(
    y_true: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike], path: str | Path, *, title: str = ""
) -> Path:
    """Write :func:`gain_figure` to ``path`` as a PNG; return the path."""
    return save_png(gain_figure(y_true, scores, title=title), path)


def plot_clv_deciles(
    y_true: npt.ArrayLike, pred: npt.ArrayLike, path: str | Path, *, title: str = ""
) -> Path:
    """Write :func:`deciles_figure` to ``path`` as a PNG; return the path."""
    return save_png(deciles_figure(y_true, pred, title=title), path)


def plot_shap_summary(
    contributions: np.ndarray,
    X: pd.DataFrame,
    path: str | Path,
    *,
    max_display: int = 15,
    title: str = "",
) -> Path:
    """Write :func:`shap_summary_figure` to ``path`` as a PNG; return the path."""
    figure = shap_summary_figure(contributions, X, max_display=max_display, title=title)
    return save_png(figure, path)


def plot_importance(
    importance: pd.Series, path: str | Path, *, top: int = 20, title: str = ""
) -> Path:
    """Write :func:`importance_figure` to ``path`` as a PNG; return the path."""
    return save_png(importance_figure(importance, top=top, title=title), path)


def metrics_table(summary: Mapping[str, Any], task: str) -> pd.DataFrame:
    """One task's evaluation as a table: a row per model and baseline, a column per metric.

    Parameters
    ----------
    summary
        A run's summary (:func:`lifecycle.training.train.train_and_log`, or read back with
        :func:`lifecycle.training.train.load_run_summary`).
    task
        ``next_stage``, ``churn`` or ``clv``.

    Returns
    -------
    pandas.DataFrame
        The overall metrics on the evaluation cutoff, indexed by ``model`` in report order:
        ``model``, ``model_uncalibrated``, ``rfm``, ``last_period``, ``bgnbd``, ``oracle``,
        then any other.

    Raises
    ------
    KeyError
        When the summary has no such task.
    """
    tasks = _mapping(summary.get("tasks"))
    if task not in tasks:
        raise KeyError(f"the run has no task {task!r}; it has {', '.join(tasks) or 'none'}")
    entries = _mapping(_mapping(tasks[task]).get("metrics"))
    names = [n for n in METRIC_ROWS if n in entries] + [n for n in entries if n not in METRIC_ROWS]
    rows = {
        name: dict(entries[name]["overall"])
        for name in names
        if isinstance(entries[name], Mapping) and isinstance(entries[name].get("overall"), Mapping)
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


# --- formatting ---------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """Format a value for the report: 4 significant digits, counts in full, NaN as a dash.

    Parameters
    ----------
    value
        A number, string, list or ``None``.

    Returns
    -------
    str
        The text shown.

    Examples
    --------
    >>> format_value(0.123456), format_value(123456), format_value(2.0)
    ('0.1235', '123,456', '2')
    >>> format_value(float("nan")) == MISSING
    True
    """
    if value is None:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return MISSING
        if number.is_integer() and abs(number) < 1e15:
            return f"{int(number):,}"
        return f"{number:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    """Return ``value`` when it is a mapping, else an empty one (a missing section)."""
    return value if isinstance(value, Mapping) else {}


def _protocol_label(protocol: Any) -> str:
    """Return how a protocol name reads in the report."""
    return PROTOCOL_LABELS.get(str(protocol), str(protocol))


def _metric_table(entries: Mapping[str, Any], section: str = "overall") -> dict[str, Any] | None:
    """Return columns and formatted rows of ``{row: {section: {metric: value}}}``."""
    names = [n for n in METRIC_ROWS if n in entries]
    names += [n for n in entries if n not in METRIC_ROWS]
    rows = [
        (name, entries[name][section])
        for name in names
        if isinstance(entries[name], Mapping) and isinstance(entries[name].get(section), Mapping)
    ]
    return _table(rows)


def _table(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """Return ``{"columns", "rows"}`` with the union of the keys, in first-seen order."""
    if not rows:
        return None
    columns: list[str] = []
    for _, values in rows:
        columns += [key for key in values if key not in columns]
    return {
        "columns": columns,
        "rows": [
            [str(name), *(format_value(values.get(c)) for c in columns)] for name, values in rows
        ],
    }


def _facts(pairs: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Return the ``(label, value)`` pairs whose value is present, formatted."""
    return [(label, format_value(value)) for label, value in pairs if value is not None]


def _period(data: Mapping[str, Any]) -> str | None:
    """Return ``start to end`` of the data, or ``None`` when unknown."""
    start, end = data.get("period_start"), data.get("period_end")
    if start is None and end is None:
        return None
    return f"{format_value(start)} to {format_value(end)}"


def _cutoff_facts(task: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the cutoffs of a task as report facts."""
    cutoffs = task.get("cutoffs")
    if not isinstance(cutoffs, Mapping):
        return []
    train = cutoffs.get("train")
    train_text = None
    if isinstance(train, list | tuple):
        train_text = f"{format_value(list(train))} ({len(train)} cutoffs)"
    elif train is not None:
        train_text = format_value(train)
    return _facts(
        [
            ("Train cutoffs", train_text),
            ("Validation cutoff", cutoffs.get("valid")),
            ("Evaluation cutoff", cutoffs.get("eval")),
        ]
    )


def _rows_text(task: Mapping[str, Any]) -> str | None:
    """Return the row counts per split as one line."""
    rows = task.get("rows")
    if not isinstance(rows, Mapping):
        return None
    return ", ".join(f"{split} {format_value(count)}" for split, count in rows.items())


def _registered_text(task: Mapping[str, Any]) -> str | None:
    """Return ``name vN`` of the registered model, or ``None``."""
    registered = task.get("registered")
    if not isinstance(registered, Mapping) or not registered.get("name"):
        return None
    version = registered.get("version")
    return f"{registered['name']} v{version}" if version is not None else str(registered["name"])


# --- HTML report --------------------------------------------------------------------------------

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Run report {{ run_id }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem; }
h3 { margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
table.facts th { text-align: left; font-weight: 600; }
table.facts td { text-align: left; }
.note { color: #666; font-size: .9rem; }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: .3rem; font-size: .85rem; }
.honest { background: #e3f4e3; } .leaky { background: #fbe9d0; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; vertical-align: top; }
figure img { max-width: 40rem; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
</style>
</head>
<body>
{% macro facts(pairs) -%}
<table class="facts">
{%- for label, value in pairs %}
<tr><th>{{ label }}</th><td>{{ value }}</td></tr>
{%- endfor %}
</table>
{%- endmacro %}
{% macro table(t, first="") -%}
<table>
<tr><th>{{ first }}</th>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{%- for row in t.rows %}
<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{%- endfor %}
</table>
{%- endmacro %}
{% macro figures(images) -%}
{%- for image in images %}
<figure><img src="{{ image.uri }}" alt="{{ image.caption }}">
<figcaption>{{ image.caption }}</figcaption></figure>
{%- endfor %}
{%- endmacro %}
<header>
<h1>Run report <code>{{ run_id }}</code></h1>
{{ facts(run) }}
</header>
{% if data %}
<section id="data">
<h2>Data</h2>
{{ facts(data) }}
</section>
{% endif %}
{% for task in tasks %}
<section id="task-{{ task.name }}">
<h2>Task: {{ task.name }}</h2>
{% if task.facts %}{{ facts(task.facts) }}{% endif %}
{% if task.cutoffs %}<h3>Cutoffs</h3>
{{ facts(task.cutoffs) }}{% endif %}
{% if task.calibration %}<h3>Calibration{% if task.calibration_method %}
({{ task.calibration_method }}){% endif %}</h3>
{{ table(task.calibration) }}{% endif %}
{% if task.interval %}<h3>Prediction interval</h3>
{{ facts(task.interval) }}{% endif %}
{% if task.metrics %}<h3>Metrics on the evaluation cutoff
<span class="badge {{ 'honest' if task.honest else 'leaky' }}">{{ task.protocol }}</span></h3>
{{ table(task.metrics, "scorer") }}{% endif %}
{% if task.by_stage %}<h3>Model by lifecycle stage</h3>
{{ table(task.by_stage, "stage") }}{% endif %}
{% if task.customer_split %}<h3>Customer split (not time-honest)
<span class="badge leaky">customer split (not time-honest)</span></h3>
<p class="note">Customers held out at random: the training rows see the same calendar
period as the evaluation rows, so these numbers are optimistic; shown for comparison
with the main table above.</p>
{{ table(task.customer_split, "scorer") }}{% endif %}
{% if task.tuning %}<h3>Tuning</h3>
{{ facts(task.tuning) }}
{% if task.best_params %}{{ table(task.best_params, "parameter") }}{% endif %}{% endif %}
{% if task.limits %}<h3>Limits</h3>
<ul>{% for limit in task.limits %}<li>{{ limit }}</li>{% endfor %}</ul>{% endif %}
{% if task.images %}<h3>Figures</h3>
{{ figures(task.images) }}{% endif %}
</section>
{% endfor %}
{% if other_images %}
<section id="figures">
<h2>Other figures</h2>
{{ figures(other_images) }}
</section>
{% endif %}
</body>
</html>
"""


def _data_uri(path: Path) -> str:
    """Return the file at ``path`` as a base64 data URI."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _split_images(
    images: Mapping[str, Path], tasks: Sequence[str]
) -> tuple[dict[str, list[dict[str, str]]], list[dict[str, str]]]:
    """Assign images to tasks by key prefix ``<task>/`` or ``<task>_`` (longest task first)."""
    by_task: dict[str, list[dict[str, str]]] = {task: [] for task in tasks}
    other: list[dict[str, str]] = []
    for key, path in images.items():
        image = {"caption": key, "uri": _data_uri(Path(path))}
        for task in sorted(tasks, key=len, reverse=True):
            for sep in ("/", "_"):
                if key.startswith(task + sep) and len(key) > len(task) + 1:
                    image["caption"] = key[len(task) + 1 :].replace("_", " ")
                    by_task[task].append(image)
                    break
            else:
                continue
            break
        else:
            other.append(image)
    return by_task, other


def _task_view(name: str, task: Mapping[str, Any], images: list[dict[str, str]]) -> dict[str, Any]:
    """Return what the template shows of one task."""
    protocol = task.get("protocol")
    horizon = task.get("horizon_days")
    view: dict[str, Any] = {
        "name": name,
        "facts": _facts(
            [
                ("Target", task.get("target")),
                ("Horizon", f"{format_value(horizon)} days" if horizon is not None else None),
                ("Protocol", _protocol_label(protocol) if protocol is not None else None),
                ("Rows", _rows_text(task)),
                ("Registered model", _registered_text(task)),
            ]
        ),
        "cutoffs": _cutoff_facts(task),
        "protocol": _protocol_label(protocol) if protocol is not None else "protocol not given",
        "honest": protocol == "time",
        "images": images,
        # optional sections: None (or empty) leaves them out of the page
        "calibration": None,
        "calibration_method": None,
        "interval": None,
        "metrics": None,
        "by_stage": None,
        "customer_split": None,
        "tuning": None,
        "best_params": None,
        "limits": [],
    }
    calibration = task.get("calibration")
    if isinstance(calibration, Mapping):
        view["calibration_method"] = calibration.get("method")
        view["calibration"] = _table(
            [
                (
                    "ECE",
                    {
                        "before": calibration.get("ece_before"),
                        "after": calibration.get("ece_after"),
                    },
                ),
                (
                    "Brier",
                    {
                        "before": calibration.get("brier_before"),
                        "after": calibration.get("brier_after"),
                    },
                ),
            ]
        )
    interval = task.get("interval")
    if isinstance(interval, Mapping):
        view["interval"] = _facts(
            [
                ("Method", interval.get("method")),
                ("Coverage on evaluation", interval.get("coverage")),
                (
                    "Coverage the model expects (atoms at 0 included)",
                    interval.get("coverage_implied"),
                ),
                ("Randomised PIT coverage (calibrated: the target)", interval.get("coverage_pit")),
                ("Target coverage", interval.get("target_coverage")),
            ]
        )
    metrics = task.get("metrics")
    if isinstance(metrics, Mapping):
        view["metrics"] = _metric_table(metrics)
        model = metrics.get("model")
        if isinstance(model, Mapping) and isinstance(model.get("by_stage"), Mapping):
            stages = model["by_stage"]
            view["by_stage"] = _table([(s, v) for s, v in stages.items() if isinstance(v, Mapping)])
    customer_split = task.get("customer_split")
    if isinstance(customer_split, Mapping):
        view["customer_split"] = _metric_table(customer_split)
    tuning = task.get("tuning")
    if isinstance(tuning, Mapping):
        view["tuning"] = _facts(
            [
                ("Trials", tuning.get("trials")),
                ("Completed", tuning.get("completed")),
                ("Pruned", tuning.get("pruned")),
                ("Metric", tuning.get("metric")),
                ("Best value", tuning.get("best_value")),
            ]
        )
        params = tuning.get("best_params")
        if isinstance(params, Mapping) and params:
            view["best_params"] = _table([(str(k), {"value": v}) for k, v in params.items()])
    limits = task.get("limits")
    if isinstance(limits, list | tuple):
        view["limits"] = [str(limit) for limit in limits]
    return view


def render_html_report(
    summary: Mapping[str, Any], images: Mapping[str, Path], path: str | Path
) -> Path:
    """Write the run report: one self-contained HTML file with the figures embedded.

    Parameters
    ----------
    summary
        The run summary::

            {"run": {"run_id", "experiment", "created", "git_commit"},
             "data": {"fingerprint", "rows", "customers", "period_start", "period_end",
                      "source"},
             "tasks": {name: {"target", "horizon_days", "protocol",
                              "cutoffs": {"train": [...], "valid", "eval"},
                              "rows": {split: count},
                              "calibration": {"method", "ece_before", "ece_after",
                                              "brier_before", "brier_after"},
                              "interval": {"method", "coverage", "target_coverage"},
                              "metrics": {row: {"overall": {metric: value},
                                                "by_stage": {stage: {metric: value}}}},
                              "customer_split": {row: {"overall": {...}}},
                              "tuning": {"trials", "completed", "pruned", "best_value",
                                         "metric", "best_params": {...}},
                              "limits": [...], "registered": {"name", "version"}}}}

        Any part may be missing; its section is then left out.
    images
        Figure files by key. A key ``"<task>/<figure>"`` (or ``"<task>_<figure>"``) puts the
        figure in that task's section; other keys go to a closing "Other figures" section.
    path
        Where to write the HTML file.

    Returns
    -------
    pathlib.Path
        The HTML file written.

    Examples
    --------
    >>> render_html_report(summary, {"churn/calibration": png}, "report.html")  # doctest: +SKIP
    """
    run = _mapping(summary.get("run"))
    data = _mapping(summary.get("data"))
    tasks = _mapping(summary.get("tasks"))
    task_names = [str(name) for name, task in tasks.items() if isinstance(task, Mapping)]
    task_images, other_images = _split_images(images, task_names)
    context = {
        "run_id": format_value(run.get("run_id")),
        "run": _facts(
            [
                ("Experiment", run.get("experiment")),
                ("Created", run.get("created")),
                ("Git commit", run.get("git_commit")),
            ]
        ),
        "data": _facts(
            [
                ("Source", data.get("source")),
                ("Fingerprint", data.get("fingerprint")),
                ("Event rows", data.get("rows")),
                ("Customers", data.get("customers")),
                ("Period", _period(data)),
            ]
        ),
        "tasks": [_task_view(name, tasks[name], task_images[name]) for name in task_names],
        "other_images": other_images,
    }
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(HTML_TEMPLATE).render(context)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


# --- model card ---------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    """Escape a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Mapping[str, Any] | None, first: str) -> list[str]:
    """Return the lines of a markdown table from :func:`_table` output."""
    if not table:
        return []
    header = [first, *table["columns"]]
    lines = [
        "| " + " | ".join(_md_cell(str(c)) for c in header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(table["columns"])) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table["rows"]]
    return lines


def render_model_card(summary: Mapping[str, Any], task: str) -> str:
    """Write the markdown model card of one task's model.

    Parameters
    ----------
    summary
        The run summary (shape in :func:`render_html_report`).
    task
        Task name, a key of ``summary["tasks"]``.

    Returns
    -------
    str
        The model card as markdown.

    Examples
    --------
    >>> print(render_model_card(summary, "churn"))  # doctest: +SKIP
    # Model card: lifecycle-churn (version 3)
    ...
    """
    tasks = summary.get("tasks")
    if not isinstance(tasks, Mapping) or not isinstance(tasks.get(task), Mapping):
        raise KeyError(f"task {task!r} is not in the summary")
    info: Mapping[str, Any] = tasks[task]
    run = _mapping(summary.get("run"))
    data = _mapping(summary.get("data"))
    registered = _mapping(info.get("registered"))
    model_name = str(registered.get("name") or f"lifecycle-{task}")
    horizon = info.get("horizon_days")
    horizon_text = format_value(horizon) if horizon is not None else "a fixed number of"

    title = f"# Model card: {model_name}"
    if registered.get("version") is not None:
        title += f" (version {registered['version']})"
    lines = [title, ""]
    origin = [f"Task `{task}`"]
    if run.get("run_id"):
        origin.append(f"of run `{run['run_id']}`")
    details = _facts(
        [
            ("experiment", run.get("experiment")),
            ("created", run.get("created")),
            ("commit", run.get("git_commit")),
        ]
    )
    if details:
        origin.append("(" + ", ".join(f"{k} {v}" for k, v in details) + ")")
    lines += [" ".join(origin) + ".", ""]
    if not registered.get("name"):
        lines += ["Not registered in this run; the name below is the default one.", ""]

    target = info.get("target", task)
    lines += [
        "## Intended use",
        "",
        spec(task).intended_use,
        f"Target `{target}`, horizon {horizon_text} days. Scores are meant to rank and size "
        "customer actions; they are not meant for decisions with legal or similarly "
        "significant effects on a person without human review.",
        "",
        "## Data",
        "",
    ]
    lines += [
        f"- {label}: {value}"
        for label, value in _facts(
            [
                ("Source", data.get("source")),
                ("Fingerprint", f"`{data['fingerprint']}`" if data.get("fingerprint") else None),
                ("Period", _period(data)),
                ("Event rows", data.get("rows")),
                ("Customers", data.get("customers")),
                ("Training rows", _rows_text(info)),
            ]
        )
    ]
    lines += ["", "## Training, validation and evaluation", ""]
    protocol = info.get("protocol")
    if protocol is not None:
        lines.append(f"- Protocol: {_protocol_label(protocol)}")
    if horizon is not None:
        lines.append(f"- Horizon: {horizon_text} days")
    lines += [f"- {label}: {value}" for label, value in _cutoff_facts(info)]

    metrics = info.get("metrics")
    table = _metric_table(metrics) if isinstance(metrics, Mapping) else None
    if table:
        lines += ["", "## Metrics vs baselines", ""]
        lines.append(f"On the evaluation cutoff ({_protocol_label(protocol)}).")
        lines += ["", *_md_table(table, "scorer")]

    calibration = info.get("calibration")
    if isinstance(calibration, Mapping):
        lines += ["", "## Calibration", ""]
        if calibration.get("method"):
            lines.append(f"- Method: {calibration['method']}")
        for label, key in (("ECE", "ece"), ("Brier", "brier")):
            before, after = calibration.get(f"{key}_before"), calibration.get(f"{key}_after")
            if before is not None or after is not None:
                lines.append(
                    f"- {label}: {format_value(before)} before, {format_value(after)} after"
                )
    interval = info.get("interval")
    if isinstance(interval, Mapping):
        lines += ["", "## Prediction interval", ""]
        lines += [
            f"- {label}: {value}"
            for label, value in _facts(
                [
                    ("Method", interval.get("method")),
                    ("Coverage on evaluation", interval.get("coverage")),
                    ("Target coverage", interval.get("target_coverage")),
                ]
            )
        ]

    limits = [str(limit) for limit in info.get("limits") or []]
    limits += [
        text.format(
            source=format_value(data.get("source", "source not recorded")),
            horizon=horizon_text,
        )
        for text in GENERIC_LIMITS
    ]
    lines += ["", "## Limits", "", *(f"- {limit}" for limit in limits)]
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "import mlflow",
        "",
        f'model = mlflow.pyfunc.load_model("models:/{model_name}@champion")',
        "```",
        "",
    ]
    return "\n".join(lines)


def render_uplift_card(card: Mapping[str, Any]) -> str:
    """Write the markdown model card of a registered uplift model.

    Parameters
    ----------
    card
        ``name``, ``version``, ``run_id``, ``run_name``, ``project``, ``dataset``,
        ``window_days``, ``max_campaigns``, ``rows``, ``sends``, ``fingerprint`` and ``offers``
        (:meth:`lifecycle.models.uplift.TwoModelUplift.summary`).

    Returns
    -------
    str
        The model card as markdown.

    Examples
    --------
    >>> text = render_uplift_card({"name": "lifecycle-uplift", "version": "2", "window_days": 30,
    ...     "offers": {"discount": {"rows_treated": 900, "rows_control": 300,
    ...     "observed_ate": 0.031, "mean_predicted_uplift": 0.029, "qini": 0.12,
    ...     "individual": True, "skipped": None}}})
    >>> text.splitlines()[0]
    '# Model card: lifecycle-uplift (version 2)'
    >>> "| discount | 900 | 300 | +3.1 pp | +2.9 pp | 0.12 | per customer |" in text
    True
    """
    window = card.get("window_days")
    facts = _facts(
        [
            ("run", card.get("run_id")),
            ("run name", card.get("run_name")),
            ("project", card.get("project")),
            ("data set", card.get("dataset")),
            ("events fingerprint", card.get("fingerprint")),
        ]
    )
    lines = [
        f"# Model card: {card.get('name', 'lifecycle-uplift')} (version {card.get('version')})"
    ]
    lines += ["", "; ".join(f"{k} `{v}`" for k, v in facts) + "." if facts else "", ""]
    lines += [
        "## Intended use",
        "",
        "Estimates, per offer, how much sending it raises a customer's chance of a purchase within "
        f"{format_value(window)} days of the send (treated minus control), so that the "
        "next-best-action targets the customers an offer changes rather than those who would buy "
        "anyway. Not meant for decisions with legal or similarly significant effects on a person "
        "without human review.",
        "",
        "## Training data",
        "",
        f"Randomised campaign sends with a control group: {format_value(card.get('rows'))} "
        f"targeted customers in {format_value(card.get('sends'))} sends (the latest "
        f"{format_value(card.get('max_campaigns'))} with a complete {format_value(window)}-day "
        "outcome window). Features are built as the project's champion models build them, from "
        "events before each send.",
        "",
        "## Per offer",
        "",
        "| offer | treated | control | observed lift | mean predicted lift | held-out Qini "
        "| used as |",
        "|---|---|---|---|---|---|---|",
    ]
    for offer, entry in _mapping(card.get("offers")).items():
        used = (
            f"skipped: {entry['skipped']}"
            if entry.get("skipped")
            else ("per customer" if entry.get("individual") else "observed average effect")
        )
        lifts = [entry.get(k) for k in ("observed_ate", "mean_predicted_uplift")]
        cells = [
            format_value(entry.get("rows_treated")),
            format_value(entry.get("rows_control")),
            *("-" if v is None else f"{100 * v:+.1f} pp" for v in lifts),
            format_value(entry.get("qini")),
        ]
        lines.append(f"| {offer} | " + " | ".join(cells) + f" | {used} |")
    lines += [
        "",
        "## Limits",
        "",
        "- A two-model (T-learner) estimate: per-customer lifts are used only for offers whose "
        "Qini on held-out customers is positive; the others use their observed average effect.",
        "- Valid for offers, channels and customers like those of the campaigns learnt from; the "
        "outcome is any purchase in the window, not revenue or margin.",
        "- Lifts of a few points are measured with the noise of the arm sizes above.",
        "",
    ]
    return "\n".join(lines)
