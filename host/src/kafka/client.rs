//! Every librdkafka setting the host uses, defined once, plus the options a deployment
//! adds (`[kafka.client]` in the config: TLS, SASL, timeouts...), passed through to
//! every client the host creates.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;
use crate::limiter::Limiter;
use crate::records::MESSAGE_MAX_BYTES;

/// Options the host sets itself because its guarantees rest on them: a deployment
/// cannot override them through `[kafka.client]`.
pub const HOST_OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.brokers"),
    ("group.id", "set kafka.group_id / kafka.window_group_id"),
    (
        "enable.auto.commit",
        "the host commits positions itself, after the outputs are acknowledged",
    ),
    (
        "enable.auto.offset.store",
        "the host commits positions itself, after the outputs are acknowledged",
    ),
    ("enable.idempotence", "set kafka.idempotence"),
    (
        "acks",
        "every output must be acknowledged by all in-sync replicas",
    ),
];

/// How long the producer gathers records into one request. Kafka Streams uses 100. At
/// 5, an idempotent producer facing a broker slower to acknowledge than that (Tansu
/// on sqlite) has its 5 requests per partition in flight while the next batch is
/// ready, and librdkafka's broker thread spins until one returns: the host spent 64
/// µs of CPU per event, 11 at 50, at the same throughput (bench/results, e2e).
pub const PRODUCER_LINGER_MS: &str = "50";

/// Makes the host's Kafka clients.
#[derive(Debug, Clone)]
pub struct Clients {
    brokers: String,
    idempotence: bool,
    options: BTreeMap<String, String>,
}

impl Clients {
    pub fn new(kafka: &KafkaConfig) -> Self {
        Self {
            brokers: kafka.brokers.clone(),
            idempotence: kafka.idempotence,
            options: kafka.client.clone(),
        }
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    fn base(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id);
        config
    }

    /// A stage's consumer in `group`: positions are committed by the host, after the
    /// outputs are acknowledged; a crashed member is noticed within seconds.
    pub fn stage_consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.base(&format!("streamhost-{group}"));
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        // A crashed member is noticed within seconds.
        self.tuning(&mut config, "session.timeout.ms", "6000");
        self.tuning(&mut config, "heartbeat.interval.ms", "1000");
        self.tuning(&mut config, "fetch.wait.max.ms", "100");
        config
    }

    /// A performance default: set unless the deployment's `[kafka.client]` sets it.
    fn tuning(&self, config: &mut ClientConfig, key: &str, value: &str) {
        if !self.options.contains_key(key) {
            config.set(key, value);
        }
    }

    /// A client that reads or asks about positions without joining a group's
    /// assignment and without committing on its own (lag, restore, replay, liveness).
    pub fn reader(&self, group: &str, client_id: &str) -> ClientConfig {
        let mut config = self.base(client_id);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        config
    }

    /// The producer every writer of this host uses (the stages' sink, `dlq replay`):
    /// acknowledged by all in-sync replicas, idempotent unless switched off.
    pub fn producer(&self, client_id: &str) -> ClientConfig {
        let mut config = self.base(client_id);
        config
            .set("acks", "all")
            // No duplicates or reordering from the producer's own retries.
            .set("enable.idempotence", self.idempotence.to_string())
            // Explicit: records::MAX_OUTPUT_BYTES and dlq::MAX_DLQ_BYTES keep every
            // record (and its key) under it.
            .set("message.max.bytes", MESSAGE_MAX_BYTES.to_string());
        self.tuning(&mut config, "linger.ms", PRODUCER_LINGER_MS);
        self.tuning(&mut config, "batch.num.messages", "10000");
        // Retry inside librdkafka for a long time; past that the caller decides.
        self.tuning(&mut config, "message.timeout.ms", "30000");
        config
    }

    /// The stages' producer ([`super::sink`]): [`Clients::producer`] that never gives up
    /// on a record by itself and, idempotent, never writes a record of a partition after
    /// one that failed. librdkafka skips a record that timed out, or failed for good,
    /// and goes on with the next ones (a gap); the sink instead bounds its own wait
    /// (`kafka.delivery_timeout_secs`) and stops the stage, and a permanent failure
    /// stops the producer (`enable.gapless.guarantee`). A failed record is then produced
    /// again only by the next run, in input order, from the last committed position.
    pub fn stage_producer(&self, client_id: &str) -> ClientConfig {
        let mut config = self.producer(client_id);
        config.set("message.timeout.ms", "0");
        if self.idempotence {
            config.set("enable.gapless.guarantee", "true");
        }
        config
    }
}

/// What every client of the host does with librdkafka's own log lines and global
/// errors. A broker gone away is reported by each client, once per failed connection:
/// about a hundred error lines from one host over a 3 s broker restart. librdkafka
/// reconnects by itself, so these are warnings, and one line every 10 s speaks for all
/// clients, with the count left out. Anything else is logged as rdkafka would.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientLog;

/// Shared by every client of the process: they lose the broker together.
static UNREACHABLE: Mutex<Limiter> = Mutex::new(Limiter::new(1, Duration::from_secs(10)));

impl ClientLog {
    /// A global error of any client.
    pub fn error(error: &KafkaError, reason: &str) {
        if Self::unreachable_error(error, reason) {
            return;
        }
        match error.rdkafka_error_code() {
            // The producer stopped: every delivery it had fails, and the stage that
            // meets the first one stops with the error line.
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::GaplessGuarantee) => {
                tracing::warn!(%error, reason, "producer stopped");
            }
            _ => tracing::error!(%error, reason, "librdkafka error"),
        }
    }

    /// Whether `error`, global or met while consuming, says that no broker can be
    /// reached; if so, it is logged as that.
    pub fn unreachable_error(error: &KafkaError, detail: &str) -> bool {
        let unreachable = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        );
        if unreachable {
            Self::unreachable(detail);
        }
        unreachable
    }

    /// A log line of librdkafka's.
    pub fn line(level: RDKafkaLogLevel, facility: &str, message: &str) {
        // `FAIL`: a connection to a broker failed or was lost.
        if facility == "FAIL" {
            return Self::unreachable(message);
        }
        // `FATAL`: said again by the global error ([`ClientLog::error`]).
        if facility == "FATAL" {
            return tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}");
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
        }
    }

    fn unreachable(detail: &str) {
        let admitted = UNREACHABLE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(Instant::now());
        match admitted {
            Some(suppressed) => tracing::warn!(
                detail,
                suppressed,
                "broker unreachable; librdkafka reconnects by itself"
            ),
            None => tracing::debug!(detail, "broker unreachable"),
        }
    }
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        Self::line(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        Self::error(&error, reason);
    }
}

impl ConsumerContext for ClientLog {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_options_reach_every_client_and_tune_the_defaults() {
        let mut kafka = KafkaConfig::default();
        kafka
            .client
            .insert("security.protocol".into(), "SASL_SSL".into());
        kafka.client.insert("linger.ms".into(), "50".into());
        let clients = Clients::new(&kafka);
        for config in [
            clients.stage_consumer("g"),
            clients.reader("g", "r"),
            clients.producer("p"),
        ] {
            assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        }
        assert_eq!(clients.producer("p").get("linger.ms"), Some("50"));
        assert_eq!(clients.producer("p").get("acks"), Some("all"));
        assert_eq!(
            Clients::new(&KafkaConfig::default())
                .producer("p")
                .get("linger.ms"),
            Some(PRODUCER_LINGER_MS)
        );
        assert_eq!(
            clients.stage_consumer("g").get("enable.auto.commit"),
            Some("false")
        );
    }
}
