//! The window stage: the enriched topic (keyed by the window key, so each key's events
//! sit in one partition and its windows on one instance) → [`PartitionedWindows`] →
//! the averages topic, late events → `dlq`.
//!
//! This file wires the concerns into the [`Stage`] the runtime drives: the fields read
//! ([`super::fields`]), the skip rules ([`super::positions`]), the lanes' idle clocks
//! (kept by the operator, [`super::lanes`]), the commits ([`super::commits`]), the
//! broker's word on backlogs ([`super::progress`]) and the restore after a takeover
//! ([`super::restore`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::commits::Commits;
use super::fields::{Keyed, WindowFields};
use super::lanes::Lane;
use super::operator::{ClosedWindow, Observed, PartitionedWindows, WindowSpec};
use super::positions::Positions;
use super::progress::{BrokerProgress, Progress};
use super::restore::{Checkpoint, RestoreError};
use crate::config::DEFAULT_MAX_FUTURE_SECS;
use crate::decode::MAX_TIMESTAMP;
use crate::liveness::StageName;
use crate::records::average::Average;
use crate::records::dlq::{HostCode, Step, REJECTED_BY_HOST};
use crate::records::{Output, SourceRecord};
use crate::stages::io::Source;
use crate::stages::rejects::Rejects;
use crate::stages::validate::{future_bound, future_event};
use crate::stages::{Processed, Stage, StageError};
use crate::telemetry;
use crate::timefmt::{self, Clock};

/// The windowing state of one instance plus the bookkeeping for safe commits.
#[derive(Debug)]
pub struct WindowStage {
    /// The windows, and each lane's event time and idle clock.
    op: PartitionedWindows,
    /// What was read and counted per partition.
    positions: Positions,
    /// What may be committed, and said read.
    commits: Commits,
    /// The partitions of the validate stage's input, whose lanes hold the watermark.
    sources: Vec<i32>,
    /// No input arrived for the idle timeout; the next batch wakes every partition.
    quiet: bool,
    source_topic: String,
    fields: WindowFields,
    /// How long a lane may bring nothing before it stops holding the watermark back.
    idle: Duration,
    /// The broker's word on records still to come (absent in unit tests: no broker).
    progress: Option<BrokerProgress>,
    /// Learns which windows were emitted before a takeover (absent in unit tests).
    restore: Option<Box<dyn Checkpoint>>,
    /// Event times further ahead of `clock` than this go to the DLQ, as in the
    /// validate stage: records on the enriched topic may come from anywhere.
    max_future_secs: i64,
    clock: Clock,
}

impl WindowStage {
    pub fn new(spec: WindowSpec, source_topic: &str, fields: WindowFields) -> Self {
        Self {
            fields,
            idle: Duration::from_secs(10),
            progress: None,
            restore: None,
            op: PartitionedWindows::new(spec),
            positions: Positions::default(),
            commits: Commits::default(),
            sources: Vec::new(),
            quiet: false,
            source_topic: source_topic.to_string(),
            max_future_secs: future_bound(DEFAULT_MAX_FUTURE_SECS),
            clock: timefmt::wall_clock,
        }
    }

    /// `pipeline.max_future_secs` (the default otherwise).
    pub fn max_future_secs(mut self, secs: u64) -> Self {
        self.max_future_secs = future_bound(secs);
        self
    }

    /// Another clock than the wall clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Why an event time is not let into the windows: outside what the schema allows
    /// (whoever wrote the record), or too far ahead of the clock.
    fn refused(&self, t: i64, now: i64) -> Option<(HostCode, String)> {
        if !(0..=MAX_TIMESTAMP).contains(&t) {
            return Some((
                HostCode::OutOfRange,
                format!("event time {t} is outside 0..={MAX_TIMESTAMP} epoch seconds"),
            ));
        }
        future_event(t, now, self.max_future_secs).map(|m| (HostCode::FutureEvent, m))
    }

    /// Connected to the broker: `progress` tells quiet lanes from slow ones, `restore`
    /// what was emitted before a takeover; lanes quiet for `idle` stop holding the
    /// watermark back.
    pub fn connected(
        mut self,
        idle: Duration,
        progress: BrokerProgress,
        restore: Box<dyn Checkpoint>,
    ) -> Self {
        self.idle = idle;
        self.set_sources(progress.sources().to_vec());
        self.progress = Some(progress);
        self.restore = Some(restore);
        tracing::info!(
            size = self.op.spec().size,
            advance = self.op.spec().advance,
            grace = self.op.spec().grace,
            key = %self.fields.key,
            "window stage started"
        );
        self
    }

    /// Count a batch read at `now`; returns the records to produce (closed windows,
    /// late events).
    pub fn count_at(&mut self, batch: &[SourceRecord], now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        let now_secs = (self.clock)();
        let mut rejects = Rejects::new(&self.source_topic, now);
        // The batch before this one is acknowledged (one batch in flight at a time).
        self.commits.batch_acknowledged();
        if self.quiet && !batch.is_empty() {
            // A backlog after a pause arrives one partition at a time: the quiet ones
            // must hold the watermark again (their idle clocks restart now).
            self.quiet = false;
            self.op.wake(now);
        }
        for record in batch {
            if !self.positions.first_read(record.partition, record.offset) {
                metrics::counter!(telemetry::WINDOW_REREAD_SKIPPED.name).increment(1);
                continue;
            }
            let keyed: Keyed = match self.fields.read(&record.payload) {
                Ok(k) => k,
                Err(e) => {
                    // Only this host writes enriched_events; anything else there is reported.
                    outputs.push(rejects.reject(
                        record,
                        Step::Window,
                        REJECTED_BY_HOST,
                        HostCode::UnreadableEnrichedEvent.as_str(),
                        &e,
                    ));
                    continue;
                }
            };
            if let Some((code, message)) = self.refused(keyed.time, now_secs) {
                outputs.push(rejects.reject(
                    record,
                    Step::Window,
                    REJECTED_BY_HOST,
                    code.as_str(),
                    &message,
                ));
                continue;
            }
            if let (Some(q), Some(o)) = (keyed.source_partition, keyed.source_offset) {
                if !self.positions.first_delivery(record.partition, q, o) {
                    metrics::counter!(telemetry::WINDOW_DUPLICATES_SKIPPED.name).increment(1);
                    continue;
                }
            }
            let reread = self
                .positions
                .may_be_reread(record.partition, record.offset);
            let lane = Lane {
                partition: record.partition,
                source: keyed.source_partition,
            };
            let observed = self.op.observe(lane, &keyed.key, keyed.time, reread);
            self.op.heard(lane, now);
            match observed {
                Observed::Late => {
                    metrics::counter!(telemetry::LATE_EVENTS.name).increment(1);
                    self.commits.late(record.partition, record.offset);
                    let message = format!(
                        "event time {} is behind the window watermark {} by more than the grace period; all its windows had closed",
                        timefmt::datetime(keyed.time),
                        timefmt::datetime(self.op.watermark(record.partition))
                    );
                    outputs.push(rejects.reject(
                        record,
                        Step::Window,
                        REJECTED_BY_HOST,
                        HostCode::LateEvent.as_str(),
                        &message,
                    ));
                }
                Observed::Reread => {
                    metrics::counter!(telemetry::WINDOW_REREAD_SKIPPED.name).increment(1);
                }
                Observed::Counted(_) => {
                    self.commits.counted(
                        record.partition,
                        record.offset,
                        self.op.spec().starts(keyed.time),
                    );
                }
            }
        }
        drop(rejects);
        self.drain_closed(&mut outputs);
        outputs
    }

    /// [`WindowStage::count_at`] now.
    #[cfg(test)]
    pub fn count(&mut self, batch: &[SourceRecord]) -> Vec<Output> {
        self.count_at(batch, Instant::now())
    }

    /// No input for a while: let event time follow the wall clock so windows close,
    /// except on the `holding` partitions, which still have records to come.
    pub fn idle(&mut self, now_secs: i64, holding: &[i32]) -> Vec<Output> {
        self.quiet = true;
        self.commits.batch_acknowledged();
        self.op.on_idle(now_secs, holding);
        let mut outputs = Vec::new();
        self.drain_closed(&mut outputs);
        outputs
    }

    fn drain_closed(&mut self, outputs: &mut Vec<Output>) {
        let closed = self.op.take_closed();
        for (partition, w) in &closed {
            tracing::debug!(partition, country = %w.key, start = w.start, count = w.count, watermark = self.op.watermark(*partition), "window closed");
        }
        metrics::counter!(telemetry::WINDOWS_CLOSED.name).increment(closed.len() as u64);
        outputs.extend(closed.iter().map(|(partition, w)| {
            let read_through = self.commits.read_through(&self.positions, *partition);
            average(w, read_through).output(&self.fields.key)
        }));
        self.commits.closed(&self.op);
        metrics::gauge!(telemetry::OPEN_WINDOWS.name).set(self.op.open_windows() as f64);
        let now = (self.clock)();
        for (partition, watermark) in self.op.watermarks() {
            metrics::gauge!(telemetry::WATERMARK_LAG.name, "partition" => partition.to_string())
                .set(now.saturating_sub(watermark) as f64);
        }
    }

    /// Positions safe to commit (see [`Commits::positions`]).
    pub fn commit_positions(&self) -> HashMap<i32, i64> {
        self.commits.positions(&self.positions)
    }

    /// Windows emitted by earlier runs (see [`super::restore`]), applying to the records
    /// of `partitions` below the given offsets (what existed when we took them over).
    pub fn restore_emitted(
        &mut self,
        emitted: &HashMap<String, i64>,
        reread_until: HashMap<i32, i64>,
    ) {
        let partitions: Vec<i32> = reread_until.keys().copied().collect();
        self.op.restore_emitted(emitted, &partitions);
        self.positions.taking_over(reread_until);
    }

    /// Drop the state of partitions revoked from this instance. One assigned again is
    /// taken over afresh: re-read from the committed position, emitted windows restored.
    pub fn forget(&mut self, revoked: &[i32]) {
        for p in revoked {
            if self.positions.forget(*p) {
                tracing::info!(
                    partition = p,
                    "window stage: partition revoked, dropping its state"
                );
            }
            self.commits.forget(*p);
            self.op.forget(*p);
        }
    }

    /// Of `assigned`, the partitions this stage did not own until now.
    pub fn taken_over(&self, assigned: &[i32]) -> Vec<i32> {
        self.positions.taken_over(assigned)
    }

    /// The partitions of the validate stage's input: each one's records get a lane of
    /// their own in every partition assigned from now on.
    pub fn set_sources(&mut self, sources: Vec<i32>) {
        self.sources = sources;
    }

    /// Lanes that have been quiet for `idle` and would now stop holding the watermark
    /// back: the caller asks which of their partitions and sources still have a backlog.
    pub fn idle_candidates(&self, now: Instant, idle: Duration) -> Vec<Lane> {
        self.op.quiet_lanes(now, idle)
    }

    /// Follow the consumer's assignment: drop the state of partitions this instance no
    /// longer owns (their new owner re-reads them from the committed position), and let
    /// lanes quiet for `idle` stop holding the watermark back, unless their partition is
    /// one of `progress.partitions` (records left to read here) or, for a lane that has
    /// brought data, their source is one of `progress.sources` (a backlog the validate
    /// stage has yet to read): slow, not idle; their idle clock restarts. A lane that
    /// never brought data is not held by its source: nothing says the backlog has
    /// records for it (a partition no country hashes to would otherwise hold the
    /// watermark for a whole catch-up).
    pub fn sync_partitions(
        &mut self,
        assigned: &[i32],
        now: Instant,
        idle: Duration,
        progress: &Progress,
    ) {
        let revoked = self.positions.revoked(assigned);
        self.forget(&revoked);
        self.positions.own(assigned);
        self.op.assign(assigned, &self.sources);
        // A new lane's idle clock starts when it appears.
        self.op.start_clocks(now);
        self.op.idle_quiet_lanes(now, idle, |lane, has_data| {
            progress.partitions.contains(&lane.partition)
                || (has_data && lane.source.is_some_and(|s| progress.sources.contains(&s)))
        });
    }
}

fn average(w: &ClosedWindow, read_through: Option<(i32, i64)>) -> Average<'_> {
    Average {
        key: &w.key,
        start: w.start,
        end: w.end,
        average: w.average,
        count: w.count,
        read_through,
    }
}

impl WindowStage {
    /// Taken-over partitions are re-read from their committed position: learn first
    /// which windows were already emitted (by us before a crash, or by the previous
    /// owner), so they are neither recounted nor re-emitted. Without that answer the
    /// stage does not count on: it stops, and the next run takes the partitions over
    /// again.
    async fn restore_taken_over(
        &mut self,
        source: &impl Source,
        assigned: &[i32],
    ) -> Result<(), RestoreError> {
        let taken_over = self.taken_over(assigned);
        let Some(restore) = &self.restore else {
            return Ok(());
        };
        if taken_over.is_empty() {
            return Ok(());
        }
        let ends = source.high_watermarks(&taken_over);
        let emitted = restore.emitted(&self.fields.key).await?;
        tracing::info!(partitions = ?taken_over, keys = emitted.latest.len(), "window stage: restored emitted windows");
        let reread_until = emitted.reread_until(ends);
        self.restore_emitted(&emitted.latest, reread_until);
        Ok(())
    }
}

impl Stage for WindowStage {
    fn name(&self) -> StageName {
        StageName::Window
    }

    fn idle_wait(&self) -> Duration {
        self.idle
    }

    /// One batch at a time: its positions depend on the windows it leaves open.
    fn in_flight(&self) -> usize {
        1
    }

    /// Per-partition state: a partition read by another owner meanwhile is stale.
    fn revoked(&mut self, revoked: &[i32]) -> bool {
        self.forget(revoked);
        true
    }

    async fn process(
        &mut self,
        batch: &[SourceRecord],
        source: &impl Source,
        assigned: &[i32],
        now: Instant,
    ) -> Result<Processed, StageError> {
        metrics::counter!(telemetry::WINDOW_RECORDS.name).increment(batch.len() as u64);
        match self.restore_taken_over(source, assigned).await {
            // Stopping: nothing of this batch is counted or committed.
            Err(RestoreError::Stopped { .. }) => return Ok(Processed::default()),
            other => other?,
        }
        let candidates = self.idle_candidates(now, self.idle);
        let progress = match self.progress.as_mut() {
            Some(broker) => broker.when_quiet(source, assigned, batch.is_empty(), &candidates),
            None => Progress::default(),
        };
        if !progress.is_empty() {
            tracing::debug!(partitions = ?progress.partitions, sources = ?progress.sources, "window stage: quiet lanes still have a backlog, they keep holding the watermark");
        }
        self.sync_partitions(assigned, now, self.idle, &progress);
        let outputs = if batch.is_empty() {
            // Records still to come (a rebalance's pause, or a source partition waiting
            // for a new owner) are not idleness: those partitions keep their event time.
            let holding = if progress.sources.is_empty() {
                progress.partitions
            } else {
                assigned.to_vec()
            };
            self.idle((self.clock)(), &holding)
        } else {
            self.count_at(batch, now)
        };
        Ok(Processed {
            outputs,
            commit: self.commit_positions(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Destination;

    const SPEC: WindowSpec = WindowSpec {
        size: 60,
        advance: 60,
        grace: 0,
    };

    fn rec(partition: i32, offset: i64, country: &str, t: i64) -> SourceRecord {
        SourceRecord {
            partition,
            offset,
            timestamp_ms: 0,
            payload: format!(r#"{{"country":"{country}","timestamp":{t},"user_id":1}}"#)
                .into_bytes(),
        }
    }

    /// The average records among `outputs`, parsed.
    fn averages(outputs: &[Output]) -> Vec<serde_json::Value> {
        outputs
            .iter()
            .filter(|o| o.destination == Destination::Averages)
            .map(|o| serde_json::from_slice(&o.payload).unwrap())
            .collect()
    }

    fn counts(outputs: &[Output]) -> Vec<(String, u64)> {
        averages(outputs)
            .iter()
            .map(|v| {
                (
                    v["window_start"].as_str().unwrap().to_string(),
                    v["event_count"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn commits_no_further_than_the_oldest_open_window_needs() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.count(&[
            rec(0, 10, "US", 5),
            rec(0, 11, "US", 61),
            rec(1, 4, "DE", 70),
        ]);
        // window [0,60) on p0 is closed? watermark = min(61, 70) = 61 >= 60: yes, emitted.
        // Open: [60,120) with first offsets p0:11, p1:4.
        let pos = stage.commit_positions();
        assert_eq!(pos[&0], 11);
        assert_eq!(pos[&1], 4);
        stage.count(&[rec(0, 12, "US", 200), rec(1, 5, "DE", 200)]);
        let pos = stage.commit_positions();
        assert_eq!(pos[&0], 12, "only the window of offset 12 is still open");
        let out = stage.idle(10_000, &[]);
        assert_eq!(counts(&out).len(), 2);
        let pos = stage.commit_positions();
        assert_eq!(
            (pos[&0], pos[&1]),
            (13, 6),
            "nothing open: past the last record"
        );
    }

    fn read_through(outputs: &[Output]) -> Vec<(i64, i64)> {
        averages(outputs)
            .iter()
            .map(|v| {
                (
                    v["enriched_partition"].as_i64().unwrap(),
                    v["enriched_read_through"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_window_says_how_far_it_read_short_of_a_late_record_in_flight() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        // [0,60) closes on t=61 (offset 11); offset 12 (t=5) is then late, and goes to
        // the DLQ in the same batch as the window.
        let out = stage.count(&[
            rec(0, 10, "US", 5),
            rec(0, 11, "US", 61),
            rec(0, 12, "US", 5),
        ]);
        assert!(out.iter().any(|o| o.destination == Destination::Dlq));
        assert_eq!(read_through(&out), vec![(0, 11)]);
        // Without a late record, the window says it read the whole batch.
        let out = stage.count(&[rec(0, 13, "US", 130), rec(0, 14, "US", 131)]);
        assert_eq!(read_through(&out), vec![(0, 14)]);
    }

    #[test]
    fn after_a_takeover_a_record_no_earlier_owner_read_is_judged_not_skipped() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        // [0,60) of US was emitted by an owner that read partition 0 through offset 11;
        // the partition ends at 20 now. Offset 11 is a re-read; offset 15 was never read.
        let emitted = HashMap::from([("US".to_string(), 0)]);
        stage.restore_emitted(&emitted, HashMap::from([(0, 12)]));
        let out = stage.count(&[rec(0, 11, "US", 5), rec(0, 15, "US", 6)]);
        let dlq: Vec<&Output> = out
            .iter()
            .filter(|o| o.destination == Destination::Dlq)
            .collect();
        assert_eq!(
            dlq.len(),
            1,
            "offset 15 is late, offset 11 a re-read: {out:?}"
        );
        assert!(String::from_utf8_lossy(&dlq[0].payload).contains("\"source_offset\":15"));
    }

    #[test]
    fn emits_averages_with_the_briefs_fields_keyed_for_upserts() {
        let mut stage = WindowStage::new(
            WindowSpec {
                size: 300,
                advance: 60,
                grace: 30,
            },
            "enriched_events",
            WindowFields::default(),
        );
        let batch: Vec<SourceRecord> = (0..10)
            .map(|i| rec(0, i, "JP", 1_700_000_000 + i))
            .collect();
        stage.count(&batch);
        let out = stage.idle(1_800_000_000, &[]);
        assert_eq!(out.len(), 5, "one event time, five hopping windows");
        let v: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(v["country"], "JP");
        assert_eq!(v["event_count"], 10);
        assert_eq!(v["average_events"], 2.0);
        assert_eq!(v["window_start"], "2023-11-14 22:09:00");
        assert_eq!(v["window_end"], "2023-11-14 22:14:00");
        assert_eq!(out[0].key, "JP|2023-11-14 22:09:00");
    }

    /// A crash: run 1 counts and emits part of the stream and commits; run 2 starts from
    /// the committed position. With the emitted windows restored, the last value per
    /// window (what ClickHouse keeps) equals one uninterrupted run; without, it does not.
    #[test]
    fn a_restart_from_the_committed_position_re_emits_nothing_wrong() {
        let spec = WindowSpec {
            size: 300,
            advance: 60,
            grace: 0,
        };
        let records: Vec<SourceRecord> = (0..600).map(|i| rec(0, i, "US", 1_000 + i * 2)).collect();

        let mut clean = WindowStage::new(spec, "enriched_events", WindowFields::default());
        let mut want = counts(&clean.count(&records));
        want.extend(counts(&clean.idle(10_000, &[])));
        let want: HashMap<String, u64> = want.into_iter().collect();

        for restore in [true, false] {
            let mut run1 = WindowStage::new(spec, "enriched_events", WindowFields::default());
            let emitted1 = run1.count(&records[..400]);
            let committed = run1.commit_positions()[&0];
            assert!(committed < 400, "open windows keep the commit back");
            let mut last: HashMap<String, u64> = counts(&emitted1).into_iter().collect();
            let mut run2 = WindowStage::new(spec, "enriched_events", WindowFields::default());
            if restore {
                let mut through: HashMap<String, i64> = HashMap::new();
                for o in &emitted1 {
                    let v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
                    let start = crate::timefmt::parse(v["window_start"].as_str().unwrap()).unwrap();
                    let slot = through.entry("US".into()).or_insert(start);
                    *slot = (*slot).max(start);
                }
                run2.restore_emitted(&through, HashMap::from([(0, 400)]));
            }
            last.extend(counts(&run2.count(&records[committed as usize..])));
            last.extend(counts(&run2.idle(10_000, &[])));
            if restore {
                assert_eq!(last, want, "restored: identical to an uninterrupted run");
            } else {
                assert_ne!(
                    last, want,
                    "without the restore, partial windows overwrite good ones"
                );
            }
        }
    }

    #[test]
    fn events_the_validate_stage_wrote_twice_count_once() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        let with_source = |offset: i64, q: i32, o: i64| SourceRecord {
            partition: 0,
            offset,
            timestamp_ms: 0,
            payload: format!(
                r#"{{"country":"US","timestamp":5,"source_partition":{q},"source_offset":{o}}}"#
            )
            .into_bytes(),
        };
        // Source offsets 10, 11 (q=0), 7 (q=1); then the validate stage replays 10, 11.
        stage.count(&[
            with_source(1, 0, 10),
            with_source(2, 0, 11),
            with_source(3, 1, 7),
        ]);
        stage.count(&[
            with_source(4, 0, 10),
            with_source(5, 0, 11),
            with_source(6, 0, 12),
        ]);
        assert_eq!(
            counts(&stage.idle(1_000, &[])),
            vec![("1970-01-01 00:00:00".to_string(), 4)]
        );
    }

    #[test]
    fn replayed_records_do_not_count_twice() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.count(&[rec(0, 1, "US", 5), rec(0, 2, "US", 6)]);
        stage.count(&[rec(0, 1, "US", 5), rec(0, 2, "US", 6), rec(0, 3, "US", 7)]);
        assert_eq!(
            counts(&stage.idle(1_000, &[])),
            vec![("1970-01-01 00:00:00".to_string(), 3)]
        );
    }

    /// Found by bench/e2e: on a backlog, a partition the consumer serves slowly went
    /// quiet for the idle timeout and stopped holding the watermark; its events, still
    /// unread, were then judged late (a third of a 1M-event catch-up).
    #[test]
    fn a_quiet_lane_of_a_partition_with_a_backlog_keeps_holding_its_watermark() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.set_sources(vec![0, 1]);
        let start = Instant::now();
        stage.sync_partitions(&[0], start, Duration::from_secs(60), &Progress::default());
        let from = |offset: i64, source: i32, country: &str, t: i64| {
            SourceRecord {
            partition: 0,
            offset,
            timestamp_ms: 0,
            payload: format!(
                r#"{{"country":"{country}","timestamp":{t},"source_partition":{source},"source_offset":{offset}}}"#
            )
            .into_bytes(),
        }
        };
        stage.count(&[from(1, 0, "US", 5), from(2, 1, "DE", 5)]);
        let later = Instant::now() + Duration::from_secs(120);
        assert_eq!(
            stage.idle_candidates(later, Duration::from_secs(60)).len(),
            2
        );
        // Both lanes are quiet, but the partition has records left to read.
        stage.sync_partitions(
            &[0],
            later,
            Duration::from_secs(60),
            &Progress {
                partitions: vec![0],
                ..Progress::default()
            },
        );
        assert!(stage.count(&[from(3, 0, "US", 5_000)]).is_empty());
        let out = stage.count(&[from(4, 1, "DE", 1_900)]);
        assert!(
            out.iter().all(|o| o.destination != Destination::Dlq),
            "DE's event was judged late"
        );
        // Without a backlog the quiet lane is idle: the watermark follows source 0.
        let much_later = later + Duration::from_secs(120);
        stage.sync_partitions(
            &[0],
            much_later,
            Duration::from_secs(60),
            &Progress::default(),
        );
        let late = stage.count(&[from(5, 0, "US", 10_000), from(6, 1, "DE", 2_000)]);
        assert!(
            late.iter().any(|o| o.destination == Destination::Dlq),
            "an idle lane must not hold the watermark"
        );
    }

    /// Found by the failover test: after a takeover, the consumer delivered nothing for
    /// longer than the idle timeout (the rebalance's pause) while the partition had a
    /// backlog; event time jumped to the wall clock and the backlog was judged late.
    #[test]
    fn a_partition_with_records_to_come_keeps_its_event_time_when_input_pauses() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.count(&[rec(0, 1, "US", 10), rec(1, 1, "DE", 10)]);
        let out = stage.idle(1_000_000, &[0]);
        assert_eq!(counts(&out).len(), 1, "only partition 1's window closes");
        let out = stage.count(&[rec(0, 2, "US", 20)]);
        assert!(out.iter().all(|o| o.destination != Destination::Dlq));
        assert_eq!(
            counts(&stage.idle(1_000_000, &[])),
            [("1970-01-01 00:00:00".to_string(), 2)]
        );
    }

    /// Found by the failover test: a survivor that takes over a crashed instance's
    /// partition had already advanced its own partitions' event time, and judged the
    /// taken-over partition's open windows late (12,689 of 30,000 events). Each
    /// partition keeps its own event time.
    #[test]
    fn a_partition_taken_over_is_not_judged_by_the_others_clock() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        let now = Instant::now();
        stage.sync_partitions(&[0], now, Duration::from_secs(60), &Progress::default());
        stage.count(&[rec(0, 1, "US", 10), rec(0, 2, "US", 5_000)]);
        stage.sync_partitions(&[0, 1], now, Duration::from_secs(60), &Progress::default());
        let out = stage.count(&[rec(1, 7, "DE", 100), rec(1, 8, "DE", 110)]);
        assert!(
            out.iter().all(|o| o.destination != Destination::Dlq),
            "the taken-over partition's events were judged late"
        );
        let out = stage.idle(10_000, &[]);
        assert!(counts(&out).contains(&("1970-01-01 00:01:00".to_string(), 2)));
    }

    /// Found by bench/e2e at 1M: the validate stage reads the source partitions at
    /// different speeds, so within one enriched partition one source ran minutes ahead
    /// of another, and 14-29 % of a catch-up was judged late. Each source is a lane.
    #[test]
    fn a_source_partition_behind_the_others_is_not_judged_late() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.set_sources(vec![0, 1, 2]);
        stage.sync_partitions(
            &[0],
            Instant::now(),
            Duration::from_secs(60),
            &Progress::default(),
        );
        let from = |offset: i64, source: i32, t: i64| {
            SourceRecord {
            partition: 0,
            offset,
            timestamp_ms: 0,
            payload: format!(
                r#"{{"country":"US","timestamp":{t},"source_partition":{source},"source_offset":{offset}}}"#
            )
            .into_bytes(),
        }
        };
        // Source 0 is read far ahead; source 1 has delivered only its beginning.
        assert!(stage.count(&[from(1, 1, 5), from(2, 0, 5_000)]).is_empty());
        // Source 1 is quiet for the idle timeout but the validate stage has not caught
        // up on it: slow, not idle. Source 2 has a backlog too but never brought
        // anything to this partition: it does not hold the watermark.
        let later = Instant::now() + Duration::from_secs(120);
        stage.sync_partitions(
            &[0],
            later,
            Duration::from_secs(60),
            &Progress {
                sources: vec![1, 2],
                ..Progress::default()
            },
        );
        let out = stage.count(&[from(3, 1, 1_900)]);
        assert!(
            out.iter().all(|o| o.destination != Destination::Dlq),
            "source 1's event was judged late"
        );
        assert!(
            !counts(&out).is_empty(),
            "the watermark follows source 1 (source 2 must not hold it): {out:?}"
        );
        // Caught up and still quiet: idle, the watermark follows source 0.
        let much_later = later + Duration::from_secs(120);
        stage.sync_partitions(
            &[0],
            much_later,
            Duration::from_secs(60),
            &Progress::default(),
        );
        let closed = counts(&stage.count(&[from(4, 0, 10_000)]));
        assert!(
            closed
                .iter()
                .any(|(start, _)| start == "1970-01-01 00:31:00"),
            "the window of the event at 1900 s closes once source 1 is idle: {closed:?}"
        );
    }

    /// Found by bench/tradeoff: after a pause, the first partition of a backlog to
    /// deliver moved the watermark past the other partitions' (older) events.
    #[test]
    fn a_backlog_after_a_pause_is_not_judged_late_partition_by_partition() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.count(&[rec(0, 1, "US", 5), rec(1, 1, "DE", 5)]);
        let later = Instant::now() + Duration::from_secs(120);
        stage.sync_partitions(
            &[0, 1],
            later,
            Duration::from_secs(60),
            &Progress::default(),
        );
        assert_eq!(counts(&stage.idle(1_000, &[])).len(), 2);
        // The backlog: partition 0 delivers far ahead first, then partition 1.
        assert!(stage.count(&[rec(0, 2, "US", 5_000)]).is_empty());
        let out = stage.count(&[rec(1, 2, "DE", 1_900)]);
        assert!(
            out.iter().all(|o| o.destination != Destination::Dlq),
            "DE's event was judged late"
        );
        let closed = counts(&stage.idle(1_000_000, &[]));
        assert_eq!(
            closed.len(),
            2,
            "one window each for the US and the DE event: {closed:?}"
        );
    }

    /// Records on the enriched topic may come from anywhere: times outside the schema's
    /// range, or ahead of the clock by more than the bound, go to the DLQ and move
    /// nothing (i64::MAX used to make the window starts wrap and loop forever).
    #[test]
    fn event_times_out_of_range_or_from_the_future_go_to_the_dlq() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default())
            .max_future_secs(30)
            .with_clock(|| 10_000);
        let out = stage.count(&[
            rec(0, 1, "US", i64::MAX),
            rec(0, 2, "US", i64::MIN),
            rec(0, 3, "US", -1),
            rec(0, 4, "US", MAX_TIMESTAMP + 1),
            rec(0, 5, "US", 10_031),
            rec(0, 6, "US", 9_990),
            rec(0, 7, "US", 10_030),
        ]);
        let codes: Vec<(i64, String, String)> = out
            .iter()
            .filter(|o| o.destination == Destination::Dlq)
            .map(|o| {
                let v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
                (
                    v["source_offset"].as_i64().unwrap(),
                    v["code"].as_str().unwrap().to_string(),
                    v["stage"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expect = |o: i64, code: &str| (o, code.to_string(), "window".to_string());
        assert_eq!(
            codes,
            [
                expect(1, "out_of_range"),
                expect(2, "out_of_range"),
                expect(3, "out_of_range"),
                expect(4, "out_of_range"),
                expect(5, "future_event"),
            ]
        );
        // The refused records moved nothing: the others count, and close when idle.
        assert_eq!(stage.op.watermark(0), 10_030);
        let mut closed = counts(&out);
        closed.extend(counts(&stage.idle(20_000, &[])));
        assert_eq!(
            closed,
            [
                ("1970-01-01 02:46:00".to_string(), 1),
                ("1970-01-01 02:47:00".to_string(), 1)
            ]
        );
    }

    #[test]
    fn a_revoked_partition_drops_its_windows_and_a_late_event_goes_to_the_dlq() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.count(&[rec(0, 1, "US", 5), rec(1, 1, "DE", 5)]);
        stage.sync_partitions(
            &[1],
            Instant::now(),
            Duration::from_secs(60),
            &Progress::default(),
        );
        let out = stage.idle(1_000, &[]);
        assert_eq!(counts(&out).len(), 1, "only DE's window is still ours");
        let late = stage.count(&[rec(1, 2, "DE", 5)]);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].destination, Destination::Dlq);
        let v: serde_json::Value = serde_json::from_slice(&late[0].payload).unwrap();
        assert_eq!(v["code"], HostCode::LateEvent.as_str());
        assert_eq!(v["stage"], "window");
    }
}
