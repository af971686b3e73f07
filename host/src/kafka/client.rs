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

use crate::config::{ClientOptions, ConfigError, KafkaConfig, REDACTED};
use crate::limiter::Limiter;
use crate::records::MESSAGE_MAX_BYTES;

/// Options the host sets itself because its guarantees rest on them: a deployment
/// cannot override them through `[kafka.client]`.
pub const HOST_OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.brokers"),
    (
        "metadata.broker.list",
        "set kafka.brokers (this is an alias of bootstrap.servers)",
    ),
    ("group.id", "set kafka.group_id / kafka.window_group_id"),
    (
        "enable.auto.commit",
        "the host commits positions itself, after the outputs are acknowledged",
    ),
    (
        "auto.commit.enable",
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
    (
        "request.required.acks",
        "every output must be acknowledged by all in-sync replicas",
    ),
];

/// The producer's requests in flight per connection: more than this, and a retried
/// request can land after a later one (librdkafka keeps order up to 5 only with
/// idempotence).
pub fn max_in_flight(idempotence: bool) -> u32 {
    if idempotence {
        5
    } else {
        1
    }
}

/// librdkafka's names of the option [`max_in_flight`] caps.
const IN_FLIGHT_KEYS: [&str; 2] = ["max.in.flight.requests.per.connection", "max.in.flight"];

/// How long the producer gathers records into one request. Kafka Streams uses 100. At
/// 5, an idempotent producer facing a broker slower to acknowledge than that (Tansu
/// on sqlite) has its 5 requests per partition in flight while the next batch is
/// ready, and librdkafka's broker thread spins until one returns: the host spent 64
/// µs of CPU per event, 11 at 50, at the same throughput (bench/results, e2e).
pub const PRODUCER_LINGER_MS: &str = "50";

/// How often a stage's consumer asks for its topic's metadata: a topic created while
/// the host runs is read within that.
pub const STAGE_METADATA_REFRESH_MS: &str = "3000";

/// How often a stage's consumer hands over librdkafka's statistics, which carry each
/// partition's end and position as the client last saw them (its fetches update them):
/// `streamhost_consumer_lag` is read from these, with no request to the broker. The
/// cost is a JSON document of the client's brokers and partitions (a few kB) written
/// and parsed every interval.
pub const STAGE_STATISTICS_INTERVAL_MS: &str = "5000";

/// Makes the host's Kafka clients. Its Debug output leaves the secrets out.
#[derive(Debug, Clone)]
pub struct Clients {
    brokers: String,
    idempotence: bool,
    options: ClientOptions,
}

/// `text` with the value of every secret among `options` replaced.
pub fn redact(text: &str, options: &BTreeMap<String, String>) -> String {
    options
        .iter()
        .filter(|(key, value)| ClientOptions::is_secret(key) && !value.is_empty())
        .fold(text.to_string(), |text, (_, value)| {
            text.replace(value.as_str(), REDACTED)
        })
}

/// Whether librdkafka takes every one of `options` (names it knows, values it can
/// parse), so that a wrong option stops the host at start with an error naming it, its
/// value shown unless it is a secret.
pub fn check_options(options: &ClientOptions, idempotence: bool) -> Result<(), ConfigError> {
    let cap = max_in_flight(idempotence);
    for key in IN_FLIGHT_KEYS {
        if let Some(value) = options.get(key) {
            if !matches!(value.trim().parse::<u32>(), Ok(n) if (1..=cap).contains(&n)) {
                return Err(ConfigError::ClientOption {
                    key: key.to_string(),
                    value: value.clone(),
                    reason: format!(
                        "must be 1 to {cap} with kafka.idempotence = {idempotence}, or a retried \
                         request could overtake a later one and reorder the outputs"
                    ),
                });
            }
        }
    }
    let mut config = ClientConfig::new();
    for (key, value) in options.iter() {
        config.set(key, value);
    }
    match config.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(_, reason, key, value)) => Err(ConfigError::ClientOption {
            value: ClientOptions::shown(&key, &value).to_string(),
            reason: redact(&reason, options),
            key,
        }),
        Err(other) => Err(ConfigError::ClientOption {
            key: "(any)".to_string(),
            value: String::new(),
            reason: redact(&other.to_string(), options),
        }),
    }
}

impl Clients {
    /// The clients of a deployment, once its `[kafka.client]` options pass: none of
    /// [`HOST_OWNED`], and every one taken by librdkafka ([`check_options`]).
    pub fn new(kafka: &KafkaConfig) -> Result<Self, ConfigError> {
        if let Some((key, why)) = HOST_OWNED
            .iter()
            .find(|(key, _)| kafka.client.contains_key(*key))
        {
            return Err(ConfigError::Invalid {
                key: "kafka.client",
                value: (*key).to_string(),
                reason: why,
            });
        }
        check_options(&kafka.client, kafka.idempotence)?;
        Ok(Self {
            brokers: kafka.brokers.clone(),
            idempotence: kafka.idempotence,
            options: kafka.client.clone(),
        })
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    fn base(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in self.options.iter() {
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
        // A topic created after the start is seen at the next refresh, and its
        // partitions are assigned then (librdkafka's default: 5 minutes).
        self.tuning(
            &mut config,
            "topic.metadata.refresh.interval.ms",
            STAGE_METADATA_REFRESH_MS,
        );
        self.tuning(
            &mut config,
            "statistics.interval.ms",
            STAGE_STATISTICS_INTERVAL_MS,
        );
        config
    }

    /// A performance default: set unless the deployment's `[kafka.client]` sets it.
    fn tuning(&self, config: &mut ClientConfig, key: &str, value: &str) {
        if !self.options.contains_key(key) {
            config.set(key, value);
        }
    }

    /// An admin client (the liveness watchdog's question to the broker).
    pub fn admin(&self, client_id: &str) -> ClientConfig {
        self.base(client_id)
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
        if !IN_FLIGHT_KEYS
            .iter()
            .any(|key| self.options.contains_key(*key))
        {
            config.set(
                IN_FLIGHT_KEYS[0],
                max_in_flight(self.idempotence).to_string(),
            );
        }
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

/// A refused connection is retried by every client every few milliseconds: one line a
/// minute for all of them.
static REFUSED: Mutex<Limiter> = Mutex::new(Limiter::new(1, Duration::from_secs(60)));

/// Why a connection to the broker was turned away: a setting to correct, not a network
/// fault that reconnecting fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// SASL: wrong mechanism, user name or password.
    Authentication,
    /// TLS: the broker's certificate is not trusted, or it refused this client's.
    Tls,
}

impl Refusal {
    fn of_code(code: Option<RDKafkaErrorCode>) -> Option<Self> {
        match code? {
            RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
                Some(Self::Authentication)
            }
            RDKafkaErrorCode::SSL => Some(Self::Tls),
            _ => None,
        }
    }

    /// From a librdkafka log line (facility `FAIL`).
    pub fn of_message(message: &str) -> Option<Self> {
        if message.contains("SASL authentication error")
            || message.contains("Authentication failed")
        {
            Some(Self::Authentication)
        } else if message.contains("SSL handshake failed")
            || message.contains("certificate verify failed")
        {
            Some(Self::Tls)
        } else {
            None
        }
    }

    pub fn cause(self) -> &'static str {
        match self {
            Self::Authentication => {
                "Kafka authentication failed: check sasl.mechanism, sasl.username and sasl.password"
            }
            Self::Tls => {
                "Kafka TLS handshake failed: check that ssl.ca.location holds the CA that signed the \
                 broker's certificate and, for mutual TLS, ssl.certificate.location and ssl.key.location"
            }
        }
    }
}

impl ClientLog {
    /// A global error of any client.
    pub fn error(error: &KafkaError, reason: &str) {
        if let Some(refusal) = Refusal::of_code(error.rdkafka_error_code()) {
            return Self::refused(refusal, reason);
        }
        if Self::unreachable_error(error, reason) {
            return;
        }
        match error.rdkafka_error_code() {
            // A configured topic the broker does not have: `/health` names it too.
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                tracing::warn!(%error, reason, "topic missing: `streamhost topics create` creates the configured topics");
            }
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
            return match Refusal::of_message(message) {
                Some(refusal) => Self::refused(refusal, message),
                None => Self::unreachable(message),
            };
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

    fn refused(refusal: Refusal, detail: &str) {
        let admitted = REFUSED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(Instant::now());
        match admitted {
            Some(suppressed) => tracing::error!(
                detail,
                suppressed,
                "{}; retrying (the next such line in a minute)",
                refusal.cause()
            ),
            None => tracing::debug!(detail, "connection refused"),
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
    use crate::config::Config;

    #[test]
    fn deployment_options_reach_every_client_and_tune_the_defaults() {
        let mut kafka = KafkaConfig::default();
        kafka
            .client
            .insert("security.protocol".into(), "SASL_SSL".into());
        kafka.client.insert("linger.ms".into(), "50".into());
        let clients = Clients::new(&kafka).unwrap();
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
                .unwrap()
                .producer("p")
                .get("linger.ms"),
            Some(PRODUCER_LINGER_MS)
        );
        assert_eq!(
            clients.stage_consumer("g").get("enable.auto.commit"),
            Some("false")
        );
    }

    #[test]
    fn a_failed_client_creation_does_not_show_the_secrets() {
        let mut kafka = KafkaConfig::default();
        for (key, value) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "s3cret-pw"),
            ("ssl.key.location", "/nonexistent/client.key"),
            ("ssl.certificate.location", "/nonexistent/client.pem"),
            ("ssl.key.password", "k3y-pass"),
        ] {
            kafka.client.insert(key.into(), value.into());
        }
        check_options(&kafka.client, true).unwrap();
        let clients = Clients::new(&kafka).unwrap();
        let err = clients
            .stage_consumer("g")
            .create_with_context::<_, rdkafka::consumer::BaseConsumer<ClientLog>>(ClientLog)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("Client creation error: ssl."), "{err}");
        assert!(
            !err.contains("s3cret-pw") && !err.contains("k3y-pass"),
            "{err}"
        );
        assert!(!format!("{clients:?}").contains("s3cret-pw"));
        assert_eq!(
            redact("wrong s3cret-pw for alice", &kafka.client),
            "wrong (redacted) for alice"
        );
    }

    #[test]
    fn refusals_are_told_apart_from_an_unreachable_broker() {
        assert_eq!(
            Refusal::of_message("sasl_ssl://127.0.0.1:19093/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof (after 24ms in state AUTH_REQ)"),
            Some(Refusal::Authentication)
        );
        assert_eq!(
            Refusal::of_message("ssl://127.0.0.1:19093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified"),
            Some(Refusal::Tls)
        );
        assert_eq!(
            Refusal::of_message("127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"),
            None
        );
    }

    #[test]
    fn outputs_keep_their_order_with_or_without_idempotence() {
        let mut kafka = KafkaConfig {
            idempotence: false,
            ..KafkaConfig::default()
        };
        let in_flight = |kafka: &KafkaConfig| {
            Clients::new(kafka)
                .unwrap()
                .producer("p")
                .get("max.in.flight.requests.per.connection")
                .map(str::to_string)
        };
        assert_eq!(in_flight(&kafka).as_deref(), Some("1"));
        kafka.idempotence = true;
        assert_eq!(in_flight(&kafka).as_deref(), Some("5"));
        kafka.client.insert("max.in.flight".into(), "5".into());
        check_options(&kafka.client, true).unwrap();
        let err = check_options(&kafka.client, false).unwrap_err().to_string();
        assert!(
            err.contains("max.in.flight") && err.contains("must be 1 to 1"),
            "{err}"
        );
        kafka.client.insert("max.in.flight".into(), "6".into());
        assert!(check_options(&kafka.client, true).is_err());
    }
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns its own error
    fn an_option_librdkafka_refuses_stops_the_start_without_showing_a_secret() {
        let clients = || Clients::new(&Config::load(None).unwrap().kafka);
        figment::Jail::expect_with(|jail| {
            // A Java client's option librdkafka does not know, holding a password.
            jail.set_env(
                "STREAMHOST_KAFKA_CLIENT_SSL_TRUSTSTORE_PASSWORD",
                "hunter2-pw",
            );
            let err = clients().unwrap_err().to_string();
            assert!(err.contains("ssl.truststore.password"), "{err}");
            assert!(!err.contains("hunter2-pw"), "{err}");
            jail.clear_env();
            jail.set_env("STREAMHOST_KAFKA_CLIENT_SECURITY_PROTOCOL", "TLS");
            let err = clients().unwrap_err().to_string();
            assert!(err.contains("security.protocol"), "{err}");
            assert!(err.contains("TLS"), "{err}");
            // The TLS and SCRAM support are built in.
            jail.set_env("STREAMHOST_KAFKA_CLIENT_SECURITY_PROTOCOL", "SASL_SSL");
            jail.set_env("STREAMHOST_KAFKA_CLIENT_SASL_MECHANISM", "SCRAM-SHA-512");
            jail.set_env("STREAMHOST_KAFKA_CLIENT_COMPRESSION_TYPE", "zstd");
            clients().unwrap();
            Ok(())
        });
    }

    #[test]
    fn an_option_the_host_owns_is_refused_and_a_secret_reaches_the_clients_unshown() {
        let mut kafka = KafkaConfig::default();
        kafka
            .client
            .insert("sasl.password".into(), "s3cret-pw".into());
        let clients = Clients::new(&kafka).unwrap();
        assert_eq!(
            clients.producer("p").get("sasl.password"),
            Some("s3cret-pw")
        );
        assert!(!format!("{clients:?}").contains("s3cret-pw"));
        for (key, _) in HOST_OWNED {
            let mut kafka = KafkaConfig::default();
            kafka.client.insert((*key).to_string(), "x".into());
            let err = Clients::new(&kafka).unwrap_err().to_string();
            assert!(err.contains("kafka.client") && err.contains(key), "{err}");
        }
    }
}
