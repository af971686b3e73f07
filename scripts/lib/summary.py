"""Print what the pipeline did: messages per topic, rows per ClickHouse table, the DLQ
by reason and the latest window averages. `--wait` first waits until ClickHouse holds
as many rows as the topics have records (up to 90 s)."""
from __future__ import annotations

import argparse
import sys
import time

from streamhost_kit.clickhouse import ch_rows
from streamhost_kit.kafka import watermarks

TOPICS = ["my_events", "enriched_events", "dlq", "country_event_averages"]


def topic_counts() -> dict[str, int]:
    return {t: sum(watermarks(t).values()) for t in TOPICS}


def table_counts() -> dict[str, int]:
    q = {
        "events": "SELECT count() AS n FROM events_db.events FINAL",
        "dlq_table": "SELECT count() AS n FROM events_db.dlq_table FINAL",
        "country_event_averages_raw": "SELECT count() AS n FROM events_db.country_event_averages",
        "daily_active_users_final": "SELECT count() AS n FROM events_db.daily_active_users_final",
    }
    return {k: int(ch_rows(v)[0]["n"]) for k, v in q.items()}


def table(rows: list[list], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--wait", action="store_true")
    args = p.parse_args()
    if args.wait:
        deadline = time.time() + 90
        while time.time() < deadline:
            t, c = topic_counts(), table_counts()
            if c["events"] >= t["enriched_events"] and c["dlq_table"] >= t["dlq"]:
                break
            time.sleep(2)
    t, c = topic_counts(), table_counts()
    print("\nKafka topics (records)")
    print(table([[k, v] for k, v in t.items()], ["topic", "records"]))
    print("\nClickHouse events_db (rows, duplicates collapsed)")
    print(table([[k, v] for k, v in c.items()], ["table", "rows"]))
    dlq = ch_rows("SELECT code, stage, rejected_by, count() AS n FROM events_db.dlq_table FINAL "
             "GROUP BY code, stage, rejected_by ORDER BY n DESC")
    print("\nDead-letter queue by reason")
    print(table([[r["code"], r["stage"], r["rejected_by"], r["n"]] for r in dlq], ["code", "stage", "rejected_by", "rows"]))
    dev = ch_rows("SELECT ifNull(device_type, '(none: old schema)') AS device, count() AS n FROM events_db.events FINAL "
             "GROUP BY device ORDER BY device")
    print("\nSchema evolution: events by device_type")
    print(table([[r["device"], r["n"]] for r in dev], ["device_type", "rows"]))
    avg = ch_rows("SELECT country, toString(window_start) AS ws, toString(window_end) AS we, average_events, event_count "
             "FROM events_db.country_event_averages ORDER BY window_start DESC, country LIMIT 12")
    print("\nLatest closed windows (5 min, events per minute)")
    if avg:
        print(table([[r["country"], r["ws"], r["we"], round(r["average_events"], 2), r["event_count"]] for r in avg],
                    ["country", "window_start", "window_end", "average_events", "event_count"]))
    else:
        print("(none closed yet: a window closes 30 s after its end; run longer or wait)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
