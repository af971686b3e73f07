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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::kafka::client::ClientLog;
use crate::kafka::Clients;
use crate::records::dlq::{DlqRecord, RawError};
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
    // KafkaError's message already names its cause: one line, no source chain.
    #[error("{context}: {error}")]
    Kafka { context: String, error: KafkaError },
    #[error("topic {0} does not exist (or has no partitions)")]
    NoTopic(String),
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

fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> ReplayError {
    let context = context.into();
    move |error| ReplayError::Kafka { context, error }
}

/// Records produced but not yet acknowledged; settled in chunks of this size.
const IN_FLIGHT: usize = 5_000;
/// Metadata and watermark requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    match replay(kafka_config, plan, idle, &mut summary) {
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

fn replay(
    kafka_config: &KafkaConfig,
    plan: &Plan,
    idle: Duration,
    summary: &mut Summary,
) -> Result<(), ReplayError> {
    check(kafka_config, plan)?;
    let topic = kafka_config.dlq_topic.as_str();
    let clients = Clients::new(kafka_config);
    let consumer: BaseConsumer<QuietEof> = clients
        .reader("streamhost-dlq-replay", "streamhost-dlq-replay")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(QuietEof)
        .map_err(kafka("kafka consumer"))?;
    let mut ends = bounds(&consumer, topic).map_err(|e| match e {
        ReplayError::Kafka { context, error } => ReplayError::Kafka {
            context: format!("{context} (brokers {})", kafka_config.brokers),
            error,
        },
        other => other,
    })?;
    let producer: Option<FutureProducer<ClientLog>> = if plan.dry_run {
        None
    } else {
        Some(
            clients
                .producer("streamhost-dlq-replay")
                .create_with_context(ClientLog)
                .map_err(kafka("kafka producer"))?,
        )
    };
    tracing::info!(topic, partitions = ?ends, selection = %summary.selection, to = %plan.to, dry_run = plan.dry_run, "reading the DLQ to its end at the start");

    let mut in_flight: Vec<(String, DeliveryFuture)> = Vec::new();
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        if last_progress.elapsed() > idle {
            let mut partitions: Vec<i32> = ends.keys().copied().collect();
            partitions.sort_unstable();
            settle(&mut in_flight, summary);
            return Err(ReplayError::Stalled {
                topic: topic.to_string(),
                idle,
                partitions,
            });
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match result {
            Ok(m) => m,
            // The partition's current end, which is at or past its end at the start.
            Err(KafkaError::PartitionEOF(partition)) => {
                ends.remove(&partition);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka error while reading the DLQ; retrying");
                continue;
            }
        };
        last_progress = Instant::now();
        let partition = message.partition();
        let Some(end) = ends.get(&partition).copied() else {
            continue;
        };
        if message.offset() >= end {
            // Written after the start: not ours to read.
            ends.remove(&partition);
            continue;
        }
        if message.offset() + 1 >= end {
            ends.remove(&partition);
        }
        summary.read += 1;
        let entry: DlqRecord = match message.payload().map(serde_json::from_slice::<DlqRecord>) {
            Some(Ok(entry)) => entry,
            Some(Err(e)) => {
                summary.unreadable += 1;
                tracing::warn!(partition, offset = message.offset(), error = %e, "not a DLQ record; skipped");
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
                tracing::warn!(partition, offset = message.offset(), source = %format!("{}/{}/{}", entry.source_topic, entry.source_partition, entry.source_offset), error = %e, "cannot restore the original bytes; not replayed");
            }
            Decision::Replay(bytes) => {
                summary.entry(&entry.code).selected += 1;
                let Some(producer) = &producer else {
                    summary.entry(&entry.code).replayed += 1;
                    continue;
                };
                let delivery = send(producer, &plan.to, &bytes)
                    .map_err(kafka(format!("producing to {}", plan.to)))?;
                in_flight.push((entry.code.into_owned(), delivery));
                if in_flight.len() >= IN_FLIGHT {
                    settle(&mut in_flight, summary);
                    if summary.failed() > 0 {
                        // The broker refuses: stop rather than read on.
                        break;
                    }
                }
            }
        }
    }
    settle(&mut in_flight, summary);
    let failed = summary.failed();
    if failed > 0 {
        return Err(ReplayError::Delivery {
            failed,
            replayed: summary.replayed(),
            first: summary.first_failure.clone().unwrap_or_default(),
            to: plan.to.clone(),
            to_missing: matches!(
                partitions(&consumer, &plan.to),
                Err(ReplayError::NoTopic(_))
            ),
        });
    }
    Ok(())
}

/// The consumer's context: librdkafka also reports reaching a partition's end as a
/// client-level error; for this read that is the expected way to finish, not an error.
struct QuietEof;

impl ClientContext for QuietEof {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        ClientLog::line(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(%error, reason, "end of partition");
        } else {
            ClientLog::error(&error, reason);
        }
    }
}

impl ConsumerContext for QuietEof {}

/// The partitions of `topic`, asked of the brokers (a consumer's request does not
/// create the topic).
fn partitions(consumer: &BaseConsumer<QuietEof>, topic: &str) -> Result<Vec<i32>, ReplayError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(kafka(format!("metadata of {topic}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReplayError::NoTopic(topic.to_string()));
    }
    Ok(partitions)
}

/// Per partition with records, its high watermark now; the consumer is assigned to
/// read each from its low watermark.
fn bounds(
    consumer: &BaseConsumer<QuietEof>,
    topic: &str,
) -> Result<HashMap<i32, i64>, ReplayError> {
    let partitions = partitions(consumer, topic)?;
    let mut ends = HashMap::new();
    let mut assign = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
            .map_err(kafka(format!("watermarks of {topic}/{p}")))?;
        if low < high {
            ends.insert(p, high);
            assign
                .add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(kafka("assignment"))?;
        }
    }
    if !ends.is_empty() {
        consumer
            .assign(&assign)
            .map_err(kafka(format!("assigning {topic}")))?;
    }
    Ok(ends)
}

/// Queue one record; waits while librdkafka's local queue is full.
fn send(
    producer: &FutureProducer<ClientLog>,
    topic: &str,
    payload: &[u8],
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic).payload(payload);
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Wait for every acknowledgement in flight and count the outcomes per code.
fn settle(in_flight: &mut Vec<(String, DeliveryFuture)>, summary: &mut Summary) {
    if in_flight.is_empty() {
        return;
    }
    let (codes, deliveries): (Vec<String>, Vec<DeliveryFuture>) = in_flight.drain(..).unzip();
    let results = futures::executor::block_on(join_all(deliveries));
    for (code, result) in codes.iter().zip(results) {
        let error = match result {
            Ok(Ok(_)) => {
                summary.entry(code).replayed += 1;
                continue;
            }
            Ok(Err((e, _))) => e.to_string(),
            Err(_canceled) => "the producer went away before the acknowledgement".to_string(),
        };
        summary.entry(code).failed += 1;
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
