"""The alerter against real Kafka, Redis and local Slack / PagerDuty / webhook receivers: one page and one
resolve per incident through flapping, failures and restarts (including kill -9 of the real process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from forewarn import kafka, topics
from forewarn.schemas import Contribution, RiskScore
from forewarn.services.alerter.adapters.redis_store import RedisAlertStore
from forewarn.services.alerter.bootstrap import Alerter, bootstrap
from forewarn.services.alerter.settings import AlerterSettings
from forewarn.settings import RedisSettings
from receivers import Fault, PagerDutyReceiver, SlackReceiver, WebhookReceiver

pytestmark = pytest.mark.timeout(60)

POLICY = """
defaults:
  enter_p: 0.8
  exit_p: 0.5
  min_consecutive: 3
  resolve_after_low: 3
  cooldown: 20s
  escalate_after: 1h
  routes:
    trigger: [pagerduty, slack, webhook]
    escalate: [slack]
    acknowledge: [pagerduty, slack]
    resolve: [pagerduty, slack, webhook]
machine_types:
  turbofan: {enter_p: null, rul_enter: 30, rul_exit: 50, min_consecutive: 2}
  fast: {escalate_after: 3s}
"""
T0 = 1_767_225_600_000
FLAPPING = [0.3, 0.82, 0.4, 0.85, 0.6, 0.81, 0.83, 0.9, 0.79, 0.88, 0.52, 0.91, 0.7, 0.49, 0.93, 0.45, 0.48,
            0.6, 0.44, 0.42, 0.3, 0.55, 0.2, 0.1, 0.1, 0.1, 0.85, 0.1, 0.86, 0.87, 0.1]
INCIDENT = [0.2, 0.9, 0.92, 0.95, 0.97, 0.6, 0.3, 0.2, 0.1]  # one trigger (3rd high), one resolve (3rd low)


# ---- harness (shared with test_alerter_api.py by import) -----------------------------------------


class Env:
    """Topics with a random prefix, a random Redis prefix, the three receivers and a score producer."""

    def __init__(self, stack: Any, uid: str, policy_path: Path) -> None:
        from confluent_kafka.admin import NewTopic

        self.uid = uid
        self.slack, self.pd, self.hook = SlackReceiver().start(), PagerDutyReceiver().start(), WebhookReceiver().start()
        base = stack.settings
        self.kafka = base.kafka.model_copy(update={"topic_prefix": f"test.{uid}.", "topic_partitions": 2})
        self.redis = RedisSettings(url=base.redis.url, key_prefix=f"test:{uid}")
        self.policy_path = policy_path
        names = [self.kafka.topic(t) for t in (topics.RISK_SCORES, topics.ALERTS, topics.ALERTS_DLQ, topics.FEEDBACK,
                                               topics.MODEL_HEALTH)]
        self.topic_names = names
        self.admin = kafka.admin(self.kafka)  # keep a reference: the futures fail if the client is collected
        futures = self.admin.create_topics([NewTopic(n, 2, 1) for n in names])
        for future in futures.values():
            future.result(30)
        kafka.wait_for_topics(self.kafka, names)
        self.producer = kafka.producer(self.kafka)

    def options(self, **overrides: Any) -> dict[str, Any]:
        return {
            "slack_webhook_url": self.slack.url, "pagerduty_routing_key": "R" * 32, "pagerduty_url": self.pd.url,
            "webhook_url": self.hook.url, "policy": str(self.policy_path), "consumer_group": f"alerter-{self.uid}",
            "poll_timeout_s": 0.2, "tick_interval_s": 0.2, "sweep_interval_s": 1.0, "session_timeout_ms": 6000,
            "delivery_backoff_s": 0.05, "delivery_backoff_max_s": 0.5, "delivery_max_attempts": 3,
            "notifier_timeout_s": 2.0, "shutdown_drain_s": 0.0, **overrides,
        }

    def settings(self, **overrides: Any) -> AlerterSettings:
        return AlerterSettings(kafka=self.kafka, redis=self.redis, alerter=self.options(**overrides))

    def environ(self, **overrides: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
        env.update({
            "FOREWARN_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "FOREWARN_KAFKA__TOPIC_PREFIX": self.kafka.topic_prefix,
            "FOREWARN_REDIS__URL": self.redis.url, "FOREWARN_REDIS__KEY_PREFIX": self.redis.key_prefix,
        })
        env.update({f"FOREWARN_ALERTER__{k.upper()}": str(v) for k, v in self.options(**overrides).items()})
        return env

    def produce(self, series: dict[str, list[Any]], machine_type: str = "pump", start: int = 0) -> None:
        """Interleave machines; step i of every machine has event time T0 + (start + i) seconds. A value is
        p_failure, or (p_failure, rul)."""
        for i in range(max(len(v) for v in series.values())):
            for machine, values in series.items():
                if i >= len(values):
                    continue
                p, rul = values[i] if isinstance(values[i], tuple) else (values[i], None)
                score = RiskScore(
                    machine_id=machine, machine_type=machine_type, ts=T0 + (start + i) * 1000, p_failure=p,
                    rul=rul, horizon="24h", model_name="forewarn-failure", model_version="3", site="plant-north",
                    top_contributors=[Contribution(feature="vibration_mean_10m", sensor="vibration", value=7.3,
                                                   contribution=0.4)],
                )
                self.producer.produce(self.kafka.topic(topics.RISK_SCORES), key=machine,
                                      value=score.model_dump_json())
        assert self.producer.flush(30) == 0

    def read(self, topic: str, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0,
             settle_s: float = 0.0) -> list[dict[str, Any]]:
        consumer = kafka.consumer(self.kafka, f"reader-{self.uid}-{time.monotonic_ns()}")
        consumer.subscribe([self.kafka.topic(topic)])
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(records):
                records += [json.loads(m.value()) for m in consumer.consume(500, 0.2) if m.error() is None]
            settle = time.monotonic() + settle_s
            while time.monotonic() < settle:  # anything extra that would arrive late (duplicates)?
                records += [json.loads(m.value()) for m in consumer.consume(500, 0.2) if m.error() is None]
        finally:
            consumer.close()
        return records

    def close(self) -> None:
        for receiver in (self.slack, self.pd, self.hook):
            receiver.stop()
        client = redis.Redis.from_url(self.redis.url)
        for key in client.scan_iter(match=f"{self.redis.key_prefix}:*", count=1000):
            client.delete(key)
        client.close()
        self.admin.delete_topics(self.topic_names, operation_timeout=10)


class Running:
    """An alerter's score loop on a thread, as run() does on the main thread."""

    def __init__(self, alerter: Alerter) -> None:
        self.alerter = alerter
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.alerter.run_loop(self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.alerter.loop.assigned:
            assert time.monotonic() < deadline, "no partitions assigned"
            assert self.error is None, self.error
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until every notification decided so far has finished."""
        deadline = time.monotonic() + timeout
        while not (self.alerter.dispatcher.idle() and not self.alerter.store.pending_deliveries()):
            assert time.monotonic() < deadline, "deliveries did not finish"
            time.sleep(0.05)


@pytest.fixture
def env(stack: Any, uid: str, tmp_path: Path) -> Iterator[Env]:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    environment = Env(stack, uid, path)
    yield environment
    environment.close()


def count(events: list[dict[str, Any]], action: str) -> int:
    return sum(1 for e in events if e["event_action"] == action)


# ---- tests ---------------------------------------------------------------------------------------


def test_flapping_scores_page_once_and_resolve_once_per_incident(env: Env) -> None:
    quiet = [0.1] * 25  # longer than the 20 s cooldown
    env.produce({
        "m-flap": FLAPPING,
        "m-two": INCIDENT + quiet + INCIDENT,
        "m-calm": [0.3, 0.85, 0.4, 0.9, 0.2, 0.85, 0.85, 0.3, 0.7, 0.79],
    })
    env.produce({"m-rul": [(0.1, 80), (0.1, 40), (0.1, 29), (0.1, 20), (0.1, 45), (0.1, 60), (0.1, 70), (0.1, 90)]},
                machine_type="turbofan")
    alerter = bootstrap(env.settings())
    with Running(alerter) as running:
        assert env.pd.wait_for(lambda events: count(events, "resolve") >= 4), env.pd.incidents()
        running.settle()
        alert_events = env.read(topics.ALERTS, until=lambda r: len(r) >= 8, settle_s=1.0)

    incidents = env.pd.incidents()
    assert sorted(incidents.values()) == [["trigger", "resolve"]] * 4, incidents
    by_machine = sorted(key.split(":")[1] for key in incidents)
    assert by_machine == ["m-flap", "m-rul", "m-two", "m-two"]
    assert env.pd.rejected == [] and env.slack.rejected == [] and env.hook.rejected == []

    # Slack: one message per trigger and resolve, with the fields an on-call engineer needs
    assert len(env.slack.accepted) == 8
    for message in env.slack.accepted:
        text = json.dumps(message)
        assert all(field in text for field in ("*Machine*", "*Site*", "plant-north", "*Risk*", "*Lead time / RUL*",
                                               "Top sensor evidence", "vibration", "*Alert id*"))
    alert_ids = {e["payload"]["custom_details"]["alert_id"] for e in env.pd.events("trigger")}
    assert {json.dumps(m).split("*Alert id*\\n`")[1].split("`")[0] for m in env.slack.accepted} == alert_ids
    assert any("RUL" in json.dumps(m) for m in env.slack.accepted)

    # the alerts topic: every state change once, with ids, dedup key, machine, state, reason, evidence
    assert sorted((e["machine_id"], e["action"]) for e in alert_events) == sorted(
        [(m, a) for m in ("m-flap", "m-rul", "m-two", "m-two") for a in ("trigger", "resolve")])
    assert len({e["event_id"] for e in alert_events}) == 8
    assert {e["alert_id"] for e in alert_events} == alert_ids
    sample = next(e for e in alert_events if e["action"] == "trigger")
    assert sample["state"] == "triggered" and sample["reason"] and sample["evidence"][0]["sensor"] == "vibration"
    assert sample["dedup_key"] == f"{sample['machine_id']}:any" and sample["emitted_at"] > 0
    assert len(env.hook.accepted) == 8


def test_failing_receiver_retries_then_dead_letters_without_stalling_others(env: Env) -> None:
    env.pd.fault = Fault(status=500, when=lambda body: ":m-bad:" in body.get("dedup_key", ""))
    env.slack.fault = Fault(delay_s=3.0, when=lambda body: "m-slow" in json.dumps(body))
    machines = ["m-bad", "m-slow", "m-ok1", "m-ok2", "m-ok3"]
    alerter = bootstrap(env.settings(notifier_timeout_s=0.5, delivery_backoff_s=0.3, delivery_backoff_max_s=2))
    with Running(alerter) as running:
        produced = time.monotonic()
        env.produce({m: INCIDENT[:5] for m in machines})  # triggers only
        assert env.pd.wait_for(lambda events: count(events, "trigger") == 4, timeout=10)
        ok_pages_at = time.monotonic() - produced
        dead = env.read(topics.ALERTS_DLQ, until=lambda r: len(r) >= 2, timeout=20)
        running.settle()

    # PagerDuty: the broken incident was tried exactly max_attempts times, then dead-lettered...
    bad_attempts = [r for r in env.pd.requests if ":m-bad:" in r.body["dedup_key"]]
    assert [r.status for r in bad_attempts] == [500, 500, 500]
    letters = {(d["notifier"], d["event"]["machine_id"]): d for d in dead}
    assert set(letters) == {("pagerduty", "m-bad"), ("slack", "m-slow")}
    assert letters[("pagerduty", "m-bad")]["attempts"] == 3 and "HTTP 500" in letters[("pagerduty", "m-bad")]["error"]
    assert "timed out" in letters[("slack", "m-slow")]["error"]
    # ...while every other page went out at once, before the broken one had finished retrying
    assert sorted(e["payload"]["source"] for e in env.pd.events("trigger")) == ["m-ok1", "m-ok2", "m-ok3", "m-slow"]
    assert ok_pages_at < bad_attempts[-1].at - produced
    slack_machines = sorted(m["text"].split(": ")[1].split(" ")[0]
                            for m in env.slack.accepted if "m-slow" not in m["text"])
    assert slack_machines == ["m-bad", "m-ok1", "m-ok2", "m-ok3"]


class Crash(BaseException):
    """Stands in for kill -9: not an Exception, so nothing in the loop catches it."""


class CrashingConsumer:
    """The real consumer, except that it dies at the commit of the batch that completes ``after`` messages:
    that batch's state and outputs are durable in Redis, its offsets are not committed."""

    def __init__(self, inner: Any, after: int) -> None:
        self.inner, self.after, self.consumed = inner, after, 0

    def consume(self, *args: Any, **kwargs: Any) -> Any:
        messages = self.inner.consume(*args, **kwargs)
        self.consumed += len(messages)
        return messages

    def poll(self, *args: Any, **kwargs: Any) -> Any:  # the loop's first message after an idle wait
        message = self.inner.poll(*args, **kwargs)
        self.consumed += message is not None
        return message

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        if self.consumed >= self.after:
            raise Crash
        return self.inner.commit(*args, **kwargs)

    def close(self) -> None:
        pass  # a dead process closes nothing; the test closes the real consumer, without a commit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_restart_after_a_crash_before_commit_neither_duplicates_nor_loses(env: Env) -> None:
    first = {"m-a": INCIDENT[:6], "m-b": INCIDENT[:6], "m-c": [0.9, 0.9]}
    second = {"m-a": INCIDENT[6:], "m-b": INCIDENT[6:], "m-c": [0.9, 0.6, 0.2, 0.2, 0.2], "m-d": INCIDENT}
    env.produce(first)
    settings = env.settings()
    # PagerDuty is down during the first life: its pages are still in the outbox when the process dies.
    env.pd.fault = Fault(status=503)
    raw = kafka.consumer(settings.kafka, settings.alerter.consumer_group)
    crashing = bootstrap(settings, consumer=CrashingConsumer(raw, after=sum(map(len, first.values()))))
    running = Running(crashing)
    with pytest.raises(Crash):
        with running:
            running.thread.join(20)
            if running.error is not None:
                raise running.error
    raw.close()
    assert env.pd.events() == []
    assert crashing.store.pending_deliveries()  # PagerDuty's pages (at least) wait in the outbox

    env.pd.fault = None
    skipped_before = REGISTRY.get_sample_value("forewarn_alerter_scores_total", {"outcome": "duplicate"}) or 0
    env.produce(second, start=len(INCIDENT[:6]))
    with Running(bootstrap(settings)) as running:
        assert env.pd.wait_for(lambda events: count(events, "resolve") == 4, timeout=20)
        running.settle()
        alert_events = env.read(topics.ALERTS, until=lambda r: len(r) >= 8, settle_s=1.0)

    assert sorted(env.pd.incidents().values()) == [["trigger", "resolve"]] * 4
    assert sorted(k.split(":")[1] for k in env.pd.incidents()) == ["m-a", "m-b", "m-c", "m-d"]
    assert len(env.slack.accepted) == 8  # whatever went out before the crash was not sent again
    # the uncommitted batch really was consumed again, and recognised as already applied
    skipped = REGISTRY.get_sample_value("forewarn_alerter_scores_total", {"outcome": "duplicate"}) or 0
    assert skipped - skipped_before > 0
    assert sorted((e["machine_id"], e["action"]) for e in alert_events) == sorted(
        (m, a) for m in ("m-a", "m-b", "m-c", "m-d") for a in ("trigger", "resolve"))


def _wait_ready(port: int, process: subprocess.Popen, log: Path, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("alerter did not become ready")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_kill_9_and_restart_of_forewarn_run_alerter_pages_exactly_once(env: Env, tmp_path: Path) -> None:
    port = _free_port()
    environ = env.environ(port=port, host="127.0.0.1")
    command = [sys.executable, "-m", "forewarn.cli", "run", "alerter"]
    machines = ["k1", "k2", "k3"]

    log = tmp_path / "alerter.log"

    def start() -> subprocess.Popen:
        with log.open("ab") as sink:
            process = subprocess.Popen(command, env=environ, stdout=sink, stderr=subprocess.STDOUT)
        _wait_ready(port, process, log)
        return process

    process = start()
    try:
        env.produce({m: INCIDENT[:5] for m in machines})
        assert env.pd.wait_for(lambda events: count(events, "trigger") == 3, timeout=15)
        # Between a notifier's answer and the 'done' marker there is an unavoidable instant where a kill
        # means a resend (PagerDuty's dedup key absorbs it; pages() checks that below). Kill outside it, in
        # the middle of the stream, so the wire-level counts can be exact.
        store = RedisAlertStore(redis.Redis.from_url(env.redis.url, decode_responses=True), env.redis.key_prefix,
                           alert_retention_s=60, done_marker_ttl_s=60)
        deadline = time.monotonic() + 10
        while store.pending_deliveries():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        env.produce({m: INCIDENT[5:7] for m in machines}, start=5)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = start()
        env.produce({m: INCIDENT[7:] for m in machines}, start=7)
        assert env.pd.wait_for(lambda events: count(events, "resolve") == 3, timeout=25)
        # Slack has its own delivery pool: its last resolve may still be on the way when PagerDuty's is in.
        assert env.slack.wait_for(lambda events: len(events) == 6, timeout=25)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()

    assert sorted(env.pd.incidents().values()) == [["trigger", "resolve"]] * 3
    assert list(env.pd.pages().values()) == [1, 1, 1]
    assert len(env.slack.accepted) == 6
    # SIGTERM committed everything it had applied
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(env.kafka, environ["FOREWARN_ALERTER__CONSUMER_GROUP"])
    try:
        topic = env.kafka.topic(topics.RISK_SCORES)
        committed = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
        ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)]
        assert [c.offset if c.offset >= 0 else 0 for c in committed] == ends
    finally:
        consumer.close()
