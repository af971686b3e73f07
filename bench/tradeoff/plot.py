"""Draw docs/img/tradeoffs.svg from bench/tradeoff/results.json: dashboard query time and
freshness, host windows next to the ClickHouse-side query. Plain SVG, no plotting
library (nothing to install); bench/tradeoff/run calls it after each full run.

    python bench/tradeoff/plot.py [results.json] [out.svg]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST, CH = "#1f77b4", "#ff7f0e"
W, ROW, LABEL, BAR = 760, 34, 230, 12


def bars(title: str, unit: str, rows: list[tuple[str, float, float]], y0: int, log: bool) -> tuple[list[str], int]:
    """A panel of paired horizontal bars (host, ClickHouse) per row; returns (svg, height)."""
    top = max(v for _, h, c in rows for v in (h, c))
    span = W - LABEL - 90

    def length(v: float) -> float:
        if log:  # 0.1 .. top on a log scale, so 1 ms and 1 s both show
            lo = 0.1
            return span * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(top) - math.log10(lo))
        return span * v / top

    out = [f'<text x="10" y="{y0 + 16}" font-size="15" font-weight="bold">{title}</text>']
    y = y0 + 30
    for label, h, c in rows:
        out.append(f'<text x="{LABEL - 8}" y="{y + BAR + 4}" font-size="12" text-anchor="end">{label}</text>')
        for i, (v, colour) in enumerate(((h, HOST), (c, CH))):
            by = y + i * (BAR + 2)
            out.append(f'<rect x="{LABEL}" y="{by}" width="{length(v):.1f}" height="{BAR}" fill="{colour}"/>')
            out.append(f'<text x="{LABEL + length(v) + 5:.1f}" y="{by + BAR - 2}" font-size="11">{v:,.1f} {unit}</text>')
        y += ROW
    return out, y - y0 + 10


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE.parents[1] / "docs" / "img" / "tradeoffs.svg"
    r = json.loads(src.read_text())
    q = r["costs"]["queries"]
    live = r["resources"]["live"]
    query_rows = [
        ("2 h of windows (30k events)", q["burst_2h"]["host"]["elapsed_ms"], q["burst_2h"]["ch"]["elapsed_ms"]),
        ("last hour of a 1M-event day", q["scale_last_1h"]["host"]["elapsed_ms"], q["scale_last_1h"]["ch"]["elapsed_ms"]),
        ("a whole 1M-event day", q["scale_1d"]["host"]["elapsed_ms"], q["scale_1d"]["ch"]["elapsed_ms"]),
    ]
    fresh_rows = [
        ("event → a figure with it (median)", live["event_to_figure_host"]["median"], live["event_to_figure_ch"]["median"]),
        ("event → a figure with it (max)", live["event_to_figure_host"]["max"], live["event_to_figure_ch"]["max"]),
    ]
    svg = [f'<text x="10" y="20" font-size="13">bench/tradeoff run of {r["date"]} (one run, 2 shared cores)</text>',
           f'<rect x="{LABEL}" y="32" width="12" height="12" fill="{HOST}"/><text x="{LABEL + 18}" y="42" font-size="12">host windows (country_event_averages)</text>',
           f'<rect x="{LABEL + 260}" y="32" width="12" height="12" fill="{CH}"/><text x="{LABEL + 278}" y="42" font-size="12">ClickHouse query over events</text>']
    y = 50
    panel, h = bars("Dashboard query time, ms (log scale)", "ms", query_rows, y, log=True)
    svg += panel
    y += h
    panel, h = bars("Freshness, seconds (host: final figure; ClickHouse: partial figure)", "s", fresh_rows, y, log=False)
    svg += panel
    y += h
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" font-family="sans-serif">'
                   f'<rect width="100%" height="100%" fill="white"/>{"".join(svg)}</svg>\n')
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
