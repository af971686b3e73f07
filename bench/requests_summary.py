"""Where the broker's CPU per event goes, per contender: bench/e2e --count-requests results
(requests per event by API, Tansu's CPU) read against bench/broker_cost.py's result
(Tansu's CPU per request of a kind, per record produced and fetched).

    python3 bench/requests_summary.py COST.json E2E.json [E2E.json ...] --out bench/results/X.json

For each contender round: Tansu's measured µs per event, and an estimate made of
* records: (inputs read + outputs written + enriched records read back by the second
  hop) × the mean of the produce and fetch µs per record. The records read back are
  estimated from the Fetch bytes: the contender's Fetch response bytes per event less
  the one-hop passthrough's of the same run and round (the input alone), over an enriched
  record's size (mean key + value from the result, + RECORD_FRAMING). A contender that is
  "done" before its second hop has caught up (Quix: done when its outputs hold N) read
  back only part of them within its run;
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

# A record's own framing inside a batch (length, attributes, deltas, key and value lengths,
# header count) in bytes, about: what streamhost's Fetch bytes per enriched record read
# back exceed its value and key by.
RECORD_FRAMING = 18


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
        input_fetch = {r.get("round", 1): r["requests"]["by_api"]["Fetch"]["response_bytes"] / r["events"]
                       for r in doc["results"] if r["name"] == "passthrough" and r.get("requests")}
        for r in doc["results"]:
            if not r.get("requests") or not r["complete"]:
                continue
            n = r["events"]
            outs = r["outputs"]
            written = sum(outs.values())
            enriched = sum(c for t, c in outs.items() if t.startswith(("streamhost", "quix")) and "enriched" in t)
            by_api = r["requests"]["by_api"]
            read_back, beyond = 0, None
            if enriched and r.get("round", 1) in input_fetch:
                beyond = by_api["Fetch"]["response_bytes"] / n - input_fetch[r.get("round", 1)]
                size = next((z["value_bytes"] + z["key_bytes"] for t, z in r.get("record_sizes", {}).items()
                             if "enriched" in t), 0) + RECORD_FRAMING
                read_back = min(enriched, max(0.0, beyond * n / size))
            est = {"records": (n + written + read_back) * per_record / n}
            for api, us in per_request.items():
                est[api] = by_api.get(api, {}).get("requests", 0) * us / n
            rows.append({"file": path.name, "name": r["name"], "round": r.get("round", 1), "events": n,
                         "record_ops_per_event": (n + written + read_back) / n,
                         "fetch_bytes_per_event_beyond_input": beyond,
                         "enriched_read_back_fraction": read_back / enriched if enriched else None,
                         "tansu_us_per_event": r["tansu_cpu"] * 1e6 / n,
                         "estimate_us_per_event": est, "estimate_total_us_per_event": sum(est.values()),
                         "per_1k_events": {a: v["per_1k_events"] for a, v in by_api.items()}})
    # Per backlog size (start-up requests weigh more on a short run): medians over rounds.
    apis = sorted({a for r in rows for a in r["per_1k_events"]})
    compare: dict[str, dict] = {}
    tansu: dict[str, dict] = {}
    for events in sorted({r["events"] for r in rows}):
        same = [r for r in rows if r["events"] == events]
        key = f"backlog_{events}"
        tansu[key] = {name: statistics.median(r["tansu_us_per_event"] for r in same if r["name"] == name)
                      for name in sorted({r["name"] for r in same})}
        compare[key] = {}
        for api in apis:
            sh = [r["per_1k_events"].get(api, 0.0) for r in same if r["name"] == "streamhost"]
            qx = [r["per_1k_events"].get(api, 0.0) for r in same if r["name"] == "quix"]
            if not sh or not qx:
                continue
            entry = {"streamhost_per_1k": statistics.median(sh), "quix_per_1k": statistics.median(qx)}
            if api in per_request:
                entry["streamhost_minus_quix_us_per_event"] = \
                    (entry["streamhost_per_1k"] - entry["quix_per_1k"]) * per_request[api] / 1000
                # Positive as well, for the side that sends more.
                entry["quix_minus_streamhost_us_per_event"] = -entry["streamhost_minus_quix_us_per_event"]
            compare[key][api] = entry
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
