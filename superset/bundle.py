"""The streamhost dashboard as code: writes a Superset import bundle (ZIP of YAML).

    python superset/bundle.py --database-uri URI --out bundle.zip
    superset import-dashboards -p bundle.zip -u admin

Everything the dashboard is made of is defined here: the ClickHouse connection, five
datasets, five charts and their layout. UUIDs are derived from names, so importing
again updates the same objects instead of adding copies. docs/howto/dashboard.md explains
each chart and the query it runs.
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
import zipfile
from datetime import datetime, timezone

from superset_config import SUPERSET_WEBSERVER_TIMEOUT

NAMESPACE = uuid.UUID("6f1f6c9e-4d3b-4a59-9d0e-3c1b5a7e2f10")
DASHBOARD_TITLE = "streamhost: events, windows, data quality"
DASHBOARD_SLUG = "streamhost"
DATABASE_NAME = "streamhost ClickHouse"


def uid(kind: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


def column(name: str, type_: str, *, dttm: bool = False, expression: str | None = None, label: str | None = None) -> dict:
    return {
        "column_name": name,
        "verbose_name": label,
        "is_dttm": dttm,
        "is_active": True,
        "type": type_,
        "advanced_data_type": None,
        "groupby": True,
        "filterable": True,
        "expression": expression,
        "description": None,
        "python_date_format": None,
        "extra": None,
    }


def metric(name: str, expression: str, label: str, description: str) -> dict:
    return {
        "metric_name": name,
        "verbose_name": label,
        "metric_type": None,
        "expression": expression,
        "description": description,
        "d3format": None,
        "currency": None,
        "extra": None,
        "warning_text": None,
    }


def rejection_metrics() -> list[dict]:
    """The metrics of a dataset of rejected records (code, message, raw, source position,
    dlq_time): the DLQ table's and the one the dashboard's chart reads."""
    return [
        metric(
            "records",
            "uniqExact(source_topic, source_partition, source_offset)",
            "records",
            "Distinct rejected records (re-deliveries counted once).",
        ),
        metric("newest_raw", "argMax(raw, dlq_time)", "newest raw payload", "The newest rejected payload, as stored."),
        metric("newest_message", "argMax(message, dlq_time)", "newest message", "The reason's text for that payload."),
        metric("last_seen", "toString(max(dlq_time))", "last seen (UTC)", "When this reason was last used."),
    ]


# Each source record has one identity (its position in my_events, or in the DLQ its
# position plus reason); counting distinct identities gives the same figure before and
# after ClickHouse merges re-deliveries away, without FINAL over the whole table.
EVENTS_METRIC = metric(
    "events",
    "uniqExact(source_partition, source_offset)",
    "events",
    "Distinct source records (re-deliveries counted once).",
)

DATASETS = {
    "events": {
        "table_name": "events",
        "sql": None,
        "main_dttm_col": "timestamp",
        "description": "Clean, enriched events (enriched_events topic).",
        "columns": [
            column("event_type", "String"),
            column("user_id", "UInt64"),
            column("page_url", "String"),
            column("button_id", "String"),
            column("timestamp", "DateTime", dttm=True),
            column("country", "String"),
            column("device_type", "Nullable(String)"),
            column("source_partition", "Int32"),
            column("source_offset", "Int64"),
            column("processed_by", "String"),
        ],
        "metrics": [EVENTS_METRIC],
    },
    # The deduplicated view over country_event_averages_raw (FINAL): one row per
    # (country, window) even before merges ran.
    "country_event_averages": {
        "table_name": "country_event_averages",
        "sql": None,
        "main_dttm_col": "window_end",
        "description": "Per-country 5-minute hopping windows (1-minute step) from streamhost, deduplicated.",
        "columns": [
            column("country", "String"),
            column("window_start", "DateTime", dttm=True),
            column("window_end", "DateTime", dttm=True),
            # ClickHouse 18.16 rejects `SELECT grain(window_end) AS window_end ... GROUP BY`:
            # the chart's time axis gets its own name.
            column("window_time", "DateTime", dttm=True, expression="window_end", label="window end"),
            column("average_events", "Float64"),
            column("event_count", "UInt64"),
        ],
        "metrics": [
            metric(
                "average_events",
                "max(average_events)",
                "average events / min",
                "Events per minute over the 5-minute window (one row per window and country).",
            )
        ],
    },
    "daily_active_users_final": {
        "table_name": "daily_active_users_final",
        "sql": None,
        "main_dttm_col": "day",
        "description": "Exact daily active users per country (uniqExact states merged).",
        "columns": [
            column("event_date", "Date"),
            column("day", "DateTime", dttm=True, expression="toDateTime(event_date)", label="day"),
            column("country", "String"),
            column("dau", "UInt32"),
        ],
        "metrics": [
            metric("dau", "sum(dau)", "daily active users", "Distinct user_id per day (and country when grouped)."),
        ],
    },
    # The five page URLs with the most events, ranked in ClickHouse: a table chart that
    # got its top 5 from the chart's row limit would fill that limit on every query, and
    # Superset marks a chart whose query hit its row limit with a warning ("may show
    # partial data"). The chart's own limit stays above five, as a bound, never reached.
    "top_page_urls": {
        "table_name": "top_page_urls",
        "sql": (
            "SELECT page_url, uniqExact(source_partition, source_offset) AS events\n"
            "FROM events_db.events\n"
            "GROUP BY page_url\n"
            "ORDER BY events DESC, page_url\n"
            "LIMIT 5"
        ),
        "main_dttm_col": None,
        "description": "The five page URLs with the most distinct events (re-deliveries counted once).",
        "columns": [
            column("page_url", "String"),
            column("events", "UInt64"),
        ],
        "metrics": [],
    },
    "dlq_table": {
        "table_name": "dlq_table",
        "sql": None,
        "main_dttm_col": "dlq_time",
        "description": "Rejected records with the reason and the original bytes.",
        "columns": [
            column("code", "String"),
            column("message", "String"),
            column("stage", "String"),
            column("rejected_by", "String"),
            column("source_topic", "String"),
            column("source_partition", "Int32"),
            column("source_offset", "Int64"),
            column("source_time", "DateTime", dttm=True),
            column("dlq_time", "DateTime", dttm=True),
            column("raw", "String"),
            column("raw_encoding", "String"),
        ],
        "metrics": rejection_metrics(),
    },
    # The chart's rows: the host's rejections (dlq_table) and, beside them, the records
    # ClickHouse itself could not parse (kafka_errors, current servers only: 18.16 has
    # no way to capture them and the table stays empty there), under one code.
    "rejected_records": {
        "table_name": "rejected_records",
        "sql": (
            "SELECT code, message, raw, source_topic, source_partition, source_offset, dlq_time\n"
            "FROM events_db.dlq_table\n"
            "UNION ALL\n"
            "SELECT 'clickhouse_parse_error' AS code, error AS message, raw, topic AS source_topic,\n"
            "       partition AS source_partition, offset AS source_offset, time AS dlq_time\n"
            "FROM events_db.kafka_errors"
        ),
        "main_dttm_col": "dlq_time",
        "description": "Rejected records: the host's DLQ and the records ClickHouse could not parse "
                       "(code clickhouse_parse_error).",
        "columns": [
            column("code", "String"),
            column("message", "String"),
            column("raw", "String"),
            column("source_topic", "String"),
            column("source_partition", "Int32"),
            column("source_offset", "Int64"),
            column("dlq_time", "DateTime", dttm=True),
        ],
        "metrics": rejection_metrics(),
    },
}

RECENT = 'DATEADD(DATETIME("now"), -3, hour) : now'
WEEK = 'DATEADD(DATETIME("now"), -7, day) : now'


def since(column: str, time_range: str) -> dict:
    """A chart's time range, as the filter on its time axis that Superset applies."""
    return {
        "time_range": time_range,
        "adhoc_filters": [
            {
                "clause": "WHERE",
                "expressionType": "SIMPLE",
                "operator": "TEMPORAL_RANGE",
                "subject": column,
                "comparator": time_range,
            }
        ],
    }

# Both line charts: one line per country, the same legend and tooltip.
LINE_CHART = {
    "groupby": ["country"],
    "row_limit": 10000,
    "truncate_metric": True,
    "show_legend": True,
    "legendType": "scroll",
    "rich_tooltip": True,
}
COMMON = {"adhoc_filters": [], "time_range": "No filter", "extra_form_data": {}, "dashboards": []}

CHARTS = [
    {
        "slice_name": "Rolling average of events per country (5-minute windows, last 3 hours)",
        "dataset": "country_event_averages",
        "viz_type": "echarts_timeseries_line",
        "width": 6,
        "params": {
            "x_axis": "window_time",
            "time_grain_sqla": "PT1M",
            # Recent windows only: a line per minute over days is unreadable, and the
            # windows of the last hours are what a live dashboard is for.
            **since("window_time", RECENT),
            **LINE_CHART,
            "metrics": ["average_events"],
            "y_axis_title": "events / min",
            "y_axis_title_margin": 30,
            "markerEnabled": True,
            "markerSize": 4,
        },
    },
    {
        "slice_name": "Daily active users per country",
        "dataset": "daily_active_users_final",
        "viz_type": "echarts_timeseries_line",
        "width": 6,
        "params": {
            "x_axis": "day",
            "time_grain_sqla": "P1D",
            # The last seven days (today's figure is the day so far).
            **since("day", WEEK),
            **LINE_CHART,
            "metrics": ["dau"],
            "markerEnabled": True,
            "markerSize": 6,
        },
    },
    {
        "slice_name": "Event types",
        "dataset": "events",
        "viz_type": "pie",
        "width": 4,
        "params": {
            "groupby": ["event_type"],
            "metric": "events",
            "row_limit": 100,
            "sort_by_metric": True,
            "show_labels": True,
            "show_legend": True,
            "label_type": "percent",
            "number_format": "SMART_NUMBER",
            "donut": False,
            "outerRadius": 70,
        },
    },
    {
        "slice_name": "Top 5 page URLs",
        "dataset": "top_page_urls",
        "viz_type": "table",
        "width": 3,
        "params": {
            # The dataset ranks and cuts to five (see top_page_urls): the table shows it.
            "query_mode": "raw",
            "all_columns": ["page_url", "events"],
            "order_by_cols": [json.dumps(["events", False])],
            "row_limit": 100,
            "server_page_length": 10,
            "include_search": False,
            "show_cell_bars": True,
            "percent_metrics": [],
        },
    },
    {
        "slice_name": "Dead-letter queue by reason",
        "dataset": "rejected_records",
        "viz_type": "table",
        "width": 5,
        "params": {
            "query_mode": "aggregate",
            "groupby": ["code"],
            "metrics": ["records", "last_seen", "newest_message", "newest_raw"],
            "timeseries_limit_metric": "records",
            "order_desc": True,
            "row_limit": 100,
            "server_page_length": 10,
            "include_search": False,
            "show_cell_bars": False,
            "percent_metrics": [],
        },
    },
]

ROWS = [[0, 1], [2, 3, 4]]


def database_yaml(uri: str) -> dict:
    return {
        "database_name": DATABASE_NAME,
        "sqlalchemy_uri": uri,
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_file_upload": False,
        "extra": {
            "allows_virtual_table_explore": True,
            # clickhouse-sqlalchemy waits forever on a ClickHouse that does not answer,
            # holding a Superset thread: give up before the browser does, so the chart
            # shows the timeout.
            "engine_params": {"connect_args": {"timeout": SUPERSET_WEBSERVER_TIMEOUT - 10}},
        },
        "uuid": uid("database", DATABASE_NAME),
        "version": "1.0.0",
    }


def dataset_yaml(key: str, spec: dict) -> dict:
    return {
        "table_name": spec["table_name"],
        "main_dttm_col": spec["main_dttm_col"],
        "description": spec["description"],
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "catalog": None,
        "schema": "events_db",
        "sql": spec["sql"],
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "folders": None,
        "uuid": uid("dataset", key),
        "metrics": spec["metrics"],
        "columns": spec["columns"],
        "version": "1.0.0",
        "database_uuid": uid("database", DATABASE_NAME),
    }


def chart_yaml(chart: dict) -> dict:
    params = {**COMMON, **chart["params"], "viz_type": chart["viz_type"]}
    return {
        "slice_name": chart["slice_name"],
        "description": None,
        "certified_by": None,
        "certification_details": None,
        "viz_type": chart["viz_type"],
        "params": params,
        "query_context": None,
        "cache_timeout": None,
        "uuid": uid("chart", chart["slice_name"]),
        "version": "1.0.0",
        "dataset_uuid": uid("dataset", chart["dataset"]),
    }


def dashboard_yaml() -> dict:
    position: dict = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"children": ["GRID_ID"], "id": "ROOT_ID", "type": "ROOT"},
        "HEADER_ID": {"id": "HEADER_ID", "meta": {"text": DASHBOARD_TITLE}, "type": "HEADER"},
        "GRID_ID": {"children": [], "id": "GRID_ID", "parents": ["ROOT_ID"], "type": "GRID"},
    }
    for r, members in enumerate(ROWS):
        row_id = f"ROW-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "children": [],
            "id": row_id,
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
            "parents": ["ROOT_ID", "GRID_ID"],
            "type": "ROW",
        }
        for i in members:
            chart = CHARTS[i]
            chart_id = f"CHART-{i}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {
                "children": [],
                "id": chart_id,
                # chartId is a placeholder the importer replaces; without it the import fails.
                "meta": {
                    "chartId": i + 1,
                    "height": 60,
                    "sliceName": chart["slice_name"],
                    "uuid": uid("chart", chart["slice_name"]),
                    "width": chart["width"],
                },
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "type": "CHART",
            }
    return {
        "dashboard_title": DASHBOARD_TITLE,
        "description": None,
        "css": "",
        "slug": DASHBOARD_SLUG,
        "certified_by": "",
        "certification_details": "",
        "published": True,
        "uuid": uid("dashboard", DASHBOARD_SLUG),
        "position": position,
        "metadata": {
            "color_scheme": "supersetColors",
            "refresh_frequency": 30,
            "timed_refresh_immune_slices": [],
            "expanded_slices": {},
            "label_colors": {},
            "shared_label_colors": [],
            "map_label_colors": {},
            "color_scheme_domain": [],
            "cross_filters_enabled": False,
            "native_filter_configuration": [],
            "chart_configuration": {},
            "global_chart_configuration": {},
            "default_filters": "{}",
        },
        "version": "1.0.0",
    }


def bundle(database_uri: str) -> bytes:
    """The ZIP Superset's importer takes. YAML is a superset of JSON, so JSON is written."""
    root = "streamhost_dashboard"
    files = {
        "metadata.yaml": {
            "version": "1.0.0",
            "type": "Dashboard",
            "timestamp": datetime.now(timezone.utc).isoformat(),
        },
        f"databases/{DATABASE_NAME.replace(' ', '_')}.yaml": database_yaml(database_uri),
        f"dashboards/{DASHBOARD_SLUG}.yaml": dashboard_yaml(),
    }
    for key, spec in DATASETS.items():
        files[f"datasets/{DATABASE_NAME.replace(' ', '_')}/{key}.yaml"] = dataset_yaml(key, spec)
    for chart in CHARTS:
        files[f"charts/{chart['slice_name'][:40].replace(' ', '_').replace('/', '_')}.yaml"] = chart_yaml(chart)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(f"{root}/{name}", json.dumps(content, indent=2))
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-uri", required=True, help="SQLAlchemy URI of events_db, e.g. clickhouse+http://default:@127.0.0.1:8123/events_db")
    ap.add_argument("--out", required=True, help="where to write the ZIP")
    args = ap.parse_args()
    with open(args.out, "wb") as f:
        f.write(bundle(args.database_uri))


if __name__ == "__main__":
    main()
