//! Stage 5: event-time hopping windows per key, counted, emitted once on close.
//!
//! Semantics (docs/design.md, "Windows", has the argument):
//! * a window is `[start, start + size)` with `start` a multiple of `advance`;
//!   an event at `t` belongs to the `size / advance` windows that contain `t`;
//! * each **lane** has a stream time: the highest event time seen on it. A lane is an
//!   input partition together with the source partition (of `my_events`) its records
//!   were read from: each source partition is written in order, but the validate stage
//!   reads them at different speeds, so within one input partition the sources can be
//!   minutes apart while a backlog is caught up. The lane's clock ([`super::lanes`])
//!   also holds its idle timeout, which the stage runs on the `Instant`s it passes in;
//! * the **watermark** is the minimum stream time over the lanes that are not idle, and
//!   never moves back;
//! * a window closes when `watermark >= end + grace`: it is emitted once and its state
//!   freed. An event counts in each of its windows that is still open; an event
//!   whose windows are all closed is **late** (the caller sends it to the DLQ);
//! * with no input at all for a while, the caller advances the watermark to the wall
//!   clock ([`WindowOperator::advance_to`]) so the last windows still close.
//!
//! Memory: one counter per open (key, window); nothing per event.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::lanes::{Lane, LaneClock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub size: i64,
    pub advance: i64,
    pub grace: i64,
}

impl WindowSpec {
    /// Starts of the windows that contain `t`, oldest first: `size / advance` of them
    /// (fewer at the ends of `i64`, whose starts do not fit). Worked out in `i128`, so
    /// that no `t` makes it wrap or run on; a spec that is not positive has none.
    pub fn starts(&self, t: i64) -> impl Iterator<Item = i64> {
        let (size, advance) = (i128::from(self.size), i128::from(self.advance));
        let valid = size > 0 && advance > 0;
        let advance = advance.max(1);
        let last = i128::from(t).div_euclid(advance) * advance;
        let first = if valid {
            last - size + advance
        } else {
            last + 1
        };
        (0..)
            .map(move |i: i128| first + i * advance)
            .take_while(move |s| *s <= last)
            .filter_map(|s| i64::try_from(s).ok())
    }

    /// Events per minute over the window: the brief's "rolling average of event counts".
    pub fn average(&self, count: u64) -> f64 {
        count as f64 * 60.0 / self.size as f64
    }
}

/// One closed window, ready to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    pub key: String,
    pub start: i64,
    pub end: i64,
    pub count: u64,
    pub average: f64,
}

/// Whether an observed event counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Counted in this many windows (fewer than `size/advance` when the oldest had closed).
    Counted(usize),
    /// Every window of this event had closed.
    Late,
    /// Every open-able window of this event was already emitted by an earlier run
    /// (see [`WindowOperator::restore_emitted`]): a re-read record, not a late one.
    Reread,
}

#[derive(Debug)]
pub struct WindowOperator {
    spec: WindowSpec,
    /// Open windows by (start, key): ordered by start, so closing pops from the front.
    open: BTreeMap<(i64, String), u64>,
    lanes: HashMap<Lane, LaneClock>,
    /// Highest event time ever seen (kept when partitions are forgotten).
    max_seen: Option<i64>,
    /// Per key, the latest window start an earlier run emitted.
    emitted: HashMap<String, i64>,
    watermark: i64,
    closed: Vec<ClosedWindow>,
}

impl WindowOperator {
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            open: BTreeMap::new(),
            lanes: HashMap::new(),
            max_seen: None,
            emitted: HashMap::new(),
            watermark: i64::MIN,
            closed: Vec::new(),
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Count one event from `lane`. Closed windows pile up for [`Self::take_closed`].
    /// `reread`: the record may be a re-read of one an earlier run counted; windows that
    /// run already emitted are then skipped instead of the event being judged late.
    pub fn observe(&mut self, lane: impl Into<Lane>, key: &str, t: i64, reread: bool) -> Observed {
        let mut counted = 0;
        let mut reread_hit = false;
        let emitted_through = self.emitted.get(key).copied();
        for start in self.spec.starts(t) {
            // Emitted by an earlier run: closed for good.
            if emitted_through.is_some_and(|e| start <= e) {
                reread_hit |= reread;
                continue;
            }
            if self.is_closed(start) {
                continue;
            }
            counted += 1;
            match self.open.get_mut(&(start, key.to_string())) {
                Some(count) => *count += 1,
                None => {
                    self.open.insert((start, key.to_string()), 1);
                }
            }
        }
        self.lanes.entry(lane.into()).or_default().observe(t);
        self.recompute_watermark();
        match (counted, reread_hit) {
            (0, true) => Observed::Reread,
            (0, false) => Observed::Late,
            (n, _) => Observed::Counted(n),
        }
    }

    /// Windows an earlier run already emitted: per key, the latest emitted window
    /// start. Windows close in start order, so every window of that key up to it
    /// was emitted (or had no events); they are neither counted nor emitted again.
    pub fn restore_emitted(&mut self, emitted: &HashMap<String, i64>) {
        for (key, start) in emitted {
            let slot = self.emitted.entry(key.clone()).or_insert(*start);
            *slot = (*slot).max(*start);
            self.open.retain(|(s, c), _| c != key || *s > *start);
        }
    }

    /// The partitions this instance reads, and the source partitions that feed them:
    /// new lanes hold the watermark until they bring data or are marked idle; the lanes
    /// of partitions no longer read are forgotten. Without known sources, one lane per
    /// partition.
    pub fn assign(&mut self, partitions: &[i32], sources: &[i32]) {
        let gone: Vec<i32> = self
            .lanes
            .keys()
            .map(|l| l.partition)
            .filter(|p| !partitions.contains(p))
            .collect();
        for p in gone {
            self.forget_partition(p);
        }
        for p in partitions {
            if sources.is_empty() {
                self.lanes.entry(Lane::from(*p)).or_default();
            }
            for s in sources {
                let lane = Lane {
                    partition: *p,
                    source: Some(*s),
                };
                self.lanes.entry(lane).or_default();
            }
        }
    }

    /// A lane with nothing to read for a while stops holding the watermark back (until
    /// its next event).
    pub fn mark_idle(&mut self, lane: impl Into<Lane>) {
        if let Some(clock) = self.lanes.get_mut(&lane.into()) {
            if !clock.idle {
                clock.idle = true;
                self.recompute_watermark();
            }
        }
    }

    pub fn is_idle(&self, lane: impl Into<Lane>) -> bool {
        self.lanes.get(&lane.into()).is_some_and(|c| c.idle)
    }

    /// Input resumed after a quiet spell at `now`: every lane holds the watermark again
    /// until it brings data or stays quiet for the idle timeout once more (its idle
    /// clock restarts now). Otherwise the first lane of a backlog to deliver would pull
    /// the watermark past the others' older events, and those would be judged late.
    pub fn wake(&mut self, now: Instant) {
        for clock in self.lanes.values_mut() {
            clock.idle = false;
            clock.heard = Some(now);
        }
    }

    /// The lane brought a record at `now`: its idle clock restarts.
    pub fn heard(&mut self, lane: impl Into<Lane>, now: Instant) {
        if let Some(clock) = self.lanes.get_mut(&lane.into()) {
            clock.heard = Some(now);
        }
    }

    /// Start the idle clocks of lanes that have none yet (new lanes) at `now`.
    pub fn start_clocks(&mut self, now: Instant) {
        for clock in self.lanes.values_mut() {
            clock.heard.get_or_insert(now);
        }
    }

    /// Lanes quiet for `idle` that still hold the watermark back.
    pub fn quiet_lanes(&self, now: Instant, idle: Duration) -> impl Iterator<Item = Lane> + '_ {
        self.lanes
            .iter()
            .filter(move |(_, clock)| clock.quiet(now, idle))
            .map(|(lane, _)| *lane)
    }

    /// Lanes quiet for `idle` stop holding the watermark back (one at a time, in lane
    /// order), except those `slow` says still have records to come: their idle clock
    /// restarts at `now`. `slow` is asked of every lane, with whether it has brought
    /// data.
    pub fn idle_quiet_lanes(
        &mut self,
        now: Instant,
        idle: Duration,
        slow: impl Fn(Lane, bool) -> bool,
    ) {
        let mut quiet = Vec::new();
        for (lane, clock) in &mut self.lanes {
            if slow(*lane, clock.stream_time.is_some()) {
                clock.heard = Some(now);
            } else if clock.quiet(now, idle) {
                quiet.push(*lane);
            }
        }
        quiet.sort_unstable();
        for lane in quiet {
            self.mark_idle(lane);
        }
    }

    /// Forget the stream times of a partition's lanes (revoked) so they no longer hold
    /// the watermark back.
    pub fn forget_partition(&mut self, partition: i32) {
        let stream_time = self
            .lanes
            .iter()
            .filter(|(l, _)| l.partition == partition)
            .filter_map(|(_, c)| c.stream_time)
            .max();
        self.max_seen = self.max_seen.max(stream_time);
        self.lanes.retain(|l, _| l.partition != partition);
        self.recompute_watermark();
    }

    /// Input has stopped: let event time follow the wall clock (`now`), but no further
    /// than it takes to close every window seen so far. Without data, nothing moves, so
    /// a reread of old events that starts after a pause is not judged late wholesale.
    pub fn on_idle(&mut self, now: i64) {
        let max_seen = self
            .lanes
            .values()
            .filter_map(|c| c.stream_time)
            .max()
            .max(self.max_seen);
        if let Some(max_seen) = max_seen {
            let everything_closed = max_seen
                .saturating_add(self.spec.size)
                .saturating_add(self.spec.grace);
            self.advance_to(now.min(everything_closed));
        }
    }

    /// Move the watermark forward to at least `t`, closing windows.
    pub fn advance_to(&mut self, t: i64) {
        if t > self.watermark {
            self.watermark = t;
            self.close_ready();
        }
    }

    pub fn take_closed(&mut self) -> Vec<ClosedWindow> {
        std::mem::take(&mut self.closed)
    }

    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    fn is_closed(&self, start: i64) -> bool {
        start
            .saturating_add(self.spec.size)
            .saturating_add(self.spec.grace)
            <= self.watermark
    }

    fn recompute_watermark(&mut self) {
        let mut active = self.lanes.values().filter(|c| !c.idle).peekable();
        if active.peek().is_none() {
            return;
        }
        // An active lane without data yet holds the watermark: it may bring old events.
        let min = active.map(|c| c.stream_time).min().flatten();
        if let Some(min) = min {
            if min > self.watermark {
                self.watermark = min;
                self.close_ready();
            }
        }
    }

    fn close_ready(&mut self) {
        let closes_before = self
            .watermark
            .saturating_sub(self.spec.size)
            .saturating_sub(self.spec.grace);
        while let Some(entry) = self.open.first_entry() {
            // is_closed(start), without borrowing self while the entry is held
            if entry.key().0 > closes_before {
                break;
            }
            let ((start, key), count) = entry.remove_entry();
            self.closed.push(ClosedWindow {
                key,
                start,
                end: start.saturating_add(self.spec.size),
                count,
                average: self.spec.average(count),
            });
        }
    }
}

/// One [`WindowOperator`] per input partition. Each partition has its own event time,
/// as a Kafka Streams task does: the records of a partition taken over from another
/// instance are judged by that partition's clock, not by the one this instance's other
/// partitions have already advanced (which would judge its open windows late). The
/// input must be keyed by the window key, so that a key's windows live in one
/// partition (`enriched_events` is keyed by key).
#[derive(Debug)]
pub struct PartitionedWindows {
    spec: WindowSpec,
    ops: BTreeMap<i32, WindowOperator>,
}

impl PartitionedWindows {
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            ops: BTreeMap::new(),
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    fn op(&mut self, partition: i32) -> &mut WindowOperator {
        let spec = self.spec;
        self.ops
            .entry(partition)
            .or_insert_with(|| WindowOperator::new(spec))
    }

    /// Count one event on its partition's operator.
    pub fn observe(&mut self, lane: Lane, key: &str, t: i64, reread: bool) -> Observed {
        self.op(lane.partition).observe(lane, key, t, reread)
    }

    /// The partitions this instance reads and the source partitions that feed them: a
    /// new partition gets an operator of its own; a partition no longer read is dropped
    /// with its open windows (its new owner re-reads them).
    pub fn assign(&mut self, partitions: &[i32], sources: &[i32]) {
        self.ops.retain(|p, _| partitions.contains(p));
        for p in partitions {
            self.op(*p).assign(&[*p], sources);
        }
    }

    /// Drop a partition's operator and open windows (revoked).
    pub fn forget(&mut self, partition: i32) {
        self.ops.remove(&partition);
    }

    /// Windows emitted by earlier runs, for the partitions just taken over.
    pub fn restore_emitted(&mut self, emitted: &HashMap<String, i64>, partitions: &[i32]) {
        for p in partitions {
            self.op(*p).restore_emitted(emitted);
        }
    }

    pub fn mark_idle(&mut self, lane: Lane) {
        if let Some(op) = self.ops.get_mut(&lane.partition) {
            op.mark_idle(lane);
        }
    }

    /// See [`WindowOperator::wake`].
    pub fn wake(&mut self, now: Instant) {
        for op in self.ops.values_mut() {
            op.wake(now);
        }
    }

    /// See [`WindowOperator::heard`].
    pub fn heard(&mut self, lane: Lane, now: Instant) {
        if let Some(op) = self.ops.get_mut(&lane.partition) {
            op.heard(lane, now);
        }
    }

    /// See [`WindowOperator::start_clocks`].
    pub fn start_clocks(&mut self, now: Instant) {
        for op in self.ops.values_mut() {
            op.start_clocks(now);
        }
    }

    /// See [`WindowOperator::quiet_lanes`].
    pub fn quiet_lanes(&self, now: Instant, idle: Duration) -> Vec<Lane> {
        self.ops
            .values()
            .flat_map(|op| op.quiet_lanes(now, idle))
            .collect()
    }

    /// See [`WindowOperator::idle_quiet_lanes`].
    pub fn idle_quiet_lanes(
        &mut self,
        now: Instant,
        idle: Duration,
        slow: impl Fn(Lane, bool) -> bool,
    ) {
        for op in self.ops.values_mut() {
            op.idle_quiet_lanes(now, idle, &slow);
        }
    }

    /// See [`WindowOperator::on_idle`]: each partition up to what it has seen, except
    /// the `holding` ones.
    pub fn on_idle(&mut self, now: i64, holding: &[i32]) {
        for (p, op) in &mut self.ops {
            if !holding.contains(p) {
                op.on_idle(now);
            }
        }
    }

    pub fn advance_to(&mut self, t: i64) {
        for op in self.ops.values_mut() {
            op.advance_to(t);
        }
    }

    pub fn take_closed(&mut self) -> Vec<(i32, ClosedWindow)> {
        self.ops
            .iter_mut()
            .flat_map(|(p, op)| op.take_closed().into_iter().map(|w| (*p, w)))
            .collect()
    }

    pub fn open_windows(&self) -> usize {
        self.ops.values().map(WindowOperator::open_windows).sum()
    }

    /// Each partition's watermark, for those that have one (an event seen).
    pub fn watermarks(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.ops
            .iter()
            .map(|(p, op)| (*p, op.watermark()))
            .filter(|(_, w)| *w > i64::MIN)
    }

    /// The partition's watermark (`i64::MIN` before its first event).
    pub fn watermark(&self, partition: i32) -> i64 {
        self.ops
            .get(&partition)
            .map_or(i64::MIN, WindowOperator::watermark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const SPEC: WindowSpec = WindowSpec {
        size: 300,
        advance: 60,
        grace: 30,
    };

    #[test]
    fn an_event_belongs_to_size_over_advance_windows() {
        assert_eq!(
            SPEC.starts(0).collect::<Vec<_>>(),
            vec![-240, -180, -120, -60, 0]
        );
        assert_eq!(
            SPEC.starts(59).collect::<Vec<_>>(),
            vec![-240, -180, -120, -60, 0]
        );
        assert_eq!(
            SPEC.starts(60).collect::<Vec<_>>(),
            vec![-180, -120, -60, 0, 60]
        );
        let tumbling = WindowSpec {
            size: 300,
            advance: 300,
            grace: 0,
        };
        assert_eq!(tumbling.starts(299).collect::<Vec<_>>(), vec![0]);
        assert_eq!(tumbling.starts(300).collect::<Vec<_>>(), vec![300]);
        assert_eq!(tumbling.starts(-1).collect::<Vec<_>>(), vec![-300]);
    }

    /// Times and specs at the ends of `i64`: nothing wraps, nothing runs on.
    #[test]
    fn starts_at_the_ends_of_i64() {
        let huge = WindowSpec {
            size: i64::MAX,
            advance: i64::MAX,
            grace: i64::MAX,
        };
        for spec in [SPEC, huge] {
            for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
                let starts: Vec<i64> = spec.starts(t).take(10).collect();
                assert!(starts.len() <= 5, "{spec:?} {t}: {starts:?}");
                for s in starts {
                    assert!(s <= t && i128::from(t) - i128::from(s) < i128::from(spec.size));
                }
            }
        }
        assert_eq!(SPEC.starts(i64::MAX).count(), 5);
        assert_eq!(
            SPEC.starts(i64::MIN).count(),
            0,
            "its windows start before i64::MIN"
        );
        let broken = WindowSpec {
            size: 0,
            advance: 0,
            grace: 0,
        };
        assert_eq!(broken.starts(5).count(), 0);
        let mut op = WindowOperator::new(huge);
        for t in [i64::MAX, i64::MIN, 0] {
            op.observe(0, "US", t, false);
        }
        op.advance_to(i64::MAX);
        op.take_closed();
    }

    #[test]
    fn average_is_events_per_minute() {
        assert_eq!(SPEC.average(150), 30.0);
        assert_eq!(SPEC.average(1), 0.2);
    }

    #[test]
    fn closes_after_end_plus_grace_and_flags_late_events() {
        let mut op = WindowOperator::new(WindowSpec {
            size: 60,
            advance: 60,
            grace: 10,
        });
        assert_eq!(op.observe(0, "US", 5, false), Observed::Counted(1));
        assert_eq!(op.observe(0, "US", 65, false), Observed::Counted(1));
        assert!(
            op.take_closed().is_empty(),
            "window [0,60) still within grace"
        );
        assert_eq!(
            op.observe(0, "US", 55, false),
            Observed::Counted(1),
            "out of order, in grace"
        );
        op.observe(0, "DE", 70, false);
        let closed = op.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].start, closed[0].end, closed[0].count),
            (0, 60, 2)
        );
        assert_eq!(op.observe(0, "US", 30, false), Observed::Late);
        assert_eq!(op.open_windows(), 2);
    }

    #[test]
    fn the_slowest_partition_holds_the_watermark() {
        let mut op = WindowOperator::new(WindowSpec {
            size: 60,
            advance: 60,
            grace: 0,
        });
        op.observe(0, "US", 10, false);
        op.observe(1, "US", 10, false);
        op.observe(0, "US", 500, false);
        assert!(op.take_closed().is_empty());
        op.observe(1, "US", 200, false);
        assert_eq!(op.take_closed().len(), 1);
        op.forget_partition(1);
        assert_eq!(op.watermark(), 500);
        assert_eq!(
            op.take_closed()[0].start,
            180,
            "partition 1's window closes without it"
        );
        op.advance_to(10_000);
        assert_eq!(op.take_closed().len(), 1);
        assert_eq!(op.open_windows(), 0);
    }

    #[test]
    fn idleness_closes_what_was_seen_and_nothing_before_data() {
        let spec = WindowSpec {
            size: 300,
            advance: 60,
            grace: 30,
        };
        let mut op = WindowOperator::new(spec);
        op.on_idle(2_000_000_000);
        assert_eq!(
            op.watermark(),
            i64::MIN,
            "no data yet: an idle wall clock moves nothing"
        );
        assert_eq!(op.observe(0, "US", 1_000, false), Observed::Counted(5));
        op.on_idle(1_200);
        assert_eq!(
            op.take_closed().len(),
            3,
            "live: only windows the wall clock has passed (+grace)"
        );
        op.on_idle(2_000_000_000);
        assert_eq!(op.take_closed().len(), 2);
        assert_eq!(
            op.watermark(),
            1_000 + 300 + 30,
            "no further than closing what was seen"
        );
        assert_eq!(op.observe(0, "US", 1_000, false), Observed::Late);
        assert_eq!(op.observe(0, "US", 1_400, false), Observed::Counted(5));
    }

    #[test]
    fn each_source_partition_holds_the_watermark_within_a_partition() {
        // One enriched partition fed by two source partitions read at different speeds
        // (a backlog being caught up): source 0 is minutes ahead of source 1.
        let mut op = WindowOperator::new(SPEC);
        op.assign(&[0], &[0, 1]);
        let lane = |source| Lane {
            partition: 0,
            source: Some(source),
        };
        assert_eq!(op.observe(lane(0), "US", 100, false), Observed::Counted(5));
        assert_eq!(op.observe(lane(0), "US", 900, false), Observed::Counted(5));
        assert_eq!(op.watermark(), i64::MIN, "source 1 has brought nothing yet");
        assert_eq!(op.observe(lane(1), "US", 110, false), Observed::Counted(5));
        assert_eq!(op.watermark(), 110);
        // Source 1 catches up through the same windows: none of it is late.
        for t in (120..900).step_by(60) {
            assert!(matches!(
                op.observe(lane(1), "US", t, false),
                Observed::Counted(_)
            ));
        }
        assert!(op.watermark() >= 840);
        // Idle lanes stop holding; a lane without a source (foreign writer) is its own.
        op.mark_idle(lane(1));
        assert_eq!(op.watermark(), 900);
        assert!(op.is_idle(lane(1)) && !op.is_idle(lane(0)));
        assert_eq!(op.observe(0, "US", 2_000, false), Observed::Counted(5));
        assert_eq!(
            op.watermark(),
            900,
            "the no-source lane is ahead, source 0 holds"
        );
    }

    #[test]
    fn an_assigned_partition_without_data_holds_the_watermark_until_idle() {
        let mut op = WindowOperator::new(WindowSpec {
            size: 60,
            advance: 60,
            grace: 0,
        });
        op.assign(&[0, 1, 2], &[]);
        op.observe(0, "US", 10, false);
        op.observe(0, "US", 500, false);
        op.observe(2, "DE", 400, false);
        assert_eq!(
            op.watermark(),
            i64::MIN,
            "partition 1 may still bring old events"
        );
        op.observe(1, "JP", 20, false);
        assert_eq!(op.watermark(), 20);
        op.mark_idle(1);
        assert_eq!(op.watermark(), 400);
        assert_eq!(op.take_closed().len(), 2, "US and JP [0,60)");
        op.observe(1, "JP", 30, false);
        assert_eq!(op.watermark(), 400, "never moves back");
        op.assign(&[0], &[]);
        assert_eq!(op.watermark(), 500);
    }

    #[test]
    fn a_lane_quiet_for_the_idle_time_goes_idle_unless_slow() {
        use std::time::{Duration, Instant};
        let idle = Duration::from_secs(60);
        let start = Instant::now();
        let mut op = WindowOperator::new(SPEC);
        op.assign(&[0, 1], &[]);
        op.observe(0, "US", 100, false);
        assert_eq!(
            op.quiet_lanes(start, idle).count(),
            0,
            "no clock started yet"
        );
        op.start_clocks(start);
        let later = start + idle;
        assert_eq!(op.quiet_lanes(later, idle).count(), 2);
        op.heard(0, later);
        assert_eq!(
            op.quiet_lanes(later, idle).collect::<Vec<_>>(),
            [Lane::from(1)]
        );
        // Slow: the clock restarts instead; not slow: idle.
        op.idle_quiet_lanes(later, idle, |lane, _| lane.partition == 1);
        assert!(!op.is_idle(1) && op.quiet_lanes(later, idle).count() == 0);
        let much_later = later + idle;
        op.idle_quiet_lanes(much_later, idle, |_, has_data| has_data);
        assert!(op.is_idle(1) && !op.is_idle(0));
        assert_eq!(op.watermark(), 100, "partition 1 no longer holds it");
        assert_eq!(
            op.quiet_lanes(much_later, idle).count(),
            0,
            "idle is not quiet"
        );
        // Input resumes: every lane holds again, its clock restarted.
        op.wake(much_later);
        assert!(!op.is_idle(1));
        assert_eq!(op.quiet_lanes(much_later + idle, idle).count(), 2);
    }

    #[test]
    fn windows_an_earlier_run_emitted_are_not_counted_or_emitted_again() {
        let mut op = WindowOperator::new(WindowSpec {
            size: 120,
            advance: 60,
            grace: 0,
        });
        op.restore_emitted(&HashMap::from([("US".to_string(), 60)]));
        assert_eq!(
            op.observe(0, "DE", 100, true),
            Observed::Counted(2),
            "other keys are unaffected"
        );
        // t=100 is in windows 0 and 60, both emitted before: a re-read record.
        assert_eq!(op.observe(0, "US", 100, true), Observed::Reread);
        // ... or, if it is new, a late one.
        assert_eq!(op.observe(0, "US", 100, false), Observed::Late);
        // t=130 is in 60 (emitted) and 120 (not): counted once.
        assert_eq!(op.observe(0, "US", 130, true), Observed::Counted(1));
        op.advance_to(1_000);
        let mut closed: Vec<(String, i64, u64)> = op
            .take_closed()
            .into_iter()
            .map(|w| (w.key, w.start, w.count))
            .collect();
        closed.sort();
        assert_eq!(
            closed,
            [
                ("DE".into(), 0, 1),
                ("DE".into(), 60, 1),
                ("US".into(), 120, 1)
            ]
        );
    }

    #[test]
    fn a_partition_taken_over_later_is_judged_by_its_own_clock() {
        let spec = WindowSpec {
            size: 60,
            advance: 60,
            grace: 0,
        };
        let mut windows = PartitionedWindows::new(spec);
        windows.assign(&[0], &[]);
        windows.observe(Lane::from(0), "US", 10, false);
        windows.observe(Lane::from(0), "US", 1_000, false);
        assert_eq!(windows.watermark(0), 1_000);
        // Partition 1 comes over from a crashed instance with windows still open there.
        windows.assign(&[0, 1], &[]);
        assert_eq!(
            windows.observe(Lane::from(1), "DE", 500, false),
            Observed::Counted(1),
            "not late: partition 1's own clock has not passed it"
        );
        assert_eq!(
            windows.observe(Lane::from(0), "US", 500, false),
            Observed::Late
        );
        windows.observe(Lane::from(1), "DE", 700, false);
        let closed = windows.take_closed();
        assert_eq!(
            closed
                .iter()
                .map(|(p, w)| (*p, w.key.as_str(), w.start))
                .collect::<Vec<_>>(),
            [(0, "US", 0), (1, "DE", 480)]
        );
        // A partition given up takes its open windows with it.
        windows.assign(&[0], &[]);
        assert_eq!(windows.open_windows(), 1, "US [1000, 1060) only");
        assert_eq!(windows.watermark(1), i64::MIN);
    }

    /// Brute force: reread the events in order, recomputing every partition's stream
    /// time and the watermark from the full prefix, and count per (key, window).
    fn oracle(
        spec: WindowSpec,
        events: &[(i32, String, i64)],
    ) -> (BTreeMap<(String, i64), u64>, usize) {
        // f[n]: min over the partitions seen in the first n events of their max time.
        let f: Vec<Option<i64>> = (0..=events.len())
            .map(|n| {
                let prefix = &events[..n];
                let mut parts: Vec<i32> = prefix.iter().map(|e| e.0).collect();
                parts.sort();
                parts.dedup();
                parts
                    .iter()
                    .map(|part| {
                        prefix
                            .iter()
                            .filter(|e| e.0 == *part)
                            .map(|e| e.2)
                            .max()
                            .unwrap()
                    })
                    .min()
            })
            .collect();
        let mut counts = BTreeMap::new();
        let mut late = 0;
        for (i, (_, key, t)) in events.iter().enumerate() {
            // The watermark never moves back: the max of f over every prefix so far.
            let watermark = f[..=i].iter().flatten().copied().max().unwrap_or(i64::MIN);
            let mut counted = false;
            let mut s = t.div_euclid(spec.advance) * spec.advance;
            while s > t - spec.size {
                if s + spec.size + spec.grace > watermark {
                    *counts.entry((key.clone(), s)).or_insert(0) += 1;
                    counted = true;
                }
                s -= spec.advance;
            }
            if !counted {
                late += 1;
            }
        }
        (counts, late)
    }

    fn run(
        spec: WindowSpec,
        events: &[(i32, String, i64)],
    ) -> (BTreeMap<(String, i64), u64>, usize) {
        let mut op = WindowOperator::new(spec);
        let mut late = 0;
        let mut emitted = BTreeMap::new();
        for (p, c, t) in events {
            if op.observe(*p, c, *t, false) == Observed::Late {
                late += 1;
            }
            for w in op.take_closed() {
                assert_eq!(w.end - w.start, spec.size);
                assert_eq!(w.average, spec.average(w.count));
                let previous = emitted.insert((w.key, w.start), w.count);
                assert!(previous.is_none(), "a window was emitted twice");
            }
        }
        op.advance_to(i64::MAX / 2);
        for w in op.take_closed() {
            assert!(emitted.insert((w.key, w.start), w.count).is_none());
        }
        assert_eq!(op.open_windows(), 0, "state freed once everything closed");
        (emitted, late)
    }

    fn events_strategy() -> impl Strategy<Value = (WindowSpec, Vec<(i32, String, i64)>)> {
        let spec = (1i64..=5, 1i64..=4, 0i64..=90).prop_map(|(k, adv_div, grace)| {
            // size a multiple of advance; small numbers to hit boundaries often
            let advance = 60 / adv_div;
            WindowSpec {
                size: advance * k,
                advance,
                grace,
            }
        });
        let event = (
            0i32..3,
            prop::sample::select(vec!["US", "DE", "JP", "FR"]),
            0i64..1200,
        )
            .prop_map(|(p, c, t)| (p, c.to_string(), t));
        (spec, prop::collection::vec(event, 0..300))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any time, any sane spec: the starts are the windows containing `t`, each a
        /// multiple of the advance, at most size/advance of them, and all of them
        /// unless they would fall outside `i64`.
        #[test]
        fn starts_for_any_i64(
            t in any::<i64>(),
            k in 1i64..=10,
            advance in prop_oneof![1i64..=600, 1i64..=i64::MAX / 10],
        ) {
            let spec = WindowSpec { size: advance * k, advance, grace: 30 };
            let starts: Vec<i64> = spec.starts(t).take(k as usize + 1).collect();
            prop_assert!(starts.len() <= k as usize);
            prop_assert!(starts.windows(2).all(|w| w[0] < w[1]));
            for s in &starts {
                prop_assert!(*s <= t && i128::from(t) - i128::from(*s) < i128::from(spec.size));
                prop_assert_eq!(s.rem_euclid(advance), 0);
            }
            let fits = i128::from(t) - i128::from(spec.size) >= i128::from(i64::MIN);
            if fits {
                prop_assert_eq!(starts.len(), k as usize);
            }
        }

        #[test]
        fn any_event_times_are_observed_and_closed(ts in prop::collection::vec(any::<i64>(), 1..20)) {
            let mut op = WindowOperator::new(SPEC);
            for (i, t) in ts.iter().enumerate() {
                op.observe((i % 2) as i32, "US", *t, false);
            }
            op.advance_to(i64::MAX);
            let closed = op.take_closed().len();
            prop_assert!(closed + op.open_windows() <= 5 * ts.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn matches_the_brute_force_oracle((spec, events) in events_strategy()) {
            let (got, got_late) = run(spec, &events);
            let (want, want_late) = oracle(spec, &events);
            prop_assert_eq!(got, want);
            prop_assert_eq!(got_late, want_late);
        }

        #[test]
        fn with_enough_grace_nothing_is_late_and_counts_are_plain_counts(
            (spec, mut events) in events_strategy()
        ) {
            // Sort by time, then disorder only within each 60 s: a 60 s grace absorbs it.
            events.sort_by_key(|e| e.2 / 60);
            let spec = WindowSpec { grace: 60, ..spec };
            let (got, late) = run(spec, &events);
            prop_assert_eq!(late, 0);
            let mut plain = BTreeMap::new();
            for (_, c, t) in &events {
                for s in spec.starts(*t) {
                    *plain.entry((c.clone(), s)).or_insert(0u64) += 1;
                }
            }
            prop_assert_eq!(got, plain);
        }
    }
}
