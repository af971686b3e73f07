//! The topics a configuration names ([`Config::topics`]): created on request
//! (`streamhost topics create`, [`create`]), and watched while the host runs
//! ([`watch`]) so that `/health` names any the broker does not have.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::client::ClientLog;
use super::Clients;
use crate::config::{Config, ConfiguredTopic};
use crate::liveness::Health;

/// Partitions of a topic `topics create` makes, unless told otherwise (as the local
/// stack's).
pub const DEFAULT_PARTITIONS: i32 = 3;
/// Replicas of each partition, unless told otherwise: one broker is enough.
pub const DEFAULT_REPLICATION: i32 = 1;

/// How long `topics create` waits for each answer of the broker.
const CREATE_WAIT: Duration = Duration::from_secs(15);
/// How long the watcher waits for the broker's list of topics.
const WATCH_WAIT: Duration = Duration::from_secs(5);
/// How often the watcher asks while a topic is missing, and once all exist.
const WATCH_MISSING: Duration = Duration::from_secs(1);
const WATCH_PRESENT: Duration = Duration::from_secs(10);

/// What the topics `topics create` makes are like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopics {
    pub partitions: i32,
    pub replication: i32,
    /// Topic configuration entries (`retention.ms`, `cleanup.policy`, ...).
    pub config: Vec<(String, String)>,
}

impl Default for NewTopics {
    fn default() -> Self {
        Self {
            partitions: DEFAULT_PARTITIONS,
            replication: DEFAULT_REPLICATION,
            config: Vec::new(),
        }
    }
}

/// A `KEY=VALUE` topic configuration entry.
pub fn parse_entry(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// What became of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        partitions: i32,
        replication: i32,
    },
    Exists {
        partitions: usize,
    },
    /// It exists with another partition count than asked, and is left as it is: the
    /// partition of a key would change with the count.
    ExistsOther {
        partitions: usize,
        asked: i32,
    },
    /// Someone created it between the look and the request.
    CreatedMeanwhile,
    /// The broker refused to create it.
    Refused(String),
}

/// One line of `topics create`: a topic, the keys naming it, what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReport {
    pub topic: ConfiguredTopic,
    pub outcome: Outcome,
}

impl TopicReport {
    pub fn refused(&self) -> bool {
        matches!(self.outcome, Outcome::Refused(_))
    }
}

impl std::fmt::Display for TopicReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = &self.topic.name;
        match &self.outcome {
            Outcome::Created {
                partitions,
                replication,
            } => write!(
                f,
                "created  {name}: {partitions} partitions, replication factor {replication}"
            )?,
            Outcome::Exists { partitions } => {
                write!(f, "exists   {name}: {partitions} partitions")?
            }
            Outcome::ExistsOther { partitions, asked } => write!(
                f,
                "exists   {name}: {partitions} partitions (warning: not the {asked} asked; \
                 left as it is)"
            )?,
            Outcome::CreatedMeanwhile => write!(f, "exists   {name}: created meanwhile")?,
            Outcome::Refused(why) => write!(f, "refused  {name}: {why}")?,
        }
        write!(f, " ({})", self.topic.keys.join(", "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("cannot create an admin client: {0}")]
    Client(KafkaError),
    #[error(
        "cannot list the topics of {brokers} (is kafka.brokers right, the broker up?): {error}"
    )]
    List { brokers: String, error: KafkaError },
    #[error("the broker did not answer the request to create {topics}: {error}")]
    Create { topics: String, error: KafkaError },
    #[error("--partitions and --replication-factor must be at least 1")]
    Size,
    #[error("cannot start the topic watcher's thread: {0}")]
    Thread(std::io::Error),
}

/// What is known of each `wanted` topic from the partition counts of those that
/// `exist`; None: it is to be created.
pub fn plan(
    wanted: &[ConfiguredTopic],
    exist: &BTreeMap<String, usize>,
    asked: i32,
) -> Vec<Option<Outcome>> {
    wanted
        .iter()
        .map(|topic| {
            exist.get(&topic.name).map(|&partitions| {
                if usize::try_from(asked).is_ok_and(|asked| asked == partitions) {
                    Outcome::Exists { partitions }
                } else {
                    Outcome::ExistsOther { partitions, asked }
                }
            })
        })
        .collect()
}

/// The `wanted` topics that are not among those that `exist`, in order.
pub fn missing(wanted: &[String], exist: &BTreeMap<String, usize>) -> Vec<String> {
    wanted
        .iter()
        .filter(|name| !exist.contains_key(name.as_str()))
        .cloned()
        .collect()
}

fn admin(clients: &Clients, client_id: &str) -> Result<AdminClient<ClientLog>, TopicsError> {
    clients
        .admin(client_id)
        .create_with_context(ClientLog)
        .map_err(TopicsError::Client)
}

/// Every topic of the cluster and its partition count (a metadata request for all
/// topics: asking for one by name could make a broker that creates topics on first
/// use create it).
fn existing(
    admin: &AdminClient<ClientLog>,
    wait: Duration,
) -> Result<BTreeMap<String, usize>, KafkaError> {
    let metadata = admin.inner().fetch_metadata(None, wait)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() || !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

/// Create every topic of `wanted` the broker does not have, as `new` says; report on
/// each. A topic the broker refuses is reported as refused: the others are created.
pub fn create(
    clients: &Clients,
    wanted: &[ConfiguredTopic],
    new: &NewTopics,
) -> Result<Vec<TopicReport>, TopicsError> {
    if new.partitions < 1 || new.replication < 1 {
        return Err(TopicsError::Size);
    }
    let admin = admin(clients, "streamhost-topics")?;
    let exist = existing(&admin, CREATE_WAIT).map_err(|error| TopicsError::List {
        brokers: clients.brokers().to_string(),
        error,
    })?;
    let mut outcomes = plan(wanted, &exist, new.partitions);
    let to_create: Vec<NewTopic<'_>> = wanted
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .map(|(topic, _)| {
            new.config.iter().fold(
                NewTopic::new(
                    &topic.name,
                    new.partitions,
                    TopicReplication::Fixed(new.replication),
                ),
                |t, (key, value)| t.set(key, value),
            )
        })
        .collect();
    if !to_create.is_empty() {
        let options = AdminOptions::new()
            .request_timeout(Some(CREATE_WAIT))
            .operation_timeout(Some(CREATE_WAIT));
        let names = || {
            to_create
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let results = futures::executor::block_on(admin.create_topics(&to_create, &options))
            .map_err(|error| TopicsError::Create {
                topics: names(),
                error,
            })?;
        for result in results {
            let (name, outcome) = match result {
                Ok(name) => (
                    name,
                    Outcome::Created {
                        partitions: new.partitions,
                        replication: new.replication,
                    },
                ),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    (name, Outcome::CreatedMeanwhile)
                }
                Err((name, code)) => (name, Outcome::Refused(format!("{code:?} ({code})"))),
            };
            if let Some(i) = wanted.iter().position(|t| t.name == name) {
                outcomes[i] = Some(outcome);
            }
        }
    }
    Ok(wanted
        .iter()
        .zip(outcomes)
        .map(|(topic, outcome)| TopicReport {
            topic: topic.clone(),
            outcome: outcome.unwrap_or_else(|| {
                Outcome::Refused("the broker did not answer for this topic".into())
            }),
        })
        .collect())
}

/// Watches the configured topics while the host runs; stops when dropped.
#[derive(Debug)]
pub struct TopicWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for TopicWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Ask the broker for its topics on a thread of its own, every second while one of
/// `config`'s topics is missing and every 10 s once all exist, and tell `health` which
/// are missing. While the broker does not answer, nothing is claimed missing.
pub fn watch(
    clients: &Clients,
    config: &Config,
    health: Health,
) -> Result<TopicWatch, TopicsError> {
    let admin = admin(clients, "streamhost-topic-watch")?;
    let wanted: Vec<String> = config.topics().into_iter().map(|t| t.name).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("topic-watch".into())
        .spawn(move || {
            let mut last: Vec<String> = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match existing(&admin, WATCH_WAIT) {
                    Ok(exist) => {
                        let now = missing(&wanted, &exist);
                        if now != last {
                            if now.is_empty() {
                                tracing::info!(topics = ?wanted, "every configured topic exists");
                            } else {
                                tracing::warn!(
                                    missing = ?now,
                                    "configured topics missing: the stages read or write \
                                     nothing there until they exist (`streamhost topics \
                                     create` creates them)"
                                );
                            }
                        }
                        health.topics_missing(now.clone());
                        last = now;
                    }
                    Err(error) => tracing::debug!(%error, "topic watcher: no answer"),
                }
                let interval = if last.is_empty() {
                    WATCH_PRESENT
                } else {
                    WATCH_MISSING
                };
                let until = Instant::now() + interval;
                while Instant::now() < until && !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .map_err(TopicsError::Thread)?;
    Ok(TopicWatch { stop })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, key: &'static str) -> ConfiguredTopic {
        ConfiguredTopic {
            name: name.into(),
            keys: vec![key],
        }
    }

    #[test]
    fn existing_topics_are_kept_and_another_partition_count_is_a_warning() {
        let wanted = [
            topic("in", "kafka.input_topic"),
            topic("out", "kafka.enriched_topic"),
            topic("dlq", "kafka.dlq_topic"),
        ];
        let exist = BTreeMap::from([("in".to_string(), 3), ("dlq".to_string(), 6)]);
        let plan = plan(&wanted, &exist, 3);
        assert_eq!(
            plan,
            [
                Some(Outcome::Exists { partitions: 3 }),
                None,
                Some(Outcome::ExistsOther {
                    partitions: 6,
                    asked: 3
                }),
            ]
        );
        let line = |outcome: Outcome| {
            TopicReport {
                topic: wanted[2].clone(),
                outcome,
            }
            .to_string()
        };
        assert_eq!(
            line(Outcome::ExistsOther {
                partitions: 6,
                asked: 3
            }),
            "exists   dlq: 6 partitions (warning: not the 3 asked; left as it is) (kafka.dlq_topic)"
        );
        assert_eq!(
            line(Outcome::Created {
                partitions: 3,
                replication: 1
            }),
            "created  dlq: 3 partitions, replication factor 1 (kafka.dlq_topic)"
        );
        assert_eq!(
            missing(&["in".into(), "out".into(), "dlq".into()], &exist),
            ["out"]
        );
    }

    #[test]
    fn topic_settings_are_key_value_pairs() {
        assert_eq!(
            parse_entry("retention.ms=86400000"),
            Ok(("retention.ms".into(), "86400000".into()))
        );
        assert_eq!(
            parse_entry("cleanup.policy=compact,delete"),
            Ok(("cleanup.policy".into(), "compact,delete".into()))
        );
        assert!(parse_entry("retention.ms").is_err());
        assert!(parse_entry("=1").is_err());
    }
}
