"""Two builds of the in-process bench (host/benches/pipeline.rs) alternating in one run:
old, new, old, new, ... so that the machine's load hits both alike. Writes a result file
for bench/results/.

    # in each checkout: scripts/build-plugins && cargo bench --bench pipeline --no-run
    python3 bench/pipeline_ab.py --old OLD_BENCH_BIN --old-plugins OLD/plugins/dist \\
        --new NEW_BENCH_BIN --new-plugins plugins/dist --pairs 5 \\
        --what "what old and new are" --out bench/results/DATE-pipeline-ab.json

`--instructions` also counts, with valgrind's callgrind, the instructions per event of
the whole validate stage (WASM chain and native rules) in each build: the same count for
the same build and input whatever else the machine does, so a small change shows where
times are noise. The same run simulates the caches and branch predictor, and reports
KCachegrind's cycle estimate (instructions + 10 per L1 miss and per mispredicted branch
+ 100 per last-level miss), which sees what instructions alone miss: code that waits on
memory. Each build must take `BENCH_PROFILE=native`.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from streamhost_kit.util import machine  # noqa: E402

WHOLE = "whole validate stage with WASM chain (process_batch)"
NATIVE = "whole validate stage with native rules (process_batch with the rules as Rust)"


def run(binary: str, plugins: str, events: int, rounds: int) -> dict:
    env = dict(os.environ, STREAMHOST_PLUGINS_BUILT=plugins, BENCH_EVENTS=str(events), BENCH_ROUNDS=str(rounds))
    out = subprocess.run([binary, "--bench"], env=env, capture_output=True, text=True, check=True).stdout
    rows = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^\| (.+?) \| (\d+) \|$", out, re.M)}
    ratio = float(re.search(r"whole stage native / WASM = ([\d.]+)", out).group(1))
    return {"rows": rows, "native_over_wasm": ratio}


def instructions(binary: str, plugins: str, rules: str, events: int = 20_000) -> dict:
    """Per event inside `Validate::process_batch`, one pass (`rules`: the bench's
    BENCH_PROFILE, `1` for the WASM chain or `native`): instructions, L1 and last-level
    cache misses, mispredicted branches, and the cycle estimate from them."""
    env = dict(os.environ, STREAMHOST_PLUGINS_BUILT=plugins, BENCH_PROFILE=rules,
               BENCH_EVENTS=str(events), BENCH_ROUNDS="1")
    command = ["valgrind", "--tool=callgrind", "--smc-check=all-non-file", "--callgrind-out-file=/dev/null",
               "--cache-sim=yes", "--branch-sim=yes",
               "--toggle-collect=*Validate*process_batch*", binary, "--bench"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    names = re.search(r"Events\s*: ([\w ]+)", out.stderr).group(1).split()
    counts = dict(zip(names, map(int, re.search(r"Collected : ([\d ]+)", out.stderr).group(1).split())))
    l1 = counts["I1mr"] + counts["D1mr"] + counts["D1mw"]
    ll = counts["ILmr"] + counts["DLmr"] + counts["DLmw"]
    mispredicted = counts["Bcm"] + counts["Bim"]
    per_event = {"instructions": counts["Ir"], "l1_misses": l1, "ll_misses": ll,
                 "mispredicted_branches": mispredicted,
                 "cycle_estimate": counts["Ir"] + 10 * (l1 + mispredicted) + 100 * ll}
    return {k: round(v / events, 1) for k, v in per_event.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True)
    p.add_argument("--old-plugins", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--new-plugins", required=True)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--what", required=True, help="what old and new are (commits, plugin builds)")
    p.add_argument("--out", required=True)
    p.add_argument("--instructions", action="store_true", help="also count instructions (valgrind)")
    a = p.parse_args()
    pairs = []
    for i in range(a.pairs):
        old, new = run(a.old, a.old_plugins, a.events, a.rounds), run(a.new, a.new_plugins, a.events, a.rounds)
        pairs.append((old, new))
        print(f"pair {i + 1}: old {old['rows'][WHOLE]:.0f} ns, new {new['rows'][WHOLE]:.0f} ns", flush=True)
    common = [k for k in pairs[0][0]["rows"] if k in pairs[0][1]["rows"]]
    med = {side: {k: statistics.median(p[i]["rows"][k] for p in pairs) for k in common}
           for i, side in enumerate(("old", "new"))}
    ratios = [n["rows"][WHOLE] / o["rows"][WHOLE] for o, n in pairs]
    result = {
        "date": datetime.date.today().isoformat(),
        "bench": f"in-process pipeline (host/benches/pipeline.rs), two builds alternating in one run: {a.what}",
        "command": f"python3 bench/pipeline_ab.py --pairs {a.pairs} --events {a.events} --rounds {a.rounds}"
                   f"{' --instructions' if a.instructions else ''} (old/new bench binaries and their plugins)",
        "machine": machine(),
        "unit": "ns per event, median over pairs of each run's median of its rounds",
        "figures": med,
        "derived": {
            "new_over_old_whole_stage_wasm_per_pair": [round(r, 3) for r in ratios],
            "new_over_old_whole_stage_wasm_median": round(statistics.median(ratios), 3),
            "native_over_wasm_old": [o["native_over_wasm"] for o, _ in pairs],
            "native_over_wasm_new": [n["native_over_wasm"] for _, n in pairs],
            "wasm_minus_native_whole_stage_ns": {s: med[s][WHOLE] - med[s][NATIVE] for s in med},
        },
    }
    if a.instructions:
        counts = {side: {rules: instructions(binary, plugins, flag)
                         for rules, flag in (("wasm", "1"), ("native", "native"))}
                  for side, binary, plugins in (("old", a.old, a.old_plugins), ("new", a.new, a.new_plugins))}
        result["per_event_whole_stage_callgrind"] = counts
        for what in ("instructions", "cycle_estimate"):
            result["derived"][f"{what}_new_over_old_wasm"] = round(
                counts["new"]["wasm"][what] / counts["old"]["wasm"][what], 3)
            result["derived"][f"{what}_native_over_wasm"] = {
                side: round(c["native"][what] / c["wasm"][what], 3) for side, c in counts.items()}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result["derived"], indent=1))


if __name__ == "__main__":
    main()
