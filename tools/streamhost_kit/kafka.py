"""Kafka helpers on the stack's broker (STREAMHOST_KAFKA_BROKERS, default 127.0.0.1:9092)."""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable

from confluent_kafka import Consumer, Producer, TopicPartition

BROKERS = os.environ.get("STREAMHOST_KAFKA_BROKERS", "127.0.0.1:9092")


def watermarks(topic: str) -> dict[int, int]:
    """High watermark (next offset) per partition."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "streamhost-tests-probe", "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
    finally:
        c.close()


def read_topic(topic: str, start: dict[int, int] | None = None, timeout: float = 30) -> list:
    """Every record from `start` (default: the beginning) up to the current end."""
    end = watermarks(topic)
    start = start or {p: 0 for p in end}
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "streamhost-tests-reader", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in end])
        want = sum(end[p] - start.get(p, 0) for p in end)
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            if m.offset() < end[m.partition()]:
                records.append(m)
        assert len(records) == want, f"read {len(records)} of {want} records from {topic}"
        return records
    finally:
        c.close()


def produce(payloads: Iterable[bytes], topic: str = "my_events", key: Callable[[int], bytes | str] | None = None,
            per_second: float | None = None, partition: int | Callable[[int], int] | None = None,
            flush_timeout: float = 30) -> None:
    """Produce and wait for every acknowledgement; `per_second` paces it like a live
    stream; `key` and `partition` (a number or a function of the index) place each
    record. `payloads` may be a generator: each value is made just before it is sent."""
    p = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 5})
    started = time.monotonic()
    for i, value in enumerate(payloads):
        where = {} if partition is None else {"partition": partition(i) if callable(partition) else partition}
        p.produce(topic, value=value, key=key(i) if key else None, **where)
        p.poll(0)
        if per_second:
            delay = started + (i + 1) / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    assert p.flush(flush_timeout) == 0, "not every test record was delivered"


def committed(group: str, topic: str = "my_events", partitions: int = 3) -> dict[int, int]:
    """The group's committed offset per partition (negative: none)."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def consumed(group: str, topic: str) -> bool:
    """Whether the group has committed every record the topic holds now."""
    ends = watermarks(topic)
    done = committed(group, topic, len(ends))
    return all(done.get(p, -1) >= end for p, end in ends.items() if end > 0)


def pipeline_consumed() -> bool:
    """Whether both stages (the host's default groups) have committed all of their
    input: the validate stage all of my_events, then the window stage all of
    enriched_events (it commits no further than its oldest open window needs)."""
    return consumed("streamhost", "my_events") and consumed("streamhost-windows", "enriched_events")
