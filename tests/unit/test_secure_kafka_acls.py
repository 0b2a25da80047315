"""The secure profile's Kafka ACL table and broker properties, without a broker."""

from __future__ import annotations

from pathlib import Path

from forewarn import topics
from forewarn.stack import secure, secure_kafka
from forewarn.stack.config import StackSettings

ACCESS = secure_kafka.ACCESS


def test_every_topic_has_a_writer_and_a_reader() -> None:
    for name in topics.ALL:
        assert any(name in a.writes for a in ACCESS.values()), f"nobody may write {name}"
        assert any(name in a.reads for a in ACCESS.values()), f"nobody may read {name}"


def test_the_table_names_only_known_topics_and_principals() -> None:
    assert set(ACCESS) == set(secure.KAFKA_USERS) - {"admin"}  # admin is the super user, outside the table
    for access in ACCESS.values():
        assert access.reads | access.writes <= set(topics.ALL)


def test_least_privilege_on_the_pipeline_topics() -> None:
    writers = {name: {p for p, a in ACCESS.items() if name in a.writes} for name in topics.ALL}
    assert writers[topics.SENSOR_READINGS] == {"ingest"}
    assert writers[topics.FEATURE_VECTORS] == {"features"}
    assert writers[topics.RISK_SCORES] == {"scorer"}
    assert writers[topics.ALERTS] == {"alerter"}
    assert writers[topics.MODEL_HEALTH] == {"monitor"}
    # No stage writes what it consumes from upstream: the only topics read and written by one principal
    # are the alerter's own alerts (its state rebuild) and the CLI's own audit trail and labels.
    both = {p: a.reads & a.writes for p, a in ACCESS.items() if a.reads & a.writes}
    assert both == {"alerter": {topics.ALERTS}, "retrain": {topics.AUDIT, topics.GROUND_TRUTH}}
    assert not ACCESS["scorer"].reads & {topics.SENSOR_READINGS, topics.ALERTS}
    assert not ACCESS["ingest"].reads


def test_group_prefixes_cover_each_services_default_group() -> None:
    from forewarn.services.alerter.settings import AlerterOptions
    from forewarn.services.features.settings import FeaturesOptions
    from forewarn.services.monitor.settings import MonitorOptions
    from forewarn.services.scorer.settings import ScorerOptions

    app_id = FeaturesOptions.model_fields["app_id"].default
    groups = {"scorer": ScorerOptions.model_fields["group_id"].default,
              "alerter": AlerterOptions.model_fields["consumer_group"].default,
              "monitor": MonitorOptions.model_fields["group_id"].default, "features": app_id}
    for principal, group in groups.items():
        assert any(group.startswith(p) for p in ACCESS[principal].group_prefixes), (principal, group)
        others = [p for other, a in ACCESS.items() if other != principal for p in a.group_prefixes
                  if p != secure_kafka.RANGE_READER_GROUP]
        assert not any(group.startswith(p) for p in others), f"{group} is joinable by another principal"
    assert app_id == secure_kafka.FEATURES_APP_ID  # faust's internal topics' prefix


def test_grants_are_literal_on_prefixed_topic_names_and_never_for_everyone() -> None:
    grants = secure_kafka.grants("tenant.")
    topic_grants = [g for g in grants if g.resource == "topic" and g.pattern == "literal"]
    assert {g.name for g in topic_grants} == {f"tenant.{t}" for t in topics.ALL}
    assert ("scorer", "tenant.risk.scores", "write") in {(g.principal, g.name, g.operation) for g in topic_grants}
    assert ("scorer", "tenant.alerts", "write") not in {(g.principal, g.name, g.operation) for g in topic_grants}
    # The only wide grants: faust's own topics, and consumer groups by prefix.
    wide = [g for g in grants if g.pattern == "prefixed"]
    assert {(g.principal, g.name) for g in wide if g.resource == "topic"} == {("features", "forewarn-features")}
    assert all(g.operation == "read" for g in wide if g.resource == "group")
    assert all(g.principal in ACCESS and g.principal not in ("*", "ANONYMOUS") for g in grants)
    bindings = secure_kafka.acl_bindings("tenant.")
    assert len(bindings) == len(grants) and all(b.principal.startswith("User:") for b in bindings)


def test_broker_properties_have_no_plaintext_listener_and_deny_by_default() -> None:
    lines = secure_kafka.broker_properties(host="127.0.0.1", port=1, controller_port=2, keystore="k.pem",
                                           truststore="ca.pem", admin_password="pw")
    props = dict(line.split("=", 1) for line in lines)
    assert "PLAINTEXT" not in props["listener.security.protocol.map"].replace("SASL_", "")
    assert props["listeners"] == "SASL_SSL://127.0.0.1:1,CONTROLLER://127.0.0.1:2"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"


def test_client_env_gives_each_principal_its_own_sasl_ssl_identity(tmp_path: Path) -> None:
    from pydantic import SecretStr

    base = StackSettings()
    settings = base.model_copy(update={"stack": base.stack.model_copy(
        update={"profile": "secure", "state_dir": tmp_path, "kafka_port": 29092})})
    secure.credentials(settings)  # generated once
    scorer = secure_kafka.client_env(settings, "scorer")
    assert scorer["FOREWARN_KAFKA__BOOTSTRAP_SERVERS"] == "127.0.0.1:29092"
    assert scorer["FOREWARN_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert scorer["FOREWARN_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert scorer["FOREWARN_KAFKA__SASL_USERNAME"] == "scorer"
    assert scorer["FOREWARN_KAFKA__SASL_PASSWORD"] == secure.credentials(settings).kafka["scorer"]
    assert Path(scorer["FOREWARN_KAFKA__SSL_CA_LOCATION"]).is_file()
    assert secure_kafka.client_env(settings, "ingest")["FOREWARN_KAFKA__SASL_PASSWORD"] != scorer[
        "FOREWARN_KAFKA__SASL_PASSWORD"]
    # The stack itself talks as admin in the secure profile, plainly in the default one.
    admin = secure_kafka.stack_client_settings(settings)
    assert admin.sasl_username == "admin" and isinstance(admin.sasl_password, SecretStr)
    plain = secure_kafka.stack_client_settings(base)
    assert plain.security_protocol == "PLAINTEXT" and plain.sasl_username is None
    # The same identity reaches faust (aiokafka) and Spark (the Java client) through forewarn.kafka.
    from forewarn import kafka

    kafka_settings = secure_kafka.client_settings(settings, "features")
    credentials = kafka.faust_options(kafka_settings)["broker_credentials"]
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert credentials.username == "features" and credentials.ssl_context is not None
    spark = kafka.spark_options(secure_kafka.client_settings(settings, "retrain"))
    assert spark["kafka.security.protocol"] == "SASL_SSL" and spark["kafka.ssl.truststore.type"] == "PEM"
    assert "ScramLoginModule required username=\"retrain\"" in spark["kafka.sasl.jaas.config"]
