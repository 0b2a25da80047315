"""The contract of the alerter's repository port (services/alerter/ports.py, AlertRepository), as one suite
that every store runs: tests/unit/test_alerter_store_memory.py against InMemoryAlertStore and
tests/integration/test_alerter_store_contract_redis.py against RedisAlertStore on real Redis. A store the
service layer is tested with in memory must behave as the one it runs with.

The class name does not start with ``Test``: pytest collects only its subclasses."""

from __future__ import annotations

import pytest

from forewarn.alerting.changes import Changes, Stored
from forewarn.alerting.events import DeliveryJob, OutMessage, alert_event
from forewarn.alerting.policy import Action, Alert, Tracker
from forewarn.schemas import AlertState
from forewarn.services.alerter.ports import AlertNotFound, AlertRepository, StateLost

T0 = 1_767_225_600_000
SOURCE = "risk.scores:0"
OTHER_SOURCE = "risk.scores:1"


def tracker(key: str, **update: object) -> Tracker:
    return Tracker(dedup_key=key, machine_id=key.split(":")[0], machine_type="pump").model_copy(update=update)


def alert(alert_id: str, *, machine: str = "m1", opened_ts: int = T0, state: AlertState = "triggered",
          revision: int = 1) -> Alert:
    return Alert(
        id=alert_id, dedup_key=f"{machine}:any", machine_id=machine, machine_type="pump", state=state,
        severity="error", reason="p_failure 0.90 >= 0.80 for 3 consecutive scores", revision=revision,
        opened_ts=opened_ts, opened_at=T0, updated_at=T0, p_failure=0.9, peak_p=0.9, last_ts=opened_ts,
    )


def triggered(key: str, alert_id: str) -> Tracker:
    machine = key.split(":")[0]
    return tracker(key, status="triggered", incidents=1, last_ts=T0, alert=alert(alert_id, machine=machine))


def message(message_id: str, created_at: int) -> OutMessage:
    return OutMessage(id=message_id, topic="alerts", key="m1", value="{}", created_at=created_at)


def delivery(alert_id: str, revision: int, notifier: str, created_at: int) -> DeliveryJob:
    a = alert(alert_id, revision=revision)
    event = alert_event(Action(kind="trigger", alert=a, previous_state="pending", reason=a.reason, ts=a.last_ts),
                        emitted_at=created_at)
    return DeliveryJob.for_event(event, notifier, created_at)


def write(store: AlertRepository, changes: Changes) -> Changes:
    """Write ``changes`` as a decision about their trackers' keys would."""
    return store.update_keys(list(changes.trackers), lambda _stored: changes)


class AlertStoreContract:
    def make_store(self) -> AlertRepository:
        raise NotImplementedError

    # ---- policy state --------------------------------------------------------------------------
    def test_unknown_keys_load_as_never_seen(self) -> None:
        store = self.make_store()
        assert store.ping()
        assert store.load(["m1:any", "m2:any", "m1:any"]) == {
            "m1:any": Stored(None, {}), "m2:any": Stored(None, {})}
        assert store.load([]) == {}

    def test_update_keys_decides_on_the_stored_state_and_returns_what_it_wrote(self) -> None:
        store = self.make_store()
        first = Changes(trackers={"m1:any": tracker("m1:any", status="pending", high_count=1, last_ts=T0)},
                        positions={"m1:any": {SOURCE: 7}})
        assert write(store, first) is first

        seen: list[dict[str, Stored]] = []
        second = Changes(trackers={"m1:any": tracker("m1:any", status="pending", high_count=2, last_ts=T0 + 1)},
                         positions={"m1:any": {OTHER_SOURCE: 3}})

        def decide(stored: dict[str, Stored]) -> Changes:
            seen.append(stored)
            return second

        assert store.update_keys(["m1:any", "m2:any"], decide) is second
        assert seen == [{"m1:any": Stored(first.trackers["m1:any"], {SOURCE: 7}), "m2:any": Stored(None, {})}]
        # positions of other input partitions are kept, the tracker replaced
        assert store.load(["m1:any"])["m1:any"] == Stored(second.trackers["m1:any"], {SOURCE: 7, OTHER_SOURCE: 3})

    def test_a_tracker_with_its_alert_round_trips(self) -> None:
        store = self.make_store()
        stored = triggered("m1:any", "a1")
        assert stored.alert is not None
        write(store, Changes(trackers={"m1:any": stored}, positions={"m1:any": {SOURCE: 42}},
                             alerts={"a1": stored.alert}))
        assert store.load(["m1:any"]) == {"m1:any": Stored(stored, {SOURCE: 42})}
        assert store.get_alert("a1") == stored.alert

    def test_require_loaded_raises_state_lost_without_deciding(self) -> None:
        store = self.make_store()
        decided: list[object] = []

        def decide(stored: dict[str, Stored]) -> Changes:
            decided.append(stored)
            return Changes(trackers={"m1:any": tracker("m1:any", status="pending", high_count=1)})

        with pytest.raises(StateLost) as lost:
            store.update_keys(["m1:any"], decide, require_loaded=[SOURCE, OTHER_SOURCE, SOURCE])
        assert lost.value.sources == [SOURCE, OTHER_SOURCE]
        assert decided == []
        assert store.load(["m1:any"]) == {"m1:any": Stored(None, {})}
        assert store.restless_keys() == set()

    def test_write_rebuilt_writes_the_state_then_marks_its_sources_loaded(self) -> None:
        store = self.make_store()
        assert store.missing_loaded([SOURCE, OTHER_SOURCE]) == [SOURCE, OTHER_SOURCE]
        assert store.missing_loaded([]) == []
        rebuilt = {f"m{i}:any": tracker(f"m{i}:any", status="pending", high_count=1, last_ts=T0 + i)
                   for i in range(5)}
        store.write_rebuilt(Changes(trackers=rebuilt, positions={k: {SOURCE: i} for i, k in enumerate(rebuilt)},
                                    alerts={"a1": alert("a1")}), [SOURCE], chunk=2)
        assert store.missing_loaded([SOURCE, OTHER_SOURCE]) == [OTHER_SOURCE]
        assert store.load(rebuilt) == {k: Stored(t, {SOURCE: i}) for i, (k, t) in enumerate(rebuilt.items())}
        assert store.get_alert("a1") == alert("a1")
        assert store.restless_keys() == set(rebuilt)

        # a loaded source no longer stops a decision
        result = store.update_keys(["m0:any"], lambda _s: Changes(), require_loaded=[SOURCE])
        assert result == Changes()

    def test_restless_and_active_keys_follow_every_write(self) -> None:
        store = self.make_store()
        assert store.restless_keys() == set() and store.active_keys() == []
        write(store, Changes(trackers={
            "idle:any": tracker("idle:any", last_ts=T0),
            "pending:any": tracker("pending:any", status="pending", high_count=2),
            "b:any": triggered("b:any", "ab"),
            "a:any": triggered("a:any", "aa").model_copy(update={"status": "acknowledged"}),
        }))
        assert store.restless_keys() == {"pending:any", "b:any", "a:any"}
        assert store.active_keys() == ["a:any", "b:any"]

        write(store, Changes(trackers={
            "pending:any": tracker("pending:any", last_ts=T0 + 5),  # back to rest
            "b:any": tracker("b:any", status="resolved", cooldown_until_ts=T0 + 10),  # cooling down: restless
        }))
        assert store.restless_keys() == {"b:any", "a:any"}
        assert store.active_keys() == ["a:any"]

    # ---- alert records ---------------------------------------------------------------------------
    def test_get_alert_of_an_unknown_id_is_none(self) -> None:
        store = self.make_store()
        write(store, Changes(alerts={"a1": alert("a1")}))
        assert store.get_alert("a1") == alert("a1")
        assert store.get_alert("nope") is None

    def test_list_alerts_filters_and_orders_newest_first(self) -> None:
        store = self.make_store()
        alerts = [
            alert("a1", machine="m1", opened_ts=T0 + 1000, state="resolved"),
            alert("a2", machine="m2", opened_ts=T0 + 2000),
            alert("a3", machine="m1", opened_ts=T0 + 3000, state="acknowledged"),
            alert("a4", machine="m1", opened_ts=T0 + 4000),
            alert("a5", machine="m2", opened_ts=T0 + 4000),  # same opened time as a4: ties by id
        ]
        write(store, Changes(alerts={a.id: a for a in alerts}))

        def ids(**query: object) -> list[str]:
            return [a.id for a in store.list_alerts(**query)]

        assert ids() == ["a5", "a4", "a3", "a2", "a1"]
        assert store.list_alerts(limit=1) == [alerts[4]]
        assert ids(limit=3) == ["a5", "a4", "a3"]
        assert ids(machine_id="m1") == ["a4", "a3", "a1"]
        assert ids(machine_id="m3") == []
        assert ids(state="triggered") == ["a5", "a4", "a2"]
        assert ids(state="triggered", machine_id="m1") == ["a4"]
        assert ids(state="triggered", limit=2) == ["a5", "a4"]
        assert ids(since=T0 + 2000, until=T0 + 3000) == ["a3", "a2"]  # both bounds inclusive
        assert ids(since=T0 + 3001) == ["a5", "a4"]
        assert ids(until=T0 + 1999) == ["a1"]

    def test_update_alert_decides_on_the_alert_and_its_keys_state(self) -> None:
        store = self.make_store()
        current = triggered("m1:any", "a1")
        assert current.alert is not None
        write(store, Changes(trackers={"m1:any": current}, positions={"m1:any": {SOURCE: 1}},
                             alerts={"a1": current.alert}))
        seen: list[tuple[Alert, Stored]] = []
        acknowledged = current.alert.model_copy(update={"state": "acknowledged", "revision": 2})

        def decide(a: Alert, stored: Stored) -> Changes:
            seen.append((a, stored))
            return Changes(trackers={"m1:any": current.model_copy(update={"status": "acknowledged",
                                                                          "alert": acknowledged})},
                           alerts={"a1": acknowledged})

        changes = store.update_alert("a1", decide)
        assert seen == [(current.alert, Stored(current, {SOURCE: 1}))]
        assert changes.alerts == {"a1": acknowledged}
        assert store.get_alert("a1") == acknowledged
        assert store.active_keys() == ["m1:any"]
        stored_tracker = store.load(["m1:any"])["m1:any"].tracker
        assert stored_tracker is not None and stored_tracker.status == "acknowledged"

    def test_update_alert_of_an_unknown_id_raises_alert_not_found(self) -> None:
        store = self.make_store()
        write(store, Changes(alerts={"a1": alert("a1")}))
        decided: list[Alert] = []

        def decide(a: Alert, _stored: Stored) -> Changes:
            decided.append(a)
            return Changes()

        with pytest.raises(AlertNotFound):
            store.update_alert("nope", decide)
        assert decided == []

    # ---- outboxes and the delivery ledger --------------------------------------------------------
    def test_pending_messages_oldest_first_until_cleared(self) -> None:
        store = self.make_store()
        assert store.pending_messages() == []
        later, tie_b, tie_a = message("m-later", T0 + 5), message("m-b", T0), message("m-a", T0)
        write(store, Changes(messages=[later, tie_b]))
        write(store, Changes(messages=[tie_a]))
        assert store.pending_messages() == [tie_a, tie_b, later]

        store.clear_messages(["m-b", "unknown"])
        assert store.pending_messages() == [tie_a, later]
        store.clear_messages([])
        assert store.pending_messages() == [tie_a, later]
        store.clear_messages(m.id for m in [tie_a, later])
        assert store.pending_messages() == []

    def test_pending_deliveries_oldest_first_one_alerts_in_revision_order(self) -> None:
        store = self.make_store()
        jobs = [
            delivery("b", 2, "slack", T0),
            delivery("b", 1, "slack", T0),
            delivery("a", 1, "webhook", T0),
            delivery("a", 1, "pagerduty", T0),
            delivery("a", 3, "slack", T0 - 1),
        ]
        write(store, Changes(deliveries=jobs))
        assert [j.id for j in store.pending_deliveries()] == [
            "a.3.slack", "a.1.pagerduty", "a.1.webhook", "b.1.slack", "b.2.slack"]
        assert store.pending_deliveries()[0] == jobs[4]

    def test_finish_delivery_marks_it_done_and_takes_it_out_of_the_outbox(self) -> None:
        store = self.make_store()
        first, second = delivery("a", 1, "slack", T0), delivery("a", 1, "webhook", T0)
        write(store, Changes(deliveries=[first, second]))
        assert not store.delivery_done(first.id)

        store.finish_delivery(first.id, "delivered")
        assert store.delivery_done(first.id)
        assert not store.delivery_done(second.id)
        assert store.pending_deliveries() == [second]

        store.finish_delivery("never-queued", "dead_lettered")  # a resend of a delivery already taken out
        assert store.delivery_done("never-queued")
        assert store.pending_deliveries() == [second]
