//! Real components, built by `scripts/build-plugins` (plugins/dist), through the real
//! runtime: the zoo of bad plugins is rejected or isolated, the chain keeps going, old
//! WIT versions load, settings reach plugins, and the directory reloader swaps safely.

// A test file: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhost::event::{Event, Value};
use streamhost::plugins::chain::Member;
use streamhost::plugins::reload::Reloader;
use streamhost::plugins::status::{self, PluginState};
use streamhost::plugins::{
    Chain, Limit, LoadedPlugin, PluginError, PluginRuntime, SandboxLimits, Verdict,
};
use streamhost::records::dlq::HostCode;
use streamhost::schema::Schema;

fn dist() -> PathBuf {
    std::env::var_os("STREAMHOST_PLUGINS_BUILT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"))
}

fn wasm(name: &str) -> Vec<u8> {
    let path = dist().join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-plugins first", path.display()))
}

fn runtime() -> PluginRuntime {
    PluginRuntime::new(
        SandboxLimits {
            memory_bytes: 16 << 20,
            batch_deadline: Duration::from_millis(200),
            ..SandboxLimits::default()
        },
        Arc::new(Schema::brief()),
    )
    .unwrap()
}

fn load(rt: &PluginRuntime, name: &str) -> Result<LoadedPlugin, PluginError> {
    Arc::new(rt.compile(&wasm(name), name, Vec::new())?).instantiate_checked()
}

fn event(page_url: &str, country: &str, user_id: i64) -> Event {
    Event {
        fields: vec![
            Some(Value::Text("page_view".into())),
            Some(Value::Integer(user_id)),
            Some(Value::Text(page_url.into())),
            Some(Value::Text("b".into())),
            Some(Value::Integer(1_700_000_000)),
            Some(Value::Text(country.into())),
            None,
        ],
        extra: Vec::new(),
    }
}

/// A field of the brief's schema, as text.
fn text<'e>(e: &'e Event, name: &str) -> &'e str {
    let i = Schema::brief().index(name).unwrap();
    e.get(i).and_then(Value::as_text).unwrap()
}

/// The fields plugins set outside the schema, as (name, text).
fn set_by_plugins(e: &Event) -> Vec<(String, String)> {
    e.extra
        .iter()
        .map(|(n, v)| (n.to_string(), v.text().unwrap().into_owned()))
        .collect()
}

fn codes(outcomes: &[Verdict]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| match o {
            Verdict::Accepted(_) => "accepted".to_string(),
            Verdict::Rejected(r) => r.code.clone(),
        })
        .collect()
}

fn message(o: &Verdict) -> String {
    match o {
        Verdict::Rejected(r) => format!("{} {}", r.rejected_by, r.message),
        Verdict::Accepted(_) => "accepted".into(),
    }
}

#[test]
fn bad_plugins_are_rejected_at_load_with_a_reason() {
    let rt = runtime();
    let err = load(&rt, "zoo_always_panic.wasm").unwrap_err().to_string();
    assert!(
        err.contains("self-check") && err.contains("did the plugin panic?"),
        "{err}"
    );

    let err = load(&rt, "zoo_wrong_major.wasm").unwrap_err().to_string();
    assert!(
        err.contains("@2.0.0") && err.contains("@1.0.0") && err.contains("@0.3.0"),
        "says wanted, offered and accepted: {err}"
    );

    let err = load(&rt, "zoo_other_interface.wasm")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("zoo:other/rules@0.1.0") && err.contains("streamhost:plugin/rules"),
        "{err}"
    );

    let err = rt
        .compile(b"\0asm\x0d\0\x01\0garbage", "corrupt.wasm", Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("corrupt.wasm: not a valid WebAssembly component"),
        "{err}"
    );

    let good = wasm("quality.wasm");
    let half = &good[..good.len() / 2];
    let err = rt
        .compile(half, "half.wasm", Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("half.wasm: not a valid WebAssembly component"),
        "{err}"
    );
}

#[test]
fn a_trap_loop_oom_or_miscount_fails_only_its_batch_and_the_instance_is_replaced() {
    let rt = runtime();
    let mut chain = Chain::new(
        vec![Member {
            plugin: load(&rt, "zoo_trapdoor.wasm").unwrap(),
            required: true,
        }],
        100,
        None,
    );
    for (url, needle) in [
        ("/panic", "did the plugin panic?"),
        ("/loop", "deadline exceeded"),
        ("/oom", "out of memory"),
        (
            "/miscount",
            "bad answer: a rejection names event 1, but the batch has 1 events",
        ),
    ] {
        let started = Instant::now();
        let out = chain.process(vec![event("/ok", "US", 1), event(url, "US", 2)]);
        // The batch is judged again in halves: the event the plugin fails on goes to
        // the DLQ alone, the other is judged.
        assert_eq!(
            codes(&out),
            ["accepted", HostCode::PluginFailed.as_str()],
            "{url}"
        );
        assert!(
            message(&out[1]).contains(needle) && message(&out[1]).starts_with("zoo-trapdoor@"),
            "{url}: {}",
            message(&out[1])
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{url} took {:?}",
            started.elapsed()
        );
        // The next batch is judged by a fresh instance.
        let out = chain.process(vec![event("/ok", "US", 1)]);
        assert_eq!(codes(&out), ["accepted"], "after {url}");
    }
}

#[test]
fn the_circuit_breaker_disables_a_failing_plugin_and_the_chain_goes_on() {
    let rt = runtime();
    let board = status::new_board();
    let members = vec![
        Member {
            plugin: load(&rt, "zoo_trapdoor.wasm").unwrap(),
            required: false,
        },
        Member {
            plugin: load(&rt, "quality.wasm").unwrap(),
            required: true,
        },
    ];
    let mut chain = Chain::new(members, 3, Some(board));
    for _ in 0..3 {
        let out = chain.process(vec![event("/panic", "US", 1)]);
        assert_eq!(codes(&out), [HostCode::PluginFailed.as_str()]);
    }
    // Optional and disabled: skipped; the quality rules still judge.
    let out = chain.process(vec![event("/panic", "US", 1), event("/x", "XX", 1)]);
    assert_eq!(codes(&out), ["accepted", "invalid_country"]);
    assert_eq!(chain.processed_by(), "quality@1.0.0");

    // Required and disabled: its events go to the DLQ, never unjudged into the output.
    let members = vec![Member {
        plugin: load(&rt, "zoo_trapdoor.wasm").unwrap(),
        required: true,
    }];
    let mut chain = Chain::new(members, 2, None);
    chain.process(vec![event("/panic", "US", 1)]);
    chain.process(vec![event("/panic", "US", 1)]);
    let out = chain.process(vec![event("/fine", "US", 1)]);
    assert_eq!(codes(&out), [HostCode::PluginDisabled.as_str()]);
}

#[test]
fn a_plugin_built_against_wit_0_1_runs_in_a_chain_with_0_2_plugins() {
    let rt = runtime();
    let legacy = load(&rt, "legacy_event_type.wasm").unwrap();
    assert_eq!(legacy.compiled.wit_version, "0.1.0");
    let mut chain = Chain::of(vec![
        load(&rt, "enrich.wasm").unwrap(),
        legacy,
        load(&rt, "quality.wasm").unwrap(),
    ]);
    let mut odd = event("/page/7", " us", 1);
    odd.set(0, Value::Text("scroll".into()));
    let out = chain.process(vec![
        event("/page/7", " us", 1),
        odd,
        event("/page/7", "de", -1),
    ]);
    assert_eq!(
        codes(&out),
        ["accepted", "invalid_event_type", "invalid_user_id"]
    );
    let Verdict::Accepted(e) = &out[0] else {
        unreachable!()
    };
    assert_eq!(
        text(e, "country"),
        "US",
        "enrich normalised it before quality judged it"
    );
    let set = set_by_plugins(e);
    assert!(set.contains(&("page_id".into(), "7".into())));
    assert!(set.contains(&("schema_version".into(), "1".into())));
    assert_eq!(
        chain.processed_by(),
        "enrich@1.0.0,legacy-event-type@0.1.0,quality@1.0.0"
    );
}

#[test]
fn plugins_of_each_contract_say_what_they_are_and_older_ones_keep_working() {
    let rt = runtime();
    let quality = load(&rt, "quality.wasm").unwrap();
    assert_eq!(quality.compiled.wit_version, "1.0.0");
    assert_eq!(
        quality.compiled.contract.to_string(),
        "validator reading user_id, country"
    );
    let quality = load(&rt, "quality_v0_3.wasm").unwrap();
    assert_eq!(quality.compiled.wit_version, "0.3.0");
    assert_eq!(
        quality.compiled.contract.to_string(),
        "validator reading user_id, country"
    );
    let enrich = load(&rt, "enrich_v0_3.wasm").unwrap();
    assert_eq!(
        enrich.compiled.contract.to_string(),
        "enricher reading page_url, country, device_type"
    );

    // The quality rules built against 0.2: whole events in, one verdict each.
    let settings = vec![("allowed_countries".to_string(), "BR,US".to_string())];
    let v2 = Arc::new(rt.compile(&wasm("legacy_v2.wasm"), "v2", settings).unwrap())
        .instantiate_checked()
        .unwrap();
    assert_eq!(v2.compiled.wit_version, "0.2.0");
    assert_eq!(
        v2.compiled.contract.to_string(),
        "whole events in and out (0.1/0.2)"
    );
    let mut chain = Chain::of(vec![enrich, v2]);
    let out = chain.process(vec![
        event("/page/3", " br", 1),
        event("/p", "DE", 1),
        event("/p", "US", -2),
    ]);
    assert_eq!(
        codes(&out),
        ["accepted", "invalid_country", "invalid_user_id"]
    );
    let Verdict::Accepted(e) = &out[0] else {
        unreachable!()
    };
    assert_eq!(text(e, "country"), "BR");
    assert_eq!(
        set_by_plugins(e),
        [
            ("page_id".to_string(), "3".to_string()),
            ("schema_version".to_string(), "1".to_string())
        ]
    );
    assert_eq!(chain.processed_by(), "enrich-v0-3@0.2.0,legacy-v2@0.2.0");
}

#[test]
fn settings_reach_the_plugin_and_bad_settings_reject_it() {
    let rt = runtime();
    let settings = vec![("allowed_countries".to_string(), "BR,US".to_string())];
    let quality = Arc::new(rt.compile(&wasm("quality.wasm"), "q", settings).unwrap())
        .instantiate_checked()
        .unwrap();
    let mut chain = Chain::of(vec![quality]);
    assert_eq!(
        codes(&chain.process(vec![event("/p", "BR", 1), event("/p", "DE", 1)])),
        ["accepted", "invalid_country"]
    );

    let bad = vec![("allowed_contries".to_string(), "BR".to_string())];
    let err = rt
        .compile(&wasm("quality.wasm"), "q.wasm", bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("allowed_contries"), "{err}");

    let err = rt
        .compile(
            &wasm("legacy_event_type.wasm"),
            "l.wasm",
            vec![("a".into(), "b".into())],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `configure`"), "{err}");
}

#[test]
fn the_reloader_swaps_rejects_keeps_the_old_version_and_follows_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let board = status::new_board();
    let mut reloader = Reloader::new(Arc::new(runtime()), dir.path(), board.clone());
    let ids = |members: &[Member]| members.iter().map(|m| m.plugin.id()).collect::<Vec<_>>();
    let put = |name: &str, bytes: &[u8]| {
        let tmp = dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.path().join(name)).unwrap();
    };

    assert_eq!(reloader.scan().unwrap().map(|m| m.len()), Some(0));
    put("20-quality.wasm", &wasm("quality.wasm"));
    put("10-enrich.wasm", &wasm("enrich.wasm"));
    assert_eq!(
        ids(&reloader.scan().unwrap().unwrap()),
        ["enrich@1.0.0", "quality@1.0.0"]
    );
    assert!(
        reloader.scan().unwrap().is_none(),
        "nothing changed, no new chain"
    );

    // A broken new version is rejected; the old one keeps serving.
    put("20-quality.wasm", b"not wasm at all");
    assert!(reloader.scan().unwrap().is_none());
    let entries = board.read().unwrap().files.clone();
    let q = entries
        .iter()
        .find(|s| s.file.ends_with("20-quality.wasm"))
        .unwrap();
    assert_eq!(
        (q.state, q.version.as_deref()),
        (PluginState::Rejected, Some("1.0.0"))
    );
    assert!(q
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("not a valid WebAssembly component"));

    // A manifest: order first, and off.
    std::fs::write(
        dir.path().join("10-enrich.toml"),
        "order = 50\nenabled = false\n",
    )
    .unwrap();
    assert_eq!(ids(&reloader.scan().unwrap().unwrap()), ["quality@1.0.0"]);
    std::fs::write(dir.path().join("10-enrich.toml"), "order = 500\n").unwrap();
    assert_eq!(
        ids(&reloader.scan().unwrap().unwrap()),
        ["quality@1.0.0", "enrich@1.0.0"]
    );

    // A live swap across interface generations: 0.3 out, the same rules built for 0.2 in.
    put("20-quality.wasm", &wasm("legacy_v2.wasm"));
    assert_eq!(
        ids(&reloader.scan().unwrap().unwrap()),
        ["legacy-v2@0.2.0", "enrich@1.0.0"]
    );

    // Rollback: the old file again. Removal: gone.
    put("20-quality.wasm", &wasm("legacy_event_type.wasm"));
    assert_eq!(
        ids(&reloader.scan().unwrap().unwrap()),
        ["legacy-event-type@0.1.0", "enrich@1.0.0"]
    );
    std::fs::remove_file(dir.path().join("10-enrich.wasm")).unwrap();
    assert_eq!(
        ids(&reloader.scan().unwrap().unwrap()),
        ["legacy-event-type@0.1.0"]
    );
    assert_eq!(board.read().unwrap().files.len(), 1);
}

#[test]
fn a_poison_event_goes_to_the_dlq_alone_and_the_rest_of_its_batch_is_judged() {
    let rt = runtime();
    let mut chain = Chain::of(vec![
        load(&rt, "zoo_trapdoor.wasm").unwrap(),
        load(&rt, "quality.wasm").unwrap(),
    ]);
    let mut batch: Vec<Event> = (0..64).map(|i| event("/ok", "US", i)).collect();
    batch[37] = event("/panic", "US", 37);
    batch[50] = event("/x", "XX", 50);
    let out = chain.process(batch);
    let got = codes(&out);
    for (i, code) in got.iter().enumerate() {
        let expected = match i {
            37 => HostCode::PluginFailed.as_str(),
            50 => "invalid_country",
            _ => "accepted",
        };
        assert_eq!(code, expected, "event {i}");
    }
    // The breaker counts batches it judged nothing of: this one does not count.
    assert_eq!(chain.members()[0].plugin.consecutive_failures, 0);
    assert!(!chain.members()[0].plugin.disabled);
}

#[test]
fn a_batch_of_poison_is_bounded_in_calls_and_fails_whole() {
    let rt = runtime();
    let mut chain = Chain::of(vec![load(&rt, "zoo_trapdoor.wasm").unwrap()]);
    // Every event traps: splitting stops after 2 log2(n) + 2 failed calls.
    let started = Instant::now();
    let out = chain.process((0..512).map(|i| event("/panic", "US", i)).collect());
    assert!(codes(&out)
        .iter()
        .all(|c| c == HostCode::PluginFailed.as_str()));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(chain.members()[0].plugin.consecutive_failures, 1);
}

#[test]
fn a_disabled_plugin_is_tried_again_after_its_back_off() {
    let rt = runtime();
    let members = || {
        vec![Member {
            plugin: load(&rt, "zoo_trapdoor.wasm").unwrap(),
            required: true,
        }]
    };
    // Back-off of an hour: disabled, its events go to the DLQ as plugin_disabled.
    let mut chain = Chain::new(members(), 2, None).with_retry(Duration::from_secs(3600));
    chain.process(vec![event("/panic", "US", 1)]);
    chain.process(vec![event("/panic", "US", 1)]);
    let out = chain.process(vec![event("/fine", "US", 1)]);
    assert_eq!(codes(&out), [HostCode::PluginDisabled.as_str()]);
    assert!(
        message(&out[0]).contains("tried again in"),
        "{}",
        message(&out[0])
    );
    // No back-off: the next batch is a trial; still failing, it stays disabled...
    let mut chain = Chain::new(members(), 2, None).with_retry(Duration::ZERO);
    chain.process(vec![event("/panic", "US", 1)]);
    chain.process(vec![event("/panic", "US", 1)]);
    assert!(chain.members()[0].plugin.disabled);
    let out = chain.process(vec![event("/panic", "US", 1)]);
    assert_eq!(codes(&out), [HostCode::PluginFailed.as_str()]);
    assert!(chain.members()[0].plugin.disabled);
    // ... and once it judges a batch, it serves again.
    let out = chain.process(vec![event("/fine", "US", 1)]);
    assert_eq!(codes(&out), ["accepted"]);
    assert!(!chain.members()[0].plugin.disabled);
    assert_eq!(chain.processed_by(), chain.members()[0].plugin.id());
}

#[test]
fn hostile_answers_fail_only_their_event_with_the_limit_named() {
    let rt = runtime();
    let mut chain = Chain::new(
        vec![Member {
            plugin: load(&rt, "zoo_flood.wasm").unwrap(),
            required: true,
        }],
        100,
        None,
    );
    for (url, needle) in [
        ("/huge-code", "is not a snake_case identifier"),
        ("/huge-message", "over the limit of 1024 bytes"),
        ("/bad-code", r#"rejection code "Bad Code\nforged""#),
        ("/alias", "answer too large"),
    ] {
        let started = Instant::now();
        let out = chain.process(vec![event("/ok", "US", 1), event(url, "US", 2)]);
        assert_eq!(
            codes(&out),
            ["accepted", HostCode::PluginFailed.as_str()],
            "{url}"
        );
        let why = message(&out[1]);
        assert!(
            why.contains(needle),
            "{url}: {}",
            &why[..why.len().min(300)]
        );
        assert!(why.len() < 2048, "{url}: a message of {} bytes", why.len());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{url} took {:?}",
            started.elapsed()
        );
    }
    // Codes that are identifiers pass, as many as there are events.
    let out = chain.process((0..300).map(|i| event("/codes", "US", i)).collect());
    let got = codes(&out);
    assert_eq!(got[7], "code_7");
    assert_eq!(
        got.iter().collect::<std::collections::HashSet<_>>().len(),
        300
    );
}

/// A runtime with these limits (the rest as in [`runtime`]).
fn limited(limits: SandboxLimits) -> PluginRuntime {
    PluginRuntime::new(limits, Arc::new(Schema::brief())).unwrap()
}

/// The error of loading `bytes`, checked to be a refusal over `limit` whose message
/// names the limit, its value and the key to raise.
fn refused(rt: &PluginRuntime, bytes: &[u8], limit: Limit, value: &str) -> String {
    let err = match rt.compile(bytes, "over.wasm", Vec::new()) {
        Ok(_) => panic!("loaded a component over {limit:?}"),
        Err(err) => err,
    };
    let text = err.to_string();
    assert!(
        matches!(&err, PluginError::OverLimit { limit: l, .. } if *l == limit),
        "refused for another reason than {limit:?}: {text}"
    );
    assert!(
        text.starts_with("over.wasm: refused: ")
            && text.contains(limit.key())
            && text.contains(&format!("({value})")),
        "{text}"
    );
    eprintln!("{text}");
    text
}

/// A component instantiating `module` (a core module's fields) `times` times.
fn instantiating(module: &str, times: usize) -> Vec<u8> {
    let instances = "(core instance (instantiate $m))\n".repeat(times);
    format!("(component (core module $m {module})\n{instances})").into_bytes()
}

#[test]
fn every_real_plugin_is_within_the_default_limits() {
    let rt = limited(SandboxLimits::default());
    let mut seen = 0;
    for file in std::fs::read_dir(dist()).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let bytes = rt.read_file(&path).unwrap();
            if let Err(e @ PluginError::OverLimit { .. }) = rt.compile(&bytes, "real", Vec::new()) {
                panic!("{}: {e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} plugins in {}", dist().display());
}

#[test]
fn a_component_with_too_many_memories_tables_or_core_instances_is_refused() {
    let rt = runtime();
    let d = SandboxLimits::default();
    // Within the limits: the same shapes load as far as the interface check.
    let err = rt
        .compile(
            &instantiating("(memory 1)", d.memories as usize),
            "ok.wasm",
            Vec::new(),
        )
        .unwrap_err();
    assert!(matches!(err, PluginError::MissingInterface { .. }), "{err}");

    let err = refused(
        &rt,
        &instantiating("(memory 1)", d.memories as usize + 1),
        Limit::Memories,
        &d.memories.to_string(),
    );
    assert!(
        err.contains(&format!("{} Wasm linear memories", d.memories + 1)),
        "{err}"
    );
    // Several memories in one core module (multi-memory) count the same.
    let memories = "(memory 1) ".repeat(d.memories as usize + 1);
    refused(
        &rt,
        &instantiating(&memories, 1),
        Limit::Memories,
        &d.memories.to_string(),
    );

    let err = refused(
        &rt,
        &instantiating("(table 1 funcref)", d.tables as usize + 1),
        Limit::Tables,
        &d.tables.to_string(),
    );
    assert!(err.contains(&format!("{} tables", d.tables + 1)), "{err}");

    let err = refused(
        &rt,
        &instantiating("", d.core_instances as usize + 1),
        Limit::CoreInstances,
        &d.core_instances.to_string(),
    );
    assert!(
        err.contains(&format!("{} core module instances", d.core_instances + 1)),
        "{err}"
    );
}

#[test]
fn a_change_that_would_drop_a_must_serve_rule_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let board = status::new_board();
    let mut reloader = Reloader::new(Arc::new(runtime()), dir.path(), board.clone())
        .must_serve(&["quality".to_string()]);
    let ids = |members: &[Member]| members.iter().map(|m| m.plugin.id()).collect::<Vec<_>>();
    // Without it, no chain is handed out at all.
    assert!(reloader.scan().unwrap().is_none());
    std::fs::write(dir.path().join("20-quality.wasm"), wasm("quality.wasm")).unwrap();
    assert_eq!(ids(&reloader.scan().unwrap().unwrap()), ["quality@1.0.0"]);
    // Removed (or replaced by something that is not it): the serving chain stays.
    std::fs::remove_file(dir.path().join("20-quality.wasm")).unwrap();
    std::fs::write(dir.path().join("30-enrich.wasm"), wasm("enrich.wasm")).unwrap();
    assert!(reloader.scan().unwrap().is_none());
    // Back: the chain the directory asks for is installed.
    std::fs::write(dir.path().join("20-quality.wasm"), wasm("quality.wasm")).unwrap();
    assert_eq!(
        ids(&reloader.scan().unwrap().unwrap()),
        ["quality@1.0.0", "enrich@1.0.0"]
    );
    // A file that never loaded is what /health reports; one that served is not.
    std::fs::write(dir.path().join("40-broken.wasm"), b"not wasm").unwrap();
    assert!(reloader.scan().unwrap().is_none());
    let problems = status::not_serving(&board);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("40-broken.wasm does not serve"),
        "{problems:?}"
    );
}

#[test]
fn a_table_or_memory_larger_than_its_limit_is_refused() {
    let rt = runtime();
    let elements = SandboxLimits::default().table_elements;
    refused(
        &rt,
        &instantiating(&format!("(table {} funcref)", elements + 1), 1),
        Limit::TableElements,
        &elements.to_string(),
    );
    // runtime(): 16 MiB per memory; this one starts at 32.
    refused(
        &rt,
        &instantiating("(memory 512)", 1),
        Limit::MemorySize,
        "16 MiB",
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let rt = limited(SandboxLimits {
        file_bytes: 64 << 10,
        ..SandboxLimits::default()
    });
    let path = dist().join("quality.wasm");
    assert!(std::fs::metadata(&path).unwrap().len() > 64 << 10);
    let err = rt.read_file(&path).unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::OverLimit {
                limit: Limit::FileSize,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("plugins.max_file_mb") && text.contains("bytes"),
        "{text}"
    );
    assert!(rt.load_file(&path).is_err());
    // Bytes handed over directly are bounded too.
    let text = rt
        .compile(&wasm("quality.wasm"), "q.wasm", Vec::new())
        .unwrap_err()
        .to_string();
    assert!(text.contains("plugins.max_file_mb"), "{text}");
    // A smaller plugin loads.
    assert!(
        std::fs::metadata(dist().join("zoo_trapdoor.wasm"))
            .unwrap()
            .len()
            < 64 << 10
    );
    rt.load_file(&dist().join("zoo_trapdoor.wasm")).unwrap();

    // The reloader rejects it like a file that does not compile, and says why.
    let dir = tempfile::tempdir().unwrap();
    let board = status::new_board();
    let mut reloader = Reloader::new(Arc::new(rt), dir.path(), board.clone());
    std::fs::copy(&path, dir.path().join("10-quality.wasm")).unwrap();
    assert_eq!(reloader.scan().unwrap().map(|m| m.len()), Some(0));
    let entries = board.read().unwrap().files.clone();
    let q = entries
        .iter()
        .find(|s| s.file.ends_with("10-quality.wasm"))
        .unwrap();
    assert_eq!(q.state, PluginState::Rejected);
    assert!(
        q.last_error
            .as_deref()
            .unwrap_or("")
            .contains("plugins.max_file_mb"),
        "{:?}",
        q.last_error
    );
}

#[test]
fn a_compile_past_its_deadline_is_refused_and_abandoned() {
    let rt = limited(SandboxLimits {
        compile_deadline: Duration::from_millis(1),
        ..SandboxLimits::default()
    });
    // A real plugin compiles in tens of milliseconds: far past 1 ms.
    refused(&rt, &wasm("sensor_range.wasm"), Limit::CompileTime, "1 ms");
    assert!(rt.abandoned_compiles() >= 1);
    let started = Instant::now();
    while rt.abandoned_compiles() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the abandoned compile never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
