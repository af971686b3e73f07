"""The docs cannot rot silently: every command in a ```bash block of README.md and
docs/ (top-level pages, then docs/*/ pages) runs here, in the order the docs give them, and must succeed.

Exceptions are few and explicit: `./scripts/test` is what CI runs (it runs this file);
servers (`streamhost run ...`) are started, must answer /health, and are stopped; the
"write a plugin" recipe is done for real with the edits the docs ask of the reader;
benchmarks run with a small event count (`BENCH_EVENTS`, `bench/e2e --events`, `TRADEOFF_QUICK=1`: the
scenarios that compare with an oracle, which must still be exact); the Docker commands
(`docker compose ...`, and the brief's generator run against that stack) are what
scripts/compose-test runs, after this file, in a Docker engine. A command this file does not know how to run
fails the test with its location, so a new one cannot slip in unchecked.

Runs last (scripts/test orders it after the integration tests): it resets the stack."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs").glob("*/*.md"))]
BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
# The event counts of the documented benchmarks, cut down: the check is that they run.
# "Run with Docker" (docs/howto/run-with-docker.md): run by scripts/compose-test, not here.
DOCKER = re.compile(r"^(docker |docker-compose |DOCKER_BUILDKIT=|python data_generator\.py)")
SMALLER = {"BENCH_EVENTS=200000": "BENCH_EVENTS=2000", "SIM_SEEDS=5000": "SIM_SEEDS=20",
           "SIM_RESULT=bench/results/": "SIM_RESULT=/tmp/"}


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) in document order, comments removed, duplicates dropped."""
    seen, out = set(), []
    for doc in DOCS:
        text = doc.read_text()
        for block in BLOCK.finditer(text):
            line_no = text[: block.start()].count("\n") + 2
            for i, line in enumerate(block.group(1).replace("\\\n", " ").splitlines()):
                cmd = re.sub(r"\s+#.*$", "", line).strip()
                if not cmd or cmd.startswith("#"):
                    continue
                cmd = cmd.removeprefix("./")
                if cmd not in seen:
                    seen.add(cmd)
                    out.append((f"{doc.relative_to(ROOT)}:{line_no + i}", cmd))
    return out


def sh(cmd: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "set -eo pipefail; " + cmd], cwd=ROOT, env=env or os.environ.copy(),
                          capture_output=True, text=True, timeout=timeout)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def run_server(where: str, cmd: str) -> None:
    """A documented `streamhost run`: it must come up and stop cleanly on SIGTERM."""
    assert sh("scripts/stack up").returncode == 0
    # Another host there (the demo's, say) would answer for this one.
    assert not healthy("http://127.0.0.1:9898/health"), f"{where}: a host already answers on 127.0.0.1:9898"
    proc = subprocess.Popen(["bash", "-c", "exec env " + cmd], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not healthy("http://127.0.0.1:9898/health"):
            assert proc.poll() is None, f"{where}: `{cmd}` exited:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, f"{where}: `{cmd}` never answered /health"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{where}: `{cmd}` exited {proc.returncode} on SIGTERM:\n{out[-3000:]}"


def write_a_plugin(where: str) -> None:
    """docs/howto/write-a-rule.md, including the edits it leaves to the reader."""
    members = (ROOT / "Cargo.toml").read_text()
    lock = (ROOT / "Cargo.lock").read_text()
    try:
        assert sh("cp -r plugins/template plugins/myrule").returncode == 0
        cargo = ROOT / "plugins" / "myrule" / "Cargo.toml"
        cargo.write_text(re.sub(r'(?m)^name = "template"', 'name = "myrule"', cargo.read_text()))
        added = members.replace('"plugins/template",', '"plugins/template", "plugins/myrule",', 1)
        assert added != members, "the root Cargo.toml no longer lists plugins/template"
        (ROOT / "Cargo.toml").write_text(added)
        r = sh("cargo test -p myrule")
        assert r.returncode == 0, f"{where}: {r.stderr[-3000:]}"
        r = sh("scripts/build-plugins")
        assert r.returncode == 0, f"{where}: {r.stderr[-3000:]}"
        assert (ROOT / "plugins" / "dist" / "myrule.wasm").exists()
    finally:
        (ROOT / "Cargo.toml").write_text(members)
        (ROOT / "Cargo.lock").write_text(lock)
        shutil.rmtree(ROOT / "plugins" / "myrule", ignore_errors=True)
        (ROOT / "plugins" / "dist" / "myrule.wasm").unlink(missing_ok=True)


def new_plugin_crate(where: str, cmd: str) -> None:
    """docs/howto/write-a-rule.md's crate of its own: created afresh (the folder it
    names is removed first), then its check.sh, building into a target folder beside
    the shared one (the integration tests' new crates use it too)."""
    env = os.environ.copy()
    if " plugin new " in cmd:
        name, folder = re.search(r"plugin new (\S+) --dir (\S+)", cmd).groups()
        shutil.rmtree(Path(folder) / name, ignore_errors=True)
    elif env.get("CARGO_TARGET_DIR"):
        env["CARGO_TARGET_DIR"] += "-plugin-new"
    r = sh(cmd, env=env)
    assert r.returncode == 0, f"{where}: `{cmd}` failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


def test_every_documented_command_runs():
    commands = documented_commands()
    assert len(commands) > 15, commands
    # The docs speak of a clone's own target/ and plugins.d/; the scripts build into the
    # shared cache: point target/ there for the duration (nothing is rebuilt).
    made = []
    target_dir = os.environ.get("CARGO_TARGET_DIR")
    if target_dir and not (ROOT / "target").exists():
        (ROOT / "target").symlink_to(target_dir)
        made.append(ROOT / "target")
    else:
        # A target/ of its own (cargo run without scripts/lib/env.sh) would fail the
        # first command that uses the host, far from the cause.
        assert (ROOT / "target" / "release" / "streamhost").exists(), (
            "target/ holds no release build of the host (made by a cargo command run "
            "without scripts/lib/env.sh?): remove it, or build the host into it"
        )
    if not (ROOT / "plugins.d").exists():
        (ROOT / "plugins.d").mkdir()
        made.append(ROOT / "plugins.d")
    ran = []
    try:
        for where, cmd in commands:
            if cmd == "scripts/test":
                continue  # CI runs it (.ci/run), and it runs this test
            if DOCKER.match(cmd):
                continue  # scripts/compose-test runs the compose stack (scripts/test calls it)
            if cmd.startswith("cp -r plugins/template"):
                write_a_plugin(where)
            elif " plugin new " in cmd or cmd.endswith("/check.sh"):
                new_plugin_crate(where, cmd)
            elif re.search(r"streamhost run( --config \S+)?$", cmd):
                run_server(where, cmd)
            else:
                env = {**os.environ, "DEMO_SECONDS": "30", "TRADEOFF_QUICK": "1"}
                for big, small in SMALLER.items():
                    cmd = cmd.replace(big, small)
                if "cargo bench" in cmd and "BENCH_EVENTS=" not in cmd:
                    cmd = "BENCH_EVENTS=2000 " + cmd
                if cmd.startswith("bench/e2e"):
                    cmd += " --events 30000 --countries-events 3000"  # argparse: the last value wins
                r = sh(cmd, env=env)
                assert r.returncode == 0, f"{where}: `{cmd}` failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
                if cmd == "scripts/demo":
                    # README: after the demo, the host keeps running for more events.
                    assert healthy("http://127.0.0.1:9898/health"), f"{where}: the demo's host is not running after it"
                    assert "streamhost  running" in sh("scripts/stack status").stdout
            ran.append(cmd)
    finally:
        for path in made:
            path.unlink() if path.is_symlink() else shutil.rmtree(path, ignore_errors=True)
        sh("scripts/stack down")
    print("\n".join(ran))
