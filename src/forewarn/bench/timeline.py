"""A per-second record of where the machine's time goes during an e2e run.

The end-of-run totals say how much CPU each process used; they cannot say why lag rose for one minute of a
30-minute soak. This samples, each second: the CPU each watched process tree used in that second (reaped
children included, so Redis's AOF-rewrite fork is charged to Redis), the machine's busy, iowait and steal
time, disk writes, available memory, Redis's persistence state, and each service's batch time from its
Prometheus histogram. Columns, not rows, so a 30-minute soak stays a few hundred KB of JSON.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import psutil

REDIS_FIELDS = ("used_memory", "aof_rewrite_in_progress", "aof_current_size", "aof_base_size",
                "total_commands_processed", "latest_fork_usec", "aof_delayed_fsync", "total_net_input_bytes")
_SAMPLE = re.compile(r"^(forewarn_\w+?_batch_seconds_(?:sum|count))(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.M)
# How far each stage has got: readings into features state, vectors scored. Against the bench's own count
# of scores received, these say which stage a growing lag sits in (the bench's consumer is one of them).
_STAGE_COUNTERS = {
    "features": re.compile(r'^forewarn_features_readings_total\{outcome="accepted"\} ([0-9.eE+-]+)$', re.M),
    "scorer": re.compile(r"^forewarn_scorer_scored_total(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.M),
}


def tree_cpu_seconds(process: psutil.Process, alone: bool = False) -> float | None:
    """Cumulative CPU of a process, its live descendants and the children it has reaped; None once it is gone."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return None
    total = times.user + times.system
    if alone:
        return total
    total += times.children_user + times.children_system
    try:
        descendants = process.children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for child in descendants:
        try:
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
        except psutil.NoSuchProcess:
            pass
    return total


class Timeline:
    """Sampled once a second by the bench's driving loop; ``columns()`` is what goes into the JSON."""

    def __init__(self, redis_url: str | None, metrics_urls: dict[str, str]) -> None:
        self.redis_url = redis_url
        self.metrics_urls = metrics_urls
        self.processes: dict[str, tuple[psutil.Process, bool]] = {}
        self.cols: dict[str, list[Any]] = {"t": []}
        self._last: dict[str, float] = {}
        self._last_t: float | None = None
        self._redis: Any = None
        self._http = httpx.Client(timeout=0.5)

    def watch(self, name: str, pid: int, alone: bool = False) -> None:
        self._last.pop(f"cpu.{name}", None)  # a new process under an old name starts its own count
        try:
            self.processes[name] = (psutil.Process(pid), alone)
        except psutil.NoSuchProcess:
            pass

    def _delta(self, key: str, value: float) -> float | None:
        """The change of a cumulative counter since the last sample; None on the first one."""
        previous = self._last.get(key)
        self._last[key] = value
        return None if previous is None else value - previous

    def _put(self, key: str, value: Any) -> None:
        column = self.cols.setdefault(key, [None] * (len(self.cols["t"]) - 1))
        column.append(round(value, 4) if isinstance(value, float) else value)

    def sample(self, t: float, **values: Any) -> None:
        began = time.perf_counter()
        self.cols["t"].append(round(t, 1))
        dt = t - self._last_t if self._last_t is not None else None
        self._last_t = t
        for key, value in values.items():
            self._put(key, value)
        for name, (process, alone) in self.processes.items():
            total = tree_cpu_seconds(process, alone)
            used = self._delta(f"cpu.{name}", total) if total is not None else None
            self._put(f"cpu_cores.{name}", used / dt if used is not None and dt else None)
        cpu = psutil.cpu_times()
        busy = cpu.user + cpu.nice + cpu.system + getattr(cpu, "irq", 0.0) + getattr(cpu, "softirq", 0.0)
        for key, value in (("busy", busy),
                           ("iowait", getattr(cpu, "iowait", 0.0)), ("steal", getattr(cpu, "steal", 0.0))):
            used = self._delta(f"sys.{key}", value)
            self._put(f"sys_cores.{key}", used / dt if used is not None and dt else None)
        disk = psutil.disk_io_counters()
        written = self._delta("disk.write", float(disk.write_bytes)) if disk else None
        self._put("disk_write_mb_s", written / dt / 2**20 if written is not None and dt else None)
        self._put("mem_available_mb", psutil.virtual_memory().available // 2**20)
        self._sample_redis(dt)
        self._sample_services(dt)
        # The sampler shares the bench process with its consumer of risk.scores: what it costs is shown.
        self._put("sample_ms", (time.perf_counter() - began) * 1000)

    def _sample_redis(self, dt: float | None) -> None:
        if not self.redis_url:
            return
        import redis

        from forewarn.redis_client import connect
        from forewarn.settings import RedisSettings

        try:
            if self._redis is None:
                self._redis = connect(RedisSettings(url=self.redis_url), socket_timeout=0.5)
            info = self._redis.info()
        except redis.RedisError:
            info = {}
        for key in REDIS_FIELDS:
            value = info.get(key)
            if key in ("total_commands_processed", "total_net_input_bytes", "aof_delayed_fsync"):
                change = self._delta(f"redis.{key}", float(value)) if value is not None else None
                self._put(f"redis.{key}_per_s", change / dt if change is not None and dt else None)
            else:
                self._put(f"redis.{key}", value)

    def _sample_services(self, dt: float | None) -> None:
        """Each service's share of the second spent inside batches, and its batches per second."""
        for name, url in self.metrics_urls.items():
            try:
                text = self._http.get(url).text
            except httpx.HTTPError:
                text = ""
            found = {m.group(1).rsplit("_", 1)[1]: float(m.group(2)) for m in _SAMPLE.finditer(text)}
            for part, column in (("sum", "busy"), ("count", "batches_per_s")):
                change = self._delta(f"svc.{name}.{part}", found[part]) if part in found else None
                self._put(f"batch_{column}.{name}", change / dt if change is not None and dt else None)
            counter = _STAGE_COUNTERS.get(name.split("-")[0])
            if counter is not None:
                values = [float(v) for v in counter.findall(text)]
                self._put(f"done.{name}", int(sum(values)) if values else None)

    def columns(self) -> dict[str, list[Any]]:
        width = len(self.cols["t"])
        return {key: column + [None] * (width - len(column)) for key, column in self.cols.items()}

    def close(self) -> None:
        self._http.close()
        if self._redis is not None:
            self._redis.close()


def slowest_window(columns: dict[str, list[Any]], lag_key: str = "lag", width: int = 60) -> dict[str, Any] | None:
    """The ``width``-second window where lag rose most, with each column's mean there and over the whole run.

    That comparison is the quickest answer to "what was different when it fell behind?".
    """
    t, lag = columns.get("t", []), columns.get(lag_key, [])
    if len(t) <= width:
        return None
    rises = [(lag[i + width] or 0) - (lag[i] or 0) for i in range(len(lag) - width)]
    start = max(range(len(rises)), key=rises.__getitem__)
    summary: dict[str, Any] = {"from_t": t[start], "to_t": t[start + width], "lag_rise": rises[start], "columns": {}}
    for key, column in columns.items():
        if key in ("t", lag_key):
            continue
        inside = [v for v in column[start:start + width + 1] if isinstance(v, (int, float))]
        overall = [v for v in column if isinstance(v, (int, float))]
        if inside and overall:
            summary["columns"][key] = {"window_mean": round(sum(inside) / len(inside), 4),
                                       "run_mean": round(sum(overall) / len(overall), 4)}
    return summary


def plot_timeline(columns: dict[str, list[Any]], path: Any, title: str) -> None:
    """Lag, CPU per process and each service's batch time over the run, one panel each, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = columns.get("t", [])
    if not t:
        return

    def series(key: str) -> list[float]:
        return [float("nan") if v is None else v for v in columns.get(key, [None] * len(t))]

    figure, (lag_ax, cpu_ax, batch_ax) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    # The raw lag saw-tooths between 0 and one load slice every second; the 10 s maximum shows the trend.
    lag = series("lag")
    lag_ax.plot(t, [max(lag[max(0, i - 9):i + 1]) for i in range(len(lag))], color="tab:red", linewidth=0.8)
    lag_ax.set_ylabel("readings produced, not yet\nscored (max over 10 s)")
    lag_ax.set_title(title)
    cpu_keys = sorted(k for k in columns if k.startswith("cpu_cores."))
    for key in cpu_keys:
        cpu_ax.plot(t, series(key), linewidth=0.7, label=key.split(".", 1)[1])
    cpu_ax.plot(t, series("sys_cores.busy"), color="black", linewidth=0.8, label="machine (all)")
    cpu_ax.plot(t, series("sys_cores.steal"), color="grey", linestyle=":", linewidth=0.8, label="steal")
    cpu_ax.set_ylabel("CPU cores")
    cpu_ax.legend(loc="upper left", ncol=5, fontsize=7)
    for key in sorted(k for k in columns if k.startswith("batch_busy.")):
        batch_ax.plot(t, series(key), linewidth=0.7, label=key.split(".", 1)[1])
    batch_ax.set_ylabel("share of each second\nspent in batches")
    batch_ax.set_xlabel("seconds since the load started")
    batch_ax.legend(loc="upper left", ncol=4, fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
