"""The alerter's service layer (services/alerter/service.py) against the in-memory adapters and a fake
wall clock: scores, escalation ticks, operator feedback and the outbox sweep, each turned into durable
state, alert / feedback records on their topics and notifications handed to the delivery queue."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from forewarn.alerting.changes import Changes, ScoreInput
from forewarn.alerting.events import FeedbackRequest
from forewarn.alerting.policy import InvalidTransition, Policy, PolicyBook
from forewarn.kafka import KafkaUnavailable
from forewarn.schemas import AlertEvent, FeedbackEvent, RiskScore
from forewarn.services.alerter.adapters.memory import (
    InMemoryAlertStore,
    InMemoryDeliveryQueue,
    InMemoryPublisher,
)
from forewarn.services.alerter.metrics import AlerterMetrics
from forewarn.services.alerter.ports import AlertNotFound, StateLost
from forewarn.services.alerter.service import AlertService, OutboxTiming, Topics

T0 = 1_767_225_600_000  # event time of the first score
WALL0 = 1_780_000_000_000  # wall time when the test starts
MIN = 60_000
SOURCE = "risk.scores:0"
KEY = "m1:any"
TOPICS = Topics(scores="risk.scores", alerts="alerts", dead_letters="alerts.dlq", feedback="feedback")
NOTIFIERS = ("pagerduty", "slack")
POLICY = Policy(enter_p=0.8, exit_p=0.5, min_consecutive=3, resolve_after_low=3, cooldown="20s",
                escalate_after="1m", max_escalations=2)


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Harness:
    """An AlertService over the in-memory store, publisher and delivery queue, with a clock it sets."""

    def __init__(self, policy: Policy = POLICY, store: InMemoryAlertStore | None = None) -> None:
        self.store = store or InMemoryAlertStore()
        self.publisher = InMemoryPublisher()
        self.queue = InMemoryDeliveryQueue()
        self.clock = FakeClock(WALL0)
        self.registry = CollectorRegistry()
        self.service = AlertService(
            self.store, self.publisher, self.queue, PolicyBook(defaults=policy), TOPICS, NOTIFIERS,
            AlerterMetrics(self.registry), clock_ms=self.clock, outbox=OutboxTiming(),
        )
        self.position = 0

    def batch(self, values: Sequence[float], machine: str = "m1") -> list[ScoreInput]:
        """The next scores of ``machine`` on SOURCE, one second apart in event time."""
        items = []
        for p in values:
            score = RiskScore(machine_id=machine, machine_type="pump", ts=T0 + self.position * 1000, p_failure=p,
                              model_name="m", model_version="1", site="plant-a")
            items.append(ScoreInput(SOURCE, self.position, score))
            self.position += 1
        return items

    def scores(self, values: Sequence[float], machine: str = "m1") -> list[ScoreInput]:
        items = self.batch(values, machine)
        self.service.handle_scores(items)
        return items

    def alert_events(self) -> list[AlertEvent]:
        return [AlertEvent.model_validate_json(m.value) for m in self.publisher.on(TOPICS.alerts)]

    def actions(self) -> list[str]:
        return [e.action for e in self.alert_events()]

    def counted(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def trigger(self) -> str:
        """Three high scores: one alert; returns its id."""
        self.scores([0.9, 0.9, 0.9])
        (alert_id,) = {e.alert_id for e in self.alert_events()}
        return alert_id


@pytest.fixture
def h() -> Harness:
    return Harness()


# ---- handle_scores ------------------------------------------------------------------------------


def test_a_run_of_high_scores_triggers_one_alert_after_min_consecutive(h: Harness) -> None:
    h.scores([0.9, 0.9])
    assert h.publisher.published == [] and h.queue.submitted == []
    tracker = h.store.load([KEY])[KEY].tracker
    assert tracker is not None and tracker.status == "pending" and tracker.high_count == 2
    assert h.store.restless_keys() == {KEY} and h.store.active_keys() == []

    h.scores([0.95, 0.97])  # the third high triggers; the fourth only updates the alert
    (event,) = h.alert_events()
    assert (event.action, event.state, event.machine_id, event.revision) == ("trigger", "triggered", "m1", 1)
    assert event.opened_ts == T0 + 2000 and event.emitted_at == WALL0
    assert h.store.active_keys() == [KEY]
    stored = h.store.get_alert(event.alert_id)
    assert stored is not None and stored.state == "triggered" and stored.p_failure == 0.97
    assert h.store.list_alerts() == [stored]
    # notifications: one per configured notifier, handed over and left in the outbox until delivered
    assert [j.id for j in h.queue.submitted] == [f"{event.event_id}.{name}" for name in NOTIFIERS]
    assert {j.id for j in h.store.pending_deliveries()} == {j.id for j in h.queue.submitted}
    # the Kafka record is confirmed, so it left the outbox
    assert h.store.pending_messages() == []
    assert h.store.load([KEY])[KEY].positions == {SOURCE: 3}
    assert h.counted("forewarn_alerter_scores_total", outcome="applied") == 4
    assert h.counted("forewarn_alerter_alert_actions_total", action="trigger", machine_type="pump") == 1
    # reading -> alert: the wall clock at publication minus the triggering score's event time, once
    assert h.counted("forewarn_alerter_reading_to_alert_seconds_count") == 1
    assert h.counted("forewarn_alerter_reading_to_alert_seconds_sum") == max(0.0, (WALL0 - event.ts) / 1000.0)


def test_high_scores_interrupted_by_a_low_one_start_counting_again(h: Harness) -> None:
    h.scores([0.9, 0.9, 0.2, 0.9, 0.9])
    assert h.actions() == []
    h.scores([0.9])
    assert h.actions() == ["trigger"]


def test_low_scores_resolve_the_alert(h: Harness) -> None:
    alert_id = h.trigger()
    h.scores([0.2, 0.2])
    assert h.actions() == ["trigger"]
    h.scores([0.2])
    assert h.actions() == ["trigger", "resolve"]
    resolved = h.alert_events()[-1]
    assert (resolved.alert_id, resolved.state, resolved.previous_state) == (alert_id, "resolved", "triggered")
    stored = h.store.get_alert(alert_id)
    assert stored is not None and stored.state == "resolved" and stored.resolved_ts == T0 + 5000
    assert h.store.active_keys() == []
    assert [j.event.action for j in h.queue.submitted] == ["trigger", "trigger", "resolve", "resolve"]


def test_a_replayed_batch_with_the_same_positions_changes_nothing(h: Harness) -> None:
    items = h.batch([0.9, 0.9, 0.9, 0.2])
    h.service.handle_scores(items)
    before = (h.store.load([KEY]), h.store.list_alerts(), h.store.pending_deliveries())
    published, submitted = list(h.publisher.published), list(h.queue.submitted)

    h.clock.now += MIN  # even later on the wall clock
    h.service.handle_scores(items)
    assert (h.store.load([KEY]), h.store.list_alerts(), h.store.pending_deliveries()) == before
    assert h.publisher.published == published and h.queue.submitted == submitted
    assert h.counted("forewarn_alerter_scores_total", outcome="duplicate") == 4
    assert h.counted("forewarn_alerter_scores_total", outcome="applied") == 4


def test_an_empty_batch_does_nothing(h: Harness) -> None:
    h.service.handle_scores([], require_loaded=True)
    assert h.store.load([KEY])[KEY].tracker is None and h.publisher.published == []


def test_require_loaded_with_an_unloaded_source_raises_state_lost_and_decides_nothing(h: Harness) -> None:
    items = h.batch([0.9, 0.9, 0.9])
    with pytest.raises(StateLost) as lost:
        h.service.handle_scores(items, require_loaded=True)
    assert lost.value.sources == [SOURCE]
    assert h.store.load([KEY])[KEY].tracker is None
    assert h.publisher.published == [] and h.queue.submitted == []
    with pytest.raises(StateLost):
        h.service.needs_policy([i.score for i in items], [SOURCE], require_loaded=True)

    h.store.write_rebuilt(Changes(), [SOURCE])  # the rebuild marks the source loaded
    h.service.handle_scores(items, require_loaded=True)
    assert h.actions() == ["trigger"]


def test_a_failed_publish_leaves_the_records_in_the_outbox_and_the_next_batch_sends_them_first(
    h: Harness,
) -> None:
    h.publisher.fail = True
    with pytest.raises(KafkaUnavailable):
        h.scores([0.9, 0.9, 0.9])
    (pending,) = h.store.pending_messages()
    assert h.store.active_keys() == [KEY]  # the decision is durable all the same
    assert len(h.queue.submitted) == 2  # notifications do not wait for Kafka

    h.publisher.fail = False
    h.clock.now += 1000  # the outbox is ordered by creation time (ties by random event id)
    h.scores([0.2, 0.2, 0.2])
    assert h.publisher.published[0] == pending
    # The flush reads the outbox after this batch's records joined it, so they may go out twice: harmless,
    # event ids are stable. What counts is that every record went out, in order, and the outbox is empty.
    assert list(dict.fromkeys(e.action for e in h.alert_events())) == ["trigger", "resolve"]
    assert h.store.pending_messages() == []


# ---- tick ---------------------------------------------------------------------------------------


def test_tick_escalates_on_the_wall_clock_at_most_max_escalations_times(h: Harness) -> None:
    h.service.tick()  # nothing active: nothing to do
    alert_id = h.trigger()
    h.clock.now = WALL0 + MIN - 1
    h.service.tick()
    assert h.actions() == ["trigger"]

    h.clock.now = WALL0 + MIN
    h.service.tick()
    assert h.actions() == ["trigger", "escalate"]
    escalated = h.alert_events()[-1]
    assert (escalated.escalation_level, escalated.revision, escalated.severity) == (1, 2, "critical")
    h.service.tick()  # the same moment again: nothing new
    assert h.actions() == ["trigger", "escalate"]

    h.clock.now = WALL0 + 2 * MIN
    h.service.tick()
    h.clock.now = WALL0 + 10 * MIN
    h.service.tick()
    assert h.actions() == ["trigger", "escalate", "escalate"]
    stored = h.store.get_alert(alert_id)
    assert stored is not None and stored.escalation_level == 2 and stored.state == "triggered"
    assert [j.event.action for j in h.queue.submitted].count("escalate") == 2 * len(NOTIFIERS)
    assert h.store.pending_messages() == []


def test_an_acknowledged_alert_does_not_escalate(h: Harness) -> None:
    alert_id = h.trigger()
    h.service.feedback(alert_id, FeedbackRequest(kind="acknowledged"))
    h.clock.now = WALL0 + 10 * MIN
    h.service.tick()
    assert "escalate" not in h.actions()


# ---- feedback -----------------------------------------------------------------------------------


def feedback_events(h: Harness) -> list[FeedbackEvent]:
    return [FeedbackEvent.model_validate_json(m.value) for m in h.publisher.on(TOPICS.feedback)]


def test_acknowledge_then_false_alarm(h: Harness) -> None:
    alert_id = h.trigger()
    h.clock.now = WALL0 + 5000
    result = h.service.feedback(alert_id, FeedbackRequest(kind="acknowledged", operator="ana"))
    assert result.published
    assert (result.alert.state, result.alert.acknowledged_at) == ("acknowledged", WALL0 + 5000)
    assert h.store.get_alert(alert_id) == result.alert
    tracker = h.store.load([KEY])[KEY].tracker
    assert tracker is not None and tracker.status == "acknowledged" and tracker.alert == result.alert
    assert h.store.active_keys() == [KEY]
    assert h.actions() == ["trigger", "acknowledge"]
    (label,) = feedback_events(h)
    assert label == result.event
    assert (label.kind, label.alert_id, label.operator, label.received_at) == (
        "acknowledged", alert_id, "ana", WALL0 + 5000)

    result = h.service.feedback(alert_id, FeedbackRequest(kind="false_alarm"))
    assert (result.alert.state, result.alert.outcome) == ("resolved", "false_alarm")
    assert h.store.active_keys() == []
    assert h.actions() == ["trigger", "acknowledge", "resolve"]
    assert [e.kind for e in feedback_events(h)] == ["acknowledged", "false_alarm"]
    assert h.store.pending_messages() == []
    assert h.counted("forewarn_alerter_feedback_total", kind="acknowledged") == 1
    assert h.counted("forewarn_alerter_feedback_total", kind="false_alarm") == 1

    # a false alarm is final: no verdict is allowed any more, and nothing is written or published
    published = list(h.publisher.published)
    with pytest.raises(InvalidTransition):
        h.service.feedback(alert_id, FeedbackRequest(kind="maintenance_done"))
    assert h.publisher.published == published
    assert h.store.get_alert(alert_id) == result.alert


def test_feedback_on_a_resolved_alert_is_a_note_that_notifies_nobody(h: Harness) -> None:
    alert_id = h.trigger()
    h.scores([0.2, 0.2, 0.2])
    submitted = len(h.queue.submitted)
    with pytest.raises(InvalidTransition):
        h.service.feedback(alert_id, FeedbackRequest(kind="acknowledged"))
    result = h.service.feedback(alert_id, FeedbackRequest(kind="confirmed_failure", failure_ts=T0))
    assert (result.alert.state, result.alert.outcome) == ("resolved", "confirmed_failure")
    assert h.actions()[-1] == "feedback"
    assert len(h.queue.submitted) == submitted  # feedback notes have no route
    (label,) = feedback_events(h)
    assert (label.kind, label.failure_ts) == ("confirmed_failure", T0)


def test_feedback_on_an_unknown_alert_raises_alert_not_found(h: Harness) -> None:
    h.trigger()
    with pytest.raises(AlertNotFound):
        h.service.feedback("no-such-alert", FeedbackRequest(kind="acknowledged"))
    assert feedback_events(h) == []
    assert h.counted("forewarn_alerter_feedback_total", kind="acknowledged") == 0


def test_feedback_is_stored_when_kafka_is_down_and_published_by_the_sweep(h: Harness) -> None:
    alert_id = h.trigger()
    h.publisher.fail = True
    result = h.service.feedback(alert_id, FeedbackRequest(kind="acknowledged"))
    assert not result.published
    assert h.store.get_alert(alert_id) == result.alert
    assert {m.topic for m in h.store.pending_messages()} == {TOPICS.alerts, TOPICS.feedback}

    h.publisher.fail = False
    h.service.sweep(startup=True)
    assert feedback_events(h) == [result.event]
    assert h.store.pending_messages() == []


# ---- sweep --------------------------------------------------------------------------------------


def test_sweep_republishes_only_outbox_messages_older_than_the_min_age(h: Harness) -> None:
    h.publisher.fail = True
    with pytest.raises(KafkaUnavailable):
        h.trigger()
    h.publisher.fail = False

    h.clock.now = WALL0 + OutboxTiming().message_stale_ms - 1
    h.service.sweep()
    assert h.publisher.published == [] and len(h.store.pending_messages()) == 1

    h.clock.now = WALL0 + OutboxTiming().message_stale_ms
    h.service.sweep()
    assert h.actions() == ["trigger"]
    assert h.store.pending_messages() == []


def test_sweep_resubmits_stale_deliveries_not_in_flight(h: Harness) -> None:
    h.trigger()
    jobs = h.store.pending_deliveries()
    assert len(jobs) == 2
    h.clock.now = WALL0 + OutboxTiming().delivery_stale_ms
    h.service.sweep()  # still in flight in this process's queue: left alone
    assert len(h.queue.submitted) == 2

    restarted = Harness(store=h.store)  # a new process: nothing in flight
    restarted.clock.now = WALL0 + OutboxTiming().delivery_stale_ms - 1
    restarted.service.sweep()
    assert restarted.queue.submitted == []
    restarted.service.sweep(startup=True)  # at startup everything pending is taken, however young
    assert restarted.queue.submitted == jobs
