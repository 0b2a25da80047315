"""Real local HTTP receivers for notifier tests: a Slack incoming webhook, the PagerDuty Events API v2 and a
generic JSON webhook, each a threading HTTP server on 127.0.0.1 with a free port.

They check every payload against the documented fields (Slack Block Kit limits; PagerDuty's event rules),
answer as the real service does (Slack ``200 ok`` or ``400 invalid_blocks``; PagerDuty ``202`` with the
dedup key or ``400 invalid event``) and record what they got. A :class:`Fault` makes them slow or failing,
for all requests or only the ones a predicate picks, and for a number of times or forever.

    with PagerDutyReceiver() as pd:
        pd.fault = Fault(status=500, when=lambda body: "m-bad" in body["dedup_key"])
        ... point the code at pd.url ...
        assert pd.wait_for(lambda events: len(events) >= 2)
        assert pd.rejected == []

References: https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/block-kit/blocks,
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ---- payload rules ---------------------------------------------------------------------------------

SLACK_BLOCK_TYPES = {"section", "header", "context", "divider", "actions", "image", "rich_text", "input",
                     "file", "video"}
SLACK_TEXT_TYPES = {"plain_text", "mrkdwn"}
PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_TOP_LEVEL = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
PD_PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}


def _text_problems(obj: Any, where: str, limit: int, types: set[str] = SLACK_TEXT_TYPES) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: must be a text object"]
    problems = []
    if obj.get("type") not in types:
        problems.append(f"{where}.type: must be one of {sorted(types)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}.text: required, non-empty")
    elif len(text) > limit:
        problems.append(f"{where}.text: longer than {limit} characters")
    return problems


def slack_problems(body: Any) -> list[str]:
    """What Slack would reject in an incoming-webhook message (empty list: valid)."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    problems: list[str] = []
    blocks = body.get("blocks")
    text = body.get("text")
    if text is None and blocks is None:
        problems.append("no_text: give 'text' or 'blocks'")
    if text is not None and (not isinstance(text, str) or len(text) > 40_000):
        problems.append("text: must be a string of at most 40,000 characters")
    if blocks is None:
        return problems
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return [*problems, "blocks: must be a list of 1 to 50 blocks"]
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or block.get("type") not in SLACK_BLOCK_TYPES:
            problems.append(f"{where}.type: unknown block type")
            continue
        if len(str(block.get("block_id", ""))) > 255:
            problems.append(f"{where}.block_id: longer than 255 characters")
        kind = block["type"]
        if kind == "header":
            problems += _text_problems(block.get("text"), f"{where}.text", 150, {"plain_text"})
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in block:
                problems += _text_problems(block["text"], f"{where}.text", 3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    problems.append(f"{where}.fields: 1 to 10 text objects")
                else:
                    for j, item in enumerate(fields):
                        problems += _text_problems(item, f"{where}.fields[{j}]", 2000)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}.elements: 1 to 10 elements")
            else:
                for j, item in enumerate(elements):
                    if isinstance(item, dict) and item.get("type") == "image":
                        continue
                    problems += _text_problems(item, f"{where}.elements[{j}]", 3000)
    return problems


def pagerduty_problems(body: Any) -> list[str]:
    """What the Events API v2 would reject as an invalid event (empty list: valid)."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    problems = [f"{key}: not an Events API v2 field" for key in body if key not in PD_TOP_LEVEL]
    if not isinstance(body.get("routing_key"), str) or not body.get("routing_key"):
        problems.append("routing_key: required")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        problems.append(f"event_action: must be one of {sorted(PD_ACTIONS)}")
    dedup = body.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        problems.append("dedup_key: a string of 1 to 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        problems.append(f"dedup_key: required for {action}")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*problems, "payload: required for trigger"]
        problems += [f"payload.{key}: not an Events API v2 field" for key in payload if key not in PD_PAYLOAD]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            problems.append("payload.summary: required, 1 to 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload.get("source"):
            problems.append("payload.source: required")
        if payload.get("severity") not in PD_SEVERITIES:
            problems.append(f"payload.severity: must be one of {sorted(PD_SEVERITIES)}")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                problems.append("payload.timestamp: must be ISO 8601")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
            problems.append("payload.custom_details: must be an object")
    return problems


# ---- the servers -----------------------------------------------------------------------------------


@dataclass
class Fault:
    """How a receiver misbehaves. ``status``: answer this instead of success; ``delay_s``: wait first;
    ``when``: only for bodies it returns true for; ``times``: only this many times (None: always)."""

    status: int | None = None
    delay_s: float = 0.0
    when: Callable[[Any], bool] | None = None
    times: int | None = None
    used: int = 0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    problems: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Base: records every request; subclasses validate and answer like the real service."""

    path = "/"

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fault: Fault | None = None
        self._lock = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, content_type, answer = owner._handle(self.path, dict(self.headers), raw)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): like a real server, we did the work anyway

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)

    # subclasses ---------------------------------------------------------------------------------
    def problems(self, body: Any) -> list[str]:
        return [] if isinstance(body, dict) else ["body: must be a JSON object"]

    def success(self, body: Any) -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"ok": true}'

    def invalid(self, problems: list[str]) -> tuple[int, str, bytes]:
        return 400, "application/json", json.dumps({"errors": problems}).encode()

    # machinery ----------------------------------------------------------------------------------
    def _fault_for(self, body: Any) -> Fault | None:
        with self._lock:
            fault = self.fault
            if fault is None or (fault.when is not None and not fault.when(body)):
                return None
            if fault.times is not None and fault.used >= fault.times:
                return None
            fault.used += 1
            return fault

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, str, bytes]:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        problems = [] if body is not None else ["body: not JSON"]
        if path.split("?")[0] != self.path:
            problems.append(f"path: expected {self.path}, got {path}")
        problems += self.problems(body) if body is not None else []
        fault = None if problems else self._fault_for(body)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if problems:
            status, content_type, answer = self.invalid(problems)
        elif fault is not None and fault.status is not None:
            status, content_type, answer = fault.status, "application/json", b'{"error": "injected fault"}'
        else:
            status, content_type, answer = self.success(body)
        with self._lock:
            self.requests.append(Received(path, headers, body, status, problems))
            self._lock.notify_all()
        return status, content_type, answer

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    @property
    def accepted(self) -> list[Any]:
        """Bodies answered with success, in arrival order."""
        with self._lock:
            return [r.body for r in self.requests if 200 <= r.status < 300]

    @property
    def rejected(self) -> list[Received]:
        """Requests that broke the documented format."""
        with self._lock:
            return [r for r in self.requests if r.problems]

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 20.0) -> bool:
        """Wait until ``predicate(accepted bodies)`` holds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if predicate([r.body for r in self.requests if 200 <= r.status < 300]):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class SlackReceiver(Receiver):
    """A Slack incoming webhook: answers ``200 ok``, or ``400 invalid_blocks`` for a malformed message."""

    path = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

    def problems(self, body: Any) -> list[str]:
        return slack_problems(body)

    def success(self, body: Any) -> tuple[int, str, bytes]:
        return 200, "text/html", b"ok"

    def invalid(self, problems: list[str]) -> tuple[int, str, bytes]:
        code = "no_text" if any(p.startswith("no_text") for p in problems) else "invalid_blocks"
        return 400, "text/html", code.encode()


class PagerDutyReceiver(Receiver):
    """The Events API v2 enqueue endpoint: ``202`` with the dedup key, or ``400 invalid event``."""

    path = "/v2/enqueue"

    def problems(self, body: Any) -> list[str]:
        return pagerduty_problems(body)

    def success(self, body: Any) -> tuple[int, str, bytes]:
        answer = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}
        return 202, "application/json", json.dumps(answer).encode()

    def invalid(self, problems: list[str]) -> tuple[int, str, bytes]:
        answer = {"status": "invalid event", "message": "Event object is invalid", "errors": problems}
        return 400, "application/json", json.dumps(answer).encode()

    def events(self, action: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.accepted if action is None or e["event_action"] == action]

    def pages(self) -> dict[str, int]:
        """dedup_key -> how many incidents PagerDuty would have opened (paged someone) for it: a trigger
        on a dedup key whose incident is still open (triggered or acknowledged) is deduplicated."""
        opened: dict[str, int] = {}
        open_now: set[str] = set()
        for event in self.accepted:
            key = event["dedup_key"]
            if event["event_action"] == "trigger" and key not in open_now:
                opened[key] = opened.get(key, 0) + 1
                open_now.add(key)
            elif event["event_action"] == "resolve":
                open_now.discard(key)
        return opened

    def incidents(self) -> dict[str, list[str]]:
        """dedup_key -> the accepted event actions, in order."""
        result: dict[str, list[str]] = {}
        for event in self.accepted:
            result.setdefault(event["dedup_key"], []).append(event["event_action"])
        return result


class WebhookReceiver(Receiver):
    """A generic JSON webhook."""

    path = "/hooks/forewarn"
