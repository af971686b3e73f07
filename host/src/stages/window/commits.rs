//! Commit bookkeeping: which input positions are safe to commit (no further than the
//! oldest record an open window still needs, so a restart re-reads everything an open
//! window needs), and how far an emitted window may say its partition was read.

use std::collections::{BTreeMap, HashMap};

use super::operator::{PartitionedWindows, WindowSpec};
use super::positions::Positions;

/// Per partition, the records the open windows need and the batch's late records.
#[derive(Debug, Default)]
pub(super) struct Commits {
    /// Per partition: window start → lowest offset counted in it (open windows only).
    first_offset: HashMap<i32, BTreeMap<i64, i64>>,
    /// Per partition, the first record of the batch being counted that went to the DLQ
    /// as late: until the batch is acknowledged, a window emitted with it must not say
    /// it was read (see [`Commits::read_through`]).
    late_in_batch: HashMap<i32, i64>,
}

impl Commits {
    /// The batch before is acknowledged (one batch in flight at a time): its late
    /// records are written.
    pub fn batch_acknowledged(&mut self) {
        self.late_in_batch.clear();
    }

    /// The record at `offset` of `partition` counted in the windows starting at `starts`.
    pub fn counted(&mut self, partition: i32, offset: i64, starts: impl Iterator<Item = i64>) {
        let firsts = self.first_offset.entry(partition).or_default();
        for start in starts {
            firsts.entry(start).or_insert(offset);
        }
    }

    /// The record at `offset` of `partition` went to the DLQ as late.
    pub fn late(&mut self, partition: i32, offset: i64) {
        self.late_in_batch.entry(partition).or_insert(offset);
    }

    /// Windows closed: the records only they needed need not be read again.
    pub fn closed(&mut self, windows: &PartitionedWindows) {
        let spec: WindowSpec = windows.spec();
        for (partition, firsts) in self.first_offset.iter_mut() {
            let watermark = windows.watermark(*partition);
            firsts.retain(|start, _| {
                start.saturating_add(spec.size).saturating_add(spec.grace) > watermark
            });
        }
    }

    /// What a window emitted now says was read of `partition`: records up to the offset
    /// a later owner may skip as re-reads. The last record read, or the one before the
    /// batch's first late record: the averages topic and the DLQ are written
    /// independently, so a crash can keep the window and lose the DLQ record, and that
    /// record must then be judged again, not skipped.
    pub fn read_through(&self, positions: &Positions, partition: i32) -> Option<(i32, i64)> {
        let last = positions.last(partition)?;
        let safe = self
            .late_in_batch
            .get(&partition)
            .map_or(last, |late| last.min(late - 1));
        Some((partition, safe))
    }

    /// Positions safe to commit: the oldest offset an open window still needs, or past
    /// the last record read when no open window needs anything.
    pub fn positions(&self, positions: &Positions) -> HashMap<i32, i64> {
        positions
            .read()
            .map(|(p, last)| {
                let needed = self
                    .first_offset
                    .get(&p)
                    .and_then(|f| f.values().min().copied());
                (p, needed.unwrap_or(last + 1).min(last + 1))
            })
            .collect()
    }

    /// Drop what is kept of a revoked partition.
    pub fn forget(&mut self, partition: i32) {
        self.first_offset.remove(&partition);
    }
}
