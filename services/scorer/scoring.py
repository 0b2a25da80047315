"""Feature vectors -> risk scores with one model bundle. No I/O: the stream loop, the REST API and the
benchmark share it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from forewarn.model_bundle import ModelBundle
from forewarn.vector_codec import VectorBlock, block_from_dicts


class EvidenceCache:
    """The latest top contributors per machine, so a machine that stays risky is explained once per
    ``refresh_ms`` of event time instead of on every score (TreeSHAP costs ~100 predicts per row)."""

    def __init__(self, refresh_ms: int = 60_000) -> None:
        self.refresh_ms = refresh_ms
        self._latest: dict[str, tuple[int, list[dict[str, Any]]]] = {}

    def stale(self, machine_id: str, ts: int) -> bool:
        cached = self._latest.get(machine_id)
        return cached is None or ts - cached[0] >= self.refresh_ms or ts < cached[0]

    def put(self, machine_id: str, ts: int, contributors: list[dict[str, Any]]) -> None:
        self._latest[machine_id] = (ts, contributors)

    def get(self, machine_id: str) -> list[dict[str, Any]]:
        cached = self._latest.get(machine_id)
        return cached[1] if cached else []


def score_block(bundle: ModelBundle, block: VectorBlock, *, explain_above: float, top_k: int,
                evidence: EvidenceCache | None = None) -> list[dict[str, Any]]:
    """RiskScore dicts, one per vector of the block, in block order.

    Rows at or above ``explain_above`` carry their top contributing features (LightGBM pred_contrib). With
    an ``evidence`` cache, a machine is re-explained only when its cached evidence is stale; in between
    its risky scores carry the cached evidence. Healthy rows carry none: the alerter pages on risky ones."""
    if len(block) == 0:
        return []
    matrix = bundle.align(block.names, block.matrix)
    risk = bundle.predict(matrix)
    rul = bundle.predict_rul(matrix)
    ids = block.machine_ids
    ts_list = block.ts.tolist()
    risky = np.flatnonzero(risk >= explain_above).tolist()
    contributors: dict[int, list[dict[str, Any]]] = {}
    if risky:
        fresh = [i for i in risky if evidence is None or evidence.stale(ids[i], ts_list[i])]
        if fresh:
            for row, top in zip(fresh, bundle.top_contributors(matrix[fresh], top_k), strict=True):
                contributors[row] = top
                if evidence is not None:
                    evidence.put(ids[row], ts_list[row], top)
        if evidence is not None:
            for row in risky:
                if row not in contributors:
                    contributors[row] = evidence.get(ids[row])
    now = int(time.time() * 1000)
    n = len(block)
    rul_list = rul.tolist() if rul is not None else [None] * n
    sites = block.sites or [None] * n
    ingested = block.ingested_at.tolist() if block.ingested_at is not None else [None] * n
    name, version, horizon, machine_type = bundle.name, bundle.version, bundle.horizon, block.machine_type
    empty: list[dict[str, Any]] = []
    return [
        {"machine_id": machine_id, "machine_type": machine_type, "ts": ts, "p_failure": p, "horizon": horizon,
         "rul": r, "model_name": name, "model_version": version, "top_contributors": contributors.get(i, empty),
         "site": site, "scored_at": now, "ingested_at": ing}
        for i, (machine_id, ts, p, r, site, ing) in enumerate(
            zip(ids, ts_list, risk.tolist(), rul_list, sites, ingested, strict=True))
    ]


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
