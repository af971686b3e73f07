"""Fixtures of the integration tests: the real broker (Tansu), the real ClickHouse and
the real `streamhost` binary, all on 127.0.0.1. scripts/test builds and starts them;
each test module starts from a fresh stack (`fresh_stack`). The helpers themselves are
in the kit, tools/streamhost_kit (on the path through pytest.ini)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamhost_kit.prometheus import Prometheus
from streamhost_kit.stack import PLUGINS_BUILT, Host, reset_stack, stack


@pytest.fixture(scope="module")
def fresh_stack():
    """A stack with empty topics and tables: every module's counts start at zero."""
    reset_stack()
    yield
    # Left running for the next module's reset; scripts/test stops it at the end.


@pytest.fixture(scope="module")
def stack_up():
    """The stack running, as it is (started if it is not): for a module that counts
    nothing it did not make itself, in whatever order the modules run."""
    stack("up")
    yield


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

    def start(n: int = 1, ready: bool = True, **env: str | None) -> list[Host]:
        """`ready=False`: wait only until the admin endpoint answers (a host that is
        not ready by design, e.g. with a configured topic missing)."""
        new = [Host(tmp_path, plugin_dir, name=f"host{len(started) + i}", **env).start(ready=ready)
               for i in range(n)]
        started.extend(new)
        return new

    yield start
    for h in started:
        code = h.stop()
        print(f"--- {h.log_path.name} (exit {code}) ---\n{h.log()[-4000:]}")


@pytest.fixture
def prometheus(tmp_path: Path):
    """Start a Prometheus scraping one host with `prometheus(admin_address)`, which
    returns it (`.url`, `.query(expr)`); stopped, its log shown, at the end."""
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        p = Prometheus(tmp_path)
        started.append(p)
        p.start(target)
        return p

    yield start
    for p in started:
        p.stop()
