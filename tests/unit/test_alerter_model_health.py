"""Model-health alerts: the monitor's judgements (forewarn.schemas.ModelHealthEvent) through the alerter's
unchanged policy, to the data-science Slack channel and never to PagerDuty.

Covers the mapping (forewarn.alerting.model_health), the policy (shipped model_health entry: two active
windows trigger, two clear windows resolve, a repeated window never counts twice), the routes, the stream
loop's dispatch by topic, the rebuild's replay, the notifier's message and its settings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from forewarn import scores_wire
from forewarn.alerting.changes import ScoreInput
from forewarn.alerting.events import FeedbackRequest
from forewarn.alerting.model_health import (
    MODEL_HEALTH_TYPE,
    health_evidence,
    health_machine_id,
    health_score,
    is_model_health,
    model_and_scope,
)
from forewarn.alerting.policy import dedup_key_for, failure_mode_of, new_tracker, on_score
from forewarn.alerting.replay import replay
from forewarn.kafka import Decoded
from forewarn.schemas import AlertEvent, ModelHealthEvent, RiskScore
from forewarn.services.alerter.adapters.memory import InMemoryAlertStore, InMemoryDeliveryQueue, InMemoryPublisher
from forewarn.services.alerter.entrypoints.stream_loop import AlertStreamLoop
from forewarn.services.alerter.metrics import AlerterMetrics
from forewarn.services.alerter.notifiers.registry import DEFAULT_ROUTE_NAMES, NOTIFIER_NAMES
from forewarn.services.alerter.notifiers.slack_data_science import (
    DEFAULT_CHANNEL,
    SlackDataScienceConfig,
    SlackDataScienceNotifier,
    model_health_message,
)
from forewarn.services.alerter.policy_file import AlertPolicyError, load_policy_book, parse_policy_book
from forewarn.services.alerter.service import AlertService, Topics
from forewarn.services.alerter.settings import AlerterOptions
from receivers import slack_problems

T0 = 1_767_225_600_000
WINDOW = 60_000
WALL0 = 1_780_000_000_000
HEALTH_TOPIC = "model.health"
SOURCE = f"{HEALTH_TOPIC}:0"
TOPICS = Topics(scores="risk.scores", alerts="alerts", dead_letters="alerts.dlq", feedback="feedback",
                model_health=HEALTH_TOPIC)
ALL_NOTIFIERS = ("pagerduty", "slack", "webhook", "slack_data_science")
KEY = "model:forewarn-failure:pump:data_drift"
SUMMARY = ("data drift on pump: vibration, temperature drifted (share 0.31 of monitored features); see the "
           "Evidently report in MLflow run 4f2a")


def judgement(window: int, active: bool, **overrides: Any) -> ModelHealthEvent:
    fields: dict[str, Any] = dict(
        event_id=f"forewarn-failure.3.data_drift.pump.{window}", condition="data_drift", scope="pump",
        active=active, value=0.31 if active else 0.05, limit=0.25, model_name="forewarn-failure",
        model_version="3", window=window, window_start_ts=T0 + window * WINDOW,
        window_end_ts=T0 + (window + 1) * WINDOW - 1,
        summary=SUMMARY if active else "no data drift on pump (share 0.05 < 0.25)",
        sensors=["vibration", "temperature"] if active else [],
        details={"drifted_features": {"temperature_mean_10m": 0.4, "vibration_rms_1m": 0.7}} if active else {},
        emitted_at=WALL0 + window,
    )
    fields.update(overrides)
    return ModelHealthEvent.model_validate(fields)


def machine_score(ts: int) -> RiskScore:
    return RiskScore(machine_id="pump-1", machine_type="pump", ts=ts, p_failure=0.95, model_name="m", model_version="1")


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Harness:
    """The service over the in-memory adapters with the shipped policy and every notifier configured."""

    def __init__(self) -> None:
        self.store = InMemoryAlertStore()
        self.publisher = InMemoryPublisher()
        self.queue = InMemoryDeliveryQueue()
        self.clock = FakeClock(WALL0)
        self.metrics = AlerterMetrics(CollectorRegistry())
        self.service = AlertService(self.store, self.publisher, self.queue, load_policy_book(), TOPICS,
                                    ALL_NOTIFIERS, self.metrics, clock_ms=self.clock)
        self.loop = AlertStreamLoop(None, TOPICS.scores, self.service, self.metrics, health_topic=HEALTH_TOPIC)
        self.offset = 0

    def consume(self, *events: ModelHealthEvent, offset: int | None = None) -> None:
        """Hand the loop one consumed batch of model.health messages (partition 0)."""
        batch = []
        for event in events:
            at = self.offset if offset is None else offset
            batch.append(Decoded(HEALTH_TOPIC, 0, at, [json.loads(event.model_dump_json())]))
            self.offset = max(self.offset, at + 1)
        self.loop._handle(batch)

    def alert_events(self) -> list[AlertEvent]:
        return [AlertEvent.model_validate_json(m.value) for m in self.publisher.on(TOPICS.alerts)]


# ---- the mapping --------------------------------------------------------------------------------


def test_a_judgement_maps_to_one_score_per_model_condition_and_scope() -> None:
    score = health_score(judgement(4, True))
    assert isinstance(score, RiskScore)
    assert (score.machine_id, score.machine_type, score.ts, score.p_failure) == (
        "model:forewarn-failure:pump", MODEL_HEALTH_TYPE, T0 + 5 * WINDOW - 1, 1.0)
    assert failure_mode_of(score) == "data_drift" and score.window_summary == SUMMARY
    assert dedup_key_for(score.machine_id, failure_mode_of(score)) == KEY
    assert (score.model_name, score.model_version) == ("forewarn-failure", "3")
    assert health_score(judgement(5, False)).p_failure == 0.0
    # another condition or scope is another dedup key; another model version is the same one
    keys = {new_tracker(health_score(e)).dedup_key for e in (
        judgement(1, True), judgement(1, True, condition="score_drift"), judgement(1, True, scope="all"),
        judgement(1, True, model_version="4"))}
    assert keys == {KEY, "model:forewarn-failure:pump:score_drift", "model:forewarn-failure:all:data_drift"}


def test_evidence_names_the_sensors_with_their_drifted_features_first() -> None:
    evidence = health_evidence(judgement(1, True, sensors=["vibration", "temperature", "pressure"]))
    assert [(c.feature, c.sensor, c.contribution) for c in evidence] == [
        ("vibration_rms_1m", "vibration", 0.7), ("temperature_mean_10m", "temperature", 0.4),
        ("pressure", "pressure", 0.0)]
    plain = health_evidence(judgement(1, True, details={"drifted_features": ["temperature_mean_10m"]}))
    assert [(c.feature, c.sensor) for c in plain] == [("temperature_mean_10m", "temperature"),
                                                      ("vibration", "vibration")]
    assert health_evidence(judgement(1, True, details={"drifted_features": 3}))[0].feature == "vibration"
    # as forewarn.monitoring describes them: score and threshold; ranked by how far past the threshold
    described = health_evidence(judgement(1, True, details={"features": {
        "vibration_rms_1m": {"score": 0.5, "threshold": 0.25}, "temperature_mean_10m": {"score": 0.5, "threshold": 0.1},
        "pressure_max_1m": {"score": "n/a"}}, "drifted_features": 2}))
    assert [(c.feature, c.sensor, c.value, c.contribution) for c in described] == [
        ("temperature_mean_10m", "temperature", 0.5, 5.0), ("vibration_rms_1m", "vibration", 0.5, 2.0)]


def test_machine_ids_of_model_health_alerts_name_model_and_scope() -> None:
    assert model_and_scope(health_machine_id("forewarn:failure", "all")) == ("forewarn:failure", "all")
    assert model_and_scope("pump-0007") is None
    assert is_model_health(MODEL_HEALTH_TYPE) and not is_model_health("pump")


# ---- the policy ---------------------------------------------------------------------------------


def test_shipped_policy_triggers_on_two_active_windows_and_resolves_on_two_clear_ones() -> None:
    policy = load_policy_book().for_type(MODEL_HEALTH_TYPE)
    tracker = new_tracker(health_score(judgement(0, True)))
    kinds = []
    for window, active in enumerate([True, False, True, True, True, False, True, False, False]):
        decision = on_score(tracker, health_score(judgement(window, active)), policy, WALL0)
        tracker = decision.tracker
        kinds.append([a.kind for a in decision.actions])
    # one active window alone never alerts; the 2nd of two in a row triggers; one clear window in between
    # does not resolve; two clear in a row do
    assert kinds == [[], [], [], ["trigger"], [], [], [], [], ["resolve"]]
    assert tracker.status == "resolved" and tracker.alert is not None
    assert tracker.alert.severity == "warning"
    assert tracker.alert.evidence[0].sensor == "vibration"


def test_the_same_window_again_is_not_counted_twice() -> None:
    policy = load_policy_book().for_type(MODEL_HEALTH_TYPE)
    tracker = new_tracker(health_score(judgement(0, True)))
    tracker = on_score(tracker, health_score(judgement(0, True)), policy, WALL0).tracker
    again = on_score(tracker, health_score(judgement(0, True)), policy, WALL0)  # re-published window
    assert again.stale and again.actions == () and again.tracker.high_count == 1


def test_reasons_say_it_in_the_monitors_words() -> None:
    h = Harness()
    h.consume(judgement(0, True), judgement(1, True), judgement(2, False), judgement(3, False))
    trigger, resolve = h.alert_events()
    assert trigger.reason == f"{SUMMARY} (held for 2 consecutive windows)"
    assert resolve.reason == "clear for 2 consecutive windows: no data drift on pump (share 0.05 < 0.25)"
    assert (trigger.machine_type, trigger.mode, trigger.dedup_key) == (MODEL_HEALTH_TYPE, "data_drift", KEY)
    assert (trigger.ts, trigger.model_version) == (T0 + 2 * WINDOW - 1, "3")


def test_policy_file_without_a_model_health_entry_still_keeps_model_health_off_the_pager() -> None:
    book = parse_policy_book({"defaults": {"min_consecutive": 5, "routes": {"trigger": ["pagerduty"]}}})
    health = book.for_type(MODEL_HEALTH_TYPE)
    assert health.min_consecutive == 2 and health.severity == "warning"
    assert health.routes.trigger == ("slack_data_science",) and health.routes.resolve == ("slack_data_science",)
    # an entry overrides the built-in model-health policy, not the file's defaults
    book = parse_policy_book({"defaults": {"routes": {"trigger": ["pagerduty"]}},
                              "machine_types": {MODEL_HEALTH_TYPE: {"min_consecutive": 3}}})
    health = book.for_type(MODEL_HEALTH_TYPE)
    assert health.min_consecutive == 3 and health.routes.trigger == ("slack_data_science",)


def test_machine_routes_left_unset_go_to_the_on_call_notifiers_only() -> None:
    assert "slack_data_science" in NOTIFIER_NAMES
    assert DEFAULT_ROUTE_NAMES == ("pagerduty", "slack", "webhook")
    pump = parse_policy_book({}).for_type("pump")
    assert pump.routes.trigger == pump.routes.resolve == DEFAULT_ROUTE_NAMES
    shipped = load_policy_book()
    for machine_type in ("pump", "compressor", "turbofan", "unknown-type"):
        routes = shipped.for_type(machine_type).routes
        assert routes.trigger == routes.escalate == routes.resolve == ("pagerduty", "slack", "webhook")


# ---- the service and the stream loop ------------------------------------------------------------


def test_model_health_alerts_go_to_the_data_science_channel_only() -> None:
    h = Harness()
    h.consume(judgement(0, True), judgement(1, True))
    (trigger,) = h.alert_events()
    assert [j.id for j in h.queue.submitted] == [f"{trigger.event_id}.slack_data_science"]
    h.consume(judgement(2, False), judgement(3, False))
    assert [e.action for e in h.alert_events()] == ["trigger", "resolve"]
    assert {j.notifier for j in h.queue.submitted} == {"slack_data_science"}
    assert h.store.active_keys() == []
    # machine alerts beside them keep their on-call routes
    scores = [ScoreInput("risk.scores:0", i, machine_score(T0 + i * 1000)) for i in range(5)]
    h.service.handle_scores(scores)
    machine = [j.notifier for j in h.queue.submitted if j.event.machine_type == "pump"]
    assert machine == ["pagerduty", "slack", "webhook"]


def test_a_reconsumed_message_or_a_republished_window_changes_nothing() -> None:
    h = Harness()
    h.consume(judgement(0, True))
    h.consume(judgement(0, True), offset=0)  # the same message again (a rewound batch)
    h.consume(judgement(0, True))  # the same window, published again at a later offset
    assert h.alert_events() == []
    tracker = h.store.load([KEY])[KEY].tracker
    assert tracker is not None and tracker.high_count == 1
    h.consume(judgement(1, True))
    assert [e.action for e in h.alert_events()] == ["trigger"]


def test_the_loop_skips_invalid_judgements_and_dispatches_scores_beside_them() -> None:
    h = Harness()
    bad = Decoded(HEALTH_TOPIC, 0, 0, [{"condition": "data_drift", "active": True}])
    scores = Decoded(TOPICS.scores, 0, 0, [json.loads(machine_score(T0).model_dump_json())])
    good = Decoded(HEALTH_TOPIC, 0, 1, [json.loads(judgement(0, True).model_dump_json())])
    h.loop._handle([bad, scores, good])
    assert h.store.load([KEY])[KEY].tracker is not None
    assert h.store.load(["pump-1:any"])["pump-1:any"].tracker is not None
    assert h.metrics.registry.get_sample_value("forewarn_alerter_scores_total", {"outcome": "invalid"}) == 1.0


def test_replaying_the_judgements_rebuilds_the_live_state() -> None:
    h = Harness()
    events = [judgement(w, a) for w, a in enumerate([True, True, True, False])]
    h.consume(*events)
    live = h.store.load([KEY])[KEY]
    inputs = [ScoreInput(SOURCE, scores_wire.position(i, 0), health_score(e)) for i, e in enumerate(events)]
    changes, _ = replay(inputs, h.alert_events(), load_policy_book(), WALL0)
    assert changes.trackers[KEY] == live.tracker
    assert changes.positions[KEY] == live.positions


def test_loop_subscribes_to_both_topics() -> None:
    class Consumer:
        topics: list[str] = []

        def subscribe(self, topics: list[str], **_callbacks: Any) -> None:
            self.topics = topics

    h = Harness()
    consumer = Consumer()
    loop = AlertStreamLoop(consumer, TOPICS.scores, h.service, h.metrics, health_topic=HEALTH_TOPIC)
    assert loop.topics == [TOPICS.scores, HEALTH_TOPIC]
    assert AlertStreamLoop(consumer, TOPICS.scores, h.service, h.metrics).topics == [TOPICS.scores]


# ---- the notifier and its settings --------------------------------------------------------------


@pytest.mark.parametrize("action", ["trigger", "escalate", "acknowledge", "resolve"])
def test_data_science_message_is_valid_block_kit_in_words(action: str) -> None:
    h = Harness()
    h.consume(judgement(0, True), judgement(1, True))
    (trigger,) = h.alert_events()
    event = trigger.model_copy(update={"action": action})
    message = model_health_message(event)
    assert slack_problems(message) == []
    text = json.dumps(message)
    for required in ("data drift on pump", "forewarn-failure", "v3", "vibration", "vibration_rms_1m",
                     "temperature", "share 0.31", "Evidently report", trigger.alert_id):
        assert required in text, required
    assert "p_failure" not in text and "100%" not in text  # no machine-risk talk about a model


def test_data_science_notifier_sends_the_channel_override_and_reads_machine_alerts_as_slack_does() -> None:
    notifier = SlackDataScienceNotifier(SlackDataScienceConfig(webhook_url="https://hooks.slack.com/services/D/S/1",
                                                               channel=DEFAULT_CHANNEL))
    try:
        h = Harness()
        h.consume(judgement(0, True), judgement(1, True))
        (trigger,) = h.alert_events()
        request = notifier.request(trigger)
        assert request.url.endswith("/D/S/1") and request.body["channel"] == "#forewarn-data-science"
        assert "Model health" in request.body["text"]
        machine = trigger.model_copy(update={"machine_type": "pump", "machine_id": "pump-7"})
        assert "*Machine*" in json.dumps(notifier.request(machine).body)
    finally:
        notifier.close()


def test_data_science_channel_has_its_own_webhook_or_shares_the_main_one() -> None:
    assert AlerterOptions().delivery_configs() == {}
    shared = AlerterOptions(slack_webhook_url="https://hooks.slack.com/services/T/B/MAIN")
    assert set(shared.notifier_configs()) == {"slack"}
    configs = shared.delivery_configs()
    assert list(configs) == ["slack", "slack_data_science"]
    fallback = configs["slack_data_science"]
    assert isinstance(fallback, SlackDataScienceConfig)
    assert fallback.webhook_url.get_secret_value().endswith("/MAIN") and fallback.channel == DEFAULT_CHANNEL
    own = AlerterOptions(slack_webhook_url="https://hooks.slack.com/services/T/B/MAIN",
                         slack_data_science_webhook_url="https://hooks.slack.com/services/T/B/DS").delivery_configs()
    config = own["slack_data_science"]
    assert isinstance(config, SlackDataScienceConfig)
    assert config.webhook_url.get_secret_value().endswith("/DS") and config.channel is None
    alone = AlerterOptions(slack_data_science_webhook_url="https://hooks.slack.com/services/T/B/DS")
    assert set(alone.delivery_configs()) == {"slack_data_science"}


def test_data_science_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_ALERTER__SLACK_DATA_SCIENCE_WEBHOOK_URL", "https://hooks.slack.com/services/X/Y/Z")
    monkeypatch.setenv("FOREWARN_ALERTER__SLACK_DATA_SCIENCE_CHANNEL", "#ml-alerts")
    from forewarn.services.alerter.settings import AlerterSettings

    config = AlerterSettings().alerter.delivery_configs()["slack_data_science"]
    assert isinstance(config, SlackDataScienceConfig) and config.channel == "#ml-alerts"
    assert "hooks.slack.com" not in repr(AlerterSettings().alerter)


def test_acknowledging_a_model_health_alert_tells_the_data_science_channel_and_stops_escalation() -> None:
    h = Harness()
    h.consume(judgement(0, True), judgement(1, True))
    (trigger,) = h.alert_events()
    result = h.service.feedback(trigger.alert_id, FeedbackRequest(kind="acknowledged", operator="ds-on-duty"))
    assert result.alert.state == "acknowledged" and result.event.machine_type == MODEL_HEALTH_TYPE
    h.clock.now += 5 * 3_600_000  # past the 4 h escalation: acknowledged alerts do not escalate
    h.service.tick()
    assert [e.action for e in h.alert_events()] == ["trigger", "acknowledge"]
    assert {j.notifier for j in h.queue.submitted} == {"slack_data_science"}


def test_an_unacknowledged_model_health_alert_escalates_once_to_the_data_science_channel() -> None:
    h = Harness()
    h.consume(judgement(0, True), judgement(1, True))
    for hours in (5, 9, 13):
        h.clock.now = WALL0 + hours * 3_600_000
        h.service.tick()
    assert [e.action for e in h.alert_events()] == ["trigger", "escalate"]
    assert h.alert_events()[1].severity == "error"
    assert {j.notifier for j in h.queue.submitted} == {"slack_data_science"}


def refusal(run: int, active: bool) -> ModelHealthEvent:
    """As forewarn.retraining.health writes it: one judgement per retraining run."""
    return judgement(run, active, condition="retrain_refused", scope="all", sensors=[], details={},
                     event_id=f"retrain:run-{run}:retrain_refused",
                     summary="retraining did not replace the champion: candidate 4 refused because it does not "
                             "beat the champion on the recent holdout" if active else "retraining promoted 5")


def test_one_refused_retrain_alerts_and_the_next_promotion_resolves() -> None:
    h = Harness()
    h.consume(refusal(0, True))
    (trigger,) = h.alert_events()
    assert trigger.dedup_key == "model:forewarn-failure:all:retrain_refused"
    assert "does not beat the champion" in trigger.reason
    h.consume(refusal(1, False))
    h.consume(refusal(2, True))  # no cooldown: a refusal right after a promotion alerts again
    assert [e.action for e in h.alert_events()] == ["trigger", "resolve", "trigger"]
    assert {j.notifier for j in h.queue.submitted} == {"slack_data_science"}
    # the window conditions of the same model keep their two-window hysteresis
    h.consume(judgement(0, True))
    assert len(h.alert_events()) == 3


def test_modes_override_their_type_and_are_checked() -> None:
    book = parse_policy_book({"machine_types": {
        "pump": {"min_consecutive": 5, "modes": {"bearing": {"min_consecutive": 2}}},
        MODEL_HEALTH_TYPE: {"cooldown": "1h", "modes": {"no_reference": {"min_consecutive": 1}}}}})
    assert book.for_type("pump").min_consecutive == 5 and book.for_type("pump", "seal").min_consecutive == 5
    assert book.for_type("pump", "bearing").min_consecutive == 2
    # a mode inherits its type's entry, and the built-in modes stay unless overridden
    assert book.for_type(MODEL_HEALTH_TYPE, "no_reference").cooldown == 3_600_000
    assert book.for_type(MODEL_HEALTH_TYPE, "no_reference").min_consecutive == 1
    assert book.for_type(MODEL_HEALTH_TYPE, "retrain_refused").min_consecutive == 1
    assert book.for_type(MODEL_HEALTH_TYPE, "data_drift").min_consecutive == 2
    with pytest.raises(AlertPolicyError, match=r"machine_types.pump.modes must map"):
        parse_policy_book({"machine_types": {"pump": {"modes": {"bearing": 3}}}})
    with pytest.raises(AlertPolicyError, match=r"machine_types.pump.modes.bearing.min_consecutive"):
        parse_policy_book({"machine_types": {"pump": {"modes": {"bearing": {"min_consecutive": 0}}}}})
