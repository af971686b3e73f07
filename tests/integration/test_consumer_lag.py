"""`streamhost_consumer_lag` on a real broker: a backlog shows per partition the host
owns, a partition handed to a second instance reads 0 on the first (never a stale
value), and every partition reads 0 once the backlog is drained.

The topics and groups have names no other test uses, so this module needs no fresh
stack."""

from __future__ import annotations

import subprocess
import sys
import uuid

from streamhost_kit.events import event, payload
from streamhost_kit.kafka import BROKERS, produce
from streamhost_kit.stack import ROOT, Host
from streamhost_kit.util import wait_until

BACKLOG = 1500


def lags(host: Host, stage: str) -> dict[int, float]:
    """streamhost_consumer_lag of `stage` by partition, as the host exports it."""
    out = {}
    for line in host.get("/metrics").splitlines():
        if line.startswith("streamhost_consumer_lag{") and f'stage="{stage}"' in line:
            head, _, value = line.rpartition(" ")
            partition = head.split('partition="')[1].split('"')[0]
            out[int(partition)] = float(value)
    return out


def test_lag_per_owned_partition_drains_to_zero_and_leaves_with_the_partition(stack_up, tmp_path, plugin_dir):
    run = uuid.uuid4().hex[:8]
    topics = {key: f"lag_{run}_{key}" for key in ["input", "enriched", "dlq", "averages"]}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "lib" / "topics.py"), "--brokers", BROKERS,
                    "--partitions", "3", *topics.values()], check=True)
    # One record per batch, each acknowledged before the next: the backlog takes a
    # while to drain, long enough to see it and to hand a partition over.
    env = {f"STREAMHOST_KAFKA__{key.upper()}_TOPIC": name for key, name in topics.items()}
    env.update(STREAMHOST_KAFKA__GROUP_ID=f"lag-{run}", STREAMHOST_KAFKA__WINDOW_GROUP_ID=f"lag-{run}-windows",
               STREAMHOST_PIPELINE__BATCH_SIZE="1", STREAMHOST_PIPELINE__IN_FLIGHT_BATCHES="1")
    produce((payload(event(button_id=f"lag-{i}")) for i in range(BACKLOG)), topic=topics["input"],
            partition=lambda i: i % 3)

    first = Host(tmp_path, plugin_dir, name="first", **env).start()
    second = None
    try:
        behind = wait_until("a lag on each of the 3 input partitions",
                            lambda: (lag := lags(first, "validate")) and len(lag) == 3 and all(lag.values()) and lag,
                            timeout=30, interval=0.5)
        print(f"lag at the start: {behind}")
        assert sum(behind.values()) <= BACKLOG

        second = Host(tmp_path, plugin_dir, name="second", **env).start()

        def handed_over():
            owned = first.metric("streamhost_assigned_partitions", stage="validate")
            theirs = second.metric("streamhost_assigned_partitions", stage="validate")
            return owned + theirs == 3 and owned < 3 and (owned, theirs)

        wait_until("a partition handed to the second host", handed_over, timeout=60)
        theirs = wait_until("the second host's lag", lambda: lags(second, "validate"), timeout=30, interval=0.5)
        mine = lags(first, "validate")
        print(f"after the handover: first {mine}, second {theirs}")
        # The first host's series of a partition it gave up reads 0: the lag is its
        # new owner's to show.
        for p in theirs:
            assert mine.get(p, 0) == 0, (p, mine, theirs)
        assert any(theirs.values()) or any(mine.values()), "the backlog drained before the handover"

        def drained():
            a, b = lags(first, "validate"), lags(second, "validate")
            return set(a) | set(b) == {0, 1, 2} and not any([*a.values(), *b.values()]) and (a, b)

        print("drained:", wait_until("every input partition's lag at 0", drained, timeout=180, interval=1))
        read = first.metric("streamhost_records_in_total", topic=topics["input"]) + \
            second.metric("streamhost_records_in_total", topic=topics["input"])
        assert read >= BACKLOG, read
        # The window stage's input (the enriched topic) has its lag too, drained as well.
        window = {**lags(first, "window"), **lags(second, "window")}
        assert window and wait_until(
            "the window stage's lag at 0",
            lambda: not any([*lags(first, "window").values(), *lags(second, "window").values()]),
            timeout=60), window
    finally:
        for h in [first, second]:
            if h:
                code = h.stop()
                print(f"--- {h.log_path.name} (exit {code}) ---\n{h.log()[-3000:]}")
