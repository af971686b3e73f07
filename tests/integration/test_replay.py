"""`streamhost dlq replay` on the real stack: events the quality plugin rejected are put
back into my_events after the rule changed live, chosen by code; the others stay in the
DLQ; a dry run changes nothing; non-UTF-8 payloads come back byte for byte; records
that are not input events (late_event) are never replayed into my_events."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from streamhost_kit import events
from streamhost_kit.clickhouse import ch_rows, ch_value
from streamhost_kit.events import payload
from streamhost_kit.kafka import BROKERS, produce, read_topic, watermarks
from streamhost_kit.stack import HOST_BIN, PLUGINS_BUILT, Host
from streamhost_kit.util import wait_until

N_BR = 20  # country BR: invalid_country with the default allow-list
N_NEG = 10  # user_id < 0: invalid_user_id, whatever the countries
N_OK = 10
# Not UTF-8 (Latin-1 "é", a lone 0xff, NUL), plus the characters escape_ascii escapes.
LATIN1 = (b'{"event_type": "page_view", "user_id": 7, "page_url": "/caf\xe9\\\'\t\n", '
          b'"button_id": "replay-latin1\xff\x00", "timestamp": 1700000000, "country": "BR"}')


def event(i: int, country: str, user_id: int, tag: str) -> bytes:
    return payload(events.event(user_id=user_id, page_url=f"/page/{i}", button_id=f"replay-{tag}-{i}", country=country))


def total(marks: dict[int, int]) -> int:
    return sum(marks.values())


def replay(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAMHOST_KAFKA__BROKERS": BROKERS, "RUST_LOG": "warn"}
    return subprocess.run([str(HOST_BIN), "dlq", "replay", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def per_code(stdout: str) -> dict[str, tuple[int, int]]:
    """code -> (selected, replayed or would replay), from the summary's table."""
    rows = re.findall(r"^\s+(\S+)\s+selected\s+(\d+)\s+(?:would replay|replayed)\s+(\d+)", stdout, re.M)
    return {code: (int(s), int(r)) for code, s, r in rows}


@pytest.fixture(scope="module")
def rejected(fresh_stack, tmp_path_factory):
    """A host with the quality plugin (default allow-list, no BR) and the DLQ holding
    N_BR invalid_country, N_NEG invalid_user_id and one invalid_utf8 record."""
    tmp = tmp_path_factory.mktemp("replay")
    plugin_dir = tmp / "plugins.d"
    plugin_dir.mkdir()
    (plugin_dir / "10-quality.wasm").write_bytes((PLUGINS_BUILT / "quality.wasm").read_bytes())
    host = Host(tmp, plugin_dir).start()
    wait_until("quality serving", lambda: [p["state"] for p in host.plugin_files()] == ["serving"],
               timeout=10)
    payloads = ([event(i, "BR", 1000 + i, "br") for i in range(N_BR)]
                + [event(i, "US", -1 - i, "neg") for i in range(N_NEG)]
                + [event(i, "DE", 2000 + i, "ok") for i in range(N_OK)]
                + [LATIN1])
    produce(payloads)
    wait_until("every rejection in dlq", lambda: total(watermarks("dlq")) >= N_BR + N_NEG + 1, timeout=60)
    wait_until("the accepted events in ClickHouse", lambda: ch_value(
        "SELECT count() FROM events_db.events WHERE button_id LIKE 'replay-ok-%'") == N_OK, timeout=90)
    yield {"host": host, "plugin_dir": plugin_dir}
    code = host.stop()
    print(f"--- {host.log_path.name} (exit {code}) ---\n{host.log()[-4000:]}")


def test_dry_run_reports_counts_per_code_and_produces_nothing(rejected):
    before = watermarks("my_events")
    out = replay("--dry-run")
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    counts = per_code(out.stdout)
    assert counts == {"invalid_country": (N_BR, N_BR), "invalid_user_id": (N_NEG, N_NEG), "invalid_utf8": (1, 1)}, out.stdout
    assert "dry run: nothing produced" in out.stdout
    assert f"read {N_BR + N_NEG + 1} records of dlq" in out.stdout

    out = replay("--dry-run", "--code", "invalid_country")
    assert out.returncode == 0, out.stderr
    assert per_code(out.stdout) == {"invalid_country": (N_BR, N_BR)}, out.stdout
    assert f"would replay {N_BR} to my_events" in out.stdout

    # A time range before any of them selects nothing; one around now selects all.
    out = replay("--dry-run", "--code", "invalid_country", "--until", "2000-01-01 00:00:00")
    assert out.returncode == 0, out.stderr
    assert "would replay 0 to my_events" in out.stdout, out.stdout
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 60))
    out = replay("--dry-run", "--code", "invalid_country", "--since", "2000-01-01 00:00:00", "--until", now,
                 "--time-field", "source-time")
    assert f"would replay {N_BR} to my_events" in out.stdout, out.stdout

    # A real replay must name its codes; a bad time is refused with the expected format.
    out = replay()
    assert out.returncode != 0 and "--code" in out.stderr, out.stderr
    out = replay("--code", "x", "--since", "yesterday")
    assert out.returncode == 2 and "2026-11-24 10:20:00" in out.stderr, out.stderr
    assert watermarks("my_events") == before


def test_replay_after_the_rule_changed_live(rejected):
    host, plugin_dir = rejected["host"], rejected["plugin_dir"]
    # The rule change: BR joins the allow-list (manifest beside the .wasm, swapped live).
    tmp = plugin_dir / ".10-quality.toml.tmp"
    tmp.write_text('[settings]\nallowed_countries = "US,CA,UK,DE,FR,JP,BR"\n')
    tmp.rename(plugin_dir / "10-quality.toml")
    wait_until("the new allow-list serving", lambda: host.metric("streamhost_plugin_swaps_total") >= 1, timeout=20,
               interval=0.2)

    in_before, dlq_before = watermarks("my_events"), watermarks("dlq")
    started = time.monotonic()
    out = replay("--code", "invalid_country")
    took = time.monotonic() - started
    print(out.stdout, f"\n(replay took {took:.1f} s)")
    assert out.returncode == 0, out.stderr
    assert per_code(out.stdout) == {"invalid_country": (N_BR, N_BR)}, out.stdout
    assert f"replayed {N_BR} to my_events (acknowledged), 0 failed" in out.stdout

    # Exactly the BR payloads were produced, byte for byte.
    replayed = sorted(m.value() for m in read_topic("my_events", in_before))
    assert replayed == sorted(event_bytes for event_bytes in originals("invalid_country"))
    assert len(replayed) == N_BR

    # They pass the new rule and reach ClickHouse; the invalid_user_id ones were not replayed.
    wait_until("the replayed BR events in ClickHouse", lambda: ch_value(
        "SELECT count() FROM events_db.events WHERE button_id LIKE 'replay-br-%'") >= N_BR, timeout=90)
    rows = ch_rows("SELECT country, count() AS n FROM events_db.events WHERE button_id LIKE 'replay-br-%' GROUP BY country")
    assert rows == [{"country": "BR", "n": N_BR}], rows
    assert ch_value("SELECT count() FROM events_db.events WHERE button_id LIKE 'replay-neg-%'") == 0
    assert ch_value("SELECT count() FROM events_db.events WHERE button_id LIKE 'replay-ok-%'") == N_OK
    # Nothing new was dead-lettered: the replayed events were all accepted.
    time.sleep(2)
    assert watermarks("dlq") == dlq_before


def originals(code: str) -> list[bytes]:
    """The raw payloads of the DLQ records with `code` (UTF-8 ones)."""
    return [json.loads(m.value())["raw"].encode() for m in read_topic("dlq")
            if json.loads(m.value())["code"] == code]


def test_escaped_payload_round_trips_byte_exactly(rejected):
    dlq = [json.loads(m.value()) for m in read_topic("dlq")]
    latin1 = [d for d in dlq if d["code"] == "invalid_utf8"]
    assert len(latin1) == 1 and latin1[0]["raw_encoding"] == "escaped", latin1
    in_before, dlq_before = watermarks("my_events"), watermarks("dlq")
    out = replay("--code", "invalid_utf8")
    assert out.returncode == 0, out.stderr
    assert per_code(out.stdout) == {"invalid_utf8": (1, 1)}, out.stdout
    produced = [m.value() for m in read_topic("my_events", in_before)]
    assert produced == [LATIN1]
    # Still not UTF-8, so the pipeline dead-letters it again: a second DLQ record with a
    # new source position (why replaying the same records twice duplicates them).
    wait_until("the replayed record back in dlq", lambda: total(watermarks("dlq")) > total(dlq_before), timeout=30)
    again = [json.loads(m.value()) for m in read_topic("dlq", dlq_before)]
    assert [(d["code"], d["raw"]) for d in again] == [("invalid_utf8", latin1[0]["raw"])]
    assert (again[0]["source_partition"], again[0]["source_offset"]) != \
        (latin1[0]["source_partition"], latin1[0]["source_offset"])


def test_records_from_other_stages_are_not_replayed_into_my_events(rejected):
    # A late_event as the window stage writes it: its raw is an enriched_events record.
    late = {
        "code": "late_event", "message": "late", "stage": "window", "rejected_by": "host",
        "source_topic": "enriched_events", "source_partition": 0, "source_offset": 3,
        "source_time": "2026-11-24 10:00:00", "dlq_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "raw": json.dumps(events.enriched(button_id="replay-late", timestamp=1700000000, source_partition=0,
                                          source_offset=1, processed_by="quality@0.2.0")),
        "raw_encoding": "utf8",
    }
    produce([json.dumps(late).encode()], topic="dlq", key=lambda _: b"enriched_events/0/3")
    before = watermarks("my_events")
    out = replay("--code", "late_event")
    assert out.returncode == 0, out.stderr
    assert per_code(out.stdout) == {"late_event": (1, 0)}, out.stdout
    assert "other source topic 1" in out.stdout and "not replayed: 1 from another topic than my_events" in out.stdout
    assert watermarks("my_events") == before
    # Asked for explicitly, it would go (dry run only here).
    out = replay("--code", "late_event", "--any-source", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert per_code(out.stdout) == {"late_event": (1, 1)}, out.stdout


def test_a_failed_delivery_exits_non_zero_and_says_so(rejected):
    # Tansu does not create topics on produce: every delivery fails after about 30 s
    # (librdkafka says `UnknownTopicOrPartition` or `MessageTimedOut`, whichever of
    # its two 30 s timers ends first), and the command must not pretend otherwise.
    out = replay("--code", "invalid_user_id", "--to", "replay_no_such_topic")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"replayed 0 to replay_no_such_topic (acknowledged), {N_NEG} failed" in out.stdout, out.stdout
    assert f"{N_NEG} of the selected records were not acknowledged" in out.stderr, out.stderr
    assert "topic replay_no_such_topic does not exist; create it first; none was, so running it again is safe" \
        in out.stderr, out.stderr
