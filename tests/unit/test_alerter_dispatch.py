"""The dispatcher with fakes of our own interfaces: retries, dead letters, bulkheads, idempotency."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

from forewarn.alerting.events import DeliveryJob
from forewarn.schemas import AlertEvent, DeadLetter
from forewarn.services.alerter.metrics import AlerterMetrics
from forewarn.services.alerter.notifiers.base import DeliveryError
from forewarn.services.alerter.notifiers.dispatch import Dispatcher, RetryPolicy


class FakeLedger:
    def __init__(self) -> None:
        self.done: dict[str, str] = {}

    def delivery_done(self, delivery_id: str) -> bool:
        return delivery_id in self.done

    def finish_delivery(self, delivery_id: str, result: str) -> None:
        self.done[delivery_id] = result


class FakeDeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


class FakeNotifier:
    def __init__(self, name: str, fail: set[str] | None = None, delay_s: float = 0.0,
                 retryable: bool = True) -> None:
        self.name = name
        self.fail = fail or set()
        self.delay_s = delay_s
        self.retryable = retryable
        self.calls: list[str] = []
        self.actions: list[tuple[str, str]] = []
        self.sent: list[str] = []

    def send(self, event: AlertEvent) -> None:
        self.calls.append(event.machine_id)
        self.actions.append((event.machine_id, event.action))
        if self.delay_s:
            time.sleep(self.delay_s)
        if event.machine_id in self.fail:
            raise DeliveryError("HTTP 500", retryable=self.retryable, reason="http_500")
        self.sent.append(event.machine_id)

    def close(self) -> None:
        pass


def job(machine: str, notifier: str, action: str = "trigger", revision: int = 1) -> DeliveryJob:
    event = AlertEvent(event_id=f"{machine}.{revision}", action=action, alert_id=machine, revision=revision,
                       dedup_key=f"{machine}:any",
                       machine_id=machine, machine_type="pump", mode="any",
                       state="resolved" if action == "resolve" else "triggered",
                       previous_state="pending", reason="r", severity="error", p_failure=0.9, peak_p=0.9, ts=1,
                       opened_ts=1, emitted_at=1)
    return DeliveryJob.for_event(event, notifier, created_at=1)


def wait(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def make(*notifiers: FakeNotifier, attempts: int = 3, **kwargs: object) -> tuple[Dispatcher, FakeLedger,
                                                                                 FakeDeadLetters]:
    ledger, dlq = FakeLedger(), FakeDeadLetters()
    dispatcher = Dispatcher({n.name: n for n in notifiers}, ledger, dlq, AlerterMetrics(CollectorRegistry()),
                            retry=RetryPolicy(max_attempts=attempts, backoff_s=0.01, backoff_max_s=0.05),
                            **kwargs)  # type: ignore[arg-type]
    dispatcher.start()
    return dispatcher, ledger, dlq


def test_retries_then_dead_letters_while_other_machines_flow() -> None:
    pd = FakeNotifier("pagerduty", fail={"bad"})
    dispatcher, ledger, dlq = make(pd, attempts=4)
    try:
        dispatcher.submit([job("bad", "pagerduty"), job("good-1", "pagerduty"), job("good-2", "pagerduty")])
        assert wait(dispatcher.idle)
    finally:
        dispatcher.stop()
    assert pd.calls.count("bad") == 4
    assert sorted(pd.sent) == ["good-1", "good-2"]
    assert [(letter.delivery_id, letter.attempts) for letter in dlq.letters] == [("bad.1.pagerduty", 4)]
    assert ledger.done == {"bad.1.pagerduty": "dead_lettered", "good-1.1.pagerduty": "delivered",
                           "good-2.1.pagerduty": "delivered"}


def test_permanent_errors_are_not_retried() -> None:
    pd = FakeNotifier("pagerduty", fail={"bad"}, retryable=False)
    dispatcher, _, dlq = make(pd, attempts=5)
    try:
        dispatcher.submit([job("bad", "pagerduty")])
        assert wait(dispatcher.idle)
    finally:
        dispatcher.stop()
    assert pd.calls == ["bad"] and len(dlq.letters) == 1


def test_a_slow_notifier_does_not_delay_another() -> None:
    slack = FakeNotifier("slack", delay_s=1.0)
    pd = FakeNotifier("pagerduty")
    dispatcher, _, _ = make(slack, pd, workers_per_notifier=1)
    try:
        started = time.monotonic()
        dispatcher.submit([job(f"m{i}", "slack") for i in range(5)] + [job(f"m{i}", "pagerduty") for i in range(5)])
        assert time.monotonic() - started < 0.2  # submit never waits
        assert wait(lambda: len(pd.sent) == 5, timeout=0.8)  # all of PagerDuty before Slack's first is done
        assert len(slack.sent) == 0
    finally:
        dispatcher.stop(drain_s=0)


def test_full_queue_defers_to_the_outbox_instead_of_blocking() -> None:
    gate = threading.Event()

    class Blocked(FakeNotifier):
        def send(self, event: AlertEvent) -> None:
            gate.wait(5)
            super().send(event)

    slow = Blocked("slack")
    dispatcher, ledger, _ = make(slow, workers_per_notifier=1, queue_size=2)
    try:
        started = time.monotonic()
        queued = dispatcher.submit([job(f"m{i}", "slack") for i in range(10)])
        assert time.monotonic() - started < 0.2
        assert queued <= 3  # one in the worker, two queued; the rest stay in the outbox for the sweeper
        gate.set()
        assert wait(dispatcher.idle)
        # what was deferred is submitted again by the sweeper and delivered then, once each
        for _ in range(10):  # like the sweeper: what is not done yet is still in the outbox
            dispatcher.submit([j for j in (job(f"m{i}", "slack") for i in range(10)) if j.id not in ledger.done])
            wait(dispatcher.idle)
        assert sorted(slow.sent) == sorted(f"m{i}" for i in range(10))
    finally:
        dispatcher.stop()


def test_done_deliveries_are_not_sent_again() -> None:
    pd = FakeNotifier("pagerduty")
    dispatcher, ledger, _ = make(pd)
    ledger.done["m1.1.pagerduty"] = "delivered"
    try:
        dispatcher.submit([job("m1", "pagerduty"), job("m2", "pagerduty")])
        assert wait(dispatcher.idle)
        dispatcher.submit([job("m2", "pagerduty")])
        assert wait(dispatcher.idle)
    finally:
        dispatcher.stop()
    assert pd.sent == ["m2"]


def test_unknown_notifier_goes_straight_to_the_dead_letters() -> None:
    dispatcher, ledger, dlq = make(FakeNotifier("slack"))
    try:
        dispatcher.submit([job("m1", "pagerduty")])
    finally:
        dispatcher.stop()
    assert "not configured" in dlq.letters[0].error
    assert ledger.done == {"m1.1.pagerduty": "dead_lettered"}


def test_one_alerts_deliveries_keep_their_order_through_retries() -> None:
    class FlakyFirst(FakeNotifier):
        """Fails the first two trigger attempts of m1, so its resolve would overtake it if unordered."""

        def send(self, event: AlertEvent) -> None:
            if event.machine_id == "m1" and event.action == "trigger" and self.calls.count("m1") < 2:
                self.calls.append("m1")
                raise DeliveryError("HTTP 503", retryable=True, reason="http_503")
            super().send(event)

    pd = FlakyFirst("pagerduty")
    dispatcher, _, _ = make(pd, attempts=5, workers_per_notifier=4)
    try:
        dispatcher.submit([job("m1", "pagerduty"), job("m1", "pagerduty", "resolve", 2),
                           job("m2", "pagerduty"), job("m2", "pagerduty", "resolve", 2)])
        assert wait(dispatcher.idle)
    finally:
        dispatcher.stop()
    assert pd.calls.count("m1") == 4  # two failed trigger attempts, then the trigger, then the resolve
    assert [a for m, a in pd.actions if m == "m1"] == ["trigger", "resolve"]
    assert [a for m, a in pd.actions if m == "m2"] == ["trigger", "resolve"]
    assert pd.actions.index(("m2", "resolve")) < pd.actions.index(("m1", "resolve"))  # m1 did not hold up m2


class FlakyLedger(FakeLedger):
    """Redis going away: the first ``outage`` calls of the named kind raise, then it works (empty or not)."""

    def __init__(self, fail_done: int = 0, fail_finish: int = 0) -> None:
        super().__init__()
        self.fail_done, self.fail_finish = fail_done, fail_finish

    def delivery_done(self, delivery_id: str) -> bool:
        if self.fail_done:
            self.fail_done -= 1
            raise ConnectionError("Redis is restarting")
        return super().delivery_done(delivery_id)

    def finish_delivery(self, delivery_id: str, result: str) -> None:
        if self.fail_finish:
            self.fail_finish -= 1
            raise ConnectionError("Redis is restarting")
        super().finish_delivery(delivery_id, result)


def test_a_ledger_outage_before_sending_keeps_the_job_and_sends_it_once() -> None:
    pd = FakeNotifier("pagerduty")
    ledger, dlq = FlakyLedger(fail_done=3), FakeDeadLetters()
    dispatcher = Dispatcher({"pagerduty": pd}, ledger, dlq, AlerterMetrics(CollectorRegistry()),
                            retry=RetryPolicy(max_attempts=2, backoff_s=0.01))
    dispatcher.start()
    try:
        one = job("m1", "pagerduty")
        dispatcher.submit([one])
        assert wait(lambda: dispatcher.idle() and one.id in ledger.done)
        assert pd.sent == ["m1"] and dlq.letters == []
    finally:
        dispatcher.stop()


def test_a_ledger_outage_after_sending_records_it_without_sending_again() -> None:
    pd = FakeNotifier("pagerduty")
    ledger, dlq = FlakyLedger(fail_finish=4), FakeDeadLetters()
    dispatcher = Dispatcher({"pagerduty": pd}, ledger, dlq, AlerterMetrics(CollectorRegistry()))
    dispatcher.start()
    try:
        first, second = job("m1", "pagerduty"), job("m1", "pagerduty", "resolve", revision=2)
        dispatcher.submit([first, second])
        assert wait(lambda: dispatcher.idle() and {first.id, second.id} <= set(ledger.done))
        assert pd.actions == [("m1", "trigger"), ("m1", "resolve")]  # each once, in order
    finally:
        dispatcher.stop()
