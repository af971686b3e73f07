//! The ceiling of the end-to-end benchmark (`bench/e2e`): the host's own loop with no work.
//!
//! A stage that copies every record unchanged, run by the host's stage runtime
//! (`stages::runtime`): the same source, sink, client settings, batches, batches in
//! flight, commits after acknowledgement and partition watchdog as `streamhost run`.
//! What is left out is exactly the host's work: decode, the plugin chain, route, the
//! windows. Each copy is keyed by its input offset (the input has no keys; the host
//! keys its outputs too), so the copies spread over the output's partitions.
//!
//!     cargo run --release --example passthrough -- \
//!         --brokers 127.0.0.1:19192 --input my_events --output passthrough_out
//!
//! `--then-to TOPIC` adds a second hop in the same process and producer (`--output` →
//! `TOPIC`, group `GROUP-2`), as the host runs its two stages: the ceiling for the full
//! pipeline, which reads its own output back as a Kafka Streams repartition does.
//!
//! Runs until SIGINT/SIGTERM.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use compact_str::ToCompactString;
use streamhost::config::KafkaConfig;
use streamhost::kafka::run::{self, Reading};
use streamhost::kafka::sink::KafkaSink;
use streamhost::kafka::Clients;
use streamhost::liveness::{Health, StageName};
use streamhost::records::{next_positions, Destination, Output, SourceRecord};
use streamhost::stages::io::Source;
use streamhost::stages::runtime::Batching;
use streamhost::stages::{validate, Processed, Stage, StageError};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value = "my_events")]
    input: String,
    #[arg(long, default_value = "passthrough_out")]
    output: String,
    #[arg(long, default_value = "passthrough")]
    group: String,
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    #[arg(long, default_value_t = 50)]
    batch_wait_ms: u64,
    /// Batches produced but not yet acknowledged (the host's `pipeline.in_flight_batches`).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// A second hop: copy `--output` on to this topic too (group `GROUP-2`).
    #[arg(long, value_name = "TOPIC")]
    then_to: Option<String>,
}

/// Copies each record of a batch to one destination.
struct Relay {
    name: StageName,
    to: Destination,
    in_flight: usize,
}

impl Stage for Relay {
    fn name(&self) -> StageName {
        self.name
    }

    fn idle_wait(&self) -> Duration {
        validate::IDLE_WAIT
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    async fn process(
        &mut self,
        batch: &[SourceRecord],
        _source: &impl Source,
        _assigned: &[i32],
        _now: Instant,
    ) -> Result<Processed, StageError> {
        let outputs = batch
            .iter()
            .map(|r| Output {
                destination: self.to,
                key: r.offset.to_compact_string(),
                payload: r.payload.clone(),
            })
            .collect();
        Ok(Processed {
            outputs,
            commit: next_positions(batch),
        })
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    // The host's warnings (an orphaned partition) and librdkafka's (a session timeout).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The second hop writes where the host's second stage does; its first, where the first does.
    let kafka = KafkaConfig {
        brokers: args.brokers.clone(),
        enriched_topic: args.output.clone(),
        averages_topic: args.then_to.clone().unwrap_or_default(),
        ..KafkaConfig::default()
    };
    let clients = Clients::new(&kafka).context("kafka.client")?;
    let sink = KafkaSink::new(&clients, &kafka).context("producer")?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let signals = async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("SIGTERM handler")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(true);
        Ok::<_, anyhow::Error>(())
    };
    tokio::spawn(signals);
    let health = Health::default();
    let reading = |group: String, topic: &str| Reading {
        clients: clients.clone(),
        group_id: group,
        topic: topic.to_string(),
        batching: Batching {
            size: args.batch_size,
            wait: Duration::from_millis(args.batch_wait_ms),
        },
        watchdog: kafka.watchdog,
        stall_timeout: Duration::from_secs(kafka.stall_timeout_secs),
    };
    let first = async {
        let mut relay = Relay {
            name: StageName::Validate,
            to: Destination::Enriched,
            in_flight: args.in_flight,
        };
        let reading = reading(args.group.clone(), &args.input);
        run::run(&mut relay, &reading, &sink, &health, stop.clone()).await
    };
    let second = async {
        if args.then_to.is_none() {
            return Ok(());
        }
        let mut relay = Relay {
            name: StageName::Window,
            to: Destination::Averages,
            in_flight: args.in_flight,
        };
        let reading = reading(format!("{}-2", args.group), &args.output);
        run::run(&mut relay, &reading, &sink, &health, stop.clone()).await
    };
    let (first, second) = tokio::join!(first, second);
    sink.flush(Duration::from_secs(10));
    first.context("first hop")?;
    second.context("second hop")?;
    Ok(())
}
