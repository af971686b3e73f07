"""The broker's CPU per request of a kind, on a private Tansu (sqlite): what one OffsetCommit,
Metadata, OffsetFetch, or a Produce/Fetch of records of a given size costs it. Read with
bench/e2e --count-requests (requests per event by API) to say where a contender's broker
CPU goes. Run with the bench venv (bench/e2e makes it):

    ~/.cache/streamhost/venv-bench-*/bin/python bench/broker_cost.py [--out bench/results/X.json]

Each kind is sent one request at a time (synchronous), so the figure is the broker's work
for one request, not its queue. Tansu's CPU is read from /proc before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from streamhost_kit.stack import ROOT, free_port, port_open, proc_status  # noqa: E402
from streamhost_kit.util import machine  # noqa: E402

PARTITIONS = 3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tansu", default=os.environ.get("BENCH_TANSU_BIN")
                   or str(Path.home() / ".cache/streamhost/tansu-0.6.0/bin/tansu"))
    p.add_argument("--requests", type=int, default=300, help="requests of each small kind")
    p.add_argument("--records", type=int, default=30000, help="records of each Produce/Fetch size")
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    state = Path(tempfile.mkdtemp(prefix="broker-cost-"))
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(state / "tansu.log", "wb")
    tansu = subprocess.Popen([args.tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                              "--storage-engine", "sqlite://tansu.db"], cwd=state, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    brokers = f"127.0.0.1:{port}"
    results: dict[str, dict] = {}
    try:
        deadline = time.time() + 30
        while not port_open(port):
            if tansu.poll() is not None or time.time() > deadline:
                sys.exit("Tansu did not start")
            time.sleep(0.2)
        topics = ["cost_in", "cost_small", "cost_large"]
        subprocess.run([sys.executable, str(ROOT / "scripts/lib/topics.py"), "--brokers", brokers,
                        "--partitions", str(PARTITIONS), *topics], check=True)

        def measure(name: str, n: int, fn, unit: str = "request") -> None:
            c0, t0 = proc_status(tansu.pid)["cpu"], time.time()
            fn()
            cpu, wall = proc_status(tansu.pid)["cpu"] - c0, time.time() - t0
            results[name] = {"count": n, "unit": unit, "tansu_cpu_s": cpu, "wall_s": wall,
                             "tansu_cpu_us_per": cpu * 1e6 / n, "wall_ms_per": wall * 1000 / n}
            print(f"{name}: {n} {unit}s, Tansu {cpu:.2f} s CPU = {cpu * 1e6 / n:.0f} µs/{unit}, "
                  f"{wall * 1000 / n:.2f} ms wall/{unit}", file=sys.stderr)

        # Records as the contenders write them: the value sizes measured by e2e --count-requests.
        def produce(topic: str, size: int, n: int, per_request: int) -> None:
            prod = Producer({"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 1000, "batch.num.messages": per_request})
            value = b"x" * size
            for i in range(n):
                prod.produce(topic, value, key=b"US", partition=i % PARTITIONS)
                if (i + 1) % per_request == 0:
                    prod.flush(30)
            prod.flush(30)

        prod = Producer({"bootstrap.servers": brokers, "acks": "all"})
        prod.produce("cost_in", b"warm", partition=0)
        prod.flush(30)
        def single_produces() -> None:
            one = Producer({"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True,
                            "linger.ms": 0})
            for i in range(args.requests):
                one.produce("cost_in", b"x" * 300, key=b"US", partition=i % PARTITIONS)
                one.flush(30)
        measure("produce_request_of_1_record", args.requests, single_produces)
        for size, topic in ((288, "cost_small"), (349, "cost_large")):
            measure(f"produce_{size}B_records", args.records,
                    lambda t=topic, s=size: produce(t, s, args.records, 768), unit="record")

        def fetch(topic: str, n: int) -> None:
            c = Consumer({"bootstrap.servers": brokers, "group.id": f"cost-fetch-{topic}",
                          "enable.auto.commit": False})
            c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
            seen = 0
            end = time.time() + 120
            while seen < n and time.time() < end:
                seen += len(c.consume(5000, timeout=1.0))
            c.close()
        for size, topic in ((288, "cost_small"), (349, "cost_large")):
            measure(f"fetch_{size}B_records", args.records, lambda t=topic: fetch(t, args.records), unit="record")

        group = Consumer({"bootstrap.servers": brokers, "group.id": "cost-commit", "enable.auto.commit": False})
        group.list_topics("cost_in", timeout=10)

        def commits() -> None:
            for i in range(args.requests):
                group.commit(offsets=[TopicPartition("cost_in", p, i + 1) for p in range(PARTITIONS)],
                             asynchronous=False)
        commits()  # coordinator found, connection made
        measure("offset_commit_3_partitions", args.requests, commits)

        def offset_fetches() -> None:
            for _ in range(args.requests):
                group.committed([TopicPartition("cost_in", p) for p in range(PARTITIONS)], timeout=10)
        measure("offset_fetch_3_partitions", args.requests, offset_fetches)

        def metadata() -> None:
            for _ in range(args.requests):
                group.list_topics("cost_in", timeout=10)
        measure("metadata_one_topic", args.requests, metadata)

        def metadata_all() -> None:
            for _ in range(args.requests):
                group.list_topics(timeout=10)
        measure("metadata_all_topics", args.requests, metadata_all)

        def idle() -> None:
            time.sleep(5)
        measure("idle_5s", 5, idle, unit="second")
        group.close()
    finally:
        tansu.terminate()
        try:
            tansu.wait(20)
        except subprocess.TimeoutExpired:
            tansu.kill()
        shutil.rmtree(state, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps({
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "bench": "bench/broker_cost.py",
            "command": " ".join(["bench/broker_cost.py", *sys.argv[1:]]), "machine": machine(),
            "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
