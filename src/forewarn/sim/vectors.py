"""Simulated readings through the shared feature engine, without the stream: feature blocks per machine type.

What the features service would emit for a simulated plant (the same :class:`FeatureEngine`, readings in
event-time order, the readings ingest would dead-letter left out), for tests and benchmarks of stages
downstream of it (the monitor) that need realistic vectors in seconds rather than a running pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from forewarn.assets import AssetConfig
from forewarn.features import FEATURE_SET_VERSION
from forewarn.features.engine import FeatureEngine
from forewarn.sim.options import SimOptions
from forewarn.sim.plant import PlantSimulator
from forewarn.vector_codec import VectorBlock


def simulated_vectors(config: AssetConfig, options: SimOptions) -> Iterator[VectorBlock]:
    """Feature blocks in event-time order: one per machine type and generated chunk."""
    simulator = PlantSimulator(config, options)
    engines = {name: FeatureEngine(kind) for name, kind in config.machine_types.items()}
    columns: dict[str, np.ndarray] = {}
    for chunk in simulator.chunks():
        batch = chunk.batch
        if not len(batch):
            continue
        types = np.asarray(batch.machines.types)[batch.machine]
        ids = np.asarray(batch.machines.ids)[batch.machine]
        for type_name, engine in engines.items():
            rows = np.flatnonzero((types == type_name) & ~batch.outlier)
            if not rows.size:
                continue
            if type_name not in columns:
                columns[type_name] = np.array([batch.sensors.index(s) for s in engine.layout.sensors])
            values = batch.values[rows][:, columns[type_name]]
            result = engine.update_batch(ids[rows], batch.ts[rows], values)
            kept = rows[result.accepted]
            if kept.size:
                yield VectorBlock(type_name, FEATURE_SET_VERSION, list(engine.feature_names), ids[kept].tolist(),
                                  batch.ts[kept].astype(np.int64), result.features)
