//! The `streamhost` command line.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use streamhost::admin;
use streamhost::config::{self, Config};
use streamhost::kafka::checkpoint::KafkaCheckpoint;
use streamhost::kafka::lag::KafkaGroupLag;
use streamhost::kafka::run::{self, Reading};
use streamhost::kafka::sink::KafkaSink;
use streamhost::kafka::topics;
use streamhost::kafka::Clients;
use streamhost::liveness::Health;
use streamhost::plugins::reload::{self, Reloader};
use streamhost::plugins::{status, Chain, PluginRuntime, SandboxLimits};
use streamhost::replay::{self, TimeField};
use streamhost::schema::Schema;
use streamhost::stages::runtime::Batching;
use streamhost::stages::validate::{Validate, ValidateStage};
use streamhost::stages::window::operator::WindowSpec;
use streamhost::stages::window::progress::BrokerProgress;
use streamhost::stages::window::{WindowFields, WindowStage};
use streamhost::stages::StageError;
use streamhost::workbench;

/// mimalloc, not glibc's malloc: the validate stage allocates per event.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "streamhost",
    version,
    about = "Kafka stream processor with WebAssembly data-quality plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume my_events, run the plugin chain, produce enriched_events / dlq and the
    /// per-country window averages. Stops cleanly on SIGINT/SIGTERM.
    #[command(after_long_help = config::help())]
    Run {
        /// TOML configuration file (see the keys below); without it, defaults + environment.
        #[arg(long, short, env = "STREAMHOST_CONFIG")]
        config: Option<PathBuf>,
        /// Event schema file (overrides pipeline.schema); without either, the brief's.
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
    },
    /// Event schema files: which fields an event has, their types, the event time.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Tools for plugin authors (no broker needed).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// The dead-letter queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// The Kafka topics the configuration names.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create every topic the configuration names (kafka.input_topic,
    /// kafka.enriched_topic, kafka.dlq_topic and, with windows on, kafka.averages_topic)
    /// that the broker does not have; one line per topic. A topic that exists is left
    /// as it is, even with another partition count (a warning). Exits 1 when the broker
    /// refuses one.
    #[command(after_long_help = config::help())]
    Create(TopicsCreateArgs),
}

#[derive(clap::Args)]
struct TopicsCreateArgs {
    /// TOML configuration file, as for `run` (kafka.brokers, the topic names, kafka.client).
    #[arg(long, short, env = "STREAMHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Partitions of each topic created.
    #[arg(long, default_value_t = topics::DEFAULT_PARTITIONS, value_name = "N")]
    partitions: i32,
    /// Replicas of each partition of a topic created.
    #[arg(long, default_value_t = topics::DEFAULT_REPLICATION, value_name = "N")]
    replication_factor: i32,
    /// A topic configuration entry of the topics created (repeatable), e.g.
    /// retention.ms=604800000.
    #[arg(long = "config-entry", value_parser = topics::parse_entry, value_name = "KEY=VALUE")]
    config_entries: Vec<(String, String)>,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Produce dead-lettered input events again (e.g. after fixing a rule), chosen by
    /// code and time. Reads the DLQ to its end at the start, restores the original bytes
    /// and waits for every acknowledgement. Replaying the same records twice makes two
    /// events: narrow with --since/--until and look first with --dry-run.
    #[command(after_long_help = config::help())]
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// TOML configuration file, as for `run` (kafka.brokers, kafka.dlq_topic, kafka.input_topic).
    #[arg(long, short, env = "STREAMHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Replay records with this code (repeatable). Required unless --dry-run.
    #[arg(long = "code", value_name = "CODE")]
    codes: Vec<String>,
    /// Only records at or after this UTC time ('YYYY-MM-DD hh:mm:ss').
    #[arg(long, value_parser = replay::parse_time, value_name = "TIME")]
    since: Option<i64>,
    /// Only records before this UTC time ('YYYY-MM-DD hh:mm:ss'), exclusive.
    #[arg(long, value_parser = replay::parse_time, value_name = "TIME")]
    until: Option<i64>,
    /// The DLQ record time --since/--until apply to.
    #[arg(long, value_enum, default_value_t = TimeField::DlqTime)]
    time_field: TimeField,
    /// Topic to produce to (default: kafka.input_topic).
    #[arg(long, value_name = "TOPIC")]
    to: Option<String>,
    /// Also replay records whose source_topic is not kafka.input_topic (e.g. late_event,
    /// whose raw is an enriched_events record, not an input event).
    #[arg(long)]
    any_source: bool,
    /// Print what would be replayed (counts per code); produce nothing.
    #[arg(long)]
    dry_run: bool,
    /// Give up when no record arrives for this long while reading the DLQ.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    idle_timeout_secs: u64,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Check a schema file and print its fields; a bad one is refused with the line.
    Check {
        /// The schema file (TOML).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Start a plugin: a crate of its own (tests, manifest, expected outcomes, a CI-like
    /// check.sh) that builds outside this repository.
    New {
        /// The plugin's name: its crate name and the `name` of `name@version`.
        name: String,
        /// Start from an enricher (adds a field) instead of a validator.
        #[arg(long)]
        enricher: bool,
        /// The folder to create it in.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// The SDK: a path to plugins/sdk of a streamhost checkout, or a git URL;
        /// without it, the SDK of the source tree this binary was built from.
        #[arg(long, value_name = "PATH|URL")]
        sdk: Option<String>,
    },
    /// Compile a component, configure it with its manifest's settings, check its
    /// interface and version against the event schema, print what it is.
    Check {
        /// The plugin component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Run a component on events and print, per line, accepted (with the fields it
    /// added, changed or removed) or rejected and why; or check it against expected
    /// outcomes (--expect), failing when one does not hold.
    #[command(group = clap::ArgGroup::new("events").required(true).args(["input", "expect"]))]
    Test {
        /// The plugin component (.wasm).
        file: PathBuf,
        /// Events, one JSON document per line.
        #[arg(long, value_name = "EVENTS.jsonl")]
        input: Option<PathBuf>,
        /// Cases, one JSON object per line: {"event": {..}, "verdict": "accepted",
        /// "fields": {..}} or {"event": {..}, "verdict": "rejected", "code": ".."}.
        #[arg(long, value_name = "CASES.jsonl")]
        expect: Option<PathBuf>,
        /// One JSON object per line instead of text (for scripts).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
}

/// How `plugin check` and `plugin test` load a plugin: as the host does.
#[derive(clap::Args)]
struct LoadArgs {
    /// Manifest whose [settings] configure the plugin; without it, NAME.toml beside
    /// NAME.wasm if there is one, as the host reads it.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Event schema file; without it, the brief's.
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
}

/// The schema in `file`, or the brief's.
fn schema_from(file: Option<&Path>) -> Result<Schema> {
    Ok(match file {
        Some(file) => Schema::load(file)?,
        None => Schema::brief(),
    })
}

fn schema_check(file: &Path) -> Result<()> {
    let schema = Schema::load(file)?;
    println!(
        "ok: {} ({} fields, event time `{}`)",
        file.display(),
        schema.len(),
        schema.field(schema.time()).name
    );
    print!("{schema}");
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // `plugin test` prints every verdict itself: the rejection log would say it twice.
    let quiet = matches!(
        cli.command,
        Command::Plugin {
            command: PluginCommand::Test { .. }
        }
    );
    init_logging(if quiet {
        "info,streamhost::stages::rejects=error"
    } else {
        "info"
    });
    match cli.command {
        Command::Run { config, schema } => match run(config.as_deref(), schema) {
            // Said once, on one line, by the log; the exit status tells a supervisor.
            Err(e) if e.is::<StageFailed>() => {
                tracing::error!("{e}");
                std::process::exit(1)
            }
            other => other,
        },
        Command::Schema {
            command: SchemaCommand::Check { file },
        } => schema_check(&file),
        Command::Plugin {
            command:
                PluginCommand::New {
                    name,
                    enricher,
                    dir,
                    sdk,
                },
        } => plugin_new(&name, enricher, &dir, sdk.as_deref()),
        Command::Plugin {
            command: PluginCommand::Check { file, load },
        } => plugin_check(&file, &load),
        Command::Plugin {
            command:
                PluginCommand::Test {
                    file,
                    input,
                    expect,
                    json,
                    load,
                },
        } => match (input, expect) {
            (_, Some(cases)) => plugin_expect(&file, &cases, json, &load),
            (Some(input), None) => plugin_test(&file, &input, json, &load),
            (None, None) => bail!("give --input EVENTS.jsonl or --expect CASES.jsonl"),
        },
        Command::Dlq {
            command: DlqCommand::Replay(args),
        } => dlq_replay(args),
        Command::Topics {
            command: TopicsCommand::Create(args),
        } => topics_create(args),
    }
}

fn topics_create(args: TopicsCreateArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let clients = Clients::new(&config.kafka)?;
    let new = topics::NewTopics {
        partitions: args.partitions,
        replication: args.replication_factor,
        config: args.config_entries,
    };
    let reports = topics::create(&clients, &config.topics(), &new)?;
    for report in &reports {
        println!("{report}");
    }
    let refused: Vec<&str> = reports
        .iter()
        .filter(|r| r.refused())
        .map(|r| r.topic.name.as_str())
        .collect();
    if !refused.is_empty() {
        bail!(
            "the broker at {} refused to create {} (the lines above say why)",
            clients.brokers(),
            refused.join(", ")
        );
    }
    Ok(())
}

fn dlq_replay(args: ReplayArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let kafka = &config.kafka;
    let plan = replay::Plan {
        codes: args.codes,
        since: args.since,
        until: args.until,
        time_field: args.time_field,
        source_topic: (!args.any_source).then(|| kafka.input_topic.clone()),
        to: args.to.unwrap_or_else(|| kafka.input_topic.clone()),
        dry_run: args.dry_run,
    };
    match replay::run(kafka, &plan, Duration::from_secs(args.idle_timeout_secs)) {
        Ok(summary) => {
            println!("{summary}");
            Ok(())
        }
        Err(failed) => {
            if failed.summary.read > 0 || failed.summary.replayed() > 0 {
                println!("{}", failed.summary);
            }
            Err(failed.error).context("dlq replay")
        }
    }
}

fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("STREAMHOST_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn run(config_file: Option<&Path>, schema_file: Option<PathBuf>) -> Result<()> {
    let mut config = Config::load(config_file)?;
    if let Some(file) = schema_file {
        config.pipeline.schema = file;
    }
    let schema = Arc::new(config.schema()?);
    let validate = Validate::new(
        schema.clone(),
        &config.windows.key_field,
        &config.kafka.input_topic,
        config.pipeline.max_message_bytes,
    )
    .map_err(anyhow::Error::msg)?
    .with_limits(config.pipeline.max_fields, config.pipeline.max_future_secs);
    let window_fields = WindowFields {
        key: config.windows.key_field.clone(),
        time: schema.field(schema.time()).name.clone(),
    };
    let metrics =
        streamhost::telemetry::install().context("cannot install the metrics recorder")?;
    let board = status::new_board();
    let mut runtime = PluginRuntime::new(config.plugins.sandbox(), schema.clone())?;
    if let Some(dir) = config.plugins.compiled_dir() {
        runtime = runtime.with_cache(&dir);
    }
    let runtime = Arc::new(runtime);
    let dir = &config.plugins.dir;
    if !dir.is_dir() {
        bail!(
            "plugins.dir {} is not a directory (create it, even empty)",
            dir.display()
        );
    }
    let mut reloader =
        Reloader::new(runtime, dir, board.clone()).must_serve(&config.plugins.must_serve);
    let members = reloader
        .scan()
        .with_context(|| format!("cannot read the plugin directory {}", dir.display()))?
        .unwrap_or_default();
    let missing: Vec<&String> = config
        .plugins
        .must_serve
        .iter()
        .filter(|name| !members.iter().any(|m| m.plugin.name() == name.as_str()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "plugins.must_serve names {missing:?}, but no such plugin loaded from {} \
             (the log above says why a file was rejected; names are what `plugin check` prints)",
            dir.display()
        );
    }
    if members.is_empty() {
        if !config.plugins.allow_empty {
            bail!(
                "no plugin serves from {} and plugins.allow_empty is false",
                dir.display()
            );
        }
        tracing::warn!(dir = %dir.display(), "no plugins serving: every decodable event will be accepted");
    }
    let chain = Chain::new(
        members,
        config.plugins.breaker_threshold,
        Some(board.clone()),
    )
    .with_retry(Duration::from_secs(config.plugins.breaker_retry_secs));
    let clients = Clients::new(&config.kafka)?;
    let sink = KafkaSink::new(&clients, &config.kafka)?;

    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let signalled = stop_tx.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing the current batch");
        let _ = signalled.send(true);
    });
    let health = Health::default();
    // Served until the stages have stopped: after a failure, /health says so until the
    // process exits.
    let (admin_stop_tx, admin_stop) = watch::channel(false);
    let listener = admin::bind(config.admin.listen).await?;
    // A loop may wait for the broker's acknowledgements this long before its stage
    // stops: only past that is a loop that does not turn stuck.
    let liveness_stall = Duration::from_secs(config.kafka.delivery_timeout_secs + 60);
    let admin = tokio::spawn(admin::serve(
        listener,
        liveness_stall,
        metrics,
        board.clone(),
        health.clone(),
        admin_stop,
    ));

    // `/health` names a configured topic the broker does not have, while it does not.
    let _topic_watch = topics::watch(&clients, &config, health.clone())?;

    let (updates_tx, updates) = tokio::sync::mpsc::channel(4);
    let delivery = reload::Delivery {
        events: config.plugins.watch,
        poll: (config.plugins.poll_secs > 0).then(|| Duration::from_secs(config.plugins.poll_secs)),
    };
    if delivery.events || delivery.poll.is_some() {
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(error) = reload::watch(reloader, delivery, updates_tx, stop).await {
                tracing::error!(%error, "cannot watch the plugin directory: live reload is off");
            }
        });
    }
    let reading = |group_id: &str, topic: &str| Reading {
        clients: clients.clone(),
        group_id: group_id.to_string(),
        topic: topic.to_string(),
        batching: Batching {
            size: config.pipeline.batch_size,
            wait: config.batch_wait(),
        },
        watchdog: config.kafka.watchdog,
        stall_timeout: config.stall_timeout(),
    };
    let validating = async {
        let mut stage =
            ValidateStage::new(validate, chain, updates, config.pipeline.in_flight_batches);
        let reading = reading(&config.kafka.group_id, &config.kafka.input_topic);
        run::run(&mut stage, &reading, &sink, &health, stop.clone()).await
    };
    let windows = async {
        if !config.windows.enabled {
            return Ok(());
        }
        let w = &config.windows;
        let spec = WindowSpec {
            size: w.size_secs,
            advance: w.advance_secs,
            grace: w.grace_secs,
        };
        // The validate stage's progress on its input: a source partition it has yet to
        // catch up on is slow, not idle, and keeps holding the watermark back.
        let input =
            KafkaGroupLag::new(&clients, &config.kafka.group_id, &config.kafka.input_topic)?;
        let backlog = (config.pipeline.batch_size * config.pipeline.in_flight_batches) as i64;
        let progress = BrokerProgress::new(Box::new(input), backlog);
        let restore = KafkaCheckpoint {
            clients: clients.clone(),
            topic: config.kafka.averages_topic.clone(),
            lookback: Duration::from_secs(w.restore_lookback_secs),
            stop: stop.clone(),
        };
        let mut stage = WindowStage::new(spec, &config.kafka.enriched_topic, window_fields)
            .max_future_secs(config.pipeline.max_future_secs)
            .connected(
                Duration::from_secs(w.idle_timeout_secs.max(1)),
                progress,
                Box::new(restore),
            );
        let reading = reading(&config.kafka.window_group_id, &config.kafka.enriched_topic);
        run::run(&mut stage, &reading, &sink, &health, stop.clone()).await
    };
    // A stage that fails stops the other, which commits what it has delivered; then
    // the process exits non-zero with the first failure (a later one is its echo).
    let failure: std::sync::Mutex<Option<StageFailed>> = std::sync::Mutex::new(None);
    let ended = |stage: &str, result: Result<(), StageError>| {
        if let Err(error) = result {
            let mut first = failure.lock().unwrap_or_else(PoisonError::into_inner);
            if first.is_none() {
                tracing::info!(stage, %error, "stage failed: stopping the other stage");
                *first = Some(StageFailed(format!("{stage} stage stopped: {error}")));
            } else {
                tracing::info!(stage, %error, "stage stopped after the other's failure");
            }
            let _ = stop_tx.send(true);
        }
    };
    tokio::join!(async { ended("validate", validating.await) }, async {
        ended("window", windows.await)
    },);
    let failure = failure.into_inner().unwrap_or_else(PoisonError::into_inner);
    if failure.is_some() {
        // Nothing queued after a failed record is sent; what is in flight may land.
        sink.purge();
    }
    sink.flush(Duration::from_secs(10));
    let _ = admin_stop_tx.send(true);
    admin.abort();
    match failure {
        Some(failed) => Err(failed.into()),
        None => Ok(()),
    }
}

/// A stage stopped on an error: the message names the stage, the topic and the cause.
#[derive(Debug)]
struct StageFailed(String);

impl std::fmt::Display for StageFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StageFailed {}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

/// The runtime of the plugin tools: default limits, the compiled-plugin cache where
/// `run` keeps it by default (so a file checked here loads at once when deployed).
fn tool_runtime(schema: Arc<Schema>) -> Result<PluginRuntime> {
    let runtime = PluginRuntime::new(SandboxLimits::default(), schema)?;
    Ok(match streamhost::plugins::compiled::default_dir() {
        Some(dir) => runtime.with_cache(&dir),
        None => runtime,
    })
}

fn plugin_new(name: &str, enricher: bool, dir: &Path, sdk: Option<&str>) -> Result<()> {
    use workbench::new::{self, Kind, Sdk};
    let kind = if enricher {
        Kind::Enricher
    } else {
        Kind::Validator
    };
    let sdk = Sdk::from_arg(sdk)?;
    let root = new::create(name, kind, dir, &sdk)?;
    let me =
        std::env::current_exe().map_or_else(|_| "streamhost".into(), |p| p.display().to_string());
    println!("created {} (SDK: {sdk})", root.display());
    println!("next: cd {} && STREAMHOST={me} ./check.sh", root.display());
    Ok(())
}

fn plugin_check(file: &Path, load: &LoadArgs) -> Result<()> {
    let runtime = tool_runtime(Arc::new(schema_from(load.schema.as_deref())?))?;
    let loaded = workbench::load(&runtime, file, load.manifest.as_deref())?;
    let c = &loaded.plugin.compiled;
    let m = &loaded.manifest;
    println!("ok: {}", file.display());
    println!("  name        {}", c.name);
    println!("  version     {}", c.version);
    println!(
        "  wit         {}@{} (this host: @{}, accepts {})",
        streamhost::plugins::WIT_INTERFACE,
        c.wit_version,
        streamhost::plugins::WIT_VERSION,
        streamhost::plugins::accepted_wit_versions().join(", ")
    );
    println!("  contract    {}", c.contract);
    if c.imports.is_empty() {
        println!("  imports     none");
    } else {
        println!(
            "  imports     {} (linked to traps: plugins get no capabilities)",
            c.imports.join(", ")
        );
    }
    println!("  manifest    {}", loaded.manifest_from);
    if loaded.manifest_from != workbench::ManifestFrom::Defaults {
        println!(
            "              order {}, {}, {}",
            m.order(),
            if m.enabled {
                "enabled"
            } else {
                "disabled (a host loads it, does not run it)"
            },
            if m.required { "required" } else { "optional" }
        );
    }
    for (key, value) in m.settings() {
        println!("  setting     {key} = {value:?}");
    }
    Ok(())
}

/// The plugin of `file`, ready to run on events.
fn bench(file: &Path, load: &LoadArgs) -> Result<(workbench::Bench, String)> {
    let schema = Arc::new(schema_from(load.schema.as_deref())?);
    let runtime = tool_runtime(schema.clone())?;
    let loaded = workbench::load(&runtime, file, load.manifest.as_deref())?;
    let id = loaded.plugin.id();
    Ok((workbench::Bench::new(schema, loaded.plugin)?, id))
}

fn plugin_test(file: &Path, input: &Path, json: bool, load: &LoadArgs) -> Result<()> {
    let (mut bench, id) = bench(file, load)?;
    let outcomes = bench.run(&workbench::read_lines(input)?);
    let mut accepted = 0;
    for outcome in &outcomes {
        accepted += usize::from(matches!(
            outcome.verdict,
            workbench::Verdict::Accepted { .. }
        ));
        if json {
            println!("{}", serde_json::to_string(outcome)?);
        } else {
            println!("line {:>5}: {}", outcome.line, outcome.verdict);
        }
    }
    if !json {
        println!(
            "{id}: {accepted} accepted, {} rejected",
            outcomes.len() - accepted
        );
    }
    Ok(())
}

fn plugin_expect(file: &Path, cases: &Path, json: bool, load: &LoadArgs) -> Result<()> {
    let (mut bench, id) = bench(file, load)?;
    let cases = workbench::read_cases(cases)?;
    let lines: Vec<(usize, Vec<u8>)> = cases.iter().map(|(line, c)| (*line, c.bytes())).collect();
    let outcomes = bench.run(&lines);
    let mut failed = 0;
    for ((line, case), outcome) in cases.iter().zip(&outcomes) {
        debug_assert_eq!(*line, outcome.line);
        let wrong = case.mismatches(outcome);
        failed += usize::from(!wrong.is_empty());
        if json {
            let mut v = serde_json::to_value(outcome)?;
            v["pass"] = wrong.is_empty().into();
            if !wrong.is_empty() {
                v["mismatches"] = wrong.into();
            }
            println!("{v}");
        } else if wrong.is_empty() {
            println!("line {line:>5}: ok    {}", outcome.verdict);
        } else {
            println!("line {line:>5}: FAIL  {}", wrong.join("; "));
        }
    }
    if failed > 0 {
        bail!("{id}: {failed} of {} cases failed", cases.len());
    }
    if !json {
        println!("{id}: all {} cases passed", cases.len());
    }
    Ok(())
}
