"""Exported engine state <-> bytes, for whatever durable store the service uses (changelog, Redis).

An in-memory ``.npz`` without pickle: plain arrays, readable by any numpy, nothing executable.
"""

from __future__ import annotations

import io

import numpy as np


def state_to_bytes(state: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **state)  # type: ignore[arg-type]  # the stub takes array kwargs for allow_pickle
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
