"""The MLflow pyfunc wrapper that registered lifecycle models are logged as.

A registered version holds one fitted estimator of :mod:`lifecycle.models.lgbm` (pickled with
joblib as the artifact ``model``). ``mlflow.pyfunc.load_model(uri).predict(table)`` returns the
task's output columns for a feature table (``lifecycle features``) or a scores table
(``lifecycle score``, the service's lookup table) read as it was written: the signature
(:func:`feature_signature`) lists the model's feature columns typed as the feature builder
writes them (counts ``long``, the rest ``double``), and MLflow ignores the table's other
columns. ``unwrap_python_model().estimator`` gives the estimator itself, whose boosters answer
``pred_contrib`` for explanations. Importing this module imports MLflow, so only code that logs
or loads models imports it.

Examples
--------
>>> import mlflow, pandas as pd
>>> model = mlflow.pyfunc.load_model("models:/lifecycle-churn@champion")  # doctest: +SKIP
>>> model.predict(pd.read_parquet("scores.parquet"))["churn_risk"]  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import pandas as pd
from mlflow.pyfunc import PythonModel

from lifecycle.models.lgbm import LifecycleEstimator

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.types import Schema

ARTIFACT = "model"

ELIGIBILITY_COLUMNS = ("stage_code", "n_purchases")
"""Columns :func:`lifecycle.models.tasks.eligible` reads to decide which rows a task predicts."""


def input_columns(estimator: Any) -> list[str]:
    """Return the columns a model reads: its features, then the eligibility columns not among them.

    Examples
    --------
    >>> class Fitted:
    ...     feature_names = ["x1", "n_purchases"]
    >>> input_columns(Fitted())
    ['x1', 'n_purchases', 'stage_code']
    """
    names = list(estimator.feature_names)
    return names + [c for c in ELIGIBILITY_COLUMNS if c not in names]


class LifecyclePyfunc(PythonModel):
    """Serve a fitted task estimator (:data:`~lifecycle.models.lgbm.LifecycleEstimator`)."""

    estimator: LifecycleEstimator

    def load_context(self, context: Any) -> None:
        """Load the pickled estimator from the model's artifacts."""
        self.estimator = joblib.load(context.artifacts[ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Return the task's output columns for each row of a table holding the features.

        The table may have other columns (keys, stage, earlier scores): only
        :func:`input_columns` are read.
        """
        return self.estimator.predict_frame(model_input[input_columns(self.estimator)])


def feature_signature(estimator: LifecycleEstimator, features: pd.DataFrame) -> ModelSignature:
    """Return the signature a lifecycle model is logged with.

    Inputs are the estimator's feature columns (and the eligibility columns,
    :func:`input_columns`) typed as in ``features`` (rows as
    :func:`lifecycle.features.build.build_features` writes them: counts ``long``, the rest
    ``double``), so the feature and scores tables the project writes are accepted as they
    are; outputs are the estimator's output columns.

    Parameters
    ----------
    estimator
        A fitted estimator with ``feature_names`` and ``predict_frame``.
    features
        A few rows holding at least the feature columns, with the builder's dtypes.

    Returns
    -------
    mlflow.models.ModelSignature
        The signature, e.g. ``n_purchases: long, recency_days: double, ...``.

    Examples
    --------
    >>> signature = feature_signature(estimator, features.head())  # doctest: +SKIP
    >>> signature.inputs.input_types()[:2]  # doctest: +SKIP
    [<DataType.long: 4>, <DataType.double: 5>]
    """
    from mlflow.models import infer_signature

    example = features[input_columns(estimator)]
    return infer_signature(example, estimator.predict_frame(example))


def conform(features: pd.DataFrame, schema: Schema | None) -> pd.DataFrame:
    """Return ``features`` with integer columns made float where ``schema`` declares double.

    Versions logged before integer features were declared ``long`` take every feature as
    double, and MLflow refuses int64 for a double column; this lets such a version score a
    table the builder wrote (int64 counts are exact as float64 below 2**53).

    Parameters
    ----------
    features
        A feature or scores table.
    schema
        A model's input schema (``model.metadata.get_input_schema()``); None changes nothing.

    Returns
    -------
    pandas.DataFrame
        The same rows; a copy when a column changed.

    Examples
    --------
    >>> from mlflow.types import ColSpec, Schema
    >>> conform(pd.DataFrame({"n": [1, 2]}), Schema([ColSpec("double", "n")]))["n"].dtype
    dtype('float64')
    """
    if schema is None or not schema.has_input_names():
        return features
    doubles = [
        str(spec.name)
        for spec in schema.inputs
        if spec.name is not None
        and str(spec.type) in ("double", "DataType.double")
        and spec.name in features.columns
        and features[spec.name].dtype.kind in "iu"
    ]
    if not doubles:
        return features
    out = features.copy()
    out[doubles] = out[doubles].astype("float64")
    return out


def save_estimator(estimator: LifecycleEstimator, folder: str | Path) -> Path:
    """Pickle an estimator to ``folder/model.joblib`` and return the path."""
    path = Path(folder) / f"{ARTIFACT}.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, path)
    return path
