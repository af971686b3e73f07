"""Failures on the write side, on the real stack. A record the broker refuses for good,
or does not acknowledge within `kafka.delivery_timeout_secs`, stops its stage with one
error naming the topic and the cause; the other stage stops and commits what it
delivered, and the process exits non-zero, so that a supervisor restarts it. Never an
endless warning loop, and never a `/health` that says ok in between."""

from __future__ import annotations

import threading
import time

from streamhost_kit.events import event_set, payloads
from streamhost_kit.kafka import committed, produce, watermarks
from streamhost_kit.stack import Host, reset_stack, stack
from streamhost_kit.util import wait_until


class HealthProbe:
    """Polls the host's /health every 20 ms until it exits: (status, body) in order."""

    def __init__(self, host: Host):
        self.host = host
        self.seen: list[tuple[int, str]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.host.proc.poll() is None:
            status, text = self.host.answer("/health", timeout=1)
            if status is not None:
                self.seen.append((status, text))
            time.sleep(0.02)

    def after_failure(self) -> list[tuple[int, str]]:
        """What /health said from the first answer naming a failed stage on."""
        self.thread.join(timeout=5)
        first = next((i for i, (_, body) in enumerate(self.seen) if "failed:" in body), len(self.seen))
        return self.seen[first:]


def exited(host: Host, timeout: float) -> int:
    wait_until("the host to exit", lambda: host.proc.poll() is not None, timeout=timeout, interval=0.2)
    return host.proc.returncode


def lines(host: Host, level: str) -> list[str]:
    return [line for line in host.log().splitlines() if f" {level} " in line]


def test_a_missing_dlq_topic_stops_the_host_with_one_error(hosts):
    # A DLQ topic the broker does not have (Tansu does not create topics on demand):
    # librdkafka waits for it (topic.metadata.propagation.max.ms, 30 s), then fails
    # the records for good. Deleting a topic under the running host cannot be tested
    # on Tansu 0.6: librdkafka 2.12 crashes (SIGSEGV in its metadata cache) on the
    # metadata Tansu answers after the deletion.
    reset_stack()
    host = hosts(1, ready=False, STREAMHOST_KAFKA__DLQ_TOPIC="dlq_missing")[0]
    # Not ready from the start, saying why; it still judges and delivers what it can.
    wait_until("/health naming the missing topic",
               lambda: host.health()[0] == 503 and "topics missing: dlq_missing" in host.health()[1],
               timeout=30)
    wait_until("partitions assigned", lambda: host.metric("streamhost_assigned_partitions", stage="validate") == 3,
               timeout=60)
    probe = HealthProbe(host)
    events, rejects = event_set(seed=23, n=600)
    started = time.monotonic()
    produce(payloads(events[:300] + rejects + events[300:]))

    code = exited(host, timeout=120)
    took = time.monotonic() - started
    errors = lines(host, "ERROR")
    warnings = lines(host, "WARN")
    print(f"dlq topic missing: the host exited {code} after {took:.0f} s with {len(errors)} error and "
          f"{len(warnings)} warning lines:\n" + "\n".join(errors))
    assert code == 1
    assert len(errors) == 1, "one error line, not one per record or retry"
    assert "validate stage stopped: delivery to `dlq_missing` failed" in errors[0], errors[0]
    assert "(permanent: " in errors[0], errors[0]
    # Rejections are logged (rate-limited), failed deliveries are not, one by one.
    assert not [w for w in warnings if "will retry" in w or "delivery failed" in w]
    assert len(warnings) <= 40, "\n".join(warnings[-20:])
    # The failed batch is not committed: a restart reads it again.
    assert sum(committed("streamhost").values()) < sum(watermarks("my_events").values())
    assert all(status != 200 for status, _ in probe.after_failure()), probe.after_failure()


def test_a_broker_gone_mid_stream_ends_the_host_and_health_says_so_until_then(hosts):
    # The broker goes away while the host has records to deliver: Tansu shutting down
    # fails the produce requests in flight, or they stay unacknowledged past
    # kafka.delivery_timeout_secs. Either way the stage stops, and so does the process,
    # with /health answering 503 until it is gone. (With nothing to deliver, a broker
    # away is waited out: test_recovery.py.) So that the host has records in flight
    # when the broker stops, on every run, it catches up a backlog one record per batch:
    # then it is slower than its reads, and always waits on in_flight_batches of them.
    reset_stack()
    events, _ = event_set(seed=29, n=20_000)
    produce(payloads(events))
    host = hosts(1, STREAMHOST_KAFKA__DELIVERY_TIMEOUT_SECS="5", STREAMHOST_PIPELINE__BATCH_SIZE="1")[0]
    wait_until("the host catching up", lambda: sum(watermarks("enriched_events").values()) >= 300, timeout=60,
               interval=0.1)
    caught = sum(watermarks("enriched_events").values())
    assert caught < len(events) // 2, f"the backlog went by too fast to stop the broker in it ({caught} routed)"
    probe = HealthProbe(host)
    stack("stop", "tansu")
    try:
        stopped = time.monotonic()
        code = exited(host, timeout=90)
        took = time.monotonic() - stopped
    finally:
        stack("start", "tansu")
    errors = lines(host, "ERROR")
    after = probe.after_failure()
    print(f"broker stopped: the host exited {code} after {took:.0f} s; /health after the failure: "
          f"{sorted({s for s, _ in after})} in {len(after)} answers\n" + "\n".join(errors))
    assert code == 1
    assert len(errors) == 1, "\n".join(errors)
    assert " stage stopped: " in errors[0], errors[0]
    # Whichever stage met the broker's absence first: a delivery failed or left
    # unacknowledged, or (the window stage taking over partitions) the averages topic
    # unreadable, never a count without it.
    assert any(cause in errors[0] for cause in ("failed: ", "not acknowledged within 5 s (kafka.delivery_timeout_secs)",
                                                "to restore emitted windows: ")), errors[0]
    # /health said so between the failure and the exit, and never ok.
    assert after, "no /health answer named the failed stage before the exit"
    assert all(status == 503 for status, _ in after), after
    # The wait is bounded: the timeout, the other stage's shutdown wait, the flush.
    assert took < 5 + 10 + 10 + 10
