"""The ClickHouse model on the running 18.16 server (the local stack), fed through its
Kafka engine tables as in production: exact daily active users where the brief's view
overcounts, one row per window after re-emission, ClickHouse's own windows exact
under re-delivery, DLQ rows with their reasons, old and new schema rows side by side,
a broken message that blocks nothing, and the documented procedure for adding a field
next time (two migrations)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import threading
import time

from streamhost_kit import events
from streamhost_kit.clickhouse import ch, ch_rows, ch_value
from streamhost_kit.events import payload
from streamhost_kit.kafka import BROKERS, produce
from streamhost_kit.oracle import oracle
from streamhost_kit.stack import ROOT
from streamhost_kit.util import wait_until


def enriched(i: int, user: int, part: int, country: str = "US", **extra) -> bytes:
    """A record as the host writes it to enriched_events: position i in source partition
    `part`; each test uses its own partition number and day, so they share one stack."""
    return payload(events.enriched(user_id=user, page_url="/", timestamp=f"2026-01-0{part} 10:00:00", country=country,
                                   source_partition=part, source_offset=i, **extra))


def test_daily_active_users_are_exact_where_the_briefs_view_overcounts(fresh_stack):
    # The brief's view, verbatim but for its target (ours has that name) and its source:
    # on 18.16 a view does not fire for rows another view inserted, so it reads the Kafka
    # table, exactly like daily_active_users_mv does.
    ch("CREATE TABLE events_db.brief_dau (event_date Date, country String, dau UInt64) "
       "ENGINE = MergeTree() ORDER BY (event_date, country)")
    ch("CREATE MATERIALIZED VIEW events_db.brief_dau_mv TO events_db.brief_dau AS SELECT "
       "toDate(timestamp) AS event_date, country, count(DISTINCT user_id) AS dau "
       "FROM events_db.enriched_events_queue GROUP BY event_date, country")
    try:
        # Three rounds, each a separate insert block (the Kafka engine flushes every
        # 7.5 s): users 1-10 come back in every round, 5 new users per round.
        offset = 0
        for rnd in range(3):
            users = list(range(1, 11)) + list(range(100 + 5 * rnd, 105 + 5 * rnd))
            produce([enriched(offset + k, u, 1) for k, u in enumerate(users)], topic="enriched_events")
            offset += len(users)
            wait_until(f"round {rnd} in ClickHouse", lambda: ch_value("SELECT count() FROM events_db.events WHERE source_partition = 1") >= offset, 60)
            time.sleep(8)
        exact = ch_value("SELECT dau FROM events_db.daily_active_users_final WHERE event_date = '2026-01-01'")
        brief = ch_value("SELECT sum(dau) FROM events_db.brief_dau WHERE event_date = '2026-01-01'")
        assert exact == 10 + 15
        assert ch_value("SELECT count() FROM events_db.brief_dau") >= 2, "the rounds must have been separate blocks"
        assert brief > exact, (brief, exact)
    finally:
        ch("DROP TABLE IF EXISTS events_db.brief_dau_mv")
        ch("DROP TABLE IF EXISTS events_db.brief_dau")


def test_window_rows_deduplicate_and_dlq_rows_keep_their_reasons(fresh_stack):
    window = {"country": "DE", "window_start": "2026-01-01 10:00:00", "window_end": "2026-01-01 10:05:00"}
    # The same window emitted twice (a restart re-emits it), with the same figures.
    produce([json.dumps({**window, "average_events": 4.2, "event_count": 21}).encode()] * 2, topic="country_event_averages")
    dlq = [json.dumps({"code": code, "message": f"m-{code}", "stage": stage, "rejected_by": by,
                       "source_topic": "my_events", "source_partition": 1, "source_offset": i,
                       "source_time": "2026-01-01 10:00:00", "dlq_time": "2026-01-01 10:00:01",
                       "raw": raw, "raw_encoding": enc}).encode()
           for i, (code, stage, by, raw, enc) in enumerate([
               ("invalid_country", "plugin", "quality", '{"country":"XX"}', "utf8"),
               ("malformed_json", "decode", "host", "{oops", "utf8"),
               ("invalid_utf8", "decode", "host", r"\xff\xfe", "escaped")])]
    produce(dlq + dlq[:1], topic="dlq")  # one re-delivery
    wait_until("window rows", lambda: ch_value("SELECT count() FROM events_db.country_event_averages_raw") >= 2, 60)
    wait_until("dlq rows", lambda: ch_value("SELECT count() FROM events_db.dlq_table") >= 4, 60)
    assert ch_rows("SELECT country, toString(window_start) AS window_start, toString(window_end) AS window_end, "
                   "average_events, event_count FROM events_db.country_event_averages") == [
        {**window, "average_events": 4.2, "event_count": 21}]
    rows = ch_rows("SELECT code, stage, rejected_by, raw, raw_encoding FROM events_db.dlq_table FINAL ORDER BY source_offset")
    assert [(r["code"], r["stage"], r["raw_encoding"]) for r in rows] == [
        ("invalid_country", "plugin", "utf8"), ("malformed_json", "decode", "utf8"), ("invalid_utf8", "decode", "escaped")]
    assert rows[2]["raw"] == r"\xff\xfe"


def test_old_and_new_schema_rows_land_side_by_side(fresh_stack):
    produce([
        enriched(0, 1, 2),                                      # before the generator's change
        enriched(1, 2, 2, device_type="mobile"),                # after it
        enriched(2, 3, 2, device_type="tablet", campaign="x"),  # an unknown field: ignored
        enriched(3, 4, 2),
    ], topic="enriched_events")
    wait_until("the four rows", lambda: ch_value("SELECT count() FROM events_db.events WHERE source_partition = 2") >= 4, 60)
    rows = ch_rows("SELECT user_id, device_type FROM events_db.events WHERE source_partition = 2 ORDER BY user_id")
    assert rows == [{"user_id": 1, "device_type": None}, {"user_id": 2, "device_type": "mobile"},
                    {"user_id": 3, "device_type": "tablet"}, {"user_id": 4, "device_type": None}]
    assert ch_value("SELECT count() FROM events_db.events WHERE source_partition = 2 AND device_type IS NULL") == 2


def test_a_broken_message_blocks_nothing(fresh_stack):
    """The host never writes a malformed record to its output topics, but another writer
    might. 18.16 skips it and goes on reading. (Good rows in the *same* Kafka block as a
    broken one can be lost on 18.16: docs/clickhouse.md; here it arrives in a block of its own.)"""
    produce([b'{"event_type": "page_view", "user_id": "not a number"'], topic="enriched_events")
    time.sleep(9)  # the Kafka engine flushes a block every 7.5 s
    produce([enriched(i, 50 + i, 4) for i in range(5)], topic="enriched_events")
    wait_until("the rows after the broken message", lambda: ch_value(
        "SELECT count() FROM events_db.events WHERE source_partition = 4") >= 5, 60)
    assert ch_value("SELECT count() FROM events_db.events WHERE source_partition = 4") == 5


def test_clickhouse_windows_are_exact_under_re_delivery(fresh_stack):
    """country_minute_counts_mv (fed by the Kafka table on 18.16) and
    country_event_averages_ch against the oracle: events out of order over 20 minutes,
    then a third of them delivered again in later insert blocks (same source position,
    as after a host crash). The windows keep the exact counts; the delivered rows show
    what a plain count() pre-aggregate would have added."""
    rng = random.Random(5)
    t0 = 1_767_607_200  # 2026-01-05 10:00:00 UTC
    recs = []
    for i in range(300):
        t = t0 + rng.randrange(20 * 60)
        recs.append((t, events.enriched(user_id=i, page_url="/", timestamp=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)),
                                        country=rng.choice(["DE", "FR", "US"]), source_partition=5, source_offset=i)))
    rng.shuffle(recs)
    produce([payload(r) for _, r in recs], topic="enriched_events")
    wait_until("the first delivery", lambda: ch_value("SELECT count() FROM events_db.events WHERE source_partition = 5") >= 300, 60)
    time.sleep(8)  # the re-deliveries in blocks of their own
    again = recs[::3]
    produce([payload(r) for _, r in again], topic="enriched_events")
    wait_until("the re-deliveries", lambda: ch_value(
        "SELECT sum(delivered_rows) FROM events_db.country_minute_counts_final WHERE toDate(minute) = '2026-01-05'") >= 400, 60)
    want = oracle([{"country": r["country"], "timestamp": t} for t, r in recs])
    got = {(r["country"], r["ws"]): r["event_count"] for r in ch_rows(
        "SELECT country, toString(window_start) AS ws, event_count FROM events_db.country_event_averages_ch"
        " WHERE toDate(window_end) = '2026-01-05'")}
    assert got == want
    assert ch_value("SELECT sum(event_count) FROM events_db.country_minute_counts_final WHERE toDate(minute) = '2026-01-05'") == 300
    assert ch_value("SELECT count() FROM events_db.country_event_averages_ch WHERE average_events * 5 != event_count") == 0


def test_adding_a_field_loses_nothing(fresh_stack, tmp_path):
    """Runs the procedure of docs/clickhouse.md ("Adding a field next time"): its two
    migrations, added after the newest to a copy of sql/ and applied by sql/migrate,
    while a steady stream arrives. Every record lands in each reader of the Kafka table
    (re-deliveries collapse); a record read after the swap has the new field."""
    doc = (ROOT / "docs" / "clickhouse.md").read_text()
    section = doc[doc.index("### Adding a field next time"):]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    sql = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql)
    newest = max(int(p.name[:4]) for p in (sql / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    for k, block in enumerate(blocks, 1):
        name = re.match(r"-- NNNN_(\w+)\.sql", block).group(1)
        (sql / "migrations" / f"{newest + k:04d}_{name}.sql").write_text(block)

    # 60 s at 50/s. On 18.16 dropping a view waits for its Kafka table's block to end:
    # under a steady stream when it holds kafka_max_block_size (500) rows, 10 s here.
    n, rate = 3000, 50
    sent_at: list[float] = []

    def records():
        for i in range(n):
            sent_at.append(time.monotonic())
            yield enriched(i, 1000 + i % 60, 3, campaign=f"c{i}")

    producer = threading.Thread(target=produce, args=(records(),), kwargs={"topic": "enriched_events", "per_second": rate})
    producer.start()
    time.sleep(4)
    began = time.monotonic()
    run = subprocess.run([str(sql / "migrate"), "ch18", BROKERS, "--host", "127.0.0.1",
                          "--port", os.environ.get("STREAMHOST_CH_TCP_PORT", "9000")], capture_output=True, text=True)
    done = time.monotonic()
    producer.join()
    assert run.returncode == 0, run.stderr
    print(f"sql/migrate took {done - began:.1f} s, from record {sum(t < began for t in sent_at)} "
          f"to record {sum(t <= done for t in sent_at)} of {n}")
    assert f"events_db is at {newest + 2} (2 applied now)" in run.stderr, run.stderr

    # Stopping drops the Kafka table while it reads: what it had read and not committed
    # is read again when it is back (at-least-once); the copies collapse (FINAL, merges).
    wait_until("every record", lambda: ch_value(
        "SELECT uniqExact(source_offset) FROM events_db.events WHERE source_partition = 3") >= n, 120)
    time.sleep(3)
    rows = ch_rows("SELECT source_offset, campaign FROM events_db.events FINAL WHERE source_partition = 3 ORDER BY source_offset")
    assert [r["source_offset"] for r in rows] == list(range(n)), "lost records"
    assert all(r["campaign"] in (None, f"c{r['source_offset']}") for r in rows)
    after = [r for r in rows if sent_at[r["source_offset"]] > done + 1]
    assert len(after) > 50 and all(r["campaign"] == f"c{r['source_offset']}" for r in after)
    assert ch_value("SELECT sum(dau) FROM events_db.daily_active_users_final WHERE event_date = '2026-01-03'") == 60
    assert ch_value("SELECT sum(event_count) FROM events_db.country_minute_counts_final WHERE toDate(minute) = '2026-01-03'") == n
    print("rows delivered to events (re-deliveries included):",
          ch_value("SELECT count() FROM events_db.events WHERE source_partition = 3"), "for", n, "records")
