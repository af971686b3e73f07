//! Another consumer group's progress on a topic, read without joining the group.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::client::ClientLog;
use super::source::kafka;
use super::Clients;
use crate::stages::io::GroupLag;
use crate::stages::io::SourceError;

/// The longest wait for one answer of the broker.
const ROUND_TRIP: Duration = Duration::from_secs(2);

/// How far another consumer group has got on a topic, read without joining the group
/// (no subscription: only offset fetches and metadata). The window stage uses it to
/// tell a source partition the validate stage has yet to catch up on from an idle one.
pub struct KafkaGroupLag {
    consumer: BaseConsumer<ClientLog>,
    topic: String,
}

impl std::fmt::Debug for KafkaGroupLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaGroupLag")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaGroupLag {
    pub fn new(clients: &Clients, group_id: &str, topic: &str) -> Result<Self, SourceError> {
        let consumer: BaseConsumer<ClientLog> = clients
            .reader(group_id, &format!("streamhost-lag-{group_id}"))
            .create_with_context(ClientLog)
            .map_err(kafka("create lag reader"))?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
        })
    }

    /// The topic's partitions; empty when the broker cannot say (then the window stage
    /// falls back to one lane per partition).
    fn partitions_now(&self, timeout: Duration) -> Vec<i32> {
        match self.consumer.fetch_metadata(Some(&self.topic), timeout) {
            Ok(meta) => meta
                .topics()
                .iter()
                .filter(|t| t.name() == self.topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect(),
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "cannot read the topic's partitions");
                Vec::new()
            }
        }
    }

    fn positions_now(&self, partitions: &[i32], timeout: Duration) -> Vec<(i32, i64, i64)> {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition(&self.topic, *p);
        }
        let committed = match self.consumer.committed_offsets(list, timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "cannot read the group's committed offsets");
                return Vec::new();
            }
        };
        partitions
            .iter()
            .filter_map(|p| {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(&self.topic, *p, timeout)
                    .ok()?;
                // Nothing committed yet: the group starts at the beginning.
                let at = match committed
                    .find_partition(&self.topic, *p)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                };
                Some((*p, at, high))
            })
            .collect()
    }
}

impl GroupLag for KafkaGroupLag {
    /// Round trips to the broker, off the async workers.
    fn partitions(&self) -> Vec<i32> {
        tokio::task::block_in_place(|| self.partitions_now(ROUND_TRIP * 5))
    }

    /// Round trips to the broker, off the async workers.
    fn positions(&self, partitions: &[i32]) -> Vec<(i32, i64, i64)> {
        tokio::task::block_in_place(|| self.positions_now(partitions, ROUND_TRIP))
    }
}
