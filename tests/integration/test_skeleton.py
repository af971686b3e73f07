"""The walking skeleton on real parts: the brief's generator, unchanged → Tansu →
streamhost with the quality plugin → topics → ClickHouse 18.16."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from conftest import ALLOWED, ROOT, ch_rows, ch_value, produce, read_topic, wait_until, watermarks

GENERATOR = ROOT.parent / "shared" / "seed" / "data_generator.py"
# Long enough to cross the generator's schema change at 30 s.
GENERATOR_SECONDS = 42


def expected_code(raw: dict) -> str:
    """What the quality plugin must say about a decodable event (user id first)."""
    if raw["user_id"] < 0:
        return "invalid_user_id"
    if raw["country"] not in ALLOWED:
        return "invalid_country"
    return "accepted"


@pytest.mark.skipif(not GENERATOR.exists(), reason=f"{GENERATOR} not found (shared/ beside the clone)")
def test_brief_generator_end_to_end(fresh_stack, hosts):
    start = watermarks("my_events")
    hosts(1)
    run = subprocess.run(
        [sys.executable, str(GENERATOR), "--duration", str(GENERATOR_SECONDS), "--rps", "10",
         "--kafka_broker", "127.0.0.1:9092"],
        capture_output=True, text=True, timeout=GENERATOR_SECONDS + 60, check=True,
    )
    # The count the generator itself reports, not one we recompute.
    sent = int(re.search(r"Sent (\d+) events", run.stdout).group(1))
    assert sent >= GENERATOR_SECONDS * 10 - 10
    end = watermarks("my_events")
    assert sum(end[p] - start.get(p, 0) for p in end) == sent

    def in_range(table: str) -> str:
        conds = " OR ".join(
            f"(source_partition = {p} AND source_offset >= {start.get(p, 0)} AND source_offset < {end[p]})" for p in end)
        extra = " AND source_topic = 'my_events'" if table == "dlq_table" else ""
        return f"({conds}){extra}"

    def landed():
        n = ch_value(f"SELECT count() FROM events_db.events WHERE {in_range('events')}") + ch_value(
            f"SELECT count() FROM events_db.dlq_table WHERE {in_range('dlq_table')}")
        return n if n >= sent else None

    wait_until(f"{sent} events in events + dlq_table", landed, timeout=120)

    events = ch_rows(f"SELECT source_partition AS p, source_offset AS o, user_id, country, timestamp, device_type, "
                     f"processed_by FROM events_db.events WHERE {in_range('events')}")
    dlq = ch_rows(f"SELECT source_partition AS p, source_offset AS o, code, stage, rejected_by, raw, raw_encoding "
                  f"FROM events_db.dlq_table WHERE {in_range('dlq_table')}")

    # Every input position exactly once across the two tables.
    positions = [(r["p"], r["o"]) for r in events] + [(r["p"], r["o"]) for r in dlq]
    assert len(positions) == sent, f"{len(positions)} rows for {sent} events"
    assert len(set(positions)) == sent, "an event landed twice"
    assert set(positions) == {(p, o) for p in end for o in range(start.get(p, 0), end[p])}

    # Every accepted row is valid and says who judged it.
    for r in events:
        assert r["country"] in ALLOWED, r
        assert int(r["user_id"]) >= 0, r
        assert re.fullmatch(r"quality@\d+\.\d+\.\d+", r["processed_by"]), r

    # Every rejected row has the code its own payload calls for, and the original bytes.
    for r in dlq:
        assert r["raw_encoding"] == "utf8"
        raw = json.loads(r["raw"])
        assert r["code"] == expected_code(raw), r
        assert r["stage"] == "plugin" and r["rejected_by"].startswith("quality@"), r
    codes = {r["code"] for r in dlq}
    assert codes == {"invalid_user_id", "invalid_country"}, codes

    # Schema evolution: no device_type before the change, always after it.
    old = [r for r in events if r["device_type"] is None]
    new = [r for r in events if r["device_type"] is not None]
    assert old and new, (len(old), len(new))
    assert max(r["timestamp"] for r in old) <= min(r["timestamp"] for r in new)
    assert {r["device_type"] for r in new} <= {"mobile", "desktop", "tablet"}

    # The topics agree with ClickHouse.
    assert len(read_topic("enriched_events")) == len(events)
    assert len(read_topic("dlq")) == len(dlq)


BAD_INPUTS = {
    "empty_message": b"",
    "invalid_utf8": b'{"event_type": "page_view", "country": "\xff\xfe"}',
    "malformed_json": b'{"event_type": "page_view", ',
    "not_an_object": b"[1, 2, 3]",
    "missing_field": b'{"event_type": "page_view", "user_id": 1, "page_url": "/p", "button_id": "b", "timestamp": 1700000000}',
    "wrong_type": b'{"event_type": "page_view", "user_id": "1", "page_url": "/p", "button_id": "b", "timestamp": 1700000000, "country": "US"}',
    "null_field": b'{"event_type": "page_view", "user_id": 1, "page_url": null, "button_id": "b", "timestamp": 1700000000, "country": "US"}',
    "out_of_range": b'{"event_type": "page_view", "user_id": 1, "page_url": "/p", "button_id": "b", "timestamp": 1700000000000, "country": "US"}',
    "duplicate_field": b'{"event_type": "page_view", "user_id": 1, "page_url": "/p", "button_id": "b", "timestamp": 1700000000, "country": "US", "country": "XX"}',
}


def test_undecodable_records_reach_the_dlq_with_their_own_code(fresh_stack, hosts):
    start = watermarks("dlq")
    hosts(1)
    # Current time: the window stage has already seen this module's live events.
    good = json.dumps({"event_type": "page_view", "user_id": 5, "page_url": "/p", "button_id": "b",
                       "timestamp": int(time.time()), "country": "US", "campaign": "new-field"}).encode()
    produce(list(BAD_INPUTS.values()) + [good])

    def dlq_complete():
        n = sum(watermarks("dlq").values()) - sum(start.values())
        return n if n >= len(BAD_INPUTS) else None

    wait_until("every bad record in the dlq topic", dlq_complete, timeout=60)
    records = [json.loads(m.value()) for m in read_topic("dlq", start)]
    by_code = {r["code"]: r for r in records}
    assert set(by_code) == set(BAD_INPUTS), sorted(by_code)
    for code, payload in BAD_INPUTS.items():
        r = by_code[code]
        assert r["stage"] == "decode" and r["rejected_by"] == "host"
        assert r["source_topic"] == "my_events" and r["message"]
        if code == "invalid_utf8":
            assert r["raw_encoding"] == "escaped"
            assert r["raw"].encode().decode("unicode_escape").encode("latin-1") == payload
        else:
            assert r["raw"].encode() == payload
    # ... and in ClickHouse, where the invalid UTF-8 one is stored escaped.
    wait_until("dlq rows in ClickHouse",
               lambda: ch_value("SELECT count() FROM events_db.dlq_table WHERE stage = 'decode'") >= len(BAD_INPUTS))
    rows = ch_rows("SELECT code, count() AS n FROM events_db.dlq_table WHERE stage = 'decode' GROUP BY code")
    assert {r["code"]: int(r["n"]) for r in rows} == {c: 1 for c in BAD_INPUTS}
    # The good record passes, and its unknown field travels on to enriched_events.
    enriched = [json.loads(m.value()) for m in read_topic("enriched_events")]
    assert any(e.get("campaign") == "new-field" for e in enriched)
