//! Another consumer group's progress on a topic, read without joining the group.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::client::ClientLog;
use super::source::{kafka, SourceError};
use super::Clients;

/// How far another consumer group has got on a topic, read without joining the group
/// (no subscription: only offset fetches and metadata). The window stage uses it to
/// tell a source partition the validate stage has yet to catch up on from an idle one.
pub struct GroupLag {
    consumer: BaseConsumer<ClientLog>,
    topic: String,
    /// Per partition, the committed offset at the previous reading.
    previous: HashMap<i32, i64>,
}

impl std::fmt::Debug for GroupLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLag")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl GroupLag {
    pub fn new(clients: &Clients, group_id: &str, topic: &str) -> Result<Self, SourceError> {
        let consumer: BaseConsumer<ClientLog> = clients
            .reader(group_id, &format!("streamhost-lag-{group_id}"))
            .create_with_context(ClientLog)
            .map_err(kafka("create lag reader"))?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
            previous: HashMap::new(),
        })
    }

    /// The topic's partitions; empty when the broker cannot say (then the window stage
    /// falls back to one lane per partition).
    pub fn partitions(&self, timeout: Duration) -> Vec<i32> {
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

    /// Which of `partitions` still have records for the group to read that matter: more
    /// than `min_lag` behind the end (a backlog, not the few batches a live stream keeps
    /// in flight), or any records at all while the committed offset has not moved since
    /// the previous reading (nobody is reading the partition: its owner crashed and the
    /// partition waits for a new one). A partition whose state cannot be read counts as
    /// caught up, so the watermark cannot stall on a broker error.
    pub fn pending(&mut self, partitions: &[i32], min_lag: i64, timeout: Duration) -> Vec<i32> {
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
            .copied()
            .filter(|p| {
                let Ok((low, high)) = self.consumer.fetch_watermarks(&self.topic, *p, timeout)
                else {
                    return false;
                };
                // Nothing committed yet: the group starts at the beginning.
                let at = match committed
                    .find_partition(&self.topic, *p)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                };
                let standing = self
                    .previous
                    .insert(*p, at)
                    .is_none_or(|before| before == at);
                let lag = high - at;
                lag > min_lag || (lag > 0 && standing)
            })
            .collect()
    }
}
