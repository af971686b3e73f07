"""The tools that need no broker: `streamhost plugin check|test`, `streamhost schema check`."""

from __future__ import annotations

import json
import subprocess

from streamhost_kit.events import event
from streamhost_kit.stack import HOST_BIN, PLUGINS_BUILT, ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOST_BIN), *args], capture_output=True, text=True, timeout=60)


def test_plugin_check_describes_a_good_plugin_and_explains_a_bad_one():
    ok = run("plugin", "check", str(PLUGINS_BUILT / "legacy_event_type.wasm"))
    assert ok.returncode == 0, ok.stderr
    assert "legacy-event-type" in ok.stdout and "rules@0.1.0" in ok.stdout and "accepts 0.1.0, 0.2.0, 0.3.0, 1.0.0" in ok.stdout
    bad = run("plugin", "check", str(PLUGINS_BUILT / "zoo_wrong_major.wasm"))
    assert bad.returncode != 0
    assert "@2.0.0" in bad.stderr and "@1.0.0" in bad.stderr


def test_plugins_run_where_address_space_is_limited(tmp_path):
    """Plugin instances come from a pool that reserves address space up front. Under a
    limit on it (`ulimit -v`, as some containers and sanitizers set) the host says so
    and allocates instances one by one: the plugin still judges every event."""
    lines = [event(user_id=1, timestamp=1700000000, country="US"), event(user_id=-1, timestamp=1700000000, country="US")]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    command = f"ulimit -v {16 << 20}; exec '{HOST_BIN}' plugin test '{PLUGINS_BUILT / 'quality.wasm'}' --input '{path}'"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "cannot reserve the plugin instance pool" in out.stderr
    assert out.stdout.strip().endswith("quality@1.0.0: 1 accepted, 1 rejected"), out.stdout


def test_plugin_test_judges_json_lines_offline(tmp_path):
    lines = [
        event(user_id=1, timestamp=1700000000, country="US"),
        event(user_id=-1, timestamp=1700000000, country="US"),
        event(user_id=1, timestamp=1700000000, country="ZZ"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in lines) + "\nnot json\n")
    out = run("plugin", "test", str(PLUGINS_BUILT / "quality.wasm"), "--input", str(path))
    assert out.returncode == 0, out.stderr
    verdicts = [line for line in out.stdout.splitlines() if line.startswith("line")]
    assert len(verdicts) == 4
    assert "accepted" in verdicts[0]
    assert "invalid_user_id" in verdicts[1] and "invalid_country" in verdicts[2] and "malformed_json" in verdicts[3]
    assert out.stdout.strip().endswith("quality@1.0.0: 1 accepted, 3 rejected")


def test_run_help_lists_every_setting():
    out = run("run", "--help")
    assert out.returncode == 0
    for key in ["kafka.brokers", "plugins.dir", "plugins.breaker_threshold", "windows.grace_secs", "admin.listen"]:
        assert key in out.stdout, key


def test_schema_check_prints_a_schema_and_refuses_a_bad_one_naming_the_line(tmp_path):
    ok = run("schema", "check", str(ROOT / "schemas" / "sensor.toml"))
    assert ok.returncode == 0, ok.stderr
    assert "3 fields, event time `ts`" in ok.stdout and "temperature          float" in ok.stdout
    cases = {
        "unknown type": ('time = "t"\n[fields]\nt = "timestamp"\nx = "strnig"\n',
                         ':4: field `x`: unknown type "strnig"'),
        "duplicate field": ('time = "t"\n[fields]\nt = "timestamp"\nx = "string"\nx = "integer"\n',
                            ":5: duplicate key `x`"),
        "no time field": ('[fields]\nt = "timestamp"\n', "no time field"),
    }
    for name, (text, expected) in cases.items():
        bad = tmp_path / f"{name.replace(' ', '-')}.toml"
        bad.write_text(text)
        out = run("schema", "check", str(bad))
        assert out.returncode != 0, name
        assert f"{bad}{expected}" in out.stderr or expected in out.stderr, (name, out.stderr)
        assert "panicked" not in out.stderr, out.stderr
    # The host refuses to start on one, with the same message.
    out = run("run", "--schema", str(tmp_path / "unknown-type.toml"))
    assert out.returncode != 0 and 'unknown type "strnig"' in out.stderr, out.stderr


def test_an_older_plugin_is_refused_for_a_schema_without_the_briefs_fields():
    schema = str(ROOT / "schemas" / "sensor.toml")
    ok = run("plugin", "check", str(PLUGINS_BUILT / "sensor_range.wasm"), "--schema", schema)
    assert ok.returncode == 0 and "validator reading device_id, temperature" in ok.stdout, ok
    old = run("plugin", "check", str(PLUGINS_BUILT / "quality_v0_3.wasm"), "--schema", schema)
    assert old.returncode != 0 and "has no field `event_type`" in old.stderr, old.stderr


def test_run_refuses_to_start_without_the_rules_it_must_serve(tmp_path):
    """`plugins.must_serve` and `plugins.allow_empty = false`: a host that would accept
    events no rule judges does not start, and says why (before it touches the broker)."""
    plugins = tmp_path / "plugins.d"
    plugins.mkdir()

    def start(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(HOST_BIN), "run"], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "STREAMHOST_PLUGINS__DIR": str(plugins),
                                   "STREAMHOST_PLUGINS__CACHE_COMPILED": "false", **env})

    empty = start(STREAMHOST_PLUGINS__ALLOW_EMPTY="false")
    assert empty.returncode != 0 and "plugins.allow_empty is false" in empty.stderr, empty.stderr
    (plugins / "10-enrich.wasm").write_bytes((PLUGINS_BUILT / "enrich.wasm").read_bytes())
    missing = start(STREAMHOST_PLUGINS__MUST_SERVE='["quality"]')
    assert missing.returncode != 0, missing.stderr
    assert 'plugins.must_serve names ["quality"]' in missing.stderr, missing.stderr
    too_large = start(STREAMHOST_PIPELINE__MAX_MESSAGE_BYTES="2000000")
    assert too_large.returncode != 0 and "pipeline.max_message_bytes = 2000000" in too_large.stderr, too_large.stderr
