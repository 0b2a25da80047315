"""Faults during a steady stream cost nothing: the four services on a throwaway Kafka and Redis, a simulated
plant streaming through ingest, and in turn: kill -9 of each service and its restart, a broker restart, and
Redis restarted empty. After each, against what an uninterrupted run computes offline:

1. every stored reading is reflected exactly once: every vector on ``features.vectors`` (re-published ones
   identical) and the final online-store vector of every machine equal ``forewarn.features`` over exactly the
   readings in ``sensor.readings`` (and those are exactly the readings sent: nothing lost, no duplicate);
2. the online store is whole again (every machine, also after Redis lost everything);
3. PagerDuty receives one trigger (and one resolve) for every incident the policy opens over the offline
   scores, and nothing else; the ``alerts`` topic holds exactly those state changes.

Recovery times (restart -> ready, restart -> caught up) are printed and written to bench-results/faults.json
(``FOREWARN_FAULTS_RESULTS`` moves it); nothing asserts on them. One throwaway stack (Kafka + Redis on free
ports; the model registry stays on the session stack, which no fault touches) and one tiny champion serve
every fault.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from confluent_kafka import TopicPartition
from tests.integration.test_features_service import (
    assert_online_store_matches,
    assert_vectors_match,
    expected_features,
)
from tests.receivers import PagerDutyReceiver, SlackReceiver

from forewarn import kafka, topics
from forewarn.assets import load_asset_config
from forewarn.features import FEATURE_SET_VERSION, feature_names
from forewarn.readings_wire import decode_value
from forewarn.vector_codec import decode

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ("features", "scorer", "alerter", "ingest", "kafka", "redis")
MACHINES, DURATION, START = 9, "36h", "2026-03-01T00:00:00Z"
RATE = 1200  # readings per second through ingest
BATCH = 200  # readings per request
FAULT_AT = 0.4  # share of the stream sent before the fault
BROKER_DOWN_S = 8  # longer than every consumer's session timeout (6 s here): all groups lose their partitions
SILENT = "pump-007"  # switched off a quarter into the stream: only what Redis held before a fault shows it
API_KEY = "forewarn-dev-key"
POLICY = """
defaults:
  enter_p: 0.7
  exit_p: 0.3
  min_consecutive: 3
  resolve_after_low: 5
  resolve_after: null
  cooldown: 10m
  escalate_after: null
  routes:
    trigger: [pagerduty, slack]
    escalate: [pagerduty, slack]
    acknowledge: [pagerduty, slack]
    resolve: [pagerduty, slack]
"""
RESULTS: dict[str, dict[str, Any]] = {}

pytestmark = pytest.mark.timeout(900)


# ---- the stack, the plant and the model (one of each for every fault) -----------------------------


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Kafka and Redis of our own on free ports: these tests restart and wipe them."""
    from forewarn.stack.config import StackOptions, StackSettings
    from forewarn.stack.manager import LocalStack
    from forewarn.stack.process import free_port

    ports = {"kafka_port": free_port(), "kafka_controller_port": free_port(), "redis_port": free_port(),
             "mlflow_port": free_port()}
    settings = StackSettings(stack=StackOptions(state_dir=tmp_path_factory.mktemp("fault-stack"), **ports))
    settings = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{ports['kafka_port']}",
                                                   "topic_prefix": ""}),
        "redis": settings.redis.model_copy(update={"url": f"redis://127.0.0.1:{ports['redis_port']}/0"}),
    })
    # Kafka and Redis only: the registry, Prometheus and Alertmanager stay on the session stack (no fault here
    # touches them, and theirs would take the session stack's ports).
    local = LocalStack(settings, only=("kafka", "redis"))
    try:
        local.up()
        yield local
    finally:
        local.down()


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Readings of a simulated plant (some machines degrade), in event-time order, as a gateway sends them.
    One machine stops reporting a quarter of the way in, long before any fault."""
    from forewarn.sim.commands import run_simulation
    from forewarn.sim.outputs import OutputSpec

    out = tmp_path_factory.mktemp("plant")
    run_simulation(OutputSpec(to="parquet", out=out), machines=MACHINES, config="plant", duration=DURATION,
                   start=START, interval="1m", seed=11, degrading_fraction=0.6, maintenance_every="off",
                   rates=(0.0, 0.001, 0.001, 0.0), rate=None, speedup=None, progress=False)
    frame = pd.read_parquet(out / "readings").sort_values("ts", kind="stable")
    switched_off = frame.ts.min() + (frame.ts.max() - frame.ts.min()) // 4
    frame = frame[(frame.machine_id != SILENT) | (frame.ts < switched_off)]
    config = load_asset_config("plant")
    readings = []
    for row in frame.to_dict("records"):
        sensors = config.machine_type(row["machine_type"]).sensor_names
        readings.append({"machine_id": row["machine_id"], "machine_type": str(row["machine_type"]),
                         "ts": int(row["ts"]),
                         "values": {s: float(row[s]) for s in sensors if row[s] == row[s]}})
    return readings


def _matrix(per_reading: dict[tuple[str, int], np.ndarray], names: list[str]) -> tuple[list, pd.DataFrame]:
    """Offline vectors (each in its machine type's feature order) as one frame in the model's order."""
    config = load_asset_config("plant")
    keys, parts = [], []
    by_type: dict[str, list[tuple[str, int]]] = {}
    types = {m: m.split("-")[0] for m, _ in per_reading}
    for key in per_reading:
        by_type.setdefault(types[key[0]], []).append(key)
    for machine_type, type_keys in by_type.items():
        columns = feature_names(config.machine_type(machine_type))
        part = pd.DataFrame(np.vstack([per_reading[k] for k in type_keys]), columns=columns)
        parts.append(part.reindex(columns=names))
        keys += type_keys
    return keys, pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def champion(stack: Any, plant: list[dict[str, Any]]) -> tuple[str, Any]:
    """A tiny LightGBM trained on the simulated plant, registered as the champion of a fresh model name.
    Its target (vibration's 10-minute mean in its type's top 30 %) makes risk come and go, so the stream
    opens and resolves dozens of incidents."""
    import lightgbm as lgb
    import mlflow
    from mlflow import MlflowClient

    from forewarn.model_bundle import log_bundle

    config = load_asset_config("plant")
    names = sorted({n for t in config.machine_types.values() for n in feature_names(t)})
    per_reading, _ = expected_features(plant)
    keys, frame = _matrix(per_reading, names)
    kinds = pd.Series([m.split("-")[0] for m, _ in keys])
    signal = frame["vibration__10m__mean"]
    labels = (signal > signal.groupby(kinds).transform(lambda s: s.quantile(0.7))).astype(int).to_numpy()
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 2, "seed": 1, "deterministic": True,
                         "num_leaves": 7, "learning_rate": 0.2, "min_data_in_leaf": 50},
                        lgb.Dataset(frame, labels, feature_name=names), num_boost_round=30)
    name = f"faults-{time.time_ns()}"
    mlflow.set_tracking_uri(stack.settings.mlflow.tracking_uri)
    mlflow.set_experiment("e2e-faults")
    with mlflow.start_run():
        version = log_bundle(booster, registered_name=name, horizon="12h", feature_set_version=FEATURE_SET_VERSION)
    MlflowClient(stack.settings.mlflow.tracking_uri).set_registered_model_alias(name, "champion", version)
    return name, booster


@pytest.fixture(scope="module", autouse=True)
def results_file() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    path = Path(os.environ.get("FOREWARN_FAULTS_RESULTS") or ROOT / "bench-results" / "faults.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "what": "tests/e2e/test_faults.py: each fault injected once during a steady stream through all four "
                "services; seconds from the restart to ready (health check) and to caught up (everything "
                "produced before the restart processed). Nothing lost or doubled in any of them.",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with the stack and the test)",
        "stream": {"machines": MACHINES, "readings_per_s": RATE, "fault_after_share": FAULT_AT},
        "faults": RESULTS,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


# ---- the stream ----------------------------------------------------------------------------------


class Sender(threading.Thread):
    """A plant gateway: POSTs readings in order at a steady rate; resends what ingest did not store (503:
    its retry_indexes) and, when the connection fails, the whole request (at least once)."""

    def __init__(self, url: str, readings: list[dict[str, Any]]) -> None:
        super().__init__(name="gateway", daemon=True)
        self.url = url
        self.lines = [orjson.dumps(r) for r in readings]
        self.sent = 0
        self.started_at = 0.0
        self.transport_errors = 0
        self.unavailable = 0
        self.rejected: list[Any] = []
        self.error: BaseException | None = None
        self.fault_point = threading.Event()
        self.stop = threading.Event()

    def scheduled(self, at: float) -> int:
        return min(len(self.lines), int((at - self.started_at) * RATE))

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(15.0)) as client:
                self.started_at = time.monotonic()
                while self.sent < len(self.lines) and not self.stop.is_set():
                    wait = self.started_at + self.sent / RATE - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    chunk = self.lines[self.sent:self.sent + BATCH]
                    self._deliver(client, chunk)
                    self.sent += len(chunk)
                    if self.sent >= FAULT_AT * len(self.lines):
                        self.fault_point.set()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
            self.fault_point.set()

    def _deliver(self, client: httpx.Client, pending: list[bytes]) -> None:
        deadline = time.monotonic() + 180
        while pending:
            if time.monotonic() > deadline or self.stop.is_set():
                raise RuntimeError(f"ingest did not take {len(pending)} readings within 180 s")
            try:
                answer = client.post(self.url, content=b"\n".join(pending) + b"\n",
                                     headers={"content-type": "application/x-ndjson", "X-API-Key": API_KEY})
            except httpx.TransportError:
                self.transport_errors += 1
                time.sleep(0.2)
                continue
            body = answer.json()
            self.rejected += body.get("rejected") or []
            if answer.status_code == 200:
                return
            if answer.status_code == 503:
                self.unavailable += 1
                pending = [pending[i] for i in body["retry_indexes"]]
                time.sleep(0.5)
                continue
            raise RuntimeError(f"ingest answered {answer.status_code}: {answer.text[:300]}")


# ---- one run: topics, services, receivers --------------------------------------------------------


class Run:
    def __init__(self, fault_stack: Any, stack: Any, champion: str, uid: str, tmp_path: Path) -> None:
        from forewarn.localrun import LocalPipeline

        self.fault_stack = fault_stack
        self.prefix = f"faults.{uid}."
        base = fault_stack.settings
        self.kafka = base.kafka.model_copy(update={"topic_prefix": self.prefix})
        fault_stack.ensure_topics([self.prefix + t for t in topics.ALL])
        self.slack, self.pd = SlackReceiver().start(), PagerDutyReceiver().start()
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        self.policy_path = policy
        self.groups = {"features": f"faults-features-{uid}", "scorer": f"faults-scorer-{uid}",
                       "alerter": f"faults-alerter-{uid}"}
        self.env = {
            "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "FOREWARN_KAFKA__TOPIC_PREFIX": self.prefix,
            "FOREWARN_REDIS__URL": base.redis.url,
            "FOREWARN_REDIS__KEY_PREFIX": f"faults-{uid}",
            "FOREWARN_MLFLOW__TRACKING_URI": stack.settings.mlflow.tracking_uri,
            "FOREWARN_MLFLOW__MODEL_NAME": champion,
            "FOREWARN_ASSET_CONFIG": "plant",
            "FOREWARN_LOG_LEVEL": "INFO",
            "FOREWARN_FEATURES__APP_ID": self.groups["features"],
            "FOREWARN_FEATURES__DATADIR": str(tmp_path / "faust"),
            "FOREWARN_FEATURES__SNAPSHOT_INTERVAL_S": "2",
            "FOREWARN_FEATURES__SESSION_TIMEOUT_S": "6",
            "FOREWARN_SCORER__GROUP_ID": self.groups["scorer"],
            "FOREWARN_SCORER__COMPILE_MODEL": "false",  # Booster.predict: bit for bit what the test computes
            "FOREWARN_SCORER__SESSION_TIMEOUT_MS": "6000",
            "FOREWARN_ALERTER__CONSUMER_GROUP": self.groups["alerter"],
            "FOREWARN_ALERTER__POLICY": str(policy),
            "FOREWARN_ALERTER__SLACK_WEBHOOK_URL": self.slack.url,
            "FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY": "faults-routing-key-000000000000000",
            "FOREWARN_ALERTER__PAGERDUTY_URL": self.pd.url,
            "FOREWARN_ALERTER__SESSION_TIMEOUT_MS": "6000",
            "FOREWARN_ALERTER__TICK_INTERVAL_S": "0.5",
            "FOREWARN_ALERTER__SWEEP_INTERVAL_S": "2",
            "FOREWARN_ALERTER__OUTBOX_STALE_S": "5",
            "FOREWARN_ALERTER__POLL_TIMEOUT_S": "0.2",
            "FOREWARN_INGEST__DELIVERY_TIMEOUT_S": "5",
            "FOREWARN_INGEST__RETRY_AFTER_S": "1",
        }
        self.pipeline = LocalPipeline(env=self.env, log_dir=tmp_path / "logs")
        self.machines: list[str] = []
        self.inputs = {"features": topics.SENSOR_READINGS, "scorer": topics.FEATURE_VECTORS,
                       "alerter": topics.RISK_SCORES}

    def topic(self, name: str) -> str:
        return self.kafka.topic(name)

    def close(self) -> None:
        self.pipeline.stop()
        self.slack.stop()
        self.pd.stop()

    # -- progress of the consumer groups -------------------------------------------------------------
    def ends(self, name: str) -> dict[int, int]:
        reader = kafka.consumer(self.kafka, group_id=f"faults-ends-{name}")
        try:
            topic = self.topic(name)
            partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
            return {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        finally:
            reader.close()

    def committed(self, service: str) -> dict[int, int]:
        topic = self.topic(self.inputs[service])
        reader = kafka.consumer(self.kafka, group_id=self.groups[service])
        try:
            partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
            found = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            return {tp.partition: max(tp.offset, 0) for tp in found}
        finally:
            reader.close()

    def caught_up(self, service: str, targets: dict[int, int]) -> bool:
        try:
            done = self.committed(service)
        except Exception:  # noqa: BLE001 - the broker may still be coming back
            return False
        return all(done.get(p, 0) >= end for p, end in targets.items())

    def drained(self) -> bool:
        try:
            return all(self.caught_up(s, self.ends(self.inputs[s])) for s in ("features", "scorer", "alerter"))
        except Exception:  # noqa: BLE001
            return False

    def snapshots_complete(self) -> bool:
        """Each source partition's feature snapshot holds every machine of the partition (a snapshot that
        lacks one would restore it as new after the next crash)."""
        from forewarn.readings_wire import partition_for
        from forewarn.services.features.snapshot_store import RedisSnapshotStore

        partitions = self.kafka.topic_partitions
        snapshots = RedisSnapshotStore(redis.Redis.from_url(self.env["FOREWARN_REDIS__URL"]),
                                       self.env["FOREWARN_REDIS__KEY_PREFIX"], self.groups["features"],
                                       self.topic(topics.SENSOR_READINGS))
        for partition in range(partitions):
            _applied, states = snapshots.load(partition)
            held = {str(m) for state in states.values() for m in state["machine_ids"].tolist()}
            if held != {m for m in self.machines if partition_for(m, partitions) == partition}:
                return False
        return True

    def alive(self) -> None:
        for name, service in self.pipeline.services.items():
            if service.proc is not None and not service.alive():
                pytest.fail(f"{name} exited (rc {service.proc.returncode}); its log ends:\n{service.tail(40)}")


def wait_until(what: str, check: Callable[[], bool], timeout_s: float, run: Run | None = None,
               step_s: float = 0.25, explain: Callable[[], str] | None = None) -> float:
    started = time.monotonic()
    while not check():
        if run is not None:
            run.alive()
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s:.0f}s" + (f"; {explain()}" if explain else ""))
        time.sleep(step_s)
    return time.monotonic() - started


# ---- the faults ----------------------------------------------------------------------------------


def kill_and_restart(run: Run, name: str, sender: Sender) -> dict[str, float]:
    service = run.pipeline[name]
    service.kill9()
    restarted = time.monotonic()
    targets = run.ends(run.inputs[name]) if name in run.inputs else None
    backlog = sender.scheduled(restarted)
    service.start()
    ready_s = service.wait_ready(timeout_s=120)
    if targets is None:  # ingest: caught up when the gateway has sent what was due at the restart
        caught = wait_until("gateway caught up", lambda: sender.sent >= backlog or sender.error is not None, 120)
    else:
        caught = wait_until(f"{name} caught up", lambda: run.caught_up(name, targets), 180, run, 0.5)
    return {"ready_s": round(ready_s, 1), "caught_up_s": round(max(caught, ready_s), 1)}


def restart_broker(run: Run) -> dict[str, float]:
    stack = run.fault_stack
    stopping = time.monotonic()
    stack.tracker.stop("kafka")  # SIGTERM: a controlled broker shutdown, then the same log dirs again
    time.sleep(max(0.0, BROKER_DOWN_S - (time.monotonic() - stopping)))
    restarted = time.monotonic()
    stack.up()
    ready_s = time.monotonic() - restarted
    targets: dict[str, dict[int, int]] = {}

    def leaders_back() -> bool:  # metadata answers a little before the partitions have leaders again
        try:
            targets.update({s: run.ends(run.inputs[s]) for s in ("features", "scorer", "alerter")})
        except Exception:  # noqa: BLE001
            return False
        return True

    wait_until("partition leaders after the broker restart", leaders_back, 60, run)
    caught = wait_until("every stage caught up after the broker restart",
                        lambda: all(run.caught_up(s, t) for s, t in targets.items()), 240, run, 0.5)
    return {"down_s": round(restarted - stopping, 1), "ready_s": round(ready_s, 1),
            "caught_up_s": round(ready_s + caught, 1)}


def restart_redis_empty(run: Run) -> dict[str, float]:
    from forewarn.online_store import RedisFeatureStore
    from forewarn.services.alerter.adapters.redis_store import RedisAlertStore

    stack = run.fault_stack
    stack.tracker.stop("redis")
    data = stack.components["redis"].data_dir
    shutil.rmtree(data)  # the append-only file and any snapshot: it comes back with nothing
    data.mkdir()
    restarted = time.monotonic()
    stack.up()
    ready_s = time.monotonic() - restarted
    client = redis.Redis.from_url(run.env["FOREWARN_REDIS__URL"])
    prefix = run.env["FOREWARN_REDIS__KEY_PREFIX"]
    features_store = RedisFeatureStore(client, prefix)
    alert_store = RedisAlertStore(redis.Redis.from_url(run.env["FOREWARN_REDIS__URL"], decode_responses=True), prefix,
                             alert_retention_s=60, done_marker_ttl_s=60)
    scores = run.topic(topics.RISK_SCORES)
    partitions = range(run.kafka.topic_partitions)
    snapshot_keys = [f"{prefix}:fstate:{run.groups['features']}:{run.topic(topics.SENSOR_READINGS)}:{p}"
                     for p in partitions]

    def rebuilt() -> bool:
        return (all(features_store.read(m) is not None for m in run.machines)
                and client.exists(*snapshot_keys) == len(snapshot_keys)
                and not alert_store.missing_loaded(f"{scores}:{p}" for p in partitions))

    rebuilt_s = wait_until("online store, feature snapshots and alerter state back", rebuilt, 120, run, 0.2)
    return {"ready_s": round(ready_s, 1), "state_rebuilt_s": round(ready_s + rebuilt_s, 1)}


# ---- what an uninterrupted run would have done ---------------------------------------------------


def stored_readings(run: Run) -> list[dict[str, Any]]:
    messages = sorted(kafka.read_all(run.kafka, run.topic(topics.SENSOR_READINGS)),
                      key=lambda m: (m.partition(), m.offset()))
    return [r for m in messages for r in decode_value(m.value())]


def expected_alerts(per_reading: dict[tuple[str, int], np.ndarray], booster: Any) -> tuple[set[str], set[str]]:
    """(alert ids triggered, alert ids resolved) by the alert policy over the offline scores."""
    import yaml

    from forewarn.alerting.policy import new_tracker, on_score
    from forewarn.schemas import RiskScore
    from forewarn.services.alerter.policy_file import parse_policy_book

    book = parse_policy_book(yaml.safe_load(POLICY))
    keys, frame = _matrix(per_reading, list(booster.feature_name()))
    risk = booster.predict(frame.to_numpy())
    triggered, resolved = set(), set()
    trackers: dict[str, Any] = {}
    for (machine_id, ts), p in sorted(zip(keys, risk.tolist(), strict=True), key=lambda item: item[0][1]):
        score = RiskScore(machine_id=machine_id, machine_type=machine_id.split("-")[0], ts=ts, p_failure=p,
                          model_name="m", model_version="1")
        tracker = trackers.get(machine_id) or new_tracker(score)
        decision = on_score(tracker, score, book.for_type(score.machine_type), 0)
        trackers[machine_id] = decision.tracker
        for action in decision.actions:
            (triggered if action.kind == "trigger" else resolved).add(action.alert.id)
    return triggered, resolved


# ---- the test ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_during_a_steady_stream_costs_nothing(
    fault: str, fault_stack: Any, stack: Any, champion: tuple[str, Any], plant: list[dict[str, Any]], uid: str,
    tmp_path: Path,
) -> None:
    name, booster = champion
    run = Run(fault_stack, stack, name, uid, tmp_path)
    run.machines = sorted({r["machine_id"] for r in plant})
    timings: dict[str, float] = {}
    sender: Sender | None = None
    try:
        started = time.monotonic()
        run.pipeline.start()
        timings["pipeline_start_s"] = round(time.monotonic() - started, 1)
        sender = Sender(f"{run.pipeline['ingest'].url}/v1/readings", plant)
        sender.start()
        assert sender.fault_point.wait(120), "the gateway did not get going"
        assert sender.error is None, sender.error
        if fault in ("features", "scorer", "alerter"):
            if fault == "alerter":
                settle_outbox(run)
            timings |= kill_and_restart(run, fault, sender)
        elif fault == "ingest":
            timings |= kill_and_restart(run, "ingest", sender)
        elif fault == "kafka":
            timings |= restart_broker(run)
        else:
            timings |= restart_redis_empty(run)
        sender.join(300)
        assert not sender.is_alive() and sender.error is None, sender.error
        assert sender.rejected == [], sender.rejected[:3]
        wait_until("the pipeline drained", run.drained, 240, run, 1.0)
        wait_until("every partition's snapshot covers all its machines", run.snapshots_complete, 30, run, 0.5)

        stored = stored_readings(run)
        per_reading, last = expected_features(stored)
        triggered, resolved = expected_alerts(per_reading, booster)
        assert triggered and resolved, "the stream opened no incident: nothing tested about alerts"
        def missing_pages() -> dict[str, list[str]]:
            return {"trigger": sorted(triggered - set(alert_ids(run.pd, "trigger"))),
                    "resolve": sorted(resolved - set(alert_ids(run.pd, "resolve")))}

        wait_until("every expected page and resolve", lambda: not any(missing_pages().values()), 120, run, 0.5,
                   explain=lambda: f"missing {missing_pages()}; the alerter's warnings:\n"
                                   + run.pipeline["alerter"].grep(r'"level":"(warning|error)"', 30))
        time.sleep(3)  # anything extra (a second page) would arrive now
        vectors = read_vectors(run)
        alert_events = [orjson.loads(m.value()) for m in kafka.read_all(run.kafka, run.topic(topics.ALERTS))]
        run.alive()
    finally:
        if sender is not None:
            sender.stop.set()
        run.close()

    sent = Counter((r["machine_id"], r["ts"]) for r in plant)
    kept = Counter((r["machine_id"], r["ts"]) for r in stored)
    duplicates = sum((kept - sent).values())
    RESULTS[fault] = {**timings, "readings": len(plant), "incidents": len(triggered),
                      "ingest_retries": {"connection_failed": sender.transport_errors, "503": sender.unavailable},
                      "readings_stored_twice": duplicates}
    print(f"\n{fault}: {RESULTS[fault]}")

    # 1. nothing lost, nothing doubled, every vector what the shared feature code computes
    assert +(sent - kept) == Counter(), "readings sent but not stored"
    assert duplicates == 0, f"{duplicates} readings stored twice (a resend after a lost answer)"
    assert_vectors_match(vectors, per_reading)
    # 2. the online store holds every machine's latest vector
    assert_online_store_matches(run.env, last)
    # 3. one page per incident, every incident paged, and nothing else
    triggers, resolves = Counter(alert_ids(run.pd, "trigger")), Counter(alert_ids(run.pd, "resolve"))
    assert set(triggers) == triggered, (set(triggers) - triggered, triggered - set(triggers))
    assert set(resolves) == resolved, (set(resolves) - resolved, resolved - set(resolves))
    assert set(run.pd.pages().values()) == {1}
    assert max(triggers.values()) == 1 and max(resolves.values()) == 1, (
        {a: n for a, n in triggers.items() if n > 1}, {a: n for a, n in resolves.items() if n > 1})
    events = Counter(e["event_id"] for e in alert_events)
    assert set(events) == {f"{a}.1" for a in triggered} | {f"{a}.2" for a in resolved}
    assert not run.pd.rejected and not run.slack.rejected


def alert_ids(receiver: PagerDutyReceiver, action: str) -> list[str]:
    return [event["dedup_key"].split(":", 1)[0] for event in receiver.events(action)]


def read_vectors(run: Run) -> list[tuple[str, int, np.ndarray]]:
    rows = []
    for message in kafka.read_all(run.kafka, run.topic(topics.FEATURE_VECTORS)):
        block = decode(message.value())
        rows += [(m, int(t), block.matrix[i]) for i, (m, t) in enumerate(zip(block.machine_ids, block.ts.tolist(),
                                                                            strict=True))]
    return rows


def settle_outbox(run: Run, timeout_s: float = 5.0) -> None:
    """Kill the alerter between deliveries where the stream allows: a kill between a notifier's answer and
    its 'done' marker means a resend (PagerDuty's dedup key absorbs it, but the count here is exact)."""
    from forewarn.services.alerter.adapters.redis_store import RedisAlertStore

    store = RedisAlertStore(redis.Redis.from_url(run.env["FOREWARN_REDIS__URL"], decode_responses=True),
                       run.env["FOREWARN_REDIS__KEY_PREFIX"], alert_retention_s=60, done_marker_ttl_s=60)
    deadline = time.monotonic() + timeout_s
    while store.pending_deliveries() and time.monotonic() < deadline:
        time.sleep(0.01)

