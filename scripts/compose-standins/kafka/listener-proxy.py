#!/usr/bin/env python3
"""TEST DOUBLE (the Kafka stand-in's second listener). Tansu 0.6 has one listener and
one advertised address per broker, and `tansu proxy` closed every connection here, so a
further Kafka listener is this proxy: it forwards every connection to the broker and
rewrites the broker's advertised address (e.g. kafka:9092) to this listener's (e.g.
localhost:9092) in Metadata (API key 3) and FindCoordinator (API key 10) responses, the
only ones that carry broker addresses. Everything else passes byte for byte.

    listener-proxy.py LISTEN_PORT ORIGIN_HOST:ORIGIN_PORT FROM_HOST:FROM_PORT TO_HOST:TO_PORT
"""
import asyncio
import struct
import sys

METADATA, FIND_COORDINATOR = 3, 10


def address_patterns(src: tuple[str, int], dst: tuple[str, int]) -> list[tuple[bytes, bytes]]:
    """The (host, port) pair as it appears in a response: a STRING (int16 length) or a
    COMPACT_STRING (unsigned varint length + 1, one byte for short names), then int32."""
    out = []
    for encode in (lambda s: struct.pack(">h", len(s)) + s, lambda s: bytes([len(s) + 1]) + s):
        a, b = src[0].encode(), dst[0].encode()
        assert len(a) < 127 and len(b) < 127
        out.append((encode(a) + struct.pack(">i", src[1]), encode(b) + struct.pack(">i", dst[1])))
    return out


async def pipe_requests(reader, writer, pending: dict[int, int]) -> None:
    while True:
        size = await reader.readexactly(4)
        body = await reader.readexactly(struct.unpack(">i", size)[0])
        api_key, _version, correlation_id = struct.unpack(">hhi", body[:8])
        if api_key in (METADATA, FIND_COORDINATOR):
            pending[correlation_id] = api_key
        writer.write(size + body)
        await writer.drain()


async def pipe_responses(reader, writer, pending: dict[int, int], patterns) -> None:
    while True:
        size = await reader.readexactly(4)
        body = await reader.readexactly(struct.unpack(">i", size)[0])
        if pending.pop(struct.unpack(">i", body[:4])[0], None) is not None:
            for src, dst in patterns:
                body = body.replace(src, dst)
            size = struct.pack(">i", len(body))
        writer.write(size + body)
        await writer.drain()


def serve(origin: tuple[str, int], patterns):
    async def handle(client_reader, client_writer):
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*origin)
        except OSError as e:
            print(f"listener-proxy: broker {origin}: {e}", file=sys.stderr)
            client_writer.close()
            return
        pending: dict[int, int] = {}
        tasks = [asyncio.create_task(pipe_requests(client_reader, broker_writer, pending)),
                 asyncio.create_task(pipe_responses(broker_reader, client_writer, pending, patterns))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (client_writer, broker_writer):
            w.close()
    return handle


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main() -> None:
    listen_port, origin, src, dst = int(sys.argv[1]), hostport(sys.argv[2]), hostport(sys.argv[3]), hostport(sys.argv[4])
    server = await asyncio.start_server(serve(origin, address_patterns(src, dst)), "0.0.0.0", listen_port)
    print(f"listener-proxy: :{listen_port} -> {origin[0]}:{origin[1]}, advertising {dst[0]}:{dst[1]}", file=sys.stderr)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
