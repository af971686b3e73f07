//! What a failed delivery means: every librdkafka error the producer reports, sorted
//! into the three things the host can do about it ([`DeliveryClass`]).

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::stages::io::DeliveryClass;

/// The class of a producer error (from `send` or from a delivery report). Codes not
/// named here are permanent: an error the host does not know stops the stage rather
/// than being retried blind.
pub fn classify(error: &KafkaError) -> DeliveryClass {
    use RDKafkaErrorCode as C;
    let Some(code) = error.rdkafka_error_code() else {
        // The producer was dropped (`Canceled`), or an error that is no broker's.
        return DeliveryClass::Permanent;
    };
    match code {
        C::QueueFull
        | C::MessageTimedOut
        | C::OperationTimedOut
        | C::TimedOutQueue
        | C::AllBrokersDown
        | C::BrokerTransportFailure
        | C::Resolve
        | C::Retry
        | C::WaitCache
        | C::NodeUpdate
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::PreferredLeaderNotAvailable
        | C::FencedLeaderEpoch
        | C::UnknownLeaderEpoch
        | C::RequestTimedOut
        | C::BrokerNotAvailable
        | C::ReplicaNotAvailable
        | C::NetworkException
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::ISRInsufficient
        | C::KafkaStorageError
        | C::ThrottlingQuotaExceeded => DeliveryClass::Transient,
        C::MessageSizeTooLarge | C::MessageBatchTooLarge => DeliveryClass::TooLarge,
        _ => DeliveryClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};

    use super::*;
    use crate::config::KafkaConfig;
    use crate::kafka::Clients;
    use crate::records::{MAX_OUTPUT_BYTES, MESSAGE_MAX_BYTES};

    /// librdkafka's own check, made before anything is sent (no broker needed): a
    /// record at the host's limit passes it, one over the producer's
    /// `message.max.bytes` is refused, and that is too large.
    #[test]
    fn the_producer_refuses_a_record_over_message_max_bytes_as_too_large() {
        let kafka = KafkaConfig {
            // Nothing listens there: nothing is sent.
            brokers: "127.0.0.1:9".into(),
            ..KafkaConfig::default()
        };
        let producer: BaseProducer = Clients::new(&kafka)
            .unwrap()
            .stage_producer("t")
            .create()
            .unwrap();
        let key = [b'k'; 24];
        let fits = vec![b'x'; MAX_OUTPUT_BYTES - key.len()];
        let queued = producer.send(BaseRecord::to("t").key(&key[..]).payload(&fits[..]));
        assert!(queued.is_ok(), "{:?}", queued.err().map(|(e, _)| e));
        let over = vec![b'x'; MESSAGE_MAX_BYTES + 1];
        let Err((error, _)) = producer.send(BaseRecord::<[u8], [u8]>::to("t").payload(&over[..]))
        else {
            panic!("a record over message.max.bytes was queued");
        };
        assert_eq!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageSizeTooLarge)
        );
        assert_eq!(classify(&error), DeliveryClass::TooLarge);
        producer.purge(PurgeConfig::default().queue());
    }

    fn produce(code: RDKafkaErrorCode) -> DeliveryClass {
        classify(&KafkaError::MessageProduction(code))
    }

    #[test]
    fn a_broker_away_is_transient() {
        for code in [
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::NetworkException,
        ] {
            assert_eq!(produce(code), DeliveryClass::Transient, "{code:?}");
        }
    }

    #[test]
    fn a_record_over_a_size_limit_is_too_large() {
        // The same code comes from librdkafka's own check before sending and from the
        // broker's after.
        assert_eq!(
            produce(RDKafkaErrorCode::MessageSizeTooLarge),
            DeliveryClass::TooLarge
        );
        assert_eq!(
            produce(RDKafkaErrorCode::MessageBatchTooLarge),
            DeliveryClass::TooLarge
        );
    }

    #[test]
    fn what_fails_on_every_attempt_is_permanent() {
        for code in [
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::SaslAuthenticationFailed,
            RDKafkaErrorCode::Authentication,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::InvalidMessage,
            RDKafkaErrorCode::Fatal,
            RDKafkaErrorCode::GaplessGuarantee,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            RDKafkaErrorCode::PurgeQueue,
            RDKafkaErrorCode::PurgeInflight,
            RDKafkaErrorCode::UnsupportedVersion,
        ] {
            assert_eq!(produce(code), DeliveryClass::Permanent, "{code:?}");
        }
        // The producer dropped before the report came: nothing will come.
        assert_eq!(classify(&KafkaError::Canceled), DeliveryClass::Permanent);
    }

    #[test]
    fn the_class_does_not_depend_on_where_the_error_was_met() {
        // `send` reports through `MessageProduction`; a global error through `Global`.
        assert_eq!(
            classify(&KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)),
            DeliveryClass::Transient
        );
        assert_eq!(
            classify(&KafkaError::Global(
                RDKafkaErrorCode::TopicAuthorizationFailed
            )),
            DeliveryClass::Permanent
        );
    }
}
