"""Create Kafka topics if they do not exist (idempotent). Used by scripts/stack."""
import argparse
import sys

from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka import KafkaError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="topic config for the topics created (repeatable)")
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()

    admin = AdminClient({"bootstrap.servers": args.brokers})
    existing = admin.list_topics(timeout=15).topics
    wanted = [t for t in args.topics if t not in existing]
    config = dict(c.split("=", 1) for c in args.config)
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=args.partitions, replication_factor=1, config=config) for t in wanted],
        operation_timeout=15,
    ) if wanted else {}
    failed = 0
    for topic, future in futures.items():
        try:
            future.result()
            print(f"topic {topic}: created with {args.partitions} partitions", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - report every failure, then exit non-zero
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            print(f"topic {topic}: {e}", file=sys.stderr)
            failed += 1
    for topic in args.topics:
        if topic in existing:
            n = len(existing[topic].partitions)
            print(f"topic {topic}: exists ({n} partitions)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
