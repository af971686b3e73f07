//! Configuration: defaults < TOML file (`--config`) < `STREAMHOST_*` environment variables.
//!
//! `streamhost run --help` lists every key with its environment variable, default
//! and meaning ([`help`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::schema::{Schema, SchemaError};

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
    pub stall_timeout_secs: u64,
    /// librdkafka options added to every client (TLS, SASL, ...): `[kafka.client]`.
    pub client: std::collections::BTreeMap<String, String>,
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
    pub breaker_threshold: u32,
    pub watch: bool,
    pub cache_compiled: bool,
    /// Empty: [`crate::plugins::compiled::default_dir`].
    pub compiled_dir: PathBuf,
}

impl PluginsConfig {
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
            stall_timeout_secs: 20,
            client: std::collections::BTreeMap::new(),
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
            max_future_secs: crate::stages::validate::DEFAULT_MAX_FUTURE_SECS,
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("plugins.d"),
            memory_mb: 64,
            batch_deadline_ms: 500,
            breaker_threshold: 3,
            watch: true,
            cache_compiled: true,
            compiled_dir: PathBuf::new(),
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
}

impl Config {
    /// Defaults, then the TOML file if given, then `STREAMHOST_SECTION__KEY` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            // `file_exact`: a typo in --config must be an error, not silent defaults.
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            // Only SECTION__KEY variables: other STREAMHOST_* names belong to the scripts.
            .merge(
                Env::prefixed("STREAMHOST_")
                    .filter(|key| key.as_str().contains("__"))
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
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
        for (key, why) in crate::kafka::client::HOST_OWNED {
            if self.kafka.client.contains_key(*key) {
                return Err(ConfigError::Invalid {
                    key: "kafka.client",
                    value: (*key).to_string(),
                    reason: why,
                });
            }
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
        if self.plugins.memory_mb == 0 {
            return Err(invalid("plugins.memory_mb", &0, "must be at least 1"));
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
    ("kafka.stall_timeout_secs", "a partition with no live owner for this long is orphaned: /health says so, and an instance that does not own it rejoins its group to take it over (0: off)"),
    ("kafka.client", "librdkafka options added to every client, as a table in the file ([kafka.client] \"security.protocol\" = \"SASL_SSL\"); the options the host owns (group.id, commits, acks, idempotence) are refused"),
    ("pipeline.schema", "event schema file (TOML: fields, types, the event-time field); none: the brief's, built in; `--schema` overrides it"),
    ("pipeline.batch_size", "records per batch through decode, plugins and produce"),
    ("pipeline.batch_wait_ms", "longest wait to fill a batch before processing a partial one"),
    ("pipeline.in_flight_batches", "batches produced but not yet acknowledged; 1 = wait for each batch's acks"),
    ("pipeline.max_message_bytes", "larger payloads go to the DLQ as message_too_large"),
    ("pipeline.max_fields", "payloads with more top-level members go to the DLQ as too_many_fields"),
    ("pipeline.max_future_secs", "events stamped further ahead of the wall clock go to the DLQ as future_event (validate and window stages)"),
    ("plugins.dir", "directory of *.wasm components, run in file-name order"),
    ("plugins.memory_mb", "linear-memory cap per plugin instance"),
    ("plugins.batch_deadline_ms", "CPU budget per plugin call (one batch); past it the batch goes to the DLQ"),
    ("plugins.breaker_threshold", "failed batches in a row after which a plugin is disabled (until a new file is deployed)"),
    ("plugins.watch", "watch plugins.dir and swap the chain live when a .wasm or .toml file changes"),
    ("plugins.cache_compiled", "keep compiled plugins on disk, so a file seen before loads in a millisecond"),
    ("plugins.compiled_dir", "where (empty: $XDG_CACHE_HOME or ~/.cache, then streamhost/compiled; owned by this user)"),
    ("windows.enabled", "run the window stage (rolling counts and averages per key)"),
    ("windows.key_field", "the schema field windows are kept per (required; also the key of enriched_events)"),
    ("windows.size_secs", "window length"),
    ("windows.advance_secs", "hop between window starts (= size_secs for tumbling windows); must divide size_secs"),
    ("windows.grace_secs", "how long after its end a window still takes out-of-order events"),
    ("windows.idle_timeout_secs", "with no input for this long, event time advances with the wall clock so windows close"),
    ("windows.restore_lookback_secs", "on taking over partitions, how far back the averages topic is read to learn emitted windows"),
    ("admin.listen", "/health and /metrics (loopback by default)"),
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
}
