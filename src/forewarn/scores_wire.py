"""How scores travel on ``risk.scores``: one score per message, or an envelope of many.

A message value is either one score (a JSON object, the format of ``forewarn.schemas.RiskScore``) or an
envelope: a JSON array of scores. The scorer writes envelopes, one or more per feature block, to the
partition of the block's readings, so a machine's scores stay in one partition and in order. Other
producers (tests, a plant's own model) may write single scores keyed by machine id.

Envelopes exist for the same reason as on ``sensor.readings``: the broker, the producer and every consumer
pay a fixed cost per Kafka message, and at tens of thousands of scores a second that cost was larger than
the alerter's work on a score (measured in docs/BENCHMARKS.md).

Consumers that remember what they applied (the alerter) need one position per score, not per message:
``position(offset, index)`` orders scores by offset, then by their place in the envelope.
"""

from __future__ import annotations

from forewarn.json_envelope import MAX_ENVELOPE_BYTES, array_runs, decode_value, join_array

__all__ = ["MAX_ENVELOPE_BYTES", "decode_value", "envelopes", "position"]

INDEX_BITS = 20  # scores per envelope < 2**20; an envelope of MAX_ENVELOPE_BYTES holds at most a few thousand


def envelopes(payloads: list[bytes], max_bytes: int = MAX_ENVELOPE_BYTES) -> list[bytes]:
    """Encoded scores -> JSON arrays of at most ``max_bytes`` (a single larger score travels alone), in order."""
    runs = array_runs([len(p) for p in payloads], max_bytes, max_items=1 << INDEX_BITS)
    return [join_array(payloads[start:stop]) for start, stop in runs]


def position(offset: int, index: int) -> int:
    """A score's place in its partition: comparable across messages and within an envelope."""
    return (offset << INDEX_BITS) | index
