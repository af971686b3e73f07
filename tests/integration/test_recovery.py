"""Crash recovery on the real stack: `kill -9` of streamhost in the middle of a steady
stream, then a restart. Nothing may be lost, and no figure in ClickHouse may change
because of the duplicates at-least-once delivery brings: the results must equal the
brute-force oracle, as in a clean run (tests/integration/test_windows.py)."""

from __future__ import annotations

import threading
import time

from streamhost_kit.clickhouse import ch_value, positions_in_clickhouse
from streamhost_kit.events import EVENT_SET_GRACE as GRACE
from streamhost_kit.events import event_set, payloads
from streamhost_kit.kafka import produce, read_topic, watermarks
from streamhost_kit.oracle import oracle
from streamhost_kit.stack import reset_stack, settled_window_rows, stack
from streamhost_kit.util import wait_until


def test_kill_9_mid_stream_loses_nothing_and_changes_no_figure(hosts, extra_env={}):
    reset_stack()
    env = {"STREAMHOST_WINDOWS__GRACE_SECS": str(GRACE), **extra_env}
    first = hosts(1, **env)[0]
    wait_until("partitions assigned",
               lambda: first.metric("streamhost_assigned_partitions", stage="validate") == 3
               and first.metric("streamhost_assigned_partitions", stage="window") == 3, timeout=60)

    events, rejects = event_set(seed=11, n=1500)
    stream = payloads(events[:700] + rejects + events[700:])
    producer = threading.Thread(target=produce, args=(stream,), kwargs={"per_second": 100})
    producer.start()

    # Kill once some windows have been emitted and some are open: mid-stream, mid-window.
    wait_until("some windows emitted", lambda: sum(watermarks("country_event_averages").values()) >= 20,
               timeout=60, interval=0.2)
    first.kill()
    killed_at = sum(watermarks("my_events").values())
    enriched_at_kill = sum(watermarks("enriched_events").values())
    time.sleep(2)
    second = hosts(1, **env)[0]
    producer.join()
    total = len(stream)
    assert sum(watermarks("my_events").values()) == total
    assert 0 < killed_at < total, "the kill must land mid-stream"

    # Every input position exactly once in ClickHouse (after collapsing re-deliveries).
    valid = len(events)
    wait_until("every event in ClickHouse", lambda: positions_in_clickhouse() >= total, timeout=120)
    assert ch_value("SELECT count() FROM events_db.events FINAL") == valid
    assert ch_value("SELECT uniqExact(source_partition, source_offset) FROM events_db.events") == valid
    assert ch_value("SELECT count() FROM events_db.dlq_table FINAL") == len(rejects)
    # The windows: exactly the oracle, though the enriched topic may hold duplicates.
    want = oracle(events)

    got = settled_window_rows([second])
    assert got == want
    assert ch_value("SELECT count() FROM events_db.dlq_table WHERE code = 'late_event'") == 0

    enriched = len(read_topic("enriched_events"))
    duplicates = enriched - valid
    skipped = second.metric("streamhost_window_duplicates_skipped_total")
    reread = second.metric("streamhost_window_records_total") - (enriched - enriched_at_kill)
    assert reread > 0, "the restart must have re-read records of open windows"
    print(f"kill -9 after {killed_at}/{total} inputs: enriched_events holds {enriched} records for {valid} "
          f"events ({duplicates} re-deliveries); the restarted window stage re-read {reread:.0f} records and "
          f"skipped {skipped:.0f} duplicates; {len(want)} window rows exact")
    assert duplicates >= 0 and skipped >= 0


def test_clickhouse_restart_mid_stream_loses_nothing(hosts):
    # The same with a broker restart is not here: Tansu 0.6 panics after a restart with
    # idempotent producers connected ("more or less than one row" in its idempotence
    # check) and its storage stops answering; see docs/howto/operate.md, "Recovery".
    reset_stack()
    host = hosts(1, STREAMHOST_WINDOWS__GRACE_SECS=str(GRACE))[0]
    wait_until("partitions assigned", lambda: host.metric("streamhost_assigned_partitions", stage="validate") == 3,
               timeout=60)
    events, rejects = event_set(seed=5, n=1200)
    stream = payloads(events[:500] + rejects + events[500:])
    producer = threading.Thread(target=produce, args=(stream,), kwargs={"per_second": 100})
    producer.start()
    time.sleep(4)
    stack("stop", "clickhouse")
    # Longer than the Kafka session timeout (6 s): ClickHouse 18.16's consumers do not
    # leave their groups on shutdown, and rejoining while the old member is still
    # registered wedged a consumer on Tansu (docs/howto/operate.md, "Recovery").
    time.sleep(10)
    stack("start", "clickhouse")
    producer.join()
    assert host.proc.poll() is None
    total = len(stream)
    assert sum(watermarks("my_events").values()) == total

    wait_until("every event in ClickHouse", lambda: positions_in_clickhouse() >= total, timeout=180)
    assert ch_value("SELECT count() FROM events_db.events FINAL") == len(events)
    assert ch_value("SELECT count() FROM events_db.dlq_table FINAL") == len(rejects)
    assert settled_window_rows([host]) == oracle(events)
    print(f"ClickHouse down 10 s during {total} inputs: all rows present exactly once, windows exact")


def test_broker_restart_does_not_stop_the_host(hosts):
    # While the only broker is down, librdkafka reports it to the consumer
    # (`AllBrokersDown`) and reconnects by itself: the host must wait for it, not exit.
    # Nothing is produced while the broker restarts (Tansu 0.6 may not survive a
    # restart with producers sending; see the test above), so every event must arrive.
    reset_stack()
    host = hosts(1, STREAMHOST_WINDOWS__GRACE_SECS=str(GRACE))[0]
    wait_until("partitions assigned", lambda: host.metric("streamhost_assigned_partitions", stage="validate") == 3,
               timeout=60)
    events, rejects = event_set(seed=17, n=600)
    before, after = payloads(events[:300] + rejects), payloads(events[300:])
    produce(before)
    read = lambda: host.metric("streamhost_records_in_total", topic="my_events")  # noqa: E731
    wait_until("the first events read", lambda: read() >= len(before), timeout=60)

    down = time.monotonic()
    stack("stop", "tansu")
    time.sleep(3)
    assert host.proc.poll() is None, f"the host exited while the broker was down:\n{host.log()[-3000:]}"
    stack("start", "tansu")

    produce(after)
    total = len(before) + len(after)
    wait_until("reading again", lambda: read() > len(before), timeout=60)
    outage = time.monotonic() - down
    assert sum(watermarks("my_events").values()) == total
    wait_until("every event in ClickHouse", lambda: positions_in_clickhouse() >= total, timeout=180)
    assert ch_value("SELECT count() FROM events_db.events FINAL") == len(events)
    # The window stage may also dead-letter some of the second half as `late_event`: a
    # partition quiet for longer than the idle timeout no longer holds the watermark.
    assert ch_value("SELECT count() FROM events_db.dlq_table FINAL WHERE stage = 'plugin'") == len(rejects)
    assert host.proc.poll() is None
    # Said, but not once per client and failed connection (about a hundred error lines
    # over a 3 s restart before): one warning every 10 s for all clients. Other
    # consumer errors librdkafka recovers from have a line every 10 s per stage.
    log = host.log()
    unreachable = log.count("broker unreachable; librdkafka reconnects by itself")
    consumer = log.count("librdkafka retries by itself")
    # (The bounds allow one line more per 10 s than the outage measured here needs: the
    # clients notice the broker back at their own pace.)
    assert 1 <= unreachable <= 3 + outage // 10, f"{unreachable} broker-unreachable lines in {outage:.0f} s"
    assert consumer <= 2 * (2 + outage // 10), f"{consumer} consumer-error lines in a {outage:.0f} s outage"
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert not errors, "a broker restart is not an error:\n" + "\n".join(errors[:10])
    print(f"broker stopped and started between {len(before)} and {len(after)} inputs: the host rode it out, "
          f"every event in ClickHouse once; {unreachable} broker-unreachable and {consumer} consumer-error lines "
          f"in {outage:.0f} s")
