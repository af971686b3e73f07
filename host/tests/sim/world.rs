//! The broker model: topics of partitions, consumer groups that rebalance eagerly (every
//! member's partitions revoked, the new assignment read from the committed positions),
//! a producer whose acknowledgements the scheduler hands out one record at a time, and
//! the stages' view of it all through `Source`, `Sink`, `GroupLag` and `Checkpoint`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value as Json;
use streamhost::liveness::{BrokerKind, Stamps};
use streamhost::records::{average, Destination, Output, SourceRecord};
use streamhost::stages::io::{GroupLag, Sink, SinkError, Source, SourceError};
use streamhost::stages::window::restore::{Checkpoint, EmittedWindows};
use streamhost::stages::window::RestoreError;
use tokio::sync::watch;

pub const INPUT: &str = "my_events";
pub const ENRICHED: &str = "enriched_events";
pub const DLQ: &str = "dlq";
pub const AVERAGES: &str = "averages";
pub const VALIDATE_GROUP: &str = "validate";
pub const WINDOW_GROUP: &str = "window";
pub const INPUT_PARTITIONS: i32 = 3;
pub const ENRICHED_PARTITIONS: i32 = 3;

/// How often a waiting reader looks again (virtual time).
const POLL: Duration = Duration::from_millis(20);

/// SplitMix64: every choice of a run comes from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[derive(Debug, Clone)]
pub struct Rec {
    pub payload: Vec<u8>,
    /// On the input, the producer's wall clock; on every other topic, when the record
    /// was written, in virtual milliseconds since the run began.
    pub timestamp_ms: i64,
}

#[derive(Debug, Default)]
struct Group {
    committed: BTreeMap<i32, i64>,
    /// Member ids in joining order.
    members: Vec<u64>,
}

#[derive(Debug)]
struct Member {
    instance: usize,
    group: &'static str,
    topic: &'static str,
    assigned: Vec<i32>,
    positions: BTreeMap<i32, i64>,
    revoked: BTreeSet<i32>,
}

/// A record on its way to the broker.
#[derive(Debug)]
struct Queued {
    instance: usize,
    batch: u64,
    topic: &'static str,
    partition: i32,
    rec: Rec,
}

#[derive(Debug)]
struct Flight {
    remaining: usize,
    failed: bool,
}

/// What the scheduler did, for the figures and the trace.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub steps: u64,
    pub produced: u64,
    pub delivered: u64,
    pub delivery_failures: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub joins: u64,
    pub leaves: u64,
    pub rebalances: u64,
    pub restore_failures: u64,
    pub commits: u64,
    pub fenced_commits: u64,
    pub quiet_spells: u64,
    pub plugin_swaps: u64,
    /// Crashed members whose assignment the coordinator kept (as Tansu 0.6's can).
    pub stalls: u64,
    /// Rejoins by a watchdog that saw orphaned partitions.
    pub rejoins: u64,
}

#[derive(Debug)]
pub struct World {
    pub rng: Rng,
    topics: BTreeMap<&'static str, Vec<Vec<Rec>>>,
    groups: BTreeMap<&'static str, Group>,
    members: BTreeMap<u64, Member>,
    next_member: u64,
    queue: Vec<Queued>,
    flights: BTreeMap<u64, Flight>,
    next_flight: u64,
    /// Input positions whose outcome (enriched or DLQ) is on the broker.
    outcomes: BTreeSet<(i32, i64)>,
    /// The next restore read fails.
    pub fail_restore: bool,
    /// librdkafka's `enable.gapless.guarantee` (on with `kafka.idempotence`, the
    /// default): a failed record stops the producer, so nothing enqueued after it is
    /// written. Off: only the failed record's partition queue is dropped at once, and
    /// records enqueued later are written.
    pub gapless: bool,
    /// Processes whose producer a failure stopped.
    fatal: BTreeSet<usize>,
    pub counts: Counts,
    pub violations: Vec<String>,
    pub trace: Option<Vec<String>>,
    /// When the run began (virtual time): traces and write times count from it.
    began: tokio::time::Instant,
    /// The liveness stamps: (side group, partition) → the last stamp.
    stamps: BTreeMap<(String, i32), i64>,
    next_stamp: i64,
    /// Per running instance: since when its validate stage must judge on which chain
    /// (`processed_by`), once [`SWAP_WITHIN`] has passed.
    pub chain_since: BTreeMap<usize, (tokio::time::Instant, String)>,
}

/// How soon a validate stage judges on a chain it was sent: a batch starts on the
/// newest chain, and a stage waiting for input or for acknowledgements is woken.
pub const SWAP_WITHIN: Duration = Duration::from_secs(1);

impl World {
    pub fn new(seed: u64, traced: bool) -> Self {
        let mut topics = BTreeMap::new();
        topics.insert(INPUT, vec![Vec::new(); INPUT_PARTITIONS as usize]);
        topics.insert(ENRICHED, vec![Vec::new(); ENRICHED_PARTITIONS as usize]);
        topics.insert(DLQ, vec![Vec::new()]);
        topics.insert(AVERAGES, vec![Vec::new()]);
        Self {
            rng: Rng::new(seed),
            topics,
            groups: BTreeMap::new(),
            members: BTreeMap::new(),
            next_member: 0,
            queue: Vec::new(),
            flights: BTreeMap::new(),
            next_flight: 0,
            outcomes: BTreeSet::new(),
            fail_restore: false,
            gapless: true,
            fatal: BTreeSet::new(),
            counts: Counts::default(),
            violations: Vec::new(),
            trace: traced.then(Vec::new),
            began: tokio::time::Instant::now(),
            chain_since: BTreeMap::new(),
            stamps: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    pub fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            let at = self.began.elapsed().as_secs_f64();
            trace.push(format!("{at:>9.3}s {}", line()));
        }
    }

    pub fn records(&self, topic: &str) -> &[Vec<Rec>] {
        &self.topics[topic]
    }

    pub fn end(&self, topic: &str, partition: i32) -> i64 {
        self.topics[topic][partition as usize].len() as i64
    }

    pub fn committed(&self, group: &str, partition: i32) -> i64 {
        self.groups
            .get(group)
            .and_then(|g| g.committed.get(&partition).copied())
            .unwrap_or(0)
    }

    pub fn append(&mut self, topic: &'static str, partition: i32, rec: Rec) {
        self.topics.get_mut(topic).expect("a topic of the model")[partition as usize].push(rec);
    }

    /// Everything read and written, and nothing in flight.
    pub fn quiescent(&self) -> bool {
        self.queue.is_empty()
            && (0..INPUT_PARTITIONS)
                .all(|p| self.committed(VALIDATE_GROUP, p) == self.end(INPUT, p))
            && (0..ENRICHED_PARTITIONS)
                .all(|p| self.committed(WINDOW_GROUP, p) == self.end(ENRICHED, p))
    }

    // ---- the consumer group --------------------------------------------------------

    pub fn join(&mut self, group: &'static str, topic: &'static str, instance: usize) -> u64 {
        let id = self.next_member;
        self.next_member += 1;
        self.members.insert(
            id,
            Member {
                instance,
                group,
                topic,
                assigned: Vec::new(),
                positions: BTreeMap::new(),
                revoked: BTreeSet::new(),
            },
        );
        self.groups.entry(group).or_default().members.push(id);
        self.rebalance(group);
        id
    }

    pub fn leave(&mut self, member: u64) {
        let Some(m) = self.members.remove(&member) else {
            return;
        };
        if let Some(g) = self.groups.get_mut(m.group) {
            g.members.retain(|id| *id != member);
        }
        self.rebalance(m.group);
    }

    /// Every member of `instance`'s, in both groups (the process is gone).
    pub fn leave_instance(&mut self, instance: usize) {
        for id in self.members_of(instance) {
            self.leave(id);
        }
    }

    /// The group members of `instance`'s, in both groups.
    fn members_of(&self, instance: usize) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.instance == instance)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every member of `instance`'s gone, but the coordinator keeps them in the group
    /// as ghosts: rebalances hand them partitions nobody reads (Tansu 0.6's stall,
    /// docs/design.md "Failover and liveness"), until a live member rejoins.
    pub fn leave_instance_stalled(&mut self, instance: usize) {
        for id in self.members_of(instance) {
            self.members.remove(&id);
        }
        self.counts.stalls += 1;
        self.log(|| format!("instance {instance} left; the coordinator keeps its assignment"));
    }

    /// Eager: every member's partitions are revoked, then handed out round-robin; each
    /// assigned partition is read from its committed position. A ghost's share is read
    /// by nobody.
    pub fn rebalance(&mut self, group: &'static str) {
        let members = self.groups.entry(group).or_default().members.clone();
        let partitions = match members.iter().find_map(|id| self.members.get(id)) {
            Some(m) => self.topics[m.topic].len() as i32,
            None => return,
        };
        let n = members.len() as i32;
        for (i, id) in members.iter().enumerate() {
            let committed: BTreeMap<i32, i64> = (0..partitions)
                .filter(|p| p % n == i as i32)
                .map(|p| (p, self.committed(group, p)))
                .collect();
            let Some(m) = self.members.get_mut(id) else {
                continue;
            };
            m.revoked.extend(m.assigned.drain(..));
            m.assigned = committed.keys().copied().collect();
            m.positions = committed;
        }
        self.log(|| format!("rebalance {group}: {n} members"));
    }

    // ---- plugin chains ---------------------------------------------------------------

    /// A validate batch's enriched records all name one chain, the one the instance
    /// was last sent (once [`SWAP_WITHIN`] has passed since).
    fn judged_on_one_chain(&mut self, instance: usize, outputs: &[Output]) {
        let chains: BTreeSet<String> = outputs
            .iter()
            .filter(|o| o.destination == Destination::Enriched)
            .filter_map(|o| serde_json::from_slice::<serde_json::Value>(&o.payload).ok())
            .map(|v| v["processed_by"].as_str().unwrap_or("?").to_string())
            .collect();
        if chains.len() > 1 {
            self.violations.push(format!(
                "instance {instance}: one batch judged on chains {chains:?}"
            ));
        }
        let now = tokio::time::Instant::now();
        if let (Some(chain), Some((since, sent))) =
            (chains.first(), self.chain_since.get(&instance))
        {
            if chain != sent && now.duration_since(*since) > SWAP_WITHIN {
                let late = now.duration_since(*since).as_secs_f64();
                self.violations.push(format!(
                    "instance {instance}: a batch judged on {chain:?} {late:.1}s after {sent:?} was sent"
                ));
            }
        }
    }

    // ---- the producer --------------------------------------------------------------

    fn enqueue(&mut self, instance: usize, outputs: Vec<Output>) -> u64 {
        let id = self.next_flight;
        self.next_flight += 1;
        if self.fatal.contains(&instance) {
            let remaining = outputs.len();
            self.flights.insert(
                id,
                Flight {
                    remaining,
                    failed: true,
                },
            );
            return id;
        }
        let mut remaining = 0;
        for o in outputs {
            let (topic, partition) = match o.destination {
                Destination::Enriched => (ENRICHED, partition_of(&o.key, ENRICHED_PARTITIONS)),
                Destination::Dlq => (DLQ, 0),
                Destination::Averages => (AVERAGES, 0),
            };
            remaining += 1;
            self.queue.push(Queued {
                instance,
                batch: id,
                topic,
                partition,
                rec: Rec {
                    payload: o.payload,
                    timestamp_ms: 0,
                },
            });
        }
        self.flights.insert(
            id,
            Flight {
                remaining,
                failed: false,
            },
        );
        id
    }

    /// Indexes in the queue of the records that may be written next: the first of each
    /// (instance, topic, partition). The producer keeps each partition's order.
    fn heads(&self) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        self.queue
            .iter()
            .enumerate()
            .filter(|(_, q)| seen.insert((q.instance, q.topic, q.partition)))
            .map(|(i, _)| i)
            .collect()
    }

    /// Write up to `n` records, chosen among the heads.
    pub fn deliver(&mut self, n: usize) {
        for _ in 0..n {
            let heads = self.heads();
            if heads.is_empty() {
                return;
            }
            let i = heads[self.rng.below(heads.len() as u64) as usize];
            self.write(i);
        }
    }

    pub fn deliver_all(&mut self) {
        while !self.queue.is_empty() {
            self.write(0);
        }
    }

    fn write(&mut self, i: usize) {
        let mut q = self.queue.remove(i);
        // When it was written, in virtual milliseconds since the run began.
        q.rec.timestamp_ms = self.began.elapsed().as_millis() as i64;
        if let Some(f) = self.flights.get_mut(&q.batch) {
            f.remaining -= 1;
        }
        if q.topic == ENRICHED || q.topic == DLQ {
            if let Some(position) = input_position(q.topic, &q.rec.payload) {
                self.outcomes.insert(position);
            }
        }
        self.counts.delivered += 1;
        if q.topic == DLQ && self.trace.is_some() {
            let v: Json = serde_json::from_slice(&q.rec.payload).unwrap_or_default();
            let (instance, code, topic, p, o) = (
                q.instance,
                v["code"].clone(),
                v["source_topic"].clone(),
                v["source_partition"].clone(),
                v["source_offset"].clone(),
            );
            self.log(|| format!("instance {instance} dead-letters {topic}/{p}@{o}: {code}"));
        }
        if q.topic == AVERAGES {
            let (instance, text) = (
                q.instance,
                String::from_utf8_lossy(&q.rec.payload).into_owned(),
            );
            self.log(|| format!("instance {instance} wrote {text}"));
        }
        self.append(q.topic, q.partition, q.rec);
    }

    /// One head record fails: it and everything queued after it by the same producer
    /// (only for the same partition without [`World::gapless`]) is not written, and
    /// their batches fail.
    pub fn fail_one(&mut self) {
        let heads = self.heads();
        if heads.is_empty() {
            return;
        }
        let i = heads[self.rng.below(heads.len() as u64) as usize];
        let (instance, topic, partition) = {
            let q = &self.queue[i];
            (q.instance, q.topic, q.partition)
        };
        let gapless = self.gapless;
        if gapless {
            self.fatal.insert(instance);
        }
        let mut failed = BTreeSet::new();
        self.queue.retain(|q| {
            let hit = q.instance == instance
                && (gapless || (q.topic == topic && q.partition == partition));
            if hit {
                failed.insert(q.batch);
            }
            !hit
        });
        for b in failed {
            if let Some(f) = self.flights.get_mut(&b) {
                f.failed = true;
            }
        }
        self.counts.delivery_failures += 1;
        self.log(|| format!("delivery fails: instance {instance} {topic}/{partition}"));
    }

    /// A new process of `instance`: a new producer.
    pub fn started(&mut self, instance: usize) {
        self.fatal.remove(&instance);
    }

    /// A process gone: of what it had queued, each partition's first records may have
    /// been written (a random prefix), the rest is lost.
    pub fn drop_queue(&mut self, instance: usize) {
        let mut lanes: BTreeMap<(&'static str, i32), usize> = BTreeMap::new();
        for q in self.queue.iter().filter(|q| q.instance == instance) {
            *lanes.entry((q.topic, q.partition)).or_default() += 1;
        }
        for ((topic, partition), n) in lanes {
            let keep = self.rng.below(n as u64 + 1) as usize;
            for _ in 0..keep {
                if let Some(i) = self.queue.iter().position(|q| {
                    q.instance == instance && q.topic == topic && q.partition == partition
                }) {
                    self.write(i);
                }
            }
        }
        self.queue.retain(|q| q.instance != instance);
    }

    // ---- what the stages read ----------------------------------------------------

    fn fetch(&mut self, member: u64, max: usize) -> Vec<SourceRecord> {
        let cap = 1 + self.rng.below(max as u64) as usize;
        let start = self.rng.below(8) as usize;
        let Some(m) = self.members.get(&member) else {
            return Vec::new();
        };
        let (topic, assigned) = (m.topic, m.assigned.clone());
        let mut batch = Vec::new();
        for k in 0..assigned.len() {
            let p = assigned[(start + k) % assigned.len()];
            let Some(m) = self.members.get_mut(&member) else {
                break;
            };
            let at = m.positions.entry(p).or_insert(0);
            let records = &self.topics[topic][p as usize];
            while batch.len() < cap && (*at as usize) < records.len() {
                let r = &records[*at as usize];
                batch.push(SourceRecord {
                    partition: p,
                    offset: *at,
                    timestamp_ms: r.timestamp_ms,
                    payload: r.payload.clone(),
                });
                *at += 1;
            }
        }
        batch
    }

    fn commit(&mut self, member: u64, next: &HashMap<i32, i64>) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let (group, topic, assigned) = (m.group, m.topic, m.assigned.clone());
        let mut next: Vec<(i32, i64)> = next.iter().map(|(p, o)| (*p, *o)).collect();
        next.sort_unstable();
        for (p, o) in next {
            if !assigned.contains(&p) {
                // An older generation's commit: the coordinator refuses it.
                self.counts.fenced_commits += 1;
                continue;
            }
            if o > self.end(topic, p) {
                self.violations.push(format!(
                    "{group} committed {topic}/{p} at {o}, past its end"
                ));
            }
            if group == VALIDATE_GROUP {
                let from = self.committed(group, p);
                if let Some(missing) = (from..o).find(|x| !self.outcomes.contains(&(p, *x))) {
                    self.violations.push(format!(
                        "validate committed {INPUT}/{p} at {o} before the outcome of offset {missing} was acknowledged"
                    ));
                }
            }
            self.counts.commits += 1;
            self.groups.entry(group).or_default().committed.insert(p, o);
            self.log(|| format!("commit {group} {p}@{o}"));
        }
    }
}

/// The producer's partitioner (any stable hash will do).
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % partitions as u64) as i32
}

/// The input position an enriched or DLQ record stands for.
pub fn input_position(topic: &str, payload: &[u8]) -> Option<(i32, i64)> {
    let v: Json = serde_json::from_slice(payload).ok()?;
    if topic == DLQ && v["source_topic"].as_str() != Some(INPUT) {
        return None;
    }
    Some((
        v["source_partition"].as_i64()? as i32,
        v["source_offset"].as_i64()?,
    ))
}

pub type Shared = Arc<Mutex<World>>;

pub fn lock(world: &Shared) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One stage's consumer.
#[derive(Debug)]
pub struct SimSource {
    pub world: Shared,
    pub member: u64,
    pub topic: &'static str,
    pub group: &'static str,
    pub instance: usize,
}

impl Source for SimSource {
    fn topic(&self) -> &str {
        self.topic
    }

    async fn next_batch(
        &self,
        max: usize,
        wait: Duration,
        idle: Duration,
        wake: impl Future<Output = ()> + Send,
    ) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        let mut wake = std::pin::pin!(wake);
        let deadline = tokio::time::Instant::now() + idle;
        loop {
            let mut batch = lock(&self.world).fetch(self.member, max);
            if !batch.is_empty() {
                // Waiting up to `wait` to fill the batch: a rebalance may come meanwhile,
                // and the batch then holds records read before and after it.
                let fill = lock(&self.world).rng.chance(500);
                if fill && batch.len() < max {
                    tokio::time::sleep(wait).await;
                    let more = lock(&self.world).fetch(self.member, max - batch.len());
                    batch.extend(more);
                }
                return Ok(Some(batch));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Some(batch));
            }
            tokio::select! {
                biased;
                () = &mut wake => return Ok(None),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn assigned_partitions(&self) -> Vec<i32> {
        let world = lock(&self.world);
        let mut a = world
            .members
            .get(&self.member)
            .map(|m| m.assigned.clone())
            .unwrap_or_default();
        a.sort_unstable();
        a
    }

    fn take_revoked(&self) -> Vec<i32> {
        let mut world = lock(&self.world);
        world
            .members
            .get_mut(&self.member)
            .map(|m| std::mem::take(&mut m.revoked).into_iter().collect())
            .unwrap_or_default()
    }

    fn rewind(&self, partitions: &[i32]) -> Result<(), SourceError> {
        let mut world = lock(&self.world);
        let committed: Vec<(i32, i64)> = partitions
            .iter()
            .map(|p| (*p, world.committed(self.group, *p)))
            .collect();
        if let Some(m) = world.members.get_mut(&self.member) {
            m.positions.extend(committed);
        }
        Ok(())
    }

    fn commit_positions(&self, next: &HashMap<i32, i64>) -> Result<(), SourceError> {
        lock(&self.world).commit(self.member, next);
        Ok(())
    }

    fn rejoin(&mut self) -> Result<(), SourceError> {
        let mut world = lock(&self.world);
        world.counts.rejoins += 1;
        let instance = self.instance;
        world.log(|| format!("instance {instance} rejoins {}", self.group));
        // A new generation, formed from the members alive.
        let alive: BTreeSet<u64> = world.members.keys().copied().collect();
        if let Some(g) = world.groups.get_mut(self.group) {
            g.members.retain(|id| alive.contains(id));
        }
        world.leave(self.member);
        self.member = world.join(self.group, self.topic, self.instance);
        Ok(())
    }

    fn pending(&self, partitions: &[i32]) -> Vec<i32> {
        let world = lock(&self.world);
        let Some(m) = world.members.get(&self.member) else {
            return Vec::new();
        };
        partitions
            .iter()
            .copied()
            .filter(|p| m.positions.get(p).copied().unwrap_or(0) < world.end(self.topic, *p))
            .collect()
    }

    fn high_watermarks(&self, partitions: &[i32]) -> HashMap<i32, i64> {
        let world = lock(&self.world);
        partitions
            .iter()
            .map(|p| (*p, world.end(self.topic, *p)))
            .collect()
    }

    fn lag(&self, partitions: &[i32]) -> HashMap<i32, i64> {
        let world = lock(&self.world);
        let Some(m) = world.members.get(&self.member) else {
            return HashMap::new();
        };
        partitions
            .iter()
            .map(|p| {
                let at = m.positions.get(p).copied().unwrap_or(0);
                (*p, (world.end(self.topic, *p) - at).max(0))
            })
            .collect()
    }
}

/// One instance's producer.
#[derive(Debug)]
pub struct SimSink {
    pub world: Shared,
    pub instance: usize,
}

impl Sink for SimSink {
    type Acks = u64;

    async fn enqueue(&self, mut outputs: Vec<Output>) -> Result<u64, SinkError> {
        // Windows closed together come out of hash maps: put them in one order, so that
        // a seed replays exactly. Only the averages move, among themselves.
        let mut averages: Vec<Output> = outputs
            .iter()
            .filter(|o| o.destination == Destination::Averages)
            .cloned()
            .collect();
        averages.sort_by(|a, b| a.key.cmp(&b.key));
        let mut sorted = averages.into_iter();
        for o in outputs.iter_mut() {
            if o.destination == Destination::Averages {
                if let Some(next) = sorted.next() {
                    *o = next;
                }
            }
        }
        let mut world = lock(&self.world);
        world.judged_on_one_chain(self.instance, &outputs);
        Ok(world.enqueue(self.instance, outputs))
    }

    async fn settle(&self, acks: u64, _stop: &watch::Receiver<bool>) -> Result<(), SinkError> {
        loop {
            {
                let world = lock(&self.world);
                match world.flights.get(&acks) {
                    Some(f) if f.failed => {
                        return Err(SinkError::Unacknowledged {
                            topics: "(simulated)".into(),
                            count: f.remaining,
                            timeout: Duration::ZERO,
                        })
                    }
                    Some(f) if f.remaining > 0 => {}
                    _ => return Ok(()),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The validate group's place on the input, as the window stage asks it.
#[derive(Debug)]
pub struct SimLag {
    pub world: Shared,
}

impl GroupLag for SimLag {
    fn partitions(&self) -> Vec<i32> {
        (0..INPUT_PARTITIONS).collect()
    }

    fn positions(&self, partitions: &[i32]) -> Vec<(i32, i64, i64)> {
        let world = lock(&self.world);
        partitions
            .iter()
            .map(|p| {
                (
                    *p,
                    world.committed(VALIDATE_GROUP, *p),
                    world.end(INPUT, *p),
                )
            })
            .collect()
    }
}

/// The averages topic read back, as the window stage's restore does.
#[derive(Debug)]
pub struct SimCheckpoint {
    pub world: Shared,
}

impl Checkpoint for SimCheckpoint {
    fn emitted<'a>(
        &'a self,
        key_field: &'a str,
    ) -> BoxFuture<'a, Result<EmittedWindows, RestoreError>> {
        Box::pin(async move {
            let mut world = lock(&self.world);
            if std::mem::take(&mut world.fail_restore) {
                world.counts.restore_failures += 1;
                return Err(RestoreError::Task {
                    topic: AVERAGES.into(),
                    reason: "(simulated)".into(),
                });
            }
            let mut emitted = EmittedWindows::default();
            for rec in world.records(AVERAGES).iter().flatten() {
                if let Some(window) = average::emitted(&rec.payload, key_field) {
                    emitted.add(window);
                }
            }
            let through: BTreeMap<i32, i64> = emitted.read_through.clone().into_iter().collect();
            world.log(|| format!("restore reads through {through:?}"));
            Ok(emitted)
        })
    }
}

/// The liveness watchdog's stamps, kept in the world (the side groups' commits).
#[derive(Debug)]
pub struct SimStamps {
    pub world: Shared,
    pub side_group: String,
    pub topic: &'static str,
}

impl Stamps for SimStamps {
    fn broker_kind(&mut self) -> Option<BrokerKind> {
        Some(BrokerKind::Silent("the model, like Tansu 0.6".into()))
    }

    /// The host stamps the wall clock, which differs between two runs of a seed: the
    /// model stamps a counter instead (what matters is only that a stamp changes).
    fn stamp(&mut self, partitions: &[i32], _now_ms: i64) {
        let mut world = lock(&self.world);
        for p in partitions {
            world.next_stamp += 1;
            let stamp = world.next_stamp;
            world.stamps.insert((self.side_group.clone(), *p), stamp);
        }
    }

    fn read(&mut self) -> Option<Vec<(i32, Option<i64>)>> {
        let world = lock(&self.world);
        let partitions = world.topics[self.topic].len() as i32;
        Some(
            (0..partitions)
                .map(|p| (p, world.stamps.get(&(self.side_group.clone(), p)).copied()))
                .collect(),
        )
    }
}
