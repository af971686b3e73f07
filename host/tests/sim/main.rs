//! The stage runtime and both stages, run on a simulated broker with faults chosen by a
//! seed: deliveries delayed, reordered across partitions and failed; processes crashed
//! at any await point and restarted from the committed positions (the coordinator
//! keeping a dead member's partitions, sometimes, until the watchdog makes a live
//! member rejoin); instances joining and
//! leaving; rebalances in the middle of batches; restore reads failing; plugin chains
//! deployed; idle spells; late and far-future events. Time is tokio's paused clock, so a run takes
//! milliseconds and the same seed makes the same run.
//!
//! Invariants: no input position committed before its outcome is on the broker; every
//! input record's outcome (enriched or DLQ) present at least once; far-future and broken
//! records dead-lettered, never enriched; no event declared late unless it was written
//! late; every emitted window's count equal to the count over the input (give or take
//! the planted-late events); every validate batch judged on one chain, the one deployed
//! once a second has passed; everything committed at the end.
//!
//! * `cargo test -p streamhost --test sim`: the CI budget of seeds.
//! * `SIM_SEED=1234 cargo test -p streamhost --test sim replay -- --exact --nocapture`: one
//!   seed again, with the trace of its steps.
//! * `SIM_SEEDS=100000 SIM_RESULT=bench/results/x.json cargo test --release -p
//!   streamhost --test sim explore -- --ignored --nocapture`: a longer run, figures to a
//!   file (docs/howto/run-the-simulator.md).

// A test file: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod world;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value as Json;
use streamhost::config::WatchdogMode;
use streamhost::liveness::{side_group, Health, Watchdog, WatchdogConfig};
use streamhost::plugins::chain::Member;
use streamhost::plugins::reload::ChainUpdate;
use streamhost::plugins::{Chain, CompiledPlugin, PluginRuntime, SandboxLimits};
use streamhost::schema::Schema;
use streamhost::stages::runtime::{drive, Batching};
use streamhost::stages::validate::{Validate, ValidateStage};
use streamhost::stages::window::operator::WindowSpec;
use streamhost::stages::window::progress::BrokerProgress;
use streamhost::stages::window::{WindowFields, WindowStage};
use streamhost::stages::{Stage, StageError};
use streamhost::timefmt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use world::*;

/// The wall clock at the start of every run (2027-01-15).
const BASE: i64 = 1_800_000_000;
const SPEC: WindowSpec = WindowSpec {
    size: 60,
    advance: 20,
    grace: 5,
};
const IDLE: Duration = Duration::from_secs(10);
const INSTANCES: usize = 3;
/// Countries the `quality` plugin allows by default.
const COUNTRIES: [&str; 5] = ["US", "DE", "FR", "JP", "CA"];

thread_local! {
    static START: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The stages' wall clock: [`BASE`] plus the virtual time since the run began.
fn sim_clock() -> i64 {
    let start = START.with(Cell::get).expect("set by the run");
    BASE + start.elapsed().as_secs() as i64
}

/// What the generator meant a record to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    OnTime,
    /// Two minutes behind the clock: late once event time has moved on.
    Late,
    /// Ten years ahead: `future_event`.
    Future,
    /// Not JSON.
    Broken,
}

struct Instance {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), StageError>>>,
    updates: mpsc::Sender<ChainUpdate>,
}

/// The chains a run deploys in turn, by file in plugins/dist (real components, two
/// contract generations). Every one accepts each event the generator writes, so the
/// windows' oracle stays the input's count.
const CHAINS: [&[&str]; 4] = [
    &[],
    &["quality.wasm"],
    &["enrich.wasm"],
    &["quality_v0_3.wasm", "enrich_v0_3.wasm"],
];

/// Every plugin of [`CHAINS`], compiled once per process.
fn compiled() -> &'static BTreeMap<&'static str, Arc<CompiledPlugin>> {
    static COMPILED: OnceLock<BTreeMap<&'static str, Arc<CompiledPlugin>>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let dist = std::env::var_os("STREAMHOST_PLUGINS_BUILT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist")
            });
        let runtime =
            PluginRuntime::new(SandboxLimits::default(), Arc::new(Schema::brief())).unwrap();
        CHAINS
            .iter()
            .flat_map(|chain| chain.iter())
            .map(|file| {
                let path = dist.join(file);
                let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e}; run scripts/build-plugins first", path.display())
                });
                (
                    *file,
                    Arc::new(runtime.compile(&bytes, file, Vec::new()).unwrap()),
                )
            })
            .collect()
    })
}

/// Chain `k` of [`CHAINS`], instantiated for one instance, and what its records say
/// in `processed_by`.
fn chain(k: usize) -> (Vec<Member>, String) {
    let members: Vec<Member> = CHAINS[k]
        .iter()
        .map(|file| Member {
            plugin: compiled()[file].clone().instantiate_checked().unwrap(),
            required: true,
        })
        .collect();
    let label = members
        .iter()
        .map(|m| m.plugin.id())
        .collect::<Vec<_>>()
        .join(",");
    (members, label)
}

fn start(world: &Shared, instance: usize, deployed: usize) -> Instance {
    let (stop, stop_rx) = watch::channel(false);
    let (updates, updates_rx) = mpsc::channel(4);
    // A process starts on the chain its plugin directory holds.
    let (members, label) = chain(deployed);
    let (v, w, jitters) = {
        let mut w = lock(world);
        let quarter = STALL_TIMEOUT.as_millis() as u64 / 4;
        let jitters = [0, 1].map(|_| Duration::from_millis(w.rng.below(quarter)));
        w.counts.restarts += 1;
        w.started(instance);
        w.log(|| format!("instance {instance} starts on [{label}]"));
        w.chain_since.insert(instance, (Instant::now(), label));
        (
            w.join(VALIDATE_GROUP, INPUT, instance),
            w.join(WINDOW_GROUP, ENRICHED, instance),
            jitters,
        )
    };
    let batching = Batching {
        size: 40,
        wait: Duration::from_millis(10),
    };
    let validating = {
        let (world, mut stop) = (world.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let validate = Validate::new(Arc::new(Schema::brief()), "country", INPUT, 1_000_000)
                .unwrap()
                .with_clock(sim_clock);
            let mut stage =
                ValidateStage::new(validate, Chain::new(members, 3, None), updates_rx, 3);
            let mut source = SimSource {
                world: world.clone(),
                member: v,
                topic: INPUT,
                group: VALIDATE_GROUP,
                instance,
            };
            let watchdog = watchdog(&world, &stage, VALIDATE_GROUP, INPUT, jitters[0]);
            let sink = SimSink { world, instance };
            drive(
                &mut stage,
                &mut source,
                &sink,
                Some(&watchdog),
                batching,
                &mut stop,
            )
            .await
        })
    };
    let windowing = {
        let (world, mut stop) = (world.clone(), stop_rx);
        tokio::spawn(async move {
            let progress = BrokerProgress::new(
                Box::new(SimLag {
                    world: world.clone(),
                }),
                120,
            );
            let mut stage = WindowStage::new(SPEC, ENRICHED, WindowFields::default())
                .with_clock(sim_clock)
                .connected(
                    IDLE,
                    progress,
                    Box::new(SimCheckpoint {
                        world: world.clone(),
                    }),
                );
            let mut source = SimSource {
                world: world.clone(),
                member: w,
                topic: ENRICHED,
                group: WINDOW_GROUP,
                instance,
            };
            let watchdog = watchdog(&world, &stage, WINDOW_GROUP, ENRICHED, jitters[1]);
            let sink = SimSink { world, instance };
            drive(
                &mut stage,
                &mut source,
                &sink,
                Some(&watchdog),
                batching,
                &mut stop,
            )
            .await
        })
    };
    Instance {
        stop,
        tasks: vec![validating, windowing],
        updates,
    }
}

/// `kafka.stall_timeout_secs`' default.
const STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A stage's liveness watchdog, as the host runs it, on the model's stamps.
fn watchdog(
    world: &Shared,
    stage: &impl Stage,
    group: &'static str,
    topic: &'static str,
    jitter: Duration,
) -> Watchdog {
    let config = WatchdogConfig {
        stage: stage.name(),
        group_id: group.to_string(),
        topic: topic.to_string(),
        mode: WatchdogMode::On,
        stall_timeout: STALL_TIMEOUT,
        longest_turn: stage.idle_wait(),
        jitter,
    };
    let stamps = SimStamps {
        world: world.clone(),
        side_group: side_group(group),
        topic,
    };
    Watchdog::start_local(config, Health::default(), Some(stamps)).unwrap()
}

/// A run's parameters besides its seed.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Virtual time with input and faults; then the world heals and drains.
    faulty: Duration,
    /// Faults at all (a run without them must write no duplicates).
    faults: bool,
    /// See [`World::gapless`].
    gapless: bool,
}

/// A run's outcome.
#[derive(Debug)]
struct Report {
    counts: Counts,
    violations: Vec<String>,
    trace: Vec<String>,
    duplicates: u64,
    windows: usize,
}

fn event(world: &mut World, tags: &mut BTreeMap<(i32, i64), Tag>) {
    let now = sim_clock();
    let roll = world.rng.below(100);
    let (tag, t) = match roll {
        0 => (Tag::Future, now + 10 * 365 * 86_400),
        1 => (Tag::Broken, now),
        2..=3 => (Tag::Late, now - 120),
        _ => (Tag::OnTime, now - world.rng.below(4) as i64),
    };
    let country = COUNTRIES[world.rng.below(COUNTRIES.len() as u64) as usize];
    let user = world.rng.below(1000);
    let payload = if tag == Tag::Broken {
        b"{\"event_type\": \"click\", \"user_id\": ".to_vec()
    } else {
        format!(
            r#"{{"event_type": "click", "user_id": {user}, "page_url": "/page/{user}", "button_id": "b", "timestamp": {t}, "country": "{country}"}}"#
        )
        .into_bytes()
    };
    let partition = world.rng.below(INPUT_PARTITIONS as u64) as i32;
    let offset = world.end(INPUT, partition);
    tags.insert((partition, offset), tag);
    world.counts.produced += 1;
    world.append(
        INPUT,
        partition,
        Rec {
            payload,
            timestamp_ms: now * 1000,
        },
    );
}

/// `SIM_FAULTS=a,b`: only these kinds of fault (to narrow a failure down): fail,
/// crash, join, stop, rebalance, restore, swap, stall (a killed instance's partitions
/// kept by the coordinator).
fn allowed_kind(kind: &str) -> bool {
    std::env::var("SIM_FAULTS").map_or(true, |kinds| kinds.split(',').any(|k| k == kind))
}

fn allowed(roll: u64) -> bool {
    if std::env::var("SIM_FAULTS").is_err() {
        return true;
    }
    let kind = match roll {
        0..=2 => "fail",
        3..=5 => "crash",
        6 => "join",
        7 => "stop",
        8..=9 => "rebalance",
        10 => "restore",
        11..=12 => "swap",
        _ => return true,
    };
    allowed_kind(kind)
}

fn crash(world: &Shared, instances: &mut [Option<Instance>], i: usize, why: &str) {
    if let Some(instance) = instances[i].take() {
        for task in &instance.tasks {
            task.abort();
        }
        let mut w = lock(world);
        w.counts.crashes += 1;
        w.log(|| format!("instance {i} crashes: {why}"));
        w.drop_queue(i);
    }
}

async fn run(seed: u64, plan: Plan, traced: bool) -> Report {
    let world: Shared = Arc::new(Mutex::new(World::new(seed, traced)));
    lock(&world).gapless = plan.gapless;
    START.with(|s| s.set(Some(Instant::now())));
    let began = Instant::now();
    let mut tags: BTreeMap<(i32, i64), Tag> = BTreeMap::new();
    let mut instances: Vec<Option<Instance>> = (0..INSTANCES).map(|_| None).collect();
    // Crashed: the group notices at `leave_at`; the supervisor restarts at `restart_at`.
    let mut leave_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut restart_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut deployed = 0;
    instances[0] = Some(start(&world, 0, deployed));
    let mut quiet_until = began;
    let deadline = began + plan.faulty + Duration::from_secs(900);
    let drained = Duration::from_secs((SPEC.size + SPEC.grace) as u64) + IDLE * 3;
    loop {
        let now = Instant::now();
        let healing = now >= began + plan.faulty;
        let dt = 1 + lock(&world).rng.below(100);
        tokio::time::sleep(Duration::from_millis(dt)).await;
        let now = Instant::now();
        lock(&world).counts.steps += 1;
        // A stage that failed takes its process down; one that stopped leaves.
        for i in 0..INSTANCES {
            let failed = instances[i]
                .as_ref()
                .and_then(|inst| inst.tasks.iter().find(|t| t.is_finished()).map(|_| ()));
            if failed.is_some() {
                let inst = instances[i].as_mut().unwrap();
                let mut why = String::from("a stage ended");
                for t in inst.tasks.iter_mut().filter(|t| t.is_finished()) {
                    if let Ok(Err(e)) = t.await {
                        why = e.to_string();
                    }
                }
                crash(&world, &mut instances, i, &why);
                let mut w = lock(&world);
                w.leave_instance(i);
                let delay = 1 + w.rng.below(4);
                restart_at.insert(i, now + Duration::from_secs(delay));
            }
        }
        for (i, at) in leave_at.clone() {
            if now >= at || healing {
                let mut w = lock(&world);
                // Some coordinators keep a dead member's partitions (Tansu 0.6).
                if plan.faults && allowed_kind("stall") && w.rng.chance(333) {
                    w.leave_instance_stalled(i);
                } else {
                    w.leave_instance(i);
                }
                leave_at.remove(&i);
            }
        }
        for (i, at) in restart_at.clone() {
            if (now >= at || healing) && instances[i].is_none() && !leave_at.contains_key(&i) {
                instances[i] = Some(start(&world, i, deployed));
                restart_at.remove(&i);
            }
        }
        if healing {
            let mut w = lock(&world);
            w.deliver_all();
            if w.quiescent() && now >= began + plan.faulty + drained {
                break;
            }
            if now >= deadline {
                w.violations.push(format!(
                    "no progress: not everything committed {}s after the faults ended",
                    (deadline - began - plan.faulty).as_secs()
                ));
                break;
            }
            continue;
        }
        {
            let mut w = lock(&world);
            if now >= quiet_until {
                for _ in 0..w.rng.below(6) {
                    event(&mut w, &mut tags);
                }
                if plan.faults && w.rng.chance(2) {
                    let secs = 15 + w.rng.below(30);
                    quiet_until = now + Duration::from_secs(secs);
                    w.counts.quiet_spells += 1;
                    w.log(|| format!("quiet for {secs}s"));
                }
            }
            let n = w.rng.below(12) as usize;
            w.deliver(n);
        }
        if !plan.faults {
            continue;
        }
        let (roll, pick) = {
            let mut w = lock(&world);
            (w.rng.below(1000), w.rng.below(INSTANCES as u64) as usize)
        };
        let alive = instances.iter().filter(|i| i.is_some()).count();
        let roll = if allowed(roll) { roll } else { 999 };
        match roll {
            0..=2 => lock(&world).fail_one(),
            3..=5 if instances[pick].is_some() => {
                crash(&world, &mut instances, pick, "killed");
                let mut w = lock(&world);
                let notice = w.rng.below(15);
                let restart = 1 + w.rng.below(5);
                leave_at.insert(pick, now + Duration::from_secs(notice));
                restart_at.insert(pick, now + Duration::from_secs(notice.max(restart)));
            }
            6 if instances[pick].is_none() && !restart_at.contains_key(&pick) => {
                lock(&world).counts.joins += 1;
                instances[pick] = Some(start(&world, pick, deployed));
            }
            7 if alive > 1 && instances[pick].is_some() => {
                // A clean stop: what is in flight is committed, then the member leaves.
                let instance = instances[pick].take().unwrap();
                let _ = instance.stop.send(true);
                for task in instance.tasks {
                    loop {
                        if task.is_finished() {
                            break;
                        }
                        lock(&world).deliver(8);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let _ = task.await;
                }
                let mut w = lock(&world);
                w.counts.leaves += 1;
                w.log(|| format!("instance {pick} stops"));
                w.leave_instance(pick);
            }
            8..=9 => {
                let mut w = lock(&world);
                w.counts.rebalances += 1;
                let group = if roll == 8 {
                    VALIDATE_GROUP
                } else {
                    WINDOW_GROUP
                };
                w.rebalance(group);
            }
            10 => lock(&world).fail_restore = true,
            11..=12 => {
                // A new chain deployed: every running instance's watcher sends it.
                let mut w = lock(&world);
                deployed =
                    (deployed + 1 + w.rng.below(CHAINS.len() as u64 - 1) as usize) % CHAINS.len();
                w.counts.plugin_swaps += 1;
                for (i, instance) in instances.iter().enumerate() {
                    let Some(instance) = instance else { continue };
                    let (members, label) = chain(deployed);
                    w.log(|| format!("instance {i}: chain [{label}] deployed"));
                    let update = ChainUpdate {
                        members,
                        seen_at: std::time::Instant::now(),
                    };
                    if instance.updates.try_send(update).is_ok() {
                        w.chain_since.insert(i, (now, label));
                    }
                }
            }
            _ => {}
        }
    }
    for instance in instances.iter_mut().filter_map(Option::take) {
        let _ = instance.stop.send(true);
        for task in instance.tasks {
            while !task.is_finished() {
                lock(&world).deliver_all();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if let Ok(Err(e)) = task.await {
                lock(&world)
                    .violations
                    .push(format!("a stage failed while stopping: {e}"));
            }
        }
    }
    let mut w = lock(&world);
    w.deliver_all();
    let (duplicates, windows) = check(&mut w, &tags, plan);
    Report {
        counts: w.counts.clone(),
        violations: std::mem::take(&mut w.violations),
        trace: w.trace.take().unwrap_or_default(),
        duplicates,
        windows,
    }
}

/// Wall-clock seconds at which a record was written (see `Rec::timestamp_ms`).
fn written_at(rec: &Rec) -> f64 {
    BASE as f64 + rec.timestamp_ms as f64 / 1000.0
}

/// How long the window stage may take to read a record once written: a window that
/// closes within this of a record's arrival may close without it.
const READ_SLACK: f64 = 1.0;

/// Starts of the windows holding `t`, oldest first (computed apart from the host's).
fn starts(t: i64) -> Vec<i64> {
    let last = t - t.rem_euclid(SPEC.advance);
    let mut out: Vec<i64> = (0..)
        .map(|k| last - k * SPEC.advance)
        .take_while(|s| *s > t - SPEC.size)
        .collect();
    out.reverse();
    out
}

/// The end-state invariants; returns the duplicates written and the windows checked.
///
/// Windows: the watermark never passes the wall clock here (no event is stamped ahead
/// of it), so a window cannot close before its end plus grace. An event written to
/// `enriched_events` before then (less [`READ_SLACK`]) must be counted in it; one
/// written later may be counted or not (its window may be gone), and is declared late
/// only if every one of its windows could be gone; one whose windows were all emitted
/// before it was written must be declared late, never dropped in silence.
fn check(w: &mut World, tags: &BTreeMap<(i32, i64), Tag>, plan: Plan) -> (u64, usize) {
    let mut violations = Vec::new();
    // Every input's enriched copies (payload, when written), by input position.
    let mut enriched: BTreeMap<(i32, i64), Vec<(Json, f64)>> = BTreeMap::new();
    for (partition, records) in w.records(ENRICHED).iter().enumerate() {
        for (offset, rec) in records.iter().enumerate() {
            let mut v: Json = serde_json::from_slice(&rec.payload).unwrap();
            let at = (
                v["source_partition"].as_i64().unwrap() as i32,
                v["source_offset"].as_i64().unwrap(),
            );
            // Where it is on the enriched topic, for the messages below.
            v["at"] = format!("{ENRICHED}/{partition}@{offset}").into();
            enriched.entry(at).or_default().push((v, written_at(rec)));
        }
    }
    let mut dead: BTreeMap<(i32, i64), Vec<String>> = BTreeMap::new();
    let mut late: BTreeSet<(i32, i64)> = BTreeSet::new();
    for rec in w.records(DLQ).iter().flatten() {
        let v: Json = serde_json::from_slice(&rec.payload).unwrap();
        let code = v["code"].as_str().unwrap_or_default().to_string();
        if v["source_topic"] == INPUT {
            let at = (
                v["source_partition"].as_i64().unwrap() as i32,
                v["source_offset"].as_i64().unwrap(),
            );
            dead.entry(at).or_default().push(code);
        } else if code == "late_event" {
            let raw: Json = serde_json::from_str(v["raw"].as_str().unwrap()).unwrap();
            late.insert((
                raw["source_partition"].as_i64().unwrap() as i32,
                raw["source_offset"].as_i64().unwrap(),
            ));
        } else {
            violations.push(format!("window stage dead-lettered {code}: {v}"));
        }
    }
    let mut duplicates = 0;
    for (at, tag) in tags {
        let (e, d) = (
            enriched.get(at).map_or(0, Vec::len),
            dead.get(at).map_or(0, Vec::len),
        );
        duplicates += (e + d).saturating_sub(1) as u64;
        let ok = match tag {
            Tag::OnTime | Tag::Late => e > 0 && d == 0,
            Tag::Future => {
                e == 0
                    && dead
                        .get(at)
                        .is_some_and(|c| c.iter().all(|c| c == "future_event"))
            }
            Tag::Broken => e == 0 && d > 0,
        };
        if !ok {
            violations.push(format!(
                "input {at:?} ({tag:?}): {e} enriched, DLQ {:?}",
                dead.get(at)
            ));
        }
    }
    if !plan.faults && duplicates > 0 {
        violations.push(format!("{duplicates} duplicates in a run without faults"));
    }
    // Emitted windows: every count, and when the first emission was written.
    let mut emitted: BTreeMap<(String, i64), (Vec<u64>, f64)> = BTreeMap::new();
    for rec in w.records(AVERAGES).iter().flatten() {
        let v: Json = serde_json::from_slice(&rec.payload).unwrap();
        let start = timefmt::parse(v["window_start"].as_str().unwrap()).unwrap();
        let key = v["country"].as_str().unwrap().to_string();
        let slot = emitted
            .entry((key, start))
            .or_insert((Vec::new(), written_at(rec)));
        slot.0.push(v["event_count"].as_u64().unwrap());
    }
    // Per window: the events that must be in it, and all that may be.
    let mut expected: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for (at, copies) in &enriched {
        let (v, written) = &copies[0];
        let key = v["country"].as_str().unwrap().to_string();
        let t = v["timestamp"].as_i64().unwrap();
        let windows = starts(t);
        for start in &windows {
            let slot = expected.entry((key.clone(), *start)).or_default();
            slot.1 += 1;
            if *written <= (start + SPEC.size + SPEC.grace) as f64 - READ_SLACK {
                slot.0 += 1;
            }
        }
        let newest = windows.last().copied().unwrap_or(t);
        if late.contains(at) && *written <= (newest + SPEC.size + SPEC.grace) as f64 - READ_SLACK {
            violations.push(format!(
                "input {at:?} (t={t}, written at {written:.1}) declared late while its window {newest} was open"
            ));
        }
        let gone = windows.iter().all(|s| {
            emitted
                .get(&(key.clone(), *s))
                .is_some_and(|(_, first)| first < written)
        });
        if gone && !late.contains(at) {
            violations.push(format!(
                "input {at:?} (t={t}, written at {written:.1} to {}): every window emitted before it, and not dead-lettered",
                v["at"]
            ));
        }
    }
    for (window, (low, high)) in &expected {
        match emitted.get(window) {
            None if *low > 0 => violations.push(format!(
                "window {window:?} ({low}..={high} events) never emitted"
            )),
            None => {}
            Some((counts, _)) => {
                if let Some(c) = counts.iter().find(|c| **c < *low || **c > *high) {
                    violations.push(format!(
                        "window {window:?} emitted with {c} events, expected {low}..={high} (all emissions: {counts:?})"
                    ));
                }
            }
        }
    }
    for window in emitted.keys().filter(|k| !expected.contains_key(*k)) {
        violations.push(format!("window {window:?} emitted, but no event is in it"));
    }
    w.violations.extend(violations);
    (duplicates, expected.len())
}

fn run_seed(seed: u64, plan: Plan, traced: bool) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(run(seed, plan, traced))
}

const PLAN: Plan = Plan {
    faulty: Duration::from_secs(240),
    faults: true,
    gapless: true,
};

/// Runs `seeds`, panicking with the first failing seed and how to replay it.
fn sweep(seeds: impl Iterator<Item = u64>) -> Vec<Report> {
    let mut reports = Vec::new();
    for seed in seeds {
        let report = run_seed(seed, PLAN, false);
        assert!(
            report.violations.is_empty(),
            "seed {seed} failed (replay: SIM_SEED={seed} cargo test --release -p streamhost --test sim replay -- --exact --nocapture):\n  {}\n{:?}",
            report.violations.join("\n  "),
            report.counts
        );
        reports.push(report);
    }
    reports
}

/// The CI budget: a fixed set of seeds, a few seconds.
#[test]
fn seeds_hold_every_invariant() {
    let n: u64 = std::env::var("SIM_CI_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let reports = sweep(0..n);
    let sum = |f: fn(&Counts) -> u64| reports.iter().map(|r| f(&r.counts)).sum::<u64>();
    let crashes = sum(|c| c.crashes);
    let failures = sum(|c| c.delivery_failures);
    let (swaps, stalls, rejoins) = (
        sum(|c| c.plugin_swaps),
        sum(|c| c.stalls),
        sum(|c| c.rejoins),
    );
    // The faults the invariants are about did happen.
    assert!(
        crashes > 0 && failures > 0 && swaps > 0 && stalls > 0 && rejoins > 0,
        "{crashes} crashes, {failures} failures, {swaps} plugin swaps, {stalls} stalls, {rejoins} rejoins"
    );
}

/// Without faults, the same input gives exactly one outcome per record.
#[test]
fn a_run_without_faults_writes_no_duplicates() {
    for seed in 0..3 {
        let report = run_seed(
            seed,
            Plan {
                faulty: Duration::from_secs(120),
                faults: false,
                ..PLAN
            },
            false,
        );
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
        assert_eq!(report.duplicates, 0);
        assert!(report.windows > 50, "{} windows", report.windows);
    }
}

/// A seed replays exactly: the same trace twice.
#[test]
fn a_seed_replays_exactly() {
    let a = run_seed(7, PLAN, true);
    let b = run_seed(7, PLAN, true);
    assert!(a.trace.len() > 100, "{} steps traced", a.trace.len());
    if let Some(i) =
        (0..a.trace.len().max(b.trace.len())).find(|i| a.trace.get(*i) != b.trace.get(*i))
    {
        panic!(
            "the runs part at step {i}: {:?} / {:?}",
            a.trace.get(i),
            b.trace.get(i)
        );
    }
}

/// The simulator finds a known hole: without `enable.gapless.guarantee` (with
/// `kafka.idempotence = false`), records enqueued after a failed one are written before
/// the stage sees the failure; the failed record comes again after them and the window
/// stage's duplicate check (highest source offset counted) drops it: an undercount.
#[test]
fn without_gapless_delivery_a_failed_record_goes_uncounted() {
    let plan = Plan {
        gapless: false,
        ..PLAN
    };
    let found = (0..40).find(|seed| {
        run_seed(*seed, plan, false)
            .violations
            .iter()
            .any(|v| v.contains("emitted with"))
    });
    println!("undercount found at seed {found:?}");
    assert!(found.is_some(), "no seed of 40 found the undercount");
}

/// `SIM_SEED=N`: one seed, its trace printed.
#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let report = run_seed(seed, PLAN, true);
    for line in &report.trace {
        println!("{line}");
    }
    println!("{:?}", report.counts);
    assert!(
        report.violations.is_empty(),
        "seed {seed}:\n  {}",
        report.violations.join("\n  ")
    );
}

/// `SIM_SEEDS=N [SIM_FROM=M] [SIM_RESULT=file]`: a longer exploration, figures to a file.
#[test]
#[ignore = "a long run: see the module's doc"]
fn explore() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (from, n) = (var("SIM_FROM", 1_000), var("SIM_SEEDS", 1_000));
    let began = std::time::Instant::now();
    let reports: Vec<Report> = (from..from + n)
        .map(|seed| run_seed(seed, PLAN, false))
        .collect();
    let failed: Vec<serde_json::Value> = reports
        .iter()
        .zip(from..)
        .filter(|(r, _)| !r.violations.is_empty())
        .map(|(r, seed)| serde_json::json!({"seed": seed, "first": r.violations[0]}))
        .collect();
    let sum = |f: fn(&Counts) -> u64| reports.iter().map(|r| f(&r.counts)).sum::<u64>();
    let result = serde_json::json!({
        "seeds": n,
        "from": from,
        "virtual_seconds_per_seed": PLAN.faulty.as_secs(),
        "wall_seconds": began.elapsed().as_secs_f64(),
        "steps": sum(|c| c.steps),
        "events": sum(|c| c.produced),
        "records_delivered": sum(|c| c.delivered),
        "faults": {
            "delivery_failures": sum(|c| c.delivery_failures),
            "crashes": sum(|c| c.crashes),
            "joins": sum(|c| c.joins),
            "clean_stops": sum(|c| c.leaves),
            "forced_rebalances": sum(|c| c.rebalances),
            "restore_failures": sum(|c| c.restore_failures),
            "quiet_spells": sum(|c| c.quiet_spells),
            "plugin_swaps": sum(|c| c.plugin_swaps),
            "coordinator_stalls": sum(|c| c.stalls),
            "watchdog_rejoins": sum(|c| c.rejoins),
            "fenced_commits": sum(|c| c.fenced_commits),
        },
        "duplicates": reports.iter().map(|r| r.duplicates).sum::<u64>(),
        "windows_checked": reports.iter().map(|r| r.windows as u64).sum::<u64>(),
        "failed_seeds": failed,
    });
    println!("{result:#}");
    if let Ok(path) = std::env::var("SIM_RESULT") {
        std::fs::write(path, format!("{result:#}\n")).unwrap();
    }
    assert!(failed.is_empty(), "{} seeds failed", failed.len());
}
