"""A stream on topics of its own: the host says which are missing, `streamhost topics
create` makes them from the same configuration, and the host reads and writes them
within seconds, without a restart.

The topics and groups have names no other test uses, so this module needs no fresh
stack."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

from streamhost_kit.events import event
from streamhost_kit.kafka import BROKERS, produce, read_topic, watermarks
from streamhost_kit.stack import HOST_BIN, Host
from streamhost_kit.util import wait_until

# How long the host may take to read a topic created while it runs (measured: about
# a second; at most the consumers' metadata refresh, 3 s, and a rebalance).
PICKUP_BOUND = 15


def topics_create(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOST_BIN), "topics", "create", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)


def test_a_host_on_missing_topics_says_so_and_reads_them_once_created(stack_up, tmp_path, plugin_dir):
    run = uuid.uuid4().hex[:8]
    topics = {key: f"topics_{run}_{key}" for key in ["input", "enriched", "dlq", "averages"]}
    config = tmp_path / "stream.toml"
    config.write_text(
        "[kafka]\n"
        f'brokers = "{BROKERS}"\n'
        f'group_id = "topics-{run}"\n'
        f'window_group_id = "topics-{run}-windows"\n'
        + "".join(f'{key}_topic = "{name}"\n' for key, name in topics.items())
    )
    host = Host(tmp_path, plugin_dir, name="topics", STREAMHOST_CONFIG=str(config)).start(ready=False)
    try:
        def says_missing():
            status, text = host.health()
            return text if status == 503 and "topics missing" in text else None

        text = wait_until("/health naming the missing topics", says_missing, timeout=20)
        for name in topics.values():
            assert name in text.splitlines()[1], text
        assert "streamhost topics create" in text

        out = topics_create(config)
        created_at = time.monotonic()
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) == 4, out.stdout
        for name, line in zip(topics.values(), lines):
            assert line.startswith(f"created  {name}: 3 partitions, replication factor 1 (kafka."), line

        wait_until("the host ready on the new topics", host.healthy, timeout=PICKUP_BOUND, interval=0.1)
        ready_after = time.monotonic() - created_at
        wait_until("the new input's partitions assigned",
                   lambda: host.metric("streamhost_assigned_partitions", stage="validate") == 3,
                   timeout=PICKUP_BOUND, interval=0.1)
        assigned_after = time.monotonic() - created_at
        print(f"ready {ready_after:.1f} s, input assigned {assigned_after:.1f} s after `topics create`")

        again = topics_create(config, "--partitions", "6")
        assert again.returncode == 0, again.stderr
        lines = again.stdout.splitlines()
        assert len(lines) == 4, again.stdout
        for name, line in zip(topics.values(), lines):
            assert line.startswith(f"exists   {name}: 3 partitions (warning: not the 6 asked; left as it is)"), line
        assert len(watermarks(topics["input"])) == 3, "an existing topic is left as it is"

        events = [event(user_id=i + 1, country="US") for i in range(50)]
        produce([json.dumps(e).encode() for e in events], topic=topics["input"])

        def enriched():
            records = read_topic(topics["enriched"])
            return records if len(records) >= len(events) else None

        records = wait_until("every event on the new enriched topic", enriched, timeout=30)
        assert sorted(json.loads(r.value())["user_id"] for r in records) == [e["user_id"] for e in events]
        assert host.health()[0] == 200
    finally:
        code = host.stop()
        print(f"--- topics host (exit {code}) ---\n{host.log()[-3000:]}")


def test_topics_create_says_when_the_broker_cannot_be_reached(tmp_path):
    config = tmp_path / "nowhere.toml"
    config.write_text('[kafka]\nbrokers = "127.0.0.1:1"\n')
    out = topics_create(config)
    assert out.returncode != 0
    assert "cannot list the topics of 127.0.0.1:1" in out.stderr, out.stderr
    assert "panicked" not in out.stderr
