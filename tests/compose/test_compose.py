"""The compose stack (docker-compose.yml) checked like the local one. Run by
scripts/compose-test once the stack is up and healthy, against its published ports:
Kafka (STREAMHOST_KAFKA_BROKERS), ClickHouse HTTP (STREAMHOST_CH_HTTP_PORT), Superset
(STREAMHOST_SUPERSET_PORT), and each streamhost instance's admin port (a free one,
asked of `docker-compose port`).

Each test needs only the stack as `docker-compose up` leaves it (the demo generator's
72 hours of history included), not another test, and counts only its own events. In
file order: the documented chain, the dashboard over the history, the brief's generator
from this machine, a live plugin swap, three instances sharing the partitions,
recreated containers keeping their data, Superset restarted on its volume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streamhost_kit.clickhouse import ch_rows, ch_value, count_landed, landed_rows
from streamhost_kit.events import ALLOWED, event, payloads
from streamhost_kit.kafka import produce, watermarks
from streamhost_kit.stack import ROOT, brief_generator, metric
from streamhost_kit.superset import CHARTS, open_dashboard, wait_for_superset
from streamhost_kit.util import wait_until

if not os.environ.get("STREAMHOST_COMPOSE_TEST"):
    pytest.skip("needs the compose stack: run scripts/compose-test", allow_module_level=True)

SUPERSET = f"http://127.0.0.1:{os.environ.get('STREAMHOST_SUPERSET_PORT', '8088')}"
PLUGINS_HOST_DIR = Path(os.environ.get("STREAMHOST_PLUGINS_HOST_DIR", ROOT / "plugins.d"))
SCREENSHOT = ROOT / "docs" / "img" / "dashboard-compose.png"
GENERATOR_SECONDS = 60


def compose(*args: str) -> str:
    return subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *args],
                          check=True, capture_output=True, text=True).stdout


def admin(path: str, index: int = 1):
    """GET an admin path of streamhost instance `index`, through its published port."""
    port = compose("port", f"--index={index}", "streamhost", "9898").strip().rpartition(":")[2]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read()) if path == "/plugins" else r.read().decode()


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def containers(service: str) -> list[str]:
    return compose("ps", "-q", service).split()


def serving(plugins) -> list[str]:
    """The chain that serves (`name@version`, in order), as the validate stage installed it."""
    return plugins["serving"]["chain"]


def test_the_stack_serves_with_the_documented_chain():
    # The image's chain was deployed into the (empty) bind-mounted plugin directory, by
    # the container running as the directory's owner (not root): the files are theirs.
    files = sorted(PLUGINS_HOST_DIR.glob("*.wasm"))
    assert [f.name for f in files] == ["10-enrich.wasm", "20-quality.wasm"], files
    owner = PLUGINS_HOST_DIR.stat()
    assert owner.st_uid != 0, "scripts/compose-test gives the plugin directory to a user"
    assert all((f.stat().st_uid, f.stat().st_gid) == (owner.st_uid, owner.st_gid) for f in files), \
        [(f.name, f.stat().st_uid) for f in files]
    [sh] = containers("streamhost")
    assert compose("exec", "-T", "streamhost", "id", "-u").strip() == str(owner.st_uid)
    image = docker("inspect", "-f", "{{.Image}}", sh).strip()
    assert docker("image", "inspect", "-f", "{{.Config.User}}", image).strip() == "10001:10001"
    # Restart policies and memory limits as the compose file says (docker-compose 1.29
    # honours `mem_limit`).
    for service, limit in {"kafka": 1536 << 20, "clickhouse": 2 << 30, "streamhost": 512 << 20,
                           "superset": 1536 << 20, "generator": 256 << 20}.items():
        [cid] = containers(service)
        got = docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}}", cid).split()
        assert got == ["unless-stopped", str(limit)], (service, got)
    for service in ("topics", "schema"):
        [cid] = containers(service)
        assert docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", cid).strip() in ("", "no")
    plugins = admin("/plugins")
    print("plugins:", json.dumps(plugins)[:2000])
    chain = serving(plugins)
    assert len(chain) == 2 and "enrich" in chain[0] and "quality" in chain[1], plugins
    # The stack's own generator feeds it, and rows reach ClickHouse through Kafka.
    wait_until("the demo generator's events in ClickHouse",
               lambda: ch_value("SELECT count() FROM events_db.events") > 0, timeout=180)
    row = ch_rows("SELECT processed_by FROM events_db.events LIMIT 1")[0]
    assert "enrich@" in row["processed_by"] and "quality@" in row["processed_by"], row


def test_the_dashboard_shows_data_in_every_chart():
    # The stack's generator sends 72 hours of past traffic first (docker-compose.yml):
    # once all of it is in ClickHouse and the windows have closed up to its end, every
    # chart has something to say (the picture in the README, docs/img/).
    sent = wait_until("the demo generator's history sent", history_sent, timeout=180)
    end, sent_at = watermarks("my_events"), int(time.time())
    print(f"history: {sent} events; my_events holds {sum(end.values())}")

    def landed():
        n = count_landed({}, end, distinct=True)
        return n if n >= sum(end.values()) else None

    wait_until("the history in events + dlq_table", landed, timeout=300)
    wait_until("windows closed up to the history's end", lambda: ch_value(
        "SELECT toUInt32(max(window_end)) FROM events_db.country_event_averages_raw") >= sent_at - 300, timeout=120)
    days = ch_value("SELECT uniqExact(event_date) FROM events_db.daily_active_users_final")
    assert days >= 3, f"daily active users on {days} days only"
    results = open_dashboard(SUPERSET, screenshot=SCREENSHOT)
    assert set(results) == CHARTS, sorted(results)
    for name, result in results.items():
        assert result["rowcount"] > 0, name
    # Hours of windows: a point per minute and country over the chart's three hours.
    rolling = results["Rolling average of events per country (5-minute windows, last 3 hours)"]
    assert rolling["rowcount"] >= 150, rolling["rowcount"]
    print(f"screenshot: {SCREENSHOT}")


def history_sent() -> int | None:
    """The number of past events the stack's generator sent, once it says so."""
    m = re.search(r"history: (\d+) events", compose("logs", "--no-color", "generator"))
    return int(m.group(1)) if m else None


def test_brief_generator_from_the_machine_end_to_end():
    # Stop the stack's generator so that the brief's generator's count is exact.
    compose("stop", "generator")
    start = watermarks("my_events")
    broker = os.environ["STREAMHOST_KAFKA_BROKERS"].replace("127.0.0.1", "localhost")
    run = subprocess.run(
        [sys.executable, str(brief_generator()), "--rps", "20", "--duration", str(GENERATOR_SECONDS),
         "--kafka_broker", broker],
        capture_output=True, text=True, timeout=GENERATOR_SECONDS + 120)
    print(run.stdout[-2000:], run.stderr[-2000:])
    assert run.returncode == 0
    sent = int(re.search(r"Sent (\d+) events", run.stdout).group(1))
    assert sent >= GENERATOR_SECONDS * 20 - 40
    end = watermarks("my_events")
    assert sum(end[p] - start.get(p, 0) for p in end) == sent

    def landed():
        n = count_landed(start, end, distinct=True)
        return n if n >= sent else None

    wait_until(f"{sent} events in events + dlq_table", landed, timeout=180)
    events = landed_rows("events", start, end, "user_id, country, processed_by", final=True)
    dlq = landed_rows("dlq_table", start, end, "code, stage, rejected_by, raw", final=True)
    positions = {(r["p"], r["o"]) for r in events} | {(r["p"], r["o"]) for r in dlq}
    assert positions == {(p, o) for p in end for o in range(start.get(p, 0), end[p])}
    for r in events:
        assert r["country"] in ALLOWED and int(r["user_id"]) >= 0, r
    # DLQ reasons: negative user ids and countries off the allow-list (ZZ among them).
    codes = {r["code"] for r in dlq}
    assert codes == {"invalid_user_id", "invalid_country"}, codes
    for r in dlq:
        raw = json.loads(r["raw"])
        assert r["stage"] == "plugin" and r["rejected_by"].startswith("quality@"), r
        if r["code"] == "invalid_user_id":
            assert raw["user_id"] < 0, r
        else:
            assert raw["user_id"] >= 0 and raw["country"] not in ALLOWED, r
    assert any(json.loads(r["raw"])["country"] == "ZZ" for r in dlq)

    # Windows and daily active users, from the whole run.
    wait_until("closed windows in country_event_averages_raw",
               lambda: ch_value("SELECT count() FROM events_db.country_event_averages_raw"), timeout=240)
    dau = ch_rows("SELECT toString(event_date) AS d, country, dau FROM events_db.daily_active_users_final")
    assert dau and {r["country"] for r in dau} <= ALLOWED, dau
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert any(r["d"] == today and int(r["dau"]) > 0 for r in dau), dau


def test_live_plugin_swap_through_the_bind_mount():
    src = ROOT / "plugins" / "dist" / "template.wasm"
    assert src.exists(), f"{src} missing: run scripts/build-plugins"
    # The safe deploy of docs/howto/deploy-a-rule.md (a hidden temporary name, then a
    # rename), done as the directory's owner, who is not root: no sudo needed.
    owner = PLUGINS_HOST_DIR.stat()
    assert owner.st_uid != 0
    subprocess.run(["setpriv", f"--reuid={owner.st_uid}", f"--regid={owner.st_gid}", "--clear-groups",
                    "sh", "-c", 'cp "$1" "$2/.30-template.wasm.tmp" && mv "$2/.30-template.wasm.tmp" "$2/30-template.wasm"',
                    "deploy", str(src), str(PLUGINS_HOST_DIR)], check=True)
    assert (PLUGINS_HOST_DIR / "30-template.wasm").stat().st_uid == owner.st_uid

    def swapped():
        chain = serving(admin("/plugins"))
        return chain if len(chain) == 3 and "template" in chain[2] else None

    print("chain:", wait_until("the new chain on /plugins", swapped, timeout=60))
    logs = compose("logs", "--no-color", "streamhost")
    assert "plugin chain swapped" in logs, logs[-3000:]

    # Records keep flowing, judged by the new chain.
    now = int(time.time())
    marker = f"/swap/{now}"
    produce(payloads(event(user_id=7, page_url=marker, timestamp=now, country="DE") for _ in range(5)))
    rows = wait_until("events judged by the new chain", lambda: ch_rows(
        f"SELECT processed_by FROM events_db.events WHERE page_url = '{marker}'") or None, timeout=90)
    assert all("template@" in r["processed_by"] and "quality@" in r["processed_by"] for r in rows), rows


def test_three_instances_share_the_partitions():
    """`--scale streamhost=3`: no fixed host port stands in the way, every instance owns
    input partitions, and what is produced then lands in ClickHouse exactly once."""
    compose("stop", "generator")  # only this test's events in the range checked below
    compose("up", "-d", "--no-deps", "--no-recreate", "--scale", "streamhost=3", "streamhost")
    partitions = len(watermarks("my_events"))
    assert partitions >= 3, partitions

    def shared():
        owned = []
        for index in (1, 2, 3):
            try:
                owned.append(metric(admin("/metrics", index), "streamhost_assigned_partitions", stage="validate"))
            except (OSError, subprocess.CalledProcessError):
                return None
        return owned if all(n > 0 for n in owned) and sum(owned) == partitions else None

    try:
        print("validate partitions per instance:", wait_until("every instance owns partitions", shared, timeout=180))
        read_before = [records_read(i) for i in (1, 2, 3)]
        start = watermarks("my_events")
        now = int(time.time())
        marker = f"/scaled/{now}"
        n = 300
        produce(payloads(event(user_id=i, page_url=marker, timestamp=now, country="DE") for i in range(n)),
                key=lambda i: str(i))
        end = watermarks("my_events")
        assert sum(end[p] - start.get(p, 0) for p in end) == n
        assert sum(1 for p in end if end[p] > start.get(p, 0)) == partitions, (start, end)

        def landed():
            got = count_landed(start, end, distinct=True)
            return got if got >= n else None

        wait_until(f"{n} events in ClickHouse", landed, timeout=180)
        rows = landed_rows("events", start, end, "page_url", final=True)
        positions = sorted((r["p"], r["o"]) for r in rows)
        assert positions == sorted((p, o) for p in end for o in range(start.get(p, 0), end[p])), \
            "not every event exactly once"
        assert {r["page_url"] for r in rows} == {marker}
        print(f"rows before deduplication: {count_landed(start, end)} for {n} events")
        # Each instance read part of them.
        read = [records_read(i) - before for i, before in zip((1, 2, 3), read_before)]
        print("records read per instance:", read)
        assert all(r > 0 for r in read), read
    finally:
        compose("up", "-d", "--no-deps", "--no-recreate", "--scale", "streamhost=1", "streamhost")
    assert len(containers("streamhost")) == 1


def records_read(index: int) -> float:
    return metric(admin("/metrics", index), "streamhost_records_in_total", topic="my_events")


def test_kafka_and_clickhouse_data_survive_recreated_containers():
    """Named volumes: `down` (without -v) then `up` keeps topics, records and tables."""
    compose("stop", "streamhost")

    def settled():
        # ClickHouse's Kafka engine flushes what it read every few seconds: the count is
        # final once it stays put over one flush interval (7.5 s).
        before = ch_value("SELECT count() FROM events_db.events")
        time.sleep(8)
        after = ch_value("SELECT count() FROM events_db.events")
        return after if after == before else None

    events = wait_until("ClickHouse to hold all that streamhost wrote", settled, timeout=90)
    offsets = watermarks("my_events")
    assert events > 0 and sum(offsets.values()) > 0
    compose("rm", "-s", "-f", "kafka", "clickhouse")
    compose("up", "-d", "kafka", "clickhouse")

    def answers():
        try:
            return ch_value("SELECT count() FROM events_db.events")
        except OSError:
            return None

    assert wait_until("ClickHouse back with its data", answers, timeout=120) == events
    assert wait_until("Kafka back with its records", lambda: _watermarks_or_none(), timeout=120) == offsets


def _watermarks_or_none():
    try:
        return watermarks("my_events")
    except Exception:  # noqa: BLE001 - the broker is still starting
        return None


def test_superset_restarts_on_its_volume():
    """The entry point migrates (`superset db upgrade`) on every start: a restart on the
    existing superset-home comes back and serves the dashboard's charts."""
    assert {c["slice_name"] for c in wait_for_superset(SUPERSET, timeout=60)} >= CHARTS
    compose("restart", "superset")
    charts = wait_for_superset(SUPERSET, timeout=300)
    assert {c["slice_name"] for c in charts} >= CHARTS, sorted(c["slice_name"] for c in charts)
    logs = compose("logs", "--no-color", "superset")
    assert logs.count("superset entrypoint: superset db upgrade") >= 2, logs[-3000:]
