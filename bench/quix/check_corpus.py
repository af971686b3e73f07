"""Does the Quix Streams peer judge like streamhost? The bad-input corpus through app.py's checks.

    ~/.cache/streamhost/venv-bench-HASH/bin/python bench/quix/check_corpus.py

Each tests/fixtures/bad-inputs/CODE--what.bin must get CODE, except where the corpus
expects the quality plugin alone and the benchmark's chain runs enrich first (which
upper-cases the country, so `us` is accepted as `US`, as streamhost with both plugins
does). Exit status 1 on any other difference.
"""
import sys
from pathlib import Path

from app import Reject, decode, enrich, quality

CORPUS = Path(__file__).resolve().parents[2] / "tests/fixtures/bad-inputs"
ENRICH_ACCEPTS = {"invalid_country--lower-case.bin"}


def main() -> int:
    differ = 0
    files = sorted(CORPUS.glob("*--*.bin"))
    for f in files:
        want = "accepted" if f.name in ENRICH_ACCEPTS else f.name.split("--")[0]
        try:
            quality(enrich(decode(f.read_bytes())))
            got = "accepted"
        except Reject as r:
            got = r.code
        if got != want:
            differ += 1
            print(f"{f.name}: expected {want}, got {got}")
    print(f"{len(files) - differ} of {len(files)} corpus cases judged like streamhost")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
