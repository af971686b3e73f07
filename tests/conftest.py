"""Hooks for every test directory. Under the test command (scripts/test and
scripts/compose-test set STREAMHOST_TEST_ALL) or CI, a skip is a failure that names
what was missing: there every prerequisite is installed, so a skip would hide a test
that did not run."""

from __future__ import annotations

import os

import pytest


def strict() -> bool:
    return bool(os.environ.get("STREAMHOST_TEST_ALL") or os.environ.get("CI"))


def fail_if_skipped(report) -> None:
    if strict() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may be (STREAMHOST_TEST_ALL or CI): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    fail_if_skipped(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    fail_if_skipped(outcome.get_result())
