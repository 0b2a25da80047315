"""Kafka on the secure profile refuses what it must (plain text, a wrong password, a service outside its
ACL) and lets every service do what the ACL table grants, with settings taken from ``client_env``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

import pytest

from forewarn import topics
from forewarn.kafka import connection_config
from forewarn.settings import ForewarnSettings, KafkaSettings
from forewarn.stack import secure, secure_kafka
from forewarn.stack.manager import LocalStack

pytestmark = pytest.mark.integration


def _settings_as(stack: LocalStack, principal: str, prefix: str) -> KafkaSettings:
    """What a process started with client_env(principal) reads from its environment."""
    env = {k: v for k, v in secure.client_env(stack.settings, principal).items() if k.startswith("FOREWARN_KAFKA__")}
    with mock.patch.dict(os.environ, {**env, "FOREWARN_KAFKA__TOPIC_PREFIX": prefix}):
        return ForewarnSettings().kafka


def _errors_seen(config: Mapping[str, Any], until: Callable[[list[Any]], bool], timeout_s: float = 8.0) -> list[Any]:
    """The client-level errors (error_cb) an admin client reports while trying to list topics."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    seen: list[Any] = []
    with_callback: dict[str, Any] = {**config, "log_level": 0, "error_cb": seen.append}
    client = AdminClient(with_callback)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(seen):
        with pytest.raises(KafkaException):
            client.list_topics(timeout=1)
        client.poll(0)  # serves error_cb
    return seen


def _produce(settings: KafkaSettings, topic: str, value: bytes) -> Any:
    """The delivery error of one message (None when the broker took it)."""
    from forewarn import kafka

    outcome: list[Any] = []
    producer = kafka.producer(settings, extra_config={"message.timeout.ms": 10_000, "linger.ms": 0})
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(15)
    assert outcome, f"no delivery report for {topic}"
    return outcome[0]


def _consume(settings: KafkaSettings, group: str, names: list[str], expected: int, timeout_s: float = 20.0
             ) -> tuple[dict[str, list[bytes]], list[Any]]:
    """Subscribe as a group member; return messages by topic (and any errors) once ``expected`` arrived."""
    from forewarn import kafka

    consumer = kafka.consumer(settings, group)
    got: dict[str, list[bytes]] = {}
    errors: list[Any] = []
    try:
        consumer.subscribe(names)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and sum(map(len, got.values())) < expected and not errors:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                errors.append(message.error())
                continue
            got.setdefault(message.topic(), []).append(message.value())
        if got and not errors:
            consumer.commit(asynchronous=False)  # committing offsets needs the group ACL too
    finally:
        consumer.close()
    return got, errors


def test_secure_kafka_refuses_strangers_and_serves_each_service_its_own_topics(secure_stack: object, uid: str
                                                                               ) -> None:
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewTopic

    assert isinstance(secure_stack, LocalStack)
    stack = secure_stack
    prefix = f"test.{uid}."
    # The stack's own topics and ACLs, for a prefix of this test's own (what `stack up` does for "").
    tenant = stack.settings.model_copy(update={"kafka": stack.settings.kafka.model_copy(
        update={"topic_prefix": prefix})})
    tenant_stack = LocalStack(tenant, only=("kafka",))
    secure_kafka.ensure_acls(tenant_stack.kafka_admin(), prefix)
    tenant_stack.ensure_topics(topics.ALL)
    try:
        as_ = {principal: _settings_as(stack, principal, prefix) for principal in secure_kafka.ACCESS}
        scorer = as_["scorer"]
        address = scorer.bootstrap_servers

        # A plaintext client gets nowhere: the broker speaks TLS on its only client port.
        plain = _errors_seen({"bootstrap.servers": address}, until=bool, timeout_s=3)
        assert plain and all(e.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN) for e in plain)
        # TLS but no SASL: refused as well.
        tls_only = {"bootstrap.servers": address, "security.protocol": "SSL", "ssl.ca.location": scorer.ssl_ca_location}
        assert _errors_seen(tls_only, until=bool, timeout_s=3)

        # A wrong password: SASL authentication fails (and says so).
        wrong = {**connection_config(scorer), "sasl.password": "not-the-password"}
        failed = _errors_seen(wrong, until=lambda seen: any(e.code() == KafkaError._AUTHENTICATION for e in seen))
        assert any(e.code() == KafkaError._AUTHENTICATION and "Authentication failed" in e.str() for e in failed)

        # Outside its ACL: the scorer may not write alerts or read readings, or join another service's group.
        assert _produce(scorer, scorer.topic(topics.ALERTS), b"x").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        assert (_produce(as_["ingest"], as_["ingest"].topic(topics.RISK_SCORES), b"x").code()
                == KafkaError.TOPIC_AUTHORIZATION_FAILED)
        _, errors = _consume(scorer, f"forewarn-scorer-{uid}", [scorer.topic(topics.SENSOR_READINGS)], 1, 10)
        assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        _, errors = _consume(scorer, f"forewarn-alerter-{uid}", [scorer.topic(topics.FEATURE_VECTORS)], 1, 10)
        assert errors and errors[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED

        # faust's internal topics: the features service owns those named after its app id, nothing else.
        features_admin = _admin(as_["features"])
        own = f"{secure_kafka.FEATURES_APP_ID}-{uid}-__assignor-__leader"
        features_admin.create_topics([NewTopic(own, 1, 1)])[own].result(timeout=30)
        features_admin.delete_topics([own])[own].result(timeout=30)
        other = f"someone-else-{uid}"
        with pytest.raises(Exception, match="TOPIC_AUTHORIZATION_FAILED"):
            features_admin.create_topics([NewTopic(other, 1, 1)])[other].result(timeout=30)

        # Every grant works: each writer writes each of its topics, then each reader reads all of its topics
        # as a member of its own group and commits.
        for principal, access in secure_kafka.ACCESS.items():
            for name in sorted(access.writes):
                error = _produce(as_[principal], as_[principal].topic(name), f"{principal}:{name}".encode())
                assert error is None, f"{principal} could not write {name}: {error}"
        writers = {name: sorted(p for p, a in secure_kafka.ACCESS.items() if name in a.writes)
                   for name in topics.ALL}

        def read(principal: str) -> None:
            access, kafka_settings = secure_kafka.ACCESS[principal], as_[principal]
            names = sorted(access.reads)
            group = f"{access.group_prefixes[0]}-{uid}"
            expected = sum(len(writers[n]) for n in names)
            got, errors = _consume(kafka_settings, group, [kafka_settings.topic(n) for n in names], expected)
            assert not errors, f"{principal} reading {names}: {errors}"
            for name in names:
                values = sorted(got.get(kafka_settings.topic(name), []))
                assert values == sorted(f"{w}:{name}".encode() for w in writers[name]), (principal, name)

        readers = [p for p, a in secure_kafka.ACCESS.items() if a.reads]
        with ThreadPoolExecutor(len(readers)) as pool:
            list(pool.map(read, readers))
    finally:
        tenant_stack.delete_topics(topics.ALL)


def _admin(settings: KafkaSettings) -> Any:
    from forewarn import kafka

    return kafka.admin(settings)
