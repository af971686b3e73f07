"""Helpers for the integration tests: the real broker (Tansu), the real ClickHouse and
the real `streamhost` binary, all on 127.0.0.1. scripts/test builds and starts them;
each test module starts from a fresh stack (`fresh_stack`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
BROKERS = os.environ.get("STREAMHOST_KAFKA_BROKERS", "127.0.0.1:9092")
CH_URL = f"http://127.0.0.1:{os.environ.get('STREAMHOST_CH_HTTP_PORT', '8123')}/?output_format_json_quote_64bit_integers=0"
HOST_BIN = Path(os.environ["STREAMHOST_BIN"]) if "STREAMHOST_BIN" in os.environ else None
PLUGINS_BUILT = Path(os.environ.get("STREAMHOST_PLUGINS_BUILT", ROOT / "plugins" / "target" / "wasm32-wasip2" / "release"))
ALLOWED = {"US", "CA", "UK", "DE", "FR", "JP"}


# ---------------------------------------------------------------- ClickHouse
def ch(query: str) -> str:
    """Run a query over ClickHouse's HTTP interface; raise with the server's message."""
    req = urllib.request.Request(CH_URL, data=query.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as e:  # type: ignore[attr-defined]
        raise AssertionError(f"ClickHouse: {e.read().decode()}\nquery: {query}") from e


def ch_rows(query: str) -> list[dict]:
    out = ch(query + " FORMAT JSONEachRow")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ch_value(query: str) -> int:
    return int(ch(query).strip() or 0)


def wait_until(what: str, predicate, timeout: float = 90, interval: float = 1.0):
    """Poll `predicate` until it returns a truthy value; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# ---------------------------------------------------------------- Kafka
def watermarks(topic: str) -> dict[int, int]:
    """High watermark (next offset) per partition."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "streamhost-tests-probe", "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
    finally:
        c.close()


def read_topic(topic: str, start: dict[int, int] | None = None, timeout: float = 30) -> list:
    """Every record from `start` (default: the beginning) up to the current end."""
    end = watermarks(topic)
    start = start or {p: 0 for p in end}
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "streamhost-tests-reader", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in end])
        want = sum(end[p] - start.get(p, 0) for p in end)
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            if m.offset() < end[m.partition()]:
                records.append(m)
        assert len(records) == want, f"read {len(records)} of {want} records from {topic}"
        return records
    finally:
        c.close()


def produce(payloads: list[bytes], topic: str = "my_events", key=None, per_second: float | None = None) -> None:
    """Produce and wait for every acknowledgement; `per_second` paces it like a live stream."""
    p = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 5})
    started = time.monotonic()
    for i, payload in enumerate(payloads):
        p.produce(topic, value=payload, key=key(i) if key else None)
        p.poll(0)
        if per_second:
            delay = started + (i + 1) / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    assert p.flush(30) == 0, "not every test record was delivered"


# ---------------------------------------------------------------- the host
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    """One `streamhost run` process with its own admin port and log file."""

    def __init__(self, tmp: Path, plugin_dir: Path, name: str = "host", **env: str):
        assert HOST_BIN and HOST_BIN.exists(), "STREAMHOST_BIN must point at the built binary (scripts/test sets it)"
        self.log_path = tmp / f"{name}.log"
        self.admin = f"127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "STREAMHOST_KAFKA__BROKERS": BROKERS,
            "STREAMHOST_PLUGINS__DIR": str(plugin_dir),
            "STREAMHOST_ADMIN__LISTEN": self.admin,
            "STREAMHOST_WINDOWS__IDLE_TIMEOUT_SECS": "3",
            "RUST_LOG": "info",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Host":
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(HOST_BIN), "run"], env=self.env, stdout=self.logfile, stderr=subprocess.STDOUT)
        wait_until("the host's admin endpoint", self.healthy, timeout=30, interval=0.2)
        return self

    def healthy(self) -> bool:
        assert self.proc and self.proc.poll() is None, f"host exited:\n{self.log()}"
        try:
            with urllib.request.urlopen(f"http://{self.admin}/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus metric's samples whose labels include `labels`."""
        total = 0.0
        for line in self.get("/metrics").splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def fresh_stack():
    """A stack with empty topics and tables: every module's counts start at zero."""
    subprocess.run([str(ROOT / "scripts" / "stack"), "reset"], check=True)
    subprocess.run([str(ROOT / "scripts" / "stack"), "up"], check=True)
    yield
    # Left running for the next module's reset; scripts/test stops it at the end.


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A plugin directory with the quality plugin, as `scripts/build-plugins` built it."""
    d = tmp_path / "plugins.d"
    d.mkdir()
    src = PLUGINS_BUILT / "quality.wasm"
    assert src.exists(), f"{src} missing: run scripts/build-plugins"
    (d / "10-quality.wasm").write_bytes(src.read_bytes())
    return d


@pytest.fixture
def hosts(tmp_path: Path, plugin_dir: Path):
    """Start hosts with `hosts(n, **env)`; all are stopped (and their logs shown on failure) at the end."""
    started: list[Host] = []

    def start(n: int = 1, **env: str) -> list[Host]:
        new = [Host(tmp_path, plugin_dir, name=f"host{len(started) + i}", **env).start() for i in range(n)]
        started.extend(new)
        return new

    yield start
    for h in started:
        code = h.stop()
        print(f"--- {h.log_path.name} (exit {code}) ---\n{h.log()[-4000:]}")
