//! `streamhost dlq replay`: put dead-lettered input events back into the input topic,
//! e.g. after a rule was fixed.
//!
//! * A bounded read: every partition of `dlq` from its low to its high watermark as
//!   they were at the start. Records written meanwhile (including those the pipeline
//!   dead-letters again after a replay) are not read, so a replay never feeds itself.
//! * A record is replayed when its code is one of the chosen ones, its time (`dlq_time`
//!   or `source_time`) is in `[since, until)`, and it came from the input topic: records
//!   of other stages (e.g. `late_event` from the window stage, whose `raw` is an
//!   `enriched_events` record) are left alone unless asked for.
//! * The original bytes are restored from `raw` ([`DlqRecord::original_bytes`]) and
//!   produced with the pipeline's producer settings (acks=all, idempotent); the run
//!   waits for every acknowledgement and reports any failure.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::config::KafkaConfig;
use crate::kafka::sink::OneByOne;
use crate::kafka::tail::{Bounded, Start, TailError};
use crate::kafka::Clients;
use crate::records::dlq::{DlqRecord, RawError};
use crate::stages::io::SinkError;
use crate::timefmt;

// ---------------------------------------------------------------- what to replay

/// Which timestamp of a DLQ record `--since`/`--until` apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeField {
    /// When the record was dead-lettered (`dlq_time`).
    #[default]
    DlqTime,
    /// The Kafka timestamp of the original input record (`source_time`).
    SourceTime,
}

/// A time argument: `YYYY-MM-DD hh:mm:ss`, UTC (the DLQ's own format).
pub fn parse_time(text: &str) -> Result<i64, String> {
    timefmt::parse(text.trim())
        .ok_or_else(|| format!("{text:?} is not a UTC time like '2026-11-24 10:20:00'"))
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Codes to replay; empty: every code (only allowed with `dry_run`).
    pub codes: Vec<String>,
    /// Inclusive lower bound, seconds since the epoch.
    pub since: Option<i64>,
    /// Exclusive upper bound, so that consecutive ranges never overlap.
    pub until: Option<i64>,
    pub time_field: TimeField,
    /// Replay only records whose `source_topic` is this; `None`: any source.
    pub source_topic: Option<String>,
    /// Topic to produce to.
    pub to: String,
    pub dry_run: bool,
}

/// What to do with one DLQ record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Code or time outside the selection.
    NotSelected,
    /// Selected, but it came from another topic than the input (e.g. `late_event`).
    OtherSource,
    /// Selected, but `raw` cannot be turned back into bytes.
    Unrestorable(RawError),
    /// Selected: produce these bytes.
    Replay(Vec<u8>),
}

impl Plan {
    pub fn selects(&self, entry: &DlqRecord) -> bool {
        if !self.codes.is_empty() && !self.codes.iter().any(|c| *c == entry.code) {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let time = match self.time_field {
            TimeField::DlqTime => &entry.dlq_time,
            TimeField::SourceTime => &entry.source_time,
        };
        // A record whose time is unreadable is in no range.
        let Some(t) = timefmt::parse(time) else {
            return false;
        };
        self.since.is_none_or(|since| t >= since) && self.until.is_none_or(|until| t < until)
    }

    pub fn decide(&self, entry: &DlqRecord) -> Decision {
        if !self.selects(entry) {
            return Decision::NotSelected;
        }
        if self
            .source_topic
            .as_ref()
            .is_some_and(|topic| *topic != entry.source_topic)
        {
            return Decision::OtherSource;
        }
        match entry.original_bytes() {
            Ok(bytes) => Decision::Replay(bytes),
            Err(e) => Decision::Unrestorable(e),
        }
    }

    fn describe(&self) -> String {
        let codes = if self.codes.is_empty() {
            "any code".to_string()
        } else {
            format!("code in [{}]", self.codes.join(", "))
        };
        let field = match self.time_field {
            TimeField::DlqTime => "dlq_time",
            TimeField::SourceTime => "source_time",
        };
        let time = match (self.since, self.until) {
            (None, None) => String::new(),
            (since, until) => format!(
                ", {field} in [{}, {})",
                since.map_or("-".into(), timefmt::datetime),
                until.map_or("-".into(), timefmt::datetime)
            ),
        };
        format!("{codes}{time}")
    }
}

// ---------------------------------------------------------------- the summary

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeCounts {
    pub selected: u64,
    pub replayed: u64,
    pub other_source: u64,
    pub unrestorable: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub topic: String,
    pub to: String,
    pub selection: String,
    pub source_topic: Option<String>,
    pub dry_run: bool,
    /// Records read from the DLQ (its content at the start).
    pub read: u64,
    /// Records that are not DLQ records (not JSON, fields missing).
    pub unreadable: u64,
    pub per_code: BTreeMap<String, CodeCounts>,
    /// The first delivery error, if any delivery failed.
    pub first_failure: Option<String>,
}

impl Summary {
    fn total(&self, f: impl Fn(&CodeCounts) -> u64) -> u64 {
        self.per_code.values().map(f).sum()
    }
    pub fn selected(&self) -> u64 {
        self.total(|c| c.selected)
    }
    /// Acknowledged by the broker (dry run: would be produced).
    pub fn replayed(&self) -> u64 {
        self.total(|c| c.replayed)
    }
    pub fn failed(&self) -> u64 {
        self.total(|c| c.failed)
    }
    pub fn unrestorable(&self) -> u64 {
        self.total(|c| c.unrestorable)
    }
    fn entry(&mut self, code: &str) -> &mut CodeCounts {
        self.per_code.entry(code.to_string()).or_default()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would replay"
        } else {
            "replayed"
        };
        writeln!(
            f,
            "dlq replay{}: read {} records of {} (its end at the start), {} unreadable",
            if self.dry_run { " (dry run)" } else { "" },
            self.read,
            self.topic,
            self.unreadable
        )?;
        writeln!(f, "selected {} ({})", self.selected(), self.selection)?;
        for (code, c) in &self.per_code {
            write!(
                f,
                "  {code:<26} selected {:>7}  {verb} {:>7}",
                c.selected, c.replayed
            )?;
            if c.other_source > 0 {
                write!(f, "  other source topic {}", c.other_source)?;
            }
            if c.unrestorable > 0 {
                write!(f, "  unrestorable {}", c.unrestorable)?;
            }
            if c.failed > 0 {
                write!(f, "  failed {}", c.failed)?;
            }
            writeln!(f)?;
        }
        let other: u64 = self.total(|c| c.other_source);
        if other > 0 {
            writeln!(
                f,
                "not replayed: {other} from another topic than {} (their raw is not an input event; --any-source to include them)",
                self.source_topic.as_deref().unwrap_or("the input topic")
            )?;
        }
        if self.unrestorable() > 0 {
            writeln!(
                f,
                "not replayed: {} whose raw could not be restored (see the log)",
                self.unrestorable()
            )?;
        }
        if self.dry_run {
            write!(
                f,
                "would replay {} to {} (dry run: nothing produced)",
                self.replayed(),
                self.to
            )
        } else {
            write!(
                f,
                "replayed {} to {} (acknowledged), {} failed",
                self.replayed(),
                self.to,
                self.failed()
            )?;
            if let Some(e) = &self.first_failure {
                write!(f, ": {e}")?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------- the run

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Config(Box<crate::config::ConfigError>),
    #[error("reading {topic}: {error} (brokers {brokers})")]
    Read {
        topic: String,
        error: Box<TailError>,
        brokers: String,
    },
    #[error(transparent)]
    Produce(Box<SinkError>),
    #[error("cannot start the replay's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("name the codes to replay with --code (a dry run without --code lists them all)")]
    NoCodes,
    #[error("--to {0} is the DLQ topic itself")]
    IntoDlq(String),
    #[error("--since is not before --until")]
    EmptyRange,
    #[error("reading {topic} stalled: no record for {idle:?} with partitions {partitions:?} not at their end")]
    Stalled {
        topic: String,
        idle: Duration,
        partitions: Vec<i32>,
    },
    #[error("{failed} of the selected records were not acknowledged by the broker (first error: {first}){}; {}", missing(*.to_missing, .to), acknowledged(*.replayed, .to))]
    Delivery {
        failed: u64,
        replayed: u64,
        first: String,
        to: String,
        /// The brokers say `to` does not exist. librdkafka may report that as a
        /// timeout, when its delivery timeout ends before its wait for the topic does.
        to_missing: bool,
    },
}

/// A run that stopped early: what was done until then, and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ReplayFailed {
    pub summary: Box<Summary>,
    /// Shown as this error's message (not as its source, so it is not printed twice).
    pub error: ReplayError,
}

fn missing(to_missing: bool, to: &str) -> String {
    if to_missing {
        format!(": topic {to} does not exist; create it first")
    } else {
        String::new()
    }
}

fn acknowledged(replayed: u64, to: &str) -> String {
    if replayed == 0 {
        "none was, so running it again is safe".to_string()
    } else {
        format!("{replayed} were and are in {to}: the same replay again would produce those again (narrow it with --since/--until)")
    }
}

/// Records produced but not yet acknowledged; settled in chunks of this size.
const IN_FLIGHT: usize = 5_000;
/// Metadata and watermark requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait for the next record of the DLQ.
const POLL: Duration = Duration::from_millis(200);

/// Read `kafka.dlq_topic` to its end at the start, replay what `plan` selects.
/// `idle` bounds the wait for the next record while partitions are not at their end.
pub fn run(
    kafka_config: &KafkaConfig,
    plan: &Plan,
    idle: Duration,
) -> Result<Summary, ReplayFailed> {
    let dlq_topic = kafka_config.dlq_topic.as_str();
    let mut summary = Summary {
        topic: dlq_topic.to_string(),
        to: plan.to.clone(),
        selection: plan.describe(),
        source_topic: plan.source_topic.clone(),
        dry_run: plan.dry_run,
        ..Summary::default()
    };
    let replayed = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(ReplayError::from)
        .and_then(|runtime| runtime.block_on(replay(kafka_config, plan, idle, &mut summary)));
    match replayed {
        Ok(()) => Ok(summary),
        Err(error) => Err(ReplayFailed {
            summary: Box::new(summary),
            error,
        }),
    }
}

fn check(kafka_config: &KafkaConfig, plan: &Plan) -> Result<(), ReplayError> {
    if plan.codes.is_empty() && !plan.dry_run {
        return Err(ReplayError::NoCodes);
    }
    if plan.to == kafka_config.dlq_topic {
        return Err(ReplayError::IntoDlq(plan.to.clone()));
    }
    if let (Some(since), Some(until)) = (plan.since, plan.until) {
        if since >= until {
            return Err(ReplayError::EmptyRange);
        }
    }
    Ok(())
}

/// The run, on a current-thread runtime: the DLQ's reads block it, which is fine for
/// a command that does nothing else meanwhile.
async fn replay(
    kafka_config: &KafkaConfig,
    plan: &Plan,
    idle: Duration,
    summary: &mut Summary,
) -> Result<(), ReplayError> {
    check(kafka_config, plan)?;
    let topic = kafka_config.dlq_topic.as_str();
    let clients = Clients::new(kafka_config).map_err(|e| ReplayError::Config(Box::new(e)))?;
    let read_error = |error| ReplayError::Read {
        topic: topic.to_string(),
        error: Box::new(error),
        brokers: kafka_config.brokers.clone(),
    };
    let mut dlq = Bounded::open(
        &clients,
        "streamhost-dlq-replay",
        topic,
        Start::Oldest,
        REQUEST_TIMEOUT,
    )
    .map_err(read_error)?;
    let mut producer = match plan.dry_run {
        true => None,
        false => Some(
            OneByOne::new(
                &clients,
                "streamhost-dlq-replay",
                Duration::from_secs(kafka_config.delivery_timeout_secs),
            )
            .map_err(|e| ReplayError::Produce(Box::new(e)))?,
        ),
    };
    tracing::info!(topic, partitions = ?dlq.remaining(), selection = %summary.selection, to = %plan.to, dry_run = plan.dry_run, "reading the DLQ to its end at the start");

    let mut codes: Vec<String> = Vec::new();
    let mut last_progress = Instant::now();
    while !dlq.is_done() {
        if last_progress.elapsed() > idle {
            if let Some(producer) = &mut producer {
                settle(producer, &mut codes, summary).await;
            }
            return Err(ReplayError::Stalled {
                topic: topic.to_string(),
                idle,
                partitions: dlq.remaining(),
            });
        }
        let record = match dlq.next(POLL) {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "kafka error while reading the DLQ; retrying");
                continue;
            }
        };
        last_progress = Instant::now();
        let (partition, offset) = (record.partition, record.offset);
        summary.read += 1;
        let entry: DlqRecord = match record
            .payload
            .as_deref()
            .map(serde_json::from_slice::<DlqRecord>)
        {
            Some(Ok(entry)) => entry,
            Some(Err(e)) => {
                summary.unreadable += 1;
                tracing::warn!(partition, offset, error = %e, "not a DLQ record; skipped");
                continue;
            }
            None => {
                summary.unreadable += 1;
                continue;
            }
        };
        match plan.decide(&entry) {
            Decision::NotSelected => {}
            Decision::OtherSource => {
                let c = summary.entry(&entry.code);
                c.selected += 1;
                c.other_source += 1;
            }
            Decision::Unrestorable(e) => {
                let c = summary.entry(&entry.code);
                c.selected += 1;
                c.unrestorable += 1;
                tracing::warn!(partition, offset, source = %format!("{}/{}/{}", entry.source_topic, entry.source_partition, entry.source_offset), error = %e, "cannot restore the original bytes; not replayed");
            }
            Decision::Replay(bytes) => {
                summary.entry(&entry.code).selected += 1;
                let Some(producer) = &mut producer else {
                    summary.entry(&entry.code).replayed += 1;
                    continue;
                };
                if let Err(e) = producer.send(&plan.to, &bytes).await {
                    settle(producer, &mut codes, summary).await;
                    return Err(ReplayError::Produce(Box::new(e)));
                }
                codes.push(entry.code.into_owned());
                if producer.in_flight() >= IN_FLIGHT {
                    settle(producer, &mut codes, summary).await;
                    if summary.failed() > 0 {
                        // The broker refuses: stop rather than read on.
                        break;
                    }
                }
            }
        }
    }
    if let Some(producer) = &mut producer {
        settle(producer, &mut codes, summary).await;
    }
    let failed = summary.failed();
    if failed > 0 {
        return Err(ReplayError::Delivery {
            failed,
            replayed: summary.replayed(),
            first: summary.first_failure.clone().unwrap_or_default(),
            to: plan.to.clone(),
            to_missing: matches!(dlq.topic_exists(&plan.to, REQUEST_TIMEOUT), Ok(false)),
        });
    }
    Ok(())
}

/// Wait for every acknowledgement in flight and count the outcomes per code (`codes`:
/// the code of each record in flight, in the order sent).
async fn settle(producer: &mut OneByOne, codes: &mut Vec<String>, summary: &mut Summary) {
    for (code, failure) in codes.drain(..).zip(producer.settle().await) {
        let Some(error) = failure else {
            summary.entry(&code).replayed += 1;
            continue;
        };
        summary.entry(&code).failed += 1;
        if summary.first_failure.is_none() {
            tracing::error!(%error, "delivery failed");
            summary.first_failure = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::dlq::{Step, UnescapeError};

    fn entry(
        code: &str,
        topic: &str,
        dlq_time: &str,
        raw: &str,
        encoding: &str,
    ) -> DlqRecord<'static> {
        DlqRecord {
            code: code.to_string().into(),
            message: "m".into(),
            stage: Step::Decode,
            rejected_by: "host".into(),
            source_topic: topic.to_string().into(),
            source_partition: 0,
            source_offset: 1,
            source_time: "2026-11-24 09:00:00".into(),
            dlq_time: dlq_time.into(),
            raw: raw.to_string().into(),
            raw_encoding: serde_json::from_value(serde_json::json!(encoding)).unwrap(),
        }
    }

    fn plan(codes: &[&str]) -> Plan {
        Plan {
            codes: codes.iter().map(|c| c.to_string()).collect(),
            source_topic: Some("my_events".into()),
            to: "my_events".into(),
            ..Plan::default()
        }
    }

    #[test]
    fn a_record_that_cannot_be_restored_is_reported_not_replayed() {
        let e = entry("c", "my_events", "2026-11-24 10:00:00", "\\", "escaped");
        assert_eq!(
            plan(&["c"]).decide(&e),
            Decision::Unrestorable(RawError::Escape(UnescapeError::TrailingBackslash { at: 0 }))
        );
    }

    #[test]
    fn selects_by_code_and_only_from_the_input_topic() {
        let p = plan(&["invalid_country"]);
        let country = entry(
            "invalid_country",
            "my_events",
            "2026-11-24 10:00:00",
            "{}",
            "utf8",
        );
        let user = entry(
            "invalid_user_id",
            "my_events",
            "2026-11-24 10:00:00",
            "{}",
            "utf8",
        );
        assert_eq!(p.decide(&country), Decision::Replay(b"{}".to_vec()));
        assert_eq!(p.decide(&user), Decision::NotSelected);
        let late = entry(
            "late_event",
            "enriched_events",
            "2026-11-24 10:00:00",
            "{}",
            "utf8",
        );
        assert_eq!(plan(&["late_event"]).decide(&late), Decision::OtherSource);
        let any_source = Plan {
            source_topic: None,
            ..plan(&["late_event"])
        };
        assert_eq!(any_source.decide(&late), Decision::Replay(b"{}".to_vec()));
        // No codes: every code (what a dry run lists).
        assert_eq!(plan(&[]).decide(&user), Decision::Replay(b"{}".to_vec()));
    }

    #[test]
    fn time_range_is_since_inclusive_until_exclusive_on_the_chosen_field() {
        fn t(s: &str) -> i64 {
            parse_time(s).unwrap()
        }
        let e = entry("c", "my_events", "2026-11-24 10:00:00", "{}", "utf8");
        let ranged = |since: Option<&str>, until: Option<&str>, field| Plan {
            since: since.map(t),
            until: until.map(t),
            time_field: field,
            ..plan(&["c"])
        };
        use TimeField::*;
        assert!(ranged(Some("2026-11-24 10:00:00"), None, DlqTime).selects(&e));
        assert!(!ranged(None, Some("2026-11-24 10:00:00"), DlqTime).selects(&e));
        assert!(ranged(None, Some("2026-11-24 10:00:01"), DlqTime).selects(&e));
        assert!(!ranged(Some("2026-11-24 10:00:01"), None, DlqTime).selects(&e));
        // source_time is 09:00:00.
        assert!(ranged(
            Some("2026-11-24 09:00:00"),
            Some("2026-11-24 09:30:00"),
            SourceTime
        )
        .selects(&e));
        assert!(!ranged(
            Some("2026-11-24 09:00:00"),
            Some("2026-11-24 09:30:00"),
            DlqTime
        )
        .selects(&e));
        let garbled = entry("c", "my_events", "yesterday", "{}", "utf8");
        assert!(!ranged(Some("2026-11-24 09:00:00"), None, DlqTime).selects(&garbled));
        assert!(plan(&["c"]).selects(&garbled), "no range: time not needed");
        assert!(parse_time("2026-11-24T10:00:00Z").is_err());
    }

    #[test]
    fn refuses_plans_that_make_no_sense() {
        let k = KafkaConfig::default();
        assert!(matches!(check(&k, &plan(&[])), Err(ReplayError::NoCodes)));
        assert!(check(
            &k,
            &Plan {
                dry_run: true,
                ..plan(&[])
            }
        )
        .is_ok());
        assert!(matches!(
            check(
                &k,
                &Plan {
                    to: "dlq".into(),
                    ..plan(&["c"])
                }
            ),
            Err(ReplayError::IntoDlq(_))
        ));
        assert!(matches!(
            check(
                &k,
                &Plan {
                    since: Some(10),
                    until: Some(10),
                    ..plan(&["c"])
                }
            ),
            Err(ReplayError::EmptyRange)
        ));
    }

    #[test]
    fn a_failed_delivery_says_whether_running_again_duplicates() {
        let error = |replayed, to_missing| ReplayError::Delivery {
            failed: 2,
            replayed,
            first: "UnknownTopicOrPartition".into(),
            to: "my_events".into(),
            to_missing,
        };
        let none = error(0, false).to_string();
        assert!(none.starts_with("2 of the selected records were not acknowledged"));
        assert!(
            none.contains("UnknownTopicOrPartition") && none.contains("safe"),
            "{none}"
        );
        let some = error(5, false).to_string();
        assert!(some.contains("5 were and are in my_events"), "{some}");
        let missing = error(0, true);
        assert!(
            missing.to_string().contains(
                "(first error: UnknownTopicOrPartition): topic my_events does not exist; create it first; none was"
            ),
            "{missing}"
        );
    }

    #[test]
    fn summary_counts_per_code() {
        let mut s = Summary {
            topic: "dlq".into(),
            to: "my_events".into(),
            selection: plan(&["a"]).describe(),
            read: 5,
            ..Summary::default()
        };
        s.entry("a").selected = 3;
        s.entry("a").replayed = 2;
        s.entry("a").other_source = 1;
        let text = s.to_string();
        assert!(text.contains("read 5 records of dlq"), "{text}");
        assert!(text.contains("selected 3 (code in [a])"), "{text}");
        assert!(text.contains("replayed 2 to my_events"), "{text}");
        assert!(text.contains("other source topic 1"), "{text}");
    }
}
