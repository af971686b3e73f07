"""Event builders: the brief's event (event_type, user_id, page_url, button_id,
timestamp, country, optional device_type), the record the host writes to
enriched_events, seeded random sets, the generator's faulty events, and records of any
shape (for windows keyed by another field)."""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Callable, Iterable, Mapping

# The quality plugin's default allow-list.
ALLOWED = frozenset({"US", "CA", "UK", "DE", "FR", "JP"})
# The brief's generator's countries: the allowed ones and XX.
GENERATOR_COUNTRIES = ["US", "CA", "UK", "DE", "FR", "JP", "XX"]
T0 = 1_735_689_600  # 2025-01-01 00:00:00 UTC: long before the wall clock, so idle closes every window
# event_set() is produced ~170x faster than real time (25 min of event time in 9 s at
# 100/s): a host must run with this grace so that a few seconds of skew between two
# hosts' validate stages stays within it and nothing is late.
EVENT_SET_GRACE = 600


def event(*, event_type: str = "page_view", user_id: int = 1, page_url: str = "/p", button_id: str = "b",
          timestamp: int | str | None = None, country: str = "US", **extra) -> dict:
    """One event of the brief's shape (timestamp: now by default); `extra` fields
    (device_type, unknown ones) follow in the order given."""
    return {"event_type": event_type, "user_id": user_id, "page_url": page_url, "button_id": button_id,
            "timestamp": int(time.time()) if timestamp is None else timestamp, "country": country, **extra}


def enriched(*, source_partition: int, source_offset: int, processed_by: str = "test", **fields) -> dict:
    """A record as the host writes it to enriched_events: an event (`fields` as for
    `event`) and the input position it came from."""
    return {**event(**fields), "source_partition": source_partition, "source_offset": source_offset,
            "processed_by": processed_by}


def payload(record: dict) -> bytes:
    """The record as a Kafka value (JSON)."""
    return json.dumps(record).encode()


def payloads(records: Iterable[dict]) -> list[bytes]:
    return [payload(r) for r in records]


def random_event(rng: random.Random, timestamp: int, button_id: str, *, country: str | None = None,
                 countries: list[str] | None = None) -> dict:
    """A valid event with random event_type, user_id, page_url (drawn in that order),
    then the country: `country`, or drawn from `countries` (default: the allow-list)."""
    return {
        "event_type": rng.choice(["page_view", "button_click"]),
        "user_id": rng.randint(1, 1000),
        "page_url": f"/page/{rng.randint(1, 100)}",
        "button_id": button_id,
        "timestamp": timestamp,
        "country": country if country is not None else rng.choice(countries or sorted(ALLOWED)),
    }


def spread(t0: int, seconds: int, n: int, *, seed: int, tag: str, jitter: int = 0,
           countries: list[str] | None = None) -> list[dict]:
    """n valid events over [t0, t0 + seconds) in production order, each moved by up to
    ±jitter s (never before t0); button_id `{tag}-{i}`."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = t0 + i * seconds // n + (rng.randint(-jitter, jitter) if jitter else 0)
        out.append(random_event(rng, max(t, t0), f"{tag}-{i}", countries=countries))
    return out


def event_set(seed: int = 7, n: int = 900) -> tuple[list[dict], list[dict]]:
    """(events, rejects): events over ~25 minutes from T0 in time order with up to 10 s
    of disorder, plus rejects that must not count (country XX, negative user id). Run
    the host with EVENT_SET_GRACE when producing them fast."""
    events = spread(T0, 25 * 60, n, seed=seed, tag="b", jitter=10)
    rejects = [dict(events[i], country="XX") for i in range(0, n, 97)] + \
              [dict(events[i], user_id=-5) for i in range(5, n, 89)]
    return events, rejects


def generated_event(rng: random.Random, now: int, new_schema: bool, bad_rate: float,
                    countries: list[str] = GENERATOR_COUNTRIES, *, country: str | None = None,
                    user_id: int | None = None, page_url: str | None = None) -> dict:
    """One event like the brief's generator makes: a share `bad_rate` of negative user
    ids and of ZZ countries, XX among the countries, device_type once `new_schema`.
    The country, user and page are drawn uniformly unless given (the faults still apply)."""
    user_id = rng.randint(1, 1000) if user_id is None else user_id
    if rng.random() < bad_rate:
        user_id = -user_id
    country = rng.choice(countries) if country is None else country
    if rng.random() < bad_rate:
        country = "ZZ"
    e = {
        "event_type": rng.choice(["page_view", "button_click"]),
        "user_id": user_id,
        "page_url": f"/page/{rng.randint(1, 100)}" if page_url is None else page_url,
        "button_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "timestamp": now,
        "country": country,
    }
    if new_schema:
        e["device_type"] = rng.choice(["mobile", "desktop", "tablet"])
    return e


Field = Callable[[random.Random, int], object]


def records(n: int, fields: Mapping[str, Field | object], seed: int = 0) -> list[dict]:
    """n records of any shape: each field is a constant or a function (rng, i) -> value,
    evaluated in the mapping's order, e.g. windows keyed by `tenant`:

        records(100, {"tenant": lambda rng, i: rng.choice("ab"), "timestamp": lambda rng, i: T0 + i})
    """
    rng = random.Random(seed)
    return [{k: f(rng, i) if callable(f) else f for k, f in fields.items()} for i in range(n)]
