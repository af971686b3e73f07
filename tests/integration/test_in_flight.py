"""Batches in flight (`pipeline.in_flight_batches`) on the real broker: while one batch
waits for its acknowledgements the next is read and judged, yet the outputs keep their
input order, every input lands, and a `kill -9` with several batches in flight re-reads
only what was not committed (at-least-once, commits in order)."""

from __future__ import annotations

import json
import time
from collections import defaultdict

from streamhost_kit.events import event_set, payloads
from streamhost_kit.kafka import produce, read_topic, watermarks
from streamhost_kit.util import wait_until

BATCH = 50
IN_FLIGHT = 4
# Small batches and several in flight, no window stage: this is about the validate loop.
ENV = {
    "STREAMHOST_PIPELINE__BATCH_SIZE": str(BATCH),
    "STREAMHOST_PIPELINE__IN_FLIGHT_BATCHES": str(IN_FLIGHT),
    "STREAMHOST_WINDOWS__ENABLED": "false",
}


def backlog(seed: int, n: int) -> tuple[list[bytes], int]:
    events, rejects = event_set(seed=seed, n=n)
    return payloads(events + rejects), len(events)


def positions(records) -> list[tuple[int, int]]:
    """(source partition, source offset) of enriched_events or dlq records, in topic order."""
    out = []
    for m in records:
        body = json.loads(m.value())
        out.append((body["source_partition"], body["source_offset"]))
    return out


def read_inputs(host) -> float:
    return host.metric("streamhost_records_in_total", topic="my_events")


def test_outputs_keep_input_order_with_batches_in_flight(fresh_stack, hosts):
    payloads, valid = backlog(seed=31, n=3000)
    produce(payloads)
    total = len(payloads)
    host = hosts(1, **ENV)[0]
    seen_in_flight = 0.0

    def done() -> bool:
        nonlocal seen_in_flight
        seen_in_flight = max(seen_in_flight, host.metric("streamhost_batches_in_flight", stage="validate"))
        return sum(watermarks("enriched_events").values()) + sum(watermarks("dlq").values()) >= total

    wait_until("every input routed", done, timeout=180, interval=0.05)
    enriched = read_topic("enriched_events")
    dlq = read_topic("dlq")
    assert len(enriched) == valid and len(dlq) == total - valid
    # Every input position exactly once (a clean run re-delivers nothing).
    assert sorted(positions(enriched) + positions(dlq)) == sorted(
        (p, o) for p, end in watermarks("my_events").items() for o in range(end))
    # Within each output partition, each input partition's records come in input order,
    # although up to IN_FLIGHT batches were with the producer at once.
    by_out: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for topic, records in (("enriched_events", enriched), ("dlq", dlq)):
        for m, (src_p, src_o) in zip(records, positions(records)):
            by_out[(topic, m.partition(), src_p)].append(src_o)
    for key, offsets in by_out.items():
        assert offsets == sorted(offsets), f"{key}: outputs out of input order"
    print(f"{total} inputs in batches of {BATCH}; most batches in flight seen: {seen_in_flight:.0f}")
    assert seen_in_flight >= 2, "the backlog should have kept several batches in flight"


def test_kill_9_with_batches_in_flight_loses_nothing(fresh_stack, hosts):
    start_enriched, start_dlq = watermarks("enriched_events"), watermarks("dlq")
    start_in = watermarks("my_events")
    payloads, valid = backlog(seed=32, n=6000)
    produce(payloads)
    total = len(payloads)
    first = hosts(1, **ENV)[0]
    wait_until("a third of the backlog read", lambda: read_inputs(first) >= total / 3, timeout=120,
               interval=0.05)
    in_flight_at_kill = first.metric("streamhost_batches_in_flight", stage="validate")
    first.kill()
    time.sleep(1)
    hosts(1, **ENV)

    def routed() -> int:
        return sum(watermarks("enriched_events").values()) - sum(start_enriched.values()) + \
            sum(watermarks("dlq").values()) - sum(start_dlq.values())

    inputs = {(p, o) for p, end in watermarks("my_events").items() for o in range(start_in.get(p, 0), end)}
    wait_until("every input routed after the restart",
               lambda: {*positions(read_topic("enriched_events", start_enriched)),
                        *positions(read_topic("dlq", start_dlq))} >= inputs, timeout=180, interval=2)
    accepted = positions(read_topic("enriched_events", start_enriched))
    out = accepted + positions(read_topic("dlq", start_dlq))
    assert set(out) == inputs, "every input position lands, nothing else"
    assert len(set(accepted)) == valid
    duplicates = len(out) - len(inputs)
    print(f"kill -9 with {in_flight_at_kill:.0f} batches in flight: {duplicates} re-deliveries of {total} "
          f"inputs ({routed()} records routed)")
    # Commits are in order and only after the acknowledgements: a restart re-reads at most
    # the batches that were in flight (plus one whose commit was on its way), never skips.
    assert 0 <= duplicates <= (IN_FLIGHT + 1) * BATCH * 3
