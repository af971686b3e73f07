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
//!
//! This file is the stage's side: the [`Checkpoint`] interface, what it answers, and
//! how a read is retried. The Kafka implementation is `crate::kafka::checkpoint`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::records::average;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("reading {topic} to restore emitted windows: {source}")]
    Read {
        topic: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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

    /// Per partition taken over, given its end offset when it was taken over: below
    /// which offset a record may be a re-read. What an earlier owner read may be; what
    /// none read is judged afresh (late, if its windows were emitted without it).
    pub fn reread_until(&self, ends: HashMap<i32, i64>) -> HashMap<i32, i64> {
        ends.into_iter()
            .map(|(p, end)| match self.read_through.get(&p) {
                Some(read) => (p, end.min(read + 1)),
                None => (p, end),
            })
            .collect()
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

/// `read` (of `topic`) up to [`ATTEMPTS`] times, a second apart and then two. Given up
/// as soon as `stop` turns true, even while a read still waits on the broker.
pub async fn retrying<F, R>(
    topic: &str,
    stop: &watch::Receiver<bool>,
    mut read: F,
) -> Result<EmittedWindows, RestoreError>
where
    F: FnMut() -> R,
    R: Future<Output = Result<EmittedWindows, RestoreError>>,
{
    let mut stop = stop.clone();
    let stopped = || RestoreError::Stopped {
        topic: topic.to_string(),
    };
    let mut attempt = 1;
    loop {
        let read = tokio::select! {
            read = read() => read,
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
