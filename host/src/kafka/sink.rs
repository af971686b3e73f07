//! A stage's output: produce records and wait until the broker has acknowledged all of
//! them. Only then may the source commit: this is what makes delivery at-least-once.
//!
//! A run never produces a record twice. What can succeed later ([`DeliveryClass`]) is
//! retried by librdkafka, in order, while the sink waits up to
//! `kafka.delivery_timeout_secs`; a record that fails for good, or is still not
//! acknowledged then, stops the stage. Producing it again here would put it behind
//! records of later batches, and the window stage, which takes a source position lower
//! than one it has counted for a re-delivery, would not count it. The next run reads
//! again from the last committed position and produces it in input order (see
//! [`Clients::stage_producer`] for why nothing after it was written meanwhile).

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;

use super::client::ClientLog;
use super::delivery::classify;
use super::Clients;
use crate::config::KafkaConfig;
use crate::limiter::Limiter;
use crate::records::{Destination, Output};
use crate::stages::io::{DeliveryClass, Sink, SinkError};
use crate::telemetry;

/// How often a wait for acknowledgements looks at the clock (the deadline, a stop).
const TICK: Duration = Duration::from_millis(500);
/// A batch unacknowledged for this long is said in the log (rate-limited).
const SLOW: Duration = Duration::from_secs(5);
/// Once the stage is asked to stop, how much longer it waits for acknowledgements.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// One line every 10 s for all stages: while the broker is away, every batch waits.
static WAITING: Mutex<Limiter> = Mutex::new(Limiter::new(1, Duration::from_secs(10)));

/// Outputs handed to the producer, with their pending acknowledgements.
pub struct Deliveries {
    outputs: Vec<Output>,
    deliveries: Vec<DeliveryFuture>,
    enqueued: Instant,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

pub struct KafkaSink {
    producer: FutureProducer<ClientLog>,
    enriched_topic: String,
    dlq_topic: String,
    averages_topic: String,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink").finish_non_exhaustive()
    }
}

impl KafkaSink {
    pub fn new(clients: &Clients, kafka: &KafkaConfig) -> Result<Self, SinkError> {
        let producer: FutureProducer<ClientLog> = clients
            .stage_producer("streamhost-producer")
            .create_with_context(ClientLog)
            .map_err(|e| SinkError::Create(Box::new(e)))?;
        Ok(Self {
            producer,
            enriched_topic: kafka.enriched_topic.clone(),
            dlq_topic: kafka.dlq_topic.clone(),
            averages_topic: kafka.averages_topic.clone(),
            timeout: Duration::from_secs(kafka.delivery_timeout_secs),
        })
    }

    fn topic(&self, d: Destination) -> &str {
        match d {
            Destination::Enriched => &self.enriched_topic,
            Destination::Dlq => &self.dlq_topic,
            Destination::Averages => &self.averages_topic,
        }
    }

    /// The topics of `outputs`, for a message.
    fn topics(&self, outputs: &[Output]) -> String {
        let topics: BTreeSet<&str> = outputs.iter().map(|o| self.topic(o.destination)).collect();
        topics
            .into_iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Drop what is queued and not yet sent: its deliveries fail (`PurgeQueue`).
    pub fn purge(&self) {
        self.producer.purge(PurgeConfig::default().queue());
    }

    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush on shutdown");
        }
    }
}

impl Sink for KafkaSink {
    type Acks = Deliveries;

    /// Hand every output to the producer now, in order, and return the batch's
    /// deliveries to [`Sink::settle`] later. Waits only while the producer's queue is
    /// full (up to the delivery timeout). Enqueueing here, not in a spawned task, is
    /// what keeps the outputs of batches in flight in their input order.
    ///
    /// A record the producer refuses ends the batch there: none after it is produced.
    async fn enqueue(&self, outputs: Vec<Output>) -> Result<Deliveries, SinkError> {
        let enqueued = Instant::now();
        let mut deliveries = Vec::with_capacity(outputs.len());
        for o in &outputs {
            let topic = self.topic(o.destination);
            if o.size() > o.limit() {
                return Err(SinkError::TooLarge {
                    topic: topic.to_string(),
                    size: o.size(),
                    limit: o.limit(),
                });
            }
            let remaining = outputs.len() - deliveries.len();
            let waiting = |cause: &KafkaError| {
                waiting(topic, remaining, enqueued, &cause.to_string());
            };
            let record = FutureRecord::to(topic)
                .key(o.key.as_bytes())
                .payload(o.payload.as_slice());
            match queue(&self.producer, record, enqueued, self.timeout, waiting).await {
                Ok(delivery) => deliveries.push(delivery),
                Err(Queue::TimedOut) => {
                    return Err(SinkError::Unacknowledged {
                        topics: format!("`{topic}`"),
                        count: remaining,
                        timeout: self.timeout,
                    })
                }
                Err(Queue::Refused(class, error)) => {
                    return Err(SinkError::Failed {
                        topic: topic.to_string(),
                        class,
                        error: Box::new(error),
                        others: 0,
                    })
                }
            }
        }
        Ok(Deliveries {
            outputs,
            deliveries,
            enqueued,
        })
    }

    /// Wait until every output of `batch` is acknowledged, up to the delivery timeout
    /// from its enqueueing (or [`SHUTDOWN_WAIT`] once `stop` is set). Nothing is
    /// produced again: a failed record is the stage's end (see the module's doc).
    async fn settle(
        &self,
        batch: Deliveries,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SinkError> {
        let Deliveries {
            outputs,
            deliveries,
            enqueued,
        } = batch;
        let acks = join_all(deliveries.into_iter().map(|d| async move {
            match d.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_canceled) => Err(KafkaError::Canceled),
            }
        }));
        let mut acks = std::pin::pin!(acks);
        let mut stopping: Option<Instant> = None;
        let results = loop {
            tokio::select! {
                results = &mut acks => break results,
                () = tokio::time::sleep(TICK) => {
                    let waited = enqueued.elapsed();
                    if waited >= self.timeout {
                        // Nothing queued after these may be sent now: the next run
                        // produces them again, in order.
                        self.purge();
                        return Err(SinkError::Unacknowledged {
                            topics: self.topics(&outputs),
                            count: outputs.len(),
                            timeout: self.timeout,
                        });
                    }
                    if *stop.borrow() && stopping.get_or_insert_with(Instant::now).elapsed() >= SHUTDOWN_WAIT {
                        return Err(SinkError::Stopped(outputs.len()));
                    }
                    if waited >= SLOW {
                        waiting(&self.topics(&outputs), outputs.len(), enqueued, "not acknowledged yet");
                    }
                }
            }
        };
        let mut acknowledged = [0_u64; 3];
        let mut failed: Option<(Destination, KafkaError)> = None;
        let mut others = 0;
        for (output, result) in outputs.iter().zip(results) {
            match result {
                Ok(()) => acknowledged[output.destination as usize] += 1,
                Err(error) if failed.is_none() => failed = Some((output.destination, error)),
                Err(_) => others += 1,
            }
        }
        for d in [
            Destination::Enriched,
            Destination::Dlq,
            Destination::Averages,
        ] {
            let n = acknowledged[d as usize];
            if n > 0 {
                metrics::counter!(telemetry::RECORDS_OUT.name, "topic" => self.topic(d).to_string())
                    .increment(n);
            }
        }
        let Some((destination, error)) = failed else {
            return Ok(());
        };
        if destination == Destination::Enriched {
            // The window stage's input: no record queued behind the failed one may be
            // written before the next run writes it.
            self.purge();
        }
        let class = classify(&error);
        metrics::counter!(telemetry::DELIVERY_FAILURES.name, "class" => class.as_str())
            .increment(1 + others as u64);
        Err(SinkError::Failed {
            topic: self.topic(destination).to_string(),
            class,
            error: Box::new(error),
            others,
        })
    }
}

/// Say, at most every 10 s, that records wait for the broker.
fn waiting(topics: &str, records: usize, since: Instant, cause: &str) {
    let admitted = WAITING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(Instant::now());
    if let Some(suppressed) = admitted {
        tracing::warn!(
            topics,
            records,
            waited_secs = since.elapsed().as_secs(),
            cause,
            suppressed,
            "records wait for the broker's acknowledgement; librdkafka retries until kafka.delivery_timeout_secs"
        );
    }
}

/// Why [`queue`] did not queue a record.
enum Queue {
    /// The producer's queue stayed full until the timeout.
    TimedOut,
    /// The producer refused the record.
    Refused(DeliveryClass, KafkaError),
}

/// Queue `record`, waiting while the producer's queue is full (the broker is slow or
/// away), up to `timeout` from `since`; `waiting` hears of every wait past [`SLOW`].
/// The one place a producer of this host waits for room.
async fn queue<'a>(
    producer: &FutureProducer<ClientLog>,
    record: FutureRecord<'a, [u8], [u8]>,
    since: Instant,
    timeout: Duration,
    mut waiting: impl FnMut(&KafkaError),
) -> Result<DeliveryFuture, Queue> {
    let mut record = record;
    let mut pause = Duration::from_millis(10);
    loop {
        let error = match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((error, returned)) => {
                record = returned;
                error
            }
        };
        match classify(&error) {
            DeliveryClass::Transient if since.elapsed() < timeout => {
                if since.elapsed() >= SLOW {
                    waiting(&error);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            DeliveryClass::Transient => return Err(Queue::TimedOut),
            class => return Err(Queue::Refused(class, error)),
        }
    }
}

/// Records sent one by one and acknowledged in bulk, with the producer settings of
/// every writer of this host (`dlq replay`).
pub struct OneByOne {
    producer: FutureProducer<ClientLog>,
    timeout: Duration,
    in_flight: Vec<DeliveryFuture>,
}

impl std::fmt::Debug for OneByOne {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneByOne")
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl OneByOne {
    /// `timeout`: the longest wait for room in the producer's queue per record.
    pub fn new(clients: &Clients, client_id: &str, timeout: Duration) -> Result<Self, SinkError> {
        let producer = clients
            .producer(client_id)
            .create_with_context(ClientLog)
            .map_err(|e| SinkError::Create(Box::new(e)))?;
        Ok(Self {
            producer,
            timeout,
            in_flight: Vec::new(),
        })
    }

    /// Queue `payload` for `topic`; its acknowledgement comes from [`Self::settle`].
    pub async fn send(&mut self, topic: &str, payload: &[u8]) -> Result<(), SinkError> {
        let record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
        let started = Instant::now();
        let waiting = |cause: &KafkaError| waiting(topic, 1, started, &cause.to_string());
        match queue(&self.producer, record, started, self.timeout, waiting).await {
            Ok(delivery) => {
                self.in_flight.push(delivery);
                Ok(())
            }
            Err(Queue::TimedOut) => Err(SinkError::Unacknowledged {
                topics: format!("`{topic}`"),
                count: 1,
                timeout: self.timeout,
            }),
            Err(Queue::Refused(class, error)) => Err(SinkError::Failed {
                topic: topic.to_string(),
                class,
                error: Box::new(error),
                others: 0,
            }),
        }
    }

    /// Records sent and not settled yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Wait for every acknowledgement in flight: per record, in the order sent, the
    /// error that failed it, if any.
    pub async fn settle(&mut self) -> Vec<Option<String>> {
        join_all(self.in_flight.drain(..))
            .await
            .into_iter()
            .map(|result| match result {
                Ok(Ok(_)) => None,
                Ok(Err((e, _))) => Some(e.to_string()),
                Err(_canceled) => {
                    Some("the producer went away before the acknowledgement".to_string())
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MAX_OUTPUT_BYTES;

    /// Key and value together count: a record whose value alone fits is refused before
    /// the producer sees it, with the topic and the size.
    #[test]
    fn a_record_over_the_limit_with_its_key_is_refused_before_the_producer() {
        let kafka = KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            ..KafkaConfig::default()
        };
        let sink = KafkaSink::new(&Clients::new(&kafka).unwrap(), &kafka).unwrap();
        let half = MAX_OUTPUT_BYTES / 2;
        let output = Output {
            destination: Destination::Averages,
            key: "k".repeat(half).into(),
            payload: vec![b'x'; MAX_OUTPUT_BYTES - half + 1],
        };
        let error = futures::executor::block_on(sink.enqueue(vec![output])).unwrap_err();
        assert!(
            matches!(&error, SinkError::TooLarge { topic, size, .. } if topic == "country_event_averages" && *size == MAX_OUTPUT_BYTES + 1),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            format!("a {}-byte record (key and value) for `country_event_averages` is over the {MAX_OUTPUT_BYTES}-byte limit on its records", MAX_OUTPUT_BYTES + 1)
        );
    }

    #[test]
    fn a_failed_delivery_says_the_topic_the_cause_and_what_to_do() {
        let error = SinkError::Failed {
            topic: "dlq".into(),
            class: DeliveryClass::Permanent,
            error: Box::new(KafkaError::MessageProduction(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            )),
            others: 3,
        };
        let text = error.to_string();
        assert!(text.starts_with("delivery to `dlq` failed: "), "{text}");
        assert!(
            text.contains("(permanent: refused for good: the topic is missing"),
            "{text}"
        );
        assert!(
            text.ends_with("; 3 more records of the batch failed"),
            "{text}"
        );
    }
}
