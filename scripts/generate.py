"""streamhost's own event generator: the brief's event shape and faults, with knobs.

Like the brief's generator: `device_type` appears after --schema-change-after seconds,
~5 % of user ids are negative, countries include XX and ~5 % are ZZ. Unlike it: a
seed, a fixed total, no one-second stalls, a summary on exit, and confluent-kafka.

    python scripts/generate.py --rps 50 --duration 60

With --history (e.g. 72h), it first sends that much past traffic at --history-rps,
its timestamps walking forward in order from now minus the history to now; then it
goes live. Both follow a daily profile (tools/streamhost_kit/traffic.py):
each country busiest at 16:00 its local time, countries and days of different sizes,
a few very active users and pages among many quiet ones, --rps the mean rate; the
faults are the same. The schema change comes --schema-change-after seconds of event
time after the first event. A topic that already holds records gets no history (a
restarted generator would send events older than the windows the host has closed:
late, in the DLQ).
"""
from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from datetime import datetime, timezone

from confluent_kafka import Consumer, Producer, TopicPartition

from streamhost_kit.events import generated_event, payload
from streamhost_kit.traffic import Profile, parse_duration


def on_sigterm(*_) -> None:
    """`docker stop` sends SIGTERM, which a PID 1 without a handler ignores: stop like ^C."""
    raise KeyboardInterrupt


def records_in(brokers: str, topic: str) -> int:
    """How many records the topic holds (0 when it has none, or no partitions yet)."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "streamhost-generate-probe",
                  "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in meta.partitions)
    finally:
        c.close()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--topic", default="my_events")
    p.add_argument("--rps", type=float, default=20, help="events per second (with --history: the mean over a weekday)")
    p.add_argument("--duration", type=float, default=60, help="seconds to run live (0: until stopped)")
    p.add_argument("--history", default="0",
                   help="past traffic to send first, in event-time order: 72h, 3d, 90m, or seconds (0: none)")
    p.add_argument("--history-rps", type=float, default=2000,
                   help="events per second while sending the history (0: as fast as the broker takes them; "
                        "a burst of that size can make a busy broker answer heartbeats late, "
                        "see docs/issues.md)")
    p.add_argument("--schema-change-after", type=float, default=30, help="seconds before device_type appears")
    p.add_argument("--bad-rate", type=float, default=0.05, help="share of negative user ids, and of ZZ countries")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()

    signal.signal(signal.SIGTERM, on_sigterm)
    duration = args.duration if args.duration > 0 else float("inf")
    history = parse_duration(args.history)
    rng = random.Random(args.seed)
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True, "linger.ms": 20})
    sent = 0

    def send(e: dict) -> None:
        nonlocal sent
        value = payload(e)
        while True:
            try:
                producer.produce(args.topic, value)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
        sent += 1

    start = time.time()
    try:
        if history > 0:
            live(args, rng, send, duration, history, producer)
        else:
            interval = 1.0 / max(args.rps, 1e-6)
            while (elapsed := time.time() - start) < duration:
                send(generated_event(rng, int(time.time()), elapsed > args.schema_change_after, args.bad_rate))
                # Pace against the schedule, not the last send, so the rate does not drift.
                delay = start + sent * interval - time.time()
                if delay > 0:
                    time.sleep(delay)
    except KeyboardInterrupt:
        print("stopped by user", file=sys.stderr)
    undelivered = producer.flush(30)
    print(f"Sent {sent - undelivered} events to topic {args.topic} in {time.time() - start:.0f} seconds.")
    return 1 if undelivered else 0


def live(args, rng: random.Random, send, duration: float, history: float, producer) -> None:
    """The history (unless the topic holds records), then live traffic, both from the profile."""
    profile = Profile(args.rps, args.seed)
    end = time.time()
    t = first = end - history

    def event_at(t: float, country: str) -> dict:
        return generated_event(rng, int(t), t - first > args.schema_change_after, args.bad_rate,
                               country=country, user_id=profile.user(rng, country), page_url=profile.page(rng))

    held = records_in(args.brokers, args.topic)
    if held:
        print(f"history: skipped, {args.topic} already holds {held} records", flush=True)
        t = first = end
    else:
        began, n = time.time(), 0
        while True:
            t, country = profile.next_event(rng, t)
            if t >= end:
                break
            send(event_at(t, country))
            n += 1
            if args.history_rps > 0:
                delay = began + n / args.history_rps - time.time()
                if delay > 0:
                    time.sleep(delay)
        undelivered = producer.flush(120)
        print(f"history: {n - undelivered} events from {iso(first)} to {iso(end)}, sent in "
              f"{time.time() - began:.0f} s; live from now on", flush=True)
    live_start = time.time()
    while True:
        t, country = profile.next_event(rng, t)
        if t - live_start >= duration:
            return
        delay = t - time.time()
        if delay > 0:
            time.sleep(delay)
        send(event_at(t, country))


if __name__ == "__main__":
    sys.exit(main())
