"""The Superset dashboard in a real browser (Debian's chromium, driven by Playwright),
after the real pipeline ran: known events over three days go through my_events →
streamhost (enrich + quality) → Kafka → ClickHouse 18.16 → Superset.

Each of the five charts must render (no error box, no spinner, a canvas or table rows)
and the numbers it was given must equal both what the test produced (an oracle
computed here) and a direct ClickHouse query. The screenshot goes to the test's
temporary directory (the docs show the compose test's, from the brief's generator)."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

from streamhost_kit.clickhouse import ch_rows, ch_value
from streamhost_kit.events import ALLOWED, event, payload
from streamhost_kit.kafka import pipeline_consumed, produce, watermarks
from streamhost_kit.stack import PLUGINS_BUILT, ROOT
from streamhost_kit.superset import CHARTS, open_dashboard
from streamhost_kit.util import wait_until

playwright = pytest.importorskip("playwright.sync_api")
URL_WEIGHTS = {f"/page/{n}": 60 - 7 * n for n in range(8)}  # distinct weights: a clear top 5


def day(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def event_set(seed: int = 11):
    """Three blocks of events, two days apart down to today, in time order. Every block
    ends at least 6 minutes before now, so an idle host closes all its windows."""
    rng = random.Random(seed)
    now = int(time.time())
    # A block must not straddle midnight (UTC), or the set spans four days: in the
    # first 45 minutes of a day, the blocks end just before it instead.
    if now % 86_400 < 45 * 60:
        now -= now % 86_400 + 60
    countries = sorted(ALLOWED)
    valid, rejects, stream = [], [], []
    for days_ago, n in ((2, 150), (1, 150), (0, 600)):
        start = now - days_ago * 86_400 - 40 * 60
        for i in range(n):
            e = event(
                event_type=rng.choices(["page_view", "button_click", "purchase"], [6, 3, 1])[0],
                user_id=rng.randint(1, 40),
                page_url=rng.choices(list(URL_WEIGHTS), list(URL_WEIGHTS.values()))[0],
                button_id=f"btn-{rng.randint(1, 9)}",
                timestamp=start + i * 30 * 60 // n,
                country=rng.choice(countries),
            )
            if days_ago == 0:
                e["device_type"] = rng.choice(["mobile", "desktop", "tablet"])
            roll = rng.random()
            if roll < 0.05:
                e["user_id"] = -e["user_id"]
                rejects.append(("invalid_user_id", e))
            elif roll < 0.10:
                e["country"] = rng.choice(["XX", "ZZ"])
                rejects.append(("invalid_country", e))
            else:
                valid.append(e)
            stream.append(payload(e))
    for i in range(7):
        stream.append(b'{"event_type": "page_view", "user_id": ')
        rejects.append(("malformed_json", None))
    return stream, valid, rejects


def series(result: dict, x: str) -> dict[tuple[int, str], float]:
    """A timeseries chart's data, pivoted by Superset into {x, <country>: value}."""
    out = {}
    for row in result["data"]:
        for key, value in row.items():
            if key != x and value is not None:
                out[(int(row[x]) // 1000, key)] = value
    return out


def ts(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp())


def test_dashboard_renders_every_chart_with_the_pipelines_numbers(fresh_stack, hosts, plugin_dir, tmp_path):
    (plugin_dir / "05-enrich.wasm").write_bytes((PLUGINS_BUILT / "enrich.wasm").read_bytes())
    (host,) = hosts(1)
    stream, valid, rejects = event_set()
    produce(stream, per_second=2000)

    # ---- the pipeline finished: every record in ClickHouse, every window closed
    def settled():
        # Both stages done with their input: "no open window" alone also holds before
        # the window stage has read everything.
        if not pipeline_consumed():
            return False
        if host.metric("streamhost_open_windows") != 0:
            return False
        emitted = sum(watermarks("country_event_averages").values())
        return (emitted > 0
                and ch_value("SELECT count() FROM events_db.country_event_averages_raw") >= emitted
                and ch_value("SELECT uniqExact(source_partition, source_offset) FROM events_db.events") == len(valid)
                and ch_value("SELECT count() FROM events_db.dlq_table") >= len(rejects))

    wait_until("the pipeline's results in ClickHouse", settled, timeout=180)

    # ---- the oracle: what the charts must show, from the events the test produced
    want_types = Counter(e["event_type"] for e in valid)
    want_urls = Counter(e["page_url"] for e in valid)
    want_dlq = Counter(code for code, _ in rejects)
    users = defaultdict(set)
    for e in valid:
        users[(day(e["timestamp"]), e["country"])].add(e["user_id"])
    want_dau = {k: len(v) for k, v in users.items()}
    assert len({d for d, _ in want_dau}) == 3, "the event set spans three days"

    # ---- the dashboard, provisioned from code (idempotent: imports the bundle again)
    subprocess.run([str(ROOT / "scripts" / "dashboard"), "up"], check=True)
    results = open_dashboard(screenshot=tmp_path / "dashboard.png")
    assert set(results) == CHARTS, f"chart data requests seen: {sorted(results)}"

    # Pie: event types = the oracle = ClickHouse.
    pie = {r["event_type"]: r["events"] for r in results["Event types"]["data"]}
    assert pie == dict(want_types)
    assert pie == {r["event_type"]: int(r["n"]) for r in ch_rows(
        "SELECT event_type, count() AS n FROM events_db.events FINAL GROUP BY event_type")}

    # Table: the five most visited URLs, in order, with their counts.
    top = [(r["page_url"], r["events"]) for r in results["Top 5 page URLs"]["data"]]
    assert top == want_urls.most_common(5)

    # Table: DLQ records by reason, each with a newest raw payload of that reason.
    dlq = {r["code"]: r for r in results["Dead-letter queue by reason"]["data"]}
    assert {c: r["records"] for c, r in dlq.items()} == dict(want_dlq)
    for code, row in dlq.items():
        assert row["newest_raw"], code
        if code != "malformed_json":
            assert json.loads(row["newest_raw"]) in [e for c, e in rejects if c == code], code

    # Line: exact daily active users per (day, country).
    dau = series(results["Daily active users per country"], "day")
    assert {(day(t), c): v for (t, c), v in dau.items()} == want_dau
    assert want_dau == {(r["d"], r["country"]): int(r["dau"]) for r in ch_rows(
        "SELECT toString(event_date) AS d, country, dau FROM events_db.daily_active_users_final")}

    # Line: one point per (window end, country) = the deduplicated window rows of the
    # last three hours (the chart's range: today's block, not the two earlier days).
    avg = series(results["Rolling average of events per country (5-minute windows, last 3 hours)"], "window_time")
    rows = {(ts(r["we"]), r["country"]): float(r["average_events"]) for r in ch_rows(
        "SELECT toString(window_end) AS we, country, average_events FROM events_db.country_event_averages "
        "WHERE window_end >= now() - 3 * 3600")}
    assert avg == pytest.approx(rows)
    assert len(avg) > 100
