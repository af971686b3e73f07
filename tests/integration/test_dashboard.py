"""The Superset dashboard in a real browser (Debian's chromium, driven by Playwright),
after the real pipeline ran: known events over three days go through my_events →
streamhost (enrich + quality) → Kafka → ClickHouse 18.16 → Superset.

Each of the five charts must render (no error box, no spinner, a canvas or table rows)
and the numbers it was given must equal both what the test produced (an oracle
computed here) and a direct ClickHouse query. The screenshot goes to
docs/img/dashboard.png, which README.md shows."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

from conftest import ALLOWED, PLUGINS_BUILT, ROOT, ch_rows, ch_value, produce, wait_until, watermarks

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("STREAMHOST_CHROMIUM", "/usr/bin/chromium")
SUPERSET = f"http://127.0.0.1:{os.environ.get('STREAMHOST_SUPERSET_PORT', '8088')}"
SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
CHARTS = {
    "Rolling average of events per country (5-minute windows, last 3 hours)",
    "Daily active users per country",
    "Event types",
    "Top 5 page URLs",
    "Dead-letter queue by reason",
}
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
            e = {
                "event_type": rng.choices(["page_view", "button_click", "purchase"], [6, 3, 1])[0],
                "user_id": rng.randint(1, 40),
                "page_url": rng.choices(list(URL_WEIGHTS), list(URL_WEIGHTS.values()))[0],
                "button_id": f"btn-{rng.randint(1, 9)}",
                "timestamp": start + i * 30 * 60 // n,
                "country": rng.choice(countries),
            }
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
            stream.append(json.dumps(e).encode())
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


def test_dashboard_renders_every_chart_with_the_pipelines_numbers(fresh_stack, hosts, plugin_dir):
    (plugin_dir / "05-enrich.wasm").write_bytes((PLUGINS_BUILT / "enrich.wasm").read_bytes())
    (host,) = hosts(1)
    stream, valid, rejects = event_set()
    produce(stream, per_second=2000)

    # ---- the pipeline finished: every record in ClickHouse, every window closed
    def settled():
        if host.metric("streamhost_open_windows") != 0 or host.metric("streamhost_records_in_total") < len(stream):
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
    results = open_dashboard()
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


def open_dashboard(superset: str = SUPERSET, screenshot=SCREENSHOT) -> dict[str, dict]:
    """Wait until Superset serves (health, then a logged-in API call), log in, open the
    dashboard, wait for every chart's data request and then for every chart to render;
    return each chart's data (slice name → the query result Superset's frontend received).
    The waits are on events, not on a fixed budget: a cold Superset (first start, cold
    workers and driver imports) answers its first requests slowly."""
    from playwright.sync_api import sync_playwright

    slices = {int(r["id"]): r["slice_name"] for r in wait_for_superset(superset)}
    by_id: dict[int, dict] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            # The frontend asks an outside host for a tracking pixel: answer it locally.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1150})
            page.set_default_timeout(120_000)

            def on_response(resp):
                if "/api/v1/chart/data" in resp.url and resp.request.method == "POST":
                    form = json.loads(resp.request.post_data or "{}").get("form_data", {})
                    try:
                        body = resp.json()
                    except Exception as e:  # noqa: BLE001 - recorded, asserted below
                        body = {"error": repr(e)}
                    by_id[form.get("slice_id")] = {"status": resp.status, "body": body}

            page.on("response", on_response)
            page.goto(f"{superset}/login/")
            page.fill("[data-test=username-input]", os.environ.get("STREAMHOST_SUPERSET_USER", "admin"))
            page.fill("[data-test=password-input]", os.environ.get("STREAMHOST_SUPERSET_PASSWORD", "admin"))
            page.click("[data-test=login-button]")
            page.wait_for_url("**/superset/welcome/**", timeout=180_000)
            page.goto(f"{superset}/superset/dashboard/streamhost/")
            # 1. every chart's data request answered (each one runs a ClickHouse query)
            deadline = time.monotonic() + 300
            while len(by_id) < len(CHARTS):
                assert time.monotonic() < deadline, f"chart data answered for {sorted(by_id)} only, after 300 s"
                page.wait_for_timeout(250)
            failed = {slices.get(k, k): v for k, v in by_id.items() if v["status"] != 200}
            assert not failed, f"chart data requests failed: {failed}"
            # 2. every chart drew what it received
            page.wait_for_function(
                """n => document.querySelectorAll('.dashboard-component-chart-holder').length === n
                        && document.querySelectorAll('.dashboard-component-chart-holder .loading').length === 0
                        && [...document.querySelectorAll('.dashboard-component-chart-holder')]
                             .every(h => h.querySelector('canvas, svg, table tbody tr, .ant-alert, [role=alert]'))""",
                arg=len(CHARTS), timeout=120_000)
            page.wait_for_timeout(1500)  # echarts animates the first paint
            holders = page.query_selector_all(".dashboard-component-chart-holder")
            names = {}
            for h in holders:
                title = h.query_selector("[data-test=editable-title], .header-title, .editable-title")
                text = (title.inner_text() if title else h.inner_text().split("\n")[0]).strip()
                errors = h.query_selector_all(".ant-alert-error, [role=alert], [data-test=error-message]")
                assert not errors, f"{text}: error box: {[e.inner_text() for e in errors]}"
                assert not h.query_selector(".loading"), f"{text}: still loading"
                assert h.query_selector("canvas, table tbody tr"), f"{text}: nothing drawn"
                names[text] = h
            assert set(names) == CHARTS, sorted(names)
            # The tables show the figures as text, too.
            assert "/page/" in names["Top 5 page URLs"].inner_text()
            assert "invalid_country" in names["Dead-letter queue by reason"].inner_text()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    out = {}
    for slice_id, resp in by_id.items():
        assert resp["status"] == 200, resp
        (result,) = resp["body"]["result"]
        assert result["status"] == "success" and not result["error"], result
        assert result["rowcount"] > 0, f"{slices.get(slice_id)}: no rows"
        out[slices[slice_id]] = result
    return out


def wait_for_superset(superset: str = SUPERSET, timeout: float = 300) -> list[dict]:
    """Superset is ready when /health says OK and a logged-in API call lists the
    dashboard's charts; return those charts."""
    import urllib.request

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{superset}/health", timeout=10) as r:
                if r.read().decode().strip() != "OK":
                    raise OSError("health: not OK")
            charts = superset_charts(superset)
            if {c["slice_name"] for c in charts} >= CHARTS:
                return charts
            last = sorted(c["slice_name"] for c in charts)
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(2)
    raise AssertionError(f"Superset at {superset} not ready after {timeout}s (last: {last!r})")


def superset_charts(superset: str = SUPERSET) -> list[dict]:
    """The charts Superset has, through its REST API (logged in with a token)."""
    import urllib.request

    body = json.dumps({"username": os.environ.get("STREAMHOST_SUPERSET_USER", "admin"),
                       "password": os.environ.get("STREAMHOST_SUPERSET_PASSWORD", "admin"),
                       "provider": "db", "refresh": False}).encode()
    req = urllib.request.Request(f"{superset}/api/v1/security/login", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        token = json.loads(r.read())["access_token"]
    req = urllib.request.Request(f"{superset}/api/v1/chart/?q=(page_size:100)",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["result"]
