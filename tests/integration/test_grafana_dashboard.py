"""The Grafana dashboard (deploy/grafana/streamhost.json), tested without Grafana:
every panel's queries name only metrics of the catalogue, and each one, its variables
filled in as Grafana would, runs without error on a real Prometheus scraping a real
host with traffic, and returns data (but for the panels listed in QUIET)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid

from streamhost_kit.events import event, payload
from streamhost_kit.kafka import BROKERS, produce
from streamhost_kit.stack import ROOT, Host
from streamhost_kit.util import wait_until

DASHBOARD = ROOT / "deploy" / "grafana" / "streamhost.json"
METRICS_DOC = ROOT / "docs" / "reference" / "metrics.md"

# Panels legitimately empty on a healthy host: a rate of a counter the host creates
# only at its first increment has no series until something fails.
QUIET = {
    "Plugin failures",  # streamhost_plugin_failures_total: no plugin has failed
}


def targets(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query, rows' panels included."""
    out = []
    for panel in dashboard["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            out.extend((p["title"], t["expr"]) for t in p.get("targets", []))
    return out


def catalogue() -> set[str]:
    """The metric names of the reference's table (the catalogue's own, host/src/telemetry.rs)."""
    return set(re.findall(r"(?m)^\| `(streamhost_\w+)` \|", METRICS_DOC.read_text()))


def unknown_metrics(expr: str, known: set[str]) -> list[str]:
    """streamhost_* names in `expr` that are not in `known` (a histogram's series by
    their base name)."""
    names = re.findall(r"\bstreamhost_\w+", expr)
    return [n for n in names if re.sub(r"_(bucket|sum|count)$", "", n) not in known and n not in known]


def filled(expr: str, job: str, instance: str, rate_interval: str) -> str:
    """`expr` with the dashboard's variables as Grafana fills them in."""
    return (expr.replace("$__rate_interval", rate_interval)
                .replace("$job", job).replace("$instance", instance))


def test_the_dashboard_is_importable_and_names_only_catalogued_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    known = catalogue()
    assert len(known) > 20, "the metrics table was not found in docs/reference/metrics.md"
    found = targets(dashboard)
    assert found
    ids = []
    for panel in dashboard["panels"]:
        ids.append(panel["id"])
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            assert panel["targets"], panel["title"]
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
                assert 'job=~"$job"' in t["expr"] and 'instance=~"$instance"' in t["expr"], (panel["title"], t["expr"])
    assert len(ids) == len(set(ids)), "panel ids repeat"
    bad = [(title, n) for title, expr in found for n in unknown_metrics(expr, known)]
    assert not bad, f"metrics not in the catalogue: {bad}"
    assert QUIET <= {title for title, _ in found}, "QUIET names a panel the dashboard does not have"
    # The check itself: a name planted in a query is caught.
    assert unknown_metrics("rate(streamhost_records_in_totl[1m]) + streamhost_batch_seconds_bucket", known) == \
        ["streamhost_records_in_totl"]


def test_every_panel_query_runs_and_has_data_on_a_host_with_traffic(stack_up, tmp_path, plugin_dir, prometheus):
    run = uuid.uuid4().hex[:8]
    topics = {key: f"grafana_{run}_{key}" for key in ["input", "enriched", "dlq", "averages"]}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "lib" / "topics.py"), "--brokers", BROKERS,
                    "--partitions", "3", *topics.values()], check=True)
    env = {f"STREAMHOST_KAFKA__{key.upper()}_TOPIC": name for key, name in topics.items()}
    host = Host(tmp_path, plugin_dir, name="grafana", STREAMHOST_KAFKA__GROUP_ID=f"grafana-{run}",
                STREAMHOST_KAFKA__WINDOW_GROUP_ID=f"grafana-{run}-windows", **env).start()
    prom = prometheus(host.admin)
    try:
        # Events accepted, rejected by the quality rule (country XX) and undecodable.
        def traffic(i: int) -> bytes:
            if i % 10 == 3:
                return b"{not json"
            return payload(event(button_id=f"grafana-{i}", user_id=i, country="XX" if i % 10 == 5 else "US"))

        dashboard = json.loads(DASHBOARD.read_text())
        queries = [(title, filled(expr, "streamhost", host.admin, "10s")) for title, expr in targets(dashboard)]
        deadline = time.monotonic() + 90
        i = 0
        while True:
            produce((traffic(n) for n in range(i, i + 200)), topic=topics["input"], per_second=400)
            i += 200
            answers = [(title, expr, *prom.query(expr)) for title, expr in queries]
            errors = [(title, expr, error) for title, expr, error, _ in answers if error]
            assert not errors, errors
            empty = [(title, expr) for title, expr, _, result in answers if not result and title not in QUIET]
            if not empty or time.monotonic() > deadline:
                break
        assert not empty, f"panels with no data after {i} events: {empty}"
        for title, expr, _, result in answers:
            print(f"{title}: {len(result)} series  ({expr})")
    finally:
        code = host.stop()
        print(f"--- {host.log_path.name} (exit {code}) ---\n{host.log()[-3000:]}")
