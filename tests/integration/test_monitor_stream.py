"""The monitor on the real broker: a reference built offline from a simulated history, live feature blocks of
the same plant on a prefixed ``features.vectors`` topic (a clean week, or one with a drift injected by the
simulator), sampled by the real :class:`LatestSampler`; the model-health events read back from
``model.health``. Each drift kind is found on the drifted machine type with the drifted sensors named; a clean
stream (no degradations: see the clean test) raises no data drift; sampled scores are judged for score drift.

Pacing: one hour of event time per window. Per event hour, each machine type's vectors go to a partition of
their own (one block per partition), the service samples until it has them all, then the window closes on a
fake clock. So a live window spans the same event time as the reference's clean blocks its thresholds were
calibrated on (``reference.BLOCK_MS``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from forewarn import kafka, topics
from forewarn.assets import load_asset_config
from forewarn.monitoring.reference import Reference, build_reference, monitored_features
from forewarn.schemas import ModelHealthEvent
from forewarn.services.monitor.metrics import MonitorMetrics
from forewarn.services.monitor.sampler import LatestSampler
from forewarn.services.monitor.service import MonitorService
from forewarn.services.monitor.settings import MonitorOptions
from forewarn.sim.drift import DriftSpec, DriftTruth
from forewarn.sim.options import DAY_MS, HOUR_MS, SimOptions
from forewarn.sim.plant import PlantSimulator
from forewarn.sim.vectors import simulated_vectors
from forewarn.vector_codec import VectorBlock, encode

pytestmark = pytest.mark.timeout(180)

MACHINES = 40
INTERVAL_MS = 120_000
ONSET_H = 6  # clean hours before the drift
LIVE_H = 10
WARM_UP_H = 1  # the first live hour: 1-hour features of a fresh engine are still filling
SCORES_PER_HOUR = 300
MODEL = "forewarn-failure"


def _options(seed: int, hours: int, drift: DriftSpec | None = None, degrading: float = 0.3) -> SimOptions:
    return SimOptions(machines=MACHINES, duration_ms=hours * HOUR_MS, interval_ms=INTERVAL_MS, seed=seed,
                      fleet_seed=7, degrading_fraction=degrading, drift=drift)


def _by_type(blocks: Iterator[VectorBlock]) -> dict[str, pd.DataFrame]:
    frames: dict[str, list[pd.DataFrame]] = {}
    for block in blocks:
        frame = pd.DataFrame(block.matrix, columns=block.names)
        frame.insert(0, "machine_id", block.machine_ids)
        frame.insert(0, "ts", block.ts)
        frames.setdefault(block.machine_type, []).append(frame)
    return {t: pd.concat(parts, ignore_index=True) for t, parts in frames.items()}


@pytest.fixture(scope="module")
def reference() -> Reference:
    """What training would store: the history's monitored features per type and a holdout score sample."""
    config = load_asset_config("plant")
    history = _by_type(simulated_vectors(config, SimOptions(machines=MACHINES, duration_ms=4 * DAY_MS,
                                                            interval_ms=INTERVAL_MS, seed=7,
                                                            degrading_fraction=0.3)))
    frame = pd.concat([f.assign(machine_type=t) for t, f in history.items()], ignore_index=True)
    holdout_prob = np.random.default_rng(7).beta(1.0, 8.0, 4000)
    return build_reference(frame, features_by_type={t: monitored_features(config.machine_types[t])
                                                    for t in config.machine_types},
                           holdout_prob=holdout_prob, holdout={"precision": 0.9, "recall": 0.8}, horizon="12h")


@dataclass
class Run:
    events: list[ModelHealthEvent]  # as read back from model.health
    onset_window: int | None  # first window whose event hour starts at or after the onset
    seconds: float

    def data_drift(self, machine_type: str) -> dict[int, ModelHealthEvent]:
        return {e.window: e for e in self.events if e.condition == "data_drift" and e.scope == machine_type}


def _hourly_blocks(frames: dict[str, pd.DataFrame], names: dict[str, list[str]], start_ms: int,
                   hours: int) -> list[dict[str, VectorBlock]]:
    """Per event hour, one block per machine type (the rows of that hour, in event-time order)."""
    out: list[dict[str, VectorBlock]] = []
    for hour in range(hours):
        lo, hi = start_ms + hour * HOUR_MS, start_ms + (hour + 1) * HOUR_MS
        step: dict[str, VectorBlock] = {}
        for type_name, frame in frames.items():
            rows = frame[(frame["ts"] >= lo) & (frame["ts"] < hi)].sort_values("ts", kind="stable")
            if rows.empty:
                continue
            step[type_name] = VectorBlock(type_name, "sim", names[type_name], rows["machine_id"].tolist(),
                                          rows["ts"].to_numpy(np.int64),
                                          rows[names[type_name]].to_numpy(np.float64))
        out.append(step)
    return out


def _stream(stack: Any, uid: str, reference: Reference, options: SimOptions, *, with_scores: bool = False) -> Run:
    """Live blocks of ``options`` through the broker into an in-process MonitorService, one window per hour."""
    started = time.monotonic()
    config = load_asset_config("plant")
    frames = _by_type(simulated_vectors(config, options))
    names = {t: [c for c in f.columns if c not in ("ts", "machine_id")] for t, f in frames.items()}
    hours = _hourly_blocks(frames, names, options.start_ms, int(options.duration_ms or 0) // HOUR_MS)

    prefix = f"test.{uid}."
    settings = stack.settings.kafka.model_copy(update={"topic_prefix": prefix})
    vectors_topic, scores_topic = settings.topic(topics.FEATURE_VECTORS), settings.topic(topics.RISK_SCORES)
    health_topic = settings.topic(topics.MODEL_HEALTH)
    partition_of = {t: i for i, t in enumerate(sorted(frames))}
    stack.ensure_topics([vectors_topic], partitions=len(partition_of))
    stack.ensure_topics([scores_topic, health_topic], partitions=1)

    sampler_config = {"enable.auto.commit": False, "auto.offset.reset": "latest"}
    vectors = LatestSampler(kafka.consumer(settings, group_id=f"monitor-{uid}-sampler",
                                           extra_config=sampler_config), vectors_topic)
    scores = LatestSampler(kafka.consumer(settings, group_id=f"monitor-{uid}-sampler",
                                          extra_config=sampler_config), scores_topic)
    producer = kafka.producer(settings)

    def publish(events: list[ModelHealthEvent]) -> None:
        delivery = kafka.Delivery(producer)
        for event in events:
            delivery.produce(health_topic, event.model_dump_json().encode(),
                             key=f"{event.model_name}:{event.condition}:{event.scope}".encode())
        delivery.wait(30.0, what="model-health events")

    clock = [1_000_000.0]
    window_s = 3600.0
    service = MonitorService(
        MonitorOptions(window_s=window_s, rows_per_block=100_000, min_rows=200, min_scores=200, max_rows=2000,
                       reference_poll_s=1e9),
        MonitorMetrics(CollectorRegistry()), model_name=MODEL, champion=lambda: "1",
        load_reference=lambda _version: reference, vectors=vectors, scores=scores, publish=publish,
        clock=lambda: clock[0])
    assert service.refresh_champion()
    rng = np.random.default_rng(options.seed)
    onset_window: int | None = None
    truth = PlantSimulator(config, options).drift_truth()
    try:
        for hour, step in enumerate(hours):
            if hour < WARM_UP_H:
                continue
            hour_start = options.start_ms + hour * HOUR_MS
            if truth is not None and onset_window is None and hour_start >= truth.onset_ms:
                onset_window = service.monitor.window if service.monitor is not None else None
            delivery = kafka.Delivery(producer)
            for type_name, block in step.items():
                delivery.produce(vectors_topic, encode(block), partition=partition_of[type_name])
            expected = sum(len(b) for b in step.values())
            if with_scores:
                documents = [{"machine_id": f"m{i % MACHINES}", "machine_type": "pump",
                              "ts": hour_start + i * 1000, "p_failure": float(p)}
                             for i, p in enumerate(rng.beta(1.0, 8.0, SCORES_PER_HOUR))]
                delivery.produce(scores_topic, orjson.dumps(documents))
                expected += SCORES_PER_HOUR
            delivery.wait(30.0, what="live blocks")
            sampled, deadline = 0, time.monotonic() + 20.0
            while sampled < expected and time.monotonic() < deadline:
                sampled += service.sample_once()
            assert sampled == expected, f"hour {hour}: sampled {sampled} of {expected} rows"
            clock[0] += window_s
            assert service.close_window() is not None
    finally:
        for sampler in (vectors, scores):
            sampler.consumer.close()
        producer.flush(10)
    events = [ModelHealthEvent.model_validate_json(m.value())
              for m in kafka.read_all(settings, health_topic, timeout_s=30)]
    return Run(events, onset_window, time.monotonic() - started)


def _clean_false_alarms(run: Run, until: int | None = None) -> dict[str, tuple[int, int]]:
    """Per machine type: (active data_drift windows, judged windows) before ``until``."""
    counts: dict[str, tuple[int, int]] = {}
    for e in run.events:
        if e.condition != "data_drift" or (until is not None and e.window >= until):
            continue
        active, judged = counts.get(e.scope, (0, 0))
        counts[e.scope] = (active + int(e.active), judged + 1)
    return counts


# A sensor change on each of the other types; the new regime on the default type (the first, pump), where
# concurrent degradations also move vibration (see below).
@pytest.mark.parametrize(("kind", "machine_type"), [("sensor-offset", "compressor"), ("sensor-gain", "cnc_spindle"),
                                                    ("regime", "pump")])
def test_each_drift_kind_is_found_on_its_type_with_its_sensors(stack: Any, uid: str, reference: Reference,
                                                               kind: str, machine_type: str) -> None:
    options = _options(8, LIVE_H, DriftSpec(kind=kind, at_ms=ONSET_H * HOUR_MS, machine_type=machine_type))
    truth = PlantSimulator(load_asset_config("plant"), options).drift_truth()
    assert isinstance(truth, DriftTruth) and truth.machine_type == machine_type
    run = _stream(stack, uid, reference, options)
    assert run.onset_window is not None
    drift_of_type = run.data_drift(truth.machine_type)
    after = [drift_of_type[w] for w in range(run.onset_window, run.onset_window + 3) if w in drift_of_type]
    assert len(after) == 3, f"windows after the onset not all judged: {sorted(drift_of_type)}"
    clean = _clean_false_alarms(run, until=run.onset_window)
    print(f"\n{kind} on {truth.machine_type} ({', '.join(truth.sensors)}): after onset "
          f"{[(e.active, e.sensors) for e in after]}; clean (active, judged) per type {clean}; "
          f"{run.seconds:.1f} s")
    if kind == "regime":
        # every load-following sensor may move; the most drifted one named is one of them
        found = [e for e in after if e.active and e.sensors and e.sensors[0] in truth.sensors]
    else:
        found = [e for e in after if e.active and e.sensors == list(truth.sensors)]
    assert len(found) >= 2, [(e.window, e.active, e.sensors, e.summary) for e in after]
    assert all(judged == ONSET_H - WARM_UP_H for _, judged in clean.values()), clean
    # Before the onset: compressor and cnc_spindle are clean (measured: 0 of 5 windows active). Pump is not
    # asserted: in this live week (seed 8, 30% degrading) 6 of the 14 pumps degrade at once, which moves the
    # pump median of vibration__10m__mean past its threshold (measured: 2 of 5 clean windows active). The
    # clean test below runs without degradations.
    for type_name in ("compressor", "cnc_spindle"):
        assert clean[type_name][0] == 0, clean


def test_a_clean_stream_raises_no_drift_and_scores_are_judged(stack: Any, uid: str, reference: Reference) -> None:
    # Known limitation (measured, see the drift test): the median test cannot tell a recalibration from
    # many machines of a type degrading at once (6 of 14 pumps in this week at 30% degrading: 6 of 9 clean
    # pump windows active). So the live week of the clean test has no degradations; the reference's history
    # keeps its 30% (measured: 0 false alarms in 27 judged windows, as with a history without degradations).
    run = _stream(stack, uid, reference, _options(8, LIVE_H, degrading=0.0), with_scores=True)
    counts = _clean_false_alarms(run)
    print(f"\nclean stream, (active, judged) data_drift windows per type: {counts}; {run.seconds:.1f} s")
    assert set(counts) == {"pump", "compressor", "cnc_spindle"}
    assert all(judged == LIVE_H - WARM_UP_H for _, judged in counts.values()), counts
    assert all(active == 0 for active, _ in counts.values()), counts
    score_events = [e for e in run.events if e.condition == "score_drift"]
    assert len(score_events) == LIVE_H - WARM_UP_H and all(e.scope == "all" for e in score_events)
    assert sum(e.active for e in score_events) <= 1  # the live scores follow the holdout's distribution
    assert all(e.condition != "no_reference" or not e.active for e in run.events)
