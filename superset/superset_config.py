"""Superset settings for streamhost's dashboard (local stack and compose stack).

Loaded through SUPERSET_CONFIG_PATH by scripts/dashboard and the compose service.
Everything machine-specific comes from the environment; docs/howto/dashboard.md explains it.
"""

import os

_home = os.environ.get("STREAMHOST_SUPERSET_HOME", os.path.expanduser("~/.superset"))

# Metadata (users, charts, dashboards) in SQLite: one file per stack, rebuilt from the
# bundle in superset/bundle/ whenever it is lost.
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "STREAMHOST_SUPERSET_METADATA_URI", f"sqlite:///{_home}/superset.db"
)
# A fixed key is fine on loopback for a demo; the compose file passes its own.
SECRET_KEY = os.environ.get("SUPERSET_SECRET_KEY", "streamhost-local-stack-not-a-secret")

# Offline machines: no telemetry, no external fetches from the server side.
SCARF_ANALYTICS = False
# The demo is served over plain http on 127.0.0.1; Talisman's HTTPS/CSP defaults get in the way.
TALISMAN_ENABLED = False
WTF_CSRF_ENABLED = True

ROW_LIMIT = 10000
SUPERSET_WEBSERVER_TIMEOUT = 120

# Superset 6 rewrites queries through sqlglot, which turns toStartOfHour/Day/... into
# dateTrunc(), a function ClickHouse 18.16 lacks. These forms survive the rewrite and
# work on every ClickHouse version (docs/howto/dashboard.md, "ClickHouse 18.16 quirks, and pins").
TIME_GRAIN_ADDON_EXPRESSIONS = {
    "clickhouse": {
        "PT1M": "toDateTime(intDiv(toUInt32(toDateTime({col})), 60) * 60)",
        "PT5M": "toDateTime(intDiv(toUInt32(toDateTime({col})), 300) * 300)",
        "PT1H": "toDateTime(intDiv(toUInt32(toDateTime({col})), 3600) * 3600)",
        "P1D": "toDateTime(toDate({col}))",
    }
}
