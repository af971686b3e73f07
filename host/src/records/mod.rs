//! Every record the host reads or writes on Kafka, each defined once for both
//! directions: the input record as read ([`SourceRecord`]), what goes out
//! ([`Output`]), the enriched event ([`enriched`]), the dead-letter record ([`dlq`]) and
//! the window average ([`average`]).

use compact_str::CompactString;
pub mod average;
pub mod dlq;
pub mod enriched;
pub mod json;

/// One input record, detached from the consumer's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub partition: i32,
    pub offset: i64,
    /// Kafka record timestamp (producer create time), milliseconds.
    pub timestamp_ms: i64,
    pub payload: Vec<u8>,
}

/// The position after the highest offset of each partition in `records`: what to
/// commit once their outputs are acknowledged.
pub fn next_positions(records: &[SourceRecord]) -> std::collections::HashMap<i32, i64> {
    let mut next = std::collections::HashMap::new();
    for r in records {
        let entry = next.entry(r.partition).or_insert(r.offset + 1);
        *entry = (*entry).max(r.offset + 1);
    }
    next
}

/// Where an output record goes (topic names come from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    Enriched,
    Dlq,
    Averages,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub destination: Destination,
    /// Inline up to 24 bytes (a window key, a country).
    pub key: CompactString,
    pub payload: Vec<u8>,
}

impl Output {
    /// Key and value: what counts against [`Output::limit`].
    pub fn size(&self) -> usize {
        self.key.len() + self.payload.len()
    }

    /// The largest [`Output::size`] this record may have: [`MAX_OUTPUT_BYTES`], or for
    /// a DLQ record [`dlq::MAX_DLQ_BYTES`] and room for its key (a DLQ record holds its
    /// whole input, so it is allowed to be larger than any).
    pub fn limit(&self) -> usize {
        match self.destination {
            Destination::Dlq => dlq::MAX_DLQ_BYTES + DLQ_KEY_BYTES,
            Destination::Enriched | Destination::Averages => MAX_OUTPUT_BYTES,
        }
    }
}

/// Room for a DLQ record's key (`source_topic/partition/offset`, the topic cut to 260
/// bytes).
const DLQ_KEY_BYTES: usize = 320;

/// librdkafka's `message.max.bytes` for every producer of this host (set in
/// [`crate::kafka::client`]): the largest record, a DLQ record, and its framing.
pub const MESSAGE_MAX_BYTES: usize = 2_100_000;

/// The largest enriched or window record this host produces, key and value together:
/// the 1,000,000 bytes of librdkafka's and Kafka's default limits less room for the
/// record's framing. The sink refuses a larger one before the producer sees it (it
/// would be refused on every attempt, and the batches behind it would wait); the
/// stages route such records to the DLQ before that.
pub const MAX_OUTPUT_BYTES: usize = 1_000_000 - 4_096;

/// A source record at partition 2, offset 41, for the records' tests.
#[cfg(test)]
pub(crate) fn sample_source(payload: &[u8]) -> SourceRecord {
    SourceRecord {
        partition: 2,
        offset: 41,
        timestamp_ms: 1_700_000_000_123,
        payload: payload.to_vec(),
    }
}
