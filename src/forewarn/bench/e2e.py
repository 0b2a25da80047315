"""``forewarn bench e2e``: the whole streaming path at a fixed offered rate, against the broker's own limit.

Path under test: a load process (the plant simulator, paced to the wall clock, writing reading envelopes
straight to ``sensor.readings`` and stamping ``ingested_at`` as ingest would) -> features service (Redis
online store and snapshots) -> ``features.vectors`` -> scorer (a LightGBM champion from MLflow) ->
``risk.scores`` -> alerter -> PagerDuty/Slack-compatible receivers on loopback. Every process is local,
on the same machine as the broker and Redis.

What it measures, and how:

* throughput: scores that came out while the load ran, per second (equal to the offered rate when the
  pipeline keeps up), and the end-to-end lag (readings produced minus readings scored) every second;
* latency per reading: the bench consumer's receive time of a reading's score minus the reading's
  ``ingested_at``, which travels through the features and the scorer with it; reading to alert: receive
  time of the trigger on ``alerts`` minus ``ingested_at`` of the reading whose score triggered it;
* lost and duplicates: each produced reading must come back as exactly one score (machine, event time);
  pages are counted by the PagerDuty receiver, a second trigger of one incident is a duplicate page;
* CPU seconds and peak RSS of each process (load, broker, Redis, each service, the bench itself).

Baseline (this machine's limit): a bare batched produce-then-consume pass of the same kind of readings
(same simulator, envelopes, lz4, acks=all) through the same broker, in the same run.

``--find-max`` keeps the services running and steps the offered rate up until the lag keeps growing;
the highest rate whose lag stayed bounded is reported.
"""

from __future__ import annotations

import array
import multiprocessing
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
from rich.console import Console

from forewarn import kafka, topics
from forewarn.bench.timeline import Timeline, slowest_window, tree_cpu_seconds
from forewarn.settings import ForewarnSettings, KafkaSettings, RedisSettings

BENCH_TOPIC_CONFIG = {"retention.ms": str(5 * 60_000), "segment.bytes": str(64 * 2**20)}
HORIZON = "12h"
HORIZON_MS = 12 * 3_600_000


@dataclass
class E2EOptions:
    rate: float = 25_000.0
    duration_s: float = 60.0
    machines: int = 5_000
    partitions: int = 4
    interval: str = "1m"  # simulated time between a machine's readings (the pace maps it onto the wall clock)
    warmup_s: float = 10.0
    find_max: bool = False
    start_rate: float = 10_000.0
    step: float = 10_000.0
    max_rate: float = 200_000.0
    step_s: float = 30.0
    seed: int = 5
    features_workers: int = 1
    workdir: Path = field(default_factory=lambda: Path(".forewarn/bench-e2e"))


# ---- the load: a separate process, so its CPU is its own ------------------------------------------

def produce_load(kafka_fields: dict[str, Any], topic: str, machines: int, interval: str, rate: float,
                 duration_s: float, start_ms: int, seed: int, sent: Any, done: Any, cpu: Any) -> None:
    """Simulated fleet at ``rate`` readings/s for ``duration_s`` wall seconds, event time from ``start_ms``."""
    from forewarn.assets import load_asset_config, parse_duration_ms
    from forewarn.sim.driver import Pacer, run
    from forewarn.sim.options import SimOptions
    from forewarn.sim.plant import PlantSimulator
    from forewarn.sim.sink_kafka import KafkaSink
    from forewarn.sim.sinks import NullTruthSink

    interval_ms = parse_duration_ms(interval)
    speedup = interval_ms / 1000 * rate / machines  # event seconds per wall second
    options = SimOptions(machines=machines, duration_ms=int(duration_s * speedup * 1000), interval_ms=interval_ms,
                         seed=seed, degrading_fraction=0.2, maintenance_every_ms=None, glitch_rate=0.0,
                         dropout_rate=0.0, missing_rate=0.0, outlier_rate=0.0, start_ms=start_ms)
    simulator = PlantSimulator(load_asset_config("plant"), options)
    sink = KafkaSink(kafka.producer(KafkaSettings(**kafka_fields)), topic, None, stamp_ingested_at=True)

    def progress(count: int, _last_ts: int | None) -> None:
        with sent.get_lock():
            sent.value += count

    stats = run(simulator.chunks(), sink, NullTruthSink(), Pacer(start_ms, speedup=speedup), progress)
    done.value = stats.last_ts or start_ms
    times = os.times()
    cpu.value = times.user + times.system  # the parent cannot read it once this process is gone


# ---- receivers and the bench's own consumer --------------------------------------------------------

class PageCounter:
    """A loopback endpoint that speaks enough of Slack's webhook and PagerDuty Events v2 to count pages."""

    def __init__(self) -> None:
        self.triggers: Counter[str] = Counter()  # PagerDuty dedup_key -> triggers (escalations aside)
        self.escalations = 0
        self.slack = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith("/pagerduty"):
                    event = orjson.loads(body)
                    if event.get("event_action") == "trigger":
                        # An escalation re-sends trigger under the same dedup key on purpose (PagerDuty
                        # updates the open incident); only level 0 is a page.
                        details = (event.get("payload") or {}).get("custom_details") or {}
                        if details.get("escalation_level", 0):
                            counter.escalations += 1
                        else:
                            counter.triggers[str(event.get("dedup_key"))] += 1
                    reply, status = b'{"status":"success","message":"Event processed"}', 202
                else:
                    counter.slack += 1
                    reply, status = b"ok", 200
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> PageCounter:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()


class OutputWatcher(threading.Thread):
    """Reads ``risk.scores`` and ``alerts`` as they are written; keeps compact per-score arrays."""

    def __init__(self, settings: KafkaSettings, enter_p: float) -> None:
        super().__init__(daemon=True, name="bench-watcher")
        self.settings = settings
        self.enter_p = enter_p
        self.stop = threading.Event()
        self.machine_index: dict[str, int] = {}
        self.machine = array.array("i")
        self.ts = array.array("q")
        self.received = array.array("q")  # wall ms at the bench
        self.ingested = array.array("q")
        self.scored_at = array.array("q")  # wall ms at the scorer
        self.risky_ingested: dict[tuple[str, int], int] = {}  # (machine, ts) of high scores -> ingested_at
        self.alerts: list[tuple[int, dict[str, Any]]] = []
        self.scored = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported by the bench, not lost in a thread
            self.error = repr(exc)

    def _run(self) -> None:
        consumer = kafka.consumer(self.settings, group_id=f"bench-e2e-watch-{uuid.uuid4().hex[:6]}")
        scores_topic, alerts_topic = self.settings.topic(topics.RISK_SCORES), self.settings.topic(topics.ALERTS)
        consumer.subscribe([scores_topic, alerts_topic])
        index = self.machine_index
        try:
            while not self.stop.is_set():
                # A short wait: consume() holds what arrived until the batch fills or the wait ends, and
                # that wait would count as pipeline latency.
                messages = consumer.consume(5000, timeout=0.005)
                now = int(time.time() * 1000)
                for message in messages:
                    if message.error() is not None:
                        continue
                    value = orjson.loads(message.value())
                    if message.topic() == alerts_topic:
                        self.alerts.append((now, value))
                        continue
                    for score in value if isinstance(value, list) else (value,):
                        machine_id = score["machine_id"]
                        m = index.get(machine_id)
                        if m is None:
                            m = index[machine_id] = len(index)
                        ingested = score.get("ingested_at") or 0
                        self.machine.append(m)
                        self.ts.append(score["ts"])
                        self.received.append(now)
                        self.ingested.append(ingested)
                        self.scored_at.append(score.get("scored_at") or 0)
                        if score["p_failure"] >= self.enter_p:
                            self.risky_ingested[(machine_id, score["ts"])] = ingested
                        self.scored += 1
        finally:
            consumer.close()


# ---- process accounting ----------------------------------------------------------------------------

class ProcessMeter:
    """CPU seconds and peak RSS of named process trees, sampled; CPU is read at the end (cumulative)."""

    def __init__(self) -> None:
        self.roots: dict[str, psutil.Process] = {}
        self.peak_rss: dict[str, int] = {}
        self.cpu_start: dict[str, float] = {}
        self.rss_series: dict[str, list[int]] = {}
        self.alone: set[str] = set()  # measured without their children

    def watch(self, name: str, pid: int, children: bool = True) -> None:
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        self.roots[name] = process
        if not children:
            self.alone.add(name)
        self.cpu_start[name] = self._cpu(process)

    def _tree(self, process: psutil.Process) -> list[psutil.Process]:
        try:
            if any(self.roots[name] is process for name in self.alone):
                return [process]
            return [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu(self, process: psutil.Process) -> float:
        # Reaped children count too: Redis's AOF rewrites run in forks it reaps within a second.
        alone = any(self.roots[name] is process for name in self.alone)
        return tree_cpu_seconds(process, alone) or 0.0

    def sample(self) -> None:
        for name, process in self.roots.items():
            rss = 0
            for p in self._tree(process):
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
            self.rss_series.setdefault(name, []).append(rss)

    def cpu_seconds(self) -> dict[str, float]:
        return {name: round(self._cpu(p) - self.cpu_start[name], 2) for name, p in self.roots.items()}


# ---- baseline -------------------------------------------------------------------------------------

def bare_pass(settings: ForewarnSettings, topic: str, machines: int, readings: int, seed: int) -> dict[str, float]:
    """Produce ``readings`` simulated readings as envelopes as fast as possible, then consume them all."""
    from forewarn.assets import load_asset_config
    from forewarn.bench.features import bare_consume
    from forewarn.sim.driver import run
    from forewarn.sim.options import SimOptions
    from forewarn.sim.plant import PlantSimulator
    from forewarn.sim.sink_kafka import KafkaSink
    from forewarn.sim.sinks import NullTruthSink

    steps = max(1, readings // machines)
    options = SimOptions(machines=machines, duration_ms=steps * 60_000, interval_ms=60_000, seed=seed,
                         degrading_fraction=0.2, maintenance_every_ms=None, glitch_rate=0.0, dropout_rate=0.0,
                         missing_rate=0.0, outlier_rate=0.0, start_ms=1_767_225_600_000)
    sink = KafkaSink(kafka.producer(settings.kafka), topic, None, stamp_ingested_at=True)
    started = time.perf_counter()
    stats = run(PlantSimulator(load_asset_config("plant"), options).chunks(), sink, NullTruthSink())
    produce_s = time.perf_counter() - started
    consume_rate = bare_consume(settings, topic, stats.readings)
    consume_s = stats.readings / consume_rate
    return {
        "readings": stats.readings,
        "produce_readings_per_s": round(stats.readings / produce_s, 1),
        "consume_readings_per_s": round(consume_rate, 1),
        "limit_readings_per_s": round(stats.readings / (produce_s + consume_s), 1),
    }


# ---- the bench champion ---------------------------------------------------------------------------

def train_champion(settings: ForewarnSettings, name: str, workdir: Path, console: Console) -> str:
    """A LightGBM failure-within-12h model over simulated plant history, registered as ``name@champion``
    (features through the shared feature module, as the training pipeline does)."""
    import lightgbm as lgb
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from forewarn.assets import load_asset_config
    from forewarn.features import FEATURE_SET_VERSION, compute_frame, feature_names
    from forewarn.model_bundle import log_bundle
    from forewarn.sim.commands import run_simulation
    from forewarn.sim.outputs import OutputSpec

    out = workdir / f"history-{name}"
    console.print("training the bench champion on 24 simulated machines x 5 days")
    run_simulation(OutputSpec(to="parquet", out=out), machines=24, config="plant", duration="5d",
                   start="2026-01-01T00:00:00Z", interval="1m", seed=3, degrading_fraction=0.7,
                   maintenance_every="3d", rates=(0.0, 0.0, 0.0, 0.0), rate=None, speedup=None, progress=False,
                   settings=settings, console=Console(stderr=True, quiet=True))
    readings, truth = pd.read_parquet(out / "readings"), pd.read_parquet(out / "ground_truth")
    config = load_asset_config("plant")
    names = sorted({n for t in config.machine_types.values() for n in feature_names(t)})
    failures = {m: np.sort(g.ts.to_numpy()) for m, g in truth[truth.kind == "failure"].groupby("machine_id")}
    frames, labels = [], []
    for machine_type, group in readings.sort_values(["machine_id", "ts"]).groupby("machine_type", observed=True):
        spec = config.machine_type(str(machine_type))
        group = group.reset_index(drop=True)
        features = compute_frame(group[["machine_id", "ts", *spec.sensor_names]], spec, config.allowed_lateness_ms)
        keep = features.pop("accepted").to_numpy()
        kept = group[keep]
        label = np.zeros(len(kept), dtype=int)
        for machine_id, rows in kept.groupby("machine_id", observed=True).indices.items():
            upcoming = failures.get(machine_id)
            if upcoming is None:
                continue
            ts = kept.ts.to_numpy()[rows]
            following = np.searchsorted(upcoming, ts, side="right")
            has_next = following < len(upcoming)
            gap = np.where(has_next, upcoming[np.minimum(following, len(upcoming) - 1)] - ts, np.inf)
            label[rows] = (gap <= HORIZON_MS).astype(int)
        frames.append(features.reindex(columns=names)[keep])
        labels.append(label)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 2, "seed": 1, "deterministic": True,
                         "num_leaves": 31, "learning_rate": 0.05},
                        lgb.Dataset(pd.concat(frames, ignore_index=True), np.concatenate(labels), feature_name=names),
                        num_boost_round=100)
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment("bench-e2e")
    with mlflow.start_run():
        version = log_bundle(booster, registered_name=name, horizon=HORIZON, feature_set_version=FEATURE_SET_VERSION)
    MlflowClient(settings.mlflow.tracking_uri).set_registered_model_alias(name, "champion", version)
    return name


# ---- the run --------------------------------------------------------------------------------------

def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
            "n": int(len(values))}


def _lag_growth(series: list[tuple[float, int, int]], t0: float, t1: float) -> float:
    """Slope (readings/s) of the end-to-end lag over the second half of [t0, t1]."""
    points = [(t, produced - scored) for t, produced, scored in series if (t0 + t1) / 2 <= t <= t1]
    if len(points) < 3:
        return 0.0
    t, lag = np.array(points, dtype=float).T
    return float(np.polyfit(t - t[0], lag, 1)[0])


def _rss_growth(series: dict[str, list[int]], warmup_s: float) -> dict[str, float]:
    """Per process: median RSS of the last tenth of the run against the first tenth after warm-up, in %
    (samples are one a second)."""
    growth = {}
    for name, values in series.items():
        steady = values[int(warmup_s):]
        if len(steady) < 20:
            continue
        tenth = max(1, len(steady) // 10)
        first, last = float(np.median(steady[:tenth])), float(np.median(steady[-tenth:]))
        growth[name] = round(100 * (last - first) / first, 2) if first else 0.0
    return growth


@dataclass
class Step:
    rate: float
    started: float
    ended: float
    produced_before: int
    produced_after: int
    lag_slope: float
    sustained: bool


def run_e2e_bench(options: E2EOptions, console: Console) -> dict[str, Any]:
    from forewarn.stack.manager import LocalStack

    stack = LocalStack(report=lambda msg: console.print(f"[dim]stack[/dim] {msg}"))
    stack.up()
    uid = uuid.uuid4().hex[:8]
    prefix = f"bench-e2e.{uid}."
    base = stack.settings
    kafka_settings = base.kafka.model_copy(update={"topic_prefix": prefix, "topic_partitions": options.partitions})
    settings = base.model_copy(update={"kafka": kafka_settings})
    bench_topics = [prefix + t for t in (*topics.ALL, "bare")]
    # A soak writes tens of GB (vectors are ~100 float64 each): keep only minutes of it, in segments small
    # enough to be deleted, and drop the topics at the end. Nothing here re-reads old data.
    stack.ensure_topics(bench_topics, partitions=options.partitions, config=BENCH_TOPIC_CONFIG)
    try:
        return _run(options, console, stack, uid, prefix, settings)
    finally:
        # faust's own topic for the features app (named after its app id, below) goes too
        stack.delete_topics([*bench_topics, f"bench-e2e-features-{uid}-__assignor-__leader"])
        delete_redis_keys(settings.redis, f"bench-e2e-{uid}:")


def delete_redis_keys(settings: RedisSettings, prefix: str) -> None:
    """Delete every key under a prefix (a bench run's online store, snapshots and alerter state)."""
    from forewarn.redis_client import connect

    client = connect(settings)
    keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
    for start in range(0, len(keys), 5000):
        client.delete(*keys[start:start + 5000])


def _run(options: E2EOptions, console: Console, stack: Any, uid: str, prefix: str,
         settings: ForewarnSettings) -> dict[str, Any]:
    from forewarn.assets import load_asset_config
    from forewarn.localrun import LocalPipeline

    kafka_settings = settings.kafka
    workdir = options.workdir / uid
    workdir.mkdir(parents=True, exist_ok=True)
    model_name = train_champion(settings, f"bench-e2e-{uid}", workdir, console)

    total_s = options.duration_s if not options.find_max else options.step_s
    top_rate = options.rate if not options.find_max else options.max_rate
    console.print("baseline: bare produce-then-consume of simulated readings through the same broker")
    baseline = bare_pass(settings, kafka_settings.topic("bare"), options.machines,
                         int(min(top_rate * total_s, 2_000_000)), options.seed)
    console.print(f"baseline: {baseline}")

    from forewarn.services.alerter.policy_file import load_policy_book

    book = load_policy_book()
    enter_p = min(book.for_type(t).enter_p or 1.0 for t in load_asset_config("plant").machine_types)
    meter = ProcessMeter()
    timeline = Timeline(settings.redis.url, {})
    with PageCounter() as pages:
        env = {
            "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
            "FOREWARN_KAFKA__TOPIC_PARTITIONS": str(options.partitions),
            "FOREWARN_REDIS__KEY_PREFIX": f"bench-e2e-{uid}",
            "FOREWARN_MLFLOW__MODEL_NAME": model_name,
            "FOREWARN_FEATURES__APP_ID": f"bench-e2e-features-{uid}",
            "FOREWARN_FEATURES__DATADIR": str(workdir / "features"),
            "FOREWARN_SCORER__GROUP_ID": f"bench-e2e-scorer-{uid}",
            "FOREWARN_ALERTER__CONSUMER_GROUP": f"bench-e2e-alerter-{uid}",
            "FOREWARN_ALERTER__SLACK_WEBHOOK_URL": f"{pages.url}/slack",
            "FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY": "bench-routing-key-000000000000000",
            "FOREWARN_ALERTER__PAGERDUTY_URL": f"{pages.url}/pagerduty",
            "FOREWARN_ASSET_CONFIG": "plant",
            "FOREWARN_LOG_LEVEL": "WARNING",
        }
        pipeline = LocalPipeline(env=env, log_dir=workdir / "logs", replicas={"features": options.features_workers})
        watcher = OutputWatcher(kafka_settings, enter_p)
        services = ("features", "scorer", "alerter")
        try:
            ready = pipeline.start(services)
            console.print(f"services ready: {ready}")
            for name in ready:
                meter.watch(name, pipeline[name].proc.pid)  # type: ignore[union-attr]
                timeline.watch(name, pipeline[name].proc.pid)  # type: ignore[union-attr]
                timeline.metrics_urls[name] = f"{pipeline[name].url}/metrics"
            for name, state in stack.status().items():
                if name in ("kafka", "redis") and state.pid:
                    meter.watch(name, state.pid)
                    timeline.watch(name, state.pid)
            meter.watch("bench", os.getpid(), children=False)  # the services are its children
            timeline.watch("bench", os.getpid(), alone=True)
            watcher.start()
            result = _drive(options, settings, watcher, meter, timeline, pipeline, console)
        finally:
            watcher.stop.set()
            pipeline.stop()
            timeline.close()
        time.sleep(0.5)
        page_triggers = dict(pages.triggers)
    if watcher.error:
        raise RuntimeError(f"the bench's output watcher failed: {watcher.error}")

    from forewarn.services.alerter.notifiers.pagerduty import pagerduty_dedup_key

    # PagerDuty's dedup key names one incident; a second trigger under it is a duplicate page, and an
    # incident on the alerts topic without a trigger at the receiver is a lost page.
    incidents = {pagerduty_dedup_key(_event(alert)) for _, alert in watcher.alerts if alert.get("action") == "trigger"}
    duplicate_pages = sum(n - 1 for n in page_triggers.values() if n > 1)
    lost_pages = len(incidents - set(page_triggers))
    result.update({
        "limit_readings_per_s": baseline["limit_readings_per_s"],
        "ratio": round(result["readings_per_s"] / baseline["limit_readings_per_s"], 4),
        "baseline": baseline,
        "pages": sum(page_triggers.values()),
        "escalations": pages.escalations,
        "incidents": len(incidents),
        "duplicate_pages": duplicate_pages,
        "lost_pages": lost_pages,
        "duplicates": result["duplicate_scores"] + duplicate_pages,
        "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in meter.peak_rss.items()},
        "machines": options.machines,
        "partitions": options.partitions,
        "interval": options.interval,
        "features_workers": options.features_workers,
        "targets": {"readings_per_s": 50_000, "risk_latency_p99_ms_at_25k": 250, "alert_latency_p99_ms": 500,
                    "lost": 0, "duplicates": 0},
    })
    return result


def _event(alert: dict[str, Any]) -> Any:
    from forewarn.schemas import AlertEvent

    return AlertEvent.model_validate(alert)


def _drive(options: E2EOptions, settings: ForewarnSettings, watcher: OutputWatcher, meter: ProcessMeter,
           timeline: Timeline, pipeline: Any, console: Console) -> dict[str, Any]:
    from forewarn.assets import parse_duration_ms

    spawn = multiprocessing.get_context("spawn")
    sent = spawn.Value("q", 0)
    series: list[tuple[float, int, int]] = []
    steps: list[Step] = []
    load_cpu_s: dict[str, float] = {}
    rates = [options.rate] if not options.find_max else [
        float(r) for r in np.arange(options.start_rate, options.max_rate + 1, options.step)]
    duration = options.duration_s if not options.find_max else options.step_s
    interval_ms = parse_duration_ms(options.interval)
    event_ms = (int(time.time() * 1000) // 60_000) * 60_000
    t_start = time.monotonic()
    for rate in rates:
        done, load_cpu = spawn.Value("q", 0), spawn.Value("d", 0.0)
        before = sent.value
        load = spawn.Process(target=produce_load, args=(
            settings.kafka.model_dump(), settings.kafka.topic(topics.SENSOR_READINGS), options.machines,
            options.interval, float(rate), duration, event_ms, options.seed, sent, done, load_cpu), daemon=True)
        step_start = time.monotonic()
        load.start()
        timeline.watch("load", load.pid, alone=True)  # type: ignore[arg-type]
        console.print(f"offering {rate:,.0f} readings/s for {duration:.0f} s "
                      f"({options.machines} machines, one reading per machine every "
                      f"{options.machines / rate * 1000:.0f} ms of wall time)")
        while load.is_alive():
            time.sleep(1.0)
            meter.sample()
            series.append((time.monotonic() - t_start, sent.value, watcher.scored))
            timeline.sample(series[-1][0], lag=sent.value - watcher.scored, produced=sent.value,
                            received=watcher.scored)
            for name in [n for service in ("features", "scorer", "alerter") for n in pipeline.instances(service)]:
                if not pipeline[name].alive():
                    raise RuntimeError(f"{name} died during the run; see {pipeline[name].log_path}")
        load.join()
        load_cpu_s[f"load@{int(rate)}"] = round(load_cpu.value, 2)
        step_end = time.monotonic()
        event_ms = max(event_ms, done.value) + interval_ms
        slope = _lag_growth(series, step_start - t_start, step_end - t_start)
        offered_ok = (sent.value - before) >= 0.95 * rate * duration
        sustained = bool(offered_ok and slope < 0.02 * rate)
        steps.append(Step(float(rate), step_start - t_start, step_end - t_start, before, sent.value, slope, sustained))
        console.print(f"  produced {sent.value - before:,} ({(sent.value - before) / duration:,.0f}/s), "
                      f"lag now {sent.value - watcher.scored:,}, lag growth {slope:,.0f} readings/s -> "
                      f"{'sustained' if sustained else 'NOT sustained'}")
        if not sustained:
            break
    produced = sent.value
    # Drain: every produced reading should come back as a score.
    drain_deadline = time.monotonic() + 120
    last, quiet = -1, 0
    while time.monotonic() < drain_deadline and watcher.scored < produced and quiet < 15:
        time.sleep(1.0)
        meter.sample()
        series.append((time.monotonic() - t_start, produced, watcher.scored))
        timeline.sample(series[-1][0], lag=produced - watcher.scored, produced=produced, received=watcher.scored)
        quiet = quiet + 1 if watcher.scored == last else 0
        last = watcher.scored
    drained_at = time.monotonic() - t_start
    time.sleep(3.0)  # the alerter's last decisions
    cpu = {**meter.cpu_seconds(), **load_cpu_s}  # before the services stop and take their CPU times with them
    watcher.stop.set()
    watcher.join(10)

    machine = np.frombuffer(watcher.machine, dtype=np.int32)
    ts = np.frombuffer(watcher.ts, dtype=np.int64)
    received = np.frombuffer(watcher.received, dtype=np.int64)
    ingested = np.frombuffer(watcher.ingested, dtype=np.int64)
    keys = machine.astype(np.int64) * (1 << 44) + (ts - ts.min() if len(ts) else ts)
    distinct = len(np.unique(keys))
    # Latency after warm-up, within the measured (last sustained, or only) step.
    measured = steps[-1] if steps[-1].sustained or len(steps) == 1 else steps[-2]
    wall0 = time.time() - (time.monotonic() - t_start)
    window = ((ingested >= (wall0 + measured.started + min(options.warmup_s, duration / 3)) * 1000)
              & (ingested <= (wall0 + measured.ended) * 1000) & (ingested > 0))
    risk_latency = (received - ingested)[window]
    scored_at = np.frombuffer(watcher.scored_at, dtype=np.int64)
    to_scorer = (scored_at - ingested)[window & (scored_at > 0)]
    alert_latency = []
    alert_when = []  # seconds since the load started, to place slow alerts on the timeline
    window_from, window_to = ((wall0 + measured.started + min(options.warmup_s, duration / 3)) * 1000,
                              (wall0 + measured.ended) * 1000)
    for received_at, alert in watcher.alerts:
        if alert.get("action") == "trigger":
            origin = watcher.risky_ingested.get((alert["machine_id"], alert["ts"]))
            if origin and window_from <= origin <= window_to:  # the same window as the risk latency
                alert_latency.append(received_at - origin)
                alert_when.append(round(received_at / 1000 - wall0, 1))
    scored_in_window = int(((received >= (wall0 + measured.started) * 1000)
                            & (received <= (wall0 + measured.ended) * 1000)).sum())
    span = measured.ended - measured.started
    return {
        "readings_per_s": round(scored_in_window / span, 1) if span > 0 else 0.0,
        "offered_readings_per_s": measured.rate,
        "produced": produced,
        "scored": int(len(ts)),
        "lost": int(produced - distinct),
        "duplicate_scores": int(len(ts) - distinct),
        "risk_latency_ms": _percentiles(risk_latency.astype(float)),
        "alert_latency_ms": _percentiles(np.asarray(alert_latency, dtype=float)),
        "slowest_alerts": [{"latency_ms": int(ms), "at_s": at} for ms, at in
                           sorted(zip(alert_latency, alert_when, strict=True), reverse=True)[:5]],
        # Where the reading-to-score time goes: up to the scorer's clock, then delivery to a consumer.
        "risk_latency_split_ms": {"ingested_to_scored": _percentiles(to_scorer.astype(float)),
                                  "scored_to_consumer": _percentiles((received - scored_at)[window & (scored_at > 0)]
                                                                     .astype(float))},
        "cpu_seconds": cpu,
        "cpu_share_of_2_cores": {k: round(v / max(1e-9, drained_at) / 2, 3)
                                 for k, v in cpu.items()},
        "drained_after_s": round(drained_at - steps[-1].ended, 1),
        "max_sustainable_readings_per_s": max((s.rate for s in steps if s.sustained), default=None),
        "steps": [s.__dict__ for s in steps],
        "lag": [{"t": round(t, 1), "lag": p - s} for t, p, s in series],
        "rss_mb_series": {k: [round(v / 2**20) for v in vs] for k, vs in meter.rss_series.items()},
        "rss_growth_pct": _rss_growth(meter.rss_series, options.warmup_s),
        "max_lag": max((p - s for _, p, s in series), default=0),
        # Per second: CPU per process, machine busy/iowait/steal, disk, Redis persistence, batch time per service.
        "timeline": timeline.columns(),
        "slowest_minute": slowest_window(timeline.columns()),
    }
