//! Compile time through the host's runtime (its engine settings): every component in
//! plugins/dist, and synthetic components of growing size, ordinary (many small
//! functions) and hostile (one function as large as the validator allows, thousands of
//! locals live across a loop). The figures behind the defaults of `plugins.max_file_mb`
//! and `plugins.compile_deadline_ms` (docs/design.md). Writes a JSON result file.
//!
//!     STREAMHOST_PLUGINS_BUILT=$PWD/plugins/dist \
//!         BENCH_OUT=$PWD/bench/results/DATE-compile.json cargo bench --bench compile
//!
//! (cargo runs benchmarks in `host/`: give BENCH_OUT as an absolute path.)
//!
//! `BENCH_MAX_KB` (4096): the largest synthetic size; a kind stops growing once one
//! compile takes over `BENCH_STOP_SECS` (60).

// A benchmark binary: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhost::plugins::{PluginRuntime, SandboxLimits};
use streamhost::schema::Schema;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Many small functions, as a large ordinary plugin has.
fn ordinary(target: usize) -> String {
    let mut wat = String::from("(module\n");
    let mut k = 0;
    while wat.len() < target * 4 {
        write!(
            wat,
            "(func (export \"f{k}\") (param i32 i32) (result i32) (local i32)"
        )
        .unwrap();
        for j in 0..40 {
            write!(
                wat,
                " local.get 0 i32.const {j} i32.mul local.get 1 i32.xor local.tee 2 \
                 local.get 2 i32.const {k} i32.add i32.rotl local.set 0"
            )
            .unwrap();
        }
        wat.push_str(" local.get 0)\n");
        k += 1;
    }
    wat.push(')');
    wat
}

/// One huge function: 5000 i64 locals, all live across a loop, mixed at random.
fn hostile(target: usize) -> String {
    let locals = 5000;
    let mut wat = format!(
        "(module (func (export \"f\") (param i32) (result i64) (local {})\n",
        "i64 ".repeat(locals)
    );
    wat.push_str("(loop $l\n");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        1 + (x as usize) % locals
    };
    while wat.len() < target * 3 {
        let (a, b, c) = (next(), next(), next());
        writeln!(wat, "local.get {a} local.get {b} i64.add local.set {c}").unwrap();
    }
    wat.push_str("local.get 0 i32.const 1 i32.sub local.tee 0 br_if $l)\n");
    for i in 1..=locals.min(2000) {
        write!(wat, "local.get {i} ").unwrap();
        if i > 1 {
            wat.push_str("i64.add ");
        }
    }
    wat.push_str(")\n)");
    wat
}

/// `module` (text) as a component's only core module, as binary.
fn component(module: &str) -> Vec<u8> {
    let core = wat::parse_str(module).unwrap();
    // The component preamble, then a core-module section (id 1) holding the module.
    let mut out = Vec::new();
    out.extend_from_slice(b"\0asm\x0d\0\x01\0");
    out.push(1);
    leb(&mut out, core.len());
    out.extend_from_slice(&core);
    out
}

fn leb(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn timed(rt: &PluginRuntime, bytes: &[u8], name: &str) -> Duration {
    let started = Instant::now();
    // Refused after the compile (no plugin interface): the time is the compile's.
    let result = rt.compile(bytes, name, Vec::new());
    let took = started.elapsed();
    if let Err(e) = &result {
        let text = e.to_string();
        assert!(
            !text.contains("not a valid WebAssembly") && !text.contains("refused"),
            "{name}: {text}"
        );
    }
    took
}

fn main() {
    let dist: PathBuf = std::env::var_os("STREAMHOST_PLUGINS_BUILT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"));
    let max_kb: usize = env("BENCH_MAX_KB", 4096);
    let stop = Duration::from_secs(env("BENCH_STOP_SECS", 60));
    let limits = SandboxLimits {
        file_bytes: 1 << 30,
        compile_deadline: Duration::from_secs(3600),
        ..SandboxLimits::default()
    };
    let rt = PluginRuntime::new(limits, Arc::new(Schema::brief())).unwrap();
    let mut rows = Vec::new();
    println!("| component | bytes | compile ms |\n|---|---:|---:|");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dist)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-plugins", dist.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The median of three: the first compile also warms the engine up.
        let mut runs: Vec<Duration> = (0..3).map(|_| timed(&rt, &bytes, &name)).collect();
        runs.sort();
        rows.push((name, "real", bytes.len(), runs[1]));
    }

    for (kind, make) in [
        ("ordinary", ordinary as fn(usize) -> String),
        ("hostile", hostile),
    ] {
        let mut kb = 256;
        while kb <= max_kb {
            let bytes = component(&make(kb << 10));
            let took = timed(&rt, &bytes, kind);
            rows.push((format!("{kind} {kb} KiB"), kind, bytes.len(), took));
            if took > stop {
                break;
            }
            kb *= 4;
        }
    }

    let mut json = format!(
        "{{\"date\": \"{}\", \"bench\": \"plugin compile time (host/benches/compile.rs), one compile each \
         (real plugins: median of 3), through the host's runtime\", \"command\": \"BENCH_MAX_KB={max_kb} \
         cargo bench --bench compile\", \"machine\": \"the development machine: 2 shared cores, other \
         builds running\", \"runs\": [\n",
        std::env::var("BENCH_DATE").unwrap_or_default()
    );
    for (i, (name, kind, bytes, took)) in rows.iter().enumerate() {
        let ms = took.as_secs_f64() * 1000.0;
        println!("| {name} | {bytes} | {ms:.0} |");
        let per_mib = ms / (*bytes as f64 / f64::from(1 << 20));
        writeln!(
            json,
            "  {{\"component\": \"{name}\", \"kind\": \"{kind}\", \"bytes\": {bytes}, \"compile_ms\": {ms:.1}, \"ms_per_mib\": {per_mib:.0}}}{}",
            if i + 1 < rows.len() { "," } else { "" }
        )
        .unwrap();
    }
    json.push_str("]}\n");
    if let Some(out) = std::env::var_os("BENCH_OUT") {
        std::fs::write(&out, json).unwrap();
        println!("written to {}", PathBuf::from(out).display());
    }
}
