"""Aggregation in the stream processor versus in ClickHouse, measured.

Both sides get the same input through the real host binary, the real broker (Tansu) and
the real ClickHouse 18.16:

* host: the window stage's rows in `country_event_averages` (the view with FINAL);
* mv: ClickHouse's own materialized view of sql/migrations/: country_minute_counts_mv
  fills per-(country, minute) uniqExact states of (source_partition, source_offset),
  and `mv_query` (the innermost filter of country_event_averages_ch, which is compared
  too) sums 5 minutes into each window; `mv_delivered` is the same with countMerge,
  i.e. a plain count()/SummingMergeTree pre-aggregate that does not deduplicate;
* scan: the same windows computed at query time from `events` (`country_event_averages_scan`,
  SQL below), deduplicated by the event's identity: the no-pre-aggregation baseline.

Scenarios: (a) in order, (b) out of order within the grace, (c) late beyond the grace,
(d) kill -9 of the host mid-stream and restart, then re-deliveries injected into
enriched_events, (e) freshness on a live paced stream, (f) a 30,000-event backlog and
CPU, (g) ClickHouse's CPU for the view (3 trials), query cost, back-fill, state sizes.
Run by bench/tradeoff/run, which sets the stack's ports; the results go to
bench/results/<UTC date and time>-tradeoff.json (with the command and the machine).
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from streamhost_kit.clickhouse import CH_URL, ch, ch_rows, ch_value, window_rows
from streamhost_kit.events import ALLOWED, T0, payload, random_event, spread
from streamhost_kit.kafka import BROKERS, produce, read_topic, watermarks
from streamhost_kit.oracle import ADVANCE, GRACE, SIZE, window_starts
from streamhost_kit.oracle import window_counts as window_counts_epoch
from streamhost_kit.oracle import fmt_time as fmt
from streamhost_kit.oracle import oracle
from streamhost_kit.stack import ROOT, Host, proc_status, stack
from streamhost_kit.util import log, wait_until

STATE = Path(os.environ["STREAMHOST_STATE_DIR"])
BIN = STATE / "streamhost"
# GRACE: the host's default; every host here runs with the default window settings.
DAY = 86_400
D1 = T0             # 2025-01-01: (a) in order
D2 = D1 + DAY       # (b) out of order within the grace, then (c) late events for it
D3 = D2 + DAY       # (d) kill -9 mid-stream
D4 = D3 + DAY       # (f) the burst used for the host's CPU per event
COUNTRIES = sorted(ALLOWED)

# The ClickHouse side: the same windows as the host (an event at t is in the 5 windows
# whose start is t's minute or one of the 4 before), counted once per event identity.
# 18.16 rejects a lambda over a column (arrayMap(i -> ... timestamp ...)), hence the
# arrayJoin over offsets. `rows_counted` is what a plain count() gives (no dedup).
CH_VIEW = f"""
CREATE VIEW IF NOT EXISTS events_db.country_event_averages_scan AS
SELECT country,
       toStartOfMinute(timestamp) - arrayJoin(range({SIZE // ADVANCE})) * {ADVANCE} AS window_start,
       window_start + {SIZE} AS window_end,
       uniqExact(source_partition, source_offset) AS event_count,
       event_count * 60 / {SIZE} AS average_events,
       count() AS rows_counted
FROM events_db.events
GROUP BY country, window_start
"""


def ch_side_query(lo: int, hi: int) -> str:
    """What a dashboard would send for windows starting in [lo, hi): the timestamp filter
    lets the primary key (toDate(timestamp), ...) skip parts; 18.16 does not push a
    WHERE on the view's window_start down into it."""
    return (f"SELECT country, window_start, event_count, average_events FROM ("
            f" SELECT country, toStartOfMinute(timestamp) - arrayJoin(range({SIZE // ADVANCE})) * {ADVANCE} AS window_start,"
            f" uniqExact(source_partition, source_offset) AS event_count, event_count * 60 / {SIZE} AS average_events"
            f" FROM events_db.events WHERE timestamp >= toDateTime({lo}) AND timestamp < toDateTime({hi + SIZE - ADVANCE})"
            f" GROUP BY country, window_start) WHERE window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})")


def mv_query(lo: int, hi: int, merge: str = "uniqExactMerge(events)", table: str = "events_db.country_minute_counts",
             size: int = SIZE) -> str:
    """The materialized side for windows starting in [lo, hi): the minutes they cover,
    summed into windows (what country_event_averages_ch does, with the time filter where
    the primary key (minute, country) can use it). `merge`: countMerge(delivered) gives
    the pre-aggregate that does not deduplicate; `size`: another window size, same state."""
    k = size // ADVANCE
    return (f"SELECT country, window_start, event_count, event_count * 60 / {size} AS average_events FROM ("
            f" SELECT country, minute - arrayJoin(range({k})) * {ADVANCE} AS window_start, sum(n) AS event_count FROM ("
            f"  SELECT minute, country, {merge} AS n FROM {table}"
            f"  WHERE minute >= toDateTime({lo}) AND minute < toDateTime({hi + size - ADVANCE}) GROUP BY minute, country)"
            f" GROUP BY country, window_start) WHERE window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})")


def host_side_query(lo: int, hi: int) -> str:
    return (f"SELECT country, window_start, event_count, average_events FROM events_db.country_event_averages"
            f" WHERE window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------- /proc
def cpu_seconds(pid: int) -> float:
    return proc_status(pid)["cpu"]  # utime + stime


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    status = proc_status(pid)
    return status["VmRSS"] / 1024, status["VmHWM"] / 1024


def clickhouse_pid() -> int:
    return int((STATE / "clickhouse.pid").read_text())


# ---------------------------------------------------------------- input
def max_disorder(events: list[dict]) -> int:
    """How far (s) the most out-of-order event is behind the highest time produced before it."""
    high, worst = None, 0
    for e in events:
        if high is not None:
            worst = max(worst, high - e["timestamp"])
        high = e["timestamp"] if high is None else max(high, e["timestamp"])
    return worst


def produce_in_order(events: list[dict], per_second: float | None = None, sent_at: dict | None = None) -> None:
    """All to partition 0 of my_events, so the order (and disorder) the host sees is exactly
    the list's; `per_second` paces it; `sent_at` collects the wall time of each send."""
    def values():
        for e in events:
            if sent_at is not None:
                now = time.time()
                e["timestamp"] = int(now)  # live: event time is the moment of production
                sent_at[e["button_id"]] = now
            yield payload(e)

    produce(values(), per_second=per_second, partition=0, flush_timeout=60)


# ---------------------------------------------------------------- comparisons
def host_rows(lo: int, hi: int) -> dict:
    return window_rows(f"window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})")


def ch_side_rows(lo: int, hi: int, column: str = "event_count") -> dict:
    return {(r["country"], r["ws"]): int(r["n"]) for r in ch_rows(
        f"SELECT country, toString(window_start) AS ws, {column} AS n FROM events_db.country_event_averages_scan"
        f" WHERE window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})")}


def mv_rows(lo: int, hi: int, merge: str = "uniqExactMerge(events)") -> dict:
    return {(r["country"], r["ws"]): int(r["event_count"]) for r in ch_rows(
        f"SELECT country, toString(window_start) AS ws, event_count FROM ({mv_query(lo, hi, merge)})")}


def mv_view_rows(lo: int, hi: int) -> dict:
    """country_event_averages_ch itself (the object a dashboard would be pointed at)."""
    return {(r["country"], r["ws"]): int(r["n"]) for r in ch_rows(
        f"SELECT country, toString(window_start) AS ws, event_count AS n FROM events_db.country_event_averages_ch"
        f" WHERE window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})")}


def mv_sides(lo: int, hi: int, want: dict) -> dict:
    return {"mv": compare(mv_rows(lo, hi), want), "mv_view": compare(mv_view_rows(lo, hi), want),
            "mv_delivered": compare(mv_rows(lo, hi, "countMerge(delivered)"), want)}


def compare(got: dict, want: dict) -> dict:
    keys = set(got) | set(want)
    wrong = [k for k in keys if got.get(k) != want.get(k)]
    return {"windows": len(want), "rows": len(got), "equal": not wrong, "windows_wrong": len(wrong),
            "missing": sum(1 for k in want if k not in got), "extra": sum(1 for k in got if k not in want),
            "count_error": sum(got.get(k, 0) - want.get(k, 0) for k in keys),
            "abs_count_error": sum(abs(got.get(k, 0) - want.get(k, 0)) for k in keys)}


def within(want: dict, lo: int, hi: int) -> dict:
    return {k: v for k, v in want.items() if fmt(lo) <= k[1] < fmt(hi)}


def events_in_ch(lo: int, hi: int) -> int:
    return ch_value(f"SELECT uniqExact(source_partition, source_offset) FROM events_db.events"
                    f" WHERE timestamp >= toDateTime({lo}) AND timestamp < toDateTime({hi})")


def events_in_mv(lo: int, hi: int, merge: str = "uniqExactMerge(events)") -> int:
    return ch_value(f"SELECT sum(n) FROM (SELECT {merge} AS n FROM events_db.country_minute_counts"
                    f" WHERE minute >= toDateTime({lo}) AND minute < toDateTime({hi}) GROUP BY minute, country)")


STALLS: list[str] = []


def settle(host: Host, lo: int, hi: int, n_events: int, n_windows: int, timeout: float = 150) -> bool:
    """Until ClickHouse holds every event of [lo, hi), and the host has emitted every
    window of it into ClickHouse, or (if it never does: windows can be lost, see (g))
    has counted input, closed every window and emitted nothing new for 10 s."""
    history: list[int] = []

    def done():
        if events_in_ch(lo, hi) < n_events or events_in_mv(lo, hi) < n_events:
            return False
        rows = len(host_rows(lo, hi))
        if rows >= n_windows:
            return True
        history.append(rows)
        quiet = len(history) >= 6 and len(set(history[-6:])) == 1
        return (quiet and host.metric("streamhost_window_records_total") > 0
                and host.metric("streamhost_open_windows") == 0)
    try:
        wait_until("every window of the range in ClickHouse (or nothing more coming)", done, timeout=timeout, interval=2)
        return True
    except AssertionError as e:
        # Compare what is there rather than abort: a ClickHouse 18.16 Kafka consumer on
        # Tansu can wedge (docs/issues.md); the results then say so.
        log(f"not settled: {e}")
        STALLS.append(f"{fmt(lo)[:10]}: {events_in_ch(lo, hi)} of {n_events} events in ClickHouse, "
                      f"{len(host_rows(lo, hi))} of {n_windows} host windows after {timeout:.0f} s")
        return False


# ---------------------------------------------------------------- hosts
class Hosts:
    """Every host started here, so that all of them are stopped at the end, also on failure."""

    def __init__(self, plugin_dir: Path):
        self.plugin_dir = plugin_dir
        self.logs = STATE / "bench-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: list[Host] = []

    def start(self, name: str, **env: str) -> Host:
        h = Host(self.logs, self.plugin_dir, name=name, binary=BIN, **env).start()
        self.started.append(h)
        return h

    def stop_all(self) -> None:
        for h in self.started:
            if h.proc and h.proc.poll() is None:
                h.stop()


def assigned(host: Host, validate: int = 3, window: int = 3, timeout: float = 90) -> None:
    wait_until(f"{host.log_path.stem}: partitions assigned",
               lambda: host.metric("streamhost_assigned_partitions", stage="validate") == validate
               and host.metric("streamhost_assigned_partitions", stage="window") == window, timeout=timeout)


# ---------------------------------------------------------------- scenarios
def correctness(hosts: Hosts) -> dict:
    """(a) in order, (b) out of order within the grace, (c) late beyond it."""
    host = hosts.start("host-abc", STREAMHOST_WINDOWS__IDLE_TIMEOUT_SECS="3")
    assigned(host)
    in_order = spread(D1 + 600, 25 * 60, 900, tag="a", seed=1, countries=COUNTRIES)
    disordered = spread(D2 + 600, 25 * 60, 900, tag="b", seed=2, jitter=12, countries=COUNTRIES)
    log(f"(a)+(b): {len(in_order)} + {len(disordered)} events; (b) disorder up to {max_disorder(disordered)} s")
    produce_in_order(in_order + disordered, per_second=300)
    want_a, want_b = within(oracle(in_order), D1, D2), within(oracle(disordered), D2, D3)
    settle(host, D1, D3, len(in_order) + len(disordered), len(want_a) + len(want_b))
    out = {
        "a": {"events": len(in_order), "host": compare(host_rows(D1, D2), want_a),
              "ch": compare(ch_side_rows(D1, D2), want_a), **mv_sides(D1, D2, want_a)},
        "b": {"events": len(disordered), "max_disorder_s": max_disorder(disordered),
              "host": compare(host_rows(D2, D3), want_b), "ch": compare(ch_side_rows(D2, D3), want_b),
              **mv_sides(D2, D3, want_b)},
    }
    emitted_before = sum(watermarks("country_event_averages").values())

    # (c): every window of D2 is closed now (the frontier followed the wall clock).
    rng = random.Random(3)
    late = [random_event(rng, D2 + 600 + rng.randrange(25 * 60), f"c-{i}", country=rng.choice(COUNTRIES))
            for i in range(60)]
    log(f"(c): {len(late)} late events for the windows of (b)")
    produce_in_order(late)
    wait_until("the late events in dlq_table", lambda: ch_value(
        "SELECT count() FROM events_db.dlq_table FINAL WHERE code = 'late_event'") >= len(late), timeout=90)
    wait_until("the late events in events and in the view", lambda: events_in_ch(D2, D3) >= len(disordered) + len(late)
               and events_in_mv(D2, D3) >= len(disordered) + len(late), timeout=90)
    want_all = within(oracle(disordered + late), D2, D3)
    touched = {k for k in want_all if want_all[k] != want_b.get(k)}
    out["c"] = {
        "late_events": len(late), "windows_touched_by_late": len(touched),
        "host_late_in_dlq": ch_value("SELECT count() FROM events_db.dlq_table FINAL WHERE code = 'late_event'"),
        "host_late_metric": host.metric("streamhost_late_events_total"),
        "host_reemitted": sum(watermarks("country_event_averages").values()) - emitted_before,
        "host_vs_on_time": compare(host_rows(D2, D3), want_b),
        "host_vs_all": compare(host_rows(D2, D3), want_all),
        "ch_vs_on_time": compare(ch_side_rows(D2, D3), want_b),
        "ch_vs_all": compare(ch_side_rows(D2, D3), want_all),
        "mv_vs_on_time": compare(mv_rows(D2, D3), want_b),
        "mv_vs_all": compare(mv_rows(D2, D3), want_all),
    }
    host.stop()
    return out


def crash(hosts: Hosts, kills: int = 2) -> dict:
    """(d) kill -9 of the host mid-stream, restarted after 7 s, `kills` times during one
    stream: a quarter of the way in, then as soon as the restarted host produces again
    (working through the backlog of its downtime in batches of up to 1024). At-least-once
    re-delivery needs the kill to land between a batch's produce and its commit, so it
    is a matter of timing: a kill in a calm stream usually re-delivers nothing, a kill
    right after a large batch became visible in enriched_events often does (928 of
    4000 in one run, none in another). What was re-delivered is counted, not assumed.

    Restarts wait 7 s, past the 6 s group session of the dead host: Tansu 0.6 once left
    a host restarted after 2 s without partitions for minutes (the quirk seen with
    ClickHouse's consumers in docs/issues.md). If a restarted host still gets no
    partitions in 45 s, it is stopped cleanly and started again; retries are recorded."""
    events = spread(D3 + 600, 25 * 60, 4000, tag="d", seed=4, countries=COUNTRIES)
    enriched_before = watermarks("enriched_events")
    averages_before = watermarks("country_event_averages")
    raw_before = ch_value(f"SELECT count() FROM events_db.country_event_averages_raw WHERE window_start >= toDateTime({D3})")
    assert raw_before == 0
    env = {"STREAMHOST_WINDOWS__IDLE_TIMEOUT_SECS": "3"}
    host = hosts.start("host-d0", **env)
    assigned(host)
    producer = threading.Thread(target=produce_in_order, args=(events,), kwargs={"per_second": 400})
    producer.start()
    killed_at: list[int] = []
    retries: list[str] = []

    def enriched() -> int:
        return sum(watermarks("enriched_events").values()) - sum(enriched_before.values())

    wait_until("25 % of (d) in enriched_events", lambda: enriched() >= len(events) // 4, timeout=120, interval=0.05)
    for k in range(1, kills + 1):
        host.kill()
        killed_at.append(enriched())
        log(f"(d): kill -9 #{k} with {killed_at[-1]} records of {len(events)} in enriched_events")
        for attempt in range(3):
            time.sleep(7)
            mark = enriched()
            host = hosts.start(f"host-d{k}-{attempt}", **env)
            try:
                if k < kills:  # kill again as soon as it produces
                    wait_until("the restarted host producing", lambda: enriched() > mark, timeout=45, interval=0.05)
                else:
                    assigned(host, timeout=45)
                break
            except AssertionError:
                retries.append(f"restart {k}: nothing after 45 s, stopped and started again")
                log(retries[-1])
                host.stop()
        else:
            raise AssertionError("the restarted host never got its partitions")
    producer.join()
    second = host
    want = within(oracle(events), D3, D4)
    settle(second, D3, D4, len(events), len(want))
    emitted = [json.loads(m.value()) for m in read_topic("country_event_averages", start=averages_before)]
    emitted_d = [e for e in emitted if fmt(D3) <= e["window_start"] < fmt(D4)]

    # What a consumer that does not deduplicate would count: every delivered record.
    delivered = [json.loads(m.value()) for m in read_topic("enriched_events", start=enriched_before)]
    naive_d = within(oracle([e for e in delivered if D3 <= e["timestamp"] < D4]), D3, D4)
    raw_rows = ch_value(f"SELECT count() FROM events_db.country_event_averages_raw WHERE window_start >= toDateTime({D3}) AND window_start < toDateTime({D4})")
    out = {
        "events": len(events), "kills": len(killed_at), "killed_at_enriched": killed_at, "restart_retries": retries,
        "emitted_records": len(emitted_d), "emitted_windows": len({(e["country"], e["window_start"]) for e in emitted_d}),
        "enriched_records": sum(1 for e in delivered if D3 <= e["timestamp"] < D4),
        "events_rows_plain": ch_value(f"SELECT count() FROM events_db.events WHERE timestamp >= toDateTime({D3}) AND timestamp < toDateTime({D4})"),
        "events_rows_final": ch_value(f"SELECT count() FROM events_db.events FINAL WHERE timestamp >= toDateTime({D3}) AND timestamp < toDateTime({D4})"),
        "host_duplicates_skipped": second.metric("streamhost_window_duplicates_skipped_total"),
        "host_reread_skipped": second.metric("streamhost_window_reread_skipped_total"),
        "host_late": second.metric("streamhost_late_events_total"),
        "host_raw_rows": raw_rows,
        "host_final": compare(host_rows(D3, D4), want),
        "ch_uniq": compare(ch_side_rows(D3, D4), want),
        "ch_plain_now": compare(ch_side_rows(D3, D4, "rows_counted"), want),
        "plain_over_delivered": compare(naive_d, want),
        **mv_sides(D3, D4, want),
    }
    second.stop()

    # Re-delivery made certain: a kill -9 re-delivers only if it lands between a batch's
    # produce and its commit. Every 4th record of (d) is written to enriched_events
    # again, byte for byte (same source_partition/source_offset), in 4 rounds of
    # separate insert blocks, as a host restarted after a crash would.
    again = [m.value() for m in read_topic("enriched_events", start=enriched_before)][::4]
    rows_before = out["events_rows_plain"]
    for r in range(4):
        produce(again[r::4], topic="enriched_events")
        time.sleep(1)
    wait_until("the re-delivered rows in events", lambda: ch_value(
        f"SELECT count() FROM events_db.events WHERE timestamp >= toDateTime({D3}) AND timestamp < toDateTime({D4})")
        >= rows_before + len(again), timeout=90)
    wait_until("the re-delivered rows in the view", lambda: events_in_mv(D3, D4, "countMerge(delivered)")
               >= rows_before + len(again), timeout=60)
    out["injected"] = {"records_again": len(again),
                       "events_rows_plain": ch_value(f"SELECT count() FROM events_db.events WHERE timestamp >= toDateTime({D3}) AND timestamp < toDateTime({D4})"),
                       "mv_delivered_rows": events_in_mv(D3, D4, "countMerge(delivered)"),
                       "mv_distinct_events": events_in_mv(D3, D4),
                       "host_final": compare(host_rows(D3, D4), want),
                       "ch_uniq": compare(ch_side_rows(D3, D4), want),
                       "ch_plain": compare(ch_side_rows(D3, D4, "rows_counted"), want),
                       **mv_sides(D3, D4, want)}
    return out


def burst_and_live(hosts: Hosts) -> dict:
    """(f) the window stage's CPU per event on a burst, then (e) freshness on a live
    paced stream. The window stage runs in a process of its own here (its validate stage
    reads an empty topic), so /proc shows the window stage's cost alone."""
    subprocess.run([os.environ.get("PYTHON", sys.executable), str(ROOT / "scripts" / "lib" / "topics.py"),
                    "--brokers", BROKERS, "--partitions", "1", "tradeoff_idle"], check=True, stderr=sys.stderr)
    validate = hosts.start("validate-only", STREAMHOST_WINDOWS__ENABLED="false")
    window = hosts.start("window-only", STREAMHOST_KAFKA__INPUT_TOPIC="tradeoff_idle",
                         STREAMHOST_KAFKA__GROUP_ID="tradeoff-idle", STREAMHOST_WINDOWS__IDLE_TIMEOUT_SECS="3")
    assigned(validate, window=0)
    assigned(window, validate=1)
    wpid, vpid = window.proc.pid, validate.proc.pid
    out: dict = {}

    # Idle cost first: what the window process burns with no input.
    # Both processes have an idle validate stage, the admin endpoint and the runtime; the
    # difference is the window stage's own fixed cost.
    c0, v0, t0 = cpu_seconds(wpid), cpu_seconds(vpid), time.monotonic()
    time.sleep(15)
    idle_rate = (cpu_seconds(wpid) - c0) / (time.monotonic() - t0)
    out["window_idle_cpu_per_s"] = idle_rate
    out["validate_idle_cpu_per_s"] = (cpu_seconds(vpid) - v0) / (time.monotonic() - t0)

    # Burst: 2 h of event time (250 events/min), as fast as the validate stage goes,
    # after the window stage has been idle: a backlog after a pause.
    n = 30_000
    burst = spread(D4 + 600, 2 * 3600, n, tag="f", seed=6, countries=COUNTRIES)
    base = window.metric("streamhost_window_records_total")
    late0 = window.metric("streamhost_late_events_total")
    c0, v0, t0 = cpu_seconds(wpid), cpu_seconds(vpid), time.monotonic()
    ch0_burst = cpu_seconds(clickhouse_pid())
    produce_in_order(burst)
    wait_until("the burst counted by the window stage",
               lambda: window.metric("streamhost_window_records_total") - base >= n, timeout=240, interval=0.2)
    t_counted = time.monotonic()
    wait_until("the burst's windows closed", lambda: window.metric("streamhost_open_windows") == 0, timeout=60, interval=0.2)
    wall = time.monotonic() - t0
    w_cpu, v_cpu = cpu_seconds(wpid) - c0, cpu_seconds(vpid) - v0
    out["burst"] = {"events": n, "windows": len(within(oracle(burst), D4, D4 + DAY)), "wall_s": wall,
                    "count_s": t_counted - t0, "window_cpu_s": w_cpu, "validate_cpu_s": v_cpu,
                    "window_cpu_us_per_event": (w_cpu - idle_rate * wall) / n * 1e6,
                    "validate_cpu_us_per_event": v_cpu / n * 1e6,
                    "window_rss_mb": rss_mb(wpid), "validate_rss_mb": rss_mb(vpid)}
    want = within(oracle(burst), D4, D4 + DAY)
    settle(window, D4, D4 + DAY, n, len(want))
    out["burst"]["late"] = window.metric("streamhost_late_events_total") - late0
    out["burst"]["host"] = compare(host_rows(D4, D4 + DAY), want)
    out["burst"]["ch"] = compare(ch_side_rows(D4, D4 + DAY), want)
    out["burst"].update(mv_sides(D4, D4 + DAY, want))
    # ClickHouse's CPU over the same span (Kafka reads, `events`, DAU and this view).
    out["burst"]["clickhouse_cpu_s_until_settled"] = cpu_seconds(clickhouse_pid()) - ch0_burst
    if out["burst"]["late"]:
        # Which countries lost events: their partition delivered after another one had
        # already moved the frontier (idle partitions do not hold it back).
        out["burst"]["late_by_country"] = {r["c"]: int(r["n"]) for r in ch_rows(
            "SELECT extract(raw, '\"country\":\"([A-Z]+)\"') AS c, count() AS n FROM events_db.dlq_table FINAL"
            f" WHERE code = 'late_event' AND raw LIKE '%\"button_id\":\"f-%' GROUP BY c")}

    # (e) live: event time = production time. Start at second 50 of a minute, so 90 s
    # of traffic span two minute boundaries (two rounds of windows closing live).
    rate, seconds = 20, 90
    time.sleep((50 - time.time() % 60) % 60)
    live = [random_event(random.Random(i), 0, f"live-{i}", country=c) for i, c in
            enumerate(random.Random(7).choices(COUNTRIES, k=rate * seconds))]
    sent_at: dict[str, float] = {}
    seen_event: dict[str, float] = {}
    seen_window: dict[tuple[str, int], float] = {}
    mv_counts: dict[tuple[str, int], list[tuple[float, int]]] = {}  # (country, start) -> [(t, count)] on change
    live_lo = int(time.time()) - 1
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            t = time.time()
            for r in ch_rows(f"SELECT button_id FROM events_db.events WHERE timestamp >= toDateTime({live_lo})"):
                seen_event.setdefault(r["button_id"], t)
            for r in ch_rows("SELECT country, toUInt32(window_start) AS ws FROM events_db.country_event_averages_raw"
                             f" WHERE window_start >= toDateTime({live_lo - SIZE})"):
                seen_window.setdefault((r["country"], int(r["ws"])), t)
            for r in ch_rows(f"SELECT country, toUInt32(window_start) AS ws, event_count AS n FROM ({mv_query(live_lo - SIZE, live_lo + 3600)})"):
                hist = mv_counts.setdefault((r["country"], int(r["ws"])), [])
                if not hist or hist[-1][1] != int(r["n"]):
                    hist.append((t, int(r["n"])))
            time.sleep(max(0.0, 0.5 - (time.time() - t)))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    c0, v0, ch0, t0 = cpu_seconds(wpid), cpu_seconds(vpid), cpu_seconds(clickhouse_pid()), time.monotonic()
    t_live = time.time()
    log(f"(e): {rate}/s for {seconds} s, live")
    produce_in_order(live, per_second=rate, sent_at=sent_at)
    live_wall = time.monotonic() - t0
    w_cpu, v_cpu, ch_cpu = cpu_seconds(wpid) - c0, cpu_seconds(vpid) - v0, cpu_seconds(clickhouse_pid()) - ch0
    traffic_end = time.time()
    by_id = {e["button_id"]: e for e in live}
    # Windows that end by the end of the traffic: emitted at end + grace (+ idle logic for
    # the last few seconds, which closes them at the same wall time).
    due = {(e["country"], s) for e in live for s in window_starts(e["timestamp"]) if s + SIZE <= traffic_end}
    wait_until("the live windows in ClickHouse", lambda: due <= set(seen_window) and len(seen_event) >= len(live),
               timeout=GRACE + 90, interval=0.5)
    stop.set()
    poller.join()
    # How ClickHouse wrote the live events: parts (insert blocks) and when.
    parts = ch_rows("SELECT name, rows, toUInt32(modification_time) AS t FROM system.parts WHERE database = 'events_db'"
                    f" AND table = 'events' AND active AND partition = '{datetime.fromtimestamp(live_lo, timezone.utc):%Y%m}' ORDER BY t")
    flushes = Counter(round(t - t_live, 1) for t in seen_event.values())

    def first_window(e):  # the earliest-closing window that contains the event
        end = e["timestamp"] // ADVANCE * ADVANCE + ADVANCE
        return (e["country"], end - SIZE)

    ev_ch = [seen_event[i] - sent_at[i] for i in sent_at if i in seen_event]
    ev_host = [seen_window[first_window(by_id[i])] - sent_at[i] for i in sent_at
               if first_window(by_id[i]) in due and first_window(by_id[i]) in seen_window]
    win_host = [seen_window[k] - (k[1] + SIZE) for k in due if k in seen_window]
    # The ClickHouse side has a window's complete figure once its last event is in `events`.
    last_seen: dict = {}
    for i, e in by_id.items():
        for s in window_starts(e["timestamp"]):
            if (e["country"], s) in due and i in seen_event:
                last_seen[(e["country"], s)] = max(last_seen.get((e["country"], s), 0), seen_event[i])
    win_ch = [t - (k[1] + SIZE) for k, t in last_seen.items()]
    # The view's complete figure: the first poll at which the window's count reached the
    # oracle's, and its first (partial) figure, relative to the window's end.
    want_live = window_counts_epoch(live)
    win_mv, first_mv, mv_wrong = [], [], 0
    for k in due:
        hist = mv_counts.get(k, [])
        done = [t for t, n in hist if n == want_live[k]]
        if done:
            win_mv.append(done[0] - (k[1] + SIZE))
        if hist:
            first_mv.append(hist[0][0] - (k[1] + SIZE))
        if not hist or hist[-1][1] != want_live[k]:
            mv_wrong += 1

    def dist(xs):
        xs = sorted(xs)
        return {"n": len(xs), "median": statistics.median(xs), "p90": xs[int(0.9 * (len(xs) - 1))], "max": xs[-1]} if xs else None

    out["live"] = {"events_parts": [{"rows": int(x["rows"]), "written_s_after_start": int(x["t"]) - t_live} for x in parts],
                   "events_visible_at_s": sorted(flushes.items()),
                   "rate": rate, "seconds": seconds, "events": len(live), "due_windows": len(due),
                   "event_to_figure_ch": dist(ev_ch), "event_to_figure_host": dist(ev_host),
                   "window_end_to_figure_host": dist(win_host), "window_end_to_figure_ch": dist(win_ch),
                   "window_end_to_figure_mv": dist(win_mv), "window_end_to_first_partial_mv": dist(first_mv),
                   "mv_windows_wrong_at_end": mv_wrong,
                   "window_cpu_s": w_cpu, "validate_cpu_s": v_cpu, "clickhouse_cpu_s": ch_cpu, "wall_s": live_wall,
                   "window_rss_mb": rss_mb(wpid), "validate_rss_mb": rss_mb(vpid),
                   "clickhouse_rss_mb": rss_mb(clickhouse_pid())}
    validate.stop()
    window.stop()
    return out


def query_cost(query: str, runs: int = 10) -> dict:
    """Median elapsed and rows/bytes read (FORMAT JSON statistics; 18.16 has neither
    query_log here nor X-ClickHouse-Summary), and ClickHouse's CPU per run from /proc."""
    pid = clickhouse_pid()
    ch(query + " FORMAT JSON")  # warm
    c0 = cpu_seconds(pid)
    stats, t0 = [], time.monotonic()
    for _ in range(runs):
        body = json.loads(ch(query + " FORMAT JSON"))
        stats.append((body["statistics"], body["rows"]))
    wall = (time.monotonic() - t0) / runs
    return {"elapsed_ms": statistics.median(s["elapsed"] for s, _ in stats) * 1e3,
            "rows_read": stats[0][0]["rows_read"], "bytes_read": stats[0][0]["bytes_read"],
            "result_rows": stats[0][1], "server_cpu_ms": (cpu_seconds(pid) - c0) / runs * 1e3,
            "http_wall_ms": wall * 1e3}


def costs() -> dict:
    out: dict = {"queries": {}}
    lo, hi = D4, D4 + 3 * 3600
    out["queries"]["burst_2h"] = {"host": query_cost(host_side_query(lo, hi), runs=30), "ch": query_cost(ch_side_query(lo, hi)),
                                  "ch_view": query_cost("SELECT * FROM events_db.country_event_averages_scan"
                                                        f" WHERE window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})"),
                                  "mv": query_cost(mv_query(lo, hi), runs=30),
                                  "mv_view": query_cost("SELECT * FROM events_db.country_event_averages_ch"
                                                        f" WHERE window_start >= toDateTime({lo}) AND window_start < toDateTime({hi})", runs=30)}
    # Scale: one day at ~11.6 events/s (1,000,000 events), and the host's output for it
    # (the same figures, one row per window), in tables of the same engines and keys.
    log("(f): a 1,000,000-event day in ClickHouse for the scale point")
    ch("CREATE TABLE IF NOT EXISTS events_db.scale_events AS events_db.events")
    ch("CREATE TABLE IF NOT EXISTS events_db.scale_averages AS events_db.country_event_averages_raw")
    s0 = D1 + 100 * DAY
    ch(f"""INSERT INTO events_db.scale_events SELECT 'page_view', number % 1000, '/p', '', toDateTime({s0} + intDiv(number * 864, 10000)),
           ['CA','DE','FR','JP','UK','US'][number % 6 + 1], NULL, 0, number, 'scale', '' FROM numbers(1000000)""")
    ch(f"""INSERT INTO events_db.scale_averages SELECT country, ws, ws + {SIZE}, n * 60 / {SIZE}, n FROM (
           SELECT country, toStartOfMinute(timestamp) - arrayJoin(range({SIZE // ADVANCE})) * {ADVANCE} AS ws,
           uniqExact(source_partition, source_offset) AS n FROM events_db.scale_events GROUP BY country, ws)""")
    ch("OPTIMIZE TABLE events_db.scale_events FINAL")
    ch("OPTIMIZE TABLE events_db.scale_averages FINAL")
    scale_host = (f"SELECT country, window_start, event_count, average_events FROM events_db.scale_averages FINAL"
                  f" WHERE window_start >= toDateTime({s0}) AND window_start < toDateTime({s0 + DAY})")
    scale_ch = ch_side_query(s0, s0 + DAY).replace("events_db.events", "events_db.scale_events")
    scale_ch_1h = ch_side_query(s0 + DAY - 3600, s0 + DAY).replace("events_db.events", "events_db.scale_events")
    scale_host_1h = scale_host.replace(f"toDateTime({s0})", f"toDateTime({s0 + DAY - 3600})")
    # The view's state for that day, as its materialized view would have built it: filled
    # from scale_events (timed: a back-fill of one day), then merged like the others.
    ch("CREATE TABLE IF NOT EXISTS events_db.scale_counts AS events_db.country_minute_counts")
    backfill = []
    for _ in range(3):
        ch("TRUNCATE TABLE events_db.scale_counts")
        pid, c0, t0 = clickhouse_pid(), cpu_seconds(clickhouse_pid()), time.monotonic()
        ch("INSERT INTO events_db.scale_counts SELECT toStartOfMinute(timestamp) AS minute, country,"
           " uniqExactState(source_partition, source_offset), countState() FROM events_db.scale_events GROUP BY minute, country")
        backfill.append({"wall_s": time.monotonic() - t0, "server_cpu_s": cpu_seconds(pid) - c0})
    out["backfill_1d_1m_events"] = {"trials": backfill, "median_wall_s": statistics.median(b["wall_s"] for b in backfill),
                                    "median_server_cpu_s": statistics.median(b["server_cpu_s"] for b in backfill)}
    ch("OPTIMIZE TABLE events_db.scale_counts FINAL")
    scale_mv = mv_query(s0, s0 + DAY, table="events_db.scale_counts")
    scale_mv_1h = mv_query(s0 + DAY - 3600, s0 + DAY, table="events_db.scale_counts")
    # Cheap queries run more often: the CPU figure comes from 10 ms ticks.
    out["queries"]["scale_1d"] = {"host": query_cost(scale_host, runs=30), "ch": query_cost(scale_ch, runs=5),
                                  "mv": query_cost(scale_mv, runs=10)}
    out["queries"]["scale_last_1h"] = {"host": query_cost(scale_host_1h, runs=30), "ch": query_cost(scale_ch_1h, runs=10),
                                       "mv": query_cost(scale_mv_1h, runs=30)}
    # A new window size is a new query on the same state (no new table, history included):
    # 15-minute windows hopping by 1 minute over the last hour of the day.
    out["queries"]["scale_last_1h_15min_windows"] = {"mv": query_cost(
        mv_query(s0 + DAY - 3600, s0 + DAY, table="events_db.scale_counts", size=900), runs=30)}
    out["mv_cpu"] = mv_cpu()
    out["parts"] = {r["table"]: {"rows": int(r["rows"]), "bytes": int(r["bytes"])} for r in ch_rows(
        "SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts"
        " WHERE database = 'events_db' AND active GROUP BY table")}
    return out


def ch_with(query: str, **settings) -> None:
    """A query with settings as URL parameters (18.16 applies them to the INSERT's squashing)."""
    url = f"{CH_URL}{'&' if '?' in CH_URL else '?'}{urllib.parse.urlencode(settings)}"
    with urllib.request.urlopen(urllib.request.Request(url, data=query.encode(), method="POST"), timeout=120) as resp:
        resp.read()


def mv_cpu(trials: int = 3, n: int = 50_000) -> dict:
    """ClickHouse's CPU for the view, by difference: `n` events inserted into a copy of
    `events` without the view and into one with it (the same SELECT as
    country_minute_counts_mv), alternately, `trials` times each, in blocks of 500 rows
    (kafka_max_block_size on 18.16: the Kafka engine writes blocks of up to 500) and of
    65,536 (a large-block writer). Server CPU from /proc, over the insert and 3 s of
    merges after it, less the idle rate measured just before."""
    ch("CREATE TABLE IF NOT EXISTS events_db.cpu_plain AS events_db.events")
    ch("CREATE TABLE IF NOT EXISTS events_db.cpu_with_view AS events_db.events")
    ch("CREATE TABLE IF NOT EXISTS events_db.cpu_counts AS events_db.country_minute_counts")
    ch("CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.cpu_counts_mv TO events_db.cpu_counts AS"
       " SELECT toStartOfMinute(timestamp) AS minute, country, uniqExactState(source_partition, source_offset) AS events,"
       " countState() AS delivered FROM events_db.cpu_with_view GROUP BY minute, country")
    pid = clickhouse_pid()
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(5)
    idle = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    out: dict = {"events_per_trial": n, "idle_cpu_per_s": idle, "by_block": {}}
    month = 0
    for block in (500, 65_536):
        runs: dict[str, list[float]] = {"plain": [], "with_view": []}
        for trial in range(trials):
            for table in (("plain", "with_view") if trial % 2 == 0 else ("with_view", "plain")):
                month += 1  # a partition of its own per insert: no delayed inserts from too many parts
                base = D1 + 400 * DAY + month * 31 * DAY
                c0, t0 = cpu_seconds(pid), time.monotonic()
                ch_with(f"INSERT INTO events_db.cpu_{table} SELECT 'page_view', number % 1000, '/p', '', toDateTime({base} + intDiv(number * 864, 10000)),"
                        f" ['CA','DE','FR','JP','UK','US'][number % 6 + 1], NULL, 0, number, 'cpu', '' FROM numbers({n})",
                        max_block_size=block, min_insert_block_size_rows=block, min_insert_block_size_bytes=0)
                time.sleep(3)
                runs[table].append(cpu_seconds(pid) - c0 - idle * (time.monotonic() - t0))
        plain, view = statistics.median(runs["plain"]), statistics.median(runs["with_view"])
        out["by_block"][str(block)] = {"trials_cpu_s": runs, "median_plain_cpu_s": plain, "median_with_view_cpu_s": view,
                                       "view_cpu_us_per_event": (view - plain) / n * 1e6,
                                       "insert_cpu_us_per_event": plain / n * 1e6}
    out["parts"] = {r["table"]: int(r["parts"]) for r in ch_rows(
        "SELECT table, count() AS parts FROM system.parts WHERE database = 'events_db' AND active"
        " AND table IN ('cpu_plain', 'cpu_with_view', 'cpu_counts') GROUP BY table")}
    return out


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "clickhouse": ch("SELECT version()").strip(), "note": "shared machine: read ratios and CPU times, not wall times"}


# ---------------------------------------------------------------- report
# The docs check (tests/docs) runs the documented command this way: the scenarios that
# compare both sides with the oracle, in a minute instead of five, nothing rewritten.
QUICK = os.environ.get("TRADEOFF_QUICK") == "1"


def one_run() -> dict | None:
    """Every scenario once on a fresh stack; None for a quick run (exactness checked only)."""
    STALLS.clear()
    started = time.monotonic()
    result: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "uptime_start": uptime()}
    stack("reset", stdout=sys.stderr)
    hosts = None
    try:
        stack("up", stdout=sys.stderr)
        src = Path(os.environ["STREAMHOST_BIN_SRC"])
        shutil.copy2(src, BIN.with_suffix(".tmp"))
        BIN.with_suffix(".tmp").rename(BIN)
        result["host_binary"] = {"from": str(src), "mtime": datetime.fromtimestamp(src.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        plugins = STATE / "bench-plugins"
        plugins.mkdir(exist_ok=True)
        shutil.copy2(Path(os.environ["STREAMHOST_PLUGINS_BUILT"]) / "quality.wasm", plugins / "10-quality.wasm")
        ch(CH_VIEW)
        result["machine"] = machine()
        hosts = Hosts(plugins)
        log("(a)-(c): correctness")
        result["correctness"] = correctness(hosts)
        if QUICK:
            c = result["correctness"]
            exact = all(c[k][side]["equal"] for k in ("a", "b") for side in ("host", "ch", "mv", "mv_view"))
            log(f"quick run (TRADEOFF_QUICK=1): (a)-(c) only, nothing written; (a), (b) exact on every side: {exact}")
            if not exact:
                raise SystemExit(1)
            return None
        log("(d): kill -9")
        result["crash"] = crash(hosts)
        log("(e)+(f): burst and live")
        result["resources"] = burst_and_live(hosts)
        result["costs"] = costs()
        result["stalls"] = list(STALLS)
        result["uptime_end"] = uptime()
        result["runtime_s"] = time.monotonic() - started
    finally:
        if hosts:
            hosts.stop_all()
        stack("down", stdout=sys.stderr)
    return result


def summary(runs: list[dict]) -> dict:
    """The figures the docs quote: medians over the runs (each run's own figure is a
    median of its repetitions), exactness as 'exact in k of n runs' with the count errors."""
    med = statistics.median

    def exact(path: list[str]) -> dict:
        cs = [dig(r, path) for r in runs]
        return {"exact_runs": sum(c["equal"] for c in cs), "runs": len(cs), "windows": [c["windows"] for c in cs],
                "count_error": [c["count_error"] for c in cs], "windows_wrong": [c["windows_wrong"] for c in cs]}

    def dig(d, path):
        for k in path:
            d = d[k]
        return d

    out: dict = {"runs": len(runs), "exactness": {}}
    for name, base, sides in [
        ("in_order", ["correctness", "a"], ["host", "mv", "mv_view", "mv_delivered", "ch"]),
        ("out_of_order", ["correctness", "b"], ["host", "mv", "mv_view", "mv_delivered", "ch"]),
        ("kill_9", ["crash"], ["host_final", "mv", "mv_view", "mv_delivered", "ch_uniq", "ch_plain_now"]),
        ("redelivered_records_injected", ["crash", "injected"], ["host_final", "mv", "mv_view", "mv_delivered", "ch_uniq", "ch_plain"]),
        ("backlog_30000", ["resources", "burst"], ["host", "mv", "mv_view", "mv_delivered", "ch"]),
    ]:
        out["exactness"][name] = {side: exact(base + [side]) for side in sides}
    out["exactness"]["late_60_events"] = {
        f"{side}_vs_{ref}": exact(["correctness", "c", f"{side}_vs_{ref}"]) for side in ("host", "mv", "ch") for ref in ("on_time", "all")}
    out["exactness"]["late_60_events"]["windows_touched_by_late"] = [r["correctness"]["c"]["windows_touched_by_late"] for r in runs]
    out["exactness"]["late_60_events"]["host_late_in_dlq"] = [r["correctness"]["c"]["host_late_in_dlq"] for r in runs]
    out["exactness"]["kill_9"]["records_redelivered"] = [r["crash"]["enriched_records"] - r["crash"]["events"] for r in runs]
    out["exactness"]["redelivered_records_injected"]["records_again"] = [r["crash"]["injected"]["records_again"] for r in runs]
    live = [r["resources"]["live"] for r in runs]
    out["freshness_s"] = {k: med(x[k]["median"] for x in live if x[k]) for k in (
                              "window_end_to_figure_host", "window_end_to_figure_mv", "window_end_to_figure_ch", "window_end_to_first_partial_mv",
                              "event_to_figure_ch", "event_to_figure_host")}
    out["freshness_s"]["note"] = "median over runs of each run's median, seconds; negative: before the window ended"
    queries: dict = {}
    for q, sides in runs[0]["costs"]["queries"].items():
        queries[q] = {side: {m: med(r["costs"]["queries"][q][side][m] for r in runs)
                             for m in ("elapsed_ms", "server_cpu_ms", "rows_read", "bytes_read", "result_rows")} for side in sides}
    out["dashboard_query"] = queries
    burst = [r["resources"]["burst"] for r in runs]
    cpu = [r["costs"]["mv_cpu"]["by_block"] for r in runs]
    out["cpu"] = {
        "host_window_stage_us_per_event": med(b["window_cpu_us_per_event"] for b in burst),
        "host_validate_stage_us_per_event": med(b["validate_cpu_us_per_event"] for b in burst),
        "host_window_idle_cpu_per_s": med(r["resources"]["window_idle_cpu_per_s"] for r in runs),
        "clickhouse_view_us_per_event_blocks_500": med(c["500"]["view_cpu_us_per_event"] for c in cpu),
        "clickhouse_view_us_per_event_blocks_65536": med(c["65536"]["view_cpu_us_per_event"] for c in cpu),
        "clickhouse_insert_events_us_per_event_blocks_500": med(c["500"]["insert_cpu_us_per_event"] for c in cpu),
        "clickhouse_insert_events_us_per_event_blocks_65536": med(c["65536"]["insert_cpu_us_per_event"] for c in cpu),
        "host_window_rss_mb": med(b["window_rss_mb"][0] for b in burst),
    }
    out["state_bytes_1m_events_day"] = {t: med(r["costs"]["parts"][t]["bytes"] for r in runs)
                                        for t in ("scale_events", "scale_counts", "scale_averages")}
    out["state_rows_1m_events_day"] = {t: med(r["costs"]["parts"][t]["rows"] for r in runs)
                                       for t in ("scale_events", "scale_counts", "scale_averages")}
    out["backfill_1d_1m_events"] = {k: med(r["costs"]["backfill_1d_1m_events"][k] for r in runs)
                                    for k in ("median_wall_s", "median_server_cpu_s")}
    out["host_restart_retries"] = [r["crash"]["restart_retries"] for r in runs]
    out["stalls"] = [r["stalls"] for r in runs]
    return out


def main() -> int:
    args = sys.argv[1:]
    n = int(args[args.index("--runs") + 1]) if "--runs" in args else 3
    runs = []
    for k in range(1 if QUICK else n):
        log(f"run {k + 1} of {n}")
        r = one_run()
        if r is None:
            return 0
        runs.append(r)
    stamp = datetime.now(timezone.utc)
    out = ROOT / "bench" / "results" / f"{stamp:%Y-%m-%dT%H%M}-tradeoff.json"
    machine_ = runs[0].get("machine", {})
    for r in runs:
        r.pop("machine", None)
    doc = {"date": f"{stamp:%Y-%m-%dT%H:%MZ}",
           "bench": "bench/tradeoff: host windows against ClickHouse's materialized view (country_minute_counts_mv,"
                    " country_event_averages_ch) and against a query over events, on the same runs",
           "command": " ".join(["bench/tradeoff/run", *args]),
           "machine": machine_, "summary": summary(runs), "runs": runs}
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
