//! A stage's input: read batches of records from Kafka, and commit positions once
//! their outputs are acknowledged (at-least-once: a crash re-reads, never skips).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use super::client::ClientLog;
use super::Clients;
use crate::limiter::Limiter;
use crate::records::SourceRecord;
use crate::stages::io::{Source, SourceError};

pub(crate) fn kafka(context: &'static str) -> impl FnOnce(KafkaError) -> SourceError {
    move |source| SourceError::Broker {
        context,
        source: Box::new(source),
    }
}

/// Whether the consumer recovers from `error` by itself. librdkafka reports a broker
/// that went away (`AllBrokersDown`, a transport failure) as a consumer error, then
/// reconnects and goes on fetching; only an error it flags fatal ends the consumer.
fn recovers(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageConsumption(_) | KafkaError::PartitionEOF(_)
    )
}

/// What a stage's consumer tells the host besides its records: every partition
/// revoked from it, for stages that keep state per partition (a partition revoked and
/// assigned again between two looks at the assignment was read by another owner
/// meanwhile, and its state is stale), and each partition's lag from librdkafka's
/// statistics.
#[derive(Clone, Default)]
struct StageContext {
    revoked: Arc<Mutex<HashSet<i32>>>,
    /// Records behind per partition, from the latest statistics.
    lag: Arc<Mutex<HashMap<i32, i64>>>,
}

impl StageContext {
    fn add_revoked(&self, partitions: impl IntoIterator<Item = i32>) {
        let partitions: Vec<i32> = partitions.into_iter().collect();
        // A revoked partition's lag is another owner's business from now on.
        let mut lag = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        for p in &partitions {
            lag.remove(p);
        }
        drop(lag);
        self.revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(partitions);
    }
}

/// A partition's lag in one statistics report: its end (the last stable offset, which
/// is the high watermark outside transactions; librdkafka's consumers read committed
/// records by default) minus the next offset the stage reads (the last record handed
/// to it + 1; before the first one, since the assignment or a rewind, the committed
/// offset; with nothing committed, the first offset, as `auto.offset.reset` says).
/// None while the client has not fetched from the partition yet.
fn partition_lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    let end = [p.ls_offset, p.hi_offset].into_iter().find(|o| *o >= 0)?;
    let next = [p.app_offset, p.committed_offset, p.lo_offset]
        .into_iter()
        .find(|o| *o >= 0)?;
    Some((end - next).max(0))
}

impl ClientContext for StageContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        ClientLog::line(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        ClientLog::error(&error, reason);
    }

    /// The lag of every partition of the stage's topic this client fetches from
    /// (`statistics.interval.ms`); the partitions it does not own are filtered by the
    /// caller, which knows the assignment.
    fn stats(&self, statistics: Statistics) {
        let lags: HashMap<i32, i64> = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0)
            .filter_map(|p| partition_lag(p).map(|lag| (p.partition, lag)))
            .collect();
        *self.lag.lock().unwrap_or_else(PoisonError::into_inner) = lags;
    }
}

impl ConsumerContext for StageContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.add_revoked(list.elements().iter().map(|e| e.partition()));
        }
    }
}

pub struct KafkaSource {
    consumer: StreamConsumer<StageContext>,
    context: StageContext,
    clients: Clients,
    group_id: String,
    topic: String,
    last_assignment: std::sync::Mutex<Vec<i32>>,
    /// Consumer errors librdkafka recovers from can come in floods (one per fetch): the
    /// first is logged, then one every 10 s. A broker gone away is [`ClientLog`]'s.
    errors: Mutex<Limiter>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.topic)
            .finish()
    }
}

impl KafkaSource {
    pub fn new(clients: &Clients, group_id: &str, topic: &str) -> Result<Self, SourceError> {
        let context = StageContext::default();
        let consumer = Self::consumer(clients, group_id, &context)?;
        consumer.subscribe(&[topic]).map_err(kafka("subscribe"))?;
        Ok(Self {
            consumer,
            context,
            clients: clients.clone(),
            group_id: group_id.to_string(),
            topic: topic.to_string(),
            last_assignment: std::sync::Mutex::new(Vec::new()),
            errors: Mutex::new(Limiter::new(1, Duration::from_secs(10))),
        })
    }

    fn consumer(
        clients: &Clients,
        group_id: &str,
        context: &StageContext,
    ) -> Result<StreamConsumer<StageContext>, SourceError> {
        clients
            .stage_consumer(group_id)
            .create_with_context(context.clone())
            .map_err(kafka("create"))
    }

    /// Leave the group (librdkafka's consumer close) on a thread of its own, waiting
    /// at most `wait` for it. With the broker gone the close waits until every request
    /// to the group coordinator has timed out, which took over a minute on Tansu: past
    /// `wait` the stage stops without it, and the broker ends the membership after
    /// `session.timeout.ms`.
    pub fn close(self, wait: Duration) {
        let topic = self.topic.clone();
        let (closed_tx, closed) = std::sync::mpsc::channel();
        let closing = std::thread::Builder::new()
            .name("consumer-close".into())
            .spawn(move || {
                drop(self);
                let _ = closed_tx.send(());
            });
        if let Err(error) = closing {
            // The consumer went down with the closure: closed here, without a bound.
            tracing::warn!(%topic, %error, "cannot start a thread to close the consumer");
            return;
        }
        if closed.recv_timeout(wait).is_err() {
            tracing::warn!(
                %topic,
                wait_secs = wait.as_secs(),
                "the consumer did not leave its group in time (the broker is unreachable?): stopping without waiting for it"
            );
        }
    }

    /// Seek `partitions` to their committed positions (blocking round trips).
    fn seek_committed(&self, partitions: &[i32]) -> Result<(), SourceError> {
        let timeout = Duration::from_secs(10);
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition(&self.topic, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(list, timeout)
            .map_err(kafka("read committed offsets"))?;
        let mut seek = TopicPartitionList::new();
        for e in committed.elements() {
            // Nothing committed yet: from the beginning, as auto.offset.reset says.
            let to = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            seek.add_partition_offset(&self.topic, e.partition(), to)
                .map_err(kafka("rewind list"))?;
        }
        tracing::info!(topic = %self.topic, partitions = ?partitions, "reading again from the committed positions");
        self.consumer
            .seek_partitions(seek, timeout)
            .map_err(kafka("rewind"))?;
        Ok(())
    }

    /// [`Source::rejoin`], blocking until the old member has left.
    fn rejoin_now(&mut self) -> Result<(), SourceError> {
        // The new client is created before the old one is dropped, but it joins only
        // once the old one has left: joining first could make the leaving member the
        // leader of the new generation.
        let fresh = Self::consumer(&self.clients, &self.group_id, &self.context)?;
        self.context.add_revoked(self.assigned_partitions());
        drop(std::mem::replace(&mut self.consumer, fresh));
        self.consumer
            .subscribe(&[self.topic.as_str()])
            .map_err(kafka("subscribe"))
    }

    /// [`Source::pending`] (blocking round trips).
    fn pending_now(&self, partitions: &[i32]) -> Vec<i32> {
        let timeout = Duration::from_secs(2);
        let offset_of = |list: &TopicPartitionList, p: i32| match list
            .find_partition(&self.topic, p)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        let positions = self.consumer.position().unwrap_or_default();
        let mut at: HashMap<i32, i64> = partitions
            .iter()
            .filter_map(|p| offset_of(&positions, *p).map(|o| (*p, o)))
            .collect();
        // Not fetched from yet: the committed offset is where reading starts.
        let mut unknown = TopicPartitionList::new();
        for p in partitions.iter().filter(|p| !at.contains_key(p)) {
            unknown.add_partition(&self.topic, *p);
        }
        if unknown.count() > 0 {
            let committed = self
                .consumer
                .committed_offsets(unknown, timeout)
                .unwrap_or_default();
            at.extend(
                partitions
                    .iter()
                    .filter_map(|p| offset_of(&committed, *p).map(|o| (*p, o))),
            );
        }
        let ends = self.watermarks(&at.keys().copied().collect::<Vec<_>>(), timeout);
        partitions
            .iter()
            .copied()
            .filter(|p| matches!((at.get(p), ends.get(p)), (Some(at), Some(end)) if at < end))
            .collect()
    }

    /// End offsets of `partitions`, waiting at most `timeout` for each (blocking).
    fn watermarks(&self, partitions: &[i32], timeout: Duration) -> HashMap<i32, i64> {
        partitions
            .iter()
            .filter_map(|p| {
                self.consumer
                    .fetch_watermarks(&self.topic, *p, timeout)
                    .map(|(_, high)| (*p, high))
                    .map_err(
                        |e| tracing::warn!(partition = p, error = %e, "cannot fetch watermarks"),
                    )
                    .ok()
            })
            .collect()
    }
}

impl Source for KafkaSource {
    /// Round trips to the broker, off the async workers.
    fn rewind(&self, partitions: &[i32]) -> Result<(), SourceError> {
        tokio::task::block_in_place(|| self.seek_committed(partitions))
    }

    fn take_revoked(&self) -> Vec<i32> {
        let mut revoked: Vec<i32> = self
            .context
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        revoked.sort_unstable();
        revoked
    }

    /// Blocks until the old member has left, off the async workers. Commit what was
    /// processed first: reading resumes from the committed positions.
    fn rejoin(&mut self) -> Result<(), SourceError> {
        tokio::task::block_in_place(|| self.rejoin_now())
    }

    fn topic(&self) -> &str {
        &self.topic
    }

    async fn next_batch(
        &self,
        max: usize,
        wait: Duration,
        idle: Duration,
        wake: impl Future<Output = ()> + Send,
    ) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        let mut batch = Vec::with_capacity(max.min(4096));
        // Dropping `recv` before it yields takes no message.
        let first = tokio::select! {
            first = tokio::time::timeout(idle, self.consumer.recv()) => match first {
                Err(_elapsed) => return Ok(Some(batch)),
                Ok(Ok(message)) => message,
                Ok(Err(e)) if recovers(&e) => {
                    // A broker gone away, a topic not created yet: the loop keeps
                    // turning (commits, watchdog) while librdkafka retries.
                    if ClientLog::unreachable_error(&e, &self.topic) {
                        return Ok(Some(batch));
                    }
                    let admitted = self
                        .errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .admit(std::time::Instant::now());
                    if let Some(suppressed) = admitted {
                        tracing::warn!(topic = %self.topic, error = %e, suppressed,
                            "kafka consumer error; librdkafka retries by itself");
                    }
                    return Ok(Some(batch));
                }
                Ok(Err(e)) => return Err(kafka("receive")(e)),
            },
            () = wake => return Ok(None),
        };
        batch.push(detach(&first));
        drop(first);
        let deadline = Instant::now() + wait;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Ok(message)) => batch.push(detach(&message)),
                Ok(Err(e)) => {
                    // Keep what we have: it is processed and committed; the error recurs if real.
                    tracing::warn!(error = %e, "kafka receive error while filling a batch");
                    break;
                }
            }
        }
        Ok(Some(batch))
    }

    fn commit_positions(&self, next: &HashMap<i32, i64>) -> Result<(), SourceError> {
        if next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(next.len());
        for (partition, offset) in next {
            tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .map_err(kafka("commit list"))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(kafka("commit"))
    }

    /// Round trips to the broker, off the async workers.
    fn high_watermarks(&self, partitions: &[i32]) -> HashMap<i32, i64> {
        tokio::task::block_in_place(|| self.watermarks(partitions, Duration::from_secs(10)))
    }

    /// Which of `partitions` still have records to read (the consumer's position, or
    /// its committed offset before the first fetch, is behind the end). A quiet
    /// partition with a backlog is slow, not idle. Network round trips: call it only
    /// for partitions about to be declared idle. A partition whose state cannot be
    /// read counts as caught up, so the watermark cannot stall on a broker error.
    fn pending(&self, partitions: &[i32]) -> Vec<i32> {
        tokio::task::block_in_place(|| self.pending_now(partitions))
    }

    /// From librdkafka's latest statistics: no round trip.
    fn lag(&self, partitions: &[i32]) -> HashMap<i32, i64> {
        let lag = self
            .context
            .lag
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        partitions
            .iter()
            .filter_map(|p| lag.get(p).map(|l| (*p, *l)))
            .collect()
    }

    /// Logged when they change.
    fn assigned_partitions(&self) -> Vec<i32> {
        let mut now: Vec<i32> = self
            .consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        now.sort_unstable();
        if let Ok(mut last) = self.last_assignment.lock() {
            if *last != now {
                tracing::info!(topic = %self.topic, partitions = ?now, "assignment changed");
                *last = now.clone();
            }
        }
        now
    }
}

fn detach<M: Message>(m: &M) -> SourceRecord {
    SourceRecord {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::partition_lag;
    use rdkafka::statistics::Partition;

    fn stats(app: i64, committed: i64, lo: i64, hi: i64, ls: i64) -> Partition {
        Partition {
            app_offset: app,
            committed_offset: committed,
            lo_offset: lo,
            hi_offset: hi,
            ls_offset: ls,
            ..Partition::default()
        }
    }

    #[test]
    fn lag_is_the_end_minus_the_next_offset_read() {
        // Read through 89 of 100.
        assert_eq!(partition_lag(&stats(90, 40, 0, 100, 100)), Some(10));
        // Transactions open: the end is the last stable offset.
        assert_eq!(partition_lag(&stats(90, 40, 0, 120, 100)), Some(10));
        // Nothing read since the assignment or a rewind: from the committed offset.
        assert_eq!(partition_lag(&stats(-1001, 40, 0, 100, 100)), Some(60));
        // Nothing committed either: from the first offset.
        assert_eq!(partition_lag(&stats(-1001, -1001, 5, 100, 100)), Some(95));
        // All read: 0; an end fetched before the last record read: not below 0.
        assert_eq!(partition_lag(&stats(100, 100, 0, 100, 100)), Some(0));
        assert_eq!(partition_lag(&stats(101, 100, 0, 100, 100)), Some(0));
        // Not fetched from yet: unknown.
        assert_eq!(partition_lag(&stats(-1001, 40, -1001, -1001, -1001)), None);
    }
}
