"""The local stack (scripts/stack), the `streamhost` binary as a process, ports,
Prometheus metrics and /proc figures. Standard library only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .util import wait_until

ROOT = Path(__file__).resolve().parents[2]
# The host binary (scripts/test sets STREAMHOST_BIN) and the built plugins.
HOST_BIN = Path(os.environ["STREAMHOST_BIN"]) if "STREAMHOST_BIN" in os.environ else None
PLUGINS_BUILT = Path(os.environ.get("STREAMHOST_PLUGINS_BUILT", ROOT / "plugins" / "target" / "wasm32-wasip2" / "release"))
# The brief's own generator comes with the brief, not with this repository: beside the
# clone (shared/seed/) on the project's machines, or where STREAMHOST_BRIEF_GENERATOR says.
BRIEF_GENERATOR = Path(os.environ.get("STREAMHOST_BRIEF_GENERATOR",
                                      ROOT.parent / "shared" / "seed" / "data_generator.py"))


def brief_generator() -> Path:
    """The brief's generator. Missing, a test that runs it is skipped with the reason (a
    failure under the test command: tests/conftest.py)."""
    if BRIEF_GENERATOR.is_file():
        return BRIEF_GENERATOR
    import pytest
    pytest.skip(f"the brief's generator is not at {BRIEF_GENERATOR}: it comes with the brief; "
                "set STREAMHOST_BRIEF_GENERATOR to its path")


def stack(*args: str, stdout=None) -> None:
    """Run scripts/stack with `args` (up, down, reset, stop clickhouse, ...); fail if it fails."""
    subprocess.run([str(ROOT / "scripts" / "stack"), *args], check=True, stdout=stdout)


def reset_stack() -> None:
    """Empty topics and tables, stack up."""
    stack("reset")
    stack("up")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples (in /metrics `text`) whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM in KiB and `cpu` seconds (user + system) of a live process; what
    could not be read is missing."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        pass
    return out


def admin_answer(admin: str, path: str, timeout: float = 5) -> tuple[int | None, str]:
    """An admin path's HTTP status and text, errors included; (None, "") while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{admin}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


class Host:
    """One `streamhost run` process with its own admin port and log file."""

    def __init__(self, tmp: Path, plugin_dir: Path, name: str = "host", binary: Path | None = None,
                 **env: str | None):
        """`env` adds variables to the host's environment; None removes one (a setting
        then comes from the config file)."""
        from .kafka import BROKERS  # noqa: PLC0415 - the rest of this module needs no Kafka client

        self.binary = binary or HOST_BIN
        assert self.binary and self.binary.exists(), "STREAMHOST_BIN must point at the built binary (scripts/test sets it)"
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
        self.env = {k: v for k, v in self.env.items() if v is not None}
        self.proc: subprocess.Popen | None = None

    def start(self, ready: bool = True) -> "Host":
        """Start the process; wait until /health says ready, or with `ready=False` only
        until it answers at all (a host that cannot reach the broker)."""
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.binary), "run"], env=self.env, stdout=self.logfile, stderr=subprocess.STDOUT)
        try:
            if ready:
                wait_until("the host's admin endpoint", self.healthy, timeout=30, interval=0.2)
            else:
                wait_until("the host's admin endpoint", lambda: self.health_status() is not None, timeout=30, interval=0.2)
        except BaseException:
            # Nobody holds a host that never came up: stop it here, or it would join
            # the group later and take partitions from the tests that follow.
            self.kill()
            print(f"--- {self.log_path.name} (never ready) ---\n{self.log()[-3000:]}")
            raise
        return self

    def answer(self, path: str, timeout: float = 5) -> tuple[int | None, str]:
        return admin_answer(self.admin, path, timeout)

    def health_status(self) -> int | None:
        """/health's HTTP status, None while nothing answers."""
        assert self.proc and self.proc.poll() is None, f"host exited:\n{self.log()}"
        return self.answer("/health", timeout=1)[0]

    def healthy(self) -> bool:
        return self.health_status() == 200

    def health(self) -> tuple[int | None, str]:
        """/health's status and text (None, "" while nothing answers)."""
        return self.answer("/health")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as r:
            return r.read().decode()

    def plugin_files(self) -> list[dict]:
        """`/plugins`: one entry per plugin file (its state, version, last error)."""
        return json.loads(self.get("/plugins"))["files"]

    def serving_chain(self) -> dict:
        """`/plugins`: the chain the validate stage runs on (generation, since, chain)."""
        return json.loads(self.get("/plugins"))["serving"]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus metric's samples whose labels include `labels`."""
        return metric(self.get("/metrics"), name, **labels)

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


def assigned(hosts: list[Host], stage: str) -> float:
    """Partitions of `stage` (validate, window) assigned over the hosts."""
    return sum(h.metric("streamhost_assigned_partitions", stage=stage) for h in hosts)


def settled_window_rows(hosts: list[Host]) -> dict[tuple[str, str], int]:
    """Wait until both stages have read and committed all of their input, the hosts
    have closed every window (idleness) and ClickHouse has ingested every record of
    country_event_averages; then (country, window) → count.

    "No open window" alone is not the end: a host restarted a moment ago has none
    before its group assigns it partitions, and neither does one that has closed the
    windows of what it has read so far. Committed offsets at the end of each input
    say that nothing is left to read."""
    from .clickhouse import ch_value, window_rows  # noqa: PLC0415
    from .kafka import pipeline_consumed, watermarks  # noqa: PLC0415

    def settled():
        if not pipeline_consumed():
            return False
        if sum(h.metric("streamhost_assigned_partitions", stage="window") for h in hosts) < len(watermarks("enriched_events")):
            return False
        if any(h.metric("streamhost_open_windows") != 0 for h in hosts):
            return False
        emitted = sum(watermarks("country_event_averages").values())
        return emitted > 0 and ch_value("SELECT count() FROM events_db.country_event_averages_raw") >= emitted

    wait_until("every window closed and in ClickHouse", settled, timeout=150)
    return window_rows()
