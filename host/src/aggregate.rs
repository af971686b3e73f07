//! The window stage: `enriched_events` (keyed by country, so each country's events sit in
//! one partition and its windows on one instance) → [`PartitionedWindows`] →
//! `country_event_averages`, late events → `dlq`.
//!
//! Input positions are committed no further than the oldest event still in an open
//! window, so a restart re-reads everything an open window needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::Config;
use crate::liveness::{Health, StageName, Watchdog, WatchdogConfig};
use crate::pipeline::PipelineError;
use crate::restore;
use crate::route::{self, Destination, Output, Stage};
use crate::sink::Sink;
use crate::source::{GroupLag, Source, SourceRecord};
use crate::timefmt;
use crate::window::{ClosedWindow, Lane, Observed, PartitionedWindows, WindowSpec};

/// Code for events whose windows had all closed when they arrived.
pub const LATE_EVENT: &str = "late_event";

/// Which fields of an enriched event the window stage reads: the key windows are kept
/// per, and the event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFields {
    pub key: String,
    pub time: String,
}

impl Default for WindowFields {
    /// The brief's: windows per `country` on `timestamp`.
    fn default() -> Self {
        Self {
            key: "country".into(),
            time: "timestamp".into(),
        }
    }
}

/// What the window stage needs of an enriched event.
struct Keyed {
    key: String,
    time: i64,
    /// Where the validate stage read the event: its identity.
    source_partition: Option<i32>,
    source_offset: Option<i64>,
}

impl WindowFields {
    /// Read the key, the time and the source position; skip everything else.
    fn read(&self, payload: &[u8]) -> Result<Keyed, String> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let found = serde::de::DeserializeSeed::deserialize(KeyedSeed(self), &mut de)
            .and_then(|k| de.end().map(|()| k))
            .map_err(|e| e.to_string())?;
        let (Some(key), Some(time)) = (found.0, found.1) else {
            return Err(format!(
                "the event lacks `{}` or `{}` (a string or integer, and an integer)",
                self.key, self.time
            ));
        };
        Ok(Keyed {
            key,
            time,
            source_partition: found.2,
            source_offset: found.3,
        })
    }
}

struct KeyedSeed<'f>(&'f WindowFields);

type Found = (Option<String>, Option<i64>, Option<i32>, Option<i64>);

impl<'de> serde::de::DeserializeSeed<'de> for KeyedSeed<'_> {
    type Value = Found;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyedSeed<'_> {
    type Value = Found;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an enriched event object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found: Found = (None, None, None, None);
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == self.0.key {
                found.0 = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
            } else if name == self.0.time {
                found.1 = map.next_value()?;
            } else if name == "source_partition" {
                found.2 = map.next_value()?;
            } else if name == "source_offset" {
                found.3 = map.next_value()?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The windowing state of one instance plus the bookkeeping for safe commits.
#[derive(Debug)]
pub struct WindowStage {
    op: PartitionedWindows,
    /// Per partition: window start → lowest offset counted in it (open windows only).
    first_offset: HashMap<i32, BTreeMap<i64, i64>>,
    last_offset: HashMap<i32, i64>,
    /// The partitions this stage owns (to tell which ones it is taking over).
    owned: HashSet<i32>,
    /// When each lane (partition, source partition) last delivered a record.
    lanes: HashMap<Lane, Instant>,
    /// The partitions of the validate stage's input, whose lanes hold the frontier.
    sources: Vec<i32>,
    /// Per partition taken over, the end offset at that moment (see `process`).
    replay_until: HashMap<i32, i64>,
    /// Per (enriched partition, source partition): the highest source offset counted.
    source_high: HashMap<(i32, i32), i64>,
    /// No input arrived for the idle timeout; the next batch wakes every partition.
    quiet: bool,
    source_topic: String,
    fields: WindowFields,
}

impl WindowStage {
    pub fn new(spec: WindowSpec, source_topic: &str, fields: WindowFields) -> Self {
        Self {
            fields,
            op: PartitionedWindows::new(spec),
            first_offset: HashMap::new(),
            last_offset: HashMap::new(),
            owned: HashSet::new(),
            lanes: HashMap::new(),
            sources: Vec::new(),
            replay_until: HashMap::new(),
            source_high: HashMap::new(),
            quiet: false,
            source_topic: source_topic.to_string(),
        }
    }

    /// Count a batch; returns the records to produce (closed windows, late events).
    pub fn process(&mut self, batch: &[SourceRecord]) -> Vec<Output> {
        let mut outputs = Vec::new();
        let now = Instant::now();
        if self.quiet && !batch.is_empty() {
            // A backlog after a pause arrives one partition at a time: the quiet ones
            // must hold the frontier again (their idle clocks restart now).
            self.quiet = false;
            self.op.wake();
            for seen in self.lanes.values_mut() {
                *seen = now;
            }
        }
        for record in batch {
            // After a rebalance that gave the partition back to us, the consumer restarts
            // from the committed position: records we already counted must not count twice.
            if self
                .last_offset
                .get(&record.partition)
                .is_some_and(|last| record.offset <= *last)
            {
                metrics::counter!("streamhost_window_replayed_skipped_total").increment(1);
                continue;
            }
            self.last_offset.insert(record.partition, record.offset);
            let keyed: Keyed = match self.fields.read(&record.payload) {
                Ok(k) => k,
                Err(e) => {
                    // Only this host writes enriched_events; anything else there is reported.
                    outputs.push(route::dlq(
                        record,
                        &self.source_topic,
                        Stage::Window,
                        "host",
                        "unreadable_enriched_event",
                        &e.to_string(),
                    ));
                    continue;
                }
            };
            // The validate stage delivers at least once: after its crash, events it had
            // already written come again, each source partition's in order. Count each
            // source position once.
            if let (Some(q), Some(o)) = (keyed.source_partition, keyed.source_offset) {
                let high = self.source_high.entry((record.partition, q)).or_insert(-1);
                if o <= *high {
                    metrics::counter!("streamhost_window_duplicates_skipped_total").increment(1);
                    continue;
                }
                *high = o;
            }
            // Records that existed before this instance took the partition over may be
            // re-reads of windows already emitted; records after that are judged as usual.
            let replay = self
                .replay_until
                .get(&record.partition)
                .is_some_and(|until| record.offset < *until);
            let lane = Lane {
                partition: record.partition,
                source: keyed.source_partition,
            };
            self.lanes.insert(lane, now);
            match self.op.observe(lane, &keyed.key, keyed.time, replay) {
                Observed::Late => {
                    metrics::counter!("streamhost_late_events_total").increment(1);
                    let message = format!(
                        "event time {} is behind the window frontier {} by more than the grace period; all its windows had closed",
                        timefmt::datetime(keyed.time),
                        timefmt::datetime(self.op.frontier(record.partition))
                    );
                    outputs.push(route::dlq(
                        record,
                        &self.source_topic,
                        Stage::Window,
                        "host",
                        LATE_EVENT,
                        &message,
                    ));
                }
                Observed::Replayed => {
                    metrics::counter!("streamhost_window_replayed_skipped_total").increment(1);
                }
                Observed::Counted(_) => {
                    let firsts = self.first_offset.entry(record.partition).or_default();
                    for start in self.op.spec().starts(keyed.time) {
                        firsts.entry(start).or_insert(record.offset);
                    }
                }
            }
        }
        self.drain_closed(&mut outputs);
        outputs
    }

    /// No input for a while: let event time follow the wall clock so windows close,
    /// except on the `holding` partitions, which still have records to come.
    pub fn idle(&mut self, now_secs: i64, holding: &[i32]) -> Vec<Output> {
        self.quiet = true;
        self.op.on_idle(now_secs, holding);
        let mut outputs = Vec::new();
        self.drain_closed(&mut outputs);
        outputs
    }

    fn drain_closed(&mut self, outputs: &mut Vec<Output>) {
        let closed = self.op.take_closed();
        for (partition, w) in &closed {
            tracing::debug!(partition, country = %w.key, start = w.start, count = w.count, frontier = self.op.frontier(*partition), "window closed");
        }
        metrics::counter!("streamhost_windows_closed_total").increment(closed.len() as u64);
        outputs.extend(
            closed
                .iter()
                .map(|(_, w)| average_record(w, &self.fields.key)),
        );
        let spec = self.op.spec();
        for (partition, firsts) in self.first_offset.iter_mut() {
            let frontier = self.op.frontier(*partition);
            firsts.retain(|start, _| start + spec.size + spec.grace > frontier);
        }
        metrics::gauge!("streamhost_open_windows").set(self.op.open_windows() as f64);
    }

    /// Positions safe to commit: the oldest offset an open window still needs, or past
    /// the last record read when no open window needs anything.
    pub fn commit_positions(&self) -> HashMap<i32, i64> {
        self.last_offset
            .iter()
            .map(|(p, last)| {
                let needed = self
                    .first_offset
                    .get(p)
                    .and_then(|f| f.values().min().copied());
                (*p, needed.unwrap_or(last + 1).min(last + 1))
            })
            .collect()
    }

    /// Windows emitted by earlier runs (see [`crate::restore`]), applying to the records
    /// of `partitions` below the given offsets (what existed when we took them over).
    pub fn restore_emitted(
        &mut self,
        emitted: &HashMap<String, i64>,
        replay_until: HashMap<i32, i64>,
    ) {
        let partitions: Vec<i32> = replay_until.keys().copied().collect();
        self.op.restore_emitted(emitted, &partitions);
        self.replay_until.extend(replay_until);
    }

    /// Drop the state of partitions revoked from this instance. One assigned again is
    /// taken over afresh: re-read from the committed position, emitted windows restored.
    pub fn forget(&mut self, revoked: &[i32]) {
        for p in revoked {
            if self.owned.remove(p) || self.last_offset.contains_key(p) {
                tracing::info!(
                    partition = p,
                    "window stage: partition revoked, dropping its state"
                );
            }
            self.last_offset.remove(p);
            self.first_offset.remove(p);
            self.source_high.retain(|(enriched, _), _| enriched != p);
            self.replay_until.remove(p);
            self.op.forget(*p);
        }
    }

    /// Of `assigned`, the partitions this stage did not own until now.
    pub fn taken_over(&self, assigned: &[i32]) -> Vec<i32> {
        assigned
            .iter()
            .filter(|p| !self.owned.contains(p))
            .copied()
            .collect()
    }

    /// The partitions of the validate stage's input: each one's records get a lane of
    /// their own in every partition assigned from now on.
    pub fn set_sources(&mut self, sources: Vec<i32>) {
        self.sources = sources;
    }

    /// Lanes that have been quiet for `idle` and would now stop holding the frontier
    /// back: the caller asks which of their partitions and sources still have a backlog.
    pub fn idle_candidates(&self, now: Instant, idle: Duration) -> Vec<Lane> {
        self.lanes
            .iter()
            .filter(|(lane, last)| now.duration_since(**last) >= idle && !self.op.is_idle(**lane))
            .map(|(lane, _)| *lane)
            .collect()
    }

    /// Follow the consumer's assignment: drop the state of partitions this instance no
    /// longer owns (their new owner re-reads them from the committed position), and let
    /// lanes quiet for `idle` stop holding the frontier back, unless their partition is
    /// `pending` (records left to read here) or, for a lane that has brought data, their
    /// source is in `pending_sources` (a backlog the validate stage has yet to read):
    /// slow, not idle; their idle clock restarts. A lane that never brought data is not
    /// held by its source: nothing says the backlog has records for it (a partition no
    /// country hashes to would otherwise hold the frontier for a whole catch-up).
    pub fn sync_partitions(
        &mut self,
        assigned: &[i32],
        now: Instant,
        idle: Duration,
        pending: &[i32],
        pending_sources: &[i32],
    ) {
        let revoked: Vec<i32> = self
            .last_offset
            .keys()
            .filter(|p| !assigned.contains(p))
            .copied()
            .collect();
        self.forget(&revoked);
        self.owned.retain(|p| assigned.contains(p));
        self.lanes
            .retain(|lane, _| assigned.contains(&lane.partition));
        self.owned.extend(assigned);
        self.op.assign(assigned, &self.sources);
        // A new lane's idle clock starts when it appears.
        for lane in self.op.lanes() {
            self.lanes.entry(lane).or_insert(now);
        }
        for (lane, last) in &mut self.lanes {
            let slow = pending.contains(&lane.partition)
                || (lane.source.is_some_and(|s| pending_sources.contains(&s))
                    && self.op.has_data(*lane));
            if slow {
                *last = now;
            } else if now.duration_since(*last) >= idle {
                self.op.mark_idle(*lane);
            }
        }
    }
}

/// `country_event_averages` record, keyed by (country, window_start): a re-emission
/// after a restart replaces the same row downstream.
pub fn average_record(w: &ClosedWindow, key_field: &str) -> Output {
    let start = timefmt::datetime(w.start);
    let payload = serde_json::json!({
        key_field: w.key,
        "window_start": start,
        "window_end": timefmt::datetime(w.end),
        "average_events": w.average,
        "event_count": w.count,
    });
    Output {
        destination: Destination::Averages,
        key: format!("{}|{}", w.key, start),
        payload: payload.to_string().into_bytes(),
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Run the window stage until `stop` turns true.
pub async fn run(
    config: &Config,
    fields: WindowFields,
    sink: &Sink,
    health: &Health,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let w = &config.windows;
    let spec = WindowSpec {
        size: w.size_secs,
        advance: w.advance_secs,
        grace: w.grace_secs,
    };
    let mut source = Source::new(
        &config.kafka.brokers,
        &config.kafka.window_group_id,
        &config.kafka.enriched_topic,
    )?;
    let watchdog = Watchdog::start(
        WatchdogConfig {
            stage: StageName::Window,
            brokers: config.kafka.brokers.clone(),
            group_id: config.kafka.window_group_id.clone(),
            topic: config.kafka.enriched_topic.clone(),
            stall_timeout: config.stall_timeout(),
            longest_turn: Duration::from_secs(w.idle_timeout_secs.max(1)),
        },
        health.clone(),
    )?;
    let mut stage = WindowStage::new(spec, &config.kafka.enriched_topic, fields);
    // The validate stage's progress on its input: a source partition it has yet to
    // catch up on is slow, not idle, and keeps holding the frontier.
    let mut input = GroupLag::new(
        &config.kafka.brokers,
        &config.kafka.group_id,
        &config.kafka.input_topic,
    )?;
    let round_trip = Duration::from_secs(2);
    // Less than this behind is a live stream's batches in flight, not a backlog: a lane
    // that stopped getting records must not be held by a source that is merely busy.
    let backlog = (config.pipeline.batch_size * config.pipeline.in_flight_batches) as i64;
    let sources = tokio::task::block_in_place(|| input.partitions(Duration::from_secs(10)));
    tracing::info!(topic = %config.kafka.input_topic, partitions = ?sources, "window stage: one lane per source partition");
    let all_sources = sources.clone();
    stage.set_sources(sources);
    let idle = Duration::from_secs(w.idle_timeout_secs.max(1));
    tracing::info!(
        size = spec.size,
        advance = spec.advance,
        grace = spec.grace,
        "window stage started"
    );
    loop {
        if *stop.borrow() {
            break;
        }
        // Outputs are sent and positions committed at the end of every turn, so a
        // rejoin here loses nothing; records re-read afterwards are skipped by offset.
        let orphans = watchdog.orphans(&source.assigned_partitions());
        if !orphans.is_empty() {
            watchdog.take_over(&mut source, &orphans)?;
            continue;
        }
        let mut batch = tokio::select! {
            batch = source.next_batch(config.pipeline.batch_size, config.batch_wait(), idle) => batch?,
            _ = stop.changed() => break,
        };
        let started = Instant::now();
        metrics::counter!("streamhost_window_records_total").increment(batch.len() as u64);
        let assigned = source.assigned_partitions();
        // Read by another owner meanwhile, even if ours again: their state is stale.
        let revoked = source.take_revoked();
        if !revoked.is_empty() {
            stage.forget(&revoked);
            // The batch may hold records of a revoked partition, read before the
            // revocation or after it was assigned again. Counting them would start the
            // partition's fresh state in the middle, and committing would skip what
            // lies before them: they are dropped, and a partition that is ours again
            // is read again from its committed position.
            let dropped: Vec<i32> = revoked
                .iter()
                .copied()
                .filter(|p| batch.iter().any(|r| r.partition == *p))
                .collect();
            batch.retain(|r| !revoked.contains(&r.partition));
            let again: Vec<i32> = dropped
                .into_iter()
                .filter(|p| assigned.contains(p))
                .collect();
            if !again.is_empty() {
                tokio::task::block_in_place(|| source.rewind(&again))?;
            }
        }
        metrics::gauge!("streamhost_assigned_partitions", "stage" => StageName::Window.as_str())
            .set(assigned.len() as f64);
        watchdog.turned(&assigned);
        let taken_over = stage.taken_over(&assigned);
        if !taken_over.is_empty() {
            // Taken-over partitions are re-read from their committed position: learn
            // first which windows were already emitted (by us before a crash, or by
            // the previous owner), so they are neither recounted nor re-emitted.
            let ends = source.high_watermarks(&taken_over, Duration::from_secs(10));
            let (brokers, topic, key_field) = (
                config.kafka.brokers.clone(),
                config.kafka.averages_topic.clone(),
                stage.fields.key.clone(),
            );
            let lookback = Duration::from_secs(w.restore_lookback_secs);
            let emitted = tokio::task::spawn_blocking(move || {
                restore::emitted_through(
                    &brokers,
                    &topic,
                    &key_field,
                    lookback,
                    Duration::from_secs(30),
                )
            })
            .await;
            match emitted {
                Ok(Ok(emitted)) => {
                    tracing::info!(partitions = ?taken_over, countries = emitted.len(), "window stage: restored emitted windows");
                    stage.restore_emitted(&emitted, ends);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "window stage: cannot restore emitted windows; closed windows may be re-emitted with partial counts")
                }
                Err(e) => tracing::error!(error = %e, "window stage: restore task failed"),
            }
        }
        let now = Instant::now();
        let candidates = stage.idle_candidates(now, idle);
        let (pending, pending_sources) = if batch.is_empty() {
            // About to let event time follow the wall clock: every partition and source
            // is asked (no input for `idle`, so rare).
            tokio::task::block_in_place(|| {
                (
                    source.pending(&assigned),
                    input.pending(&all_sources, backlog, round_trip),
                )
            })
        } else if candidates.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            // Blocking round trips to the broker, rare (a lane quiet for `idle`).
            let mut partitions: Vec<i32> = candidates.iter().map(|l| l.partition).collect();
            let mut sources: Vec<i32> = candidates.iter().filter_map(|l| l.source).collect();
            partitions.sort_unstable();
            partitions.dedup();
            sources.sort_unstable();
            sources.dedup();
            tokio::task::block_in_place(|| {
                (
                    source.pending(&partitions),
                    input.pending(&sources, backlog, round_trip),
                )
            })
        };
        if !pending.is_empty() || !pending_sources.is_empty() {
            tracing::debug!(partitions = ?pending, sources = ?pending_sources, "window stage: quiet lanes still have a backlog, they keep holding the frontier");
        }
        stage.sync_partitions(&assigned, now, idle, &pending, &pending_sources);
        let outputs = if batch.is_empty() {
            // Records still to come (a rebalance's pause, or a source partition waiting
            // for a new owner) are not idleness: those partitions keep their event time.
            let holding = if pending_sources.is_empty() {
                pending
            } else {
                assigned.clone()
            };
            stage.idle(now_secs(), &holding)
        } else {
            stage.process(&batch)
        };
        if !outputs.is_empty() {
            sink.send_all(outputs, &stop).await?;
        }
        source.commit_positions(&stage.commit_positions())?;
        if !batch.is_empty() {
            metrics::histogram!("streamhost_window_batch_seconds")
                .record(started.elapsed().as_secs_f64());
        }
    }
    tracing::info!("window stage stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn counts(outputs: &[Output]) -> Vec<(String, u64)> {
        outputs
            .iter()
            .filter(|o| o.destination == Destination::Averages)
            .map(|o| {
                let v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
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
        stage.process(&[
            rec(0, 10, "US", 5),
            rec(0, 11, "US", 61),
            rec(1, 4, "DE", 70),
        ]);
        // window [0,60) on p0 is closed? frontier = min(61, 70) = 61 >= 60: yes, emitted.
        // Open: [60,120) with first offsets p0:11, p1:4.
        let pos = stage.commit_positions();
        assert_eq!(pos[&0], 11);
        assert_eq!(pos[&1], 4);
        stage.process(&[rec(0, 12, "US", 200), rec(1, 5, "DE", 200)]);
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
        stage.process(&batch);
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
        let mut want = counts(&clean.process(&records));
        want.extend(counts(&clean.idle(10_000, &[])));
        let want: HashMap<String, u64> = want.into_iter().collect();

        for restore in [true, false] {
            let mut run1 = WindowStage::new(spec, "enriched_events", WindowFields::default());
            let emitted1 = run1.process(&records[..400]);
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
            last.extend(counts(&run2.process(&records[committed as usize..])));
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
        stage.process(&[
            with_source(1, 0, 10),
            with_source(2, 0, 11),
            with_source(3, 1, 7),
        ]);
        stage.process(&[
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
        stage.process(&[rec(0, 1, "US", 5), rec(0, 2, "US", 6)]);
        stage.process(&[rec(0, 1, "US", 5), rec(0, 2, "US", 6), rec(0, 3, "US", 7)]);
        assert_eq!(
            counts(&stage.idle(1_000, &[])),
            vec![("1970-01-01 00:00:00".to_string(), 3)]
        );
    }

    /// Found by bench/e2e: on a backlog, a partition the consumer serves slowly went
    /// quiet for the idle timeout and stopped holding the frontier; its events, still
    /// unread, were then judged late (a third of a 1M-event catch-up).
    #[test]
    fn a_quiet_lane_of_a_partition_with_a_backlog_keeps_holding_its_frontier() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.set_sources(vec![0, 1]);
        let start = Instant::now();
        stage.sync_partitions(&[0], start, Duration::from_secs(60), &[], &[]);
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
        stage.process(&[from(1, 0, "US", 5), from(2, 1, "DE", 5)]);
        let later = Instant::now() + Duration::from_secs(120);
        assert_eq!(
            stage.idle_candidates(later, Duration::from_secs(60)).len(),
            2
        );
        // Both lanes are quiet, but the partition has records left to read.
        stage.sync_partitions(&[0], later, Duration::from_secs(60), &[0], &[]);
        assert!(stage.process(&[from(3, 0, "US", 5_000)]).is_empty());
        let out = stage.process(&[from(4, 1, "DE", 1_900)]);
        assert!(
            out.iter().all(|o| o.destination != Destination::Dlq),
            "DE's event was judged late"
        );
        // Without a backlog the quiet lane is idle: the frontier follows source 0.
        let much_later = later + Duration::from_secs(120);
        stage.sync_partitions(&[0], much_later, Duration::from_secs(60), &[], &[]);
        let late = stage.process(&[from(5, 0, "US", 10_000), from(6, 1, "DE", 2_000)]);
        assert!(
            late.iter().any(|o| o.destination == Destination::Dlq),
            "an idle lane must not hold the frontier"
        );
    }

    /// Found by the failover test: after a takeover, the consumer delivered nothing for
    /// longer than the idle timeout (the rebalance's pause) while the partition had a
    /// backlog; event time jumped to the wall clock and the backlog was judged late.
    #[test]
    fn a_partition_with_records_to_come_keeps_its_event_time_when_input_pauses() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.process(&[rec(0, 1, "US", 10), rec(1, 1, "DE", 10)]);
        let out = stage.idle(1_000_000, &[0]);
        assert_eq!(counts(&out).len(), 1, "only partition 1's window closes");
        let out = stage.process(&[rec(0, 2, "US", 20)]);
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
        stage.sync_partitions(&[0], now, Duration::from_secs(60), &[], &[]);
        stage.process(&[rec(0, 1, "US", 10), rec(0, 2, "US", 5_000)]);
        stage.sync_partitions(&[0, 1], now, Duration::from_secs(60), &[], &[]);
        let out = stage.process(&[rec(1, 7, "DE", 100), rec(1, 8, "DE", 110)]);
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
        stage.sync_partitions(&[0], Instant::now(), Duration::from_secs(60), &[], &[]);
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
        assert!(stage
            .process(&[from(1, 1, 5), from(2, 0, 5_000)])
            .is_empty());
        // Source 1 is quiet for the idle timeout but the validate stage has not caught
        // up on it: slow, not idle. Source 2 has a backlog too but never brought
        // anything to this partition: it does not hold the frontier.
        let later = Instant::now() + Duration::from_secs(120);
        stage.sync_partitions(&[0], later, Duration::from_secs(60), &[], &[1, 2]);
        let out = stage.process(&[from(3, 1, 1_900)]);
        assert!(
            out.iter().all(|o| o.destination != Destination::Dlq),
            "source 1's event was judged late"
        );
        assert!(
            !counts(&out).is_empty(),
            "the frontier follows source 1 (source 2 must not hold it): {out:?}"
        );
        // Caught up and still quiet: idle, the frontier follows source 0.
        let much_later = later + Duration::from_secs(120);
        stage.sync_partitions(&[0], much_later, Duration::from_secs(60), &[], &[]);
        let closed = counts(&stage.process(&[from(4, 0, 10_000)]));
        assert!(
            closed
                .iter()
                .any(|(start, _)| start == "1970-01-01 00:31:00"),
            "the window of the event at 1900 s closes once source 1 is idle: {closed:?}"
        );
    }

    /// Found by bench/tradeoff: after a pause, the first partition of a backlog to
    /// deliver moved the frontier past the other partitions' (older) events.
    #[test]
    fn a_backlog_after_a_pause_is_not_judged_late_partition_by_partition() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.process(&[rec(0, 1, "US", 5), rec(1, 1, "DE", 5)]);
        let later = Instant::now() + Duration::from_secs(120);
        stage.sync_partitions(&[0, 1], later, Duration::from_secs(60), &[], &[]);
        assert_eq!(counts(&stage.idle(1_000, &[])).len(), 2);
        // The backlog: partition 0 delivers far ahead first, then partition 1.
        assert!(stage.process(&[rec(0, 2, "US", 5_000)]).is_empty());
        let out = stage.process(&[rec(1, 2, "DE", 1_900)]);
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

    #[test]
    fn a_revoked_partition_drops_its_windows_and_a_late_event_goes_to_the_dlq() {
        let mut stage = WindowStage::new(SPEC, "enriched_events", WindowFields::default());
        stage.process(&[rec(0, 1, "US", 5), rec(1, 1, "DE", 5)]);
        stage.sync_partitions(&[1], Instant::now(), Duration::from_secs(60), &[], &[]);
        let out = stage.idle(1_000, &[]);
        assert_eq!(counts(&out).len(), 1, "only DE's window is still ours");
        let late = stage.process(&[rec(1, 2, "DE", 5)]);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].destination, Destination::Dlq);
        let v: serde_json::Value = serde_json::from_slice(&late[0].payload).unwrap();
        assert_eq!(v["code"], LATE_EVENT);
        assert_eq!(v["stage"], "window");
    }
}
