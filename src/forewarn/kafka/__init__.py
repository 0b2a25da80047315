"""The project's Kafka runtime: a thin layer over confluent-kafka.

* clients from settings (:mod:`.clients`): connection and security from one place, explicit arguments over
  a pass-through config dict over the project's defaults, created lazily where wiring wants that;
* the project's own exceptions carrying Kafka's error code, and one failure policy callback (:mod:`.errors`);
* the one produce-and-confirm step (:class:`Delivery`) and the one consume -> handle -> deliver -> commit
  loop (:class:`BatchLoop`);
* bounded readers outside a consumer group for rebuilds, replays and counts (:mod:`.reading`).

Importing this package imports no vendor library; clients are built when asked for.
"""

from forewarn.kafka.clients import (
    LazyConsumer,
    LazyProducer,
    admin,
    client_config,
    connection_config,
    consumer,
    faust_options,
    producer,
    spark_options,
)
from forewarn.kafka.delivery import Delivery
from forewarn.kafka.errors import (
    ConsumeFailed,
    DeliveryFailed,
    ErrorCallback,
    KafkaClientError,
    KafkaTimeout,
    KafkaUnavailable,
    log_and_skip,
    where,
)
from forewarn.kafka.loop import BatchLoop, Decoded
from forewarn.kafka.reading import (
    consume_ready,
    count_readings,
    message_count,
    read_all,
    read_range,
    read_ranges,
    wait_for_topics,
)

__all__ = [
    "BatchLoop",
    "ConsumeFailed",
    "Decoded",
    "Delivery",
    "DeliveryFailed",
    "ErrorCallback",
    "KafkaClientError",
    "KafkaTimeout",
    "KafkaUnavailable",
    "LazyConsumer",
    "LazyProducer",
    "admin",
    "client_config",
    "connection_config",
    "consume_ready",
    "consumer",
    "count_readings",
    "faust_options",
    "message_count",
    "producer",
    "read_all",
    "read_range",
    "read_ranges",
    "spark_options",
    "wait_for_topics",
    "log_and_skip",
    "where",
]
