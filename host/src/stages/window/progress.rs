//! What the broker says about records still to come, as a value the window stage
//! consumes: a quiet lane whose partition (or whose source partition of the validate
//! stage's input) still has a backlog is slow, not idle, and keeps holding the
//! watermark back.

use std::collections::HashMap;

use super::lanes::Lane;
use crate::stages::io::{GroupLag, Source};

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
    input: Box<dyn GroupLag>,
    /// The validate stage's input partitions (one lane per source partition).
    sources: Vec<i32>,
    /// Less than this behind is a live stream's batches in flight, not a backlog: a
    /// lane that stopped getting records must not be held by a source that is merely
    /// busy.
    backlog: i64,
    /// Per source partition, the validate stage's committed offset at the previous
    /// reading.
    previous: HashMap<i32, i64>,
}

impl BrokerProgress {
    pub fn new(input: Box<dyn GroupLag>, backlog: i64) -> Self {
        let sources = input.partitions();
        tracing::info!(partitions = ?sources, "window stage: one lane per source partition");
        Self {
            input,
            sources,
            backlog,
            previous: HashMap::new(),
        }
    }

    pub fn sources(&self) -> &[i32] {
        &self.sources
    }

    /// Which partitions and sources still have records to come, asked of the broker
    /// only when some lanes have been `quiet` for the idle time, or nothing arrived at
    /// all (`batch_empty`: about to let event time follow the wall clock, so every
    /// partition and source is asked; rare, after no input for the idle time).
    pub fn when_quiet(
        &mut self,
        source: &impl Source,
        assigned: &[i32],
        batch_empty: bool,
        quiet: &[Lane],
    ) -> Progress {
        if batch_empty {
            self.ask(source, assigned, None)
        } else if quiet.is_empty() {
            Progress::default()
        } else {
            self.ask(source, assigned, Some(quiet))
        }
    }

    /// Of `assigned` (or of the partitions of `quiet` lanes), which still have records
    /// to come; of the sources (or those of `quiet` lanes), which have a backlog.
    /// Round trips to the broker: asked rarely (a lane quiet for the idle time).
    pub fn ask(
        &mut self,
        source: &impl Source,
        assigned: &[i32],
        quiet: Option<&[Lane]>,
    ) -> Progress {
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
        Progress {
            partitions: source.pending(&partitions),
            sources: self.backlogged(&sources),
        }
    }

    /// Which of the validate stage's `partitions` still have records for it to read
    /// that matter: more than `backlog` behind the end (a backlog, not the few batches a
    /// live stream keeps in flight), or any records at all while its committed offset
    /// has not moved since the previous reading (nobody is reading the partition: its
    /// owner crashed and the partition waits for a new one). A partition whose state
    /// cannot be read counts as caught up, so the watermark cannot stall on a broker
    /// error.
    fn backlogged(&mut self, partitions: &[i32]) -> Vec<i32> {
        self.input
            .positions(partitions)
            .into_iter()
            .filter(|(p, at, end)| {
                let standing = self
                    .previous
                    .insert(*p, *at)
                    .is_none_or(|before| before == *at);
                let lag = end - at;
                lag > self.backlog || (lag > 0 && standing)
            })
            .map(|(p, _, _)| p)
            .collect()
    }
}
