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
    return [line.split("\t") for line in str(sess.query(q, "TSV")).splitlines() if line]


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
