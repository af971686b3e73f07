"""The Quix Streams peer of the end-to-end benchmark (bench/e2e): streamhost's job in Python.

Same job as `streamhost run` with the enrich + quality plugins:

* decode (host/src/decode.rs): a JSON object with event_type, page_url, button_id,
  country (strings), user_id, timestamp (integers; timestamp 0..2^32-1), device_type
  optional (string or null), no string longer than 2048 bytes; otherwise DLQ with the
  host's code (malformed_json, not_an_object, missing_field, null_field, wrong_type,
  out_of_range, field_too_long, empty_message, invalid_utf8);
* enrich (plugins/enrich): country trimmed and upper-cased, page_id from /page/N,
  schema_version 1 or 2 (device_type present or not);
* quality (plugins/quality): user_id >= 0 (invalid_user_id), country in the allow-list
  (invalid_country; default CA,DE,FR,JP,UK,US, or QUIX_ALLOWED_COUNTRIES);
* accepted → enriched topic keyed by country (+ source_partition, source_offset,
  processed_by); rejected → dlq topic with code, message, stage, source position and
  the original payload;
* a second dataframe reads the enriched topic back (like streamhost's window stage) and
  counts per country in 5-minute windows hopping by 1 minute, event time from the
  event's `timestamp`, 30 s grace, one record per closed window to the averages topic.

Settings from the environment: QUIX_BROKERS, QUIX_GROUP, QUIX_INPUT, QUIX_ENRICHED,
QUIX_DLQ, QUIX_AVERAGES, QUIX_STATE_DIR, QUIX_ALLOWED_COUNTRIES. Runs until SIGTERM.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

from quixstreams import Application, message_context

MAX_FIELD_BYTES = 2048
MAX_TIMESTAMP = 2**32 - 1
STRING_FIELDS = ("event_type", "page_url", "button_id", "country")
ALLOWED = frozenset(
    c.strip() for c in os.environ.get("QUIX_ALLOWED_COUNTRIES", "CA,DE,FR,JP,UK,US").split(",") if c.strip()
)
ALLOWED_TEXT = ", ".join(sorted(ALLOWED))
PROCESSED_BY = "quix:enrich+quality"
WINDOW_MS, STEP_MS, GRACE_MS = 300_000, 60_000, 30_000


class Reject(Exception):
    def __init__(self, stage: str, code: str, message: str, by: str):
        super().__init__(message)
        self.stage, self.code, self.by = stage, code, by


def _type_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


class _Object(dict):
    """A JSON object that remembers a repeated key (the host rejects those at the top level)."""

    repeated = None

    @classmethod
    def of(cls, pairs):
        obj = cls(pairs)
        if len(obj) != len(pairs):
            seen = set()
            obj.repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        return obj


def decode(payload: bytes) -> dict:
    """host/src/decode.rs: shape and types."""
    if payload is None or not payload.strip():
        raise Reject("decode", "empty_message", "empty message (no bytes, or only whitespace)", "host")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Reject("decode", "invalid_utf8", f"payload is not valid UTF-8: {e}", "host") from None
    try:
        v = json.loads(text, object_pairs_hook=_Object.of)
    except (ValueError, RecursionError) as e:
        raise Reject("decode", "malformed_json", f"malformed JSON: {e}", "host") from None
    if not isinstance(v, dict):
        raise Reject("decode", "not_an_object", f"expected a JSON object, found {_type_name(v)}", "host")
    if v.repeated:
        raise Reject("decode", "duplicate_field", f"field `{v.repeated}` appears more than once", "host")
    for field in STRING_FIELDS + ("user_id", "timestamp"):
        if field not in v:
            raise Reject("decode", "missing_field", f"required field `{field}` is missing", "host")
        if v[field] is None:
            raise Reject("decode", "null_field", f"required field `{field}` is null", "host")
    for field in STRING_FIELDS:
        if not isinstance(v[field], str):
            raise Reject("decode", "wrong_type",
                         f"field `{field}` must be a string, found {_type_name(v[field])}", "host")
    for field in ("user_id", "timestamp"):
        if isinstance(v[field], bool) or not isinstance(v[field], int):
            raise Reject("decode", "wrong_type",
                         f"field `{field}` must be an integer, found {_type_name(v[field])}", "host")
    device = v.get("device_type")
    if device is not None and not isinstance(device, str):
        raise Reject("decode", "wrong_type",
                     f"field `device_type` must be a string, found {_type_name(device)}", "host")
    if not -(2**63) <= v["user_id"] < 2**63:
        raise Reject("decode", "out_of_range", "field `user_id` is out of range", "host")
    if not 0 <= v["timestamp"] <= MAX_TIMESTAMP:
        raise Reject("decode", "out_of_range", f"field `timestamp` is out of range: {v['timestamp']}", "host")
    for field in STRING_FIELDS + (("device_type",) if device is not None else ()):
        size = len(v[field].encode("utf-8"))
        if size > MAX_FIELD_BYTES:
            raise Reject("decode", "field_too_long",
                         f"field `{field}` is {size} bytes, longer than the limit of {MAX_FIELD_BYTES}", "host")
    return v


def enrich(v: dict) -> dict:
    """plugins/enrich."""
    v["country"] = v["country"].strip().upper()
    url = v["page_url"]
    if url.startswith("/page/"):
        n = url[len("/page/"):]
        if n.isdigit() and int(n) < 2**32:
            v["page_id"] = str(int(n))
    v["schema_version"] = "2" if v.get("device_type") is not None else "1"
    return v


def quality(v: dict) -> dict:
    """plugins/quality."""
    if v["user_id"] < 0:
        raise Reject("plugin", "invalid_user_id", f"user_id {v['user_id']} is negative", "quality")
    if v["country"] not in ALLOWED:
        raise Reject("plugin", "invalid_country",
                     f"country {json.dumps(v['country'])} is not on the allow-list ({ALLOWED_TEXT})", "quality")
    return v


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def validate(payload: bytes) -> dict:
    ctx = message_context()
    try:
        v = quality(enrich(decode(payload)))
        v.setdefault("device_type", None)
        v["source_partition"] = ctx.partition
        v["source_offset"] = ctx.offset
        v["processed_by"] = PROCESSED_BY
        return v
    except Reject as r:
        try:
            raw, encoding = payload.decode("utf-8"), "utf8"
        except (UnicodeDecodeError, AttributeError):
            raw, encoding = repr(payload), "escaped"
        return {
            "code": r.code, "message": str(r), "stage": r.stage, "rejected_by": r.by,
            "source_topic": INPUT, "source_partition": ctx.partition, "source_offset": ctx.offset,
            "dlq_time": _iso(int(time.time() * 1000)), "raw": raw, "raw_encoding": encoding,
        }


def event_time(value, headers, timestamp, timestamp_type) -> int:
    return value["timestamp"] * 1000


def average_record(window: dict, country: str) -> dict:
    return {
        "country": country,
        "window_start": _iso(window["start"]),
        "window_end": _iso(window["end"]),
        "average_events": window["value"] * 60_000 / WINDOW_MS,
        "event_count": window["value"],
    }


INPUT = os.environ.get("QUIX_INPUT", "my_events")

def main() -> None:
    app = Application(
        broker_address=os.environ.get("QUIX_BROKERS", "127.0.0.1:9092"),
        consumer_group=os.environ.get("QUIX_GROUP", "quix"),
        auto_offset_reset="earliest",
        state_dir=os.environ.get("QUIX_STATE_DIR", "state"),
        use_changelog_topics=os.environ.get("QUIX_CHANGELOG", "1") == "1",
        loglevel=os.environ.get("QUIX_LOGLEVEL", "INFO"),
    )
    raw = app.topic(INPUT, value_deserializer="bytes", key_deserializer="bytes")
    enriched = app.topic(os.environ.get("QUIX_ENRICHED", "enriched_events"), key_serializer="str",
                         value_serializer="json")
    dlq = app.topic(os.environ.get("QUIX_DLQ", "dlq"), key_serializer="str", value_serializer="json")
    averages = app.topic(os.environ.get("QUIX_AVERAGES", "country_event_averages"), key_serializer="str",
                         value_serializer="json")
    enriched_in = app.topic(enriched.name, value_deserializer="json", key_deserializer="str",
                            timestamp_extractor=event_time)

    # Validate stage: one pass, each result routed by what it is (a DLQ record has
    # `rejected_by`; accepted events never do, the enriched output is keyed by country).
    checked = app.dataframe(raw).apply(validate)
    checked.to_topic(
        lambda value, key, timestamp, headers: dlq if "rejected_by" in value else enriched,
        key=lambda value: f"{INPUT}/{value['source_partition']}/{value['source_offset']}"
        if "rejected_by" in value else value["country"],
    )

    # Window stage: enriched (keyed by country) → hopping counts → averages.
    windows = (
        app.dataframe(enriched_in)
        .hopping_window(duration_ms=WINDOW_MS, step_ms=STEP_MS, grace_ms=GRACE_MS)
        .count()
        .final()
    )
    windows = windows.apply(lambda w, key, timestamp, headers: average_record(w, key), metadata=True)
    windows.to_topic(averages, key=lambda v: f"{v['country']}|{v['window_start']}")
    app.run()


if __name__ == "__main__":
    main()
