//! The validate stage, end to end: `my_events` → decode → plugin chain → route →
//! `enriched_events` / `dlq`, committing input positions only after the outputs are
//! acknowledged. Up to `pipeline.in_flight_batches` batches wait for their
//! acknowledgements while the next one is read and judged; commits stay in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::decode::Decoder;
use crate::liveness::{Health, StageName, Watchdog, WatchdogConfig};
use crate::plugins::reload::ChainUpdate;
use crate::plugins::{Chain, Outcome};
use crate::route::{self, Output, Stage};
use crate::schema::Schema;
use crate::sink::{Sink, SinkError};
use crate::source::{next_positions, Source, SourceError, SourceRecord};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// The validate stage's work on a batch, without I/O: decode by the schema, judge
/// with the chain, route. Shared by the Kafka loop, `streamhost plugin test` and the
/// benchmarks.
#[derive(Debug, Clone)]
pub struct Validate {
    pub decoder: Decoder,
    pub enricher: route::Enricher,
    pub source_topic: String,
}

impl Validate {
    /// The validate stage for `schema`, keying output events by the window key field.
    pub fn new(
        schema: Arc<Schema>,
        key_field: &str,
        source_topic: &str,
        max_message_bytes: usize,
    ) -> Result<Self, String> {
        let key = schema
            .index(key_field)
            .filter(|i| schema.field(*i).required)
            .ok_or_else(|| {
                format!(
                    "windows.key_field `{key_field}` must be a required field of the event schema"
                )
            })?;
        Ok(Self {
            decoder: Decoder::new(schema.clone(), max_message_bytes),
            enricher: route::Enricher::new(schema, key),
            source_topic: source_topic.to_string(),
        })
    }

    /// Decode, judge and route one batch. One output per input record.
    pub fn process_batch(&self, chain: &mut Chain, records: &[SourceRecord]) -> Vec<Output> {
        let source_topic = self.source_topic.as_str();
        let mut outputs = Vec::with_capacity(records.len());
        let mut decoded = Vec::with_capacity(records.len());
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            match self.decoder.decode(&record.payload) {
                Ok(event) => {
                    events.push(event);
                    decoded.push(record);
                }
                Err(e) => outputs.push(reject(
                    record,
                    source_topic,
                    Stage::Decode,
                    "host",
                    e.code(),
                    &e.to_string(),
                )),
            }
        }
        let outcomes = chain.process(events);
        let processed_by = chain.processed_by();
        for (record, outcome) in decoded.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Accepted(event) => {
                    let output = self.enricher.output(&event, record, &processed_by);
                    if output.payload.len() <= route::MAX_OUTPUT_BYTES {
                        outputs.push(output);
                        continue;
                    }
                    // The broker would refuse it on every attempt, and every batch behind
                    // it would wait: the event goes to the DLQ instead.
                    outputs.push(reject(
                        record,
                        source_topic,
                        Stage::Route,
                        "host",
                        route::OUTPUT_TOO_LARGE,
                        &format!(
                            "the enriched record would be {} bytes, over the {}-byte limit on output records",
                            output.payload.len(),
                            route::MAX_OUTPUT_BYTES
                        ),
                    ));
                }
                Outcome::Rejected(r) => outputs.push(reject(
                    record,
                    source_topic,
                    Stage::Plugin,
                    &r.rejected_by,
                    &r.code,
                    &r.message,
                )),
            }
        }
        outputs
    }
}

/// A rejection: counted by stage and code, and routed to the DLQ with the original bytes.
fn reject(
    record: &SourceRecord,
    source_topic: &str,
    stage: Stage,
    rejected_by: &str,
    code: &str,
    message: &str,
) -> Output {
    metrics::counter!("streamhost_rejections_total", "stage" => stage.as_str(), "code" => code.to_owned())
        .increment(1);
    route::dlq(record, source_topic, stage, rejected_by, code, message)
}

/// A batch whose outputs are with the producer. Its input positions are committed once
/// they are all acknowledged, and only after every batch before it: a crash re-reads
/// from the oldest unacknowledged batch, never skips one.
struct Pending<'a> {
    records: usize,
    started: Instant,
    process_seconds: f64,
    positions: HashMap<i32, i64>,
    acked: BoxFuture<'a, Result<(), SinkError>>,
}

/// The batches in flight, oldest first.
struct InFlight<'a> {
    batches: VecDeque<Pending<'a>>,
}

impl InFlight<'_> {
    /// Commit every acknowledged batch at the head, without waiting.
    fn commit_ready(&mut self, source: &Source) -> Result<(), PipelineError> {
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
    async fn commit_oldest(&mut self, source: &Source) -> Result<(), PipelineError> {
        if let Some(head) = self.batches.front_mut() {
            head.acked.as_mut().await?;
            self.commit_head(source)?;
        }
        Ok(())
    }

    async fn commit_all(&mut self, source: &Source) -> Result<(), PipelineError> {
        while !self.batches.is_empty() {
            self.commit_oldest(source).await?;
        }
        Ok(())
    }

    fn commit_head(&mut self, source: &Source) -> Result<(), PipelineError> {
        let Some(batch) = self.batches.pop_front() else {
            return Ok(());
        };
        source.commit_positions(&batch.positions)?;
        let seconds = batch.started.elapsed().as_secs_f64();
        metrics::histogram!("streamhost_batch_seconds").record(seconds);
        metrics::gauge!("streamhost_batches_in_flight").set(self.batches.len() as f64);
        // Per-batch latencies, for percentiles over any interval (bench/e2e's hot-swap phases).
        tracing::debug!(
            records = batch.records,
            seconds,
            process_seconds = batch.process_seconds,
            "batch committed"
        );
        Ok(())
    }
}

/// Run the validate stage until `stop` turns true.
pub async fn run(
    config: &Config,
    validate: &Validate,
    mut chain: Chain,
    mut updates: mpsc::Receiver<ChainUpdate>,
    sink: &Sink,
    health: &Health,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let stage = StageName::Validate;
    // Short: a chain update waiting while no records arrive is installed within this.
    let idle = Duration::from_millis(200);
    let mut source = Source::new(
        &config.kafka.brokers,
        &config.kafka.group_id,
        &config.kafka.input_topic,
    )?;
    let watchdog = Watchdog::start(
        WatchdogConfig {
            stage,
            brokers: config.kafka.brokers.clone(),
            group_id: config.kafka.group_id.clone(),
            topic: config.kafka.input_topic.clone(),
            stall_timeout: config.stall_timeout(),
            longest_turn: idle,
        },
        health.clone(),
    )?;
    tracing::info!(topic = source.topic(), chain = %chain.processed_by(), "validate stage started");
    let depth = config.pipeline.in_flight_batches;
    let mut in_flight = InFlight {
        batches: VecDeque::with_capacity(depth),
    };
    loop {
        in_flight.commit_ready(&source)?;
        if *stop.borrow() {
            break;
        }
        // Between batches only: a batch runs start to end on one chain.
        while let Ok(update) = updates.try_recv() {
            chain = chain.with_members(update.members);
            let took = update.seen_at.elapsed();
            metrics::counter!("streamhost_plugin_swaps_total").increment(1);
            metrics::histogram!("streamhost_plugin_swap_seconds").record(took.as_secs_f64());
            tracing::info!(chain = %chain.processed_by(), swap_ms = took.as_millis() as u64, "plugin chain swapped");
        }
        let orphans = watchdog.orphans(&source.assigned_partitions());
        if !orphans.is_empty() {
            // What was read is committed first: the new generation resumes from there.
            in_flight.commit_all(&source).await?;
            watchdog.take_over(&mut source, &orphans)?;
            continue;
        }
        let batch = tokio::select! {
            batch = source.next_batch(config.pipeline.batch_size, config.batch_wait(), idle) => batch?,
            _ = stop.changed() => break,
        };
        let assigned = source.assigned_partitions();
        metrics::gauge!("streamhost_assigned_partitions", "stage" => stage.as_str())
            .set(assigned.len() as f64);
        let positions = next_positions(&batch);
        watchdog.turned(&assigned);
        if batch.is_empty() {
            // Nothing to overlap with: let the positions catch up.
            in_flight.commit_all(&source).await?;
            continue;
        }
        let started = Instant::now();
        metrics::counter!("streamhost_records_in_total", "topic" => config.kafka.input_topic.clone())
            .increment(batch.len() as u64);
        let outputs = validate.process_batch(&mut chain, &batch);
        let process_seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("streamhost_batch_process_seconds").record(process_seconds);
        let delivery = sink.enqueue(outputs).await;
        let stop = stop.clone();
        in_flight.batches.push_back(Pending {
            records: batch.len(),
            started,
            process_seconds,
            positions,
            acked: async move { sink.settle(delivery, &stop).await }.boxed(),
        });
        metrics::gauge!("streamhost_batches_in_flight").set(in_flight.batches.len() as f64);
        // While these are acknowledged, the next batch is read and judged.
        while in_flight.batches.len() >= depth {
            in_flight.commit_oldest(&source).await?;
        }
    }
    // Whatever was produced is waited for and committed: a clean stop re-reads nothing.
    in_flight.commit_all(&source).await?;
    tracing::info!("validate stage stopped");
    Ok(())
}
