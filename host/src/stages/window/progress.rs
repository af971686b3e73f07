//! What the broker says about records still to come, as a value the window stage
//! consumes: a quiet lane whose partition (or whose source partition of the validate
//! stage's input) still has a backlog is slow, not idle, and keeps holding the
//! watermark back.

use std::time::Duration;

use super::operator::Lane;
use crate::kafka::lag::GroupLag;
use crate::kafka::source::Source;

/// Partitions with records still to come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Of this stage's input: records left to read here.
    pub partitions: Vec<i32>,
    /// Of the validate stage's input: a backlog it has yet to read.
    pub sources: Vec<i32>,
}

impl Progress {
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty() && self.sources.is_empty()
    }
}

/// Asks the broker: this stage's own lag, and the validate stage's group's.
#[derive(Debug)]
pub struct BrokerProgress {
    input: GroupLag,
    /// The validate stage's input partitions (one lane per source partition).
    sources: Vec<i32>,
    /// Less than this behind is a live stream's batches in flight, not a backlog: a
    /// lane that stopped getting records must not be held by a source that is merely
    /// busy.
    backlog: i64,
    round_trip: Duration,
}

impl BrokerProgress {
    pub fn new(input: GroupLag, backlog: i64) -> Self {
        let sources = input.partitions(Duration::from_secs(10));
        tracing::info!(partitions = ?sources, "window stage: one lane per source partition");
        Self {
            input,
            sources,
            backlog,
            round_trip: Duration::from_secs(2),
        }
    }

    pub fn sources(&self) -> &[i32] {
        &self.sources
    }

    /// Of `assigned` (or of the partitions of `quiet` lanes), which still have records
    /// to come; of the sources (or those of `quiet` lanes), which have a backlog.
    /// Blocking round trips to the broker: asked rarely (a lane quiet for the idle time).
    pub fn ask(&mut self, source: &Source, assigned: &[i32], quiet: Option<&[Lane]>) -> Progress {
        let (partitions, sources) = match quiet {
            None => (assigned.to_vec(), self.sources.clone()),
            Some(lanes) => {
                let mut partitions: Vec<i32> = lanes.iter().map(|l| l.partition).collect();
                let mut sources: Vec<i32> = lanes.iter().filter_map(|l| l.source).collect();
                partitions.sort_unstable();
                partitions.dedup();
                sources.sort_unstable();
                sources.dedup();
                (partitions, sources)
            }
        };
        tokio::task::block_in_place(|| Progress {
            partitions: source.pending(&partitions),
            sources: self.input.pending(&sources, self.backlog, self.round_trip),
        })
    }
}
