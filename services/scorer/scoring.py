"""Feature vectors -> risk scores with one model bundle. No I/O: the loop, the REST API and the benchmark
share it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from forewarn.model_bundle import ModelBundle


def score_rows(
    bundle: ModelBundle,
    vectors: list[dict[str, Any]],
    *,
    explain_above: float,
    top_k: int,
) -> list[dict[str, Any]]:
    """``vectors`` are decoded FeatureVector dicts; returns RiskScore dicts in the same order.

    Contributions (TreeSHAP) cost tens of predicts, so only rows at or above ``explain_above`` get them:
    the alerter needs evidence for risky machines, not for healthy ones."""
    if not vectors:
        return []
    matrix = bundle.matrix([v["features"] for v in vectors])
    risk = bundle.predict(matrix)
    rul = bundle.predict_rul(matrix)
    explain = np.flatnonzero(risk >= explain_above)
    contributors: dict[int, list[dict[str, Any]]] = {}
    if explain.size:
        for row, top in zip(explain, bundle.top_contributors(matrix[explain], top_k), strict=True):
            contributors[int(row)] = top
    now = int(time.time() * 1000)
    return [
        {
            "machine_id": vector["machine_id"],
            "machine_type": vector["machine_type"],
            "ts": vector["ts"],
            "p_failure": float(risk[i]),
            "horizon": bundle.horizon,
            "rul": None if rul is None else float(rul[i]),
            "model_name": bundle.name,
            "model_version": bundle.version,
            "top_contributors": contributors.get(i, []),
            "site": vector.get("site"),
            "scored_at": now,
        }
        for i, vector in enumerate(vectors)
    ]
