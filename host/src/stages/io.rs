//! What the stages ask of a broker, as two small interfaces: the input they read
//! ([`Source`]) and the producer of their outputs ([`Sink`]). The Kafka implementations
//! are `crate::kafka::source::KafkaSource` and `crate::kafka::sink::KafkaSink`; the
//! simulator (`host/tests/sim/`) runs the same stages and loop on a broker model.
//!
//! Methods that make round trips to a broker may block the calling thread: an
//! implementation that blocks moves itself off the async workers.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::records::{Output, SourceRecord};

/// A stage's input: one topic read by a consumer group, committed by hand.
#[allow(async_fn_in_trait)] // used generically, never as `dyn`
pub trait Source: Send + Sync {
    fn topic(&self) -> &str;

    /// Up to `max` records: waits for the first one as long as `idle` allows, then for
    /// at most `wait` to fill the batch. An empty batch means nothing arrived in `idle`;
    /// `None`, that `wake` resolved first (before any record was taken).
    async fn next_batch(
        &self,
        max: usize,
        wait: Duration,
        idle: Duration,
        wake: impl Future<Output = ()> + Send,
    ) -> Result<Option<Vec<SourceRecord>>, SourceError>;

    /// Partitions assigned to this instance now, sorted.
    fn assigned_partitions(&self) -> Vec<i32>;

    /// Partitions revoked since the last call (assigned again or not), sorted.
    fn take_revoked(&self) -> Vec<i32>;

    /// Read `partitions` again from their committed positions.
    fn rewind(&self, partitions: &[i32]) -> Result<(), SourceError>;

    /// Commit explicit next-to-read positions per partition.
    fn commit_positions(&self, next: &HashMap<i32, i64>) -> Result<(), SourceError>;

    /// Leave the group and join it again as a new member, so that the coordinator
    /// forms a new generation and hands out every partition.
    fn rejoin(&mut self) -> Result<(), SourceError>;

    /// Which of `partitions` still have records to read here.
    fn pending(&self, partitions: &[i32]) -> Vec<i32>;

    /// End offsets (the next offset to be written) of `partitions`; a partition the
    /// broker cannot tell about is left out.
    fn high_watermarks(&self, partitions: &[i32]) -> HashMap<i32, i64>;

    /// Records behind per partition of `partitions`: the partition's end minus the
    /// next offset this instance reads, as the client last saw them, without a round
    /// trip to the broker (so possibly a few seconds old). A partition not known yet is
    /// left out.
    fn lag(&self, partitions: &[i32]) -> HashMap<i32, i64>;
}

/// Where a stage's outputs go: enqueued in order now, acknowledged later.
#[allow(async_fn_in_trait)] // used generically, never as `dyn`
pub trait Sink: Sync {
    /// A batch's outputs on their way, to settle.
    type Acks: Send;

    /// Hand every output over now, in order. A record refused ends the batch there:
    /// none after it is produced.
    async fn enqueue(&self, outputs: Vec<Output>) -> Result<Self::Acks, SinkError>;

    /// Resolves once every output of the batch is acknowledged (`Ok`), or one failed or
    /// was not acknowledged in time, or `stop` turned true and the wait was given up.
    fn settle<'a>(
        &'a self,
        acks: Self::Acks,
        stop: &'a watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send + 'a;
}

/// Another consumer group's place on a topic, read without joining the group: the
/// window stage asks how far the validate stage has got on its input.
pub trait GroupLag: Send + Sync + std::fmt::Debug {
    /// The topic's partitions; empty when the broker cannot say.
    fn partitions(&self) -> Vec<i32>;

    /// Per partition of `partitions`: the group's committed offset (the topic's first
    /// offset when nothing is committed) and the end offset. A partition the broker
    /// cannot tell about is left out.
    fn positions(&self, partitions: &[i32]) -> Vec<(i32, i64, i64)>;
}

/// A broker client's own error, kept as the cause of a [`SourceError`] or
/// [`SinkError`].
pub type BrokerError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("kafka consumer ({context}): {source}")]
    Broker {
        context: &'static str,
        #[source]
        source: BrokerError,
    },
    #[error("cannot start a thread: {0}")]
    Thread(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka producer: {0}")]
    Create(#[source] BrokerError),
    #[error("a {size}-byte record (key and value) for `{topic}` is over the {limit}-byte limit on its records")]
    TooLarge {
        topic: String,
        size: usize,
        limit: usize,
    },
    /// The producer refused a record, or the broker did not take it.
    #[error("delivery to `{topic}` failed: {error} ({class}: {}){}", hint(*.class), more(*.others))]
    Failed {
        topic: String,
        class: DeliveryClass,
        error: BrokerError,
        /// Records of the same batch that failed too.
        others: usize,
    },
    #[error("{count} records to {topics} not acknowledged within {} s (kafka.delivery_timeout_secs): the broker is unreachable, or too slow", .timeout.as_secs())]
    Unacknowledged {
        topics: String,
        count: usize,
        timeout: Duration,
    },
    #[error("stopped with {0} records not acknowledged")]
    Stopped(usize),
}

fn hint(class: DeliveryClass) -> String {
    match class {
        DeliveryClass::Transient => "librdkafka gave up retrying".into(),
        DeliveryClass::TooLarge => format!(
            "the topic's max.message.bytes on the broker is below the producer's message.max.bytes, {}", crate::records::MESSAGE_MAX_BYTES
        ),
        DeliveryClass::Permanent => {
            "refused for good: the topic is missing, writing is denied, or the broker failed the request and the producer stopped rather than leave a gap".into()
        }
    }
}

fn more(others: usize) -> String {
    match others {
        0 => String::new(),
        n => format!("; {n} more records of the batch failed"),
    }
}

/// The kinds of delivery failure, by what can be done about them.
///
/// Only [`DeliveryClass::Transient`] is ever retried, and only by the producer itself, in
/// order, while the host waits (up to `kafka.delivery_timeout_secs`): a record the
/// producer has given up on is never produced again by the same run, because it would
/// land behind records produced after it (`crate::kafka::sink` says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryClass {
    /// The broker, or the way to it, is away for now (down, no leader, too few
    /// replicas, the producer's queue full): the same record can succeed later.
    Transient,
    /// This record, or the request carrying it, is over a size limit: the producer's
    /// `message.max.bytes` before sending, the broker's `max.message.bytes` after.
    TooLarge,
    /// Fails on every attempt until someone changes something: the topic is missing,
    /// access is denied, the producer is fenced or has stopped.
    Permanent,
}

impl DeliveryClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::TooLarge => "too_large",
            Self::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for DeliveryClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
