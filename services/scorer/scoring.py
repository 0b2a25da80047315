"""Feature vectors -> risk scores with one model bundle. No I/O: the stream loop, the REST API and the
benchmark share it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

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


@dataclass
class ScoredBlock:
    """The risk scores of one feature block, kept as columns.

    ``payloads()`` is what ``risk.scores`` carries: one JSON object per score, byte for byte what
    ``orjson.dumps`` makes of the corresponding ``records()`` dict (the alerter reads that format), but
    encoded column by column instead of building a dict per row first."""

    machine_type: str
    horizon: str | None
    model_name: str
    model_version: str
    scored_at: int
    machine_ids: list[str]
    ts: list[int]
    p_failure: list[float]
    rul: list[float] | None
    contributors: dict[int, list[dict[str, Any]]]  # row -> top contributors; absent: none
    sites: list[str | None] | None
    ingested_at: list[int | None] | None

    def __len__(self) -> int:
        return len(self.machine_ids)

    @property
    def explained(self) -> int:
        """Scores that carry evidence (top contributors)."""
        return sum(1 for top in self.contributors.values() if top)

    def records(self) -> list[dict[str, Any]]:
        """RiskScore dicts, in block order (the REST path)."""
        n = len(self)
        rul = self.rul if self.rul is not None else [None] * n
        sites = self.sites or [None] * n
        ingested = self.ingested_at if self.ingested_at is not None else [None] * n
        name, version, horizon, machine_type, now = (self.model_name, self.model_version, self.horizon,
                                                     self.machine_type, self.scored_at)
        contributors = self.contributors
        empty: list[dict[str, Any]] = []
        return [
            {"machine_id": machine_id, "machine_type": machine_type, "ts": ts, "p_failure": p, "horizon": horizon,
             "rul": r, "model_name": name, "model_version": version, "top_contributors": contributors.get(i, empty),
             "site": site, "scored_at": now, "ingested_at": ing}
            for i, (machine_id, ts, p, r, site, ing) in enumerate(
                zip(self.machine_ids, self.ts, self.p_failure, rul, sites, ingested, strict=True))
        ]

    def payloads(self) -> list[bytes]:
        """One JSON document per score, in block order (the stream path's Kafka values)."""
        n = len(self)
        if n == 0:
            return []

        def constant(value: Any) -> bytes:
            return orjson.dumps(value).replace(b"%", b"%%")  # it becomes part of a %-template

        # Keys in the records() order; the per-block constants are baked into the template.
        template = (b'{"machine_id":%b,"machine_type":' + constant(self.machine_type) + b',"ts":%b,"p_failure":%b,'
                    b'"horizon":' + constant(self.horizon) + b',"rul":%b,"model_name":' + constant(self.model_name)
                    + b',"model_version":' + constant(self.model_version) + b',"top_contributors":%b,"site":%b,'
                    b'"scored_at":' + constant(self.scored_at) + b',"ingested_at":%b}')
        dumps = orjson.dumps
        ids = [dumps(machine_id) for machine_id in self.machine_ids]

        def nulls() -> Iterable[bytes]:
            return itertools.repeat(b"null", n)

        rul = _json_numbers(self.rul) if self.rul is not None else nulls()
        top = [b"[]"] * n
        for row, contributors in self.contributors.items():
            top[row] = dumps(contributors)
        if self.sites:
            encoded = {site: dumps(site) for site in set(self.sites)}
            sites: Iterable[bytes] = [encoded[site] for site in self.sites]
        else:
            sites = nulls()
        ingested = _json_numbers(self.ingested_at) if self.ingested_at is not None else nulls()
        return [template % row for row in zip(ids, _json_numbers(self.ts), _json_numbers(self.p_failure), rul, top,
                                               sites, ingested, strict=False)]


def _json_numbers(values: list[Any]) -> list[bytes]:
    """Each number (or None) of a list as orjson writes it, in one encoder call: numbers hold no commas."""
    return orjson.dumps(values)[1:-1].split(b",")


def score_block(bundle: ModelBundle, block: VectorBlock, *, explain_above: float, top_k: int,
                evidence: EvidenceCache | None = None) -> ScoredBlock:
    """The risk scores of a block, one per vector, in block order.

    Rows at or above ``explain_above`` carry their top contributing features (LightGBM pred_contrib). With
    an ``evidence`` cache, a machine is re-explained only when its cached evidence is stale; in between
    its risky scores carry the cached evidence. Healthy rows carry none: the alerter pages on risky ones."""
    ids = block.machine_ids
    ts_list = block.ts.tolist()
    contributors: dict[int, list[dict[str, Any]]] = {}
    p_failure: list[float] = []
    rul_list: list[float] | None = None
    if len(block):
        matrix = bundle.align(block.names, block.matrix)
        risk = bundle.predict(matrix)
        rul = bundle.predict_rul(matrix)
        p_failure = risk.tolist()
        rul_list = rul.tolist() if rul is not None else None
        risky = np.flatnonzero(risk >= explain_above).tolist()
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
    return ScoredBlock(
        machine_type=block.machine_type, horizon=bundle.horizon, model_name=bundle.name,
        model_version=bundle.version, scored_at=int(time.time() * 1000), machine_ids=ids, ts=ts_list,
        p_failure=p_failure, rul=rul_list, contributors=contributors, sites=block.sites,
        ingested_at=block.ingested_at.tolist() if block.ingested_at is not None else None,
    )


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
        scores = score_block(bundle, block, explain_above=explain_above, top_k=top_k).records()
        for position, score in zip(positions, scores, strict=True):
            out[position] = score
    return out
