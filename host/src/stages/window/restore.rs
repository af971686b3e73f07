//! Window-stage recovery: which windows did earlier runs already emit?
//!
//! After a crash or a rebalance, the window stage re-reads `enriched_events` from the
//! committed position (the oldest offset an open window needed). Those records also
//! belong to windows that had closed and been emitted before; counting them again
//! would re-emit those windows with partial counts. The emitted windows are in
//! the averages topic itself, so that topic is the checkpoint: its recent tail gives,
//! per key, the latest emitted window start, and the operator skips everything up to
//! it ([`super::operator::WindowOperator::restore_emitted`]).
//! (Offset-commit metadata would be the lighter place, but Tansu 0.6 drops it.)

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::kafka::tail::{self, TailError};
use crate::kafka::Clients;
use crate::records::average;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("reading {topic} to restore emitted windows: {source}")]
    Read {
        topic: String,
        #[source]
        source: TailError,
    },
    #[error("reading {topic} to restore emitted windows: the task failed: {reason}")]
    Task { topic: String, reason: String },
    #[error("reading {topic} to restore emitted windows: the process is stopping")]
    Stopped { topic: String },
}

/// How many times the averages topic is read before the window stage gives up and
/// stops (a second apart, then two).
const ATTEMPTS: u64 = 3;

/// What earlier runs emitted, read back from the averages topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmittedWindows {
    /// Per key, the latest window start emitted.
    pub latest: HashMap<String, i64>,
    /// Per enriched partition, the furthest offset an emitting owner had read: records
    /// after it were never seen by an earlier run.
    pub read_through: HashMap<i32, i64>,
}

impl EmittedWindows {
    /// Take one emitted window into account.
    pub fn add(&mut self, emitted: average::Emitted) {
        let slot = self.latest.entry(emitted.key).or_insert(emitted.start);
        *slot = (*slot).max(emitted.start);
        if let Some((partition, offset)) = emitted.read_through {
            let slot = self.read_through.entry(partition).or_insert(offset);
            *slot = (*slot).max(offset);
        }
    }
}

/// Where the window stage learns which windows earlier runs emitted.
pub trait Checkpoint: Send + Sync + std::fmt::Debug {
    /// The windows emitted recently. `key_field` names the key in the records.
    fn emitted<'a>(
        &'a self,
        key_field: &'a str,
    ) -> BoxFuture<'a, Result<EmittedWindows, RestoreError>>;
}

impl Checkpoint for Restore {
    fn emitted<'a>(
        &'a self,
        key_field: &'a str,
    ) -> BoxFuture<'a, Result<EmittedWindows, RestoreError>> {
        Box::pin(self.emitted_recently(key_field))
    }
}

/// Where the emitted windows are, and how far back to look.
#[derive(Debug, Clone)]
pub struct Restore {
    pub clients: Clients,
    /// The averages topic.
    pub topic: String,
    pub lookback: Duration,
    /// Turns true when the process stops: a read still waiting on the broker is given up.
    pub stop: watch::Receiver<bool>,
}

impl Restore {
    /// The windows emitted in the last `lookback` (per key the latest start, per
    /// partition how far their owners had read), read up to [`ATTEMPTS`] times.
    /// `key_field` names the key in the records.
    pub async fn emitted_recently(&self, key_field: &str) -> Result<EmittedWindows, RestoreError> {
        let mut stop = self.stop.clone();
        let stopped = || RestoreError::Stopped {
            topic: self.topic.clone(),
        };
        let mut attempt = 1;
        loop {
            let read = tokio::select! {
                read = self.read(key_field) => read,
                _ = stop.wait_for(|s| *s) => return Err(stopped()),
            };
            match read {
                Ok(emitted) => return Ok(emitted),
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "window stage: cannot restore emitted windows yet; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(attempt)) => {}
                        _ = stop.wait_for(|s| *s) => return Err(stopped()),
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
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
        source,
    })?;
    Ok(emitted)
}
