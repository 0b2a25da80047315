"""The shared Kafka runtime without a broker: config layers, errors with codes, delivery, the batch loop."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError
from pydantic import SecretStr

from forewarn import kafka
from forewarn.settings import KafkaSettings


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes, error: Any = None) -> None:
        self._t, self._p, self._o, self._v, self._e = topic, partition, offset, value, error

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v

    def error(self) -> Any:
        return self._e


class FakeConsumer:
    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = list(batches)
        self.commits: list[list[tuple[str, int, int]]] = []
        self.seeks: list[tuple[str, int, int]] = []

    def consume(self, num: int, timeout: float) -> list[FakeMessage]:
        return self.batches.pop(0) if self.batches else []

    def poll(self, timeout: float) -> FakeMessage | None:
        return None

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


class FakeProducer:
    def __init__(self, fail_with: KafkaError | None = None, stuck: int = 0) -> None:
        self.sent: list[tuple[str, bytes, int | None]] = []
        self.pending: list[Any] = []
        self.fail_with = fail_with
        self.stuck = stuck

    def produce(self, topic: str, value: bytes, on_delivery: Any, partition: int | None = None,
                **_: Any) -> None:
        self.sent.append((topic, value, partition))
        self.pending.append(on_delivery)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for callback in self.pending:
            callback(self.fail_with, None)
        self.pending = []
        return self.stuck


def test_explicit_arguments_win_over_the_pass_through_dict_which_wins_over_defaults() -> None:
    settings = KafkaSettings(bootstrap_servers="b:1")
    config = kafka.client_config(settings, {"linger.ms": 5, "acks": "all"}, {"linger.ms": 50, "x": 1},
                                 {"linger.ms": 500})
    assert config == {"bootstrap.servers": "b:1", "linger.ms": 500, "acks": "all", "x": 1}


def test_plaintext_connection_names_only_the_brokers() -> None:
    assert kafka.connection_config(KafkaSettings(bootstrap_servers="b:1")) == {"bootstrap.servers": "b:1"}


def test_secure_connection_comes_from_settings_alone() -> None:
    settings = KafkaSettings(bootstrap_servers="b:1", security_protocol="SASL_SSL", sasl_username="scorer",
                             sasl_password=SecretStr("s3cret"), ssl_ca_location="/ca.pem")
    assert kafka.connection_config(settings) == {
        "bootstrap.servers": "b:1", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "scorer", "sasl.password": "s3cret", "ssl.ca.location": "/ca.pem"}
    # the password is not in the settings' repr (logs)
    assert "s3cret" not in repr(settings)


def test_lazy_clients_build_nothing_until_used() -> None:
    producer = kafka.LazyProducer(KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    consumer = kafka.LazyConsumer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), "g")
    assert producer._client is None and consumer._client is None
    consumer.close()  # closing an unused consumer opens nothing
    assert consumer._client is None


def test_errors_carry_kafkas_code() -> None:
    error = kafka.KafkaClientError.from_kafka(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART), "consume")
    assert error.code == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert "consume" in str(error) and not error.fatal


def test_delivery_raises_with_the_code_when_the_broker_refused() -> None:
    producer = FakeProducer(fail_with=KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    delivery = kafka.Delivery(producer)
    delivery.produce("t", b"v", partition=2)
    with pytest.raises(kafka.DeliveryFailed) as raised:
        delivery.wait(what="scores")
    assert raised.value.code == KafkaError.MSG_SIZE_TOO_LARGE
    assert "1 of 1 scores not delivered" in str(raised.value) and "MSG_SIZE_TOO_LARGE" in str(raised.value)


def test_delivery_raises_when_messages_remain_queued() -> None:
    delivery = kafka.Delivery(FakeProducer(stuck=1))
    delivery.produce("t", b"v")
    with pytest.raises(kafka.DeliveryFailed, match="1 of 1"):
        delivery.wait()


def test_delivery_confirmed_returns() -> None:
    producer = FakeProducer()
    delivery = kafka.Delivery(producer)
    delivery.produce("t", b"a", partition=1)
    delivery.produce("t", b"b")
    delivery.wait()
    assert producer.sent == [("t", b"a", 1), ("t", b"b", None)]


def _loop(consumer: FakeConsumer, handled: list[Any], **kwargs: Any) -> kafka.BatchLoop[Any]:
    def decode(value: bytes) -> int:
        return int(value)

    def handle(items: list[kafka.Decoded[int]]) -> None:
        handled.append([(i.partition, i.offset, i.value) for i in items])

    return kafka.BatchLoop(consumer, decode, handle, error_backoff_s=0, **kwargs)


def test_a_batch_is_handled_then_committed_after_each_partitions_last_message() -> None:
    consumer = FakeConsumer([[FakeMessage("t", 0, 5, b"1"), FakeMessage("t", 1, 9, b"2"),
                              FakeMessage("t", 0, 6, b"3")]])
    handled: list[Any] = []
    loop = _loop(consumer, handled)
    assert loop.run_once()
    assert handled == [[(0, 5, 1), (1, 9, 2), (0, 6, 3)]]
    assert consumer.commits == [[("t", 0, 7), ("t", 1, 10)]]
    assert loop.batches == 1 and loop.healthy


def test_an_undecodable_message_goes_to_the_error_policy_and_is_committed_past() -> None:
    consumer = FakeConsumer([[FakeMessage("t", 0, 1, b"x"), FakeMessage("t", 0, 2, b"4")]])
    seen: list[tuple[str, int]] = []

    def on_error(exc: Exception, message: Any) -> bool:
        seen.append((type(exc).__name__, message.offset()))
        return True

    handled: list[Any] = []
    assert _loop(consumer, handled, on_error=on_error).run_once()
    assert seen == [("ValueError", 1)]
    assert handled == [[(0, 2, 4)]]
    assert consumer.commits == [[("t", 0, 3)]]


def test_a_policy_that_refuses_a_poison_message_rewinds_the_batch() -> None:
    consumer = FakeConsumer([[FakeMessage("t", 0, 1, b"4"), FakeMessage("t", 0, 2, b"x")]])
    handled: list[Any] = []
    loop = _loop(consumer, handled, on_error=lambda exc, message: False)
    assert not loop.run_once()
    assert handled == [] and consumer.commits == [] and consumer.seeks == [("t", 0, 1)]
    assert not loop.healthy


def test_partition_eof_is_ignored_and_a_fatal_consumer_error_raises() -> None:
    eof = FakeMessage("t", 0, 0, b"", error=KafkaError(KafkaError._PARTITION_EOF))
    consumer = FakeConsumer([[eof]])
    assert not _loop(consumer, []).run_once()
    fatal = FakeMessage("t", 0, 0, b"", error=KafkaError(KafkaError._FATAL, "boom", fatal=True))
    with pytest.raises(kafka.ConsumeFailed):
        _loop(FakeConsumer([[fatal]]), []).run_once()


def test_a_failed_handler_rewinds_each_partition_to_its_first_message() -> None:
    consumer = FakeConsumer([[FakeMessage("t", 0, 5, b"1"), FakeMessage("t", 1, 9, b"2"),
                              FakeMessage("t", 0, 6, b"3")]])

    def handle(items: list[Any]) -> None:
        raise RuntimeError("redis away")

    loop = kafka.BatchLoop(consumer, int, handle, error_backoff_s=0)
    assert not loop.run_once()
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [("t", 0, 5), ("t", 1, 9)]
    assert "redis away" in loop.last_error


def test_a_failed_delivery_raises_when_the_stage_dies_on_failure() -> None:
    consumer = FakeConsumer([[FakeMessage("t", 0, 5, b"1")]])
    producer = FakeProducer(stuck=1)

    def handle(items: list[Any]) -> kafka.Delivery:
        delivery = kafka.Delivery(producer)
        delivery.produce("out", b"x")
        return delivery

    loop = kafka.BatchLoop(consumer, int, handle, on_failure="raise")
    with pytest.raises(kafka.DeliveryFailed):
        loop.run_once()
    assert consumer.commits == []


def test_run_calls_between_batches_until_stopped() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def between() -> None:
        calls.append(1)
        if len(calls) == 3:
            stop.set()

    _loop(FakeConsumer([]), []).run(stop, between)
    assert len(calls) == 3


def test_spark_and_faust_take_the_same_connection() -> None:
    plain = KafkaSettings(bootstrap_servers="a:1,b:2")
    assert kafka.spark_options(plain) == {"kafka.bootstrap.servers": "a:1,b:2"}
    assert kafka.faust_options(plain) == {"broker": "kafka://a:1;kafka://b:2"}
    secure = KafkaSettings(bootstrap_servers="a:1", security_protocol="SASL_SSL", sasl_username="etl",
                           sasl_password=SecretStr("pw"), ssl_ca_location="/ca.pem")
    options = kafka.spark_options(secure)
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert 'ScramLoginModule required username="etl" password="pw";' in options["kafka.sasl.jaas.config"]
    assert options["kafka.ssl.truststore.location"] == "/ca.pem"
