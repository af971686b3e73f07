//! The liveness watchdog's broker side ([`crate::liveness::Stamps`]): stamps are the
//! "committed offsets" of the input topic's partitions in a side group, written and
//! read by a client that never joins that group; the broker's answer about itself is
//! a DescribeConfigs of the broker resource.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigResourceResult, ResourceSpecifier};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::client::ClientLog;
use super::delivery::classify;
use super::Clients;
use crate::liveness::{BrokerKind, Stamps};
use crate::stages::io::{DeliveryClass, SourceError};

/// Timeout of each broker round trip of the watchdog.
const ROUND_TRIP: Duration = Duration::from_secs(5);

/// The stamps of one stage's input topic, in one side group.
pub struct KafkaStamps {
    clients: Clients,
    topic: String,
    client: BaseConsumer<ClientLog>,
    /// Made on the first question to the broker.
    admin: Option<AdminClient<ClientLog>>,
}

impl std::fmt::Debug for KafkaStamps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStamps")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaStamps {
    /// The stamps of `topic` in `side_group`.
    pub fn new(clients: &Clients, side_group: &str, topic: &str) -> Result<Self, SourceError> {
        let client = clients
            .reader(side_group, &format!("streamhost-{side_group}"))
            .create_with_context(ClientLog)
            .map_err(|source| SourceError::Broker {
                context: "create the watchdog's client",
                source: Box::new(source),
            })?;
        Ok(Self {
            clients: clients.clone(),
            topic: topic.to_string(),
            client,
            admin: None,
        })
    }
}

impl Stamps for KafkaStamps {
    fn broker_kind(&mut self) -> Option<BrokerKind> {
        if self.admin.is_none() {
            let probe = format!("streamhost-probe-{}", self.topic);
            match self.clients.admin(&probe).create_with_context(ClientLog) {
                Ok(admin) => self.admin = Some(admin),
                Err(e) => {
                    return Some(BrokerKind::Silent(format!(
                        "cannot create an admin client: {e}"
                    )))
                }
            }
        }
        let admin = self.admin.as_ref()?;
        answered(describe_broker(admin, &self.topic))
    }

    fn stamp(&mut self, partitions: &[i32], now_ms: i64) {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            if let Err(e) = list.add_partition_offset(&self.topic, *p, Offset::Offset(now_ms)) {
                tracing::warn!(error = %e, "watchdog: cannot list a stamp");
            }
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = self.client.commit(&list, CommitMode::Sync) {
            tracing::warn!(topic = %self.topic, error = %e, "watchdog: cannot stamp the owned partitions");
        }
    }

    fn read(&mut self) -> Option<Vec<(i32, Option<i64>)>> {
        let meta = self
            .client
            .fetch_metadata(Some(&self.topic), ROUND_TRIP)
            .map_err(|e| tracing::debug!(error = %e, "watchdog: no metadata"))
            .ok()?;
        let mut list = TopicPartitionList::new();
        for t in meta.topics().iter().filter(|t| t.name() == self.topic) {
            for p in t.partitions() {
                list.add_partition(&self.topic, p.id());
            }
        }
        let stamps = self
            .client
            .committed_offsets(list, ROUND_TRIP)
            .map_err(|e| tracing::debug!(error = %e, "watchdog: cannot read the stamps"))
            .ok()?;
        Some(
            stamps
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => (e.partition(), Some(o)),
                    _ => (e.partition(), None),
                })
                .collect(),
        )
    }
}

/// What an attempt says; None while the broker is away (ask again). Any other
/// failure, e.g. a broker without DescribeConfigs, leaves the watchdog on.
fn answered(attempt: Result<Option<ConfigResourceResult>, KafkaError>) -> Option<BrokerKind> {
    match attempt {
        Ok(result) => Some(of(result)),
        Err(e) if classify(&e) == DeliveryClass::Transient => {
            tracing::debug!(error = %e, "watchdog: the broker did not answer yet");
            None
        }
        Err(e) => Some(BrokerKind::Silent(format!("DescribeConfigs failed: {e}"))),
    }
}

fn of(result: Option<ConfigResourceResult>) -> BrokerKind {
    match result {
        Some(Ok(resource)) if !resource.entries.is_empty() => BrokerKind::DescribesItself,
        Some(Ok(_)) => BrokerKind::Silent("an empty configuration".into()),
        Some(Err(code)) => BrokerKind::Silent(format!("{code:?} ({code})")),
        None => BrokerKind::Silent("no answer for the broker resource".into()),
    }
}

/// DescribeConfigs for the broker that answers the metadata request for `topic`. An
/// error is no answer (the broker is away); a broker's refusal is in the result.
fn describe_broker(
    admin: &AdminClient<ClientLog>,
    topic: &str,
) -> Result<Option<ConfigResourceResult>, KafkaError> {
    let broker = admin
        .inner()
        .fetch_metadata(Some(topic), ROUND_TRIP)?
        .orig_broker_id();
    let options = AdminOptions::new().request_timeout(Some(ROUND_TRIP));
    let results = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Broker(broker)], &options),
    )?;
    Ok(results.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broker_that_describes_itself_goes_without_the_watchdog() {
        use rdkafka::admin::{ConfigEntry, ConfigResource, ConfigSource, OwnedResourceSpecifier};
        use rdkafka::types::RDKafkaErrorCode;
        let described = |entries: Vec<ConfigEntry>| {
            Some(Ok(ConfigResource {
                specifier: OwnedResourceSpecifier::Broker(1),
                entries,
            }))
        };
        let entry = ConfigEntry {
            name: "log.retention.hours".into(),
            value: Some("168".into()),
            source: ConfigSource::Default,
            is_read_only: true,
            is_default: true,
            is_sensitive: false,
        };
        assert_eq!(of(described(vec![entry])), BrokerKind::DescribesItself);
        // Tansu 0.6: no entries (to librdkafka 2.12), a topic it does not have (2.16).
        let tansu = of(Some(Err(RDKafkaErrorCode::UnknownTopicOrPartition)));
        assert!(
            matches!(&tansu, BrokerKind::Silent(why) if why.contains("UnknownTopicOrPartition")),
            "{tansu:?}"
        );
        // Not allowed to describe the cluster: the watchdog stays, to be safe.
        let denied = of(Some(Err(RDKafkaErrorCode::ClusterAuthorizationFailed)));
        assert!(matches!(denied, BrokerKind::Silent(_)));
        assert!(matches!(of(described(vec![])), BrokerKind::Silent(_)));
        assert!(matches!(of(None), BrokerKind::Silent(_)));
        // The broker away: ask again. A broker without the request: the watchdog stays.
        let away = KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(answered(Err(away)), None);
        let unsupported = KafkaError::AdminOp(RDKafkaErrorCode::UnsupportedFeature);
        assert!(matches!(
            answered(Err(unsupported)),
            Some(BrokerKind::Silent(_))
        ));
    }
}
