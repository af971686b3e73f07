//! Group liveness: does every partition of a stage's input have a live owner?
//!
//! A consumer group can lose a partition without any member noticing. On a broker whose
//! coordinator keeps a dead member's assignment (Tansu 0.6 does: docs/design.md, "Failover and liveness"), a
//! crashed instance's partitions are never handed over, and an instance restarted
//! within the session timeout can sit in a group that assigns it nothing. The Kafka
//! answer, DescribeGroups, is not served there, so the owners say so themselves:
//!
//! - every few seconds, each instance stamps each partition it owns, as long as its
//!   stage loop is turning: the stamp is the "committed offset" of the partition in a
//!   side group, `<group>.liveness` (a wall-clock value, never a position);
//! - a partition whose stamp has not changed for `kafka.stall_timeout_secs` has no live
//!   owner: it is orphaned, whether records wait on it or not;
//! - an instance that sees an orphaned partition it does not own leaves the group and
//!   joins again: the coordinator forms a new generation from the members alive.
//!
//! Orphaned partitions also make the instance not ready on `/health`.
//!
//! With `kafka.watchdog = "auto"` the watchdog first asks the broker to describe its
//! own configuration: a broker that does (Apache Kafka, Confluent, Redpanda) has a
//! coordinator that hands a dead member's partitions over by itself, and no side group
//! is created; one that does not (Tansu 0.6), or a refusal, turns the watchdog on.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::future::BoxFuture;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// tokio's clock: the real one in the host, the simulator's paused one in its runs.
use tokio::time::Instant;

use crate::config::WatchdogMode;
use crate::telemetry;

/// The two stages that read a topic as a consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageName {
    Validate,
    Window,
}

impl StageName {
    /// The name in logs, metric labels and `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Validate => "validate",
            StageName::Window => "window",
        }
    }
}

/// A partition whose owner has not stamped it since `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub partition: i32,
    pub since: Instant,
}

/// Pure detection over successive readings of every partition's stamp.
#[derive(Debug)]
pub struct OrphanTracker {
    timeout: Duration,
    /// Per partition: the last stamp read (None: never stamped) and since when.
    seen: HashMap<i32, (Option<i64>, Instant)>,
}

impl OrphanTracker {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            seen: HashMap::new(),
        }
    }

    /// One reading of every partition's stamp. Returns the partitions whose stamp has
    /// not changed for the timeout, in partition order.
    pub fn observe(&mut self, now: Instant, stamps: &[(i32, Option<i64>)]) -> Vec<Orphan> {
        let mut orphans = Vec::new();
        for &(partition, stamp) in stamps {
            let seen = self.seen.entry(partition).or_insert((stamp, now));
            if seen.0 != stamp {
                *seen = (stamp, now);
            } else if now.duration_since(seen.1) >= self.timeout {
                orphans.push(Orphan {
                    partition,
                    since: seen.1,
                });
            }
        }
        orphans.sort_by_key(|o| o.partition);
        orphans
    }

    /// Restart every clock (after this instance rejoined its group).
    pub fn reset(&mut self, now: Instant) {
        for seen in self.seen.values_mut() {
            seen.1 = now;
        }
    }
}

/// Take-overs in a row. A rejoin that got the orphaned partitions owned is followed by
/// readings without orphans past a stall timeout; one that did not, by the next
/// take-over about a stall timeout later. A streak means the coordinator does not hand
/// them out at all (on Tansu 0.6: a group left waiting on a leader that is no longer a
/// member; docs/issues.md, "Broker behaviour").
#[derive(Debug)]
pub struct RejoinStreak {
    stall_timeout: Duration,
    count: u32,
    last: Option<Instant>,
}

impl RejoinStreak {
    /// From this many take-overs in a row on, the coordinator is taken to be stuck.
    pub const STUCK: u32 = 3;

    pub fn new(stall_timeout: Duration) -> Self {
        Self {
            stall_timeout,
            count: 0,
            last: None,
        }
    }

    /// One take-over at `now`: how many in a row, this one included.
    pub fn record(&mut self, now: Instant) -> u32 {
        self.count += 1;
        self.last = Some(now);
        self.count
    }

    /// A reading at `now` found no orphan. Once that holds past the time orphans take
    /// to show again (a stall timeout and its jitter), the last take-over worked and the
    /// streak ends. Returns whether it ended now.
    pub fn no_orphans(&mut self, now: Instant) -> bool {
        let worked = self
            .last
            .is_some_and(|last| now.duration_since(last) >= self.stall_timeout * 3 / 2);
        if worked && self.count > 0 {
            self.count = 0;
            return true;
        }
        false
    }
}

/// What `/health` reports of one stage.
#[derive(Debug, Clone)]
pub struct StageHealth {
    pub assigned: usize,
    /// Since when this instance has owned no partition (None while it owns some).
    pub unassigned_since: Option<Instant>,
    pub orphans: Vec<Orphan>,
    /// Take-overs in a row that did not end the orphaning ([`RejoinStreak`]).
    pub rejoins_in_a_row: u32,
    /// The stage stopped with this error: the process is on its way out.
    pub failed: Option<String>,
    /// Whether a client of the stage has ever had an answer from the broker (it was
    /// assigned partitions, or the watchdog read the group): until then the host is
    /// not ready (a wrong password or an untrusted certificate, for example).
    pub reached_broker: bool,
    /// The last turn of the stage's loop.
    pub turned: Instant,
}

impl StageHealth {
    fn ready(&self) -> bool {
        self.reached_broker && self.orphans.is_empty() && self.failed.is_none()
    }

    fn describe(&self, stage: StageName, topic: &str, now: Instant) -> String {
        let mut line = format!("{}: ", stage.as_str());
        if let Some(error) = &self.failed {
            line.push_str(&format!("failed: {error}"));
            return line;
        }
        if !self.reached_broker {
            line.push_str("the broker has not answered yet (the log says why)");
            return line;
        }
        if self.orphans.is_empty() {
            line.push_str(&format!("ok, {} partitions of {topic} here", self.assigned));
            return line;
        }
        let parts: Vec<String> = self
            .orphans
            .iter()
            .map(|o| {
                format!(
                    "{topic}/{} (no live owner for {} s)",
                    o.partition,
                    now.duration_since(o.since).as_secs()
                )
            })
            .collect();
        line.push_str(&format!("orphaned: {}", parts.join(", ")));
        match self.unassigned_since {
            Some(since) => line.push_str(&format!(
                "; no partitions assigned here for {} s",
                now.duration_since(since).as_secs()
            )),
            None => line.push_str(&format!("; {} partitions assigned here", self.assigned)),
        }
        if self.rejoins_in_a_row >= RejoinStreak::STUCK {
            line.push_str(&format!(
                "; {} rejoins in a row did not help: the group coordinator hands out no \
                 partitions (on Tansu 0.6, restart the broker)",
                self.rejoins_in_a_row
            ));
        }
        line
    }
}

/// Readiness of every stage, and the configured topics the broker does not have,
/// shared with the admin endpoint.
#[derive(Debug, Clone, Default)]
pub struct Health {
    stages: Arc<RwLock<BTreeMap<StageName, (String, StageHealth)>>>,
    missing_topics: Arc<RwLock<Vec<String>>>,
}

impl Health {
    fn update(&self, stage: StageName, topic: &str, f: impl FnOnce(&mut StageHealth)) {
        let mut map = self.stages.write().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(stage).or_insert_with(|| {
            (
                topic.to_string(),
                StageHealth {
                    assigned: 0,
                    unassigned_since: Some(Instant::now()),
                    orphans: Vec::new(),
                    rejoins_in_a_row: 0,
                    failed: None,
                    reached_broker: false,
                    turned: Instant::now(),
                },
            )
        });
        f(&mut entry.1);
        metrics::gauge!(telemetry::STAGE_READY.name, "stage" => stage.as_str())
            .set(f64::from(u8::from(entry.1.ready())));
        metrics::gauge!(telemetry::ORPHANED_PARTITIONS.name, "stage" => stage.as_str())
            .set(entry.1.orphans.len() as f64);
    }

    /// `stage` stopped with `error`: not ready from now on (the process is exiting).
    pub fn failed(&self, stage: StageName, topic: &str, error: &str) {
        self.update(stage, topic, |h| h.failed = Some(error.to_string()));
    }

    /// The configured topics the broker answered it does not have (none: every one
    /// exists). The host is not ready while one is missing.
    pub fn topics_missing(&self, topics: Vec<String>) {
        metrics::gauge!(telemetry::MISSING_TOPICS.name).set(topics.len() as f64);
        *self
            .missing_topics
            .write()
            .unwrap_or_else(PoisonError::into_inner) = topics;
    }

    /// Liveness, of this process only: every stage's loop turned within `stall` and
    /// none failed; one line per stage either way. (Readiness, [`Health::report`], also
    /// depends on the broker and the group.)
    pub fn live(&self, stall: Duration) -> (bool, String) {
        let now = Instant::now();
        let map = self.stages.read().unwrap_or_else(PoisonError::into_inner);
        let mut live = true;
        let mut lines = String::new();
        for (stage, (_, h)) in map.iter() {
            let quiet = now.duration_since(h.turned);
            let line = match &h.failed {
                Some(error) => format!("failed: {error}"),
                None if quiet > stall => format!(
                    "its loop has not turned for {} s (more than {} s)",
                    quiet.as_secs(),
                    stall.as_secs()
                ),
                None => format!("its loop turned {} ms ago", quiet.as_millis()),
            };
            live &= h.failed.is_none() && quiet <= stall;
            lines.push_str(&format!("{}: {line}\n", stage.as_str()));
        }
        (
            live,
            format!("{}\n{lines}", if live { "ok" } else { "not live" }),
        )
    }

    /// Ready when every configured topic exists, no stage sees an orphaned partition
    /// and none has failed; one line per stage either way, and one naming the missing
    /// topics.
    pub fn report(&self) -> (bool, String) {
        let now = Instant::now();
        let map = self.stages.read().unwrap_or_else(PoisonError::into_inner);
        let missing = self
            .missing_topics
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let ready = missing.is_empty() && map.values().all(|(_, h)| h.ready());
        let mut text = String::from(if ready { "ok\n" } else { "not ready\n" });
        if !missing.is_empty() {
            text.push_str(&format!(
                "topics missing: {} (the broker does not have them: `streamhost topics \
                 create` creates them)\n",
                missing.join(", ")
            ));
        }
        for (stage, (topic, h)) in map.iter() {
            text.push_str(&h.describe(*stage, topic, now));
            text.push('\n');
        }
        (ready, text)
    }
}

/// Settings of one stage's watchdog.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    pub stage: StageName,
    pub group_id: String,
    pub topic: String,
    pub mode: WatchdogMode,
    /// A partition not stamped for this long is orphaned.
    pub stall_timeout: Duration,
    /// The longest a turn of the stage loop takes when all is well (its wait for input).
    pub longest_turn: Duration,
    /// Added to `stall_timeout`, different per instance ([`jitter`]), so that instances
    /// that see the same orphan do not all rejoin at once.
    pub jitter: Duration,
}

/// A random share of up to a quarter of `stall_timeout`.
pub fn jitter(stall_timeout: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let quarter = (stall_timeout.as_millis() / 4).max(1) as u64;
    Duration::from_millis(random % quarter)
}

#[derive(Debug)]
struct Shared {
    /// What the stage owns, and when its loop last turned.
    assigned: Vec<i32>,
    turned: Instant,
    orphans: Vec<Orphan>,
    /// The stage rejoined its group: restart the clocks.
    reset: bool,
    streak: RejoinStreak,
}

/// One stage's watchdog: a thread that stamps what this instance owns and reads every
/// partition's stamp, and the stage loop's handle on it.
#[derive(Debug)]
pub struct Watchdog {
    stage: StageName,
    topic: String,
    shared: Arc<Mutex<Shared>>,
    health: Health,
    stop: Arc<AtomicBool>,
}

impl Watchdog {
    /// Start the watchdog on its own thread, on `stamps` (none when the mode is off, or
    /// there are no stamps): its broker round trips block.
    pub fn start<S: Stamps>(
        config: WatchdogConfig,
        health: Health,
        stamps: Option<S>,
    ) -> std::io::Result<Self> {
        let name = format!("watchdog-{}", config.stage.as_str());
        Self::start_with(config, health, stamps, |judge| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()?;
            std::thread::Builder::new()
                .name(name)
                .spawn(move || runtime.block_on(judge))?;
            Ok(())
        })
    }

    /// Start the watchdog as a task of the current runtime, for `stamps` that never
    /// block (the simulator's).
    pub fn start_local<S: Stamps>(
        config: WatchdogConfig,
        health: Health,
        stamps: Option<S>,
    ) -> std::io::Result<Self> {
        Self::start_with(config, health, stamps, |judge| {
            tokio::spawn(judge);
            Ok(())
        })
    }

    fn start_with<S: Stamps>(
        config: WatchdogConfig,
        health: Health,
        stamps: Option<S>,
        spawn: impl FnOnce(BoxFuture<'static, ()>) -> std::io::Result<()>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Mutex::new(Shared {
            assigned: Vec::new(),
            turned: Instant::now(),
            orphans: Vec::new(),
            reset: false,
            streak: RejoinStreak::new(config.stall_timeout),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        // With no watchdog, nothing reads the group: readiness cannot wait on it.
        let stamps = stamps.filter(|_| config.mode != WatchdogMode::Off);
        let unwatched = stamps.is_none();
        health.update(config.stage, &config.topic, |h| {
            h.reached_broker |= unwatched
        });
        if let Some(stamps) = stamps {
            let judge = Judge::new(&config, stamps, shared.clone(), health.clone());
            let stop = stop.clone();
            spawn(Box::pin(async move { judge.run(&stop).await }))?;
        }
        Ok(Self {
            stage: config.stage,
            topic: config.topic,
            shared,
            health,
            stop,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every turn of the stage loop: what this instance owns now. A loop that stops
    /// turning stops stamping its partitions, and others take them over.
    pub fn turned(&self, assigned: &[i32]) {
        let mut shared = self.lock();
        shared.assigned.clear();
        shared.assigned.extend_from_slice(assigned);
        shared.turned = Instant::now();
        drop(shared);
        self.health.update(self.stage, &self.topic, |h| {
            h.turned = Instant::now();
            h.assigned = assigned.len();
            h.reached_broker |= !assigned.is_empty();
            if assigned.is_empty() {
                h.unassigned_since.get_or_insert_with(Instant::now);
            } else {
                h.unassigned_since = None;
            }
        });
    }

    /// Orphaned partitions this instance does not own: a fresh join of this instance
    /// makes the coordinator hand them out again.
    pub fn orphans(&self, assigned: &[i32]) -> Vec<Orphan> {
        self.lock()
            .orphans
            .iter()
            .filter(|o| !assigned.contains(&o.partition))
            .cloned()
            .collect()
    }

    /// Rejoin the group (`rejoin`) so that the coordinator hands out `orphans` (from
    /// [`Watchdog::orphans`]) again. The stage commits what it has processed first.
    pub fn take_over<E>(
        &self,
        orphans: &[Orphan],
        rejoin: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let partitions: Vec<i32> = orphans.iter().map(|o| o.partition).collect();
        let in_a_row = self.lock().streak.record(Instant::now());
        if in_a_row >= RejoinStreak::STUCK {
            tracing::error!(
                stage = self.stage.as_str(),
                topic = %self.topic,
                ?partitions,
                in_a_row,
                "orphaned partitions: rejoining has not helped; the group coordinator hands \
                 out no partitions (on Tansu 0.6 it can wait on a leader that is no longer \
                 a member: restart the broker)"
            );
        } else {
            tracing::warn!(
                stage = self.stage.as_str(),
                topic = %self.topic,
                ?partitions,
                "orphaned partitions: leaving and rejoining the group to take them over"
            );
        }
        rejoin()?;
        let mut shared = self.lock();
        shared.orphans.clear();
        shared.reset = true;
        drop(shared);
        metrics::counter!(telemetry::GROUP_REJOINS.name, "stage" => self.stage.as_str())
            .increment(1);
        self.health.update(self.stage, &self.topic, |h| {
            h.orphans.clear();
            h.rejoins_in_a_row = in_a_row;
        });
        Ok(())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the broker says about itself, which decides `kafka.watchdog = "auto"`.
#[derive(Debug, PartialEq, Eq)]
pub enum BrokerKind {
    /// It described its configuration: a full implementation of the Kafka protocol,
    /// whose coordinator reassigns a dead member's partitions after the session timeout.
    DescribesItself,
    /// It answered without its configuration (why): Tansu 0.6, or a principal not
    /// allowed to describe the cluster.
    Silent(String),
}

/// The broker side of a watchdog: the stamps, kept in the side group
/// [`side_group`], and the broker's answer about itself. Blocking calls, made on the
/// watchdog's own thread.
pub trait Stamps: Send + 'static {
    /// What the broker says about itself; None while it is away (ask again).
    fn broker_kind(&mut self) -> Option<BrokerKind>;
    /// Stamp `partitions` of the input topic with `now_ms`.
    fn stamp(&mut self, partitions: &[i32], now_ms: i64);
    /// Every partition's stamp (None: never stamped), or None when the broker could
    /// not say.
    fn read(&mut self) -> Option<Vec<(i32, Option<i64>)>>;
}

/// The group whose "committed offsets" are the stamps of `group`'s partitions.
pub fn side_group(group: &str) -> String {
    format!("{group}.liveness")
}

/// Wait `interval` for the next round, or until the watchdog stops.
async fn pause(interval: Duration, stop: &AtomicBool) {
    let until = Instant::now() + interval;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The watchdog's state: the stamps, and the tracker.
struct Judge<S> {
    stage: StageName,
    topic: String,
    mode: WatchdogMode,
    /// `<group>.liveness`, where the stamps are kept.
    side_group: String,
    stamps: S,
    tracker: OrphanTracker,
    interval: Duration,
    /// A loop that has not turned for this long is stuck: its partitions go unstamped.
    stuck_after: Duration,
    shared: Arc<Mutex<Shared>>,
    health: Health,
    last_stamp: i64,
}

impl<S: Stamps> Judge<S> {
    fn new(config: &WatchdogConfig, stamps: S, shared: Arc<Mutex<Shared>>, health: Health) -> Self {
        let timeout = config.stall_timeout + config.jitter;
        Self {
            stage: config.stage,
            topic: config.topic.clone(),
            mode: config.mode,
            side_group: side_group(&config.group_id),
            stamps,
            tracker: OrphanTracker::new(timeout),
            interval: (config.stall_timeout / 4)
                .clamp(Duration::from_millis(500), Duration::from_secs(5)),
            stuck_after: (config.stall_timeout / 2).max(config.longest_turn * 2),
            shared,
            health,
            last_stamp: 0,
        }
    }

    async fn run(mut self, stop: &AtomicBool) {
        if self.mode == WatchdogMode::Auto {
            match self.broker_kind(stop).await {
                None => return,
                Some(BrokerKind::DescribesItself) => {
                    tracing::info!(
                        stage = self.stage.as_str(),
                        "liveness watchdog off (kafka.watchdog = \"auto\"): the broker \
                         describes its configuration, so its coordinator hands a dead \
                         member's partitions over by itself"
                    );
                    self.health
                        .update(self.stage, &self.topic, |h| h.reached_broker = true);
                    return;
                }
                Some(BrokerKind::Silent(why)) => tracing::info!(
                    stage = self.stage.as_str(),
                    %why,
                    "liveness watchdog on (kafka.watchdog = \"auto\"): the broker does not \
                     describe its configuration, as Tansu 0.6 does not; side group {}",
                    self.side_group
                ),
            }
        }
        while !stop.load(Ordering::Relaxed) {
            let (assigned, turned, reset) = {
                let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
                let reset = std::mem::take(&mut shared.reset);
                (shared.assigned.clone(), shared.turned, reset)
            };
            if reset {
                self.tracker.reset(Instant::now());
            }
            if turned.elapsed() < self.stuck_after {
                self.stamp(&assigned);
            }
            if let Some(orphans) = self.judge() {
                if !orphans.is_empty() {
                    tracing::warn!(
                        stage = self.stage.as_str(),
                        topic = %self.topic,
                        partitions = ?orphans.iter().map(|o| o.partition).collect::<Vec<_>>(),
                        "orphaned partitions: no live instance has owned them for kafka.stall_timeout_secs"
                    );
                }
                let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
                let worked = orphans.is_empty() && shared.streak.no_orphans(Instant::now());
                shared.orphans = orphans.clone();
                drop(shared);
                self.health.update(self.stage, &self.topic, |h| {
                    h.reached_broker = true;
                    h.orphans = orphans;
                    if worked {
                        h.rejoins_in_a_row = 0;
                    }
                });
            }
            pause(self.interval, stop).await;
        }
    }

    /// Ask the broker to describe itself until it answers (None: stopped before).
    async fn broker_kind(&mut self, stop: &AtomicBool) -> Option<BrokerKind> {
        while !stop.load(Ordering::Relaxed) {
            if let Some(kind) = self.stamps.broker_kind() {
                return Some(kind);
            }
            pause(self.interval, stop).await;
        }
        None
    }

    /// Stamp every partition this instance owns with the wall clock (milliseconds),
    /// later than the last stamp: a stamp that changes is what says "alive".
    fn stamp(&mut self, assigned: &[i32]) {
        if assigned.is_empty() {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.last_stamp = now_ms.max(self.last_stamp + 1);
        self.stamps.stamp(assigned, self.last_stamp);
    }

    /// The orphaned partitions, or None when the broker could not say (no verdict).
    fn judge(&mut self) -> Option<Vec<Orphan>> {
        let stamps = self.stamps.read()?;
        Some(self.tracker.observe(Instant::now(), &stamps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_is_the_loops_turning_and_no_stage_failed() {
        let health = Health::default();
        let stall = Duration::from_secs(5);
        health.update(StageName::Validate, "in", |h| h.turned = Instant::now());
        assert!(health.live(stall).0);
        let Some(long_ago) = Instant::now().checked_sub(Duration::from_secs(10)) else {
            return; // a machine up for less than 10 s
        };
        health.update(StageName::Window, "out", |h| h.turned = long_ago);
        let (live, text) = health.live(stall);
        assert!(
            !live && text.contains("window: its loop has not turned for 10 s"),
            "{text}"
        );
        health.update(StageName::Window, "out", |h| h.turned = Instant::now());
        health.failed(StageName::Validate, "in", "delivery refused");
        let (live, text) = health.live(stall);
        assert!(
            !live && text.contains("validate: failed: delivery refused"),
            "{text}"
        );
    }

    const T: Duration = Duration::from_secs(20);

    fn partitions(orphans: &[Orphan]) -> Vec<i32> {
        orphans.iter().map(|o| o.partition).collect()
    }

    #[test]
    fn a_partition_whose_stamp_stops_changing_is_orphaned_after_the_timeout() {
        let mut t = OrphanTracker::new(T);
        let t0 = Instant::now();
        assert!(t.observe(t0, &[(0, Some(1)), (1, Some(1))]).is_empty());
        // Partition 0's owner died; partition 1's owner stamps until T/2, then dies.
        assert!(t
            .observe(t0 + T / 2, &[(0, Some(1)), (1, Some(2))])
            .is_empty());
        assert_eq!(
            partitions(&t.observe(t0 + T, &[(0, Some(1)), (1, Some(2))])),
            [0]
        );
        let orphans = t.observe(t0 + T * 3 / 2, &[(0, Some(1)), (1, Some(2))]);
        assert_eq!(partitions(&orphans), [0, 1]);
        assert_eq!(orphans[0].since, t0, "orphaned since the last change");
    }

    #[test]
    fn stamped_partitions_are_never_orphaned_and_unstamped_ones_are() {
        let mut t = OrphanTracker::new(T);
        let t0 = Instant::now();
        for i in 0..10u32 {
            let now = t0 + T * i;
            let orphans = t.observe(now, &[(0, Some(i64::from(i))), (1, None)]);
            if i == 0 {
                assert!(orphans.is_empty());
            } else {
                // Never stamped (a group nobody owns a partition of, as after the restart
                // race): orphaned from the first reading on.
                assert_eq!(partitions(&orphans), [1], "round {i}");
            }
        }
    }

    #[test]
    fn a_reset_gives_every_partition_a_full_timeout_again() {
        let mut t = OrphanTracker::new(T);
        let t0 = Instant::now();
        t.observe(t0, &[(0, Some(1))]);
        assert_eq!(t.observe(t0 + T, &[(0, Some(1))]).len(), 1);
        t.reset(t0 + T);
        assert!(t.observe(t0 + T + T / 2, &[(0, Some(1))]).is_empty());
        assert_eq!(t.observe(t0 + T * 2, &[(0, Some(1))]).len(), 1);
    }

    #[test]
    fn take_overs_are_a_streak_until_the_orphans_stay_away_past_a_stall_timeout() {
        let mut streak = RejoinStreak::new(T);
        let t0 = Instant::now();
        let reading = T / 4;
        // Fruitless: after each take-over, readings without orphans (the clocks were
        // restarted) until the orphans show again, then the next take-over.
        let mut now = t0;
        for n in 1..=RejoinStreak::STUCK {
            assert_eq!(streak.record(now), n);
            for _ in 0..5 {
                now += reading;
                assert!(
                    !streak.no_orphans(now),
                    "take-over {n}, {:?} later",
                    now - t0
                );
            }
        }
        // A take-over that worked: no orphans long enough, and the streak is over.
        now += reading;
        assert!(streak.no_orphans(now));
        assert_eq!(streak.record(now + T * 10), 1, "orphaned anew, much later");
    }

    #[test]
    fn health_says_when_rejoining_does_not_help() {
        let health = Health::default();
        let since = Instant::now() - Duration::from_secs(90);
        let orphaned = |rejoins| {
            health.update(StageName::Validate, "my_events", |h| {
                h.reached_broker = true;
                h.orphans = vec![Orphan {
                    partition: 0,
                    since,
                }];
                h.rejoins_in_a_row = rejoins;
            });
            health.report().1
        };
        assert!(!orphaned(RejoinStreak::STUCK - 1).contains("did not help"));
        let text = orphaned(RejoinStreak::STUCK);
        assert!(
            text.contains("3 rejoins in a row did not help: the group coordinator hands out no partitions (on Tansu 0.6, restart the broker)"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_topic_makes_the_host_not_ready_and_is_named() {
        let health = Health::default();
        health.update(StageName::Validate, "fresh_in", |h| h.reached_broker = true);
        assert!(health.report().0);
        health.topics_missing(vec!["fresh_in".into(), "fresh_dlq".into()]);
        let (ready, text) = health.report();
        assert!(!ready);
        assert!(
            text.starts_with("not ready\ntopics missing: fresh_in, fresh_dlq ("),
            "{text}"
        );
        assert!(text.contains("`streamhost topics create`"), "{text}");
        health.topics_missing(Vec::new());
        let (ready, text) = health.report();
        assert!(ready && !text.contains("missing"), "{text}");
    }

    #[test]
    fn health_names_the_orphaned_partitions_and_the_empty_assignment() {
        let health = Health::default();
        health.update(StageName::Validate, "my_events", |h| h.assigned = 3);
        let (ready, text) = health.report();
        assert!(!ready, "no answer from the broker yet");
        assert!(
            text.contains("validate: the broker has not answered yet"),
            "{text}"
        );
        health.update(StageName::Validate, "my_events", |h| {
            h.reached_broker = true
        });
        assert!(health.report().0);
        let since = Instant::now() - Duration::from_secs(30);
        health.update(StageName::Window, "enriched_events", |h| {
            h.reached_broker = true;
            h.orphans = vec![Orphan {
                partition: 2,
                since,
            }];
            h.unassigned_since = Some(since);
        });
        let (ready, text) = health.report();
        assert!(!ready);
        assert!(text.starts_with("not ready\n"), "{text}");
        assert!(
            text.contains("validate: ok, 3 partitions of my_events here"),
            "{text}"
        );
        assert!(
            text.contains("window: orphaned: enriched_events/2 (no live owner for 30 s); no partitions assigned here for 30 s"),
            "{text}"
        );
    }
}
