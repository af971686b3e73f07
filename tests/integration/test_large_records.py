"""Inputs near the broker's size limit on the real stack. The broker takes them, but what
the host makes of them is larger: an enriched record adds fields, a DLQ record adds
fields and escapes the original. A record the producer refuses is refused on every
retry, and with commits in order every batch behind it would wait for it: one input
would stall the pipeline. Such an event must land in the DLQ (`output_too_large`), every
DLQ record must hold its original whole (a DLQ record may be larger than any input: the
input topic still has the original only until retention), and the events after them
must flow."""

from __future__ import annotations

import json

from streamhost_kit.events import event, payload, payloads
from streamhost_kit.kafka import produce, read_topic, watermarks
from streamhost_kit.util import wait_until

# Under the test producer's 1,000,000-byte limit (with its framing), over what the
# enriched record may be once the host adds its fields (route::MAX_OUTPUT_BYTES).
PAD = 995_800


def big(i: int, **fields) -> dict:
    return event(**{"user_id": 7, "button_id": f"big-{i}", "timestamp": 1_764_000_000 + i, "country": "DE", **fields})


def test_an_input_near_the_size_limit_goes_to_the_dlq_and_stalls_nothing(fresh_stack, hosts):
    start_enriched, start_dlq = watermarks("enriched_events"), watermarks("dlq")
    host = hosts(1, STREAMHOST_WINDOWS__ENABLED="false")[0]
    big_valid = payload(big(1, notes="n" * PAD))
    big_rejected = payload(big(2, user_id=-1, notes='"' * (PAD // 2)))
    after = payloads(big(10 + i) for i in range(20))
    produce([big_valid, big_rejected, *after], partition=0)

    wait_until("the 20 small events behind the big ones enriched",
               lambda: sum(watermarks("enriched_events").values()) - sum(start_enriched.values()) >= 20,
               timeout=90)
    wait_until("both big events in the DLQ",
               lambda: sum(watermarks("dlq").values()) - sum(start_dlq.values()) >= 2, timeout=60)
    enriched = [json.loads(m.value()) for m in read_topic("enriched_events", start_enriched)]
    assert sorted(e["button_id"] for e in enriched) == sorted(f"big-{10 + i}" for i in range(20))
    dlq = {json.loads(m.value())["source_offset"]: json.loads(m.value()) for m in read_topic("dlq", start_dlq)}
    assert len(dlq) == 2
    too_large, rejected = (dlq[o] for o in sorted(dlq))
    assert (too_large["code"], too_large["stage"]) == ("output_too_large", "route")
    assert (rejected["code"], rejected["stage"]) == ("invalid_user_id", "plugin")
    for record, original in ((too_large, big_valid), (rejected, big_rejected)):
        # Whole, so `dlq replay` can restore it byte for byte; the quotes of the second
        # double when escaped, to ~1.5 MB of DLQ record.
        assert record["raw_encoding"] == "utf8"
        assert record["raw"].encode() == original
    assert host.metric("streamhost_rejections_total", code="output_too_large") == 1
