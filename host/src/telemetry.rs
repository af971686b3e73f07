//! Every metric the host exports, defined once: its name, kind, labels, help text and,
//! for a histogram, its buckets. Code records through these definitions
//! (`metrics::counter!(telemetry::RECORDS_IN.name, ...)`); [`install`] gives the
//! exporter the help text and buckets; the table of docs/reference/metrics.md is
//! [`reference_table`], checked by a test.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric's definition.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// Label names, with their values where they are a fixed set, as the docs show them.
    pub labels: &'static str,
    /// The Prometheus HELP text, and the meaning column of the reference (Markdown).
    pub help: &'static str,
    /// A histogram's bucket bounds, for what it measures.
    pub buckets: &'static [f64],
}

const fn counter(name: &'static str, labels: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        labels,
        help,
        buckets: &[],
    }
}

const fn gauge(name: &'static str, labels: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        labels,
        help,
        buckets: &[],
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static str,
    help: &'static str,
    buckets: &'static [f64],
) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        labels,
        help,
        buckets,
    }
}

/// A batch's whole way, read to commit: bounded below by the broker's round trip
/// (milliseconds) and above by `kafka.delivery_timeout_secs`.
const BATCH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];
/// The host's own work on a batch of up to 1,024 events: tens of microseconds to tens of
/// milliseconds (a plugin's deadline, `plugins.batch_deadline_ms`, is the far end).
const PROCESS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// A file event to its chain serving: milliseconds from the compiled-plugin cache, up to
/// a compile of `plugins.compile_deadline_ms` and a wait for a busy stage's batch.
const SWAP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub const RECORDS_IN: Metric = counter(
    "streamhost_records_in_total",
    "`topic`",
    "records read, per input topic (`my_events`: the validate stage; `enriched_events`: the window stage)",
);
pub const RECORDS_OUT: Metric = counter(
    "streamhost_records_out_total",
    "`topic`",
    "records acknowledged by the broker, per output topic",
);
pub const DELIVERY_FAILURES: Metric = counter(
    "streamhost_delivery_failures_total",
    "`class` (`transient`, `too_large`, `permanent`)",
    "records the broker or the producer did not take; the first one stops the stage",
);
pub const REJECTIONS: Metric = counter(
    "streamhost_rejections_total",
    "`stage`, `code`",
    "DLQ records by stage (`decode`, `plugin`, `route`, `window`) and code (host codes, the first 200 plugin codes, then `other`: [dlq](dlq.md#what-a-plugin-may-answer))",
);
pub const REJECTION_LOGS_SUPPRESSED: Metric = counter(
    "streamhost_rejection_logs_suppressed_total",
    "",
    "rejections not logged because of the log's rate limit (they are still counted and dead-lettered)",
);
pub const BATCH_SECONDS: Metric = histogram(
    "streamhost_batch_seconds",
    "`stage`",
    "batch latency: read → all acks → commit",
    BATCH_BUCKETS,
);
pub const BATCH_PROCESS_SECONDS: Metric = histogram(
    "streamhost_batch_process_seconds",
    "`stage`",
    "the stage's own work on a batch (validate: decode + plugins + route)",
    PROCESS_BUCKETS,
);
pub const BATCHES_IN_FLIGHT: Metric = gauge(
    "streamhost_batches_in_flight",
    "`stage`",
    "batches produced and not yet acknowledged",
);
pub const ASSIGNED_PARTITIONS: Metric = gauge(
    "streamhost_assigned_partitions",
    "`stage`",
    "partitions this instance owns",
);
pub const CONSUMER_LAG: Metric = gauge(
    "streamhost_consumer_lag",
    "`stage`, `partition`",
    "records behind, per input partition this instance owns: the partition's end minus the next offset the stage reads, as librdkafka's statistics last gave them (every 5 s, `statistics.interval.ms`; no request to the broker); 0 once it has read everything, and for a partition revoked from it",
);
pub const STAGE_READY: Metric = gauge(
    "streamhost_stage_ready",
    "`stage`",
    "0 while the stage sees an orphaned partition (then `/health` is 503)",
);
pub const ORPHANED_PARTITIONS: Metric =
    gauge("streamhost_orphaned_partitions", "`stage`", "how many");
pub const MISSING_TOPICS: Metric = gauge(
    "streamhost_missing_topics",
    "",
    "configured topics the broker does not have (checked every second while one is missing, every 10 s otherwise); above 0, `/health` is 503",
);
pub const GROUP_REJOINS: Metric = counter(
    "streamhost_group_rejoins_total",
    "`stage`",
    "times this instance rejoined its group to take over orphaned partitions",
);
pub const PLUGIN_CALLS: Metric = counter(
    "streamhost_plugin_calls_total",
    "`plugin`",
    "plugin calls (one per batch, more when a failed batch is judged again in halves)",
);
pub const PLUGIN_FAILURES: Metric = counter(
    "streamhost_plugin_failures_total",
    "`plugin`",
    "plugin calls that failed (trap, deadline, memory cap, refused answer); the events they leave unjudged go to the DLQ as `plugin_failed`",
);
pub const PLUGIN_DISABLED: Metric = counter(
    "streamhost_plugin_disabled_total",
    "`plugin`",
    "circuit breaker openings",
);
pub const PLUGIN_CHAIN_REFUSALS: Metric = counter(
    "streamhost_plugin_chain_refusals_total",
    "",
    "directory changes not installed because a plugin would not start or a `plugins.must_serve` rule would be missing (the serving chain stays)",
);
pub const PLUGIN_LOADS: Metric = counter(
    "streamhost_plugin_loads_total",
    "`result` (`ok`, `rejected`)",
    "plugin files loaded or rejected",
);
pub const PLUGIN_INFO: Metric = gauge(
    "streamhost_plugin_info",
    "`file`, `plugin`, `version`, `wit`",
    "1 for the version a plugin file serves in, 0 for the versions it served in before",
);
pub const PLUGIN_SWAPS: Metric = counter("streamhost_plugin_swaps_total", "", "live chain swaps");
pub const PLUGIN_SWAP_SECONDS: Metric = histogram(
    "streamhost_plugin_swap_seconds",
    "",
    "file event → new chain serving",
    SWAP_BUCKETS,
);
pub const WINDOW_RECORDS: Metric = counter(
    "streamhost_window_records_total",
    "",
    "records read by the window stage",
);
pub const OPEN_WINDOWS: Metric =
    gauge("streamhost_open_windows", "", "open (key, window) counters");
pub const WINDOWS_CLOSED: Metric =
    counter("streamhost_windows_closed_total", "", "windows emitted");
pub const WATERMARK_LAG: Metric = gauge(
    "streamhost_watermark_lag_seconds",
    "`partition`",
    "event-time lag of the window stage, per `enriched_events` partition it owns: the wall clock minus the partition's watermark (a window closes once the watermark passes its end plus the grace)",
);
pub const LATE_EVENTS: Metric = counter(
    "streamhost_late_events_total",
    "",
    "events whose windows had all closed (`late_event`)",
);
pub const WINDOW_REREAD_SKIPPED: Metric = counter(
    "streamhost_window_reread_skipped_total",
    "",
    "records re-delivered after a rebalance, skipped by offset",
);
pub const WINDOW_DUPLICATES_SKIPPED: Metric = counter(
    "streamhost_window_duplicates_skipped_total",
    "",
    "events the validate stage wrote twice, skipped by source position",
);

/// Every metric, in the reference's order.
pub const CATALOGUE: &[Metric] = &[
    RECORDS_IN,
    RECORDS_OUT,
    DELIVERY_FAILURES,
    REJECTIONS,
    REJECTION_LOGS_SUPPRESSED,
    BATCH_SECONDS,
    BATCH_PROCESS_SECONDS,
    BATCHES_IN_FLIGHT,
    ASSIGNED_PARTITIONS,
    CONSUMER_LAG,
    STAGE_READY,
    ORPHANED_PARTITIONS,
    MISSING_TOPICS,
    GROUP_REJOINS,
    PLUGIN_CALLS,
    PLUGIN_FAILURES,
    PLUGIN_DISABLED,
    PLUGIN_CHAIN_REFUSALS,
    PLUGIN_LOADS,
    PLUGIN_INFO,
    PLUGIN_SWAPS,
    PLUGIN_SWAP_SECONDS,
    WINDOW_RECORDS,
    OPEN_WINDOWS,
    WINDOWS_CLOSED,
    WATERMARK_LAG,
    LATE_EVENTS,
    WINDOW_REREAD_SKIPPED,
    WINDOW_DUPLICATES_SKIPPED,
];

/// The Prometheus recorder with every histogram's buckets and every metric's help text.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for m in CATALOGUE.iter().filter(|m| m.kind == Kind::Histogram) {
        builder = builder.set_buckets_for_metric(Matcher::Full(m.name.to_string()), m.buckets)?;
    }
    let handle = builder.install_recorder()?;
    for m in CATALOGUE {
        let help = plain(m.help);
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, help),
            Kind::Gauge => metrics::describe_gauge!(m.name, help),
            Kind::Histogram => metrics::describe_histogram!(m.name, help),
        }
    }
    Ok(handle)
}

/// Help text without Markdown: code spans and links as plain words.
fn plain(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out.replace('`', "")
}

/// The metrics table of docs/reference/metrics.md, from the catalogue.
pub fn reference_table() -> String {
    let mut table = String::from("| metric | labels | meaning |\n|---|---|---|\n");
    for m in CATALOGUE {
        let kind = match m.kind {
            Kind::Counter | Kind::Gauge => String::new(),
            Kind::Histogram => format!(
                " (histogram; buckets {} s)",
                m.buckets
                    .iter()
                    .map(f64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let labels = match m.labels {
            "" => " ".to_string(),
            labels => format!(" {labels} "),
        };
        table.push_str(&format!("| `{}` |{labels}| {}{kind} |\n", m.name, m.help));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const REFERENCE: &str = "../docs/reference/metrics.md";

    /// The reference's table is the catalogue's. With STREAMHOST_WRITE_DOCS=1 the test
    /// writes it there instead of failing.
    #[test]
    fn the_metrics_reference_is_the_catalogue() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
        let page = std::fs::read_to_string(&path).unwrap();
        let start = page
            .find("| metric | labels | meaning |")
            .expect("the metrics table");
        let end = page[start..]
            .find("\n\n")
            .map_or(page.len(), |i| start + i + 1);
        let want = reference_table();
        if page[start..end] == want {
            return;
        }
        if std::env::var_os("STREAMHOST_WRITE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &page[..start], &page[end..])).unwrap();
            return;
        }
        panic!(
            "{REFERENCE}: the metrics table is not the catalogue's (host/src/telemetry.rs); \
             rewrite it with STREAMHOST_WRITE_DOCS=1 cargo test -p streamhost telemetry"
        );
    }

    #[test]
    fn names_are_unique_and_every_histogram_has_buckets() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        for m in CATALOGUE {
            assert!(m.name.starts_with("streamhost_"), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Histogram,
                !m.buckets.is_empty(),
                "{}",
                m.name
            );
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
        }
    }

    #[test]
    fn every_metric_the_code_records_is_in_the_catalogue() {
        // A name written at a call site instead of its definition would escape the
        // catalogue (no help, no buckets, not in the reference).
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stray = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("telemetry.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, line) in text.lines().enumerate() {
                        if line.contains("!(\"streamhost_") {
                            stray.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                        }
                    }
                }
            }
        }
        assert!(
            stray.is_empty(),
            "metric names outside the catalogue:\n{}",
            stray.join("\n")
        );
    }

    #[test]
    fn help_text_is_plain() {
        assert_eq!(
            plain("codes (`a`, then `other`: [dlq](dlq.md#x)) and `b`"),
            "codes (a, then other: dlq) and b"
        );
    }
}
