//! The one loop every stage runs on: read a batch, let the stage process it, hand the
//! outputs to the producer in order, and commit the batch's positions once they and
//! every batch before them are acknowledged. Up to [`Stage::in_flight`] batches wait
//! for their acknowledgements while the next one is read and processed; one more when
//! the stage is woken for work between batches (see [`Stage::wake`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::io::{Sink, SinkError, Source};
use super::{Stage, StageError};
use crate::liveness::Watchdog;
use crate::telemetry;

/// How much a stage reads at a time.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// At most this many records.
    pub size: usize,
    /// Once the first record is in, how long to wait for more.
    pub wait: Duration,
}

/// How often `streamhost_consumer_lag` is set from what the source knows.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// `streamhost_consumer_lag` of the partitions this instance owns, from what the source
/// already knows ([`Source::lag`], no round trip), at most every [`LAG_EVERY`]. A
/// partition revoked, or no longer assigned, is set to 0 at once: its lag is its new
/// owner's to show.
struct LagGauges {
    stage: &'static str,
    shown: BTreeSet<i32>,
    next: Option<Instant>,
}

impl LagGauges {
    fn update(&mut self, source: &impl Source, assigned: &[i32], revoked: &[i32]) {
        let gone: Vec<i32> = self
            .shown
            .iter()
            .copied()
            .filter(|p| revoked.contains(p) || !assigned.contains(p))
            .collect();
        for p in gone {
            self.set(p, 0);
            self.shown.remove(&p);
        }
        let now = Instant::now();
        if self.next.is_some_and(|next| now < next) {
            return;
        }
        self.next = Some(now + LAG_EVERY);
        for (p, lag) in source.lag(assigned) {
            self.set(p, lag);
            self.shown.insert(p);
        }
    }

    fn set(&self, partition: i32, lag: i64) {
        metrics::gauge!(telemetry::CONSUMER_LAG.name, "stage" => self.stage, "partition" => partition.to_string())
            .set(lag as f64);
    }
}

/// A batch whose outputs are with the producer. Its input positions are committed once
/// they are all acknowledged, and only after every batch before it: a crash re-reads
/// from the oldest unacknowledged batch, never skips one.
struct Pending<'a> {
    records: usize,
    started: Instant,
    process_seconds: f64,
    commit: HashMap<i32, i64>,
    acked: BoxFuture<'a, Result<(), SinkError>>,
}

/// The batches in flight, oldest first.
struct InFlight<'a> {
    stage: &'static str,
    batches: VecDeque<Pending<'a>>,
}

impl InFlight<'_> {
    /// Commit every acknowledged batch at the head, without waiting.
    fn commit_ready(&mut self, source: &impl Source) -> Result<(), StageError> {
        while let Some(head) = self.batches.front_mut() {
            match head.acked.as_mut().now_or_never() {
                None => break,
                Some(acked) => {
                    acked?;
                    self.commit_head(source)?;
                }
            }
        }
        Ok(())
    }

    /// Wait for the oldest batch and commit it.
    async fn commit_oldest(&mut self, source: &impl Source) -> Result<(), StageError> {
        if let Some(head) = self.batches.front_mut() {
            head.acked.as_mut().await?;
            self.commit_head(source)?;
        }
        Ok(())
    }

    async fn commit_all(&mut self, source: &impl Source) -> Result<(), StageError> {
        while !self.batches.is_empty() {
            self.commit_oldest(source).await?;
        }
        Ok(())
    }

    fn commit_head(&mut self, source: &impl Source) -> Result<(), StageError> {
        let Some(batch) = self.batches.pop_front() else {
            return Ok(());
        };
        if !batch.commit.is_empty() {
            source.commit_positions(&batch.commit)?;
        }
        if batch.records > 0 {
            let seconds = batch.started.elapsed().as_secs_f64();
            metrics::histogram!(telemetry::BATCH_SECONDS.name, "stage" => self.stage)
                .record(seconds);
            // Per-batch latencies, for percentiles over any interval (bench/e2e's
            // hot-swap phases).
            tracing::debug!(
                stage = self.stage,
                records = batch.records,
                seconds,
                process_seconds = batch.process_seconds,
                "batch committed"
            );
        }
        metrics::gauge!(telemetry::BATCHES_IN_FLIGHT.name, "stage" => self.stage)
            .set(self.batches.len() as f64);
        Ok(())
    }
}

/// The loop itself, on any [`Source`] and [`Sink`]: turn until `stop` turns true, then
/// wait for what is in flight and commit it. `watchdog`, when there is one, hears of
/// every turn and says which orphaned partitions to take over.
pub async fn drive<S: Stage>(
    stage: &mut S,
    source: &mut impl Source,
    sink: &impl Sink,
    watchdog: Option<&Watchdog>,
    batching: Batching,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StageError> {
    let name = stage.name().as_str();
    let depth = stage.in_flight().max(1);
    let mut in_flight = InFlight {
        stage: name,
        batches: VecDeque::with_capacity(depth),
    };
    let mut lag = LagGauges {
        stage: name,
        shown: BTreeSet::new(),
        next: None,
    };
    loop {
        in_flight.commit_ready(source)?;
        if *stop.borrow() {
            break;
        }
        stage.between_batches();
        if let Some(watchdog) = watchdog {
            let orphans = watchdog.orphans(&source.assigned_partitions());
            if !orphans.is_empty() {
                // What was read is committed first: the new generation resumes from there.
                in_flight.commit_all(source).await?;
                watchdog.take_over(&orphans, || source.rejoin())?;
                continue;
            }
        }
        let idle = stage.idle_wait();
        let next = tokio::select! {
            // In this order: the simulator replays a run exactly.
            biased;
            batch = source.next_batch(batching.size, batching.wait, idle, stage.wake()) => batch?,
            _ = stop.changed() => break,
        };
        // Woken while waiting for input: the stage has work between batches.
        let Some(mut batch) = next else { continue };
        let assigned = source.assigned_partitions();
        // Read by another owner meanwhile, even if ours again.
        let revoked = source.take_revoked();
        if !revoked.is_empty() && stage.revoked(&revoked) {
            // The batch may hold records of a revoked partition, read before the
            // revocation or after it was assigned again: they are dropped, and a
            // partition that is ours again is read again from its committed position.
            let again: Vec<i32> = revoked
                .iter()
                .copied()
                .filter(|p| assigned.contains(p) && batch.iter().any(|r| r.partition == *p))
                .collect();
            batch.retain(|r| !revoked.contains(&r.partition));
            if !again.is_empty() {
                source.rewind(&again)?;
            }
        }
        metrics::gauge!(telemetry::ASSIGNED_PARTITIONS.name, "stage" => name)
            .set(assigned.len() as f64);
        lag.update(source, &assigned, &revoked);
        if let Some(watchdog) = watchdog {
            watchdog.turned(&assigned);
        }
        let started = Instant::now();
        if !batch.is_empty() {
            metrics::counter!(telemetry::RECORDS_IN.name, "topic" => source.topic().to_string())
                .increment(batch.len() as u64);
        }
        let processed = stage
            .process(&batch, source, &assigned, started.into_std())
            .await?;
        let process_seconds = started.elapsed().as_secs_f64();
        if !batch.is_empty() {
            metrics::histogram!(telemetry::BATCH_PROCESS_SECONDS.name, "stage" => name)
                .record(process_seconds);
        }
        if processed.outputs.is_empty() && processed.commit.is_empty() {
            if batch.is_empty() {
                // Nothing to overlap with: let the positions catch up.
                in_flight.commit_all(source).await?;
            }
            continue;
        }
        let delivery = sink.enqueue(processed.outputs).await?;
        let stop = stop.clone();
        in_flight.batches.push_back(Pending {
            records: batch.len(),
            started,
            process_seconds,
            commit: processed.commit,
            acked: async move { sink.settle(delivery, &stop).await }.boxed(),
        });
        metrics::gauge!(telemetry::BATCHES_IN_FLIGHT.name, "stage" => name)
            .set(in_flight.batches.len() as f64);
        if batch.is_empty() {
            in_flight.commit_all(source).await?;
        }
        // While these are acknowledged, the next batch is read and processed. Work for
        // the stage between batches (a new plugin chain) does not wait for the broker:
        // it is taken at once, and its first batch may go past the limit by one.
        while in_flight.batches.len() >= depth {
            tokio::select! {
                biased;
                committed = in_flight.commit_oldest(source) => committed?,
                () = stage.wake() => {
                    stage.between_batches();
                    if in_flight.batches.len() == depth {
                        break;
                    }
                }
            }
        }
    }
    in_flight.commit_all(source).await?;
    tracing::info!(stage = name, "stage stopped");
    Ok(())
}
