"""Feature vectors -> risk scores with one model bundle. No I/O: the stream loop, the REST API and the
benchmark share it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from forewarn.model_bundle import ModelBundle
from forewarn.vector_codec import VectorBlock, block_from_dicts


def score_block(bundle: ModelBundle, block: VectorBlock, *, explain_above: float, top_k: int) -> list[dict[str, Any]]:
    """RiskScore dicts, one per vector of the block, in block order.

    Contributions (TreeSHAP) cost tens of predicts, so only rows at or above ``explain_above`` get them:
    the alerter needs evidence for risky machines, not for healthy ones."""
    if len(block) == 0:
        return []
    matrix = bundle.align(block.names, block.matrix)
    risk = bundle.predict(matrix)
    rul = bundle.predict_rul(matrix)
    explain = np.flatnonzero(risk >= explain_above)
    contributors: dict[int, list[dict[str, Any]]] = {}
    if explain.size:
        for row, top in zip(explain.tolist(), bundle.top_contributors(matrix[explain], top_k), strict=True):
            contributors[row] = top
    now = int(time.time() * 1000)
    risk_list = risk.tolist()
    rul_list = rul.tolist() if rul is not None else None
    ts_list = block.ts.tolist()
    sites = block.sites or [None] * len(block)
    ingested = block.ingested_at.tolist() if block.ingested_at is not None else None
    scores = []
    for i, machine_id in enumerate(block.machine_ids):
        score = {
            "machine_id": machine_id,
            "machine_type": block.machine_type,
            "ts": ts_list[i],
            "p_failure": risk_list[i],
            "horizon": bundle.horizon,
            "rul": None if rul_list is None else rul_list[i],
            "model_name": bundle.name,
            "model_version": bundle.version,
            "top_contributors": contributors.get(i, []),
            "site": sites[i],
            "scored_at": now,
        }
        if ingested is not None:
            score["ingested_at"] = ingested[i]
        scores.append(score)
    return scores


def score_rows(
    bundle: ModelBundle, vectors: list[dict[str, Any]], *, explain_above: float, top_k: int
) -> list[dict[str, Any]]:
    """FeatureVector-shaped dicts -> RiskScore dicts in the same order (the REST path)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for position, vector in enumerate(vectors):
        key = (vector["machine_type"], vector["feature_set_version"], tuple(vector["features"]))
        groups.setdefault(key, []).append(position)
    out: list[dict[str, Any]] = [{} for _ in vectors]
    for positions in groups.values():
        (block,) = block_from_dicts([vectors[p] for p in positions])
        scores = score_block(bundle, block, explain_above=explain_above, top_k=top_k)
        for position, score in zip(positions, scores, strict=True):
            out[position] = score
    return out
