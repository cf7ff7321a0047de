"""The MLflow pyfunc wrapper that registered lifecycle models are logged as.

A registered version holds one fitted estimator of :mod:`lifecycle.models.lgbm` (pickled with
joblib as
the artifact ``model``). ``mlflow.pyfunc.load_model(uri).predict(features)`` returns the
task's output columns; ``unwrap_python_model().estimator`` gives the estimator itself, whose
boosters answer ``pred_contrib`` for explanations. Importing this module imports MLflow, so only
code that logs or loads models imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from mlflow.pyfunc import PythonModel

from lifecycle.models.lgbm import LifecycleEstimator

ARTIFACT = "model"


class LifecyclePyfunc(PythonModel):
    """Serve a fitted task estimator (:data:`~lifecycle.models.lgbm.LifecycleEstimator`)."""

    estimator: LifecycleEstimator

    def load_context(self, context: Any) -> None:
        """Load the pickled estimator from the model's artifacts."""
        self.estimator = joblib.load(context.artifacts[ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Return the task's output columns for each row of a feature frame."""
        return self.estimator.predict_frame(model_input)


def save_estimator(estimator: LifecycleEstimator, folder: str | Path) -> Path:
    """Pickle an estimator to ``folder/model.joblib`` and return the path."""
    path = Path(folder) / f"{ARTIFACT}.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, path)
    return path
