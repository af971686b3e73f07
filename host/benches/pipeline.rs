//! In-process pipeline benchmark: decode → plugin chain → route → window on generated
//! events, the chain once as WebAssembly components (plugins/dist) and once as the same
//! rules compiled natively. Single thread; prints a markdown table.
//!
//!     STREAMHOST_PLUGINS_BUILT=plugins/dist cargo bench --bench pipeline
//!     BENCH_EVENTS=1000000 BENCH_OUT=/tmp/pipeline.md cargo bench --bench pipeline
//!
//! `BENCH_BASELINE_DIST=DIR` (a directory with another build of `enrich.wasm` and
//! `quality.wasm`, e.g. the WIT 0.2 ones: docs/benchmarks.md) adds rows for that chain,
//! measured in the same run.
//!
//! `BENCH_PROFILE=1` (`=native`: with the native rules) times only the whole validate
//! stage, round after round: the run to record with `perf record` or to count with
//! `valgrind --tool=callgrind` (bench/callgrind-stage).
//!
//! Figures are medians of BENCH_ROUNDS (5) rounds; compare the ratios, not the absolute
//! numbers, on a shared machine.

// A benchmark binary: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhost::event::{Event, Value};
use streamhost::plugins::{Chain, PluginRuntime, SandboxLimits, Verdict};
use streamhost::records::dlq::{DlqRecord, Step};
use streamhost::records::SourceRecord;
use streamhost::schema::Schema;
use streamhost::stages::validate::Validate;
use streamhost::stages::window::operator::{WindowOperator, WindowSpec};

#[path = "../tests/native_rules/mod.rs"]
mod native_rules;
use native_rules::NativeChain;
use streamhost::stages::validate::Judge;

const BATCH: usize = 1024;

/// The host binary's allocator, counting the allocations made while `COUNTING`.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: forwards every call to mimalloc unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// Heap allocations (and reallocations) per record of `f` over `records`.
fn allocations_per_record(records: &[SourceRecord], mut f: impl FnMut(&[SourceRecord])) -> f64 {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for batch in records.chunks(BATCH) {
        f(batch);
    }
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed) as f64 / records.len() as f64
}

/// The validate stage for the brief's schema, keyed by country.
fn validate() -> &'static Validate {
    static VALIDATE: std::sync::OnceLock<Validate> = std::sync::OnceLock::new();
    VALIDATE.get_or_init(|| {
        Validate::new(Arc::new(Schema::brief()), "country", "my_events", 1 << 20).unwrap()
    })
}

fn payloads(n: usize) -> Vec<SourceRecord> {
    // Deterministic mix like the brief's generator: ~14 % bad countries, ~5 % bad ids.
    let countries = ["US", "CA", "UK", "DE", "FR", "JP", "XX"];
    (0..n)
        .map(|i| {
            let user = if i % 20 == 0 { -((i % 1000) as i64) } else { (i % 1000) as i64 + 1 };
            let device = if i % 2 == 0 { r#", "device_type": "mobile""# } else { "" };
            let json = format!(
                r#"{{"event_type": "page_view", "user_id": {user}, "page_url": "/page/{}", "button_id": "5f1c8a3e-0b7d-4c55-9a6e-{:012}", "timestamp": {}, "country": "{}"{device}}}"#,
                i % 100,
                i,
                1_700_000_000 + i as i64 / 50,
                countries[i % 7]
            );
            SourceRecord { partition: (i % 3) as i32, offset: i as i64, timestamp_ms: 0, payload: json.into_bytes() }
        })
        .collect()
}

fn wasm_chain(dist: &std::path::Path) -> Chain {
    let rt = PluginRuntime::new(
        SandboxLimits {
            memory_bytes: 64 << 20,
            batch_deadline: Duration::from_secs(5),
            ..SandboxLimits::default()
        },
        validate().decoder.schema().clone(),
    )
    .unwrap();
    let load = |name: &str| {
        let bytes = std::fs::read(dist.join(name)).unwrap_or_else(|e| {
            panic!("{}/{name}: {e}; run scripts/build-plugins", dist.display())
        });
        Arc::new(rt.compile(&bytes, name, Vec::new()).unwrap())
            .instantiate_checked()
            .unwrap()
    };
    Chain::of(vec![load("enrich.wasm"), load("quality.wasm")])
}

/// The same rules as enrich + quality, natively, judging in place of the chain.
fn native_chain(allowed: &quality::AllowList) -> NativeChain {
    NativeChain::new(
        validate().decoder.schema(),
        allowed,
        ("enrich@1.0.0,quality@1.0.0", "native"),
    )
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// ns per event of `f` over all records, median of `rounds`.
fn time<F: FnMut() -> usize>(rounds: usize, n: usize, mut f: F) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let touched = f();
        std::hint::black_box(touched);
        samples.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    median(samples)
}

fn decode_all(records: &[SourceRecord]) -> Vec<(usize, Event)> {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| validate().decoder.decode(&r.payload).ok().map(|d| (i, d)))
        .collect()
}

fn main() {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let records = payloads(n);
    let decoded = decode_all(&records);
    let events: Vec<Event> = decoded.iter().map(|(_, d)| d.clone()).collect();
    let allowed = quality::Settings::parse(&[]).unwrap().allowed_countries;
    let mut native = native_chain(&allowed);
    let dist = std::env::var_os("STREAMHOST_PLUGINS_BUILT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"));
    let mut chain = wasm_chain(&dist);
    let mut baseline =
        std::env::var_os("BENCH_BASELINE_DIST").map(|d| wasm_chain(&PathBuf::from(d)));
    let wit = |c: &Chain| {
        c.members()
            .iter()
            .map(|m| format!("{} (WIT {})", m.plugin.id(), m.plugin.compiled.wit_version))
            .collect::<Vec<_>>()
            .join(", ")
    };

    if let Some(profile) = std::env::var_os("BENCH_PROFILE") {
        // Only the whole stage, round after round: the run to record with `perf` or
        // count with callgrind. `BENCH_PROFILE=native`: with the native rules.
        let native_rules = profile == "native";
        for _ in 0..rounds {
            let t = time(1, n, || {
                records
                    .chunks(BATCH)
                    .map(|b| match native_rules {
                        true => validate().process_batch(&mut native, b).len(),
                        false => validate().process_batch(&mut chain, b).len(),
                    })
                    .sum()
            });
            let rules = if native_rules {
                "native rules"
            } else {
                "WASM chain"
            };
            println!("whole validate stage with {rules}: {t:.0} ns/event");
        }
        return;
    }
    // A fresh instance of a compiled plugin, as after a trap (plus the load-time
    // self-check, which a recovery skips): median of 200.
    let fresh_us = {
        let compiled = chain.members()[1].plugin.compiled.clone();
        let mut samples: Vec<f64> = (0..200)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(compiled.clone().instantiate_checked().unwrap());
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        samples[samples.len() / 2]
    };
    let t_decode = time(rounds, n, || decode_all(&records).len());
    let t_wasm = time(rounds, events.len(), || {
        events
            .chunks(BATCH)
            .map(|b| chain.process(b.to_vec()).len())
            .sum()
    });
    let t_base = baseline.as_mut().map(|chain| {
        time(rounds, events.len(), || {
            events
                .chunks(BATCH)
                .map(|b| chain.process(b.to_vec()).len())
                .sum()
        })
    });
    let t_native = time(rounds, events.len(), || {
        events
            .chunks(BATCH)
            .map(|b| native.judge(b.to_vec()).len())
            .sum()
    });
    let t_clone = time(rounds, events.len(), || {
        events.chunks(BATCH).map(|b| b.to_vec().len()).sum()
    });
    let outcomes: Vec<Verdict> = events
        .chunks(BATCH)
        .flat_map(|b| native.judge(b.to_vec()))
        .collect();
    let t_route = time(rounds, outcomes.len(), || {
        outcomes
            .iter()
            .zip(&decoded)
            .map(|(o, (i, _))| match o {
                Verdict::Accepted(e) => validate()
                    .enricher
                    .output(e, &records[*i], "enrich@0.2.0,quality@0.2.0")
                    .payload
                    .len(),
                Verdict::Rejected(r) => DlqRecord::rejecting(
                    &records[*i],
                    "my_events",
                    Step::Plugin,
                    &r.rejected_by,
                    &r.code,
                    &r.message,
                )
                .payload
                .len(),
            })
            .sum()
    });
    let accepted: Vec<&Event> = outcomes
        .iter()
        .filter_map(|o| {
            if let Verdict::Accepted(e) = o {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    let t_window = time(rounds, accepted.len(), || {
        let mut op = WindowOperator::new(WindowSpec {
            size: 300,
            advance: 60,
            grace: 30,
        });
        let schema = validate().decoder.schema();
        let (key, time) = (schema.index("country").unwrap(), schema.time());
        for (i, e) in accepted.iter().enumerate() {
            let country = e.get(key).and_then(Value::as_text).unwrap_or("");
            let t = e.get(time).and_then(Value::as_integer).unwrap_or(0);
            op.observe((i % 3) as i32, country, t, false);
        }
        op.take_closed().len()
    });
    // The whole stage three ways, interleaved within each round so that the load of
    // this shared machine at that moment hits all of them alike; the target ratio is
    // the median of the per-round ratios.
    let mut full_wasm = Vec::new();
    let mut full_native = Vec::new();
    let mut full_base = Vec::new();
    fn whole(records: &[SourceRecord], judge: &mut impl Judge) -> usize {
        records
            .chunks(BATCH)
            .map(|b| validate().process_batch(judge, b).len())
            .sum()
    }
    for _ in 0..rounds {
        full_wasm.push(time(1, n, || whole(&records, &mut chain)));
        full_native.push(time(1, n, || whole(&records, &mut native)));
        if let Some(chain) = baseline.as_mut() {
            full_base.push(time(1, n, || whole(&records, chain)));
        }
    }
    let per_round = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    let t_full_wasm = median(full_wasm.clone());
    let t_full_native = median(full_native.clone());
    let ratio_full = per_round(&full_native, &full_wasm);
    let t_full_base = (!full_base.is_empty()).then(|| median(full_base.clone()));
    let ratio_full_base = (!full_base.is_empty()).then(|| per_round(&full_native, &full_base));
    let speedup = (!full_base.is_empty()).then(|| per_round(&full_base, &full_wasm));

    let wasm_net = t_wasm - t_clone;
    let native_net = t_native - t_clone;
    let pipeline_native = t_decode + native_net + t_route;
    let mut rows = vec![
        ("decode (host)".to_string(), t_decode),
        (
            "plugin chain enrich+quality, WASM (per decoded event, batches of 1024)".to_string(),
            wasm_net,
        ),
    ];
    if let Some(t) = t_base {
        rows.push(("same chain, baseline build".to_string(), t - t_clone));
    }
    rows.extend([
        ("same rules, native Rust".to_string(), native_net),
        (
            "route (JSON for enriched_events / dlq)".to_string(),
            t_route,
        ),
        ("window operator (per accepted event)".to_string(), t_window),
        (
            "whole validate stage with WASM chain (process_batch)".to_string(),
            t_full_wasm,
        ),
    ]);
    if let Some(t) = t_full_base {
        rows.push((
            "whole validate stage with the baseline WASM chain".to_string(),
            t,
        ));
    }
    rows.push((
        "whole validate stage with native rules (process_batch with the rules as Rust)".to_string(),
        t_full_native,
    ));
    rows.push((
        "(sum of decode + native rules + route, as in earlier runs)".to_string(),
        pipeline_native,
    ));
    // Allocations on the accept path (events every rule accepts) and on the mixed set.
    let accepted_records: Vec<SourceRecord> = outcomes
        .iter()
        .zip(&decoded)
        .filter(|(o, _)| matches!(o, Verdict::Accepted(_)))
        .map(|(_, (i, _))| records[*i].clone())
        .collect();
    let allocs_accept_wasm = allocations_per_record(&accepted_records, |b| {
        validate().process_batch(&mut chain, b);
    });
    let allocs_accept_native = allocations_per_record(&accepted_records, |b| {
        validate().process_batch(&mut native, b);
    });
    let allocs_all_wasm = allocations_per_record(&records, |b| {
        validate().process_batch(&mut chain, b);
    });
    let mut out = String::new();
    out.push_str(&format!(
        "In-process pipeline, {n} events, median of {rounds} rounds, one thread.\n\
         WASM chain: {}\n",
        wit(&chain)
    ));
    if let Some(b) = &baseline {
        out.push_str(&format!("Baseline chain: {}\n", wit(b)));
    }
    out.push('\n');
    out.push_str("| stage | ns/event |\n|---|---:|\n");
    for (name, ns) in rows {
        out.push_str(&format!("| {name} | {ns:.0} |\n"));
    }
    out.push_str(&format!(
        "\nRatios (same run): WASM chain / native rules = {:.1}x; whole stage native / WASM = {:.2} \
         (median of per-round ratios); events/s per core, whole stage with WASM: {:.0}\n",
        wasm_net / native_net,
        ratio_full,
        1e9 / t_full_wasm
    ));
    out.push_str(&format!(
        "Fresh plugin instance (instantiate, configure, self-check), as after a trap: {fresh_us:.0} µs\n"
    ));
    out.push_str(&format!(
        "Heap allocations per event, whole validate stage: accepted events {allocs_accept_wasm:.2} \
         with the WASM chain, {allocs_accept_native:.2} with native rules; all events (a fifth \
         rejected) {allocs_all_wasm:.2} with the WASM chain\n"
    ));
    if let (Some(chain), Some(ratio), Some(speedup)) = (t_base, ratio_full_base, speedup) {
        out.push_str(&format!(
            "Baseline (same run): WASM chain / native rules = {:.1}x; whole stage native / WASM = {:.2}; \
             whole stage baseline / new = {:.2}x\n",
            (chain - t_clone) / native_net,
            ratio,
            speedup
        ));
    }
    print!("{out}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(&path, out).unwrap();
        eprintln!("written to {path}");
    }
}
