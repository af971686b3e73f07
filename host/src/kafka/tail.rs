//! Bounded reads: a topic read once, up to the end each partition had when the read
//! began, so that what is written meanwhile (including what the reader itself writes)
//! is never read. The window stage's restore reads the averages topic's recent tail
//! this way ([`read_since`]); `dlq replay` reads the whole DLQ ([`Bounded`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::client::ClientLog;
use super::Clients;

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    // KafkaError's message already names its cause: one line, no source chain.
    #[error("{request}: {error}")]
    Kafka { request: Request, error: KafkaError },
    #[error("topic {0} does not exist (or has no partitions)")]
    NoTopic(String),
    #[error("timed out after {timeout:?}{}", last.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        timeout: Duration,
        last: Option<String>,
    },
}

/// The step of a bounded read that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Consumer,
    Metadata,
    OffsetsForTimes,
    Watermarks(i32),
    Assign,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Consumer => f.write_str("creating the consumer"),
            Self::Metadata => f.write_str("the topic's metadata"),
            Self::OffsetsForTimes => f.write_str("the offsets by time"),
            Self::Watermarks(p) => write!(f, "the watermarks of partition {p}"),
            Self::Assign => f.write_str("assigning the partitions"),
        }
    }
}

fn kafka(request: Request) -> impl FnOnce(KafkaError) -> TailError {
    move |error| TailError::Kafka { request, error }
}

/// Where a bounded read starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record the partition keeps.
    Oldest,
    /// The first record written at or after this time (epoch milliseconds).
    Since(i64),
}

/// One record of a bounded read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecord {
    pub partition: i32,
    pub offset: i64,
    /// None: a record without a value (a tombstone).
    pub payload: Option<Vec<u8>>,
}

/// A read of `topic` in progress: the partitions not at their end yet, and where
/// that end is.
pub struct Bounded {
    consumer: BaseConsumer<QuietEof>,
    /// Per partition still to read, its end (high watermark) when the read began.
    ends: HashMap<i32, i64>,
}

impl std::fmt::Debug for Bounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl Bounded {
    /// Start reading `topic` from `start` (blocking, each request bounded by
    /// `timeout`). A topic the brokers do not have is [`TailError::NoTopic`].
    pub fn open(
        clients: &Clients,
        client_id: &str,
        topic: &str,
        start: Start,
        timeout: Duration,
    ) -> Result<Self, TailError> {
        let consumer: BaseConsumer<QuietEof> = clients
            .reader(client_id, client_id)
            // A partition's end is also where its last records were compacted away or
            // are control records: the end-of-partition event says "done" there.
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create_with_context(QuietEof)
            .map_err(kafka(Request::Consumer))?;
        let partitions = partitions_of(&consumer, topic, timeout)?;
        let mut starts = TopicPartitionList::new();
        for p in &partitions {
            let offset = match start {
                Start::Oldest => Offset::Beginning,
                Start::Since(ms) => Offset::Offset(ms),
            };
            starts
                .add_partition_offset(topic, *p, offset)
                .map_err(kafka(Request::Assign))?;
        }
        if let Start::Since(_) = start {
            starts = consumer
                .offsets_for_times(starts, timeout)
                .map_err(kafka(Request::OffsetsForTimes))?;
        }
        let mut ends = HashMap::new();
        let mut assign = TopicPartitionList::new();
        for elem in starts.elements() {
            let p = elem.partition();
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_err(kafka(Request::Watermarks(p)))?;
            let from = match elem.offset() {
                Offset::Offset(o) => o.max(low),
                Offset::Beginning => low,
                _ => high, // nothing written since the time asked for
            };
            if from < high {
                ends.insert(p, high);
                assign
                    .add_partition_offset(topic, p, Offset::Offset(from))
                    .map_err(kafka(Request::Assign))?;
            }
        }
        if !ends.is_empty() {
            consumer.assign(&assign).map_err(kafka(Request::Assign))?;
        }
        Ok(Self { consumer, ends })
    }

    /// Whether every partition is read to its end.
    pub fn is_done(&self) -> bool {
        self.ends.is_empty()
    }

    /// The partitions not at their end yet, in order.
    pub fn remaining(&self) -> Vec<i32> {
        let mut partitions: Vec<i32> = self.ends.keys().copied().collect();
        partitions.sort_unstable();
        partitions
    }

    /// The next record, waiting up to `wait` for one (None: none came, or a partition
    /// reached its end). An error is the consumer's; the read can go on after it.
    pub fn next(&mut self, wait: Duration) -> Result<Option<TailRecord>, KafkaError> {
        let message = match self.consumer.poll(wait) {
            None => return Ok(None),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // Its current end, at or past its end when the read began.
                self.ends.remove(&partition);
                return Ok(None);
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(message)) => message,
        };
        let (partition, offset) = (message.partition(), message.offset());
        let Some(end) = self.ends.get(&partition).copied() else {
            return Ok(None);
        };
        if offset >= end {
            // Written after the read began: not this read's.
            self.ends.remove(&partition);
            return Ok(None);
        }
        if offset + 1 >= end {
            self.ends.remove(&partition);
        }
        Ok(Some(TailRecord {
            partition,
            offset,
            payload: message.payload().map(<[u8]>::to_vec),
        }))
    }

    /// Whether `topic` exists, asked with this read's client.
    pub fn topic_exists(&self, topic: &str, timeout: Duration) -> Result<bool, TailError> {
        match partitions_of(&self.consumer, topic, timeout) {
            Ok(_) => Ok(true),
            Err(TailError::NoTopic(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Hand `each` the payload of every record of `topic` written since `since_ms` (epoch
/// milliseconds, by record timestamp), up to each partition's end when the read began.
/// Blocking, bounded by `timeout` per request and overall. A topic the brokers do not
/// have holds nothing.
pub fn read_since(
    clients: &Clients,
    topic: &str,
    since_ms: i64,
    timeout: Duration,
    mut each: impl FnMut(&[u8]),
) -> Result<(), TailError> {
    let mut read = match Bounded::open(
        clients,
        "streamhost-restore",
        topic,
        Start::Since(since_ms),
        timeout,
    ) {
        Err(TailError::NoTopic(_)) => return Ok(()),
        other => other?,
    };
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while !read.is_done() {
        if Instant::now() > deadline {
            return Err(TailError::Timeout { timeout, last });
        }
        match read.next(Duration::from_millis(200)) {
            Ok(Some(record)) => {
                if let Some(payload) = &record.payload {
                    each(payload);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(topic, error = %e, "reading the tail; trying again");
                last = Some(e.to_string());
            }
        }
    }
    Ok(())
}

/// The partitions of `topic`, asked of the brokers (a consumer's request does not
/// create the topic).
fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, TailError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka(Request::Metadata))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(TailError::NoTopic(topic.to_string()));
    }
    Ok(partitions)
}

/// The reader's context: librdkafka also reports reaching a partition's end as a
/// client-level error; for a bounded read that is the expected way to finish.
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
