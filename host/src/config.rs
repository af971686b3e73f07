//! Configuration: defaults < TOML file (`--config`) < `STREAMHOST_*` environment variables.
//!
//! `streamhost run --help` lists every key with its environment variable, default
//! and meaning ([`help`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::plugins::SandboxLimits;
use crate::schema::{Schema, SchemaError};

/// Default of `pipeline.max_future_secs` (docs/design.md, "Clocks that run ahead").
pub const DEFAULT_MAX_FUTURE_SECS: u64 = 30;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub pipeline: PipelineConfig,
    pub plugins: PluginsConfig,
    pub windows: WindowsConfig,
    pub admin: AdminConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    pub input_topic: String,
    pub enriched_topic: String,
    pub dlq_topic: String,
    pub averages_topic: String,
    pub window_group_id: String,
    pub idempotence: bool,
    pub watchdog: WatchdogMode,
    pub stall_timeout_secs: u64,
    pub delivery_timeout_secs: u64,
    /// librdkafka options added to every client (TLS, SASL, ...): `[kafka.client]`.
    pub client: ClientOptions,
}

/// Whether the stages run the liveness watchdog (`liveness.rs`), which takes over
/// partitions a group coordinator leaves with a dead member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchdogMode {
    /// On unless the broker describes its own configuration (DescribeConfigs for the
    /// broker), as Apache Kafka, Confluent and Redpanda do and Tansu 0.6 does not.
    #[default]
    Auto,
    On,
    Off,
}

/// librdkafka options of a deployment. Their secrets (passwords, client secrets,
/// private keys) are left out of Debug and Serialize output, so they reach no log,
/// `--help` text or error.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct ClientOptions(BTreeMap<String, String>);

/// What stands in for a secret's value wherever options are shown.
pub const REDACTED: &str = "(redacted)";

impl ClientOptions {
    /// Whether `key`'s value is a secret: any key naming a password or a secret, and
    /// an inline private key.
    pub fn is_secret(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        key.contains("password") || key.contains("secret") || key == "ssl.key.pem"
    }

    /// The value as it may be shown: secrets redacted.
    pub fn shown<'a>(key: &str, value: &'a str) -> &'a str {
        if Self::is_secret(key) {
            REDACTED
        } else {
            value
        }
    }
}

impl std::ops::Deref for ClientOptions {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ClientOptions {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, Self::shown(k, v))))
            .finish()
    }
}

impl Serialize for ClientOptions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, Self::shown(k, v))))
    }
}

/// Prefix of the variables that set one librdkafka option each, as the Confluent images
/// read theirs: `STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD` sets `sasl.password` (`_` is
/// `.`, `__` is `_`); with `_FILE` appended, the variable names a file holding the value
/// (a Docker or Kubernetes secret), read without its trailing newline.
pub const CLIENT_ENV_PREFIX: &str = "STREAMHOST_KAFKA_CLIENT_";

/// The options set by `STREAMHOST_KAFKA_CLIENT_*` variables among `vars`.
pub fn client_options_from_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut options = BTreeMap::new();
    // The option each variable set, to refuse an option set twice (X and X_FILE).
    let mut set_by: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(CLIENT_ENV_PREFIX) else {
            continue;
        };
        let (rest, from_file) = match rest.strip_suffix("_FILE") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let key = rest
            .to_ascii_lowercase()
            .split("__")
            .map(|part| part.replace('_', "."))
            .collect::<Vec<_>>()
            .join("_");
        if key.is_empty() {
            continue;
        }
        let value = if from_file {
            let path = std::path::PathBuf::from(&value);
            let mut text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                    variable: name.to_string(),
                    path,
                    source,
                })?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            text
        } else {
            value
                .into_string()
                .map_err(|_| ConfigError::NotUnicode(name.to_string()))?
        };
        if let Some(first) = set_by.insert(key.clone(), name.to_string()) {
            return Err(ConfigError::SetTwice {
                key,
                first,
                second: name.to_string(),
            });
        }
        options.insert(key, value);
    }
    Ok(options)
}

/// A topic the configuration names, and the keys that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredTopic {
    pub name: String,
    pub keys: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// The event schema file; empty: the brief's (`schemas/events.toml`, built in).
    pub schema: PathBuf,
    pub batch_size: usize,
    pub batch_wait_ms: u64,
    pub in_flight_batches: usize,
    pub max_message_bytes: usize,
    pub max_fields: usize,
    pub max_future_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    pub dir: PathBuf,
    pub memory_mb: usize,
    pub batch_deadline_ms: u64,
    pub memories_per_plugin: u32,
    pub tables_per_plugin: u32,
    pub core_instances_per_plugin: u32,
    pub table_elements: usize,
    pub max_file_mb: usize,
    pub compile_deadline_ms: u64,
    pub breaker_threshold: u32,
    pub watch: bool,
    /// Rescan `dir` this often as well (0: never), for mounts without file events.
    pub poll_secs: u64,
    pub cache_compiled: bool,
    /// Empty: [`crate::plugins::compiled::default_dir`].
    pub compiled_dir: PathBuf,
    pub breaker_retry_secs: u64,
    /// Plugin names that must serve: the host does not start without them, and a
    /// change of the directory that would drop one is not installed.
    pub must_serve: Vec<String>,
    pub allow_empty: bool,
}

impl PluginsConfig {
    /// The sandbox every plugin runs in.
    pub fn sandbox(&self) -> SandboxLimits {
        SandboxLimits {
            memory_bytes: self.memory_mb.saturating_mul(1 << 20),
            batch_deadline: Duration::from_millis(self.batch_deadline_ms),
            memories: self.memories_per_plugin,
            tables: self.tables_per_plugin,
            core_instances: self.core_instances_per_plugin,
            table_elements: self.table_elements,
            file_bytes: self.max_file_mb.saturating_mul(1 << 20),
            compile_deadline: Duration::from_millis(self.compile_deadline_ms),
        }
    }

    /// Where compiled plugins are kept, if they are.
    pub fn compiled_dir(&self) -> Option<PathBuf> {
        if !self.cache_compiled {
            None
        } else if self.compiled_dir.as_os_str().is_empty() {
            crate::plugins::compiled::default_dir()
        } else {
            Some(self.compiled_dir.clone())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowsConfig {
    pub enabled: bool,
    pub key_field: String,
    pub size_secs: i64,
    pub advance_secs: i64,
    pub grace_secs: i64,
    pub idle_timeout_secs: u64,
    pub restore_lookback_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_id: "streamhost".into(),
            input_topic: "my_events".into(),
            enriched_topic: "enriched_events".into(),
            dlq_topic: "dlq".into(),
            averages_topic: "country_event_averages".into(),
            window_group_id: "streamhost-windows".into(),
            idempotence: true,
            watchdog: WatchdogMode::Auto,
            stall_timeout_secs: 20,
            delivery_timeout_secs: 120,
            client: ClientOptions::default(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            schema: PathBuf::new(),
            batch_size: 1024,
            batch_wait_ms: 50,
            in_flight_batches: 4,
            max_message_bytes: 1 << 20,
            max_fields: crate::decode::DEFAULT_MAX_FIELDS,
            max_future_secs: DEFAULT_MAX_FUTURE_SECS,
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("plugins.d"),
            memory_mb: 64,
            batch_deadline_ms: 500,
            memories_per_plugin: 2,
            tables_per_plugin: 4,
            core_instances_per_plugin: 8,
            table_elements: 10_000,
            max_file_mb: 4,
            compile_deadline_ms: 20_000,
            breaker_threshold: 3,
            watch: true,
            poll_secs: 5,
            cache_compiled: true,
            compiled_dir: PathBuf::new(),
            breaker_retry_secs: 30,
            must_serve: Vec::new(),
            allow_empty: true,
        }
    }
}

impl Default for WindowsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key_field: "country".into(),
            size_secs: 300,
            advance_secs: 60,
            grace_secs: 30,
            idle_timeout_secs: 10,
            restore_lookback_secs: 86_400,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9898)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {key} = {value}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("configuration: {variable}: cannot read {}: {source}", path.display())]
    SecretFile {
        variable: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration: {0} is not valid Unicode")]
    NotUnicode(String),
    #[error("configuration: kafka.client.\"{key}\" is set by both {first} and {second}")]
    SetTwice {
        key: String,
        first: String,
        second: String,
    },
    #[error("configuration: kafka.client.\"{key}\" = {value}: {reason}")]
    ClientOption {
        key: String,
        /// Redacted when the option is a secret.
        value: String,
        reason: String,
    },
}

impl Config {
    /// Defaults, then the TOML file if given, then `STREAMHOST_SECTION__KEY` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            // `file_exact`: a typo in --config must be an error, not silent defaults.
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut config: Config = figment
            // Only SECTION__KEY variables: other STREAMHOST_* names belong to the scripts.
            .merge(
                Env::prefixed("STREAMHOST_")
                    .filter(|key| {
                        key.as_str().contains("__")
                            && !key
                                .as_str()
                                .to_ascii_uppercase()
                                .starts_with(&CLIENT_ENV_PREFIX["STREAMHOST_".len()..])
                    })
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        // Dotted librdkafka names do not fit figment's `__` nesting: read apart.
        config
            .kafka
            .client
            .extend(client_options_from_env(std::env::vars_os())?);
        config.validate()?;
        Ok(config)
    }

    /// The topics the host reads or writes with this configuration, each once, with
    /// the keys that name it: the input, the enriched events and the DLQ, and with
    /// windows on the window averages.
    pub fn topics(&self) -> Vec<ConfiguredTopic> {
        let k = &self.kafka;
        let mut named = vec![
            ("kafka.input_topic", &k.input_topic),
            ("kafka.enriched_topic", &k.enriched_topic),
            ("kafka.dlq_topic", &k.dlq_topic),
        ];
        if self.windows.enabled {
            named.push(("kafka.averages_topic", &k.averages_topic));
        }
        let mut topics: Vec<ConfiguredTopic> = Vec::new();
        for (key, name) in named {
            match topics.iter_mut().find(|t| &t.name == name) {
                Some(topic) => topic.keys.push(key),
                None => topics.push(ConfiguredTopic {
                    name: name.clone(),
                    keys: vec![key],
                }),
            }
        }
        topics
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: &dyn std::fmt::Display, reason| ConfigError::Invalid {
            key,
            value: value.to_string(),
            reason,
        };
        if self.pipeline.batch_size == 0 {
            return Err(invalid("pipeline.batch_size", &0, "must be at least 1"));
        }
        if self.kafka.delivery_timeout_secs == 0 {
            return Err(invalid(
                "kafka.delivery_timeout_secs",
                &0,
                "must be at least 1",
            ));
        }
        if self.pipeline.max_fields == 0 {
            return Err(invalid("pipeline.max_fields", &0, "must be at least 1"));
        }
        if self.pipeline.in_flight_batches == 0 {
            return Err(invalid(
                "pipeline.in_flight_batches",
                &0,
                "must be at least 1",
            ));
        }
        let w = &self.windows;
        if w.size_secs <= 0 {
            return Err(invalid(
                "windows.size_secs",
                &w.size_secs,
                "must be positive",
            ));
        }
        if w.advance_secs <= 0 || w.advance_secs > w.size_secs {
            return Err(invalid(
                "windows.advance_secs",
                &w.advance_secs,
                "must be positive and at most windows.size_secs",
            ));
        }
        if w.size_secs % w.advance_secs != 0 {
            return Err(invalid(
                "windows.advance_secs",
                &w.advance_secs,
                "must divide windows.size_secs",
            ));
        }
        if w.grace_secs < 0 {
            return Err(invalid(
                "windows.grace_secs",
                &w.grace_secs,
                "must not be negative",
            ));
        }
        if self.pipeline.max_message_bytes > crate::records::dlq::MAX_REPLAYABLE_BYTES {
            return Err(invalid(
                "pipeline.max_message_bytes",
                &self.pipeline.max_message_bytes,
                "must be at most 1489692: a larger input would not fit whole in its DLQ record (records::dlq::MAX_REPLAYABLE_BYTES)",
            ));
        }
        if self.kafka.stall_timeout_secs == 0 {
            return Err(invalid(
                "kafka.stall_timeout_secs",
                &0,
                "must be at least 1 (kafka.watchdog = \"off\" turns the watchdog off)",
            ));
        }
        let p = &self.plugins;
        let at_least_one = [
            ("plugins.memory_mb", p.memory_mb == 0),
            ("plugins.memories_per_plugin", p.memories_per_plugin == 0),
            ("plugins.tables_per_plugin", p.tables_per_plugin == 0),
            (
                "plugins.core_instances_per_plugin",
                p.core_instances_per_plugin == 0,
            ),
            ("plugins.table_elements", p.table_elements == 0),
            ("plugins.max_file_mb", p.max_file_mb == 0),
            ("plugins.compile_deadline_ms", p.compile_deadline_ms == 0),
        ];
        if let Some((key, _)) = at_least_one.into_iter().find(|(_, zero)| *zero) {
            return Err(invalid(key, &0, "must be at least 1"));
        }
        Ok(())
    }

    /// The event schema: `pipeline.schema`, or the brief's.
    pub fn schema(&self) -> Result<Schema, SchemaError> {
        if self.pipeline.schema.as_os_str().is_empty() {
            Ok(Schema::brief())
        } else {
            Schema::load(&self.pipeline.schema)
        }
    }

    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_secs(self.kafka.delivery_timeout_secs)
    }

    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs(self.kafka.stall_timeout_secs)
    }

    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.pipeline.batch_wait_ms)
    }
}

/// What each key means, for `streamhost run --help`. The keys, their environment
/// variables and their defaults come from the structs above; a test checks that
/// every key has a meaning here and every meaning a key.
const MEANINGS: &[(&str, &str)] = &[
    ("kafka.brokers", "bootstrap servers (comma separated)"),
    ("kafka.group_id", "consumer group of the validate stage (instances sharing it split the partitions)"),
    ("kafka.input_topic", "raw events to read"),
    ("kafka.enriched_topic", "accepted events, JSON, keyed by the window key (windows.key_field)"),
    ("kafka.dlq_topic", "rejected and undecodable records, with code, reason and the original bytes"),
    ("kafka.averages_topic", "one record per closed (key, window)"),
    ("kafka.window_group_id", "consumer group of the window stage (reads enriched_events)"),
    ("kafka.idempotence", "idempotent producer (no duplicates from its own retries); off only for brokers that mishandle it"),
    ("kafka.watchdog", "the liveness watchdog, for group coordinators that leave a dead member's partitions unowned: auto (on unless the broker describes its own configuration, as Apache Kafka, Confluent and Redpanda do and Tansu 0.6 does not), on, off"),
    ("kafka.stall_timeout_secs", "a partition with no live owner for this long is orphaned: /health says so, and an instance that does not own it rejoins its group to take it over (the watchdog's, see kafka.watchdog)"),
    ("kafka.delivery_timeout_secs", "longest wait for the broker to acknowledge a produced batch (librdkafka retries meanwhile); past it the stage stops and the process exits non-zero"),
    ("kafka.client", "librdkafka options added to every client, as a table in the file ([kafka.client] \"security.protocol\" = \"SASL_SSL\"), or one variable each: STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD sets sasl.password (`_` is `.`, `__` is `_`), and STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE names a file holding it; secrets (keys naming a password or secret) are never shown; the options the host owns (group.id, commits, acks, idempotence, and their aliases) are refused; max.in.flight.requests.per.connection at most 5, 1 with kafka.idempotence off"),
    ("pipeline.schema", "event schema file (TOML: fields, types, the event-time field); none: the brief's, built in; `--schema` overrides it"),
    ("pipeline.batch_size", "records per batch through decode, plugins and produce"),
    ("pipeline.batch_wait_ms", "longest wait to fill a batch before processing a partial one"),
    ("pipeline.in_flight_batches", "batches produced but not yet acknowledged; 1 = wait for each batch's acks"),
    ("pipeline.max_message_bytes", "larger payloads go to the DLQ as message_too_large; at most 1489692, so that every input fits whole in its DLQ record"),
    ("pipeline.max_fields", "payloads with more top-level members go to the DLQ as too_many_fields"),
    ("pipeline.max_future_secs", "events stamped further ahead of the wall clock go to the DLQ as future_event (validate and window stages)"),
    ("plugins.dir", "directory of *.wasm components, run in file-name order"),
    ("plugins.memory_mb", "linear-memory cap per plugin instance"),
    ("plugins.batch_deadline_ms", "CPU budget per plugin call (one batch); past it the batch goes to the DLQ"),
    ("plugins.memories_per_plugin", "linear memories one plugin may have (over all its core instances); each takes a slot of the instance pool"),
    ("plugins.tables_per_plugin", "tables one plugin may have (over all its core instances)"),
    ("plugins.core_instances_per_plugin", "core module instances one plugin may create"),
    ("plugins.table_elements", "elements of any one table of a plugin"),
    ("plugins.max_file_mb", "largest .wasm file loaded (bounds the work of a compile)"),
    ("plugins.compile_deadline_ms", "longest wait for a plugin's compile; past it the file is refused (the compile finishes in the background)"),
    ("plugins.breaker_threshold", "batches in a row on which a plugin judged nothing (every call failed) after which it is disabled"),
    ("plugins.breaker_retry_secs", "a disabled plugin is tried again on one batch after this long, then after twice as long each time it fails again (up to 10 minutes); a new file resets it"),
    ("plugins.must_serve", "plugin names (as `describe` gives them) that must serve: the host does not start without each, and a directory change that would drop one is not installed"),
    ("plugins.allow_empty", "start with no plugin serving (every decodable event accepted); false: refuse to start"),
    ("plugins.watch", "watch plugins.dir and swap the chain live when a .wasm or .toml file changes (a Kubernetes ConfigMap's symlink swap included)"),
    ("plugins.poll_secs", "also rescan plugins.dir this often (0: never), for mounts that deliver no file events (network file systems, some volume drivers); a rescan reads the files and acts only on a change"),
    ("plugins.cache_compiled", "keep compiled plugins on disk, so a file seen before loads in a millisecond"),
    ("plugins.compiled_dir", "where (empty: $XDG_CACHE_HOME or ~/.cache, then streamhost/compiled; owned by this user)"),
    ("windows.enabled", "run the window stage (rolling counts and averages per key)"),
    ("windows.key_field", "the schema field windows are kept per (required; also the key of enriched_events)"),
    ("windows.size_secs", "window length"),
    ("windows.advance_secs", "hop between window starts (= size_secs for tumbling windows); must divide size_secs"),
    ("windows.grace_secs", "how long after its end a window still takes out-of-order events"),
    ("windows.idle_timeout_secs", "with no input for this long, event time advances with the wall clock so windows close"),
    ("windows.restore_lookback_secs", "on taking over partitions, how far back the averages topic is read to learn emitted windows"),
    ("admin.listen", "/livez, /readyz, /health, /metrics and /plugins (loopback by default: in a container, 0.0.0.0:9898)"),
];

/// The configuration reference `streamhost run --help` prints after the options.
pub fn help() -> String {
    let mut out = String::from(
        "CONFIGURATION (TOML file given with --config; every key can be overridden by the\n\
         environment variable shown, which wins over the file):\n\n",
    );
    let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
    for (key, meaning) in MEANINGS {
        let (section, name) = key.split_once('.').unwrap_or((key, ""));
        let default = match &defaults[section][name] {
            serde_json::Value::String(s) if s.is_empty() => "(none)".to_string(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(map) if map.is_empty() => "(none)".to_string(),
            other => other.to_string(),
        };
        let env = format!(
            "STREAMHOST_{}__{}",
            section.to_uppercase(),
            name.to_uppercase()
        );
        out.push_str(&format!(
            "  {key:<24} {env:<36} {default}\n      {meaning}\n"
        ));
    }
    out.push_str("\nLog level: RUST_LOG (default info); STREAMHOST_LOG_FORMAT=json for JSON logs.");
    out
}

#[cfg(test)]
// figment's Jail closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_topics_of_a_configuration_are_named_once_each_with_their_keys() {
        let mut config = Config::default();
        let names = |config: &Config| -> Vec<String> {
            config.topics().into_iter().map(|t| t.name).collect()
        };
        assert_eq!(
            names(&config),
            [
                "my_events",
                "enriched_events",
                "dlq",
                "country_event_averages"
            ]
        );
        config.windows.enabled = false;
        assert_eq!(names(&config), ["my_events", "enriched_events", "dlq"]);
        config.kafka.dlq_topic = "enriched_events".into();
        let topics = config.topics();
        assert_eq!(topics.len(), 2);
        assert_eq!(
            topics[1].keys,
            ["kafka.enriched_topic", "kafka.dlq_topic"],
            "one topic, both keys"
        );
    }

    #[test]
    fn every_key_has_a_meaning_and_every_meaning_a_key() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut keys = Vec::new();
        for (section, fields) in defaults.as_object().unwrap() {
            for key in fields.as_object().unwrap().keys() {
                keys.push(format!("{section}.{key}"));
            }
        }
        let mut meant: Vec<String> = MEANINGS.iter().map(|(k, _)| k.to_string()).collect();
        keys.sort();
        meant.sort();
        assert_eq!(keys, meant);
        let help = help();
        assert!(
            help.contains(
                "  kafka.brokers            STREAMHOST_KAFKA__BROKERS            127.0.0.1:9092\n"
            ),
            "{help}"
        );
        assert!(help.contains("STREAMHOST_WINDOWS__KEY_FIELD"), "{help}");
    }

    #[test]
    fn the_default_sandbox_is_the_runtimes_default() {
        assert_eq!(PluginsConfig::default().sandbox(), SandboxLimits::default());
    }

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "streamhost.toml",
                "[kafka]\nbrokers = \"file:9092\"\n[windows]\nsize_secs = 600\n",
            )?;
            jail.set_env("STREAMHOST_KAFKA__BROKERS", "env:9092");
            jail.set_env("STREAMHOST_STATE_DIR", "/not/a/config/key");
            let c = Config::load(Some(Path::new("streamhost.toml"))).unwrap();
            assert_eq!(c.kafka.brokers, "env:9092");
            assert_eq!(c.windows.size_secs, 600);
            assert_eq!(c.windows.advance_secs, 60);
            Ok(())
        });
    }

    #[test]
    fn the_watchdog_mode_is_a_word_and_a_zero_stall_timeout_says_how_to_turn_it_off() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(
                Config::load(None).unwrap().kafka.watchdog,
                WatchdogMode::Auto
            );
            jail.set_env("STREAMHOST_KAFKA__WATCHDOG", "off");
            assert_eq!(
                Config::load(None).unwrap().kafka.watchdog,
                WatchdogMode::Off
            );
            jail.set_env("STREAMHOST_KAFKA__WATCHDOG", "sometimes");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("sometimes") && err.contains("auto"), "{err}");
            jail.set_env("STREAMHOST_KAFKA__WATCHDOG", "on");
            jail.set_env("STREAMHOST_KAFKA__STALL_TIMEOUT_SECS", "0");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.contains("kafka.stall_timeout_secs")
                    && err.contains("kafka.watchdog = \"off\""),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn errors_say_what_and_where() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("brokerz"), "{err}");
            jail.create_file("hop.toml", "[windows]\nadvance_secs = 70\n")?;
            let err = Config::load(Some(Path::new("hop.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("windows.advance_secs"), "{err}");
            let err = Config::load(Some(Path::new("missing.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("missing.toml"), "{err}");
            jail.set_env("STREAMHOST_KAFKA__BROKERZ", "x");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("brokerz"), "{err}");
            jail.clear_env();
            let err = Config::load(Some(Path::new("missing.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("missing.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn client_options_come_from_variables_and_files_and_secrets_are_never_shown() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "streamhost.toml",
                "[kafka.client]\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"ssl.key.password\" = \"k3y-pass\"\n",
            )?;
            jail.create_file("kafka_password", "s3cret-pw\n")?;
            jail.set_env("STREAMHOST_KAFKA_CLIENT_SECURITY_PROTOCOL", "SASL_SSL");
            jail.set_env("STREAMHOST_KAFKA_CLIENT_SASL_USERNAME", "alice");
            jail.set_env(
                "STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE",
                "kafka_password",
            );
            jail.set_env(
                "STREAMHOST_KAFKA_CLIENT_SSL_KEYSTORE_PASSWORD",
                "st0re-s3cret",
            );
            let c = Config::load(Some(Path::new("streamhost.toml"))).unwrap();
            let client = &c.kafka.client;
            assert_eq!(client["security.protocol"], "SASL_SSL");
            assert_eq!(client["sasl.mechanism"], "SCRAM-SHA-512");
            assert_eq!(client["sasl.username"], "alice");
            assert_eq!(
                client["sasl.password"], "s3cret-pw",
                "one trailing newline trimmed"
            );
            assert_eq!(client["ssl.keystore.password"], "st0re-s3cret");
            for shown in [format!("{c:?}"), serde_json::to_string(&c).unwrap(), help()] {
                for secret in ["s3cret-pw", "k3y-pass", "st0re-s3cret"] {
                    assert!(!shown.contains(secret), "{secret} in {shown}");
                }
            }
            assert!(format!("{c:?}").contains(r#""sasl.password": "(redacted)""#));
            assert!(format!("{c:?}").contains(r#""sasl.username": "alice""#));

            // The same option twice, a missing file: errors naming the variables.
            jail.set_env("STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD", "other");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.contains("STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD"),
                "{err}"
            );
            assert!(
                err.contains("STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE"),
                "{err}"
            );
            assert!(!err.contains("other"), "{err}");
            jail.clear_env();
            jail.set_env(
                "STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE",
                "/run/secrets/none",
            );
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.contains(
                    "STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE: cannot read /run/secrets/none"
                ),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn variable_names_map_to_librdkafka_names() {
        let vars = [
            ("STREAMHOST_KAFKA_CLIENT_SSL_CA_LOCATION", "/ca.pem"),
            (
                "STREAMHOST_KAFKA_CLIENT_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
                "none",
            ),
            ("STREAMHOST_KAFKA_CLIENT_SOME__UNDERSCORED_NAME", "x"),
            ("STREAMHOST_KAFKA__BROKERS", "not a client option"),
            ("STREAMHOST_KAFKA_CLIENT_", "no name"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let options = client_options_from_env(vars).unwrap();
        let expected: BTreeMap<String, String> = [
            ("ssl.ca.location", "/ca.pem"),
            ("ssl.endpoint.identification.algorithm", "none"),
            ("some_underscored.name", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(options, expected);
    }
}
