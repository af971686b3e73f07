"""ClickHouse over its HTTP interface (127.0.0.1:STREAMHOST_CH_HTTP_PORT, default 8123),
and the queries on the pipeline's tables that several checks share."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

CH_URL = f"http://127.0.0.1:{os.environ.get('STREAMHOST_CH_HTTP_PORT', '8123')}/?output_format_json_quote_64bit_integers=0"


def ch(query: str) -> str:
    """Run a query; raise with the server's message."""
    req = urllib.request.Request(CH_URL, data=query.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"ClickHouse: {e.read().decode()}\nquery: {query}") from e


def ch_rows(query: str) -> list[dict]:
    """The rows of a SELECT, as dicts (64-bit integers as numbers)."""
    out = ch(query + " FORMAT JSONEachRow")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ch_value(query: str) -> int:
    """A SELECT's single integer (0 for an empty answer)."""
    return int(ch(query).strip() or 0)


def positions_in_clickhouse() -> int:
    """Input positions in `events` plus `dlq_table`, re-deliveries collapsed."""
    return ch_value("SELECT count() FROM (SELECT source_partition, source_offset FROM events_db.events FINAL)") + \
        ch_value("SELECT count() FROM (SELECT source_partition, source_offset FROM events_db.dlq_table FINAL)")


def in_range(start: dict[int, int], end: dict[int, int], table: str) -> str:
    """A WHERE condition: the rows of input positions [start, end) of my_events (a
    topic's watermarks before and after), in `events` or `dlq_table`."""
    conds = " OR ".join(
        f"(source_partition = {p} AND source_offset >= {start.get(p, 0)} AND source_offset < {end[p]})" for p in end)
    return f"({conds})" + (" AND source_topic = 'my_events'" if table == "dlq_table" else "")


def window_rows(where: str = "") -> dict[tuple[str, str], int]:
    """(country, toString(window_start)) -> event_count of the deduplicated window rows
    (country_event_averages), optionally filtered by a WHERE condition."""
    return {(r["country"], r["ws"]): int(r["event_count"]) for r in ch_rows(
        "SELECT country, toString(window_start) AS ws, event_count FROM events_db.country_event_averages"
        + (f" WHERE {where}" if where else ""))}


def count_landed(start: dict[int, int], end: dict[int, int], distinct: bool = False) -> int:
    """Rows of input positions [start, end) in `events` plus `dlq_table`; with
    `distinct`, positions (re-deliveries counted once)."""
    what = "uniqExact(source_partition, source_offset)" if distinct else "count()"
    return ch_value(f"SELECT {what} FROM events_db.events WHERE {in_range(start, end, 'events')}") + \
        ch_value(f"SELECT {what} FROM events_db.dlq_table WHERE {in_range(start, end, 'dlq_table')}")


def landed_rows(table: str, start: dict[int, int], end: dict[int, int], columns: str,
                final: bool = False) -> list[dict]:
    """The rows of input positions [start, end) in `table` (events, dlq_table): p, o
    (the position) and `columns`."""
    return ch_rows(f"SELECT source_partition AS p, source_offset AS o, {columns} FROM events_db.{table}"
                   f"{' FINAL' if final else ''} WHERE {in_range(start, end, table)}")
