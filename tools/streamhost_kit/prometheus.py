"""A real Prometheus (Debian's package) scraping hosts every second, with the shipped
alerting rules (deploy/prometheus/alerts.yml) cut to seconds: for the tests of what
deploy/ ships. Standard library only."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .stack import ROOT, free_port
from .util import wait_until

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"


def fast(rules: str) -> str:
    """The rules with their durations in seconds: `for: 2m` → `for: 0s`, `[5m]` → `[5s]`."""
    rules = re.sub(r"(?m)^(\s*)for: \S+$", r"\1for: 0s", rules)
    return re.sub(r"\[(\d+)m\]", lambda m: f"[{m.group(1)}s]", rules)


def get(url: str) -> bytes | None:
    """The body, None when nothing answers or the answer is an error."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read()
    except OSError:
        return None


class Prometheus:
    """One Prometheus process in `tmp`; `start(target)` returns its URL."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, target: str) -> str:
        binary = shutil.which("prometheus")
        assert binary, "Debian's prometheus package is missing (scripts/test installs it)"
        port = free_port()
        (self.tmp / "alerts.yml").write_text(fast(RULES.read_text()))
        (self.tmp / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "streamhost", "static_configs": [{"targets": [target]}]}],
        }))
        self.log = open(self.tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen([binary, f"--config.file={self.tmp / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        wait_until("Prometheus ready", lambda: get(f"{self.url}/-/ready") is not None, timeout=30)
        return self.url

    def query(self, expr: str) -> tuple[str | None, list]:
        """An instant query: (error, result); the error as Prometheus words it."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            return f"{body.get('errorType')}: {body.get('error')}", []
        return None, body["data"]["result"]

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.log.close()
        log = self.tmp / "prometheus.log"
        print(log.read_text()[-3000:] if log.exists() else "")
