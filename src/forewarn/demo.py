"""``forewarn demo``: the main job, from a fresh clone, with embedded defaults.

1. start the local stack (Kafka, Redis, MLflow);
2. simulate a plant's history into Kafka (its own topic prefix, so the live services never see it),
   stream it into the lake with Spark, build the training set, train and promote a first model;
3. start the four services and a local Slack- and PagerDuty-compatible receiver;
4. run the live simulator through the ingest API, with some machines degrading, and show a live table of
   machines by risk and the alerts as they are sent.

Every step is the same ``forewarn`` command a user would type; the demo only strings them together.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from forewarn import kafka, scores_wire, topics
from forewarn.errors import UserError
from forewarn.stack.process import free_port, port_in_use

HISTORY_PREFIX = "history."


@dataclass
class DemoOptions:
    machines: int = 40
    history: str = "10d"
    history_interval: str = "2m"
    live_duration: str = "2d"
    live_interval: str = "2m"
    speedup: float = 1200.0
    horizon: str = "12h"
    seed: int = 7
    workdir: Path = Path(".forewarn/demo")
    retrain: bool = False
    drift: str | None = None  # a simulator drift kind injected into the live run (forewarn.sim.drift)
    drift_at: str = "1d"  # event time into the live run


class AlertReceiver:
    """A local stand-in for Slack's incoming webhook and PagerDuty's Events API v2: logs what arrives."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.messages: deque[str] = deque(maxlen=8)
        self.count = {"slack": 0, "pagerduty": 0, "slack-data-science": 0}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = ("pagerduty" if self.path.startswith("/pagerduty") else
                        "slack-data-science" if self.path.startswith("/slack-data-science") else "slack")
                receiver.record(kind, body)
                reply = b'{"status":"success","message":"Event processed","dedup_key":"demo"}' \
                    if kind == "pagerduty" else b"ok"
                self.send_response(202 if kind == "pagerduty" else 200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, kind: str, body: bytes) -> None:
        self.count[kind] += 1
        with self.log_path.open("ab") as log:
            log.write(orjson.dumps({"to": kind, "at": time.strftime("%H:%M:%S"), "body": orjson.loads(body)}) + b"\n")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if kind.startswith("slack"):
            self.messages.append(f"[{kind}] {payload.get('text', '')[:110]}")
        else:
            summary = (payload.get("payload") or {}).get("summary", "")
            self.messages.append(f"[pagerduty {payload.get('event_action')}] {summary[:100]}")

    def start(self) -> AlertReceiver:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()


def _forewarn(console: Console, title: str, *args: str, env: dict[str, str] | None = None) -> None:
    console.rule(f"[bold]{title}")
    console.print(f"[dim]$ forewarn {' '.join(args)}[/dim]")
    result = subprocess.run([sys.executable, "-m", "forewarn.cli", *args], env={**os.environ, **(env or {})},
                            check=False)
    if result.returncode != 0:
        raise UserError(f"'forewarn {' '.join(args)}' failed (exit {result.returncode}); see its output above")


def train_first_model(console: Console, options: DemoOptions) -> None:
    work = options.workdir
    history_env = {"FOREWARN_KAFKA__TOPIC_PREFIX": HISTORY_PREFIX}
    from forewarn.stack.manager import LocalStack

    LocalStack().ensure_topics([HISTORY_PREFIX + t for t in topics.ALL])
    _forewarn(console, "1/5 simulate the plant's history into Kafka", "simulate", "--to", "kafka",
              "-n", str(options.machines), "--duration", options.history, "--interval", options.history_interval,
              "--seed", str(options.seed), "--degrading-fraction", "0.6", env=history_env)
    _forewarn(console, "2/5 stream it into the data lake (Spark Structured Streaming)", "etl", "stream", "--once",
              "--lake", str(work / "lake"), env=history_env)
    _forewarn(console, "3/5 build the training set (Spark, same feature code as the stream)", "etl", "build",
              "--lake", str(work / "lake"), "--out", str(work / "training"), "--horizon", options.horizon)
    _forewarn(console, "4/5 train (LightGBM, grouped time-aware CV, MLflow)", "train", "--data",
              str(work / "training"), "--quick", "--seed", str(options.seed))
    # The simulated fleet is small (a few dozen failures), so the per-type recall gap is noisy: a looser gate.
    _forewarn(console, "5/5 promote the model to champion (gates)", "promote", "--max-fairness-gap", "0.3")


@dataclass
class LiveView:
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    scores: int = 0
    health: str = "(the monitor's first window is not closed yet)"

    def render(self, receiver: AlertReceiver, elapsed: float) -> Group:
        table = Table(title=f"machines by risk ({len(self.latest)} machines, {self.scores:,} scores, "
                            f"{elapsed:.0f}s)", expand=True)
        for column in ("machine", "type", "risk", "RUL", "top evidence", "model"):
            table.add_column(column)
        ranked = sorted(self.latest.values(), key=lambda s: -s["p_failure"])[:12]
        for score in ranked:
            risk = score["p_failure"]
            colour = "red" if risk >= 0.7 else "yellow" if risk >= 0.3 else "green"
            evidence = ", ".join(f"{c['feature']}={c['value']:.3g}" for c in score.get("top_contributors", [])[:2]
                                 if c.get("value") is not None)
            rul = f"{score['rul']:.0f}" if score.get("rul") is not None else "-"
            table.add_row(score["machine_id"], score["machine_type"], f"[{colour}]{risk:.2f}[/{colour}]", rul,
                          evidence or "-", f"v{score['model_version']}")
        alerts = "\n".join(self.alerts) or "(none yet)"
        sent = "\n".join(receiver.messages) or "(none yet)"
        return Group(table, Panel(self.health, title="model health (monitor: drift, decay, retraining)"),
                     Panel(alerts, title="alert state changes (topic: alerts)"),
                     Panel(sent, title=f"delivered: slack {receiver.count['slack']}, "
                                       f"pagerduty {receiver.count['pagerduty']}, data-science slack "
                                       f"{receiver.count['slack-data-science']} (log: {receiver.log_path})"))

    def read_monitor(self, url: str) -> None:
        """The monitor's latest window, in a few lines (its API: GET /v1/summary)."""
        import httpx

        from forewarn.access import API_KEY_HEADER, DEV_ROLE_KEYS, Role  # the demo's monitor uses development keys

        try:
            response = httpx.get(f"{url}/v1/summary", timeout=1.0, headers={API_KEY_HEADER: DEV_ROLE_KEYS[Role.VIEWER]})
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            return
        summary = response.json()
        lines = [f"window {summary['window']} of model version {summary['model_version']}"
                 + ("" if summary.get("reference") else " (no reference: not judged)")]
        for condition in summary.get("conditions", []):
            if condition["active"] or condition["condition"] == "data_drift":
                mark = "[red]ACTIVE[/red]" if condition["active"] else "[green]clear[/green]"
                lines.append(f"{mark} {condition['condition']} {condition['scope']}: {condition['summary'][:100]}")
        retrain = summary.get("retrain")
        if retrain and (retrain.get("retrain") or retrain.get("blocked_by")):
            lines.append(f"retraining: {retrain.get('reason')} {retrain.get('started') or ''}")
        self.health = "\n".join(lines[:8])

    def consume(self, messages: list[Any], alerts_topic: str) -> None:
        for message in messages:
            if message.error():
                continue
            if message.topic() == alerts_topic:
                value = orjson.loads(message.value())
                self.alerts.append(f"{value.get('state', '?'):>12}  {value.get('machine_id', '?')}  "
                                   f"risk {value.get('risk', value.get('p_failure', 0)) or 0:.2f}  "
                                   f"{(value.get('reason') or '')[:70]}")
            else:
                for score in scores_wire.decode_value(message.value()):
                    self.scores += 1
                    self.latest[score["machine_id"]] = score


def run_demo(options: DemoOptions, console: Console) -> None:
    from forewarn.localrun import MONITORING, SERVICES, LocalPipeline
    from forewarn.model_bundle import NoChampion, champion_version
    from forewarn.settings import ForewarnSettings
    from forewarn.stack.manager import LocalStack

    stack = LocalStack(report=lambda msg: console.print(f"[dim]stack[/dim] {msg}"))
    state = stack.up()
    settings = ForewarnSettings()
    try:
        version = champion_version(settings.mlflow.tracking_uri, settings.mlflow.model_name,
                                   settings.mlflow.champion_alias)
        have_model = True
    except NoChampion:
        have_model = False
    if options.retrain or not have_model:
        train_first_model(console, options)
        version = champion_version(settings.mlflow.tracking_uri, settings.mlflow.model_name,
                                   settings.mlflow.champion_alias)
    console.print(f"[green]champion: {settings.mlflow.model_name} version {version}[/green]")

    receiver = AlertReceiver(options.workdir / "alerts-received.log").start()
    env = {
        "FOREWARN_ALERTER__SLACK_WEBHOOK_URL": f"{receiver.url}/slack",
        "FOREWARN_ALERTER__PAGERDUTY_ROUTING_KEY": "demo-routing-key",
        "FOREWARN_ALERTER__PAGERDUTY_URL": f"{receiver.url}/pagerduty",
        "FOREWARN_ALERTER__SLACK_DATA_SCIENCE_WEBHOOK_URL": f"{receiver.url}/slack-data-science",
        "FOREWARN_LOG_LEVEL": "WARNING",
        # One monitor window per simulated hour, whatever the speedup (its reference is calibrated on hours).
        "FOREWARN_MONITOR__WINDOW_S": f"{max(1.0, 3600.0 / options.speedup):.2f}",
        "FOREWARN_MONITOR__SAMPLE_INTERVAL_S": f"{max(0.2, 600.0 / options.speedup):.2f}",
        "FOREWARN_MONITOR__MIN_ROWS": "100",
    }
    if options.drift:
        # The loop closes: sustained drift starts 'forewarn retrain' on the live data (its own lake).
        env.update({"FOREWARN_MONITOR__RETRAIN": "true",
                    "FOREWARN_RETRAIN__LAKE_DIR": str(options.workdir / "live-lake"),
                    "FOREWARN_RETRAIN__CATCH_UP": "true", "FOREWARN_RETRAIN__QUICK": "true",
                    "FOREWARN_RETRAIN__HORIZON": options.horizon, "FOREWARN_RETRAIN__COOLDOWN_S": "600"})
    ports = {name: port for name, port in (("ingest", 8000), ("scorer", 8001), ("alerter", 8002), ("features", 8003),
                                           ("monitor", 8004)) if not port_in_use("127.0.0.1", port)}
    pipeline = LocalPipeline(env=env, log_dir=options.workdir / "logs", ports=ports)
    console.rule("[bold]starting the services")
    started = pipeline.start((*SERVICES, *MONITORING))
    for name, seconds in started.items():
        console.print(f"{name:>9} ready in {seconds:4.1f}s at {pipeline[name].url}  (log {pipeline[name].log_path})")
    simulator = subprocess.Popen(
        [sys.executable, "-m", "forewarn.cli", "simulate", "--to", "http", "--url",
         f"{pipeline['ingest'].url}/v1/readings", "--api-key", "forewarn-dev-key", "-n", str(options.machines),
         "--duration", options.live_duration, "--interval", options.live_interval, "--speedup", str(options.speedup),
         # The same plant as the history (its machines and operating points), another stretch of time.
         "--seed", str(options.seed + 1), "--fleet-seed", str(options.seed), "--degrading-fraction", "0.3",
         "--no-progress", *(("--drift", options.drift, "--drift-at", options.drift_at) if options.drift else ())],
        stdout=subprocess.DEVNULL, stderr=(options.workdir / "logs" / "simulator.log").open("wb"),
    )
    view = LiveView()
    reader = kafka.consumer(settings.kafka, group_id=f"demo-view-{os.getpid()}",
                            extra_config={"auto.offset.reset": "latest"})
    alerts_topic = settings.kafka.topic(topics.ALERTS)
    reader.subscribe([settings.kafka.topic(topics.RISK_SCORES), alerts_topic])
    began = time.monotonic()
    began_at = time.time()  # the picture's time range (Prometheus speaks wall-clock time)
    try:
        with Live(view.render(receiver, 0), console=console, refresh_per_second=2) as live:
            while simulator.poll() is None:
                view.consume(reader.consume(2000, timeout=0.5), alerts_topic)
                view.read_monitor(pipeline["monitor"].url)
                live.update(view.render(receiver, time.monotonic() - began))
            deadline = time.monotonic() + 10  # let the last readings reach the alerts
            while time.monotonic() < deadline:
                view.consume(reader.consume(2000, timeout=0.5), alerts_topic)
                live.update(view.render(receiver, time.monotonic() - began))
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        simulator.terminate()
        reader.close()
        pipeline.stop()
        receiver.stop()
    console.rule("[bold]where everything is")
    console.print(f"ingest API docs   {pipeline['ingest'].url}/docs   (services are stopped now; "
                  "run one with: forewarn run ingest)")
    console.print(f"metrics           /metrics on each service; Kafka {state['kafka'].address}, "
                  f"Redis {state['redis'].address}")
    console.print(f"MLflow UI         {state['mlflow'].address}   (drift reports: runs tagged kind=drift-report)")
    console.print(f"Prometheus        {state['prometheus'].address}/targets   (rules and alerts: /alerts)")
    console.print(f"monitor API       {pipeline['monitor'].url}/v1/summary   (model health: drift, decay)")
    console.print("retraining        forewarn retrain --history   (why the model changed, run by run)")
    console.print(f"alerts received   {receiver.log_path}")
    console.print(f"service logs      {options.workdir / 'logs'}")
    console.print("stop everything   make down   (or: .venv/bin/forewarn stack down)")
    from forewarn.observability_plot import plot_key_panels

    picture = plot_key_panels(state["prometheus"].address, options.workdir / "key-panels.png", began_at, time.time())
    console.print(f"key panels (PNG)  {picture}   (throughput, latency, alerts, drift from Prometheus)")
