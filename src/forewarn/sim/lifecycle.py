"""The life of each machine: healthy, degrading, failed and under repair, or down for maintenance.

State changes are rare (days apart per machine) while readings are frequent, so the simulator asks
:meth:`Lifecycle.next_change` for the next moment anything changes and generates every step up to it
as one vectorized block; inside a block each machine's state is fixed, and :meth:`severity` gives the
degradation's progress at any instant. Ground-truth events are produced here, at their exact times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from forewarn.schemas import GroundTruthEvent
from forewarn.sim.fleet import Fleet
from forewarn.sim.options import DAY_MS, HOUR_MS, SimOptions

EventKind = Literal["failure", "maintenance", "degradation_start"]
NEVER = np.iinfo(np.int64).max // 4
REPAIR_HOURS = (2.0, 12.0)
MAINTENANCE_HOURS = (0.5, 3.0)


@dataclass(frozen=True)
class _NewMode:
    mode: int  # global index into fleet.modes
    machines: np.ndarray  # (N,) bool
    mean_delay_ms: float
    rng: np.random.Generator


class Lifecycle:
    def __init__(self, fleet: Fleet, options: SimOptions, rng: np.random.Generator) -> None:
        n = fleet.size
        self._fleet, self._rng = fleet, rng
        self.onset = np.full(n, NEVER, dtype=np.int64)
        self.fail = np.full(n, NEVER, dtype=np.int64)
        self.mode = np.zeros(n, dtype=np.int64)  # global index into fleet.modes
        self.power = np.ones(n)  # severity = progress ** power: faults accelerate towards the end
        self.announced = np.zeros(n, dtype=bool)
        self.down_until = np.full(n, -NEVER, dtype=np.int64)
        self.repairing = np.zeros(n, dtype=bool)
        self.next_maintenance = np.full(n, NEVER, dtype=np.int64)
        self._period = np.full(n, NEVER, dtype=np.int64)
        self._new_mode: _NewMode | None = None

        # A Poisson onset rate that makes P(at least one onset in the run) = degrading_fraction.
        reference = options.duration_ms or 7 * DAY_MS
        fraction = options.degrading_fraction
        self._mean_delay = (
            0.0 if fraction >= 1.0 else (math.inf if fraction <= 0 else reference / -math.log1p(-fraction))
        )
        start = options.start_ms
        for i in range(n):
            self._schedule_onset(i, start, warm=options.warm_start)
        if options.maintenance_every_ms:
            self._period[:] = (options.maintenance_every_ms * rng.uniform(0.7, 1.3, n)).astype(np.int64)
            self.next_maintenance[:] = start + (self._period * rng.uniform(0.05, 1.0, n)).astype(np.int64)

    # -- scheduling -------------------------------------------------------------------------------

    def allow_new_mode(
        self, mode: int, machines: np.ndarray, mean_delay_ms: float, rng: np.random.Generator, now: int
    ) -> None:
        """From ``now`` on, ``machines`` may also degrade by fleet mode ``mode`` (a competing risk with
        mean delay ``mean_delay_ms``), whichever comes first. Its draws come from ``rng``, so the shared
        generator is not consumed for it; machines already degrading or down get it once healthy."""
        self._new_mode = _NewMode(mode, machines, mean_delay_ms, rng)
        for i in np.flatnonzero(machines).tolist():
            if not (self.announced[i] or self.repairing[i]) and self.onset[i] > now:
                self._offer_new_mode(i, max(now, int(self.down_until[i])))

    def _offer_new_mode(self, i: int, after: int) -> None:
        new = self._new_mode
        if new is None or not new.machines[i]:
            return
        rng = new.rng
        low, high = self._fleet.modes[new.mode].hours
        begin = after + int(rng.exponential(new.mean_delay_ms))
        length = int(rng.uniform(low, high) * HOUR_MS)
        power = rng.uniform(1.6, 2.4)
        if begin < self.onset[i]:
            self.mode[i] = new.mode
            self.onset[i] = begin
            self.fail[i] = begin + length
            self.power[i] = power
            self.announced[i] = False

    def _schedule_onset(self, i: int, after: int, warm: bool = False) -> None:
        self._schedule_shipped_onset(i, after, warm)
        self._offer_new_mode(i, after)

    def _schedule_shipped_onset(self, i: int, after: int, warm: bool) -> None:
        rng = self._rng
        choices = self._fleet.modes_of_type[int(self._fleet.type_index[i])]
        mode = choices[int(rng.integers(len(choices)))]
        low, high = self._fleet.modes[mode].hours
        length = int(rng.uniform(low, high) * HOUR_MS)
        delay = 0.0 if self._mean_delay == 0.0 else float(rng.exponential(self._mean_delay))
        head = int(rng.uniform(0.0, 0.8) * length) if warm else 0
        self.power[i] = rng.uniform(1.6, 2.4)
        if math.isinf(delay) or delay > NEVER / 2:
            self.onset[i] = self.fail[i] = NEVER
            return
        self.mode[i] = mode
        self.onset[i] = after + int(delay) - head
        self.fail[i] = self.onset[i] + length
        self.announced[i] = False

    # -- queries -----------------------------------------------------------------------------------

    def next_change(self, now: int) -> int:
        """The earliest state change strictly after ``now`` (NEVER if none is scheduled)."""
        candidates = np.concatenate(
            [
                np.where(self.announced, NEVER, self.onset),
                self.fail,
                self.next_maintenance,
                np.where(self.down_until > now, self.down_until, NEVER),
            ]
        )
        later = candidates[candidates > now]
        return int(later.min()) if later.size else NEVER

    def severity(self, times: np.ndarray) -> np.ndarray:
        """(T, N) degradation severity in [0, 1]: 0 when healthy, 1 at the moment of failure."""
        degrading = self.fail < NEVER
        span = np.where(degrading, self.fail - self.onset, 1).astype(np.float64)
        progress = (times[:, None] - self.onset[None, :]).astype(np.float64) / span
        return np.where(degrading, np.clip(progress, 0.0, 1.0) ** self.power, 0.0)

    def down(self, times: np.ndarray) -> np.ndarray:
        """(T, N) True where a machine is stopped (repair or maintenance) and sends nothing."""
        return times[:, None] < self.down_until[None, :]

    # -- transitions -------------------------------------------------------------------------------

    def advance(self, now: int) -> tuple[list[GroundTruthEvent], list[int]]:
        """Apply every change due at or before ``now``, per machine in time order.

        Returns the ground truth that happened and the machines that were serviced (their operating
        point is re-drawn, as a real machine's is after a bearing or seal is replaced).
        """
        events: list[GroundTruthEvent] = []
        serviced: list[int] = []
        while True:
            # Per machine, the earliest pending change; ties resolve repair < announce < fail < maint.
            pending = np.stack(
                [
                    np.where(self.repairing, self.down_until, NEVER),
                    np.where(self.announced, NEVER, self.onset),
                    self.fail,
                    self.next_maintenance,
                ]
            )
            kind = pending.argmin(axis=0)
            when = pending.min(axis=0)
            due = np.flatnonzero(when <= now)
            if due.size == 0:
                break
            for i in due.tolist():
                self._apply(i, int(kind[i]), int(when[i]), events, serviced)
        events.sort(key=lambda e: (e.ts, e.machine_id, e.kind))
        return events, serviced

    def _event(self, i: int, ts: int, kind: EventKind, mode: str | None) -> GroundTruthEvent:
        machines = self._fleet.machines
        return GroundTruthEvent(
            machine_id=machines.ids[i],
            machine_type=machines.types[i],
            ts=ts,
            kind=kind,
            mode=mode,
        )

    def _apply(
        self, i: int, kind: int, when: int, events: list[GroundTruthEvent], serviced: list[int]
    ) -> None:
        rng = self._rng
        mode_name = self._fleet.modes[int(self.mode[i])].name
        if kind == 0:  # repair finished: the machine restarts as new
            self.repairing[i] = False
            events.append(self._event(i, when, "maintenance", "repair"))
            serviced.append(i)
            self._schedule_onset(i, when)
        elif kind == 1:
            self.announced[i] = True
            events.append(self._event(i, when, "degradation_start", mode_name))
        elif kind == 2:
            events.append(self._event(i, when, "failure", mode_name))
            self.onset[i] = self.fail[i] = NEVER
            self.announced[i] = False
            self.repairing[i] = True
            self.down_until[i] = when + int(rng.uniform(*REPAIR_HOURS) * HOUR_MS)
        elif when < self.down_until[i]:  # maintenance falls due while down: do it at restart
            self.next_maintenance[i] = self.down_until[i] + (1 if self.repairing[i] else 0)
        else:  # scheduled maintenance catches (and fixes) a fault in progress
            events.append(self._event(i, when, "maintenance", "scheduled"))
            serviced.append(i)
            self.down_until[i] = when + int(rng.uniform(*MAINTENANCE_HOURS) * HOUR_MS)
            self.next_maintenance[i] = when + int(self._period[i] * rng.uniform(0.8, 1.2))
            self._schedule_onset(i, int(self.down_until[i]))
