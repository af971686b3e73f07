//! The two stages and the one loop that runs them.
//!
//! * [`runtime`]: read a batch, let the stage process it, enqueue the outputs in
//!   order, settle their acknowledgements, commit positions in order, stop cleanly.
//! * [`validate`]: `my_events` → decode → plugin chain → `enriched_events` / `dlq`.
//! * [`window`]: `enriched_events` → event-time windows → the averages topic.
//! * [`io`]: what a stage reads and where its outputs go, as interfaces.
//! * [`rejects`]: every rejection counted, logged (rate-limited) and dead-lettered.
//!
//! A stage is a [`Stage`]: it processes a batch at a time and says which positions are
//! safe to commit once its outputs are acknowledged. No stage knows the other.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::liveness::StageName;
use crate::records::{Output, SourceRecord};
use io::{SinkError, Source, SourceError};

pub mod io;
pub mod rejects;
pub mod runtime;
pub mod validate;
pub mod window;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Restore(#[from] window::RestoreError),
}

/// What a stage made of one batch.
#[derive(Debug, Default)]
pub struct Processed {
    /// To produce, in this order.
    pub outputs: Vec<Output>,
    /// Positions to commit once these outputs (and all before) are acknowledged.
    pub commit: HashMap<i32, i64>,
}

/// One stage, as the runtime drives it.
#[allow(async_fn_in_trait)] // driven by the runtime only, never as `dyn`
pub trait Stage {
    fn name(&self) -> StageName;

    /// The longest the runtime waits for input before calling [`Stage::process`] with
    /// an empty batch (the stage's idle tick, and the watchdog's longest turn).
    fn idle_wait(&self) -> Duration;

    /// How many batches may wait for their acknowledgements at once.
    fn in_flight(&self) -> usize;

    /// Between batches, before the next read (e.g. install a new plugin chain).
    fn between_batches(&mut self) {}

    /// Resolves when the stage has work for [`Stage::between_batches`]: the runtime then
    /// stops waiting for the first record of the next batch, or for a free place among
    /// the batches in flight (the next batch may then go past [`Stage::in_flight`] by
    /// one). Never, by default.
    fn wake(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// `revoked` were read by another owner since the last batch. Returns whether their
    /// records must be dropped from the batch and read again from the committed
    /// position (a stage with per-partition state must not count them in the middle).
    fn revoked(&mut self, _revoked: &[i32]) -> bool {
        false
    }

    /// Process a batch (empty: nothing arrived for [`Stage::idle_wait`]) read at `now`
    /// from `source`, whose partitions are now `assigned`.
    async fn process(
        &mut self,
        batch: &[SourceRecord],
        source: &impl Source,
        assigned: &[i32],
        now: Instant,
    ) -> Result<Processed, StageError>;
}
