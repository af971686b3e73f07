"""Schema as data, on the real stack and the release binary:
* a field the producer starts sending gets a rule, deployed live, and lands in ClickHouse;
* a second event type (sensor readings) runs through the same binary with its own
  schema file, a rule written on the SDK, and windows keyed by device_id."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter

from confluent_kafka import Producer

from streamhost_kit.clickhouse import ch_rows
from streamhost_kit.events import random_event, records
from streamhost_kit.kafka import BROKERS, produce, read_topic, watermarks
from streamhost_kit.oracle import fmt_time, window_counts
from streamhost_kit.plugins import deploy
from streamhost_kit.stack import HOST_BIN, PLUGINS_BUILT, ROOT, Host
from streamhost_kit.util import wait_until

RATE = 200


def brief_event(i: int, rng: random.Random, app_version: str | None) -> dict:
    e = random_event(rng, int(time.time()), f"app-{i}")
    e["device_type"] = rng.choice(["mobile", "desktop", "tablet"])
    if app_version is not None:
        e["app_version"] = app_version
    return e


def test_a_rule_on_a_new_field_is_deployed_live_and_the_field_reaches_clickhouse(fresh_stack, hosts, plugin_dir):
    start_enriched, start_dlq = watermarks("enriched_events"), watermarks("dlq")
    host = hosts(1)[0]
    rng = random.Random(3)
    versions = ["1.4.2", "2.0.0", "1.4", "v2", "1.4.2-beta", None]
    n = 2400
    events = [brief_event(i, rng, versions[i % len(versions)]) for i in range(n)]
    sent_at: dict[str, float] = {}

    def send():
        p = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 5})
        p_started = time.monotonic()
        for i, e in enumerate(events):
            sent_at[e["button_id"]] = time.monotonic()
            p.produce("my_events", value=json.dumps(e).encode())
            p.poll(0)
            delay = p_started + (i + 1) / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        assert p.flush(30) == 0

    producer = threading.Thread(target=send)
    producer.start()
    time.sleep(3)
    deploy(plugin_dir, "30-app-version.wasm", PLUGINS_BUILT / "app_version.wasm")
    deployed = time.monotonic()
    wait_until("app-version serving", lambda: any(
        p["name"] == "app-version" and p["state"] == "serving" for p in host.plugin_files()),
        timeout=10, interval=0.05)
    serving = time.monotonic()
    producer.join()
    assert serving - deployed < 5, f"{serving - deployed:.1f}s from the rename to serving"

    def outputs():
        enriched = read_topic("enriched_events", start_enriched)
        dlq = read_topic("dlq", start_dlq)
        return (enriched, dlq) if len(enriched) + len(dlq) >= n else None

    enriched, dlq = wait_until("every event in enriched_events or dlq", outputs, timeout=60)
    accepted = [json.loads(r.value()) for r in enriched]
    rejected = [json.loads(r.value()) for r in dlq]
    ids = Counter([e["button_id"] for e in accepted] + [json.loads(r["raw"])["button_id"] for r in rejected])
    assert len(ids) == n and set(ids.values()) == {1}, "an event was lost or doubled across the swap"

    good = {"1.4.2", "2.0.0", None}
    for r in rejected:
        raw = json.loads(r["raw"])
        assert raw.get("app_version") not in good, r
        assert (r["code"], r["rejected_by"].split("@")[0]) == ("invalid_app_version", "app-version"), r
    # Every malformed version read after the new chain served is rejected; before the
    # deployment none is (the host has no rule for a field it was not built for). An
    # event handed to the producer within a second of either moment may still be on its
    # way (producer, broker, fetch) when the chain changes, and be judged by either:
    # which chain judged it is in its record.
    by_id = {e["button_id"]: e for e in accepted}
    for e in events:
        if e.get("app_version") in good:
            assert e["button_id"] in by_id, e
        elif sent_at[e["button_id"]] > serving + 1:
            assert e["button_id"] not in by_id, e
        elif sent_at[e["button_id"]] < deployed - 1:
            assert e["button_id"] in by_id, e
        if e.get("app_version") not in good and e["button_id"] in by_id:
            assert "app-version@" not in by_id[e["button_id"]]["processed_by"], by_id[e["button_id"]]
    # Kept on the way, and queryable in ClickHouse with no migration.
    assert all(by_id[i].get("app_version") == e.get("app_version") for i, e in
               ((e["button_id"], e) for e in events) if i in by_id)

    def in_clickhouse():
        rows = ch_rows("SELECT button_id, visitParamExtractString(extra, 'app_version') AS v "
                       "FROM events_db.events FINAL WHERE button_id LIKE 'app-%'")
        return rows if len(rows) >= len(accepted) else None

    rows = wait_until("the accepted events in ClickHouse", in_clickhouse, timeout=90)
    assert len(rows) == len(accepted)
    for row in rows:
        assert row["v"] == (by_id[row["button_id"]].get("app_version") or ""), row


SENSOR_TOPICS = ["sensor_readings", "sensor_enriched", "sensor_averages", "sensor_dlq"]
T0 = 1_735_689_600  # 2025-01-01 00:00:00 UTC: every window closes once the input is idle


def sensor_readings(n: int = 1500) -> list[dict]:
    """Readings over 20 minutes in time order with a few seconds of disorder; about a
    third of the temperatures are outside the rule's range."""
    return records(n, {
        "device_id": lambda rng, i: rng.choice(["boiler-1", "boiler-2", "fridge-7", "attic"]),
        "temperature": lambda rng, i: round(rng.uniform(-80, 180), 2),
        "ts": lambda rng, i: max(T0, T0 + i * 20 * 60 // n + rng.randint(-5, 5)),
        "seq": lambda rng, i: i,
    }, seed=11)


def test_a_second_event_type_runs_on_the_same_binary_with_its_own_schema(fresh_stack, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "lib" / "topics.py"), "--brokers", BROKERS,
                    "--partitions", "3", *SENSOR_TOPICS], check=True)
    schema = ROOT / "schemas" / "sensor.toml"
    check = subprocess.run([str(HOST_BIN), "schema", "check", str(schema)], capture_output=True, text=True)
    assert check.returncode == 0 and "event time `ts`" in check.stdout, check
    plugins = tmp_path / "sensor-plugins"
    plugins.mkdir()
    deploy(plugins, "10-sensor-range.wasm", PLUGINS_BUILT / "sensor_range.wasm")

    host = Host(tmp_path, plugins, name="sensor",
                STREAMHOST_PIPELINE__SCHEMA=str(schema),
                STREAMHOST_WINDOWS__KEY_FIELD="device_id",
                STREAMHOST_WINDOWS__GRACE_SECS="600",
                STREAMHOST_KAFKA__INPUT_TOPIC="sensor_readings",
                STREAMHOST_KAFKA__ENRICHED_TOPIC="sensor_enriched",
                STREAMHOST_KAFKA__AVERAGES_TOPIC="sensor_averages",
                STREAMHOST_KAFKA__DLQ_TOPIC="sensor_dlq",
                STREAMHOST_KAFKA__GROUP_ID="sensor",
                STREAMHOST_KAFKA__WINDOW_GROUP_ID="sensor-windows").start()
    try:
        readings = sensor_readings()
        bad = [dict(device_id="oven", temperature="hot", ts=T0, seq=-1), {"device_id": "oven", "ts": T0}]
        produce([json.dumps(r).encode() for r in readings] + [json.dumps(b).encode() for b in bad],
                topic="sensor_readings", per_second=500)
        valid = [r for r in readings if -50 <= r["temperature"] <= 150]
        out_of_range = len(readings) - len(valid)
        assert out_of_range > 100

        def done():
            enriched = read_topic("sensor_enriched")
            dlq = read_topic("sensor_dlq")
            return (enriched, dlq) if len(enriched) + len(dlq) >= len(readings) + len(bad) else None

        enriched, dlq = wait_until("every reading in sensor_enriched or sensor_dlq", done, timeout=60)
        assert len(enriched) == len(valid)
        codes = Counter(json.loads(r.value())["code"] for r in dlq)
        assert codes == {"temperature_out_of_range": out_of_range, "wrong_type": 1, "missing_field": 1}, codes
        first = json.loads(enriched[0].value())
        assert isinstance(first["temperature"], float) and json.loads(first["extra"]) == {"seq": first["seq"]}

        expected = {(k, fmt_time(start)): n for (k, start), n in
                    window_counts(valid, key="device_id", time_field="ts").items()}

        def windows():
            if host.metric("streamhost_open_windows") != 0:
                return None
            rows = [json.loads(r.value()) for r in read_topic("sensor_averages")]
            return rows if len(rows) >= len(expected) else None

        rows = wait_until("every sensor window closed", windows, timeout=120)
        got = {(r["device_id"], r["window_start"]): r["event_count"] for r in rows}
        assert len(rows) == len(got), "a window was emitted twice"
        assert got == expected
    finally:
        code = host.stop()
        print(f"--- sensor host (exit {code}) ---\n{host.log()[-4000:]}")
