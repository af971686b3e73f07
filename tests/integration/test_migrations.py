"""sql/migrate on the real 18.16 server, fed through its Kafka tables: a database made by
the old schema (0001 rendered and applied as scripts/stack did before migrations, no
version table) with rows in it is upgraded while records keep arriving. Nothing is lost,
every Kafka table's views consume afterwards, the run is recorded and a second run
applies nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from streamhost_kit import events
from streamhost_kit.clickhouse import ch, ch_rows, ch_value
from streamhost_kit.events import payload
from streamhost_kit.kafka import BROKERS, produce
from streamhost_kit.stack import ROOT
from streamhost_kit.util import wait_until

CH_TCP = os.environ.get("STREAMHOST_CH_TCP_PORT", "9000")
MIGRATIONS = sorted((ROOT / "sql" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate() -> str:
    """sql/migrate as scripts/stack runs it; its log."""
    run = subprocess.run([str(ROOT / "sql" / "migrate"), "ch18", BROKERS, "--host", "127.0.0.1", "--port", CH_TCP],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stderr


def apply_0001() -> None:
    """What scripts/stack did before migrations: sql/schema.sql (now 0001), rendered."""
    sql = subprocess.run([str(ROOT / "sql" / "render"), "ch18", BROKERS, str(MIGRATIONS[0])],
                         capture_output=True, text=True, check=True).stdout
    subprocess.run(["clickhouse-client", "--host", "127.0.0.1", "--port", CH_TCP, "--multiquery"],
                   input=sql, text=True, check=True)


def gmt(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def enriched(partition: int, offset: int, t: int, country: str, user: int) -> bytes:
    return payload(events.enriched(user_id=user, page_url="/", timestamp=gmt(t), country=country,
                                   source_partition=partition, source_offset=offset))


def dlq(offset: int) -> bytes:
    return json.dumps({"code": "invalid_country", "message": "m", "stage": "plugin", "rejected_by": "quality@1",
                       "source_topic": "my_events", "source_partition": 0, "source_offset": offset,
                       "source_time": "2026-01-05 10:00:00", "dlq_time": "2026-01-05 10:00:01",
                       "raw": '{"country":"XX"}', "raw_encoding": "utf8"}).encode()


def average(country: str, start: int, count: int, **read_through) -> bytes:
    return json.dumps({"country": country, "window_start": gmt(start), "window_end": gmt(start + 300),
                       "average_events": count / 5, "event_count": count, **read_through}).encode()


JAN = 1_767_225_600  # 2026-01-01 00:00:00 UTC
FEB = 1_769_904_000  # 2026-02-01 00:00:00 UTC: the records sent during and after the upgrade

# The rows from before the upgrade (country != 'FR'), in forms both layouts print alike.
SNAPSHOT = {
    "events": "SELECT toUnixTimestamp(timestamp) AS t, event_type, user_id, country, ifNull(device_type, '-') AS d, "
              "source_partition, source_offset, processed_by FROM events_db.events FINAL WHERE country != 'FR' "
              "ORDER BY source_partition, source_offset",
    "dau": "SELECT toString(event_date) AS d, country, dau FROM events_db.daily_active_users_final "
           "WHERE country != 'FR' ORDER BY d, country",
    "minutes": "SELECT toUnixTimestamp(minute) AS m, country, event_count, delivered_rows "
               "FROM events_db.country_minute_counts_final WHERE country != 'FR' ORDER BY m, country",
    "dlq": "SELECT code, source_offset, toUnixTimestamp(source_time) AS s, raw FROM events_db.dlq_table FINAL "
           "ORDER BY source_offset",
    "averages": "SELECT country, toUnixTimestamp(window_start) AS w, event_count FROM events_db.country_event_averages "
                "WHERE country != 'FR' ORDER BY country, w",
}


def snapshot() -> dict[str, list[dict]]:
    return {k: ch_rows(q) for k, q in SNAPSHOT.items()}


def test_a_0001_database_with_rows_is_upgraded_while_records_arrive(fresh_stack):
    ch("DROP DATABASE IF EXISTS events_db")
    apply_0001()
    assert ch_value("SELECT count() FROM system.tables WHERE database = 'events_db' AND name = 'schema_migrations'") == 0

    # Before: 200 events over five January days, then 100 from 1970 to 2105 in one block
    # (0001's monthly partitions: one block over ~1600 of them), DLQ rows and windows.
    old = [enriched(1, i, JAN + (i % 5) * 86400 + i * 7, ["DE", "US", "JP"][i % 3], i % 40) for i in range(200)]
    step = (4_291_660_800 - 0) // 99
    old += [enriched(2, i, i * step, "US", 1000 + i) for i in range(100)]
    produce(old, topic="enriched_events")
    produce([dlq(i) for i in range(5)], topic="dlq")
    produce([average("DE", JAN + 36000, 21), average("US", JAN + 36000, 4)], topic="country_event_averages")
    wait_until("the rows before", lambda: ch_value("SELECT count() FROM events_db.events") >= 300
               and ch_value("SELECT count() FROM events_db.dlq_table") >= 5
               and ch_value("SELECT count() FROM events_db.country_event_averages_raw") >= 2, 90)
    # 18.16 has no max_partitions_per_insert_block: the wide block was written.
    assert ch_value("SELECT count() FROM events_db.events WHERE source_partition = 2") == 100
    before = snapshot()
    assert len(before["events"]) == 300 and before["dau"] and before["minutes"]

    # A steady stream (25/s for 16 s) to enriched_events, before, during and after the upgrade.
    stream = [enriched(7, i, FEB + i, "FR", i % 50) for i in range(400)]
    producer = threading.Thread(target=produce, args=(stream,), kwargs={"topic": "enriched_events", "per_second": 25})
    producer.start()
    time.sleep(3)
    started = time.monotonic()
    log = migrate()
    took = time.monotonic() - started
    producer.join()
    print(f"sql/migrate took {took:.1f} s:\n{log}")
    assert "made by the old sql/schema.sql" in log
    assert "0002_table_layout: applying" in log and "0003_consumers: applying" in log
    assert [r["version"] for r in ch_rows("SELECT version FROM events_db.schema_migrations FINAL ORDER BY version")] == [
        int(p.name[:4]) for p in MIGRATIONS]

    # The stream, every record once, through each of the three readers of the Kafka table.
    wait_until("the stream in ClickHouse", lambda: ch_value(
        "SELECT count() FROM events_db.events FINAL WHERE source_partition = 7") >= 400, 120)
    time.sleep(3)
    assert ch_value("SELECT uniqExact(source_offset) FROM events_db.events WHERE source_partition = 7") == 400
    assert ch_value("SELECT sum(event_count) FROM events_db.country_minute_counts_final WHERE country = 'FR'") == 400
    assert ch_value("SELECT dau FROM events_db.daily_active_users_final WHERE country = 'FR'") == 50
    # The rows from before, unchanged, and the old tables kept.
    assert snapshot() == before
    assert ch_value("SELECT count() FROM events_db.events_0001") == 300 + ch_value(
        "SELECT count() FROM events_db.events_0001 WHERE country = 'FR'")
    assert ch_rows("SELECT type FROM system.columns WHERE database = 'events_db' AND table = 'events' "
                   "AND name = 'timestamp'") == [{"type": "DateTime('UTC')"}]

    # After: each Kafka table's views consume (a broken record blocks nothing).
    produce([b'{"event_type": "page_view", "user_id": "not a number"'], topic="enriched_events")
    time.sleep(9)  # the broken record in a Kafka block of its own (18.16 can lose good rows sharing one)
    produce([enriched(8, i, FEB + 3600, "FR", 500 + i) for i in range(5)], topic="enriched_events")
    produce([dlq(i) for i in range(10, 12)], topic="dlq")
    produce([average("FR", FEB, 12, enriched_partition=0, enriched_read_through=80),
             average("FR", FEB, 9, enriched_partition=0, enriched_read_through=50)], topic="country_event_averages")
    wait_until("the records after", lambda: ch_value("SELECT count() FROM events_db.events WHERE source_partition = 8") >= 5
               and ch_value("SELECT count() FROM events_db.dlq_table") >= 7
               and ch_value("SELECT count() FROM events_db.country_event_averages_raw WHERE country = 'FR'") >= 2, 90)
    assert ch_rows("SELECT event_count, enriched_read_through FROM events_db.country_event_averages_raw FINAL "
                   "WHERE country = 'FR'") == [{"event_count": 12, "enriched_read_through": 80}]
    assert ch_value("SELECT dau FROM events_db.daily_active_users_final WHERE country = 'FR'") == 55

    assert "(0 applied now)" in migrate()

    # The dashboard's DLQ chart reads the host's DLQ and kafka_errors (empty on 18.16) as one.
    sys.path.insert(0, str(ROOT / "superset"))
    import bundle  # noqa: PLC0415
    got = ch_rows("SELECT code, uniqExact(source_topic, source_partition, source_offset) AS records "
                  f"FROM ({bundle.DATASETS['rejected_records']['sql']}) AS virtual_table GROUP BY code")
    assert got == [{"code": "invalid_country", "records": 7}]


def test_a_server_in_another_time_zone_stores_and_reads_the_same_instants(tmp_path):
    """A second 18.16 server whose zone is Asia/Kolkata (UTC+5:30), migrated like the
    stack's: the host's UTC text lands as the same instant and prints as written; the
    zoneless DateTime of 0001 took it as Kolkata time. (Its Kafka tables point at a
    closed port: the rows are inserted as the Kafka engine would parse them, JSONEachRow.)"""
    from streamhost_kit.stack import free_port, port_open
    from streamhost_kit.util import wait_until as wait

    http, tcp = free_port(), free_port()
    for d in ["data", "tmp", "user_files", "format_schemas", "log"]:
        (tmp_path / d).mkdir()
    config = (ROOT / "scripts" / "lib" / "clickhouse-config.xml").read_text()
    config = (config.replace("@DIR@", str(tmp_path)).replace("@HTTP@", str(http)).replace("@TCP@", str(tcp))
              .replace("<timezone>UTC</timezone>", "<timezone>Asia/Kolkata</timezone>"))
    (tmp_path / "config.xml").write_text(config)
    (tmp_path / "users.xml").write_text((ROOT / "scripts" / "lib" / "clickhouse-users.xml").read_text())
    server = subprocess.Popen(["clickhouse-server", f"--config-file={tmp_path / 'config.xml'}"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait("the Kolkata server", lambda: port_open(tcp), timeout=30)

        def q(sql: str, data: str | None = None) -> str:
            return subprocess.run(["clickhouse-client", "--port", str(tcp), "--query", sql], input=data,
                                  capture_output=True, text=True, check=True).stdout.strip()

        assert q("SELECT timezone()") == "Asia/Kolkata"
        run = subprocess.run([str(ROOT / "sql" / "migrate"), "ch18", "127.0.0.1:1", "--port", str(tcp)],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        row = json.dumps(events.enriched(user_id=1, timestamp="2026-01-05 10:00:00", source_partition=0, source_offset=1))
        q("INSERT INTO events_db.events FORMAT JSONEachRow", row)
        # 1767607200 = 2026-01-05 10:00:00 UTC
        assert q("SELECT toUnixTimestamp(timestamp), toString(timestamp), toDate(timestamp) FROM events_db.events") == \
            "1767607200\t2026-01-05 10:00:00\t2026-01-05"
        q("INSERT INTO events_db.events_0001 FORMAT JSONEachRow", row)
        assert q("SELECT toUnixTimestamp(timestamp) FROM events_db.events_0001") == str(1767607200 - 19800)
    finally:
        server.terminate()
        server.wait(timeout=30)
