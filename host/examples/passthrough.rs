//! The ceiling of the end-to-end benchmark (`bench/e2e`): consume → produce with no work.
//!
//! Same client, version and settings as the host's validate stage (`source.rs`,
//! `sink.rs`): batches of up to `--batch-size` records or `--batch-wait-ms`, every record
//! produced unchanged (key and payload) with `acks=all`, idempotence and the host's `linger.ms`,
//! up to `--in-flight` batches waiting for their acknowledgements, and each batch's
//! offsets committed, in order, only after every delivery is acknowledged. What is left
//! out is exactly the host's work: decode, the plugin chain, route, the windows.
//!
//!     cargo run --release --example passthrough -- \
//!         --brokers 127.0.0.1:19192 --input my_events --output passthrough_out
//!
//! `--then-to TOPIC` adds a second hop in the same process (`--output` → `TOPIC`, group
//! `GROUP-2`): the ceiling for the full pipeline, which reads its own output back as a
//! Kafka Streams repartition does.
//!
//! Runs until SIGINT/SIGTERM.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use futures::future::{join_all, JoinAll};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

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
    /// Produce each record to its input partition number (default: the producer's
    /// partitioner, which spreads keyless records by sticky random choice).
    #[arg(long)]
    keep_partition: bool,
    /// Batches produced but not yet acknowledged (the host's `pipeline.in_flight_batches`).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// The producer's `linger.ms` (default: the host's).
    #[arg(long, default_value = streamhost::kafka::client::PRODUCER_LINGER_MS)]
    linger_ms: u64,
    /// A second hop: copy `--output` on to this topic too (group `GROUP-2`).
    #[arg(long, value_name = "TOPIC")]
    then_to: Option<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
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
    let first = hop(
        &args,
        &args.input,
        &args.output,
        args.group.clone(),
        stop.clone(),
    );
    match &args.then_to {
        None => first.await,
        Some(to) => {
            let second = hop(&args, &args.output, to, format!("{}-2", args.group), stop);
            tokio::try_join!(first, second).map(|_| ())
        }
    }
}

/// Copy `input` to `output` as group `group` until `stop`.
async fn hop(
    args: &Args,
    input: &str,
    output: &str,
    group: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &group)
        .set("client.id", format!("passthrough-{group}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("consumer")?;
    consumer.subscribe(&[input]).context("subscribe")?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("client.id", format!("passthrough-producer-{group}"))
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("message.timeout.ms", "30000")
        .create()
        .context("producer")?;

    let wait = Duration::from_millis(args.batch_wait_ms);
    let mut total: u64 = 0;
    let mut in_flight = InFlight::new();
    loop {
        // As the host does: when the input goes quiet, what is in flight is committed.
        let quiet = tokio::time::sleep(Duration::from_millis(200));
        let first = tokio::select! {
            m = consumer.recv() => m.context("receive")?.detach(),
            _ = quiet, if !in_flight.is_empty() => {
                commit_all(&consumer, input, &mut in_flight).await?;
                continue;
            }
            _ = stop.changed() => break,
        };
        let mut batch: Vec<OwnedMessage> = vec![first];
        let deadline = Instant::now() + wait;
        while batch.len() < args.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => {
                    eprintln!("receive error while filling a batch: {e}");
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        // Enqueued here, in order; acknowledged while the next batches are read.
        let mut deliveries = Vec::with_capacity(batch.len());
        for m in &batch {
            let mut record = FutureRecord::<[u8], [u8]>::to(output);
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            if let Some(payload) = m.payload() {
                record = record.payload(payload);
            }
            if args.keep_partition {
                record = record.partition(m.partition());
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => deliveries.push(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    Err((e, _)) => return Err(e).context("enqueue"),
                }
                break;
            }
        }
        let mut next: HashMap<i32, i64> = HashMap::new();
        for m in &batch {
            let entry = next.entry(m.partition()).or_insert(m.offset() + 1);
            *entry = (*entry).max(m.offset() + 1);
        }
        in_flight.push_back((next, join_all(deliveries)));
        while in_flight.len() >= args.in_flight.max(1) {
            commit_oldest(&consumer, input, &mut in_flight).await?;
        }
        total += batch.len() as u64;
    }
    commit_all(&consumer, input, &mut in_flight).await?;
    producer
        .flush(Timeout::After(Duration::from_secs(10)))
        .context("flush")?;
    eprintln!("passthrough {input} → {output}: {total} records copied");
    Ok(())
}

type InFlight = VecDeque<(HashMap<i32, i64>, JoinAll<DeliveryFuture>)>;

async fn commit_all(
    consumer: &StreamConsumer,
    topic: &str,
    in_flight: &mut InFlight,
) -> Result<()> {
    while !in_flight.is_empty() {
        commit_oldest(consumer, topic, in_flight).await?;
    }
    Ok(())
}

/// Wait for the oldest batch's acknowledgements, then commit its offsets.
async fn commit_oldest(
    consumer: &StreamConsumer,
    topic: &str,
    in_flight: &mut InFlight,
) -> Result<()> {
    let Some((next, deliveries)) = in_flight.pop_front() else {
        return Ok(());
    };
    for result in deliveries.await {
        result
            .context("producer dropped")?
            .map_err(|(e, _)| e)
            .context("delivery")?;
    }
    let mut tpl = TopicPartitionList::with_capacity(next.len());
    for (partition, offset) in next {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .context("commit list")?;
    }
    consumer.commit(&tpl, CommitMode::Async).context("commit")?;
    Ok(())
}
