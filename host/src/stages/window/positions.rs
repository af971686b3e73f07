//! What has been read and counted per input partition, and the skip rules that follow
//! from it: a record read before (a rewind after a rebalance), an event the validate
//! stage delivered twice, and a record an earlier owner may already have counted (a
//! re-read after a takeover). Also which partitions this instance owns, to tell the
//! ones it is taking over.

use std::collections::{HashMap, HashSet};

/// Per input partition: the positions read, counted and owned.
#[derive(Debug, Default)]
pub(super) struct Positions {
    /// Per partition, the last offset read.
    last: HashMap<i32, i64>,
    /// The partitions this stage owns (to tell which ones it is taking over).
    owned: HashSet<i32>,
    /// Per partition taken over: records below this offset may be re-reads of windows
    /// an earlier owner emitted (see [`Positions::may_be_reread`]).
    reread_until: HashMap<i32, i64>,
    /// Per (enriched partition, source partition): the highest source offset counted.
    source_high: HashMap<(i32, i32), i64>,
}

impl Positions {
    /// Take the record at `offset` of `partition` as read, unless it was read already:
    /// after a rebalance that gave the partition back to us, the consumer restarts from
    /// the committed position, and records already counted must not count twice.
    pub fn first_read(&mut self, partition: i32, offset: i64) -> bool {
        if self
            .last
            .get(&partition)
            .is_some_and(|last| offset <= *last)
        {
            return false;
        }
        self.last.insert(partition, offset);
        true
    }

    /// Take the event the validate stage read at `source_offset` of `source_partition`
    /// as counted on `partition`, unless it was counted already.
    ///
    /// The validate stage delivers at least once: after its crash, events it had
    /// already written come again, each source partition's in order. Count each source
    /// position once. A lower position than one counted is always such a re-delivery,
    /// never a record whose first delivery failed: the sink never produces a failed
    /// record again in the same run, and the producer writes nothing of a partition
    /// after a failed record (`Clients::stage_producer`), so the next run writes it, and
    /// what followed it, in order.
    pub fn first_delivery(
        &mut self,
        partition: i32,
        source_partition: i32,
        source_offset: i64,
    ) -> bool {
        let high = self
            .source_high
            .entry((partition, source_partition))
            .or_insert(-1);
        if source_offset <= *high {
            return false;
        }
        *high = source_offset;
        true
    }

    /// Records that existed before this instance took the partition over may be
    /// re-reads of windows already emitted; records after that are judged as usual.
    pub fn may_be_reread(&self, partition: i32, offset: i64) -> bool {
        self.reread_until
            .get(&partition)
            .is_some_and(|until| offset < *until)
    }

    /// The last offset read of `partition`.
    pub fn last(&self, partition: i32) -> Option<i64> {
        self.last.get(&partition).copied()
    }

    /// Per partition read, the last offset read.
    pub fn read(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.last.iter().map(|(p, last)| (*p, *last))
    }

    /// Partitions taken over: records below the given offsets may be re-reads.
    pub fn taking_over(&mut self, reread_until: HashMap<i32, i64>) {
        self.reread_until.extend(reread_until);
    }

    /// Of `assigned`, the partitions this stage did not own until now.
    pub fn taken_over(&self, assigned: &[i32]) -> Vec<i32> {
        assigned
            .iter()
            .filter(|p| !self.owned.contains(p))
            .copied()
            .collect()
    }

    /// Partitions read so far that are not among `assigned`: revoked.
    pub fn revoked(&self, assigned: &[i32]) -> Vec<i32> {
        self.last
            .keys()
            .filter(|p| !assigned.contains(p))
            .copied()
            .collect()
    }

    /// This instance owns `assigned` now, and nothing else.
    pub fn own(&mut self, assigned: &[i32]) {
        self.owned.retain(|p| assigned.contains(p));
        self.owned.extend(assigned);
    }

    /// Drop what is known of a revoked partition; returns whether anything was.
    pub fn forget(&mut self, partition: i32) -> bool {
        let known = self.owned.remove(&partition) || self.last.contains_key(&partition);
        self.last.remove(&partition);
        self.source_high
            .retain(|(enriched, _), _| *enriched != partition);
        self.reread_until.remove(&partition);
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_read_before_is_not_read_again_until_the_partition_is_forgotten() {
        let mut positions = Positions::default();
        assert!(positions.first_read(0, 5));
        assert!(!positions.first_read(0, 5));
        assert!(!positions.first_read(0, 4));
        assert!(positions.first_read(1, 4), "each partition apart");
        assert!(positions.first_read(0, 6));
        assert_eq!(positions.last(0), Some(6));
        assert!(positions.forget(0));
        assert!(positions.first_read(0, 5));
    }

    #[test]
    fn each_source_position_counts_once_per_partition() {
        let mut positions = Positions::default();
        assert!(positions.first_delivery(0, 1, 10));
        assert!(!positions.first_delivery(0, 1, 10));
        assert!(!positions.first_delivery(0, 1, 9));
        assert!(
            positions.first_delivery(0, 2, 9),
            "another source partition"
        );
        assert!(
            positions.first_delivery(1, 1, 10),
            "another enriched partition"
        );
        positions.forget(0);
        assert!(positions.first_delivery(0, 1, 10));
    }

    #[test]
    fn only_partitions_not_owned_before_are_taken_over() {
        let mut positions = Positions::default();
        assert_eq!(positions.taken_over(&[0, 1]), [0, 1]);
        positions.own(&[0, 1]);
        assert_eq!(positions.taken_over(&[0, 1, 2]), [2]);
        positions.taking_over(HashMap::from([(2, 10)]));
        assert!(positions.may_be_reread(2, 9) && !positions.may_be_reread(2, 10));
        assert!(positions.forget(1));
        assert!(!positions.forget(1), "nothing left to forget");
        positions.forget(2);
        assert!(!positions.may_be_reread(2, 9));
    }
}
