//! A topic's recent tail, read once up to the end it had when the read began: the
//! window stage's restore reads the averages topic this way.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::client::ClientLog;
use super::Clients;

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Hand `each` the payload of every record of `topic` written since `since_ms` (epoch
/// milliseconds, by record timestamp), up to each partition's end when the read began.
/// Blocking, bounded by `timeout` per request and overall.
pub fn read_since(
    clients: &Clients,
    topic: &str,
    since_ms: i64,
    timeout: Duration,
    mut each: impl FnMut(&[u8]),
) -> Result<(), TailError> {
    let consumer: BaseConsumer<ClientLog> = clients
        .reader("streamhost-restore", "streamhost-restore")
        .create_with_context(ClientLog)?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition_offset(topic, *p, Offset::Offset(since_ms))?;
    }
    let starts = consumer.offsets_for_times(wanted, timeout)?;
    let mut ends = std::collections::HashMap::new();
    let mut assign = TopicPartitionList::new();
    for elem in starts.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, elem.partition(), timeout)?;
        let start = match elem.offset() {
            Offset::Offset(o) => o,
            _ => high, // nothing newer than `since`
        };
        if start < high {
            ends.insert(elem.partition(), high);
            assign.add_partition_offset(topic, elem.partition(), Offset::Offset(start))?;
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&assign)?;
    let deadline = Instant::now() + timeout;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(TailError::Timeout(timeout));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        if let Some(payload) = message.payload() {
            each(payload);
        }
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    Ok(())
}
