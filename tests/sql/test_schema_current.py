"""sql/migrations/ rendered for a current ClickHouse: every statement parses (chdb runs
ClickHouse 26.9 in-process), and the rest runs and behaves, the upgrade from 0001 with
rows in it included. chdb's Kafka engine cannot be used: each Kafka table is replaced by
a Null table of the same columns plus the virtual columns the views read (_topic,
_partition, _offset, _error, _raw_message), so an INSERT into it goes through the views
as a block the Kafka engine read would. The 18.16 rendering is exercised against the
real server by tests/integration."""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path

import pytest

chdb = pytest.importorskip("chdb")
from chdb import session  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted((ROOT / "sql" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))
# MATERIALIZED: left out of `SELECT *`, as virtual columns are; inserted with
# insert_allow_materialized_columns (`queue_insert`).
VIRTUAL = ", ".join(f"{c} MATERIALIZED {d}" for c, d in [
    ("_topic", "''"), ("_partition", "toUInt64(0)"), ("_offset", "toUInt64(0)"), ("_error", "''"), ("_raw_message", "''")])


def statements(flavour: str, files: list[Path] | None = None) -> list[str]:
    sql = subprocess.run([str(ROOT / "sql" / "render"), flavour, "kafka:9092", *map(str, files or [])],
                         capture_output=True, text=True, check=True).stdout
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def stand_in(stmt: str) -> str:
    """A Kafka table as a Null table with the virtual columns as real ones."""
    return re.sub(r"\)\s*ENGINE = Kafka SETTINGS.*", f", {VIRTUAL}) ENGINE = Null", stmt, flags=re.S)


def migrate(sess, files: list[Path]) -> None:
    for stmt in statements("current", files):
        sess.query(stand_in(stmt))


def test_render_keeps_only_its_flavour():
    current = "\n".join(statements("current"))
    ch18 = "\n".join(statements("ch18"))
    assert "kafka_handle_error_mode" in current and "kafka_handle_error_mode" not in ch18
    assert "LowCardinality" in current and "LowCardinality" not in ch18
    assert "CODEC" in current and "CODEC" not in ch18 and "TTL" not in ch18
    assert "@ch18" not in current and "@current" not in ch18
    assert "{{" not in current and "kafka:9092" in current
    # 18.16 ends a Kafka block only when it is full or a poll comes back empty.
    for flavour, text in [("ch18", ch18), ("current", current)]:
        last = statements(flavour, MIGRATIONS[-1:])
        queues = [s for s in last if "ENGINE = Kafka" in s]
        assert len(queues) == 3
        for q in queues:
            if "'enriched_events'" in q or "'dlq'" in q:
                assert ("kafka_max_block_size = 500" in q) == (flavour == "ch18"), q


@pytest.mark.parametrize("flavour", ["current", "ch18"])
def test_every_statement_parses_on_current_clickhouse(flavour):
    # 18.16's dialect is a subset as far as these statements go: they must parse here too.
    for stmt in statements(flavour):
        escaped = stmt.replace("\\", "\\\\").replace("'", "\\'")
        out = chdb.query(f"SELECT formatQuery('{escaped}')", "CSV")
        assert str(out).strip(), stmt


@pytest.fixture
def db(tmp_path):
    """Every migration applied, in order, to an empty database (Kafka tables stood in for)."""
    sess = session.Session(str(tmp_path / "chdb"))
    try:
        migrate(sess, MIGRATIONS)
        yield sess
    finally:
        sess.close()


def rows(sess, q: str) -> list[list[str]]:
    return [line.split("\t") for line in str(sess.query(q, "TSVRaw")).splitlines() if line]


EVENT_COLS = "event_type, user_id, page_url, button_id, timestamp, country, device_type, source_partition, source_offset, processed_by"


def test_dau_is_exact_across_insert_blocks_and_duplicates(db):
    # The same users in three separate inserts (three blocks): a per-block
    # count(DISTINCT user_id), as in the brief, would report three times as many.
    for block in range(3):
        db.query(f"INSERT INTO events_db.events ({EVENT_COLS}) VALUES "
                 f"('page_view', 1, '/p', 'b', '2026-11-24 10:00:00', 'US', NULL, 0, {block * 10 + 1}, 'q'), "
                 f"('page_view', 2, '/p', 'b', '2026-11-24 11:00:00', 'US', 'mobile', 0, {block * 10 + 2}, 'q'), "
                 f"('page_view', 1, '/p', 'b', '2026-11-24 12:00:00', 'DE', NULL, 1, {block * 10 + 3}, 'q')")
    assert rows(db, "SELECT event_date, country, dau FROM events_db.daily_active_users_final ORDER BY country") == [
        ["2026-11-24", "DE", "1"], ["2026-11-24", "US", "2"]]


def test_window_rows_collapse_to_one_per_country_and_window(db):
    for _ in range(2):  # a re-emission after a restart
        db.query("INSERT INTO events_db.country_event_averages_raw (country, window_start, window_end, average_events, event_count) VALUES "
                 "('US', '2026-11-24 10:00:00', '2026-11-24 10:05:00', 2.4, 12)")
    assert rows(db, "SELECT country, average_events, event_count FROM events_db.country_event_averages") == [
        ["US", "2.4", "12"]]


def test_old_and_new_schema_rows_query_together(db):
    db.query(f"INSERT INTO events_db.events ({EVENT_COLS}) VALUES "
             "('page_view', 1, '/p', 'b', '2026-11-24 10:00:00', 'US', NULL, 0, 1, 'quality@0.1.0'), "
             "('button_click', 2, '/p', 'b', '2026-11-24 10:00:31', 'US', 'tablet', 0, 2, 'quality@0.1.0')")
    assert rows(db, "SELECT ifNull(device_type, 'none'), count() FROM events_db.events GROUP BY 1 ORDER BY 1") == [
        ["none", "1"], ["tablet", "1"]]


def insert_events(sess, evs: list[dict]) -> None:
    values = ", ".join(f"('page_view', 1, '/p', 'b', toDateTime({e['timestamp']}, 'UTC'), '{e['country']}', NULL, "
                       f"{e['source_partition']}, {e['source_offset']}, 'q')" for e in evs)
    sess.query(f"INSERT INTO events_db.events ({EVENT_COLS}) VALUES {values}")


def test_clickhouse_windows_match_the_oracle_under_disorder_and_re_delivery(db):
    """country_event_averages_ch (the materialized per-minute counts summed into the
    host's 5-min/1-min windows) against the brute-force oracle: events out of order,
    spread over several insert blocks, and a third of them delivered a second time in
    later blocks (at-least-once). The distinct count stays exact; `delivered_rows`
    (what a plain count() pre-aggregate gives) counts the re-deliveries."""
    from streamhost_kit.events import random_event
    from streamhost_kit.oracle import oracle

    rng = random.Random(11)
    t0 = 1_764_000_000  # 2025-11-24 16:00:00 UTC
    evs = [{**random_event(rng, t0 + rng.randrange(40 * 60), f"e-{i}", countries=["DE", "US", "FR"]),
            "source_partition": i % 3, "source_offset": i} for i in range(600)]
    rng.shuffle(evs)
    for k in range(0, len(evs), 100):  # six blocks
        insert_events(db, evs[k:k + 100])
    again = evs[::3]
    insert_events(db, again[:100])
    insert_events(db, again[100:])
    got = {(r[0], r[1]): int(r[2]) for r in rows(
        db, "SELECT country, toString(window_start, 'UTC'), event_count FROM events_db.country_event_averages_ch")}
    assert got == oracle(evs)
    averages = rows(db, "SELECT DISTINCT toString(event_count / average_events) FROM events_db.country_event_averages_ch")
    assert averages == [["5"]]
    assert rows(db, "SELECT toString(window_end - window_start) FROM events_db.country_event_averages_ch LIMIT 1") == [["300"]]
    assert rows(db, "SELECT sum(event_count), sum(delivered_rows) FROM events_db.country_minute_counts_final") == [
        [str(len(evs)), str(len(evs) + len(again))]]


def test_clickhouse_windows_have_the_columns_of_the_host_windows(db):
    def columns(view):
        return rows(db, f"SELECT name, type FROM system.columns WHERE database = 'events_db' AND table = '{view}' ORDER BY position")
    assert columns("country_event_averages_ch") == columns("country_event_averages")


# --- migrations on a current server -------------------------------------------------

def queue_insert(sess, queue: str, rows: list[dict]) -> None:
    """One block into a stood-in Kafka table, as its consumer would hand it to the views:
    JSONEachRow as the topic carries it, plus the virtual columns."""
    body = "\n".join(json.dumps(r) for r in rows)
    sess.query(f"INSERT INTO events_db.{queue} SETTINGS insert_allow_materialized_columns = 1, "
               f"date_time_input_format = 'best_effort' FORMAT JSONEachRow\n{body}")


def enriched(i: int, ts: str = "2026-01-05 10:00:00", country: str = "US", **kw) -> dict:
    return {"event_type": "page_view", "user_id": 100 + i % 7, "page_url": "/p", "button_id": f"b-{i}",
            "timestamp": ts, "country": country, "device_type": None, "source_partition": i % 3,
            "source_offset": i, "processed_by": "q@1", "extra": "{}", **kw}


def dlq(i: int) -> dict:
    return {"code": "invalid_country", "message": "m", "stage": "plugin", "rejected_by": "quality@1",
            "source_topic": "my_events", "source_partition": 0, "source_offset": i,
            "source_time": "2026-01-05 10:00:00", "dlq_time": "2026-01-05 10:00:01", "raw": "{}", "raw_encoding": "utf8"}


def average(country: str, start: str, count: int, read_through: int | None = None) -> dict:
    r = {"country": country, "window_start": start, "window_end": start.replace(":00:00", ":05:00"),
         "average_events": count / 5, "event_count": count}
    if read_through is not None:
        r |= {"enriched_partition": 0, "enriched_read_through": read_through}
    return r


SNAPSHOT = {
    "events": "SELECT toUnixTimestamp(timestamp), event_type, user_id, page_url, button_id, country, "
              "ifNull(device_type, '-'), source_partition, source_offset, processed_by, extra FROM events_db.events FINAL",
    "dau": "SELECT event_date, country, dau FROM events_db.daily_active_users_final",
    "minutes": "SELECT toUnixTimestamp(minute), country, event_count, delivered_rows FROM events_db.country_minute_counts_final",
    "dlq": "SELECT code, source_offset, toUnixTimestamp(source_time), toUnixTimestamp(dlq_time), raw FROM events_db.dlq_table FINAL",
    "averages": "SELECT country, toUnixTimestamp(window_start), toUnixTimestamp(window_end), average_events, event_count "
                "FROM events_db.country_event_averages",
}


def snapshot(sess) -> dict[str, list[list[str]]]:
    return {k: sorted(rows(sess, q)) for k, q in SNAPSHOT.items()}


def test_upgrading_a_0001_database_keeps_its_rows_and_every_view_consumes_afterwards(tmp_path):
    sess = session.Session(str(tmp_path / "chdb"))
    try:
        migrate(sess, MIGRATIONS[:1])
        queue_insert(sess, "enriched_events_queue", [enriched(i, f"2026-01-0{1 + i % 3} 1{i % 10}:00:00") for i in range(60)])
        queue_insert(sess, "enriched_events_queue", [enriched(i) for i in range(50, 70)])  # re-deliveries
        queue_insert(sess, "dlq_queue", [dlq(i) for i in range(5)])
        queue_insert(sess, "country_event_averages_queue", [average("DE", "2026-01-01 10:00:00", 21)])
        before = snapshot(sess)
        assert all(before.values()), before

        migrate(sess, MIGRATIONS[1:])
        assert snapshot(sess) == before
        tables = {r[0]: r[1] for r in rows(sess, "SELECT name, create_table_query FROM system.tables WHERE database = 'events_db'")}
        assert "DateTime('UTC')" in tables["events"] and "events_0001" in tables

        # Every consumer after the upgrade: each reader of enriched events sees the new block.
        queue_insert(sess, "enriched_events_queue", [enriched(i, "2026-02-01 10:00:00", "FR") for i in range(100, 110)])
        queue_insert(sess, "dlq_queue", [dlq(i) for i in range(10, 12)])
        queue_insert(sess, "country_event_averages_queue", [average("FR", "2026-02-01 10:00:00", 10, read_through=9)])
        assert rows(sess, "SELECT count() FROM events_db.events WHERE country = 'FR'") == [["10"]]
        assert rows(sess, "SELECT dau FROM events_db.daily_active_users_final WHERE country = 'FR'") == [["7"]]
        assert rows(sess, "SELECT event_count FROM events_db.country_minute_counts_final WHERE country = 'FR'") == [["10"]]
        assert rows(sess, "SELECT count() FROM events_db.dlq_table") == [["7"]]
        assert rows(sess, "SELECT event_count FROM events_db.country_event_averages WHERE country = 'FR'") == [["10"]]
    finally:
        sess.close()


def test_a_broken_record_lands_in_kafka_errors_and_nowhere_else(db):
    broken = b'{"event_type": "page_view", "user_id": "not a number"'
    db.query("INSERT INTO events_db.enriched_events_queue (_topic, _partition, _offset, _error, _raw_message) "
             "SETTINGS insert_allow_materialized_columns = 1 VALUES "
             f"('enriched_events', 2, 41, 'Cannot parse input', '{broken.decode().replace(chr(39), chr(92) + chr(39))}')")
    queue_insert(db, "enriched_events_queue", [enriched(1)])
    assert rows(db, "SELECT topic, partition, offset, error, raw FROM events_db.kafka_errors") == [
        ["enriched_events", "2", "41", "Cannot parse input", broken.decode().replace('"', '"')]]
    assert rows(db, "SELECT count() FROM events_db.events") == [["1"]]
    assert rows(db, "SELECT sum(dau) FROM events_db.daily_active_users_final") == [["1"]]


def test_times_mean_the_same_instants_in_any_session_time_zone(db):
    db.query("SET session_timezone = 'Asia/Kolkata'")
    queue_insert(db, "enriched_events_queue", [enriched(1, "2026-01-05 10:00:00")])
    # 1767607200 = 2026-01-05 10:00:00 UTC: the text the host wrote, read as UTC.
    assert rows(db, "SELECT toUnixTimestamp(timestamp), toString(timestamp), toDate(timestamp) FROM events_db.events") == [
        ["1767607200", "2026-01-05 10:00:00", "2026-01-05"]]
    assert rows(db, "SELECT toUnixTimestamp(minute) FROM events_db.country_minute_counts") == [["1767607200"]]
    # 0001's zoneless DateTime read the same text in the session's zone: 5 h 30 min off.
    db.query("CREATE TABLE events_db.zoneless (t DateTime) ENGINE = Memory")
    db.query("INSERT INTO events_db.zoneless FORMAT JSONEachRow {\"t\": \"2026-01-05 10:00:00\"}")
    assert rows(db, "SELECT toUnixTimestamp(t) FROM events_db.zoneless") == [[str(1767607200 - 19800)]]


def test_the_emission_that_read_further_wins_whatever_the_order(db):
    queue_insert(db, "country_event_averages_queue", [average("US", "2026-01-05 10:00:00", 12, read_through=80)])
    queue_insert(db, "country_event_averages_queue", [average("US", "2026-01-05 10:00:00", 9, read_through=50)])
    queue_insert(db, "country_event_averages_queue", [average("DE", "2026-01-05 10:00:00", 4)])  # an older host: no read-through
    queue_insert(db, "country_event_averages_queue", [average("DE", "2026-01-05 10:00:00", 5, read_through=0)])
    assert rows(db, "SELECT country, event_count FROM events_db.country_event_averages ORDER BY country") == [
        ["DE", "5"], ["US", "12"]]
    db.query("OPTIMIZE TABLE events_db.country_event_averages_raw FINAL")
    assert rows(db, "SELECT country, event_count, version FROM events_db.country_event_averages_raw ORDER BY country") == [
        ["DE", "5", "1"], ["US", "12", "81"]]


def test_a_recreated_topics_record_at_an_old_position_keeps_its_own_row(db):
    queue_insert(db, "dlq_queue", [dlq(3)])
    queue_insert(db, "dlq_queue", [dlq(3)])  # a re-delivery: collapses
    queue_insert(db, "dlq_queue", [dlq(3) | {"source_time": "2026-03-01 08:00:00"}])  # offset 3 of a new incarnation
    assert rows(db, "SELECT toString(source_time) FROM events_db.dlq_table FINAL ORDER BY source_time") == [
        ["2026-01-05 10:00:00"], ["2026-03-01 08:00:00"]]


def test_a_block_spanning_the_hosts_whole_time_range_is_written(db, tmp_path):
    """500 events from 1970 to 2105 in one block: one partition per year, 2010 and before
    in one, so at most 97 partitions; 0001's monthly partitions failed such a block
    (over 100 partitions), and a Kafka table retries a failed block for ever."""
    import time
    step = 4_291_747_199 // 499  # to 2105-12-31
    block = [enriched(i, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(i * step))) for i in range(500)]
    queue_insert(db, "enriched_events_queue", block)
    assert rows(db, "SELECT count(), uniqExact(_partition_id) <= 97 FROM events_db.events") == [["500", "1"]]
    # 0001's layout of `events`, fed the same block by a view.
    db.query("CREATE TABLE events_db.events_monthly AS events_db.events_0001")
    db.query("CREATE MATERIALIZED VIEW events_db.events_monthly_mv TO events_db.events_monthly AS "
             "SELECT * FROM events_db.enriched_events_queue WHERE length(_error) = 0")
    with pytest.raises(Exception, match="Too many partitions for single INSERT block"):
        queue_insert(db, "enriched_events_queue", block)


def test_current_storage_has_codecs_and_low_cardinality(db):
    got = {(r[0], r[1]): (r[2], r[3]) for r in rows(
        db, "SELECT table, name, type, compression_codec FROM system.columns WHERE database = 'events_db'")}
    assert got[("events", "timestamp")] == ("DateTime('UTC')", "CODEC(Delta(4), ZSTD(1))")
    assert got[("events", "source_offset")][1] == "CODEC(Delta(8), ZSTD(1))"
    assert got[("events", "extra")][1] == "CODEC(ZSTD(3))"
    assert got[("dlq_table", "raw")][1] == "CODEC(ZSTD(3))"
    assert got[("events", "country")][0] == "LowCardinality(String)"
    assert got[("dlq_table", "code")][0] == "LowCardinality(String)"
    assert got[("country_minute_counts", "minute")][1].startswith("CODEC(DoubleDelta")
    times = [k for k, (t, _) in got.items() if "DateTime" in t and not k[0].endswith("_0001") and k[0] != "schema_migrations"]
    assert times and all(got[k][0] == "DateTime('UTC')" for k in times), times
    ttl = rows(db, "SELECT engine_full FROM system.tables WHERE database = 'events_db' AND name = 'kafka_errors'")[0][0]
    assert "TTL time + toIntervalDay(30)" in ttl


def dashboard_dataset_sql(name: str) -> str:
    import sys
    sys.path.insert(0, str(ROOT / "superset"))
    import bundle  # noqa: PLC0415
    return bundle.DATASETS[name]["sql"]


def test_the_dashboards_dlq_chart_shows_clickhouses_parse_errors_beside_the_hosts(db):
    queue_insert(db, "dlq_queue", [dlq(1), dlq(2)])
    db.query("INSERT INTO events_db.dlq_queue (_topic, _partition, _offset, _error, _raw_message) "
             "SETTINGS insert_allow_materialized_columns = 1 VALUES ('dlq', 0, 7, 'Cannot parse', '{oops')")
    sql = dashboard_dataset_sql("rejected_records")
    assert rows(db, f"SELECT code, uniqExact(source_topic, source_partition, source_offset) AS records, "
                    f"argMax(raw, dlq_time) FROM ({sql}) AS virtual_table GROUP BY code ORDER BY code") == [
        ["clickhouse_parse_error", "1", "{oops"], ["invalid_country", "2", "{}"]]
