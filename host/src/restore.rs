//! Window-stage recovery: which windows did earlier runs already emit?
//!
//! After a crash or a rebalance, the window stage re-reads `enriched_events` from the
//! committed position (the oldest offset an open window needed). Those records also
//! belong to windows that had closed and been emitted before; counting them again
//! would re-emit those windows with partial counts. The emitted windows are in
//! `country_event_averages` itself, so that topic is the checkpoint: its recent tail
//! gives, per country, the latest emitted window start, and the operator skips
//! everything up to it ([`crate::window::WindowOperator::restore_emitted`]).
//! (Offset-commit metadata would be the lighter place, but Tansu 0.6 drops it.)

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::timefmt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("reading {topic} to restore emitted windows: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading {topic} to restore emitted windows: timed out after {0:?}", .timeout)]
    Timeout { topic: String, timeout: Duration },
}

/// Per key, the latest window start written to `topic` in the last `lookback`.
/// `key_field` names the key in the records (`country` in the brief's).
pub fn emitted_through(
    brokers: &str,
    topic: &str,
    key_field: &str,
    lookback: Duration,
    timeout: Duration,
) -> Result<HashMap<String, i64>, RestoreError> {
    let kafka = |source| RestoreError::Kafka {
        topic: topic.to_string(),
        source,
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "streamhost-restore")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let since_ms = SystemTime::now()
        .checked_sub(lookback)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted
            .add_partition_offset(topic, *p, Offset::Offset(since_ms))
            .map_err(kafka)?;
    }
    let starts = consumer.offsets_for_times(wanted, timeout).map_err(kafka)?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assign = TopicPartitionList::new();
    for elem in starts.elements() {
        let (_, high) = consumer
            .fetch_watermarks(topic, elem.partition(), timeout)
            .map_err(kafka)?;
        let start = match elem.offset() {
            Offset::Offset(o) => o,
            _ => high, // nothing newer than `since`
        };
        if start < high {
            ends.insert(elem.partition(), high);
            assign
                .add_partition_offset(topic, elem.partition(), Offset::Offset(start))
                .map_err(kafka)?;
        }
    }
    let mut emitted: HashMap<String, i64> = HashMap::new();
    if ends.is_empty() {
        return Ok(emitted);
    }
    consumer.assign(&assign).map_err(kafka)?;
    let deadline = Instant::now() + timeout;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(RestoreError::Timeout {
                topic: topic.to_string(),
                timeout,
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(kafka)?;
        let record = message
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok());
        if let Some(record) = record {
            let key = match &record[key_field] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let start = record["window_start"].as_str().and_then(timefmt::parse);
            if let (Some(key), Some(start)) = (key, start) {
                let slot = emitted.entry(key).or_insert(start);
                *slot = (*slot).max(start);
            }
        }
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    Ok(emitted)
}
