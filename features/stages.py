"""Lifecycle stages at a cutoff and the funnel they form.

The stage itself is computed with the other features (``stage_code`` in
:mod:`lifecycle.features.definitions`, plus the optional top-RFM-tier loyalty in
:mod:`lifecycle.features.build`, kept once reached as ``stages.sticky`` says),
so training, serving and this report can never disagree about it.
"""

from __future__ import annotations

import pandas as pd

from lifecycle.features.schema import STAGES


def funnel(features: pd.DataFrame) -> pd.DataFrame:
    """Summarise one cutoff's customers as the five-stage funnel.

    Parameters
    ----------
    features
        Output of :func:`lifecycle.features.build.build_features` for a single cutoff.

    Returns
    -------
    pandas.DataFrame
        One row per stage in order: ``customers`` (now in the stage), ``reached`` (in the stage
        or beyond), ``conversion_from_previous`` (reached / previous stage's reached), and the
        ``active`` and ``lapsed`` counts of the customers now in the stage.

    Examples
    --------
    >>> f = pd.DataFrame({"stage": ["reach", "conversion", "conversion"],
    ...                   "status": ["active", "active", "lapsed"]})
    >>> funnel(f)[["stage", "customers", "reached"]].values.tolist()[:3]
    [['reach', 1, 3], ['acquisition', 0, 2], ['conversion', 2, 2]]
    """
    counts = pd.crosstab(features["stage"], features["status"]).reindex(
        index=list(STAGES), columns=["active", "lapsed"], fill_value=0
    )
    table = pd.DataFrame({"stage": list(STAGES)})
    table["customers"] = counts.sum(axis=1).to_numpy().astype("int64")
    table["reached"] = table["customers"][::-1].cumsum()[::-1].astype("int64")
    previous = table["reached"].shift(1)
    table["conversion_from_previous"] = table["reached"] / previous.where(previous > 0)
    table["active"] = counts["active"].to_numpy().astype("int64")
    table["lapsed"] = counts["lapsed"].to_numpy().astype("int64")
    return table
