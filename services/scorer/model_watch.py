"""Keeps the scorer's model in step with the registry alias, off the hot path.

A background thread polls the alias; when it moves, the new version is loaded fully before it replaces
the old one, and the consume loop picks it up at the next batch boundary. A batch is therefore scored
by exactly one model version, and every score names it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from forewarn.model_bundle import (
    ModelBundle,
    NoChampion,
    champion_version,
    default_compile_cache_dir,
    load_bundle,
)

log = logging.getLogger(__name__)

VersionLookup = Callable[[], str]
BundleLoader = Callable[[str], ModelBundle]


class ModelHolder:
    def __init__(self, lookup: VersionLookup, loader: BundleLoader) -> None:
        self._lookup = lookup
        self._loader = loader
        self._bundle: ModelBundle | None = None
        self._lock = threading.Lock()
        self.not_ready_reason = "the champion model has not been loaded yet"
        self.swaps = 0

    @classmethod
    def from_registry(cls, tracking_uri: str, name: str, alias: str, num_threads: int, *,
                      compile_model: bool = True, compile_cache_dir: Path | None = None) -> ModelHolder:
        """Versions loaded from the registry; with ``compile_model`` (the service's default) each is
        compiled to native code once, before it replaces the serving one (cached by model hash)."""
        cache_dir = (compile_cache_dir or default_compile_cache_dir()) if compile_model else None
        return cls(
            lambda: champion_version(tracking_uri, name, alias),
            lambda version: load_bundle(tracking_uri, name, version, num_threads=num_threads,
                                        compile_model=compile_model, compile_cache_dir=cache_dir),
        )

    @property
    def current(self) -> ModelBundle | None:
        return self._bundle

    def refresh(self) -> bool:
        """Load the alias's version if it differs from the one serving; True when a swap happened."""
        try:
            version = self._lookup()
        except NoChampion as exc:
            if self._bundle is None:
                self.not_ready_reason = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - registry down: keep serving the model we have
            log.warning("model registry unreachable: %s", exc)
            if self._bundle is None:
                self.not_ready_reason = f"model registry unreachable: {exc}"
            return False
        if self._bundle is not None and self._bundle.version == version:
            return False
        bundle = self._loader(version)
        with self._lock:
            previous, self._bundle = self._bundle, bundle
        self.swaps += 1
        log.info("serving model", extra={"fields": {"model": bundle.name, "version": version,
                                                    "previous": previous.version if previous else None}})
        return True

    def watch(self, stop: threading.Event, interval_s: float) -> threading.Thread:
        def loop() -> None:
            while not stop.is_set():
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - a bad version must not kill the watcher
                    log.exception("loading the champion model failed; keeping the current one")
                stop.wait(interval_s)

        thread = threading.Thread(target=loop, name="model-watch", daemon=True)
        thread.start()
        return thread
