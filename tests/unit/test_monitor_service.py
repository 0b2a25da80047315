"""The monitor's loop with fakes: sampling real wire blocks, windows by the clock, champion changes, publishing."""

from __future__ import annotations

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from forewarn import vector_codec
from forewarn.monitoring.reference import build_reference
from forewarn.schemas import ModelHealthEvent
from forewarn.services.monitor.metrics import MonitorMetrics
from forewarn.services.monitor.service import MonitorService
from forewarn.services.monitor.settings import MonitorOptions

NAMES = ["vibration__10m__mean", "vibration__10m__std", "temperature__10m__mean"]


class Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


class Source:
    """Hands out one prepared message per sample() call, as a partition that keeps moving."""

    def __init__(self) -> None:
        self.shift = 0.0
        self.kind = "vectors"
        self.rng = np.random.default_rng(0)
        self.calls = 0

    def sample(self) -> list[Message]:
        self.calls += 1
        rows = 100
        if self.kind == "vectors":
            matrix = self.rng.normal(10.0, 1.0, (rows, len(NAMES)))
            matrix[:, 0] += self.shift
            block = vector_codec.VectorBlock("pump", "fs1", NAMES, [f"p{i}" for i in range(rows)],
                                             np.arange(rows, dtype=np.int64) + self.calls * 1000, matrix)
            return [Message(vector_codec.encode(block))]
        scores = [{"machine_id": f"p{i}", "ts": self.calls * 1000 + i, "p_failure": float(p)}
                  for i, p in enumerate(self.rng.beta(1, 8, rows))]
        return [Message(orjson.dumps(scores))]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _service(champion: list[str | None], published: list[list[ModelHealthEvent]], with_reference: bool = True,
             reports: object | None = None, **options_changed: object
             ) -> tuple[MonitorService, Source, Clock, list[str]]:
    rng = np.random.default_rng(1)
    history = {"machine_type": ["pump"] * 6000, "ts": np.arange(6000) * 1000}
    history.update({n: rng.normal(10.0, 1.0, 6000) for n in NAMES})
    import pandas as pd

    reference = build_reference(pd.DataFrame(history), features_by_type={"pump": NAMES},
                                holdout_prob=rng.beta(1, 8, 2000), holdout={"precision": 0.5}, horizon="12h")
    loaded: list[str] = []

    def load(version: str):  # type: ignore[no-untyped-def]
        loaded.append(version)
        return reference if with_reference else None

    vectors, scores, clock = Source(), Source(), Clock()
    scores.kind = "scores"
    options = MonitorOptions(window_s=10, rows_per_block=50, min_rows=200, min_scores=200, reference_poll_s=5)
    options = options.model_copy(update=options_changed)
    service = MonitorService(options, MonitorMetrics(CollectorRegistry()), model_name="m",
                             champion=lambda: champion[0], load_reference=load, vectors=vectors, scores=scores,
                             publish=published.append, clock=clock, reports=reports)  # type: ignore[arg-type]
    return service, vectors, clock, loaded


def _run(service: MonitorService, clock: Clock, seconds: int) -> list:  # type: ignore[type-arg]
    results = []
    for _ in range(seconds):
        result = service.step()
        if result is not None:
            results.append(result)
        clock.now += 1.0
    return results


def test_windows_close_by_the_clock_and_every_condition_is_published() -> None:
    published: list[list[ModelHealthEvent]] = []
    service, vectors, clock, _ = _service(["4"], published)
    results = _run(service, clock, 31)
    assert len(results) == 3 and len(published) == 3
    conditions = {(e.condition, e.scope, e.active) for e in published[0]}
    assert ("data_drift", "pump", False) in conditions and ("score_drift", "all", False) in conditions
    assert service.latest()["window"] == 2
    vectors.shift = 3.0
    _run(service, clock, 10)
    drift_event = next(e for e in published[-1] if e.condition == "data_drift")
    assert drift_event.active and drift_event.sensors == ["vibration"]


def test_no_champion_means_not_ready_and_nothing_published() -> None:
    published: list[list[ModelHealthEvent]] = []
    service, _, clock, _ = _service([None], published)
    _run(service, clock, 30)
    assert service.monitor is None and published == []
    assert "train and promote" in service.not_ready_reason


def test_a_new_champion_resets_the_reference_and_the_window_count() -> None:
    published: list[list[ModelHealthEvent]] = []
    champion: list[str | None] = ["4"]
    service, _, clock, loaded = _service(champion, published)
    _run(service, clock, 21)
    assert service.monitor is not None and service.monitor.window == 2
    champion[0] = "5"
    _run(service, clock, 6)
    assert loaded == ["4", "5"] and service.version == "5" and service.monitor.window == 0
    _run(service, clock, 10)
    assert published[-1][0].model_version == "5" and published[-1][0].window == 0


def test_a_champion_without_reference_reports_no_reference_every_window() -> None:
    published: list[list[ModelHealthEvent]] = []
    service, _, clock, _ = _service(["2"], published, with_reference=False)
    _run(service, clock, 21)
    assert [[e.condition for e in batch] for batch in published] == [["no_reference"], ["no_reference"]]


class CountingReports:
    def __init__(self) -> None:
        self.windows: list[int] = []

    def log(self, result, reference, version):  # type: ignore[no-untyped-def]
        self.windows.append(result.window)
        return f"run-{result.window}"


def test_a_flapping_drift_is_reported_at_most_once_per_interval_and_a_deferred_report_is_not_lost() -> None:
    published: list[list[ModelHealthEvent]] = []
    reports = CountingReports()
    service, vectors, clock, _ = _service(["4"], published, reports=reports, report_min_interval_s=35.0,
                                          report_every=0)
    windows = []
    for phase in range(8):  # drift on and off every 30 s (three 10 s windows): a flip every phase
        vectors.shift = 3.0 if phase % 2 else 0.0
        windows.extend(_run(service, clock, 30))
    active = [next(e.active for e in events if e.condition == "data_drift") for events in published]
    flips = [i for i in range(1, len(active)) if active[i] != active[i - 1]]
    assert len(flips) >= 6, active
    assert reports.windows, "the first flip is reported"
    gaps = np.diff(reports.windows)
    assert (gaps >= 4).all(), f"reports {reports.windows}: closer than the 35 s interval (10 s windows)"
    assert len(reports.windows) < len(flips)
    assert any(w.summary.get("report_deferred") for w in windows)
    reported = [w for w in windows if "report_run_id" in w.summary]
    assert [w.window for w in reported] == reports.windows


def test_reports_follow_drift_changes_only() -> None:
    published: list[list[ModelHealthEvent]] = []
    reports = CountingReports()
    service, _, clock, _ = _service(["4"], published, reports=reports, report_min_interval_s=0.0, report_every=0)
    _run(service, clock, 61)
    active = [next(e.active for e in events if e.condition == "data_drift") for events in published]
    changes = [i for i in range(len(active)) if active[i] != (active[i - 1] if i else False)]
    assert reports.windows == changes
