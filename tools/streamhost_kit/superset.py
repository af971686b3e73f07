"""The Superset dashboard in a real browser (Debian's chromium, driven by Playwright),
and Superset's REST API. Playwright is imported when a browser is needed."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import warnings


CHROMIUM = os.environ.get("STREAMHOST_CHROMIUM", "/usr/bin/chromium")
SUPERSET = f"http://127.0.0.1:{os.environ.get('STREAMHOST_SUPERSET_PORT', '8088')}"
class SlowDashboard(UserWarning):
    """The dashboard got there, but only after a retry or a long wait: pytest lists these
    in its warnings summary, so a run that passes still says where the time went."""


CHARTS = {
    "Rolling average of events per country (5-minute windows, last 3 hours)",
    "Daily active users per country",
    "Event types",
    "Top 5 page URLs",
    "Dead-letter queue by reason",
}


def open_dashboard(superset: str = SUPERSET, *, screenshot) -> dict[str, dict]:
    """Wait until Superset serves (health, then a logged-in API call), log in, open the
    dashboard, wait for every chart's data request and then for every chart to render,
    with no error box and no warning sign on any; return each chart's data (slice name →
    the query result Superset's frontend received).
    The waits are on events, not on a fixed budget: a cold Superset (first start, cold
    workers and driver imports) answers its first requests slowly."""
    from playwright.sync_api import sync_playwright

    slices = {int(r["id"]): r["slice_name"] for r in wait_for_superset(superset)}
    by_id: dict[int, dict] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            # The frontend asks an outside host for a tracking pixel: answer it locally.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1150})
            page.set_default_timeout(120_000)

            # The handler only keeps the response: its body is read below, outside the
            # event handler (a handler that waits on the browser can stall the events).
            answered = {}

            def on_response(resp):
                if "/api/v1/chart/data" in resp.url and resp.request.method == "POST":
                    form = json.loads(resp.request.post_data or "{}").get("form_data", {})
                    answered[form.get("slice_id")] = resp

            page.on("response", on_response)
            trace = _PageTrace(page, superset)
            # The charts are waited for below, by their data requests.
            open_logged_in(page, f"{superset}/superset/dashboard/streamhost/", superset, trace)
            # 1. every chart's data request answered (each one runs a ClickHouse query)
            started = time.monotonic()
            while len(answered) < len(CHARTS):
                if time.monotonic() > started + 300:
                    raise AssertionError(f"chart data answered for {sorted(answered)} only, after 300 s\n"
                                         + trace.report())
                page.wait_for_timeout(250)
            waited = time.monotonic() - started
            if waited > 30:
                warnings.warn(SlowDashboard(f"the charts' data took {waited:.0f} s\n" + trace.report()))
            for slice_id, resp in answered.items():
                try:
                    body = resp.json()
                except Exception as e:  # noqa: BLE001 - recorded, asserted below
                    body = {"error": repr(e)}
                by_id[slice_id] = {"status": resp.status, "body": body}
            failed = {slices.get(k, k): v for k, v in by_id.items() if v["status"] != 200}
            assert not failed, f"chart data requests failed: {failed}"
            # 2. every chart drew what it received
            page.wait_for_function(
                """n => document.querySelectorAll('.dashboard-component-chart-holder').length === n
                        && document.querySelectorAll('.dashboard-component-chart-holder .loading').length === 0
                        && [...document.querySelectorAll('.dashboard-component-chart-holder')]
                             .every(h => h.querySelector('canvas, svg, table tbody tr, .ant-alert, [role=alert]'))""",
                arg=len(CHARTS), timeout=120_000)
            page.wait_for_timeout(1500)  # echarts animates the first paint
            holders = page.query_selector_all(".dashboard-component-chart-holder")
            names = {}
            for h in holders:
                title = h.query_selector("[data-test=editable-title], .header-title, .editable-title")
                text = (title.inner_text() if title else h.inner_text().split("\n")[0]).strip()
                errors = h.query_selector_all(".ant-alert-error, [role=alert], [data-test=error-message]")
                assert not errors, f"{text}: error box: {[e.inner_text() for e in errors]}"
                # A warning sign in the chart's header (Superset's when the query filled
                # the chart's row limit: "may show partial data"), or a warning box.
                warned = h.query_selector_all(WARNING)
                assert not warned, f"{text}: a warning on the chart: {_warning_text(page, warned[0])!r}"
                assert not h.query_selector(".loading"), f"{text}: still loading"
                assert h.query_selector("canvas, table tbody tr"), f"{text}: nothing drawn"
                names[text] = h
            assert set(names) == CHARTS, sorted(names)
            # The tables show the figures as text, too.
            assert "/page/" in names["Top 5 page URLs"].inner_text()
            assert "invalid_country" in names["Dead-letter queue by reason"].inner_text()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    out = {}
    for slice_id, resp in by_id.items():
        assert resp["status"] == 200, resp
        (result,) = resp["body"]["result"]
        assert result["status"] == "success" and not result["error"], result
        assert result["rowcount"] > 0, f"{slices.get(slice_id)}: no rows"
        out[slices[slice_id]] = result
    return out


WARNING = "[data-test=slice-header] [aria-label=warning], .anticon-warning, .ant-alert-warning"


def _warning_text(page, sign) -> str:
    """What a warning sign says: its tooltip, shown by hovering over it."""
    try:
        sign.hover(timeout=5_000)
        tip = page.wait_for_selector(".ant-tooltip:not(.ant-tooltip-hidden)", timeout=5_000)
        return " ".join(tip.inner_text().split())
    except Exception as e:  # noqa: BLE001 - the assertion that asks must still fail
        return f"(no tooltip: {e!r}; element: {sign.evaluate('e => e.outerHTML')[:300]})"


class _PageTrace:
    """What a page did, for the message of a test that waited for it in vain: requests
    still open, requests that failed or got an error status, console errors, uncaught
    exceptions and crashes, and what the page shows."""

    def __init__(self, page, superset: str):
        self.page, self.superset = page, superset
        self.open: dict[object, str] = {}
        self.bad: list[str] = []
        self.console: list[str] = []
        page.on("request", lambda r: self.open.__setitem__(r, f"{r.method} {self._short(r.url)}"))
        page.on("requestfinished", lambda r: self.open.pop(r, None))
        page.on("requestfailed", self._failed)
        page.on("response", self._responded)
        page.on("console", lambda m: m.type == "error" and self.console.append(m.text[:300]))
        page.on("pageerror", lambda e: self.console.append(f"uncaught: {str(e)[:300]}"))
        page.on("crash", lambda _: self.console.append("the page crashed"))
        self.visited: list[str] = []
        page.on("framenavigated", lambda f: f == page.main_frame and self.visited.append(self._short(f.url)))

    def _short(self, url: str) -> str:
        return url.removeprefix(self.superset)[:160]

    def _responded(self, r) -> None:
        if r.status >= 400:
            self.bad.append(f"{r.status} {self._short(r.url)}")

    def _failed(self, r) -> None:
        self.open.pop(r, None)
        self.bad.append(f"failed {r.method} {self._short(r.url)}: {r.failure}")

    def report(self) -> str:
        try:
            shown = " ".join(self.page.inner_text("body", timeout=5_000).split())[:500]
        except Exception as e:  # noqa: BLE001 - a report must not hide the failure it reports
            shown = f"(body unreadable: {e!r})"
        return "\n".join([
            f"page: {self._short(self.page.url)} (visited: {self.visited[-10:]})",
            f"shows: {shown!r}",
            f"requests still open: {sorted(self.open.values())[:20]}",
            f"requests failed or refused: {self.bad[-20:]}",
            f"console errors: {self.console[-10:]}",
            f"ClickHouse is running: {_clickhouse_queries()}",
        ])


def _clickhouse_queries() -> object:
    """The queries ClickHouse is running, with their age (a chart waits on one)."""
    from .clickhouse import ch_rows

    try:
        return [f"{float(r['elapsed']):.0f}s {r['query'][:160]}" for r in ch_rows(
            "SELECT elapsed, query FROM system.processes WHERE query NOT LIKE '%system.processes%'")]
    except Exception as e:  # noqa: BLE001 - a report must not hide the failure it reports
        return repr(e)


def open_logged_in(page, url: str, superset: str, trace, attempts: int = 3) -> None:
    """Log in and open `url`. A session that did not hold (the page bounced back to the
    login form) is logged in again, and said in a warning: Flask keeps the session in a
    cookie, and a response the login page started before the form was sent can still
    arrive after the login's own and set the anonymous cookie again."""
    log_in(page, superset)
    for attempt in range(1, attempts + 1):
        page.goto(url, wait_until="domcontentloaded")
        if "/login" not in page.url:
            return
        warnings.warn(SlowDashboard(f"logged in, but {url} bounced to the login page "
                                    f"(attempt {attempt}); logging in again\n" + trace.report()))
        log_in(page, superset)
    raise AssertionError(f"{url} bounced to the login page {attempts} times after logging in\n"
                         + trace.report())


def log_in(page, superset: str = SUPERSET, attempts: int = 4) -> None:
    """Log in through the login form, as a person does. Done once the browser has left
    the login page (the URL changed), not when the welcome page finished loading: the
    welcome page is not needed, and its first load on a cold server can be slow. A form
    that did not take (a click before the form was ready, a worker restarted mid-request)
    is tried again; an attempt that did not take, and giving up, say what the page
    showed and the steps the browser went through."""
    started, steps = time.monotonic(), []

    def step(what: str) -> None:
        steps.append(f"{time.monotonic() - started:.1f}s {what.replace(superset, '')[:120]}")

    def on_nav(frame) -> None:
        if frame == page.main_frame:
            step(f"at {frame.url}")

    def on_resp(resp) -> None:
        if resp.request.is_navigation_request() or "/login" in resp.url:
            step(f"{resp.status} {resp.request.method} {resp.url}")

    page.on("framenavigated", on_nav)
    page.on("response", on_resp)
    try:
        _log_in(page, superset, attempts, steps)
    finally:
        page.remove_listener("framenavigated", on_nav)
        page.remove_listener("response", on_resp)


def _log_in(page, superset: str, attempts: int, steps: list[str]) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    seen = []
    user = os.environ.get("STREAMHOST_SUPERSET_USER", "admin")
    password = os.environ.get("STREAMHOST_SUPERSET_PASSWORD", "admin")
    for attempt in range(1, attempts + 1):
        page.goto(f"{superset}/login/", wait_until="domcontentloaded")
        if page.url.startswith(superset) and "/login" not in page.url:
            return  # already logged in (an earlier attempt's POST landed late)
        # The login page's own requests finish first: one answered after the form's POST
        # would set the anonymous session cookie again.
        try:
            page.wait_for_load_state("networkidle", timeout=30_000)
        except PlaywrightTimeout:
            steps.append("login page: network not idle after 30 s, sending the form anyway")
        page.fill("[data-test=username-input]", user)
        page.fill("[data-test=password-input]", password)
        page.click("[data-test=login-button]")
        try:
            # An error page (a dropped connection) is not logged in: tried again.
            page.wait_for_url(lambda url: url.startswith(superset) and "/login" not in url,
                              wait_until="commit", timeout=60_000)
            return
        except PlaywrightTimeout:
            try:
                shown = " ".join(page.inner_text("body", timeout=5_000).split())[:300]
            except PlaywrightTimeout:
                shown = "(no body)"
            seen.append(f"attempt {attempt}: still at {page.url}: {shown!r}")
            warnings.warn(SlowDashboard(f"Superset login, {seen[-1]}; steps: {steps[-12:]}"))
    raise AssertionError("Superset login never left the login page:\n" + "\n".join(seen)
                         + f"\nsteps: {steps[-20:]}")


def wait_for_superset(superset: str = SUPERSET, timeout: float = 300) -> list[dict]:
    """Superset is ready when /health says OK and a logged-in API call lists the
    dashboard's charts; return those charts."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{superset}/health", timeout=10) as r:
                if r.read().decode().strip() != "OK":
                    raise OSError("health: not OK")
            charts = superset_charts(superset)
            if {c["slice_name"] for c in charts} >= CHARTS:
                return charts
            last = sorted(c["slice_name"] for c in charts)
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(2)
    raise AssertionError(f"Superset at {superset} not ready after {timeout}s (last: {last!r})")


def superset_charts(superset: str = SUPERSET) -> list[dict]:
    """The charts Superset has, through its REST API (logged in with a token)."""
    body = json.dumps({"username": os.environ.get("STREAMHOST_SUPERSET_USER", "admin"),
                       "password": os.environ.get("STREAMHOST_SUPERSET_PASSWORD", "admin"),
                       "provider": "db", "refresh": False}).encode()
    req = urllib.request.Request(f"{superset}/api/v1/security/login", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        token = json.loads(r.read())["access_token"]
    req = urllib.request.Request(f"{superset}/api/v1/chart/?q=(page_size:100)",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["result"]
