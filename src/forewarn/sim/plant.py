"""The plant simulator: a pure, seeded generator of reading blocks and ground truth (no I/O).

Determinism: one ``numpy`` generator seeded with ``--seed`` draws everything, in an order that depends
only on the options (block boundaries are set by the machines' state changes and a fixed block size,
never by the sink or the wall clock), so the same options give the same readings byte for byte.
A ``--fleet-seed`` of its own gives the fleet and the machines' traits a generator of their own (the
same plant, other noise); a new failure mode draws from a stream of its own. A drift never consumes
the shared generator before its onset, so a drifted run reads like the clean one until then.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from forewarn.assets import AssetConfig
from forewarn.sim.batch import Chunk, ReadingBatch, empty_batch
from forewarn.sim.drift import ActiveDrift, DriftTruth, new_mode
from forewarn.sim.fleet import Fleet, build_fleet, with_mode
from forewarn.sim.lifecycle import Lifecycle
from forewarn.sim.options import DAY_MS, SimOptions
from forewarn.sim.signals import (
    MachineTraits,
    add_dropouts,
    add_glitches,
    add_outliers,
    clean_values,
    load_factor,
)

# Readings per generated block: big enough to amortize numpy calls, small enough to pace live output.
BLOCK_READINGS = 65_536
MAX_JITTER_MS = 250
DRIFT_STREAM = 0xD21F7  # names the drift's own random stream, apart from the run's


class PlantSimulator:
    def __init__(self, config: AssetConfig, options: SimOptions) -> None:
        self.options = options
        self._rng = np.random.default_rng(options.seed)
        # One generator for everything unless a fleet seed of its own is asked for: that keeps
        # runs without --fleet-seed byte-identical to the single-generator order.
        same = options.traits_seed == options.seed
        fleet_rng = self._rng if same else np.random.default_rng(options.traits_seed)
        fleet = build_fleet(config, options.machines, options.interval_ms, fleet_rng)
        self.traits = MachineTraits.draw(fleet, fleet_rng)
        self._truth = options.drift.resolve(config, options.start_ms) if options.drift else None
        if self._truth is not None and self._truth.kind == "new-failure-mode":
            fleet = with_mode(fleet, new_mode(self._truth, fleet.sensors))
        self.fleet: Fleet = fleet
        self._drift = (
            None
            if self._truth is None
            else ActiveDrift.build(self._truth, fleet.machines.types, fleet.sensors)
        )
        self._new_mode_pending = self._truth is not None and self._truth.kind == "new-failure-mode"
        self.lifecycle = Lifecycle(self.fleet, options, self._rng)
        self._previous = self.fleet.nominal * self.traits.offset
        # Event times wobble a little, as real timestamps do, but never past the next step.
        self._jitter = min(self.fleet.step_ms // 10, MAX_JITTER_MS)

    def drift_truth(self) -> DriftTruth | None:
        """What this run injects (kind, machine type, sensors, onset), or None for a clean run."""
        return self._truth

    @property
    def total_steps(self) -> int | None:
        if self.options.duration_ms is None:
            return None
        return math.ceil(self.options.duration_ms / self.fleet.step_ms)

    def expected_readings(self) -> int | None:
        """Readings the run would produce with no downtime or losses (for a progress bar)."""
        steps = self.total_steps
        return None if steps is None else int(sum(math.ceil(steps / e) for e in self.fleet.every.tolist()))

    def chunks(self) -> Iterator[Chunk]:
        step, start, total = self.fleet.step_ms, self.options.start_ms, self.total_steps
        block = max(1, BLOCK_READINGS // self.fleet.size)
        k = 0
        while total is None or k < total:
            now = start + k * step
            events, serviced = self.lifecycle.advance(now)
            self.traits.redraw_offsets(serviced, self._rng)
            if self._new_mode_pending and self._truth is not None and now >= self._truth.onset_ms:
                self._allow_new_mode(now)
            change = self.lifecycle.next_change(now)
            steps = min(block, max(1, -(-(change - now) // step)))
            if total is not None:
                steps = min(steps, total - k)
            batch, counts = self._block(k, steps)
            yield Chunk(batch, tuple(events), counts)
            k += steps
        # Changes between the last step and the end of the simulated span still happened.
        assert self.options.duration_ms is not None
        events, _ = self.lifecycle.advance(start + self.options.duration_ms - 1)
        if events:
            yield Chunk(empty_batch(self.fleet.machines, self.fleet.sensors), tuple(events), {})

    def _allow_new_mode(self, now: int) -> None:
        """At the first step from the onset on (the lifecycle moves only between blocks, and splitting a
        block would change the readings before the onset): new-mode faults become possible."""
        assert self._truth is not None and self._drift is not None
        self._new_mode_pending = False
        chance = self._truth.size
        mean_delay = DAY_MS / -math.log1p(-chance)
        rng = np.random.default_rng(np.random.SeedSequence([self.options.seed, DRIFT_STREAM]))
        self.lifecycle.allow_new_mode(len(self.fleet.modes) - 1, self._drift.machines, mean_delay, rng, now)

    def _block(self, k: int, steps: int) -> tuple[ReadingBatch, dict[str, int]]:
        fleet, rng, options = self.fleet, self._rng, self.options
        index = k + np.arange(steps, dtype=np.int64)
        times = options.start_ms + index * fleet.step_ms
        load = load_factor(times, self.traits, rng, self._drift)
        values = clean_values(
            fleet, self.traits, load, self.lifecycle.severity(times), self.lifecycle.mode, rng, self._drift, times
        )
        glitched = add_glitches(values, self._previous, fleet, options.glitch_rate, rng)
        self._previous = values[-1].copy()
        add_dropouts(values, fleet, options.dropout_rate, rng)
        outlier = add_outliers(values, fleet, options.outlier_rate, rng)
        missing = rng.random((steps, fleet.size)) < options.missing_rate
        jitter = rng.integers(0, self._jitter + 1, (steps, fleet.size)) if self._jitter else None

        due = (index[:, None] + fleet.phase[None]) % fleet.every[None] == 0
        running = due & ~self.lifecycle.down(times)
        t, n = np.nonzero(running & ~missing)
        rows = values[t, n]
        counts = {
            "missing_readings": int((running & missing).sum()),
            "glitched_values": int(glitched[t, n].sum()),
            "dropped_values": int((np.isnan(rows) & fleet.applicable[n]).sum()),
            "outliers": int(outlier[t, n].sum()),
        }
        ts = times[t] + jitter[t, n] if jitter is not None else times[t]
        return ReadingBatch(fleet.machines, fleet.sensors, n, ts, rows, outlier[t, n]), counts
