"""What each retraining run leaves behind: one JSON record, appended to ``<state dir>/audit/retraining.jsonl``
and sent to the Kafka ``audit`` topic, so "why did the model change on Tuesday?" has an answer.

A record (``type`` = ``model.retraining``) holds: ``run_id``, ``reason`` and ``trigger`` (drift, decay,
labels, manual), ``actor``, ``runner``, ``started_at`` / ``ended_at`` (ISO, UTC), ``lake_dir``,
``data_dir``, ``data_range`` (``min_ts`` / ``max_ts`` epoch ms and ISO of the training set),
``dataset_hash`` (the manifest's content hash), ``train_run_id``, ``candidate_version``, ``gates``
(``limits``, ``failures``, ``comparison``, ``notes``), ``decision`` (promoted, refused, unchanged,
failed), ``reasons``, ``champion_before`` / ``champion_after``, ``steps`` (each command with its exit
status and times), ``error`` (a failed run), ``model`` and the notes of the Kafka deliveries.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RECORD_TYPE = "model.retraining"


def audit_path(state_dir: Path) -> Path:
    return state_dir / "audit" / "retraining.jsonl"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def iso_ms(ts_ms: int | None) -> str | None:
    return None if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="seconds")


def append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def read_history(path: Path) -> list[dict[str, Any]]:
    """The records, newest first; a torn last line (a run killed mid-write) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("type") == RECORD_TYPE:
            records.append(value)
    return sorted(records, key=lambda r: str(r.get("started_at", "")), reverse=True)


def _short(text: object, width: int) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


def history_rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per record for people: the columns of ``forewarn retrain --history``."""
    rows = []
    for r in records:
        data_range = r.get("data_range") or {}
        span = (f"{_short(data_range.get('min_iso'), 16)} → {_short(data_range.get('max_iso'), 16)}"
                if data_range.get("min_iso") else "")
        why = "; ".join(r.get("reasons") or []) or (r.get("error") or "")
        rows.append({
            "started": str(r.get("started_at", "")).replace("+00:00", "Z"),
            "decision": str(r.get("decision", "")),
            "trigger": f"{r.get('trigger', '')}: {_short(r.get('reason'), 60)}",
            "candidate": str(r.get("candidate_version") or "-"),
            "champion": f"{r.get('champion_before') or '-'} → {r.get('champion_after') or '-'}",
            "dataset": _short(str(r.get("dataset_hash") or "").removeprefix("sha256:"), 12),
            "data range": span,
            "why not": _short(why, 80),
        })
    return rows
