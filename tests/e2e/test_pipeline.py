"""The whole streaming path on the real stack: simulated plant -> ingest -> features -> scorer -> alerter
-> Slack / PagerDuty receivers that check the documented payloads.

The model is trained in the fixture on simulated history, with the shared feature module (the training
pipeline has its own tests): what is under test here is that the four services together alert the
degrading machines before they fail, leave the healthy ones alone, and page once per incident.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from tests.receivers import PagerDutyReceiver, SlackReceiver

from forewarn import kafka, topics
from forewarn.assets import load_asset_config
from forewarn.features import FEATURE_SET_VERSION, compute_frame, feature_names

HORIZON_MS = 12 * 3600 * 1000
HISTORY_START = "2026-01-01T00:00:00Z"
# Machine-level columns that say how long a machine has run (cumulative counters) and each sensor's own
# baseline level: on a few dozen simulated machines the model learns "this particular machine (its
# baseline) at this age failed" from them, which flags healthy machines that happen to look alike.
# Deviations from the baseline (``*__delta_baseline``) and the windows carry what degradation does.
IDENTITY_FEATURES = ("readings_since_reset", "late_dropped", "duplicates")
TRAIN_EVERY = 2  # consecutive 1-minute rows are near-duplicates: every other one trains as well, twice as fast


def _simulate(out: Path, machines: int, duration: str, seed: int, start: str, degrading_fraction: float,
              maintenance_every: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from forewarn.sim.commands import run_simulation
    from forewarn.sim.outputs import OutputSpec

    run_simulation(OutputSpec(to="parquet", out=out), machines=machines, config="plant", duration=duration,
                   start=start, interval="1m", seed=seed, degrading_fraction=degrading_fraction,
                   maintenance_every=maintenance_every, rates=(0.0005, 0.001, 0.001, 0.0), rate=None,
                   speedup=None, progress=False)
    return pd.read_parquet(out / "readings"), pd.read_parquet(out / "ground_truth")


def _model_features(names: list[str]) -> list[str]:
    return [n for n in names if n not in IDENTITY_FEATURES and not n.endswith("__baseline")]


def _training_set(readings: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Features as the stream computes them, reset at every repair or maintenance as the ETL does (a
    serviced machine runs at a new operating point); label 1 when the machine's next failure comes within
    the horizon. Rows whose horizon runs past the end of the history with no failure seen are censored:
    dropped, not called healthy (the machine may be hours from failing)."""
    from forewarn.etl.labels import reset_rows

    config = load_asset_config("plant")
    names = sorted({n for t in config.machine_types.values() for n in feature_names(t)})
    failures = truth[truth.kind == "failure"].groupby("machine_id").ts.apply(np.sort).to_dict()
    services = truth[truth.kind == "maintenance"].groupby("machine_id").ts.apply(np.sort).to_dict()
    never = np.iinfo(np.int64).max
    end = int(readings.ts.max())
    frames, labels = [], []
    for machine_type, group in readings.sort_values(["machine_id", "ts"]).groupby("machine_type", observed=True):
        spec = config.machine_type(machine_type)
        group = group.reset_index(drop=True)
        ts = group.ts.to_numpy(dtype=np.int64)
        rows_of = group.groupby("machine_id", observed=True).indices
        resets = np.zeros(len(group), dtype=bool)
        for machine_id, rows in rows_of.items():
            resets[rows] = reset_rows(ts[rows], services.get(machine_id, np.zeros(0, dtype=np.int64)))
        features = compute_frame(group[["machine_id", "ts", *spec.sensor_names]].assign(reset=resets), spec,
                                 config.allowed_lateness_ms, reset_col="reset")
        label = np.zeros(len(group), dtype=int)
        for machine_id, rows in rows_of.items():
            upcoming = failures.get(machine_id, np.zeros(0, dtype=np.int64))
            following = np.searchsorted(upcoming, ts[rows], side="right")
            nxt = np.where(following < len(upcoming), upcoming[np.minimum(following, len(upcoming) - 1)]
                           if len(upcoming) else never, never)
            label[rows] = (nxt - ts[rows] <= HORIZON_MS).astype(int)
        observed = (label == 1) | (ts + HORIZON_MS <= end)
        keep = features.pop("accepted").to_numpy() & observed & (np.arange(len(group)) % TRAIN_EVERY == 0)
        frames.append(features.reindex(columns=names)[keep])
        labels.append(label[keep])
    chosen = _model_features(names)
    return pd.concat(frames, ignore_index=True)[chosen], np.concatenate(labels), chosen


@pytest.fixture(scope="module")
def champion(stack, tmp_path_factory) -> str:
    import lightgbm as lgb
    import mlflow
    from mlflow import MlflowClient

    from forewarn.model_bundle import log_bundle

    # Run-to-failure history: with scheduled maintenance every few days most degradations are repaired
    # before they fail, and modes that fail rarely (seal and air leaks, misalignment) leave no failure to
    # learn from. 60 machines x 6 days fail ~75 times, every mode of every type several times.
    readings, truth = _simulate(tmp_path_factory.mktemp("history"), 60, "6d", 3, HISTORY_START,
                                degrading_fraction=0.9, maintenance_every="off")
    features, labels, names = _training_set(readings, truth)
    # Leaves of >= 300 rows (10 h of one machine): a leaf has to hold across machines, not one trajectory.
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 2, "seed": 1, "deterministic": True,
                         "num_leaves": 31, "learning_rate": 0.05, "min_data_in_leaf": 300},
                        lgb.Dataset(features, labels, feature_name=names), num_boost_round=150)
    name = f"e2e-{time.time_ns()}"
    mlflow.set_tracking_uri(stack.settings.mlflow.tracking_uri)
    mlflow.set_experiment("e2e")
    with mlflow.start_run():
        version = log_bundle(booster, registered_name=name, horizon="12h", feature_set_version=FEATURE_SET_VERSION)
    MlflowClient(stack.settings.mlflow.tracking_uri).set_registered_model_alias(name, "champion", version)
    return name


def _read(settings, topic: str) -> list[dict]:
    return [orjson.loads(m.value()) for m in kafka.read_all(settings, topic)]


def test_degrading_machines_alerted_before_failure_healthy_ones_not_once_per_incident(
    stack, champion, uid, tmp_path
) -> None:
    from forewarn.localrun import LocalPipeline
    from forewarn.sim.commands import run_simulation
    from forewarn.sim.outputs import OutputSpec

    prefix = f"e2e.{uid}."
    stack.ensure_topics([prefix + t for t in topics.ALL])
    kafka_settings = stack.settings.kafka.model_copy(update={"topic_prefix": prefix})
    slack, pagerduty = SlackReceiver().start(), PagerDutyReceiver().start()
    env = {
        "FOREWARN_KAFKA__TOPIC_PREFIX": prefix,
        "FOREWARN_REDIS__KEY_PREFIX": f"e2e-{uid}",
        "FOREWARN_MLFLOW__MODEL_NAME": champion,
        "FOREWARN_FEATURES__APP_ID": f"e2e-features-{uid}",
        "FOREWARN_SCORER__GROUP_ID": f"e2e-scorer-{uid}",
        "FOREWARN_ALERTER__CONSUMER_GROUP": f"e2e-alerter-{uid}",
        "FOREWARN_ALERTER__SLACK_WEBHOOK_URL": slack.url,
        "FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY": "e2e-routing-key-0000000000000000",
        "FOREWARN_ALERTER__PAGERDUTY_URL": pagerduty.url,
        "FOREWARN_LOG_LEVEL": "WARNING",
    }
    pipeline = LocalPipeline(env=env, log_dir=tmp_path / "logs")
    try:
        pipeline.start()
        from forewarn.settings import ForewarnSettings

        stats = run_simulation(
            OutputSpec(to="http", url=f"{pipeline['ingest'].url}/v1/readings", api_key="forewarn-dev-key",
                       truth="kafka"),
            machines=12, config="plant", duration="3d", start="2026-02-01T00:00:00Z", interval="1m", seed=11,
            degrading_fraction=0.6, maintenance_every="off", rates=(0.0005, 0.001, 0.001, 0.0), rate=None,
            speedup=None, progress=False, settings=ForewarnSettings(kafka=kafka_settings),
        )
        sent = stats.readings if hasattr(stats, "readings") else None
        # Wait until the scores stop growing: every accepted reading has gone through the pipeline.
        deadline = time.monotonic() + 300
        scored, steady = 0, 0
        while time.monotonic() < deadline and steady < 3:
            time.sleep(3)
            now = kafka.count_readings(kafka_settings, kafka_settings.topic(topics.RISK_SCORES))
            steady = steady + 1 if now == scored and now > 0 else 0
            scored = now
        time.sleep(10)  # the alerter's last batch and deliveries
        alerts = _read(kafka_settings, kafka_settings.topic(topics.ALERTS))
        truth = _read(kafka_settings, kafka_settings.topic(topics.GROUND_TRUTH))
    finally:
        pipeline.stop()
        slack.stop()
        pagerduty.stop()
    assert scored > 0, f"nothing was scored (sent {sent})"

    failures = {}
    for event in truth:
        if event["kind"] == "failure":
            failures.setdefault(event["machine_id"], []).append(event["ts"])
    touched = {e["machine_id"] for e in truth if e["kind"] in ("failure", "degradation_start")}
    machines = {f"{t}-{i:03d}" for i, t in enumerate(["pump", "compressor", "cnc_spindle"] * 4, start=1)}
    healthy = machines - touched
    triggers = [a for a in alerts if a["state"] == "triggered"]
    lead_hours: dict[str, float | None] = {}
    for machine_id, fail_times in failures.items():
        first_failure = min(fail_times)
        before = [a["ts"] for a in triggers if a["machine_id"] == machine_id and a["ts"] <= first_failure]
        lead_hours[machine_id] = round((first_failure - min(before)) / 3_600_000, 1) if before else None
    false_alarms = sorted({a["machine_id"] for a in triggers if a["machine_id"] in healthy})
    print(f"\nfailing machines and lead time of their first alert (hours; None = missed): {lead_hours}")
    print(f"healthy machines: {sorted(healthy)}; alerted: {false_alarms}")
    assert failures, "the live run had no failure to predict (choose another seed)"
    assert false_alarms == [], "a healthy machine was alerted"
    missed = sorted(m for m, lead in lead_hours.items() if lead is None)
    assert not missed, f"{len(missed)} of {len(failures)} failing machines not alerted before failure: {missed}"
    # PagerDuty: per incident exactly one trigger, and one resolve once it is over, however scores flapped.
    from collections import Counter

    sent_triggers = Counter(e["dedup_key"] for e in pagerduty.events("trigger"))
    sent_resolves = Counter(e["dedup_key"] for e in pagerduty.events("resolve"))
    incidents = pagerduty.pages()
    assert incidents, "no incident was paged"
    for key, opened in incidents.items():
        assert sent_triggers[key] == opened, f"{key}: {sent_triggers[key]} triggers for {opened} incidents"
        assert sent_resolves[key] in (opened - 1, opened), f"{key}: {sent_resolves[key]} resolves, {opened} incidents"
    print(f"incidents: {dict(incidents)}, resolves: {dict(sent_resolves)}")
    assert not slack.rejected and not pagerduty.rejected
