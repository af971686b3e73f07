//! The validate stage, end to end: `my_events` → decode → plugin chain → route →
//! `enriched_events` / `dlq`, committing input positions only after the outputs are
//! acknowledged.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::decode::decode;
use crate::plugins::reload::ChainUpdate;
use crate::plugins::{Chain, Outcome};
use crate::route::{self, Output, Stage};
use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError, SourceRecord};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Decode, judge and route one batch. Pure: no I/O, so it is shared by the Kafka loop,
/// `streamhost plugin test` and the benchmarks. One output per input record.
pub fn process_batch(
    chain: &mut Chain,
    records: &[SourceRecord],
    source_topic: &str,
    max_message_bytes: usize,
) -> Vec<Output> {
    let mut outputs = Vec::with_capacity(records.len());
    let mut decoded = Vec::with_capacity(records.len());
    let mut events = Vec::with_capacity(records.len());
    for record in records {
        match decode(&record.payload, max_message_bytes) {
            Ok(d) => {
                events.push(d.event);
                decoded.push((record, d.extra));
            }
            Err(e) => {
                metrics::counter!("streamhost_rejections_total", "stage" => "decode", "code" => e.code())
                    .increment(1);
                outputs.push(route::dlq(
                    record,
                    source_topic,
                    Stage::Decode,
                    "host",
                    e.code(),
                    &e.to_string(),
                ));
            }
        }
    }
    let outcomes = chain.process(events);
    let processed_by = chain.processed_by();
    for ((record, extra), outcome) in decoded.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Accepted(event) => {
                outputs.push(route::enriched(&event, &extra, record, &processed_by));
            }
            Outcome::Rejected(r) => {
                metrics::counter!("streamhost_rejections_total", "stage" => "plugin", "code" => r.code.clone())
                    .increment(1);
                outputs.push(route::dlq(
                    record,
                    source_topic,
                    Stage::Plugin,
                    &r.rejected_by,
                    &r.code,
                    &r.message,
                ));
            }
        }
    }
    outputs
}

/// Run the validate stage until `stop` turns true.
pub async fn run(
    config: &Config,
    mut chain: Chain,
    mut updates: mpsc::Receiver<ChainUpdate>,
    sink: &Sink,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let source = Source::new(
        &config.kafka.brokers,
        &config.kafka.group_id,
        &config.kafka.input_topic,
    )?;
    tracing::info!(topic = source.topic(), chain = %chain.processed_by(), "validate stage started");
    // Short: a chain update waiting while no records arrive is installed within this.
    let idle = Duration::from_millis(200);
    loop {
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
        let batch = tokio::select! {
            batch = source.next_batch(config.pipeline.batch_size, config.batch_wait(), idle) => batch?,
            _ = stop.changed() => break,
        };
        metrics::gauge!("streamhost_assigned_partitions", "stage" => "validate")
            .set(source.assigned_partitions().len() as f64);
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        metrics::counter!("streamhost_records_in_total", "topic" => config.kafka.input_topic.clone())
            .increment(batch.len() as u64);
        let outputs = process_batch(
            &mut chain,
            &batch,
            &config.kafka.input_topic,
            config.pipeline.max_message_bytes,
        );
        let process_seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("streamhost_batch_process_seconds").record(process_seconds);
        sink.send_all(&outputs, &stop).await?;
        source.commit(&batch)?;
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("streamhost_batch_seconds").record(seconds);
        // Per-batch latencies, for percentiles over any interval (bench/e2e's hot-swap phases).
        tracing::debug!(
            records = batch.len(),
            seconds,
            process_seconds,
            "batch committed"
        );
    }
    tracing::info!("validate stage stopped");
    Ok(())
}
