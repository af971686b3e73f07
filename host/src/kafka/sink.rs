//! A stage's output: produce records and wait until the broker has acknowledged all of
//! them. Only then may the source commit: this is what makes delivery at-least-once.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::client::ClientLog;
use super::Clients;
use crate::config::KafkaConfig;
use crate::records::{Destination, Output};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("stopped with {0} records not acknowledged")]
    Stopped(usize),
}

/// Outputs handed to the producer, with their pending acknowledgements.
pub struct Deliveries {
    outputs: Vec<Output>,
    deliveries: Vec<Result<DeliveryFuture, KafkaError>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

pub struct Sink {
    producer: FutureProducer<ClientLog>,
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
    pub fn new(clients: &Clients, kafka: &KafkaConfig) -> Result<Self, SinkError> {
        let producer: FutureProducer<ClientLog> = clients
            .producer("streamhost-producer")
            .create_with_context(ClientLog)
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

    /// Hand every output to the producer now, in order, and return the batch's
    /// deliveries to [`Sink::settle`] later. Waits only while the producer's queue is
    /// full. Enqueueing here, not in a spawned task, is what keeps the outputs of
    /// batches in flight in their input order.
    pub async fn enqueue(&self, outputs: Vec<Output>) -> Deliveries {
        let mut deliveries = Vec::with_capacity(outputs.len());
        for o in &outputs {
            loop {
                let record = FutureRecord::to(self.topic(o.destination))
                    .key(o.key.as_bytes())
                    .payload(o.payload.as_slice());
                match self.producer.send_result(record) {
                    Ok(delivery) => deliveries.push(Ok(delivery)),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    // Settled as a failed delivery: produced again with the backoff.
                    Err((error, _)) => deliveries.push(Err(error)),
                }
                break;
            }
        }
        Deliveries {
            outputs,
            deliveries,
        }
    }

    /// Wait until every output of `batch` is acknowledged. Failed deliveries are
    /// produced again (the broker may be down for a while) until `stop` says to give up.
    pub async fn settle(
        &self,
        mut batch: Deliveries,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SinkError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let results = join_all(batch.deliveries.into_iter().map(|d| async move {
                match d {
                    Ok(delivery) => match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((error, _))) => Err(error),
                        Err(_canceled) => Err(KafkaError::Canceled),
                    },
                    Err(error) => Err(error),
                }
            }))
            .await;
            let mut failed = Vec::new();
            for (output, result) in batch.outputs.into_iter().zip(results) {
                let topic = self.topic(output.destination);
                match result {
                    Ok(()) => metrics::counter!("streamhost_records_out_total",
                        "topic" => topic.to_string())
                    .increment(1),
                    Err(error) => {
                        tracing::warn!(topic, %error, "delivery failed; will retry");
                        failed.push(output);
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if *stop.borrow() {
                return Err(SinkError::Stopped(failed.len()));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            batch = self.enqueue(failed).await;
        }
    }

    /// Produce every output and return once all are acknowledged (one batch in flight).
    pub async fn send_all(
        &self,
        outputs: Vec<Output>,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SinkError> {
        let batch = self.enqueue(outputs).await;
        self.settle(batch, stop).await
    }

    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush on shutdown");
        }
    }
}
