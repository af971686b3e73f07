"""Rolling averages on the real stack: a deterministic event set with known timestamps
goes in through my_events; the rows in ClickHouse must equal a brute-force count, with
one host and with two hosts in the same consumer groups."""

from __future__ import annotations

import json
import random

import pytest

from streamhost_kit.clickhouse import ch_rows, ch_value, window_rows
from streamhost_kit.events import EVENT_SET_GRACE as GRACE
from streamhost_kit.events import event_set, payloads
from streamhost_kit.kafka import produce, read_topic, watermarks
from streamhost_kit.oracle import SIZE, oracle
from streamhost_kit.stack import reset_stack, settled_window_rows
from streamhost_kit.util import wait_until


@pytest.mark.parametrize("instances", [1, 2])
def test_window_rows_in_clickhouse_equal_the_oracle(instances, hosts):
    reset_stack()
    # The events are ~170x faster than real time (25 min of event time in 9 s), so the
    # grace must cover the skew between two hosts' validate stages in event time.
    running = hosts(instances, STREAMHOST_WINDOWS__GRACE_SECS=str(GRACE))

    def settled():
        per_host = [(h.metric("streamhost_assigned_partitions", stage="validate"),
                     h.metric("streamhost_assigned_partitions", stage="window")) for h in running]
        return (sum(v for v, _ in per_host) == 3 and sum(w for _, w in per_host) == 3
                and all(v > 0 and w > 0 for v, w in per_host))

    # Every partition of both stages owned (by both hosts) before data flows: no rebalance mid-run.
    wait_until("partitions assigned", settled, timeout=60)

    events, rejects = event_set()
    mixed = events + rejects
    random.Random(1).shuffle(rejects)
    produce(payloads(events[:450] + rejects + events[450:]), per_second=100)
    want = oracle(events)

    settled_window_rows(running)
    got = ch_rows("SELECT country, toString(window_start) AS ws, toString(window_end) AS we, "
                  "average_events, event_count FROM events_db.country_event_averages")
    by_key = {(r["country"], r["ws"]): r for r in got}
    assert len(by_key) == len(got), "duplicate (country, window) rows through the deduplicating view"
    assert {k: int(r["event_count"]) for k, r in by_key.items()} == want
    for r in got:
        assert r["average_events"] == pytest.approx(int(r["event_count"]) * 60 / SIZE)
    # Rejected events never counted; nothing was late.
    assert ch_value("SELECT count() FROM events_db.dlq_table WHERE code = 'late_event'") == 0
    assert len(read_topic("dlq")) == len(rejects)
    assert sum(watermarks("country_event_averages").values()) >= len(want)
    assert len(mixed) == sum(watermarks("my_events").values())

    # Now the watermark is past every window: an old event is late, goes to the DLQ, counts nowhere.
    late = dict(events[0], button_id="late-1")
    produce(payloads([late]))
    wait_until("the late event in dlq_table",
               lambda: ch_value("SELECT count() FROM events_db.dlq_table WHERE code = 'late_event'") == 1, timeout=60)
    row = ch_rows("SELECT stage, rejected_by, source_topic, raw FROM events_db.dlq_table WHERE code = 'late_event'")[0]
    assert row["stage"] == "window" and row["source_topic"] == "enriched_events"
    assert json.loads(row["raw"])["button_id"] == "late-1"
    late_metric = sum(h.metric("streamhost_late_events_total") for h in running)
    assert late_metric == 1
    again = window_rows()
    assert again == want, "a late event must not change a closed window"
