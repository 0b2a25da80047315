"""``forewarn bench drift``: a seeded plant, a clean phase, then a drift; is it seen, how fast, at what cost.

Path under test, all on the real local stack (Kafka, Redis, MLflow):

1. a first champion for a model name of its own, trained through the real chain: the simulator writes a
   seeded history to Kafka under a topic prefix of its own, ``etl stream --once`` puts it in a lake,
   ``etl build`` makes the training set, ``train --quick`` trains (and stores the monitoring reference with
   the model), ``promote`` makes it champion;
2. features, scorer and monitor run on a fresh topic prefix; a load process plays the same plant (same
   fleet seed, another seed) into ``sensor.readings``, paced to the wall clock, for a clean phase of N
   monitor windows and then a drift (``forewarn.sim.drift``) for a few more;
3. every window summary the monitor serves on ``/v1/windows`` is kept and scored against the simulator's
   answer key (:func:`score_windows`): false alarms before the onset, first detecting window after it, the
   sensors it named;
4. optionally, the monitor's own trigger starts ``forewarn retrain``; the bench follows the registry alias
   and the scorer's ``/readyz`` until the new champion serves.

Cost: CPU seconds of the monitor process (without the retraining it starts) and of the features and scorer
processes over the live phase, per reading played. The pipeline's CPU per reading is the baseline.

Windows are wall-clock windows of the monitor (``window_s``); at a speedup of X event seconds per wall
second, a window of ``window_event_s`` of event time is ``window_event_s / X`` wall seconds.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from forewarn import topics

DRIFT_CONDITION = "data_drift"
HISTORY_START = "2026-01-01T00:00:00Z"
HISTORY_START_MS = 1_767_225_600_000
BENCH_TOPIC_CONFIG = {"retention.ms": str(6 * 3_600_000)}
SAMPLES_PER_WINDOW = 20


@dataclass
class DriftBenchOptions:
    kinds: tuple[str, ...] = ("sensor-offset",)
    machines: int = 80  # 40 over 5 days leaves the time-ordered holdout with ~3 failures: promote refuses
    interval: str = "2m"
    history: str = "5d"
    degrading_fraction: float = 0.3  # of the live run
    # The history is longer than the live run; both start about 0.12-0.13 degradations per machine and day.
    history_degrading_fraction: float = 0.6
    seed: int = 11
    speedup: float = 720.0
    window_event_s: float = 3600.0  # event time per monitor window
    clean_windows: int = 50
    drift_windows: int = 6
    # A small plant writes small vector blocks (a few rows per type and partition), and the monitor samples one
    # block per partition per interval: at a sixth of a window it saw ~50 vectors of a type per window, under
    # the monitor's default min_rows (200), so nothing was judged. A twentieth and 100 rows judge every window.
    sample_interval_s: float | None = None  # None: window_s / SAMPLES_PER_WINDOW
    min_rows: int | None = 100  # None: the monitor's default
    partitions: int = 4
    horizon: str = "12h"
    retrain: bool = False
    retrain_timeout_s: float = 420.0
    workdir: Path = field(default_factory=lambda: Path(".forewarn/bench-drift"))

    @property
    def window_s(self) -> float:
        return self.window_event_s / self.speedup


# ---- pure: scoring the monitor's windows against the answer key -------------------------------------

def drift_conditions(window: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in window.get("conditions") or [] if c.get("condition") == DRIFT_CONDITION]


def active_drift_types(window: Mapping[str, Any]) -> list[str]:
    """Machine types the window says drifted."""
    return sorted({str(c.get("scope")) for c in drift_conditions(window) if c.get("active")})


def type_judged(window: Mapping[str, Any], machine_type: str) -> bool:
    judged = ((window.get("machine_types") or {}).get(machine_type) or {}).get("judged")
    return bool(judged)


def score_windows(windows: Iterable[Mapping[str, Any]], *, machine_type: str, sensors: Iterable[str],
                  onset_ms: int) -> dict[str, Any]:
    """Detection figures of one run from the monitor's window summaries (any order, duplicates allowed).

    A window is clean when its event-time end is before the onset; a clean window with data drift active
    for any machine type is a false alarm. The first window ending at or after the onset with drift active
    on the drifted type detects; its delay is counted from the onset to that window's event-time end, and
    in windows (1: the window holding the onset). A window that sampled nothing (after the load ended) is
    neither: its event-time end is only the wall clock.
    """
    unique: dict[tuple[Any, Any], Mapping[str, Any]] = {}
    for window in windows:
        if window.get("vectors_sampled", 1) == 0:
            continue
        unique[(window.get("model_version"), window.get("window"))] = window
    ordered = sorted(unique.values(), key=lambda w: (int(w.get("window_end_ts") or 0), int(w.get("window") or 0)))
    true_sensors = sorted(set(sensors))
    clean = [w for w in ordered if int(w["window_end_ts"]) < onset_ms]
    after = [w for w in ordered if int(w["window_end_ts"]) >= onset_ms]
    false_alarms = [w for w in clean if active_drift_types(w)]
    detecting_index = next((i for i, w in enumerate(after) if machine_type in active_drift_types(w)), None)
    found: list[str] = []
    delay_s: float | None = None
    delay_windows: int | None = None
    if detecting_index is not None:
        detecting = after[detecting_index]
        found = sorted({str(s) for c in drift_conditions(detecting) if c.get("scope") == machine_type
                        for s in c.get("sensors") or []})
        delay_s = round((int(detecting["window_end_ts"]) - onset_ms) / 1000, 1)
        delay_windows = detecting_index + 1
    wrong_type = sorted({t for w in after for t in active_drift_types(w) if t != machine_type})
    return {
        "detected": detecting_index is not None,
        "detection_delay_s": delay_s,
        "detection_delay_windows": delay_windows,
        "drifted_features_found": found,
        "drifted_features_true": true_sensors,
        "sensors_exact": detecting_index is not None and found == true_sensors,
        "sensors_missed": sorted(set(true_sensors) - set(found)) if detecting_index is not None else true_sensors,
        "sensors_extra": sorted(set(found) - set(true_sensors)),
        "clean_windows": len(clean),
        "false_alarm_windows": len(false_alarms),
        "false_alarms": [{"window": w.get("window"), "window_end_ts": w.get("window_end_ts"),
                          "types": active_drift_types(w)} for w in false_alarms],
        "clean_windows_unjudged": sum(1 for w in clean if not type_judged(w, machine_type)),
        "windows_after_onset": len(after),
        "windows_after_onset_detecting": sum(1 for w in after if machine_type in active_drift_types(w)),
        "other_types_flagged_after_onset": wrong_type,
    }


def per_reading_us(cpu_seconds: float, readings: int) -> float | None:
    """CPU microseconds per reading; None without readings."""
    return round(cpu_seconds * 1e6 / readings, 2) if readings > 0 else None


def cost_ratio(monitor_us: float | None, pipeline_us: float | None) -> float | None:
    if monitor_us is None or not pipeline_us:
        return None
    return round(monitor_us / pipeline_us, 4)


def combine(per_kind: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The headline figures over every kind run: all must detect; the worst delay; false alarms summed."""
    runs = list(per_kind.values())
    delays = [r["detection_delay_s"] for r in runs if r.get("detection_delay_s") is not None]
    costs = [r["monitor_cpu_us_per_reading"] for r in runs if r.get("monitor_cpu_us_per_reading") is not None]
    base = [r["pipeline_cpu_us_per_reading"] for r in runs if r.get("pipeline_cpu_us_per_reading") is not None]
    loops = [r["loop_seconds"] for r in runs if r.get("loop_seconds") is not None]
    return {
        "detected": bool(runs) and all(r.get("detected") for r in runs),
        "detection_delay_s": max(delays) if len(delays) == len(runs) and delays else None,
        "detection_delay_windows": max((r.get("detection_delay_windows") or 0 for r in runs), default=None),
        "drifted_features_found": {k: r.get("drifted_features_found") for k, r in per_kind.items()},
        "drifted_features_true": {k: r.get("drifted_features_true") for k, r in per_kind.items()},
        "false_alarm_windows": sum(int(r.get("false_alarm_windows") or 0) for r in runs),
        "clean_windows": sum(int(r.get("clean_windows") or 0) for r in runs),
        "retrain_triggered": any(r.get("retrain_triggered") for r in runs),
        "promoted_version": next((r["promoted_version"] for r in reversed(runs) if r.get("promoted_version")), None),
        "loop_seconds": max(loops) if loops else None,
        "monitor_cpu_us_per_reading": max(costs) if costs else None,
        "pipeline_cpu_us_per_reading": min(base) if base else None,
    }


# ---- the load: a process of its own, so its CPU is not the pipeline's ------------------------------

def live_sim_options(options: DriftBenchOptions, kind: str, start_ms: int) -> Any:
    from forewarn.assets import parse_duration_ms
    from forewarn.sim.drift import DriftSpec
    from forewarn.sim.options import SimOptions

    window_ms = int(options.window_event_s * 1000)
    return SimOptions(machines=options.machines, start_ms=start_ms,
                      duration_ms=(options.clean_windows + options.drift_windows) * window_ms,
                      interval_ms=parse_duration_ms(options.interval), seed=options.seed + 1,
                      fleet_seed=options.seed, degrading_fraction=options.degrading_fraction,
                      drift=DriftSpec(kind, at_ms=options.clean_windows * window_ms))


def produce_live(kafka_fields: dict[str, Any], readings_topic: str, truth_topic: str, sim_options: Any,
                 speedup: float, onset_ms: int, sent: Any, onset_wall: Any, done: Any) -> None:
    """Play the plant into Kafka at ``speedup``; note the wall time the first drifted reading went out."""
    from forewarn import kafka
    from forewarn.assets import load_asset_config
    from forewarn.settings import KafkaSettings
    from forewarn.sim.driver import Pacer, run
    from forewarn.sim.plant import PlantSimulator
    from forewarn.sim.sink_kafka import KafkaSink

    simulator = PlantSimulator(load_asset_config("plant"), sim_options)
    sink = KafkaSink(kafka.producer(KafkaSettings(**kafka_fields)), readings_topic, truth_topic,
                     stamp_ingested_at=True)

    def progress(count: int, last_ts: int | None) -> None:
        with sent.get_lock():
            sent.value += count
        if onset_wall.value == 0.0 and last_ts is not None and last_ts >= onset_ms:
            onset_wall.value = time.time()

    run(simulator.chunks(), sink, sink, Pacer(sim_options.start_ms, speedup=speedup), progress)
    done.value = 1


# ---- the edges: CLI steps, HTTP, processes ---------------------------------------------------------

def forewarn_cli(console: Console, args: list[str], env: Mapping[str, str], log_path: Path) -> float:
    """Run ``forewarn <args>`` as a user would; its output goes to a log. Returns its wall seconds."""
    from forewarn.errors import UserError

    console.print(f"[dim]$ forewarn {' '.join(args)}[/dim]")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("ab") as log:
        result = subprocess.run([sys.executable, "-m", "forewarn.cli", *args], env={**os.environ, **env},
                                stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise UserError(f"'forewarn {' '.join(args)}' failed (exit {result.returncode}); log {log_path}:\n{tail}")
    return round(time.monotonic() - started, 1)


def train_first_champion(console: Console, options: DriftBenchOptions, env: Mapping[str, str],
                         history_prefix: str, workdir: Path) -> dict[str, float]:
    """simulate -> etl stream --once -> etl build -> train --quick -> promote, as ``forewarn demo`` does."""
    history_env = {**env, "FOREWARN_KAFKA__TOPIC_PREFIX": history_prefix}
    log = workdir / "logs" / "train-chain.log"
    lake, training = workdir / "lake", workdir / "training"
    steps = {
        "simulate": ["simulate", "--to", "kafka", "-n", str(options.machines), "--duration", options.history,
                     "--interval", options.interval, "--start", HISTORY_START, "--seed", str(options.seed),
                     "--fleet-seed", str(options.seed),
                     "--degrading-fraction", str(options.history_degrading_fraction),
                     "--no-progress"],
        "etl_stream": ["etl", "stream", "--once", "--lake", str(lake)],
        "etl_build": ["etl", "build", "--lake", str(lake), "--out", str(training), "--horizon", options.horizon],
        "train": ["train", "--data", str(training), "--quick", "--seed", str(options.seed)],
        # The simulated fleet is small (a few dozen failures), so the per-type recall gap is noisy.
        "promote": ["promote", "--max-fairness-gap", "0.3"],
    }
    seconds = {}
    for name, args in steps.items():
        step_env = history_env if name in ("simulate", "etl_stream") else env
        seconds[name] = forewarn_cli(console, args, step_env, log)
    return seconds


def get_json(url: str, timeout_s: float = 2.0) -> Any:
    import httpx

    from forewarn.access import API_KEY_HEADER, DEV_ROLE_KEYS, Role  # the bench's services use development keys

    try:
        response = httpx.get(url, timeout=timeout_s, headers={API_KEY_HEADER: DEV_ROLE_KEYS[Role.VIEWER]})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return response.json()


def process_cpu_s(pid: int, with_children: bool) -> float:
    from forewarn.bench.timeline import tree_cpu_seconds

    try:
        return tree_cpu_seconds(psutil.Process(pid), alone=not with_children) or 0.0
    except psutil.NoSuchProcess:
        return 0.0


def champion_or_none(tracking_uri: str, name: str, alias: str) -> str | None:
    from forewarn.model_bundle import NoChampion, champion_version

    try:
        return champion_version(tracking_uri, name, alias)
    except NoChampion:
        return None


def retrain_records(state_dir: Path, model_name: str) -> list[dict[str, Any]]:
    from forewarn.retraining.record import audit_path, read_history

    return [r for r in read_history(audit_path(state_dir)) if r.get("model") == model_name]


# ---- the run -------------------------------------------------------------------------------------

def run_drift_bench(options: DriftBenchOptions, console: Console) -> dict[str, Any]:
    from forewarn.bench.e2e import delete_redis_keys
    from forewarn.stack.manager import LocalStack

    stack = LocalStack(report=lambda msg: console.print(f"[dim]stack[/dim] {msg}"))
    was_running = all(state.healthy for state in stack.status().values())
    stack.up()
    uid = uuid.uuid4().hex[:8]
    model_name = f"bench-drift-{uid}"
    workdir = (options.workdir / uid).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    history_prefix = f"bench-drift.{uid}.history."
    created = [history_prefix + t for t in topics.ALL]
    stack.ensure_topics(created, partitions=options.partitions, config=BENCH_TOPIC_CONFIG)
    base_env = {"FOREWARN_MLFLOW__MODEL_NAME": model_name, "FOREWARN_ASSET_CONFIG": "plant",
                "FOREWARN_LOG_LEVEL": "WARNING", "FOREWARN_KAFKA__TOPIC_PARTITIONS": str(options.partitions)}
    notes: list[str] = []
    try:
        console.print(f"training the first champion {model_name} through the real chain")
        train_s = train_first_champion(console, options, base_env, history_prefix, workdir)
        first_version = champion_or_none(stack.settings.mlflow.tracking_uri, model_name,
                                         stack.settings.mlflow.champion_alias)
        console.print(f"champion {model_name} version {first_version} ({train_s})")
        per_kind: dict[str, dict[str, Any]] = {}
        for kind in options.kinds:
            prefix = f"bench-drift.{uid}.{kind}."
            kind_topics = [prefix + t for t in topics.ALL]
            created += kind_topics
            stack.ensure_topics(kind_topics, partitions=options.partitions, config=BENCH_TOPIC_CONFIG)
            per_kind[kind] = _run_kind(kind, options, console, stack, uid, prefix, base_env, workdir)
            notes += [f"{kind}: {n}" for n in per_kind[kind].pop("notes")]
    finally:
        stack.delete_topics(created + [f"bench-drift-features-{uid}-{kind}-__assignor-__leader"
                                       for kind in options.kinds])
        delete_redis_keys(stack.settings.redis, f"bench-drift-{uid}")
        if not was_running:
            stack.down()
    headline = per_kind[options.kinds[0]] if len(options.kinds) == 1 else combine(per_kind)
    headline = {k: v for k, v in headline.items() if k != "windows"}
    return {
        **headline,
        "kinds": per_kind,
        "first_champion": {"model_name": model_name, "version": first_version, "train_chain_s": train_s},
        "options": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
                    "window_s": round(options.window_s, 3)},
        "targets": {"detected": True, "detection_delay_windows_max": 3, "false_alarm_windows": 0,
                    "clean_windows_min": 50, "monitor_to_pipeline_cpu_ratio_max": 0.05},
        "notes": notes,
    }


def _run_kind(kind: str, options: DriftBenchOptions, console: Console, stack: Any, uid: str, prefix: str,
              base_env: Mapping[str, str], workdir: Path) -> dict[str, Any]:
    from forewarn.assets import load_asset_config, parse_duration_ms
    from forewarn.localrun import LocalPipeline
    from forewarn.settings import ForewarnSettings
    from forewarn.sim.plant import PlantSimulator

    settings: ForewarnSettings = stack.settings
    kafka_settings = settings.kafka.model_copy(update={"topic_prefix": prefix,
                                                       "topic_partitions": options.partitions})
    live_start_ms = HISTORY_START_MS + parse_duration_ms(options.history)
    sim_options = live_sim_options(options, kind, live_start_ms)
    truth = PlantSimulator(load_asset_config("plant"), sim_options).drift_truth()
    assert truth is not None  # a drift was asked for
    notes: list[str] = []
    window_s = options.window_s
    sample_interval = options.sample_interval_s or window_s / SAMPLES_PER_WINDOW
    env = {
        **base_env,
        "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
        "FOREWARN_REDIS__KEY_PREFIX": f"bench-drift-{uid}-{kind}",
        "FOREWARN_FEATURES__APP_ID": f"bench-drift-features-{uid}-{kind}",
        "FOREWARN_FEATURES__DATADIR": str(workdir / kind / "features"),
        "FOREWARN_SCORER__GROUP_ID": f"bench-drift-scorer-{uid}-{kind}",
        "FOREWARN_MONITOR__GROUP_ID": f"bench-drift-monitor-{uid}-{kind}",
        "FOREWARN_MONITOR__WINDOW_S": str(window_s),
        "FOREWARN_MONITOR__SAMPLE_INTERVAL_S": str(sample_interval),
        "FOREWARN_MONITOR__HISTORY": "1000",
        "FOREWARN_MONITOR__RETRAIN": "true" if options.retrain else "false",
    }
    if options.min_rows is not None:
        env["FOREWARN_MONITOR__MIN_ROWS"] = str(options.min_rows)
    if options.retrain:
        env.update({
            "FOREWARN_RETRAIN__LAKE_DIR": str(workdir / "lake"),
            "FOREWARN_RETRAIN__CATCH_UP": "true",
            "FOREWARN_RETRAIN__QUICK": "true",
            "FOREWARN_RETRAIN__HORIZON": options.horizon,
            "FOREWARN_RETRAIN__COOLDOWN_S": "60",
            "FOREWARN_RETRAIN__WORKDIR": str(workdir / kind / "retrain"),
            "FOREWARN_RETRAIN__MAX_FAIRNESS_GAP": "0.3",
            "FOREWARN_RETRAIN__SEED": str(options.seed),
        })
    pipeline = LocalPipeline(env=env, log_dir=workdir / kind / "logs")
    windows: dict[tuple[Any, Any], dict[str, Any]] = {}
    started_at = time.time()
    try:
        ready = pipeline.start(("features", "scorer", "monitor"))
        console.print(f"[{kind}] services ready: {ready}; monitor window {window_s:.2f} s wall "
                      f"({options.window_event_s:.0f} s event), sample every {sample_interval:.2f} s")
        pids = {name: pipeline[name].proc.pid for name in ("features", "scorer", "monitor")}  # type: ignore[union-attr]
        cpu_start = {"features": process_cpu_s(pids["features"], True),
                     "scorer": process_cpu_s(pids["scorer"], True),
                     "monitor": process_cpu_s(pids["monitor"], False)}
        first_version = champion_or_none(settings.mlflow.tracking_uri, base_env["FOREWARN_MLFLOW__MODEL_NAME"],
                                         settings.mlflow.champion_alias)
        live = _play(kind, options, console, kafka_settings, sim_options, truth.onset_ms, pipeline, windows)
        # The last windows hold the last readings: let two more close.
        settle = time.monotonic() + 2.5 * window_s + 5
        while time.monotonic() < settle:
            _collect(pipeline["monitor"].url, windows)
            time.sleep(min(1.0, window_s / 2))
        cpu = {"features": process_cpu_s(pids["features"], True) - cpu_start["features"],
               "scorer": process_cpu_s(pids["scorer"], True) - cpu_start["scorer"],
               "monitor": process_cpu_s(pids["monitor"], False) - cpu_start["monitor"]}
        loop = _follow_retrain(options, console, settings, base_env["FOREWARN_MLFLOW__MODEL_NAME"], first_version,
                               pipeline, windows, live["onset_wall"], started_at, notes) if options.retrain else {
            "retrain_triggered": None, "retrain_decision": None, "promoted_version": None, "loop_seconds": None}
        if not options.retrain:
            notes.append("retraining not run (--no-retrain): retrain_triggered, promoted_version and loop_seconds "
                         "are null")
        _collect(pipeline["monitor"].url, windows)
    finally:
        pipeline.stop()
    scored = score_windows(windows.values(), machine_type=truth.machine_type, sensors=truth.sensors,
                           onset_ms=truth.onset_ms)
    readings = int(live["readings"])
    pipeline_cpu = cpu["features"] + cpu["scorer"]
    monitor_us = per_reading_us(cpu["monitor"], readings)
    pipeline_us = per_reading_us(pipeline_cpu, readings)
    if scored["clean_windows"] < options.clean_windows:
        notes.append(f"only {scored['clean_windows']} clean windows closed (asked for {options.clean_windows}): "
                     "the monitor's wall-clock windows and the paced simulator drift apart when the machine is busy")
    if scored["clean_windows_unjudged"]:
        notes.append(f"{scored['clean_windows_unjudged']} clean windows had too few sampled vectors of "
                     f"{truth.machine_type} to be judged (min_rows)")
    return {
        **scored,
        "truth": truth.as_dict(),
        "onset_ms": truth.onset_ms,
        **loop,
        "monitor_cpu_us_per_reading": monitor_us,
        "pipeline_cpu_us_per_reading": pipeline_us,
        "monitor_to_pipeline_cpu_ratio": cost_ratio(monitor_us, pipeline_us),
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "readings": readings,
        "live_wall_s": live["wall_s"],
        "windows_seen": len(windows),
        "windows": sorted(({"window": w.get("window"), "model_version": w.get("model_version"),
                            "window_start_ts": w.get("window_start_ts"), "window_end_ts": w.get("window_end_ts"),
                            "vectors_sampled": w.get("vectors_sampled"),
                            "rows": {t: d.get("rows") for t, d in (w.get("machine_types") or {}).items()},
                            "drift_types": active_drift_types(w),
                            "share": {t: d.get("share") for t, d in (w.get("machine_types") or {}).items()}}
                           for w in windows.values()), key=lambda w: int(w["window_end_ts"] or 0)),
        "notes": notes,
    }


def _collect(monitor_url: str, windows: dict[tuple[Any, Any], dict[str, Any]]) -> None:
    for window in get_json(f"{monitor_url}/v1/windows?limit=200") or []:
        windows[(window.get("model_version"), window.get("window"))] = window


def _play(kind: str, options: DriftBenchOptions, console: Console, kafka_settings: Any, sim_options: Any,
          onset_ms: int, pipeline: Any, windows: dict[tuple[Any, Any], dict[str, Any]]) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    sent, onset_wall, done = spawn.Value("q", 0), spawn.Value("d", 0.0), spawn.Value("i", 0)
    load = spawn.Process(target=produce_live, args=(
        kafka_settings.model_dump(), kafka_settings.topic(topics.SENSOR_READINGS),
        kafka_settings.topic(topics.GROUND_TRUTH), sim_options, options.speedup, onset_ms, sent, onset_wall, done),
        daemon=True)
    total = options.clean_windows + options.drift_windows
    console.print(f"[{kind}] playing {options.machines} machines for {total} windows "
                  f"({total * options.window_s:.0f} s wall), drift at window {options.clean_windows}")
    began = time.monotonic()
    load.start()
    last_report = began
    while load.is_alive():
        time.sleep(min(1.0, options.window_s / 2))
        _collect(pipeline["monitor"].url, windows)
        for name in ("features", "scorer", "monitor"):
            if not pipeline[name].alive():
                load.kill()
                raise RuntimeError(f"{name} died during the run; see {pipeline[name].log_path}")
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            drifting = sum(1 for w in windows.values() if active_drift_types(w))
            console.print(f"[{kind}] {time.monotonic() - began:.0f} s: {sent.value:,} readings, "
                          f"{len(windows)} windows, {drifting} with drift")
    load.join()
    if not done.value:
        raise RuntimeError(f"the load process failed (exit {load.exitcode})")
    return {"readings": sent.value, "onset_wall": onset_wall.value or None,
            "wall_s": round(time.monotonic() - began, 1)}


def _follow_retrain(options: DriftBenchOptions, console: Console, settings: Any, model_name: str,
                    first_version: str | None, pipeline: Any, windows: dict[tuple[Any, Any], dict[str, Any]],
                    onset_wall: float | None, started_at: float, notes: list[str]) -> dict[str, Any]:
    """Wait (bounded) for the monitor's trigger, the retraining's decision and the scorer serving the result."""
    from forewarn.stack.config import StackSettings

    state_dir = StackSettings().state_dir
    deadline = time.monotonic() + options.retrain_timeout_s
    triggered = False
    decision: str | None = None
    promoted: str | None = None
    served_at: float | None = None
    console.print(f"following the retraining (at most {options.retrain_timeout_s:.0f} s)")
    while time.monotonic() < deadline:
        _collect(pipeline["monitor"].url, windows)
        triggered = triggered or any((w.get("retrain") or {}).get("retrain") for w in windows.values())
        records = [r for r in retrain_records(state_dir, model_name) if str(r.get("started_at", "")) >=
                   time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started_at))]
        triggered = triggered or bool(records)
        finished = [r for r in records if r.get("decision")]
        if finished:
            decision = str(finished[0]["decision"])
        version = champion_or_none(settings.mlflow.tracking_uri, model_name, settings.mlflow.champion_alias)
        if version is not None and version != first_version:
            promoted = version
            ready = get_json(f"{pipeline['scorer'].url}/readyz")
            if ready is not None and f"version {version}" in str(ready):
                served_at = time.time()
                break
        elif decision is not None and decision != "promoted":
            break
        time.sleep(2.0)
    if not triggered:
        notes.append(f"the monitor did not trigger a retraining within {options.retrain_timeout_s:.0f} s after "
                     "the load ended")
    elif served_at is None:
        notes.append(f"retraining reached decision={decision!r}, promoted_version={promoted!r}, but no new champion "
                     f"was served by the scorer within {options.retrain_timeout_s:.0f} s after the load ended")
    loop = round(served_at - onset_wall, 1) if served_at is not None and onset_wall else None
    return {"retrain_triggered": triggered, "retrain_decision": decision, "promoted_version": promoted,
            "loop_seconds": loop}
