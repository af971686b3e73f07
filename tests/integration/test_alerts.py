"""The shipped alerting rules (deploy/prometheus/alerts.yml) on a real Prometheus
(Debian's package) scraping a running host: a plugin that traps makes
StreamhostPluginFailing fire, and removing it resolves the alert. The rules run as
shipped except for time: scraped and evaluated every second, their `for:` durations
and range windows cut to seconds (the `prometheus` fixture; promtool's unit tests,
alerts.test.yml, run them at their real durations)."""

from __future__ import annotations

import json
import threading
import time

from streamhost_kit.events import event, payload
from streamhost_kit.kafka import produce
from streamhost_kit.plugins import deploy
from streamhost_kit.prometheus import get
from streamhost_kit.stack import PLUGINS_BUILT
from streamhost_kit.util import wait_until


def alerts(url: str) -> dict[str, list[dict]]:
    """Firing alerts by name."""
    body = json.loads(get(f"{url}/api/v1/alerts") or b'{"data": {"alerts": []}}')
    out: dict[str, list[dict]] = {}
    for a in body["data"]["alerts"]:
        if a["state"] == "firing":
            out.setdefault(a["labels"]["alertname"], []).append(a["labels"])
    return out


def test_a_trapping_plugin_fires_an_alert_that_resolves_once_it_is_removed(stack_up, hosts, plugin_dir, prometheus):
    # The breaker would stop calling it (another alert's business): keep it failing.
    (host,) = hosts(1, STREAMHOST_PLUGINS__BREAKER_THRESHOLD="1000000")
    url = prometheus(host.admin).url
    wait_until("the host scraped", lambda: json.loads(get(f"{url}/api/v1/query?query=up") or b"{}")
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
