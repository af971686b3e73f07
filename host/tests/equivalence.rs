//! The WASM chain and the same rules compiled natively give identical outputs: the
//! same routes, the same enriched JSON, the same DLQ codes and messages. Run for the
//! 1.0 plugins (named columns), their 0.3 builds (the brief's columns) and a chain
//! with the 0.2 build of the quality rules (whole events in and out), so neither a
//! faster crossing nor an adapter can change what the pipeline writes.

// A test file: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use streamhost::plugins::{Chain, LoadedPlugin, PluginRuntime, SandboxLimits};
use streamhost::records::{Destination, Output, SourceRecord};
use streamhost::schema::Schema;
use streamhost::stages::validate::Validate;

mod native_rules;

fn dist() -> PathBuf {
    std::env::var_os("STREAMHOST_PLUGINS_BUILT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"))
}

fn load(rt: &PluginRuntime, name: &str, settings: &[(&str, &str)]) -> LoadedPlugin {
    let path = dist().join(name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-plugins first", path.display()));
    let settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(rt.compile(&bytes, name, settings).unwrap())
        .instantiate_checked()
        .unwrap()
}

/// Events covering every branch of both rules, plus unknown fields and odd text.
fn records() -> Vec<SourceRecord> {
    let countries = [
        "US", "CA", "UK", "DE", "FR", "JP", "XX", " us", "de ", "Fr", "üs", "", "BR", "u s",
    ];
    let urls = [
        "/page/1",
        "/page/42",
        "/page/",
        "/pages/3",
        "/page/-1",
        "/",
        "/page/9é",
    ];
    let devices = [None, Some("mobile"), Some(""), Some("tablet")];
    (0..700)
        .map(|i| {
            let user = if i % 13 == 0 { -(i as i64) } else { i as i64 };
            let device = devices[i % devices.len()]
                .map(|d| format!(r#", "device_type": "{d}""#))
                .unwrap_or_default();
            let extra = if i % 5 == 0 { r#", "campaign": "spring""# } else { "" };
            let json = format!(
                r#"{{"event_type": "page_view", "user_id": {user}, "page_url": "{}", "button_id": "b-{i}", "timestamp": {}, "country": "{}"{device}{extra}}}"#,
                urls[i % urls.len()],
                1_700_000_000 + i as i64,
                countries[i % countries.len()],
            );
            let payload = if i % 97 == 0 { b"{not json".to_vec() } else { json.into_bytes() };
            SourceRecord {
                partition: (i % 3) as i32,
                offset: i as i64,
                timestamp_ms: 1_700_000_000_000,
                payload,
            }
        })
        .collect()
}

/// Outputs as comparable values: the DLQ's wall-clock `dlq_time` removed, `extra` parsed.
fn comparable(outputs: &[Output]) -> Vec<(String, String, serde_json::Value)> {
    outputs
        .iter()
        .map(|o| {
            let mut v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
            if let Some(map) = v.as_object_mut() {
                map.remove("dlq_time");
                // `extra` is a JSON object as text: compare it as an object (an enricher
                // may add its fields in another order; JSON objects have none).
                if let Some(extra) = map.get("extra").and_then(|e| e.as_str()) {
                    let parsed: serde_json::Value = serde_json::from_str(extra).unwrap();
                    map.insert("extra".into(), parsed);
                }
            }
            (format!("{:?}", o.destination), o.key.to_string(), v)
        })
        .collect()
}

fn assert_same(wasm: &[Output], native: &[Output]) {
    let (wasm, native) = (comparable(wasm), comparable(native));
    assert_eq!(wasm.len(), native.len());
    for (i, (w, n)) in wasm.iter().zip(&native).enumerate() {
        assert_eq!(w, n, "output {i}");
    }
}

#[test]
fn wasm_chains_of_every_version_write_what_the_native_rules_write() {
    let schema = Arc::new(Schema::brief());
    let validate = Validate::new(schema.clone(), "country", "my_events", 1 << 20).unwrap();
    let rt = PluginRuntime::new(
        SandboxLimits {
            memory_bytes: 64 << 20,
            batch_deadline: Duration::from_secs(5),
            ..SandboxLimits::default()
        },
        schema,
    )
    .unwrap();
    let records = records();
    let briefs_country = [("allowed_countries", "BR,US")];
    for ((enrich, quality), settings) in [
        (("enrich.wasm", "quality.wasm"), &[][..]),
        (("enrich_v0_3.wasm", "quality_v0_3.wasm"), &[][..]),
        (("enrich.wasm", "legacy_v2.wasm"), &[][..]),
        (("enrich_v0_3.wasm", "quality.wasm"), &briefs_country[..]),
        (("enrich.wasm", "quality_v0_3.wasm"), &briefs_country[..]),
        (("enrich.wasm", "legacy_v2.wasm"), &briefs_country[..]),
    ] {
        let allowed = quality::Settings::parse(
            &settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
        .unwrap()
        .allowed_countries;
        let mut chain = Chain::of(vec![load(&rt, enrich, &[]), load(&rt, quality, settings)]);
        let processed_by = chain.processed_by();
        let rejected_by = chain.members()[1].plugin.id();
        let mut native = native_rules::NativeChain::new(
            validate.decoder.schema(),
            &allowed,
            (&processed_by, &rejected_by),
        );
        // Uneven batch sizes: offsets must not leak from one batch into the next.
        // (`process_batch` writes a batch's decode rejections first, so compare per batch.)
        let (mut wasm, mut expected) = (Vec::new(), Vec::new());
        for batch in records.chunks(173) {
            wasm.extend(validate.process_batch(&mut chain, batch));
            expected.extend(validate.process_batch(&mut native, batch));
        }
        assert_same(&wasm, &expected);
        let dlq = wasm
            .iter()
            .filter(|o| matches!(o.destination, Destination::Dlq))
            .count();
        assert!(
            dlq > 100 && dlq < records.len() - 100,
            "{quality}: {dlq} in the DLQ"
        );
    }
}
