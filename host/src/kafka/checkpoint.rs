//! The window stage's [`Checkpoint`] on Kafka: the windows emitted recently, read back
//! from the tail of the averages topic ([`super::tail`]), retried as
//! [`retrying`] does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::tail;
use super::Clients;
use crate::records::average;
use crate::stages::window::restore::{retrying, Checkpoint, EmittedWindows, RestoreError};

/// Where the emitted windows are, and how far back to look.
#[derive(Debug, Clone)]
pub struct KafkaCheckpoint {
    pub clients: Clients,
    /// The averages topic.
    pub topic: String,
    pub lookback: Duration,
    /// Turns true when the process stops: a read still waiting on the broker is given up.
    pub stop: watch::Receiver<bool>,
}

impl Checkpoint for KafkaCheckpoint {
    fn emitted<'a>(
        &'a self,
        key_field: &'a str,
    ) -> BoxFuture<'a, Result<EmittedWindows, RestoreError>> {
        Box::pin(self.emitted_recently(key_field))
    }
}

impl KafkaCheckpoint {
    /// The windows emitted in the last `lookback` (per key the latest start, per
    /// partition how far their owners had read), read up to three times.
    /// `key_field` names the key in the records.
    pub async fn emitted_recently(&self, key_field: &str) -> Result<EmittedWindows, RestoreError> {
        retrying(&self.topic, &self.stop, || self.read(key_field)).await
    }

    /// One read of the averages topic's tail, on a blocking thread.
    async fn read(&self, key_field: &str) -> Result<EmittedWindows, RestoreError> {
        let (restore, key_field) = (self.clone(), key_field.to_string());
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            emitted_through(
                &restore.clients,
                &restore.topic,
                &key_field,
                restore.lookback,
                Duration::from_secs(30),
            )
        })
        .await
        .unwrap_or_else(|e| {
            Err(RestoreError::Task {
                topic,
                reason: e.to_string(),
            })
        })
    }
}

/// The windows written to `topic` in the last `lookback`. `key_field` names the key
/// in the records (`country` in the brief's).
fn emitted_through(
    clients: &Clients,
    topic: &str,
    key_field: &str,
    lookback: Duration,
    timeout: Duration,
) -> Result<EmittedWindows, RestoreError> {
    let since_ms = SystemTime::now()
        .checked_sub(lookback)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut emitted = EmittedWindows::default();
    tail::read_since(clients, topic, since_ms, timeout, |payload| {
        if let Some(window) = average::emitted(payload, key_field) {
            emitted.add(window);
        }
    })
    .map_err(|source| RestoreError::Read {
        topic: topic.to_string(),
        source: Box::new(source),
    })?;
    Ok(emitted)
}
