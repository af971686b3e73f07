"""Rolling averages on the real stack: a deterministic event set with known timestamps
goes in through my_events; the rows in ClickHouse must equal a brute-force count, with
one host and with two hosts in the same consumer groups."""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from datetime import datetime, timezone

import pytest

from conftest import ALLOWED, ROOT, ch_rows, ch_value, produce, read_topic, wait_until, watermarks

SIZE, ADVANCE, GRACE = 300, 60, 600
T0 = 1_735_689_600  # 2025-01-01 00:00:00 UTC, long before the wall clock: idle closes every window


def event_set(seed: int = 7, n: int = 900):
    """Events over ~25 minutes in time order with up to 10 s of disorder, plus rejects
    that must not count. Produced at 100/s (~170x real time) with a 600 s grace, so
    even a few seconds of skew between two hosts' validate stages stays within the
    grace and nothing is late."""
    rng = random.Random(seed)
    countries = sorted(ALLOWED)
    events = []
    for i in range(n):
        t = T0 + i * 25 * 60 // n + rng.randint(-10, 10)
        events.append({
            "event_type": rng.choice(["page_view", "button_click"]),
            "user_id": rng.randint(1, 1000),
            "page_url": f"/page/{rng.randint(1, 100)}",
            "button_id": f"b-{i}",
            "timestamp": max(t, T0),
            "country": rng.choice(countries),
        })
    rejects = [dict(events[i], country="XX") for i in range(0, n, 97)] + \
              [dict(events[i], user_id=-5) for i in range(5, n, 89)]
    return events, rejects


def oracle(events) -> dict[tuple[str, str], int]:
    """Count per (country, window start) from the full list: every window containing t."""
    counts: Counter = Counter()
    for e in events:
        t = e["timestamp"]
        start = t // ADVANCE * ADVANCE
        while start > t - SIZE:
            counts[(e["country"], start)] += 1
            start -= ADVANCE
    fmt = lambda s: datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    return {(c, fmt(s)): n for (c, s), n in counts.items()}


def settled_window_rows(running) -> dict[tuple[str, str], int]:
    """Wait until the hosts have closed every window (idleness) and ClickHouse has
    ingested every record of country_event_averages; then (country, window) → count."""
    def settled():
        if sum(h.metric("streamhost_records_in_total") for h in running) == 0:
            return False
        if any(h.metric("streamhost_open_windows") != 0 for h in running):
            return False
        emitted = sum(watermarks("country_event_averages").values())
        return emitted > 0 and ch_value("SELECT count() FROM events_db.country_event_averages_raw") >= emitted

    wait_until("every window closed and in ClickHouse", settled, timeout=150)
    return {(r["country"], r["ws"]): int(r["event_count"]) for r in ch_rows(
        "SELECT country, toString(window_start) AS ws, event_count FROM events_db.country_event_averages")}


def assigned(hosts_, stage: str) -> float:
    return sum(h.metric("streamhost_assigned_partitions", stage=stage) for h in hosts_)


@pytest.mark.parametrize("instances", [1, 2])
def test_window_rows_in_clickhouse_equal_the_oracle(instances, hosts):
    subprocess.run([str(ROOT / "scripts" / "stack"), "reset"], check=True)
    subprocess.run([str(ROOT / "scripts" / "stack"), "up"], check=True)
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
    produce([json.dumps(e).encode() for e in events[:450] + rejects + events[450:]], per_second=100)
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

    # Now the frontier is past every window: an old event is late, goes to the DLQ, counts nowhere.
    late = dict(events[0], button_id="late-1")
    produce([json.dumps(late).encode()])
    wait_until("the late event in dlq_table",
               lambda: ch_value("SELECT count() FROM events_db.dlq_table WHERE code = 'late_event'") == 1, timeout=60)
    row = ch_rows("SELECT stage, rejected_by, source_topic, raw FROM events_db.dlq_table WHERE code = 'late_event'")[0]
    assert row["stage"] == "window" and row["source_topic"] == "enriched_events"
    assert json.loads(row["raw"])["button_id"] == "late-1"
    late_metric = sum(h.metric("streamhost_late_events_total") for h in running)
    assert late_metric == 1
    again = {(r["country"], r["ws"]): int(r["event_count"]) for r in ch_rows(
        "SELECT country, toString(window_start) AS ws, event_count FROM events_db.country_event_averages")}
    assert again == want, "a late event must not change a closed window"
