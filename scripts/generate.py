"""streamhost's own event generator: the brief's event shape and faults, with knobs.

Like the brief's generator: `device_type` appears after --schema-change-after seconds,
~5 % of user ids are negative, countries include XX and ~5 % are ZZ. Unlike it: a
seed, a fixed total, no one-second stalls, a summary on exit, and confluent-kafka.

    python scripts/generate.py --rps 50 --duration 60
"""
from __future__ import annotations

import argparse
import random
import signal
import sys
import time

from confluent_kafka import Producer

from streamhost_kit.events import generated_event, payload


def on_sigterm(*_) -> None:
    """`docker stop` sends SIGTERM, which a PID 1 without a handler ignores: stop like ^C."""
    raise KeyboardInterrupt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--topic", default="my_events")
    p.add_argument("--rps", type=int, default=20, help="events per second")
    p.add_argument("--duration", type=float, default=60, help="seconds to run (0: until stopped)")
    p.add_argument("--schema-change-after", type=float, default=30, help="seconds before device_type appears")
    p.add_argument("--bad-rate", type=float, default=0.05, help="share of negative user ids, and of ZZ countries")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()

    signal.signal(signal.SIGTERM, on_sigterm)
    duration = args.duration if args.duration > 0 else float("inf")
    rng = random.Random(args.seed)
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True, "linger.ms": 20})
    start = time.time()
    sent = 0
    interval = 1.0 / max(args.rps, 1)
    try:
        while (elapsed := time.time() - start) < duration:
            now = time.time()
            e = generated_event(rng, int(now), elapsed > args.schema_change_after, args.bad_rate)
            producer.produce(args.topic, payload(e))
            producer.poll(0)
            sent += 1
            # Pace against the schedule, not the last send, so the rate does not drift.
            delay = start + sent * interval - time.time()
            if delay > 0:
                time.sleep(delay)
    except KeyboardInterrupt:
        print("stopped by user", file=sys.stderr)
    undelivered = producer.flush(30)
    print(f"Sent {sent - undelivered} events to topic {args.topic} in {time.time() - start:.0f} seconds.")
    return 1 if undelivered else 0


if __name__ == "__main__":
    sys.exit(main())
