//! The lanes of event time and each lane's one clock: how far its event time has got,
//! when it last brought a record, and whether it is idle (no longer holding the
//! watermark back). The operator keeps one clock per lane; the stage reads and sets the
//! same clocks through it.

use std::time::{Duration, Instant};

/// Where a record's event time runs in order: an input partition, and the source
/// partition the validate stage read it from (`None` for records that do not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane {
    pub partition: i32,
    pub source: Option<i32>,
}

/// A partition's records with no source partition (and the tests' shorthand).
impl From<i32> for Lane {
    fn from(partition: i32) -> Self {
        Lane {
            partition,
            source: None,
        }
    }
}

/// One lane's clock.
#[derive(Debug, Default)]
pub(super) struct LaneClock {
    /// Highest event time seen on the lane.
    pub stream_time: Option<i64>,
    /// Stops holding the watermark back (until the lane's next event).
    pub idle: bool,
    /// When the lane last brought a record, appeared, or was found slow rather than
    /// idle: its idle timeout counts from here. `None` until the stage starts it.
    pub heard: Option<Instant>,
}

impl LaneClock {
    /// An event at `t` on the lane: it holds the watermark again.
    pub fn observe(&mut self, t: i64) {
        self.stream_time = self.stream_time.max(Some(t));
        self.idle = false;
    }

    /// Not idle yet, but nothing heard for `idle`: about to stop holding the watermark.
    pub fn quiet(&self, now: Instant, idle: Duration) -> bool {
        !self.idle && self.heard.is_some_and(|h| now.duration_since(h) >= idle)
    }
}
