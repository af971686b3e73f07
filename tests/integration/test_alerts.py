"""The shipped alerting rules (deploy/prometheus/alerts.yml) on a real Prometheus
(Debian's package) scraping a running host: a plugin that traps makes
StreamhostPluginFailing fire, and removing it resolves the alert. The rules run as
shipped except for time: scraped and evaluated every second, their `for:` durations
and range windows cut to seconds (promtool's unit tests, alerts.test.yml, run them at
their real durations)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from streamhost_kit.events import event, payload
from streamhost_kit.kafka import produce
from streamhost_kit.plugins import deploy
from streamhost_kit.stack import PLUGINS_BUILT, ROOT, free_port
from streamhost_kit.util import wait_until

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"


def fast(rules: str) -> str:
    """The rules with their durations in seconds: `for: 2m` → `for: 0s`, `[5m]` → `[5s]`."""
    rules = re.sub(r"(?m)^(\s*)for: \S+$", r"\1for: 0s", rules)
    return re.sub(r"\[(\d+)m\]", lambda m: f"[{m.group(1)}s]", rules)


@pytest.fixture
def prometheus(tmp_path: Path):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is missing (scripts/test installs it)"
    port = free_port()
    procs = []

    def start(target: str) -> str:
        (tmp_path / "alerts.yml").write_text(fast(RULES.read_text()))
        (tmp_path / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "streamhost", "static_configs": [{"targets": [target]}]}],
        }))
        log = open(tmp_path / "prometheus.log", "wb")
        procs.append(subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{port}"],
                                      stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        wait_until("Prometheus ready", lambda: _get(f"{url}/-/ready") is not None, timeout=30)
        return url

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)
    print((tmp_path / "prometheus.log").read_text()[-3000:] if (tmp_path / "prometheus.log").exists() else "")


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read()
    except OSError:
        return None


def alerts(url: str) -> dict[str, list[dict]]:
    """Firing alerts by name."""
    body = json.loads(_get(f"{url}/api/v1/alerts") or b'{"data": {"alerts": []}}')
    out: dict[str, list[dict]] = {}
    for a in body["data"]["alerts"]:
        if a["state"] == "firing":
            out.setdefault(a["labels"]["alertname"], []).append(a["labels"])
    return out


def test_a_trapping_plugin_fires_an_alert_that_resolves_once_it_is_removed(stack_up, hosts, plugin_dir, prometheus):
    # The breaker would stop calling it (another alert's business): keep it failing.
    (host,) = hosts(1, STREAMHOST_PLUGINS__BREAKER_THRESHOLD="1000000")
    url = prometheus(host.admin)
    wait_until("the host scraped", lambda: json.loads(_get(f"{url}/api/v1/query?query=up") or b"{}")
               .get("data", {}).get("result"), timeout=30)

    stop = threading.Event()

    def traffic():
        i = 0
        while not stop.is_set():
            produce([payload(event(page_url="/panic", button_id=f"alert-{i}"))])
            i += 1
            time.sleep(0.2)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        # A quiet host first: nothing fires on the healthy chain.
        time.sleep(5)
        assert alerts(url) == {}, alerts(url)
        deploy(plugin_dir, "50-trapdoor.wasm", PLUGINS_BUILT / "zoo_trapdoor.wasm")
        wait_until("StreamhostPluginFailing firing",
                   lambda: "StreamhostPluginFailing" in alerts(url), timeout=60)
        (firing,) = alerts(url)["StreamhostPluginFailing"]
        assert firing["plugin"] == "zoo-trapdoor", firing
        assert firing["severity"] == "warning", firing

        (plugin_dir / "50-trapdoor.wasm").unlink()
        started = time.monotonic()
        wait_until("StreamhostPluginFailing resolved",
                   lambda: "StreamhostPluginFailing" not in alerts(url), timeout=60)
        print(f"resolved {time.monotonic() - started:.1f} s after the plugin was removed")
        assert "StreamhostDown" not in alerts(url)
    finally:
        stop.set()
        sender.join(timeout=10)
