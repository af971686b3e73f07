"""Where the broker's CPU per event goes, per contender: bench/e2e --count-requests results
(requests per event by API, Tansu's CPU) read against bench/broker_cost.py's result
(Tansu's CPU per request of a kind, per record produced and fetched).

    python3 bench/requests_summary.py COST.json E2E.json [E2E.json ...] --out bench/results/X.json

For each contender round: Tansu's measured µs per event, and an estimate made of
* records: (inputs read + outputs written + enriched records read back by the second
  hop) × the mean of the produce and fetch µs per record;
* OffsetCommit, OffsetFetch, Metadata: requests × their µs per request;
* Produce requests: requests × (µs of a one-record Produce − µs per record), the fixed
  part of a request.
Then, per API, the median over rounds of streamhost's requests per 1,000 events, Quix's,
and what streamhost's excess is worth in µs per event.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cost", type=Path)
    p.add_argument("e2e", type=Path, nargs="+")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cost = json.loads(args.cost.read_text())["results"]
    per_record = statistics.mean(v["tansu_cpu_us_per"] for k, v in cost.items()
                                 if k.startswith(("produce_", "fetch_")) and k.endswith("B_records"))
    per_request = {
        "OffsetCommit": cost["offset_commit_3_partitions"]["tansu_cpu_us_per"],
        "OffsetFetch": cost["offset_fetch_3_partitions"]["tansu_cpu_us_per"],
        "Metadata": cost["metadata_one_topic"]["tansu_cpu_us_per"],
        "Produce": cost["produce_request_of_1_record"]["tansu_cpu_us_per"] - per_record,
    }
    rows = []
    for path in args.e2e:
        doc = json.loads(path.read_text())
        for r in doc["results"]:
            if not r.get("requests") or not r["complete"]:
                continue
            n = r["events"]
            outs = r["outputs"]
            written = sum(outs.values())
            read_back = sum(c for t, c in outs.items() if t.startswith(("streamhost", "quix")) and "enriched" in t)
            by_api = r["requests"]["by_api"]
            est = {"records": (n + written + read_back) * per_record / n}
            for api, us in per_request.items():
                est[api] = by_api.get(api, {}).get("requests", 0) * us / n
            rows.append({"file": path.name, "name": r["name"], "round": r.get("round", 1), "events": n,
                         "record_ops_per_event": (n + written + read_back) / n,
                         "tansu_us_per_event": r["tansu_cpu"] * 1e6 / n,
                         "estimate_us_per_event": est, "estimate_total_us_per_event": sum(est.values()),
                         "per_1k_events": {a: v["per_1k_events"] for a, v in by_api.items()}})
    apis = sorted({a for r in rows for a in r["per_1k_events"]})
    compare = {}
    for api in apis:
        sh = [r["per_1k_events"].get(api, 0.0) for r in rows if r["name"] == "streamhost"]
        qx = [r["per_1k_events"].get(api, 0.0) for r in rows if r["name"] == "quix"]
        if not sh or not qx:
            continue
        entry = {"streamhost_per_1k": statistics.median(sh), "quix_per_1k": statistics.median(qx)}
        if api in per_request:
            entry["streamhost_minus_quix_us_per_event"] = (entry["streamhost_per_1k"] - entry["quix_per_1k"]) \
                * per_request[api] / 1000
        compare[api] = entry
    tansu = {name: statistics.median(r["tansu_us_per_event"] for r in rows if r["name"] == name)
             for name in {r["name"] for r in rows}}
    out = {"bench": "bench/requests_summary.py",
           "command": " ".join(["bench/requests_summary.py", str(args.cost), *map(str, args.e2e)]),
           "tansu_us_per_record": per_record, "tansu_us_per_request": per_request,
           "rounds": rows, "median_tansu_us_per_event": tansu,
           "tansu_streamhost_over_quix": [
               s["tansu_us_per_event"] / q["tansu_us_per_event"]
               for s in rows if s["name"] == "streamhost"
               for q in rows if q["name"] == "quix" and q["file"] == s["file"] and q["round"] == s["round"]],
           "by_api": compare}
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
