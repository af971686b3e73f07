#!/usr/bin/env python3
"""A counting Kafka proxy for bench/e2e --count-requests: where the broker's work comes from.

It forwards every connection to the broker, frame by frame, and counts each request by
(client.id, API key): requests, request bytes, response bytes, and Fetch responses of at
most SMALL_FETCH bytes (a fetch that brought nothing back, or next to nothing: the size of
an empty answer for a few partitions), and the seconds the broker took to answer (from the
request passed on to its response read: for Fetch this includes the broker's wait for data,
fetch.wait.max.ms; for the others it is the broker's work and its queue). Like scripts/compose-standins/kafka/listener-proxy.py
(the same framing), it rewrites the broker's advertised address to its own in Metadata and
FindCoordinator responses, so the clients stay on the proxy. Everything else passes byte
for byte.

    count_proxy.py LISTEN_PORT ORIGIN_PORT CONTROL_PORT     (all on 127.0.0.1)

A connection to CONTROL_PORT gets the counters as one JSON document (cumulative since
start; the bench takes the difference of two snapshots) and is closed.
"""
from __future__ import annotations

import asyncio
import json
import struct
import sys
import time
from collections import defaultdict

METADATA, FIND_COORDINATOR, FETCH = 3, 10, 1
SMALL_FETCH = 256

# Kafka's API keys (the ones a client of Tansu 0.6 may send).
API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics",
    20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit",
    29: "DescribeAcls", 32: "DescribeConfigs", 33: "AlterConfigs", 36: "SaslAuthenticate",
    37: "CreatePartitions", 42: "DeleteGroups", 44: "IncrementalAlterConfigs", 47: "OffsetDelete",
    60: "DescribeCluster", 61: "DescribeProducers", 68: "ConsumerGroupHeartbeat",
    71: "GetTelemetrySubscriptions", 72: "PushTelemetry",
}


def api_name(key: int) -> str:
    return API_NAMES.get(key, f"api{key}")


class Counters:
    def __init__(self) -> None:
        # (client_id, api) -> [requests, request bytes, response bytes, small fetch responses, answer seconds]
        self.by: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, 0, 0, 0.0])
        self.connections: dict[str, int] = defaultdict(int)

    def snapshot(self) -> dict:
        return {"connections": dict(self.connections),
                "requests": [{"client_id": c, "api": a, "requests": v[0], "request_bytes": v[1],
                              "response_bytes": v[2], "small_fetches": v[3], "answer_seconds": v[4]}
                             for (c, a), v in sorted(self.by.items())]}


def address_patterns(src: tuple[str, int], dst: tuple[str, int]) -> list[tuple[bytes, bytes]]:
    """As listener-proxy.py: the (host, port) pair as a STRING or a COMPACT_STRING, then int32."""
    out = []
    for encode in (lambda s: struct.pack(">h", len(s)) + s, lambda s: bytes([len(s) + 1]) + s):
        a, b = src[0].encode(), dst[0].encode()
        out.append((encode(a) + struct.pack(">i", src[1]), encode(b) + struct.pack(">i", dst[1])))
    return out


def client_id_of(body: bytes) -> str:
    """The request header's client_id: a nullable STRING (int16 length) in every header version."""
    n = struct.unpack(">h", body[8:10])[0]
    return "" if n < 0 else body[10:10 + n].decode(errors="replace")


async def pipe_requests(reader, writer, pending: dict, counters: Counters, conn: dict) -> None:
    while True:
        size = await reader.readexactly(4)
        body = await reader.readexactly(struct.unpack(">i", size)[0])
        api_key, _version, correlation_id = struct.unpack(">hhi", body[:8])
        cid = client_id_of(body)
        if conn.get("client_id") is None:
            conn["client_id"] = cid
            counters.connections[cid] += 1
        entry = counters.by[(cid, api_name(api_key))]
        entry[0] += 1
        entry[1] += 4 + len(body)
        writer.write(size + body)
        await writer.drain()
        pending[correlation_id] = (api_key, entry, time.monotonic())


async def pipe_responses(reader, writer, pending: dict, patterns) -> None:
    while True:
        size = await reader.readexactly(4)
        body = await reader.readexactly(struct.unpack(">i", size)[0])
        api_key, entry, sent = pending.pop(struct.unpack(">i", body[:4])[0], (None, None, 0.0))
        if api_key in (METADATA, FIND_COORDINATOR):
            for src, dst in patterns:
                body = body.replace(src, dst)
            size = struct.pack(">i", len(body))
        if entry is not None:
            entry[2] += 4 + len(body)
            entry[4] += time.monotonic() - sent
            if api_key == FETCH and len(body) <= SMALL_FETCH:
                entry[3] += 1
        writer.write(size + body)
        await writer.drain()


def serve(origin: tuple[str, int], patterns, counters: Counters):
    async def handle(client_reader, client_writer):
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*origin)
        except OSError as e:
            print(f"count-proxy: broker {origin}: {e}", file=sys.stderr)
            client_writer.close()
            return
        pending: dict = {}
        conn: dict = {}
        tasks = [asyncio.create_task(pipe_requests(client_reader, broker_writer, pending, counters, conn)),
                 asyncio.create_task(pipe_responses(broker_reader, client_writer, pending, patterns))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (client_writer, broker_writer):
            w.close()
    return handle


def control(counters: Counters):
    async def handle(_reader, writer):
        writer.write(json.dumps(counters.snapshot()).encode())
        await writer.drain()
        writer.close()
    return handle


async def main() -> None:
    listen, origin_port, control_port = (int(a) for a in sys.argv[1:4])
    counters = Counters()
    origin = ("127.0.0.1", origin_port)
    patterns = address_patterns(origin, ("127.0.0.1", listen))
    server = await asyncio.start_server(serve(origin, patterns, counters), "127.0.0.1", listen)
    ctl = await asyncio.start_server(control(counters), "127.0.0.1", control_port)
    print(f"count-proxy: 127.0.0.1:{listen} -> {origin_port}, counters on {control_port}", file=sys.stderr)
    async with server, ctl:
        await asyncio.gather(server.serve_forever(), ctl.serve_forever())


if __name__ == "__main__":
    asyncio.run(main())
