"""The brute-force oracle of the host's event-time windows: hopping windows
[start, start + size) with start a multiple of `advance`, counted per key (country by
default, any field), optionally with the host's grace rule."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Iterable

SIZE, ADVANCE, GRACE = 300, 60, 30  # the host's defaults: 5-minute windows, 1-minute advance, 30 s grace


def window_starts(t: int, size: int = SIZE, advance: int = ADVANCE) -> range:
    """Starts of the windows that contain t, oldest first."""
    return range(((t - size) // advance + 1) * advance, t // advance * advance + 1, advance)


def window_counts(events: Iterable[dict], key: str = "country", size: int = SIZE, advance: int = ADVANCE,
                  grace: int | None = None, time_field: str = "timestamp") -> dict[tuple, int]:
    """(key value, window start as epoch seconds) -> count.

    grace None: every event counts in every window that contains it (nothing is late).
    grace g: the events are taken in list order as one lane; the watermark is the highest
    event time so far, a window closes once watermark >= its end + g, and an event counts
    only in its windows still open (none: it is late)."""
    counts: Counter = Counter()
    watermark = None
    for e in events:
        t = e[time_field]
        if grace is not None:
            watermark = t if watermark is None else max(watermark, t)
        for start in window_starts(t, size, advance):
            if grace is None or start + size + grace > watermark:
                counts[(e[key], start)] += 1
    return dict(counts)


def fmt_time(ts: int) -> str:
    """Epoch seconds as ClickHouse prints a DateTime in UTC (toString)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def oracle(events: Iterable[dict], key: str = "country", size: int = SIZE, advance: int = ADVANCE,
           grace: int | None = None) -> dict[tuple[str, str], int]:
    """`window_counts` keyed by (key value, toString(window_start)), as ClickHouse rows read."""
    return {(k, fmt_time(s)): n for (k, s), n in window_counts(events, key, size, advance, grace).items()}
