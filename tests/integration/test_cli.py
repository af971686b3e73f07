"""The plugin author's tools, without a broker: `streamhost plugin check|test`."""

from __future__ import annotations

import json
import subprocess

from streamhost_kit.events import event
from streamhost_kit.stack import HOST_BIN, PLUGINS_BUILT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOST_BIN), *args], capture_output=True, text=True, timeout=60)


def test_plugin_check_describes_a_good_plugin_and_explains_a_bad_one():
    ok = run("plugin", "check", str(PLUGINS_BUILT / "legacy_event_type.wasm"))
    assert ok.returncode == 0, ok.stderr
    assert "legacy-event-type" in ok.stdout and "rules@0.1.0" in ok.stdout and "accepts 0.1.0, 0.2.0, 0.3.0, 1.0.0" in ok.stdout
    bad = run("plugin", "check", str(PLUGINS_BUILT / "zoo_wrong_major.wasm"))
    assert bad.returncode != 0
    assert "@2.0.0" in bad.stderr and "@1.0.0" in bad.stderr


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
