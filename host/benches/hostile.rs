//! The decoder on the worst shapes of a payload (tests/hostile), next to the brief's
//! events: time per record and per byte at several sizes, so that time linear in the
//! size shows as a flat ns/byte. Single thread; prints a markdown table.
//!
//!     cargo bench --bench hostile
//!     BENCH_SIZES=65536,262144,1000000 BENCH_ROUNDS=5 BENCH_JSON=out.json cargo bench --bench hostile
//!
//! Uses only `Decoder::new` and `decode`, so that the same file builds against an
//! older host for before/after figures. A shape that takes over 2 s is timed once.

// A benchmark binary: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use streamhost::decode::Decoder;
use streamhost::schema::Schema;

#[path = "../tests/hostile/mod.rs"]
mod hostile;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median seconds per decode of `payload`, and its verdict.
fn time(decoder: &Decoder, payload: &[u8], rounds: usize) -> (f64, String) {
    let verdict = match decoder.decode(payload) {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code().as_str().to_string(),
    };
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        std::hint::black_box(decoder.decode(std::hint::black_box(payload)).is_ok());
        let took = start.elapsed().as_secs_f64();
        samples.push(took);
        if took > 2.0 {
            break;
        }
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[samples.len() / 2], verdict)
}

fn main() {
    let rounds: usize = env_or("BENCH_ROUNDS", 5);
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "65536,262144,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let decoder = Decoder::new(Arc::new(Schema::brief()), 1 << 20);

    // The brief's events, as the pipeline bench makes them: many per timing.
    let brief: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"event_type": "page_view", "user_id": {}, "page_url": "/page/{}", "button_id": "5f1c8a3e-0b7d-4c55-9a6e-{i:012}", "timestamp": {}, "country": "US", "device_type": "mobile"}}"#,
                i % 1000 + 1,
                i % 100,
                1_700_000_000 + i / 50
            )
        })
        .collect();
    let brief_bytes: usize = brief.iter().map(String::len).sum();
    let mut brief_samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            for p in &brief {
                std::hint::black_box(decoder.decode(p.as_bytes()).is_ok());
            }
            start.elapsed().as_secs_f64()
        })
        .collect();
    brief_samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let brief_s = brief_samples[brief_samples.len() / 2];

    let mut rows = vec![serde_json::json!({
        "shape": "brief-event",
        "what": "the brief's event (the pipeline bench's), 10,000 of them",
        "bytes": brief_bytes / brief.len(),
        "verdict": "ok",
        "us_per_record": brief_s * 1e6 / brief.len() as f64,
        "ns_per_byte": brief_s * 1e9 / brief_bytes as f64,
    })];
    let mut table = String::from(
        "| shape | bytes | verdict | µs/record | ns/byte |\n|---|---:|---|---:|---:|\n",
    );
    let row = |table: &mut String, r: &serde_json::Value| {
        table.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.2} |\n",
            r["shape"].as_str().unwrap(),
            r["bytes"],
            r["verdict"].as_str().unwrap(),
            r["us_per_record"].as_f64().unwrap(),
            r["ns_per_byte"].as_f64().unwrap()
        ));
    };
    row(&mut table, &rows[0]);
    for size in &sizes {
        for shape in hostile::SHAPES {
            let payload = (shape.make)(*size);
            let (s, verdict) = time(&decoder, payload.as_bytes(), rounds);
            let r = serde_json::json!({
                "shape": shape.name,
                "what": shape.what,
                "bytes": payload.len(),
                "verdict": verdict,
                "us_per_record": s * 1e6,
                "ns_per_byte": s * 1e9 / payload.len() as f64,
            });
            row(&mut table, &r);
            rows.push(r);
        }
    }
    let worst = rows[1..]
        .iter()
        .filter(|r| r["bytes"].as_u64().unwrap_or(0) >= 100_000)
        .map(|r| r["ns_per_byte"].as_f64().unwrap())
        .fold(0.0, f64::max);
    println!("Decoder on hostile shapes, median of {rounds} rounds, one thread.\n\n{table}");
    println!("Worst ns/byte over shapes of 100 kB or more: {worst:.2}");
    if let Ok(path) = std::env::var("BENCH_JSON") {
        let out = serde_json::json!({
            "rounds": rounds,
            "unit": "us per record, ns per byte of the payload; median of the rounds (one round past 2 s)",
            "rows": rows,
            "worst_ns_per_byte_from_100kB": worst,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
        eprintln!("written to {path}");
    }
}
