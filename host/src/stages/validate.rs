//! The validate stage: `my_events` → decode by the schema → plugin chain →
//! `enriched_events` (accepted) / `dlq` (rejected, with why and the original bytes).
//! The chain is swapped live between batches when the plugin directory changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::rejects::Rejects;
use super::{Processed, Stage, StageError};
use crate::decode::Decoder;
use crate::event::Event;
use crate::kafka::source::Source;
use crate::liveness::StageName;
use crate::plugins::reload::ChainUpdate;
use crate::plugins::{Chain, Verdict};
use crate::records::dlq::{HostCode, Step, REJECTED_BY_HOST};
use crate::records::enriched::Enricher;
use crate::records::{next_positions, Output, SourceRecord, MAX_OUTPUT_BYTES};
use crate::schema::Schema;

/// The validate stage's work on a batch, without I/O: decode by the schema, judge
/// with the chain, route. Shared by the Kafka loop, `streamhost plugin test` and the
/// benchmarks.
#[derive(Debug, Clone)]
pub struct Validate {
    pub decoder: Decoder,
    pub enricher: Enricher,
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
            enricher: Enricher::new(schema, key),
            source_topic: source_topic.to_string(),
        })
    }

    /// Decode, judge and route one batch. One output per input record.
    pub fn process_batch(&self, judge: &mut impl Judge, records: &[SourceRecord]) -> Vec<Output> {
        let mut rejects = Rejects::new(&self.source_topic, Instant::now());
        let mut outputs = Vec::with_capacity(records.len());
        let mut decoded = Vec::with_capacity(records.len());
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            match self.decoder.decode(&record.payload) {
                Ok(event) => {
                    events.push(event);
                    decoded.push(record);
                }
                Err(e) => outputs.push(rejects.reject(
                    record,
                    Step::Decode,
                    REJECTED_BY_HOST,
                    e.code().as_str(),
                    &e.to_string(),
                )),
            }
        }
        let verdicts = judge.judge(events);
        let processed_by = judge.processed_by();
        for (record, verdict) in decoded.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Accepted(event) => {
                    let output = self.enricher.output(&event, record, &processed_by);
                    if output.size() <= MAX_OUTPUT_BYTES {
                        outputs.push(output);
                        continue;
                    }
                    // The broker would refuse it on every attempt, and every batch behind
                    // it would wait: the event goes to the DLQ instead.
                    outputs.push(rejects.reject(
                        record,
                        Step::Route,
                        REJECTED_BY_HOST,
                        HostCode::OutputTooLarge.as_str(),
                        &format!(
                            "the enriched record would be {} bytes (key and value), over the {MAX_OUTPUT_BYTES}-byte limit on output records",
                            output.size(),
                        ),
                    ));
                }
                Verdict::Rejected(r) => outputs.push(rejects.reject(
                    record,
                    Step::Plugin,
                    &r.rejected_by,
                    &r.code,
                    &r.message,
                )),
            }
        }
        outputs
    }
}

/// What judges the decoded events of a batch: the plugin chain, or (in the benchmark
/// and the equivalence test) the same rules compiled into the host, so that both run
/// through the same decode and routing.
pub trait Judge {
    /// One verdict per event, in order.
    fn judge(&mut self, events: Vec<Event>) -> Vec<Verdict>;
    /// What accepted events record as `processed_by`.
    fn processed_by(&self) -> String;
}

impl Judge for Chain {
    fn judge(&mut self, events: Vec<Event>) -> Vec<Verdict> {
        self.process(events)
    }

    fn processed_by(&self) -> String {
        Chain::processed_by(self)
    }
}

/// The validate stage as the runtime drives it: [`Validate`] with its live chain.
#[derive(Debug)]
pub struct ValidateStage {
    validate: Validate,
    chain: Chain,
    updates: mpsc::Receiver<ChainUpdate>,
    /// An update taken by [`Stage::wake`], installed next.
    woken_by: Option<ChainUpdate>,
    in_flight: usize,
}

impl ValidateStage {
    pub fn new(
        validate: Validate,
        chain: Chain,
        updates: mpsc::Receiver<ChainUpdate>,
        in_flight: usize,
    ) -> Self {
        tracing::info!(topic = %validate.source_topic, chain = %chain.processed_by(), "validate stage started");
        Self {
            validate,
            chain,
            updates,
            woken_by: None,
            in_flight,
        }
    }
}

/// The validate stage's longest wait for input ([`Stage::idle_wait`]). Short: a chain
/// update waiting while no records arrive is installed within this.
pub const IDLE_WAIT: Duration = Duration::from_millis(200);

impl Stage for ValidateStage {
    fn name(&self) -> StageName {
        StageName::Validate
    }

    fn idle_wait(&self) -> Duration {
        IDLE_WAIT
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A batch runs start to end on one chain: a new one is installed between batches.
    fn between_batches(&mut self) {
        let woken_by = self.woken_by.take();
        let updates = woken_by
            .into_iter()
            .chain(std::iter::from_fn(|| self.updates.try_recv().ok()));
        for update in updates {
            self.chain = std::mem::take(&mut self.chain).with_members(update.members);
            let took = update.seen_at.elapsed();
            metrics::counter!("streamhost_plugin_swaps_total").increment(1);
            metrics::histogram!("streamhost_plugin_swap_seconds").record(took.as_secs_f64());
            tracing::info!(chain = %self.chain.processed_by(), swap_ms = took.as_millis() as u64, "plugin chain swapped");
        }
    }

    /// A new chain stops the wait for input: it serves from the next batch, not after
    /// the next poll of a quiet topic.
    async fn wake(&mut self) {
        if self.woken_by.is_none() {
            match self.updates.recv().await {
                Some(update) => self.woken_by = Some(update),
                // The watcher is gone: nothing will come.
                None => std::future::pending().await,
            }
        }
    }

    async fn process(
        &mut self,
        batch: &[SourceRecord],
        _source: &Source,
        _assigned: &[i32],
        _now: Instant,
    ) -> Result<Processed, StageError> {
        if batch.is_empty() {
            return Ok(Processed::default());
        }
        Ok(Processed {
            outputs: self.validate.process_batch(&mut self.chain, batch),
            commit: next_positions(batch),
        })
    }
}
