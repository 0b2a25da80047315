"""Spark reads our broker through the connector jars that `make setup` fetched with mvn."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def spark():
    from forewarn.spark import spark_session

    session = spark_session("test-spark-kafka", with_kafka=True)
    yield session
    session.stop()


def test_spark_batch_reads_a_kafka_topic(spark, kafka_settings, topic_factory, uid) -> None:
    from forewarn import kafka

    topic = topic_factory("spark", partitions=2)
    producer = kafka.producer(kafka_settings)
    for i in range(25):
        producer.produce(topic, key=f"{uid}-{i % 3}", value=f'{{"i": {i}}}')
    assert producer.flush(30) == 0

    frame = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka_settings.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    values = sorted(int(row.value.decode()[6:-1]) for row in frame.select("value").collect())
    assert values == list(range(25))
