"""A plugin author's way, with the tools as documented: `streamhost plugin new` outside
this repository, the crate's own check.sh (tests, build, `plugin check` with the
manifest, `plugin test --expect`), then a live deploy to a running host, which serves
the rule with its settings."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from streamhost_kit.events import event, payload
from streamhost_kit.kafka import produce, read_topic, watermarks
from streamhost_kit.plugins import deploy
from streamhost_kit.stack import HOST_BIN
from streamhost_kit.util import wait_until


def build_env() -> dict[str, str]:
    # The new crates' builds share one target folder beside the host's (a cache outside
    # the clone, keyed like it by the toolchain): their dependencies build once.
    target = os.environ.get("CARGO_TARGET_DIR")
    env = {**os.environ, "STREAMHOST": str(HOST_BIN)}
    if target:
        env["CARGO_TARGET_DIR"] = f"{target}-plugin-new"
    return env


def new_plugin(tmp_path: Path, name: str, *flags: str) -> Path:
    out = subprocess.run([str(HOST_BIN), "plugin", "new", name, "--dir", str(tmp_path), *flags],
                         capture_output=True, text=True, check=True)
    assert "check.sh" in out.stdout, out.stdout
    return tmp_path / name


def check_sh(crate: Path) -> str:
    out = subprocess.run([str(crate / "check.sh")], capture_output=True, text=True, env=build_env())
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def built(crate: Path) -> Path:
    target = Path(build_env().get("CARGO_TARGET_DIR", crate / "target"))
    return target / "wasm32-wasip2" / "release" / f"{crate.name.replace('-', '_')}.wasm"


def test_a_new_plugin_builds_checks_and_serves_live_with_its_required_setting(fresh_stack, hosts, plugin_dir, tmp_path):
    crate = new_plugin(tmp_path, "referrer-guard")
    out = check_sh(crate)
    assert "setting     blocked = \"/page/13,/page/66\"" in out, out
    assert "referrer-guard@0.1.0: all 3 cases passed" in out, out
    wasm, manifest = built(crate), crate / "referrer_guard.toml"

    # Without its manifest the rule is refused, saying which setting is missing.
    bare = subprocess.run([str(HOST_BIN), "plugin", "check", str(wasm)], capture_output=True, text=True)
    assert bare.returncode != 0 and "setting `blocked` is required" in bare.stderr, bare.stderr

    # A case that does not hold fails the check, and says how.
    cases = crate / "cases.jsonl"
    cases.write_text(cases.read_text().replace('"code": "blocked_value"', '"code": "other_code"'))
    failed = subprocess.run([str(HOST_BIN), "plugin", "test", str(wasm), "--manifest", str(manifest),
                             "--expect", str(cases)], capture_output=True, text=True)
    assert failed.returncode != 0, failed.stdout
    assert "FAIL  code: expected other_code, got blocked_value" in failed.stdout, failed.stdout
    assert "1 of 3 cases failed" in failed.stderr, failed.stderr

    # Deployed live, the manifest first: served with its settings.
    start_dlq = watermarks("dlq")
    (host,) = hosts(1)
    (plugin_dir / manifest.name).write_text(manifest.read_text())
    deploy(plugin_dir, wasm.name, wasm)

    def serving():
        return {p["name"]: p["state"] for p in host.plugin_files()}

    wait_until("referrer-guard serving", lambda: serving().get("referrer-guard") == "serving", timeout=30)
    wait_until("referrer-guard in the chain the stage runs",
               lambda: "referrer-guard@0.1.0" in host.serving_chain()["chain"], timeout=30)
    urls = ["/page/13", "/page/1", "/page/66", "/page/2"]
    produce([payload(event(user_id=i + 1, page_url=url, button_id=f"guard-{i}")) for i, url in enumerate(urls)])

    def blocked():
        return [r for r in (json.loads(m.value()) for m in read_topic("dlq", start_dlq))
                if r["code"] == "blocked_value"]

    wait_until("the blocked URLs in the DLQ", lambda: len(blocked()) == 2, timeout=30)
    assert {json.loads(r["raw"])["page_url"] for r in blocked()} == {"/page/13", "/page/66"}
    assert {r["rejected_by"] for r in blocked()} == {"referrer-guard@0.1.0"}


def test_a_new_enricher_shows_the_fields_it_adds(tmp_path):
    crate = new_plugin(tmp_path, "page-section", "--enricher")
    out = check_sh(crate)
    assert 'accepted  + page_section "page"' in out, out
    events = tmp_path / "events.jsonl"
    events.write_text(payload(event(page_url="/shop/cart")).decode() + "\n")
    shown = subprocess.run([str(HOST_BIN), "plugin", "test", str(built(crate)), "--manifest",
                            str(crate / "page_section.toml"), "--input", str(events), "--json"],
                           capture_output=True, text=True, check=True).stdout
    line = json.loads(shown.splitlines()[0])
    assert line["verdict"] == "accepted" and line["added"] == {"page_section": "shop"}, line
