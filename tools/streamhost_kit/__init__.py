"""streamhost's Python kit: what the integration tests (tests/), the benchmarks (bench/)
and the helper scripts (scripts/) share, written once.

Modules (import the one you need; only `kafka` needs confluent-kafka):

* `events`: event builders: the brief's shape, enriched records, seeded random sets,
  the generator's faulty events, arbitrary shapes;
* `oracle`: the brute-force event-time windows (size, advance, grace, any key field);
* `kafka`: produce, read, watermarks, committed offsets;
* `clickhouse`: queries over ClickHouse's HTTP interface, and the pipeline's tables;
* `stack`: the local stack (scripts/stack), the `streamhost` binary as a process, ports,
  Prometheus metrics, /proc figures, waiting;
* `plugins`: the safe plugin deploy (write hidden, then rename);
* `superset`: the dashboard in a real browser.

How it is found: `tools/` is on the path: pytest.ini's `pythonpath` for pytest,
PYTHONPATH exported by scripts/lib/env.sh for the scripts and benchmarks, and the tools
image (tools/Dockerfile) copies the package beside the scripts it runs.
"""
