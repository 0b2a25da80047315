"""Readings POSTed in batches to the ingest API, the way a plant gateway would send them.

The body is NDJSON (one reading per line, ``application/x-ndjson``) or a JSON array
(``application/json``); the API key goes in a header. Overload answers (429, 502-504) and dropped
connections are retried with backoff, honouring ``Retry-After``; any other refusal stops the run with
the status and the API's own explanation, because retrying a 4xx cannot succeed.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import httpx
import orjson

from forewarn.sim.batch import ReadingBatch
from forewarn.sim.sinks import DeliveryFailed

RETRY_STATUSES = frozenset({429, 502, 503, 504})
Format = Literal["ndjson", "json"]


class HttpReadingSink:
    """Owns ``client``: closing the sink sends what is pending, then closes the client."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        api_key: str | None = None,
        api_key_header: str = "X-API-Key",
        body_format: Format = "ndjson",
        batch_size: int = 500,
        retries: int = 5,
    ) -> None:
        self._client, self._url = client, url
        self._headers = {
            "content-type": "application/x-ndjson" if body_format == "ndjson" else "application/json"
        }
        if api_key:
            self._headers[api_key_header] = api_key
        self._format, self._batch_size, self._retries = body_format, max(1, batch_size), retries
        self._pending: list[bytes] = []
        self.sent = 0
        self.requests = 0
        # What the API reports back: stored in sensor.readings vs refused (dead-lettered with a reason).
        self.accepted = 0
        self.rejected = 0

    def write(self, batch: ReadingBatch) -> None:
        for record in batch.records():
            self._pending.append(orjson.dumps(record))
            if len(self._pending) >= self._batch_size:
                self._send()

    def close(self) -> None:
        try:
            if self._pending:
                self._send()
        finally:
            self._client.close()

    def _send(self) -> None:
        """POST the pending readings; after a 503 resend only those the API lists in ``retry_indexes``
        (the rest are stored or refused for good), so a retry never duplicates a reading."""
        pending, count = self._pending, len(self._pending)
        self._pending = []
        for attempt in range(self._retries + 1):
            try:
                response = self._client.post(self._url, content=self._body(pending), headers=self._headers)
            except httpx.TransportError as exc:
                if attempt == self._retries:
                    raise DeliveryFailed(f"cannot reach the ingest API at {self._url}: {exc}") from exc
                time.sleep(min(0.2 * 2**attempt, 5.0))
                continue
            report = _json(response)
            if response.status_code in RETRY_STATUSES and attempt < self._retries:
                if "retry_indexes" in report:
                    self._tally(report)
                    pending = [pending[i] for i in report["retry_indexes"] if 0 <= i < len(pending)]
                if not pending:
                    break
                time.sleep(_retry_after(response, attempt))
                continue
            self._check(response, report)
            self._tally(report)
            break
        self.sent += count
        self.requests += 1

    def summary(self) -> dict[str, object]:
        return {
            "HTTP requests": f"{self.requests:,}",
            "ingest accepted": f"{self.accepted:,}",
            "ingest rejected (DLQ)": f"{self.rejected:,}",
        }

    def _body(self, items: list[bytes]) -> bytes:
        if self._format == "ndjson":
            return b"\n".join(items) + b"\n"
        return b"[" + b",".join(items) + b"]"

    def _tally(self, report: dict[str, Any]) -> None:
        accepted, rejected = report.get("accepted", 0), report.get("rejected", 0)
        self.accepted += int(accepted) if isinstance(accepted, int) else 0
        self.rejected += len(rejected) if isinstance(rejected, list) else int(rejected or 0)

    def _check(self, response: httpx.Response, report: dict[str, Any]) -> None:
        if response.status_code in (401, 403):
            raise DeliveryFailed(
                f"the ingest API refused the API key (HTTP {response.status_code}); "
                "pass --api-key or set FOREWARN_API_KEY"
            )
        if response.status_code >= 400:
            detail = report.get("message") or response.text[:300]
            raise DeliveryFailed(
                f"the ingest API answered HTTP {response.status_code} at {self._url}: {detail}"
            )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        report = response.json()
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _retry_after(response: httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after", "")
    try:
        return min(max(float(header), 0.0), 30.0)
    except ValueError:
        return min(0.2 * 2**attempt, 5.0)
