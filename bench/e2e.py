"""End-to-end benchmark, run by bench/e2e: see that script and docs/benchmarks.md.

One private Tansu broker, one backlog of N events in `my_events`, then each contender in
turn reads the whole backlog with its own consumer group into its own fresh topics:

* passthrough  host/examples/passthrough.rs: consume → produce unchanged, no work
               (the ceiling of this broker and machine);
* streamhost   the release host with the real plugins (10-enrich.wasm, 20-quality.wasm)
               and the window stage;
* quix         bench/quix/app.py: the same job in Quix Streams.

Optional (--contenders): passthrough-2hop (my_events → mid → out in one process: the
ceiling of the full pipeline, which reads its output back),
streamhost-validate (no window stage), passthrough-seq and streamhost-seq (one batch in
flight: wait for its acknowledgements before reading the next; the default is 4).

A contender is done when its consumer group's committed offsets on the input reach the
end (passthrough, streamhost: both commit after every acknowledged batch) or, for Quix
(which commits every 5 s), when its enriched + dlq outputs hold N records; whichever
comes first. events/s = N / (done - process start). Peak RSS is the process's VmHWM.

With --count-requests the contenders reach the broker through bench/count_proxy.py, which
counts every request by client.id and Kafka API; each contender's requests per 1,000
events by API (and by client) go into its result, with the broker's CPU seconds.

Then: streamhost again with a plugin swap at 40 % of the backlog (p50/p99 batch latency
before, during, after, from the host's per-batch debug log), and streamhost on a
second backlog with 200 countries (allow-list widened by a manifest) for memory with
200 × the open windows.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import socket
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streamhost_kit.events import GENERATOR_COUNTRIES, generated_event, payload
from streamhost_kit.stack import ROOT, free_port, metric, port_open, proc_status
from streamhost_kit.util import log, machine

PARTITIONS = 3
COUNTRIES = GENERATOR_COUNTRIES
RUN_TAG = time.strftime("%H%M%S")

_children: list[subprocess.Popen] = []


def stop(proc: subprocess.Popen, name: str, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop in {timeout:.0f} s: killing it")
        proc.kill()
        proc.wait()


def stop_all() -> None:
    for proc in reversed(_children):
        stop(proc, f"pid {proc.pid}")


def spawn(cmd: list[str], logfile: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    out = open(logfile, "ab")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True)
    _children.append(proc)
    return proc


def uptime() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------------------- the broker

def start_tansu(args) -> subprocess.Popen:
    state = args.state / "tansu"
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    if port_open(args.port):
        sys.exit(f"port {args.port} is taken: another broker runs there")
    url = f"tcp://127.0.0.1:{args.port}"
    proc = spawn([args.tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                  "--storage-engine", args.storage], state / "tansu.log", cwd=state)
    deadline = time.time() + 30
    while not port_open(args.port):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"Tansu did not start; see {state / 'tansu.log'}")
        time.sleep(0.2)
    log(f"Tansu on 127.0.0.1:{args.port} (pid {proc.pid}, storage {args.storage}, state {state})")
    return proc


def start_count_proxy(args) -> subprocess.Popen:
    """bench/count_proxy.py in front of the broker: the contenders' address (args.client_brokers)."""
    listen, ctl = free_port(), free_port()
    proc = spawn([sys.executable, str(ROOT / "bench/count_proxy.py"), str(listen), str(args.port), str(ctl)],
                 args.state / f"count-proxy-{RUN_TAG}.log")
    deadline = time.time() + 10
    while not (port_open(listen) and port_open(ctl)):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"the counting proxy did not start; see {args.state}")
        time.sleep(0.1)
    args.client_brokers = f"127.0.0.1:{listen}"
    args.count_control = ctl
    args.count_pid = proc.pid
    log(f"counting proxy on {args.client_brokers} (pid {proc.pid}, counters on {ctl})")
    return proc


def count_snapshot(args) -> dict | None:
    """The proxy's counters: {(client_id, api): [requests, request bytes, response bytes, small fetches]}."""
    if not getattr(args, "count_control", None):
        return None
    with socket.create_connection(("127.0.0.1", args.count_control), timeout=10) as s:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    doc = json.loads(data)
    out = {(r["client_id"], r["api"]): [r["requests"], r["request_bytes"], r["response_bytes"], r["small_fetches"],
                                        r["answer_seconds"]]
           for r in doc["requests"]}
    return {"by": out, "connections": doc["connections"]}


def count_delta(before: dict, after: dict, events: int) -> dict:
    """What a contender sent between two snapshots, per API and per client, with per 1,000 events."""
    by_api: dict[str, list[int]] = {}
    by_client: dict[str, dict[str, int]] = {}
    for key, v in after["by"].items():
        b = before["by"].get(key, [0, 0, 0, 0, 0.0])
        d = [x - y for x, y in zip(v, b)]
        if not d[0]:
            continue
        client, api = key
        acc = by_api.setdefault(api, [0, 0, 0, 0, 0.0])
        for i in range(5):
            acc[i] += d[i]
        by_client.setdefault(client, {})[api] = d[0]
    k = 1000 / max(events, 1)
    apis = {api: {"requests": v[0], "per_1k_events": v[0] * k, "request_bytes": v[1], "response_bytes": v[2],
                  "answer_seconds": v[4], "answer_ms_mean": v[4] * 1000 / v[0],
                  **({"small_fetches": v[3]} if api == "Fetch" else {})}
            for api, v in sorted(by_api.items(), key=lambda kv: -kv[1][0])}
    conns = {c: n - before["connections"].get(c, 0) for c, n in after["connections"].items()
             if n - before["connections"].get(c, 0)}
    return {"total_requests": sum(v[0] for v in by_api.values()),
            "total_per_1k_events": sum(v[0] for v in by_api.values()) * k,
            "bytes_per_event": sum(v[1] + v[2] for v in by_api.values()) / max(events, 1),
            "by_api": apis, "by_client": by_client, "connections": conns}


def record_sizes(args, topic: str, limit: int = 2000) -> dict:
    """Mean key, value and header bytes of up to `limit` records of `topic` (read directly)."""
    c = Consumer({"bootstrap.servers": args.brokers, "group.id": f"bench-sizes-{RUN_TAG}",
                  "enable.auto.commit": False})
    keys = values = headers = n = 0
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        deadline = time.time() + 10
        while n < limit and time.time() < deadline:
            for m in c.consume(500, timeout=1.0):
                if m.error():
                    continue
                n += 1
                keys += len(m.key() or b"")
                values += len(m.value() or b"")
                headers += sum(len(h) + len(v or b"") for h, v in (m.headers() or []))
    finally:
        c.close()
    return {"records": n, "key_bytes": keys / max(n, 1), "value_bytes": values / max(n, 1),
            "header_bytes": headers / max(n, 1)}


def create_topics(args, topics: list[str], config: list[str] = ()) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts/lib/topics.py"), "--brokers", args.brokers,
                    "--partitions", str(PARTITIONS), *(f"--config={c}" for c in config), *topics],
                   check=True)


class Probe:
    """Watermarks and committed offsets, read with a consumer that never joins a group."""

    def __init__(self, brokers: str):
        self.brokers = brokers
        self.meta = Consumer({"bootstrap.servers": brokers, "group.id": "bench-probe"})
        self.groups: dict[str, Consumer] = {}

    def end(self, topic: str) -> int:
        return sum(self.meta.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(PARTITIONS))

    def committed(self, group: str, topic: str) -> int:
        if group not in self.groups:
            self.groups[group] = Consumer({"bootstrap.servers": self.brokers, "group.id": group,
                                           "enable.auto.commit": False})
        tps = self.groups[group].committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                           timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)

    def close(self) -> None:
        for c in [self.meta, *self.groups.values()]:
            c.close()


# ---------------------------------------------------------------------------- the backlog

def event(rng: random.Random, ts: int, new_schema: bool, countries: list[str]) -> bytes:
    """The brief's generator's event (as scripts/generate.py makes it): 5 % negative ids, XX among the countries, 5 % ZZ."""
    return payload(generated_event(rng, ts, new_schema, 0.05, countries))


def load(args, topic: str, n: int, countries: list[str], seed: int) -> dict:
    """N events, event times in order at args.rate per second ending an hour ago."""
    rng = random.Random(seed)
    producer = Producer({"bootstrap.servers": args.brokers, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 20, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 200000})
    base = int(time.time()) - 3600 - n // args.rate
    failed: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failed.append(str(err))

    started = time.time()
    for i in range(n):
        second = i // args.rate
        payload = event(rng, base + second, second >= 30, countries)
        while True:
            try:
                producer.produce(topic, payload, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 5000 == 0:
            producer.poll(0)
        if i and i % 200_000 == 0:
            log(f"  {topic}: {i} queued ({i / (time.time() - started):.0f}/s)")
    left = producer.flush(300)
    took = time.time() - started
    if left or failed:
        sys.exit(f"{left} events not acknowledged by the broker, {len(failed)} refused"
                 + (f" (first: {failed[0]})" if failed else ""))
    return {"events": n, "seconds": took, "rate": n / took}


def warm_up(args, topic: str, n: int) -> float:
    """Read the whole backlog once and throw it away. The first reader after a large
    load was measured paying for something in Tansu's store (surprise 2 in
    docs/benchmarks.md); this makes it nobody's figure."""
    started = time.time()
    c = Consumer({"bootstrap.servers": args.brokers, "group.id": f"bench-warm-up-{RUN_TAG}",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        seen = 0
        while seen < n and time.time() - started < 600:
            seen += len(c.consume(10000, timeout=1.0))
    finally:
        c.close()
    took = time.time() - started
    log(f"warm-up: read {seen:,} of {n:,} records of {topic} in {took:.1f} s")
    return took


# ---------------------------------------------------------------------------- contenders

def write_plugins(dest: Path, allowed: list[str] | None = None) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    dist = ROOT / "plugins/dist"
    shutil.copy(dist / "enrich.wasm", dest / "10-enrich.wasm")
    shutil.copy(dist / "quality.wasm", dest / "20-quality.wasm")
    if allowed:
        (dest / "20-quality.toml").write_text(f'[settings]\nallowed_countries = "{",".join(allowed)}"\n')


def streamhost_cmd(args, name: str, topic: str, plugins: Path, admin_port: int):
    env = dict(os.environ)
    env.update({
        "STREAMHOST_KAFKA__BROKERS": args.client_brokers,
        "STREAMHOST_KAFKA__GROUP_ID": f"{name}-{RUN_TAG}",
        "STREAMHOST_KAFKA__WINDOW_GROUP_ID": f"{name}-windows-{RUN_TAG}",
        "STREAMHOST_KAFKA__INPUT_TOPIC": topic,
        "STREAMHOST_KAFKA__ENRICHED_TOPIC": f"{name}_enriched",
        "STREAMHOST_KAFKA__DLQ_TOPIC": f"{name}_dlq",
        "STREAMHOST_KAFKA__AVERAGES_TOPIC": f"{name}_averages",
        "STREAMHOST_PLUGINS__DIR": str(plugins),
        "STREAMHOST_ADMIN__LISTEN": f"127.0.0.1:{admin_port}",
        "STREAMHOST_LOG_FORMAT": "json",
        # One debug line per validated batch, with its latency (hot-swap percentiles).
        "RUST_LOG": "info,streamhost::stages::runtime=debug",
    })
    return [args.host_bin, "run"], env


def scrape(port: int) -> str:
    """The host's /metrics ("" if it does not answer); read with stack.metric."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return ""


def run_contender(args, probe: Probe, name: str, cmd: list[str], env: dict, group: str, topic: str,
                  n: int, outputs: list[str], admin_port: int | None = None, on_progress=None) -> dict:
    """Start, wait until N inputs are accounted for, sample memory, stop."""
    logfile = args.state / f"{name}-{RUN_TAG}-{len(_children)}.log"
    logfile.unlink(missing_ok=True)
    tansu_cpu0 = proc_status(args.tansu_pid).get("cpu", 0.0)
    counts0 = count_snapshot(args)
    proxy_cpu0 = proc_status(args.count_pid).get("cpu", 0.0) if counts0 else 0.0
    load_before = uptime()
    log(f"{name}: start ({' '.join(cmd)}), load {load_before}")
    t0 = time.time()
    proc = spawn(cmd, logfile, env=env)
    peak_rss = 0
    max_open_windows = 0.0
    done_at = None
    done_by = ""
    committed = 0
    first_at, first_out = None, 0
    io_outputs = [t for t in outputs if not t.endswith("_averages")]
    last_log = t0
    status: dict = {}
    while True:
        time.sleep(args.poll)
        if proc.poll() is not None:
            sys.exit(f"{name} exited early with {proc.returncode}; see {logfile}")
        status = proc_status(proc.pid) or status
        peak_rss = max(peak_rss, status.get("VmRSS", 0))
        if admin_port:
            max_open_windows = max(max_open_windows, metric(scrape(admin_port), "streamhost_open_windows"))
        now = time.time()
        try:
            committed = probe.committed(group, topic)
            if on_progress:
                on_progress(committed)
            if first_at is None:
                out = sum(probe.end(t) for t in io_outputs)
                if out:
                    first_at, first_out = now, out
            if committed >= n:
                done_at, done_by = now, "committed"
                break
            if name.startswith("quix") and sum(probe.end(t) for t in io_outputs) >= n:
                done_at, done_by = now, "outputs"
                break
        except KafkaException as e:
            # The broker paused or overloaded: the contender's progress is read next time.
            log(f"  {name}: the broker did not answer the progress probe ({e.args[0].str()})")
        if now - last_log > 15:
            log(f"  {name}: {committed}/{n} committed after {now - t0:.0f} s")
            last_log = now
        if now - t0 > args.timeout:
            log(f"{name}: timeout after {args.timeout} s with {committed}/{n}")
            break
    wall = (done_at or time.time()) - t0
    status = proc_status(proc.pid) or status
    metrics = scrape(admin_port) if admin_port else ""
    # Let the window stage / Quix settle a little before reading the outputs, then stop.
    stop(proc, name)
    tansu_cpu = proc_status(args.tansu_pid).get("cpu", 0.0) - tansu_cpu0
    counts = None
    if counts0:
        # After the stop: the contender's last commits and its leaving the group count too.
        counts = count_delta(counts0, count_snapshot(args), n if done_at else max(committed, 1))
        counts["proxy_cpu"] = proc_status(args.count_pid).get("cpu", 0.0) - proxy_cpu0
    out_counts = {t: probe.end(t) for t in outputs}
    result = {
        "name": name,
        "events": n if done_at else committed,
        "complete": done_at is not None,
        "done_by": done_by,
        "wall": wall,
        "rate": (n if done_at else committed) / wall,
        # From the first output seen to done: without start-up (group join, plugin compile).
        "startup": (first_at - t0) if first_at else None,
        "rate_steady": ((n - first_out) / (done_at - first_at)) if done_at and first_at and done_at > first_at
        else None,
        "vmhwm_mib": status.get("VmHWM", peak_rss) / 1024,
        "rss_end_mib": status.get("VmRSS", 0) / 1024,
        "cpu": status.get("cpu", 0.0),
        "tansu_cpu": tansu_cpu,
        "load_before": load_before,
        "load_after": uptime(),
        "outputs": out_counts,
        "open_windows_max": max_open_windows,
        "late_events": metric(metrics, "streamhost_late_events_total") if metrics else None,
        "log": str(logfile),
    }
    if counts:
        result["requests"] = counts
        result["record_sizes"] = {t: record_sizes(args, t) for t in outputs if not t.endswith("_averages")}
    log(f"{name}: {result['events']} events in {wall:.1f} s = {result['rate']:.0f}/s, "
        f"VmHWM {result['vmhwm_mib']:.0f} MiB, cpu {result['cpu']:.1f} s, outputs {out_counts}")
    return result


# ---------------------------------------------------------------------------- hot swap

def with_custom_section(wasm: bytes, note: str) -> bytes:
    """The same component with one more custom section: new bytes, same behaviour."""
    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    name = b"streamhost-bench"
    body = leb(len(name)) + name + note.encode()
    return wasm + b"\x00" + leb(len(body)) + body


def batch_latencies(logfile: Path) -> tuple[list[tuple[float, float]], list[tuple[float, int]]]:
    """(end time, seconds) per batch, and (time, swap_ms) per installed swap, from the JSON log."""
    batches, swaps = [], []
    for line in logfile.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        fields = rec.get("fields", {})
        ts = rec.get("timestamp")
        if not ts:
            continue
        t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        if fields.get("message") == "batch committed" and fields.get("stage") == "validate" and "seconds" in fields:
            batches.append((t, float(fields["seconds"])))
        elif fields.get("message") == "plugin chain swapped":
            swaps.append((t, int(fields.get("swap_ms", 0))))
    return batches, swaps


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(q * len(s) + 0.5)) - 1))]


def swap_phases(batches, t_swap: float, t_installed: float, span: float) -> list[dict]:
    phases = [
        ("before", t_swap - span, t_swap),
        ("during (file renamed → new chain + 1 s)", t_swap, t_installed + 1.0),
        ("after", t_installed + 1.0, t_installed + 1.0 + span),
    ]
    out = []
    for label, a, b in phases:
        vals = [s for t, s in batches if a <= t < b]
        out.append({"phase": label, "seconds": b - a, "batches": len(vals),
                    "p50_ms": percentile(vals, 0.50) * 1000, "p99_ms": percentile(vals, 0.99) * 1000,
                    "max_ms": max(vals) * 1000 if vals else float("nan")})
    return out


# ---------------------------------------------------------------------------- report

def report(args, loadinfo, results, swap, c200, cmdline) -> str:
    by = {(r["round"], r["name"]): r for r in results}
    lines = [
        f"### Run of {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, N = {args.events:,} events",
        "",
        f"Command: `{cmdline}`",
        "",
        f"Backlog: {loadinfo['events']:,} events loaded into `my_events` ({PARTITIONS} partitions) in "
        f"{loadinfo['seconds']:.1f} s ({loadinfo['rate']:,.0f} events/s, Python producer, acks=all)"
        + (f", then read once and thrown away in {loadinfo['warm_up_seconds']:.1f} s (warm-up)."
           if "warm_up_seconds" in loadinfo else "."),
        "",
        "| contender | events | wall s | events/s | × passthrough | streamhost × this "
        "| first output after s | events/s after it | × passthrough | peak RSS (VmHWM) MiB "
        "| CPU s (process) | CPU µs/event | CPU s (Tansu) | load before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rounds = sorted({r["round"] for r in results})
    for r in results:
        pt = by.get((r["round"], "passthrough"))
        sh = by.get((r["round"], "streamhost"))
        # As in `ratios` below: a contender that timed out is compared with nothing.
        vs_pt = f"{r['rate'] / pt['rate']:.2f}" if pt and pt["complete"] and r["complete"] else "–"
        sh_vs = f"{sh['rate'] / r['rate']:.2f}" if sh and sh["complete"] and r["complete"] else "–"
        flag = "" if r["complete"] else " (timeout: partial)"
        steady = r.get("rate_steady")
        pt_steady = pt.get("rate_steady") if pt else None
        steady_txt = f"{steady:,.0f}" if steady else "–"
        steady_vs = f"{steady / pt_steady:.2f}" if steady and pt_steady else "–"
        startup = f"{r['startup']:.1f}" if r.get("startup") is not None else "–"
        name = r["name"] if len(rounds) == 1 else f"{r['name']} (round {r['round']})"
        lines.append(
            f"| {name}{flag} | {r['events']:,} | {r['wall']:.1f} | {r['rate']:,.0f} | {vs_pt} | {sh_vs} "
            f"| {startup} | {steady_txt} | {steady_vs} "
            f"| {r['vmhwm_mib']:.0f} | {r['cpu']:.1f} | {r['cpu'] * 1e6 / max(r['events'], 1):.1f} "
            f"| {r['tansu_cpu']:.1f} "
            f"| {r['load_before']} → {r['load_after']} |")
    lines.append("")

    def ratios(a: str, b: str, key: str = "rate") -> list[float]:
        # A contender that timed out has a rate, but not one to compare with.
        return [by[(n, a)][key] / by[(n, b)][key] for n in rounds
                if (n, a) in by and (n, b) in by and by[(n, a)].get(key) and by[(n, b)].get(key)
                and by[(n, a)]["complete"] and by[(n, b)]["complete"]]

    def show(values: list[float], digits: int) -> str:
        each = ", ".join(f"{v:.{digits}f}" for v in values)
        return f"**{statistics.median(values):.{digits}f}**" + (f" (rounds: {each})" if len(values) > 1 else "")

    for a, b, label, target, digits in [
        ("streamhost", "passthrough-2hop", "streamhost / two-hop passthrough (the full pipeline's ceiling)", 0.85, 2),
        ("streamhost", "passthrough", "streamhost / passthrough (one hop)", None, 2),
        ("streamhost-validate", "passthrough", "streamhost without the window stage / passthrough", None, 2),
        ("streamhost-seq", "passthrough-seq", "one batch in flight: streamhost-seq / passthrough-seq", None, 2),
        ("streamhost", "streamhost-seq", "pipelined produce: streamhost / streamhost-seq", None, 2),
        ("passthrough", "passthrough-seq", "pipelined produce: passthrough / passthrough-seq", None, 2),
        ("streamhost", "quix", "streamhost / Quix Streams", None, 2),
        ("streamhost-validate", "quix", "streamhost without the window stage / Quix Streams", None, 1),
    ]:
        values = ratios(a, b)
        if not values:
            continue
        verdict = ""
        if target is not None:
            met = statistics.median(values) >= target
            verdict = f" (target ≥ {target}: {'met' if met else 'not met'})"
        lines.append(f"* {label} = {show(values, digits)}{verdict}; after the first output: "
                     f"{show(ratios(a, b, 'rate_steady'), digits) if ratios(a, b, 'rate_steady') else '–'}")
    cpu = [by[(n, "streamhost")]["cpu"] / by[(n, "quix")]["cpu"] for n in rounds
           if (n, "quix") in by and (n, "streamhost") in by]
    if cpu:
        met = "met" if statistics.median(cpu) <= 0.25 else "not met"
        lines.append(f"* CPU per event, streamhost / Quix Streams = {show(cpu, 2)} (target ≤ 0.25: {met})")
    for r in results:
        outs = ", ".join(f"{t} {c:,}" for t, c in r["outputs"].items())
        extra = ""
        if r.get("late_events") is not None:
            extra = f"; open windows (max) {r['open_windows_max']:.0f}, late events {r['late_events']:.0f}"
        lines.append(f"* {r['name']} (round {r['round']}): done by {r['done_by'] or '–'}; outputs after stop: {outs}{extra}")
    counted = [r for r in results if r.get("requests")]
    if counted:
        apis: list[str] = []
        for r in counted:
            apis += [a for a in r["requests"]["by_api"] if a not in apis]
        names = [r["name"] if len(rounds) == 1 else f"{r['name']} (round {r['round']})" for r in counted]
        lines += ["", "Requests to the broker per 1,000 events, by Kafka API (bench/count_proxy.py; "
                      "from the contender's start to its stop):", "",
                  "| API | " + " | ".join(names) + " |", "|---|" + "---:|" * len(counted)]
        for a in apis:
            lines.append(f"| {a} | " + " | ".join(
                f"{r['requests']['by_api'][a]['per_1k_events']:.2f}" if a in r["requests"]["by_api"] else "–"
                for r in counted) + " |")
        lines.append("| **all** | " + " | ".join(f"**{r['requests']['total_per_1k_events']:.2f}**"
                                                  for r in counted) + " |")
        lines.append("| bytes to and from the broker per event | " + " | ".join(
            f"{r['requests']['bytes_per_event']:.0f}" for r in counted) + " |")
        lines.append("| Tansu CPU µs per event | " + " | ".join(
            f"{r['tansu_cpu'] * 1e6 / max(r['events'], 1):.1f}" for r in counted) + " |")
        lines.append(f"| Fetch answers of ≤ {256} bytes (empty or next to it) per 1,000 events | " + " | ".join(
            f"{r['requests']['by_api'].get('Fetch', {}).get('small_fetches', 0) * 1000 / max(r['events'], 1):.2f}"
            for r in counted) + " |")
        for a in ("Produce", "OffsetCommit", "Fetch", "Metadata"):
            lines.append(f"| {a}: mean broker answer ms | " + " | ".join(
                f"{r['requests']['by_api'][a]['answer_ms_mean']:.1f}" if a in r["requests"]["by_api"] else "–"
                for r in counted) + " |")
            lines.append(f"| {a}: bytes per event (request + response) | " + " | ".join(
                f"{(r['requests']['by_api'][a]['request_bytes'] + r['requests']['by_api'][a]['response_bytes']) / max(r['events'], 1):.0f}"
                if a in r["requests"]["by_api"] else "–" for r in counted) + " |")
        lines.append("| wall s | " + " | ".join(f"{r['wall']:.1f}" for r in counted) + " |")
        lines.append("| proxy CPU s | " + " | ".join(f"{r['requests']['proxy_cpu']:.1f}" for r in counted) + " |")
        for r, name in zip(counted, names):
            per = ", ".join(f"{c or '(none)'}: " + " ".join(f"{a} {n}" for a, n in sorted(v.items(), key=lambda kv: -kv[1]))
                            for c, v in r["requests"]["by_client"].items())
            lines.append(f"* {name}, requests by client.id: {per}")
            sizes = "; ".join(f"{t}: key {z['key_bytes']:.0f} B, value {z['value_bytes']:.0f} B, headers {z['header_bytes']:.0f} B"
                              for t, z in r.get("record_sizes", {}).items())
            lines.append(f"* {name}, mean record sizes of its outputs (first {2000:,} records): {sizes}")
    if swap:
        lines += ["", f"Hot swap under load: `20-quality.wasm` replaced (checked first with `streamhost plugin check`, then an atomic rename; new bytes) after "
                      f"{swap['at']:,} of {args.events:,} events; new chain serving after "
                      f"{swap['swap_ms']} ms (host's own measure, file event → installed). Batch latency "
                      f"(poll → produce → all acks → commit, batches of ≤ 1024), from the host's per-batch log:",
                  "", "| phase | s | batches | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
        for p in swap["phases"]:
            lines.append(f"| {p['phase']} | {p['seconds']:.1f} | {p['batches']} | {p['p50_ms']:.1f} "
                         f"| {p['p99_ms']:.1f} | {p['max_ms']:.1f} |")
        r = swap["result"]
        lines.append(f"\nThat run as a whole: {r['rate']:,.0f} events/s, VmHWM {r['vmhwm_mib']:.0f} MiB.")
    if c200:
        r = c200["result"]
        lines += ["", f"200 countries: {c200['events']:,} events over 200 country codes (allow-list widened "
                      f"with `20-quality.toml`), loaded in {c200['load']['seconds']:.1f} s: streamhost "
                      f"{r['rate']:,.0f} events/s, peak RSS (VmHWM) **{r['vmhwm_mib']:.0f} MiB**, open windows "
                      f"(max of the gauge) **{r['open_windows_max']:.0f}**, late events {r['late_events'] or 0:.0f}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--rate", type=int, default=1000, help="event-time events per second in the backlog")
    p.add_argument("--contenders", default="passthrough,passthrough-2hop,streamhost,quix")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the contenders this many times (every other round in reverse order)")
    p.add_argument("--no-swap", action="store_true", help="skip the hot-swap run")
    p.add_argument("--no-warm-up", action="store_true",
                   help="let the first contender be the first reader of the backlog")
    p.add_argument("--swap-span", type=float, default=10.0, help="seconds of the before and after phases")
    p.add_argument("--countries-events", type=int, default=200_000,
                   help="events of the 200-country memory run (0: skip)")
    p.add_argument("--port", type=int, default=19192)
    p.add_argument("--storage", default="sqlite://tansu.db",
                   help="Tansu's storage engine: sqlite://tansu.db, or memory://tansu/ for the broker's ceiling")
    p.add_argument("--state", type=Path, default=ROOT / ".state-bench")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per contender (default: 120 + 1 per 1,000 events)")
    p.add_argument("--poll", type=float, default=0.5)
    p.add_argument("--count-requests", action="store_true",
                   help="put the contenders behind bench/count_proxy.py and count their requests by API")
    p.add_argument("--out", type=Path, default=None, help="also write the report here (a .json path: the figures as JSON, with the report)")
    args = p.parse_args()
    if args.timeout is None:
        args.timeout = 120 + args.events / 1000
    args.brokers = f"127.0.0.1:{args.port}"
    # The contenders' address: the broker's, or the counting proxy's (--count-requests).
    args.client_brokers, args.count_control, args.count_pid = args.brokers, None, None
    args.tansu = os.environ["BENCH_TANSU_BIN"]
    args.host_bin = os.environ["BENCH_HOST_BIN"]
    args.passthrough_bin = os.environ["BENCH_PASSTHROUGH_BIN"]
    args.state.mkdir(parents=True, exist_ok=True)
    cmdline = os.environ.get("BENCH_CMDLINE", " ".join(sys.argv))

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    contenders = [c for c in args.contenders.split(",") if c]

    tansu = start_tansu(args)
    args.tansu_pid = tansu.pid
    if args.count_requests:
        start_count_proxy(args)
    # Tansu 0.6 describes a topic's config with only what was set at creation, and Quix
    # Streams needs the retention.ms of a windowed input (for its changelog topic).
    sfxs = [""] + [f"_r{r}" for r in range(2, args.rounds + 1)]
    create_topics(args, [f"quix_enriched{x}" for x in sfxs], config=["retention.ms=-1"])
    topics = ["my_events"]
    for x in sfxs:
        topics += [f"passthrough_out{x}", f"passthrough_seq_out{x}",
                   f"passthrough_2hop_mid{x}", f"passthrough_2hop_out{x}",
                   f"quix_dlq{x}", f"quix_averages{x}"]
        for name in ("streamhost", "validate", "seq"):
            topics += [f"{name}{x}_enriched", f"{name}{x}_dlq", f"{name}{x}_averages"]
    for name in ("swap", "c200"):
        topics += [f"{name}_enriched", f"{name}_dlq", f"{name}_averages"]
    if args.countries_events:
        topics.append("my_events_c200")
    create_topics(args, topics)
    probe = Probe(args.brokers)

    log(f"loading {args.events:,} events into my_events")
    loadinfo = load(args, "my_events", args.events, COUNTRIES, seed=7)
    log(f"loaded in {loadinfo['seconds']:.1f} s ({loadinfo['rate']:.0f}/s); end offsets {probe.end('my_events')}")
    if probe.end("my_events") != args.events:
        sys.exit(f"my_events holds {probe.end('my_events')} records, expected {args.events}")

    if not args.no_warm_up:
        loadinfo["warm_up_seconds"] = warm_up(args, "my_events", args.events)

    results = []
    for rnd in range(1, args.rounds + 1):
        # Every other round in reverse order, so a drift in the machine's load does not
        # always hit the same contender.
        order = contenders if rnd % 2 else contenders[::-1]
        sfx = "" if rnd == 1 else f"_r{rnd}"
        for c in order:
            tag = f"{RUN_TAG}-r{rnd}"
            if c == "passthrough-2hop":
                # my_events → mid → out in one process (two consumer groups): done when
                # the second hop has committed all of mid.
                group = f"{c}-{tag}"
                mid, out = f"passthrough_2hop_mid{sfx}", f"passthrough_2hop_out{sfx}"
                cmd = [args.passthrough_bin, "--brokers", args.client_brokers, "--input", "my_events",
                       "--output", mid, "--then-to", out, "--group", group]
                r = run_contender(args, probe, c, cmd, dict(os.environ), f"{group}-2", mid,
                                  args.events, [mid, out])
            elif c in ("passthrough", "passthrough-seq"):
                # passthrough-seq: one batch in flight (wait for its acks before the next).
                group = f"{c}-{tag}"
                out = f"{c.replace('-', '_')}_out{sfx}"
                cmd = [args.passthrough_bin, "--brokers", args.client_brokers, "--input", "my_events",
                       "--output", out, "--group", group]
                if c == "passthrough-seq":
                    cmd += ["--in-flight", "1"]
                r = run_contender(args, probe, c, cmd, dict(os.environ), group, "my_events",
                                  args.events, [out])
            elif c in ("streamhost", "streamhost-validate", "streamhost-seq"):
                # streamhost-validate: the validate stage only (windows.enabled = false).
                # streamhost-seq: one batch in flight (pipeline.in_flight_batches = 1).
                prefix = {"streamhost": "streamhost", "streamhost-validate": "validate",
                          "streamhost-seq": "seq"}[c] + sfx
                plugins = args.state / f"plugins-{prefix}"
                write_plugins(plugins)
                port = free_port()
                cmd, env = streamhost_cmd(args, prefix, "my_events", plugins, port)
                if c == "streamhost-validate":
                    env["STREAMHOST_WINDOWS__ENABLED"] = "false"
                if c == "streamhost-seq":
                    env["STREAMHOST_PIPELINE__IN_FLIGHT_BATCHES"] = "1"
                r = run_contender(args, probe, c, cmd, env, env["STREAMHOST_KAFKA__GROUP_ID"],
                                  "my_events", args.events,
                                  [f"{prefix}_enriched", f"{prefix}_dlq", f"{prefix}_averages"], port)
            elif c == "quix":
                group = f"quix-{tag}"
                state = args.state / "quix-state"
                shutil.rmtree(state, ignore_errors=True)
                env = dict(os.environ, QUIX_BROKERS=args.client_brokers, QUIX_GROUP=group, QUIX_INPUT="my_events",
                           QUIX_ENRICHED=f"quix_enriched{sfx}", QUIX_DLQ=f"quix_dlq{sfx}",
                           QUIX_AVERAGES=f"quix_averages{sfx}", QUIX_STATE_DIR=str(state))
                cmd = [sys.executable, str(ROOT / "bench/quix/app.py")]
                r = run_contender(args, probe, c, cmd, env, group, "my_events", args.events,
                                  [f"quix_enriched{sfx}", f"quix_dlq{sfx}", f"quix_averages{sfx}"])
            else:
                sys.exit(f"unknown contender {c}")
            r["round"] = rnd
            results.append(r)

    swap = None
    if not args.no_swap:
        plugins = args.state / "plugins-swap"
        write_plugins(plugins)
        port = free_port()
        cmd, env = streamhost_cmd(args, "swap", "my_events", plugins, port)
        at = int(args.events * 0.4)
        swapped: dict = {}
        # The documented fast deploy: the new file is checked first (`streamhost plugin
        # check`, which compiles it into the cache the host uses), then renamed in place.
        tmp = plugins / ".20-quality.tmp"
        tmp.write_bytes(with_custom_section((ROOT / "plugins/dist/quality.wasm").read_bytes(), RUN_TAG))
        subprocess.run([args.host_bin, "plugin", "check", str(tmp)], env=env, check=True,
                       stdout=subprocess.DEVNULL)

        def maybe_swap(committed: int) -> None:
            if committed >= at and not swapped:
                swapped["t"] = time.time()
                os.rename(tmp, plugins / "20-quality.wasm")
                swapped["at"] = committed
                log(f"  swap: 20-quality.wasm replaced at {committed} committed")

        r = run_contender(args, probe, "streamhost+swap", cmd, env, env["STREAMHOST_KAFKA__GROUP_ID"],
                          "my_events", args.events, ["swap_enriched", "swap_dlq", "swap_averages"], port,
                          on_progress=maybe_swap)
        batches, swaps = batch_latencies(Path(r["log"]))
        installed = [s for s in swaps if s[0] >= swapped.get("t", float("inf")) - 1]
        if swapped and installed:
            t_inst, swap_ms = installed[0]
            swap = {"at": swapped["at"], "swap_ms": swap_ms, "result": r,
                    "phases": swap_phases(batches, swapped["t"], t_inst, args.swap_span)}
        else:
            log(f"swap: no installed swap found in {r['log']} (swapped: {swapped}, swaps: {swaps})")

    c200 = None
    if args.countries_events:
        codes = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXY" for b in "ABCDEFGHIJKLMNOPQRSTUVWXY"]
        codes = [c for c in codes if c not in ("XX", "ZZ")][:200]
        log(f"loading {args.countries_events:,} events over 200 countries into my_events_c200")
        info = load(args, "my_events_c200", args.countries_events, codes, seed=200)
        plugins = args.state / "plugins-c200"
        write_plugins(plugins, allowed=codes)
        port = free_port()
        cmd, env = streamhost_cmd(args, "c200", "my_events_c200", plugins, port)
        r = run_contender(args, probe, "streamhost-200-countries", cmd, env, env["STREAMHOST_KAFKA__GROUP_ID"],
                          "my_events_c200", args.countries_events, ["c200_enriched", "c200_dlq", "c200_averages"],
                          port)
        c200 = {"events": args.countries_events, "load": info, "result": r}

    probe.close()
    text = report(args, loadinfo, results, swap, c200, cmdline)
    print(text)
    data = {"load": loadinfo, "results": results, "swap": swap, "c200": c200}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.suffix == ".json":
            # A result file: the figures as data, with the report a person reads.
            args.out.write_text(json.dumps({
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "bench": "bench/e2e",
                "command": cmdline, "machine": machine(), "report": text, **data}, indent=1))
        else:
            args.out.write_text(text)
        log(f"report written to {args.out}")
    raw = args.state / f"e2e-{RUN_TAG}.json"
    raw.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
