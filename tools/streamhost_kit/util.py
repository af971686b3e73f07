"""Waiting and logging."""

from __future__ import annotations

import os
import platform
import sys
import time


def wait_until(what: str, predicate, timeout: float = 90, interval: float = 1.0):
    """Poll `predicate` until it returns a truthy value (returned); fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def log(msg: str) -> None:
    """A time-stamped line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> str:
    """What a result file says of the machine it ran on: cores, system, load."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, load {load} at the end; "
            "read ratios within one run, not absolute times")
