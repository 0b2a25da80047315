"""The project's own Kafka exceptions, and the one failure policy for bad messages.

confluent-kafka reports problems as ``KafkaError`` values (on messages, in delivery callbacks) or as
``KafkaException``; callers of forewarn.kafka see these types instead, each carrying Kafka's error code
(``confluent_kafka.KafkaError.<NAME>``) when there is one, so a caller can branch on the code without
importing the vendor library.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("forewarn.kafka")


class KafkaClientError(RuntimeError):
    """Base of every error forewarn.kafka raises."""

    def __init__(self, message: str, *, code: int | None = None, retriable: bool = False,
                 fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable
        self.fatal = fatal

    @classmethod
    def from_kafka(cls, error: Any, context: str) -> KafkaClientError:
        """From a confluent ``KafkaError`` (or a ``KafkaException`` holding one)."""
        inner = error.args[0] if error.__class__.__name__ == "KafkaException" and error.args else error
        code = inner.code() if hasattr(inner, "code") else None
        retriable = bool(inner.retriable()) if hasattr(inner, "retriable") else False
        fatal = bool(inner.fatal()) if hasattr(inner, "fatal") else False
        name = inner.name() if hasattr(inner, "name") else type(inner).__name__
        text = inner.str() if hasattr(inner, "str") else str(inner)
        return cls(f"{context}: {name}: {text}", code=code, retriable=retriable, fatal=fatal)


class KafkaUnavailable(KafkaClientError):
    """The broker could not be reached, or a topic it should have is missing."""


class DeliveryFailed(KafkaClientError):
    """Some produced messages were not confirmed by the broker: whatever consumed their input must not
    commit it."""


class KafkaTimeout(KafkaUnavailable, TimeoutError):
    """A bounded read or wait did not finish in time (the broker is away or too slow)."""


class ConsumeFailed(KafkaClientError):
    """The consumer reported a fatal error: the client cannot go on."""


# The failure policy for a consumed message that cannot be used (a consumer error on it, or a payload the
# handler cannot decode): return True to skip it and go on, False to fail the batch (rewound and
# consumed again). ``message`` is None when the error is not tied to one message.
ErrorCallback = Callable[[Exception, Any], bool]


def where(message: Any) -> dict[str, Any]:
    """Topic, partition and offset of a message, for logs."""
    if message is None:
        return {}
    return {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}


def log_and_skip(exc: Exception, message: Any) -> bool:
    """The default policy: log what went wrong and where, skip the message, unless the client is dead."""
    if isinstance(exc, KafkaClientError) and exc.fatal:
        return False
    log.warning("skipping a message: %s", exc, extra={"fields": where(message)})
    return True
