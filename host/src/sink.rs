//! Stage 6: produce output records and wait until the broker has acknowledged all of
//! them. Only then may the source commit: this is what makes delivery at-least-once.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::config::KafkaConfig;
use crate::route::{Destination, Output};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("stopped with {0} records not acknowledged")]
    Stopped(usize),
}

/// The producer settings every writer of this host uses (the pipeline's [`Sink`], `dlq
/// replay`): acknowledged by all in-sync replicas, idempotent unless switched off.
pub fn producer_config(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", client_id)
        .set("acks", "all")
        // No duplicates or reordering from the producer's own retries.
        .set("enable.idempotence", kafka.idempotence.to_string())
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        // Retry inside librdkafka for a long time; past that the caller decides.
        .set("message.timeout.ms", "30000");
    config
}

pub struct Sink {
    producer: FutureProducer,
    enriched_topic: String,
    dlq_topic: String,
    averages_topic: String,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

impl Sink {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, SinkError> {
        let producer: FutureProducer = producer_config(kafka, "streamhost-producer")
            .create()
            .map_err(SinkError::Create)?;
        Ok(Self {
            producer,
            enriched_topic: kafka.enriched_topic.clone(),
            dlq_topic: kafka.dlq_topic.clone(),
            averages_topic: kafka.averages_topic.clone(),
        })
    }

    fn topic(&self, d: Destination) -> &str {
        match d {
            Destination::Enriched => &self.enriched_topic,
            Destination::Dlq => &self.dlq_topic,
            Destination::Averages => &self.averages_topic,
        }
    }

    /// Produce every output and return once all are acknowledged. Failed deliveries are
    /// retried (the broker may be down for a while) until `stop` says to give up.
    pub async fn send_all(
        &self,
        outputs: &[Output],
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SinkError> {
        let mut pending: Vec<&Output> = outputs.iter().collect();
        let mut backoff = Duration::from_millis(200);
        while !pending.is_empty() {
            let deliveries = pending.iter().map(|o| {
                let record = FutureRecord::to(self.topic(o.destination))
                    .key(o.key.as_bytes())
                    .payload(o.payload.as_slice());
                self.producer.send(record, Timeout::Never)
            });
            let results = join_all(deliveries).await;
            let mut failed = Vec::new();
            for (output, result) in pending.iter().zip(results) {
                match result {
                    Ok(_) => metrics::counter!("streamhost_records_out_total",
                        "topic" => self.topic(output.destination).to_string())
                    .increment(1),
                    Err((error, _)) => {
                        tracing::warn!(topic = self.topic(output.destination), %error, "delivery failed; will retry");
                        failed.push(*output);
                    }
                }
            }
            pending = failed;
            if pending.is_empty() {
                break;
            }
            if *stop.borrow() {
                return Err(SinkError::Stopped(pending.len()));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        Ok(())
    }

    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush on shutdown");
        }
    }
}
