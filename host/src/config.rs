//! Configuration: defaults < TOML file (`--config`) < `STREAMHOST_*` environment variables.
//!
//! Every key is listed, with its environment variable and default, in [`HELP`], which
//! `streamhost run --help` prints; a test keeps the two in step.

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    pub dir: PathBuf,
    pub memory_mb: usize,
    pub batch_deadline_ms: u64,
    pub breaker_threshold: u32,
    pub watch: bool,
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

/// Shown by `streamhost run --help`. One line per key: `section.key  ENV  default  meaning`.
pub const HELP: &str = "\
CONFIGURATION (TOML file given with --config; every key can be overridden by the
environment variable shown, which wins over the file):

  kafka.brokers            STREAMHOST_KAFKA__BROKERS            127.0.0.1:9092
      bootstrap servers (comma separated)
  kafka.group_id           STREAMHOST_KAFKA__GROUP_ID           streamhost
      consumer group of the validate stage (instances sharing it split the partitions)
  kafka.input_topic        STREAMHOST_KAFKA__INPUT_TOPIC        my_events
      raw events to read
  kafka.enriched_topic     STREAMHOST_KAFKA__ENRICHED_TOPIC     enriched_events
      accepted events, JSON, keyed by the window key (windows.key_field)
  kafka.dlq_topic          STREAMHOST_KAFKA__DLQ_TOPIC          dlq
      rejected and undecodable records, with code, reason and the original bytes
  kafka.averages_topic     STREAMHOST_KAFKA__AVERAGES_TOPIC     country_event_averages
      one record per closed (key, window)
  kafka.window_group_id    STREAMHOST_KAFKA__WINDOW_GROUP_ID    streamhost-windows
      consumer group of the window stage (reads enriched_events)
  kafka.idempotence        STREAMHOST_KAFKA__IDEMPOTENCE        true
      idempotent producer (no duplicates from its own retries); off only for brokers that mishandle it
  kafka.stall_timeout_secs STREAMHOST_KAFKA__STALL_TIMEOUT_SECS 20
      a partition with no live owner for this long is orphaned: /health says so, and an
      instance that does not own it rejoins its group to take it over (0: off)
  pipeline.schema          STREAMHOST_PIPELINE__SCHEMA          (the brief's, built in)
      event schema file (TOML: fields, types, the event-time field); `--schema` overrides it
  pipeline.batch_size      STREAMHOST_PIPELINE__BATCH_SIZE      1024
      records per batch through decode, plugins and produce
  pipeline.batch_wait_ms   STREAMHOST_PIPELINE__BATCH_WAIT_MS   50
      longest wait to fill a batch before processing a partial one
  pipeline.in_flight_batches STREAMHOST_PIPELINE__IN_FLIGHT_BATCHES 4
      batches produced but not yet acknowledged; 1 = wait for each batch's acks
  pipeline.max_message_bytes STREAMHOST_PIPELINE__MAX_MESSAGE_BYTES 1048576
      larger payloads go to the DLQ as message_too_large
  plugins.dir              STREAMHOST_PLUGINS__DIR              plugins.d
      directory of *.wasm components, run in file-name order
  plugins.memory_mb        STREAMHOST_PLUGINS__MEMORY_MB        64
      linear-memory cap per plugin instance
  plugins.batch_deadline_ms STREAMHOST_PLUGINS__BATCH_DEADLINE_MS 500
      CPU budget per plugin call (one batch); past it the batch goes to the DLQ
  plugins.breaker_threshold STREAMHOST_PLUGINS__BREAKER_THRESHOLD 3
      failed batches in a row after which a plugin is disabled (until a new file is deployed)
  plugins.watch            STREAMHOST_PLUGINS__WATCH            true
      watch plugins.dir and swap the chain live when a .wasm or .toml file changes
  windows.enabled          STREAMHOST_WINDOWS__ENABLED          true
      run the window stage (rolling counts and averages per key)
  windows.key_field        STREAMHOST_WINDOWS__KEY_FIELD        country
      the schema field windows are kept per (required; also the key of enriched_events)
  windows.size_secs        STREAMHOST_WINDOWS__SIZE_SECS        300
      window length
  windows.advance_secs     STREAMHOST_WINDOWS__ADVANCE_SECS     60
      hop between window starts (= size_secs for tumbling windows); must divide size_secs
  windows.grace_secs       STREAMHOST_WINDOWS__GRACE_SECS       30
      how long after its end a window still takes out-of-order events
  windows.idle_timeout_secs STREAMHOST_WINDOWS__IDLE_TIMEOUT_SECS 10
      with no input for this long, event time advances with the wall clock so windows close
  windows.restore_lookback_secs STREAMHOST_WINDOWS__RESTORE_LOOKBACK_SECS 86400
      on taking over partitions, how far back the averages topic is read to learn emitted windows
  admin.listen             STREAMHOST_ADMIN__LISTEN             127.0.0.1:9898
      /health and /metrics (loopback by default)

Log level: RUST_LOG (default info); STREAMHOST_LOG_FORMAT=json for JSON logs.";

#[cfg(test)]
// figment's Jail closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_key_with_its_env_var_and_default() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for (section, keys) in defaults.as_object().unwrap() {
            for (key, value) in keys.as_object().unwrap() {
                let line = HELP
                    .lines()
                    .find(|l| l.trim_start().starts_with(&format!("{section}.{key} ")))
                    .unwrap_or_else(|| panic!("{section}.{key} missing from HELP"));
                let env = format!(
                    "STREAMHOST_{}__{}",
                    section.to_uppercase(),
                    key.to_uppercase()
                );
                assert!(line.contains(&env), "{line}");
                let shown = value.as_str().map_or(value.to_string(), str::to_string);
                assert!(line.contains(&shown), "{line} lacks default {shown}");
            }
        }
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
