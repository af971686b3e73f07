//! Live plugin swaps. A `notify` watcher on the plugin directory wakes [`watch`]; after
//! the directory has been quiet for a moment (debounce), [`Reloader::scan`] compiles
//! what changed off the hot path and, when the serving set changed, hands a complete new
//! chain to the pipeline, which installs it between two batches. Batches in flight finish
//! on the old chain; no event is judged twice or skipped; window state is elsewhere.
//!
//! A file that does not compile, does not match the interface or fails its self-check
//! is rejected and the version that served before (if any) keeps serving. A chain
//! whose plugins cannot all start, or that lacks a `plugins.must_serve` rule, is not
//! installed: the serving chain stays (a rule never silently leaves the chain).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::chain::Member;
use super::directory::{self, Manifest};
use super::runtime::{CompiledPlugin, PluginError, PluginRuntime};
use super::status::{self, PluginBoard, PluginState, PluginStatus};
use crate::telemetry;

/// Wait for this long without file events before reloading: editors and copies write
/// in several steps.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// After a rename or a removal (a complete change: the documented deploy is "write a
/// temporary name, then rename"), wait only this long, for its companion (the `.toml`
/// renamed next to its `.wasm`).
pub const SETTLE: Duration = Duration::from_millis(10);

/// After a scan that could not start a plugin: scan again after this long.
pub const RETRY: Duration = Duration::from_secs(2);

/// How long to wait for more file events after `event`; `None` for an event that
/// changes nothing. Opening and reading a file is such an event, and the scan itself
/// opens every plugin file: counting them made each scan trigger the next.
fn quiet_period(event: &notify::EventKind) -> Option<Duration> {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match event {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(DEBOUNCE),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(SETTLE),
        _ => Some(DEBOUNCE),
    }
}

/// A new chain for the pipeline, with when the change was first seen (swap latency).
#[derive(Debug)]
pub struct ChainUpdate {
    pub members: Vec<Member>,
    pub seen_at: Instant,
}

/// What identifies a chain: per member its id, order, `required` and file fingerprint.
type ChainShape = Vec<(String, i64, bool, PathBuf, u64)>;

struct Known {
    fingerprint: u64,
    /// What serves for this file: the last version that loaded, and its fingerprint.
    serving: Option<(Arc<CompiledPlugin>, Manifest, u64)>,
}

/// The directory's plugins as last scanned.
pub struct Reloader {
    runtime: Arc<PluginRuntime>,
    dir: PathBuf,
    known: BTreeMap<PathBuf, Known>,
    board: PluginBoard,
    /// Ids and orders of the chain last handed out, to tell whether anything changed.
    last_chain: Option<ChainShape>,
    /// Plugin names every chain handed out must have (`plugins.must_serve`).
    must_serve: Vec<String>,
    /// The last scan could not build the chain the directory asks for (an instance
    /// did not start): the serving chain stays, and [`watch`] scans again soon.
    pub retry_pending: bool,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn fingerprint(wasm: &[u8], manifest: Option<&str>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    wasm.hash(&mut h);
    manifest.hash(&mut h);
    h.finish()
}

impl Reloader {
    pub fn new(runtime: Arc<PluginRuntime>, dir: &Path, board: PluginBoard) -> Self {
        Self {
            runtime,
            dir: dir.to_path_buf(),
            known: BTreeMap::new(),
            board,
            last_chain: None,
            must_serve: Vec::new(),
            retry_pending: false,
        }
    }

    /// Never hand out a chain without each of these plugin names.
    pub fn must_serve(mut self, names: &[String]) -> Self {
        self.must_serve = names.to_vec();
        self
    }

    /// Look at the directory; compile what changed. Returns the new chain when the set
    /// of serving plugins (or their order or manifests) changed, else `None`.
    pub fn scan(&mut self) -> std::io::Result<Option<Vec<Member>>> {
        let files = directory::plugin_files(&self.dir)?;
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !files.contains(p))
            .cloned()
            .collect();
        for path in gone {
            tracing::info!(file = %path.display(), "plugin removed");
            if let Some((gone, _, _)) = self.known.remove(&path).and_then(|k| k.serving) {
                plugin_info(&path.display().to_string(), &gone, 0.0);
            }
            status::remove(&self.board, &path.display().to_string());
        }
        for path in files {
            self.consider(&path);
        }
        let mut serving: Vec<(i64, PathBuf, Arc<CompiledPlugin>, Manifest, u64)> = self
            .known
            .iter()
            .filter_map(|(path, k)| {
                k.serving
                    .as_ref()
                    .map(|(c, m, fp)| (m.order(), path.clone(), c.clone(), m.clone(), *fp))
            })
            .filter(|(_, _, _, m, _)| m.enabled)
            .collect();
        serving.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let shape: ChainShape = serving
            .iter()
            .map(|(order, path, c, m, fp)| (c.id(), *order, m.required, path.clone(), *fp))
            .collect();
        self.retry_pending = false;
        if self.last_chain.as_ref() == Some(&shape) {
            return Ok(None);
        }
        let missing: Vec<&str> = self
            .must_serve
            .iter()
            .filter(|name| !serving.iter().any(|(_, _, c, _, _)| c.name == **name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            // Installing it would stop judging by a rule that must judge: keep the chain
            // that serves, loudly, until the directory has the rule again.
            tracing::error!(missing = ?missing, dir = %self.dir.display(),
                "the plugin directory lacks plugins.must_serve rules; the serving chain stays as it is");
            metrics::counter!(telemetry::PLUGIN_CHAIN_REFUSALS.name).increment(1);
            return Ok(None);
        }
        let mut members = Vec::with_capacity(serving.len());
        for (_, path, compiled, manifest, _) in serving {
            match compiled.clone().instantiate_checked() {
                Ok(plugin) => members.push(Member {
                    plugin,
                    required: manifest.required,
                }),
                Err(error) => {
                    // Checked at compile time, so rare (e.g. the instance pool is full).
                    // A chain without this member would let its events through unjudged:
                    // the serving chain stays, and the scan is tried again.
                    tracing::error!(file = %path.display(), %error,
                        "plugin failed to start; the serving chain stays as it is and the change is tried again");
                    metrics::counter!(telemetry::PLUGIN_CHAIN_REFUSALS.name).increment(1);
                    status::mark(
                        &self.board,
                        &path.display().to_string(),
                        PluginState::Rejected,
                        Some(error.to_string()),
                    );
                    self.retry_pending = true;
                    return Ok(None);
                }
            }
        }
        self.last_chain = Some(shape);
        Ok(Some(members))
    }

    /// Compile `path` if it (or its manifest) changed since the last scan.
    fn consider(&mut self, path: &Path) {
        let bytes = match self.runtime.read_file(path) {
            Ok(bytes) => Ok(bytes),
            // Vanished or unreadable mid-write: the next event brings it back.
            Err(PluginError::Read { .. }) => return,
            // Over the file-size limit: rejected like a file that does not compile.
            Err(refused) => Err(refused.to_string()),
        };
        let (manifest_text, manifest) = directory::manifest_for(path);
        let fp = match &bytes {
            Ok(bytes) => fingerprint(bytes, manifest_text.as_deref()),
            Err(refused) => fingerprint(refused.as_bytes(), manifest_text.as_deref()),
        };
        if self.known.get(path).is_some_and(|k| k.fingerprint == fp) {
            return;
        }
        let file = path.display().to_string();
        let previous = self.known.remove(path).and_then(|k| k.serving);
        let loaded = bytes.and_then(|bytes| {
            manifest.and_then(|manifest| {
                let started = Instant::now();
                self.runtime
                    .compile(&bytes, &file, manifest.settings())
                    .map(|c| (Arc::new(c), manifest, started.elapsed()))
                    .map_err(|e| e.to_string())
            })
        });
        let serving = match loaded {
            Ok((compiled, manifest, took)) => {
                tracing::info!(plugin = %compiled.id(), wit = %compiled.wit_version, file = %file,
                    order = manifest.order(), enabled = manifest.enabled, compile_ms = took.as_millis() as u64,
                    cached = compiled.from_cache,
                    "plugin loaded");
                metrics::counter!(telemetry::PLUGIN_LOADS.name, "result" => "ok").increment(1);
                if let Some((old, _, _)) = &previous {
                    plugin_info(&file, old, 0.0);
                }
                plugin_info(&file, &compiled, 1.0);
                status::set(
                    &self.board,
                    PluginStatus {
                        file: file.clone(),
                        name: Some(compiled.name.clone()),
                        version: Some(compiled.version.clone()),
                        wit_version: Some(compiled.wit_version.clone()),
                        contract: Some(compiled.contract.to_string()),
                        state: if manifest.enabled {
                            PluginState::Serving
                        } else {
                            PluginState::Off
                        },
                        order: Some(manifest.order()),
                        last_error: None,
                    },
                );
                Some((compiled, manifest, fp))
            }
            Err(error) => {
                metrics::counter!(telemetry::PLUGIN_LOADS.name, "result" => "rejected")
                    .increment(1);
                match &previous {
                    Some((old, _, _)) => {
                        tracing::error!(file = %file, %error, keeps_serving = %old.id(),
                        "plugin rejected; the previous version keeps serving")
                    }
                    None => tracing::error!(file = %file, %error, "plugin rejected"),
                }
                status::set(
                    &self.board,
                    PluginStatus {
                        file: file.clone(),
                        name: previous.as_ref().map(|(c, _, _)| c.name.clone()),
                        version: previous.as_ref().map(|(c, _, _)| c.version.clone()),
                        wit_version: previous.as_ref().map(|(c, _, _)| c.wit_version.clone()),
                        contract: previous.as_ref().map(|(c, _, _)| c.contract.to_string()),
                        state: PluginState::Rejected,
                        order: previous.as_ref().map(|(_, m, _)| m.order()),
                        last_error: Some(error),
                    },
                );
                previous
            }
        };
        self.known.insert(
            path.to_path_buf(),
            Known {
                fingerprint: fp,
                serving,
            },
        );
    }
}

/// `streamhost_plugin_info` of a file's version: 1 while it serves, 0 once replaced or
/// removed.
fn plugin_info(file: &str, compiled: &CompiledPlugin, value: f64) {
    metrics::gauge!(telemetry::PLUGIN_INFO.name, "file" => file.to_string(), "plugin" => compiled.name.clone(),
        "version" => compiled.version.clone(), "wit" => compiled.wit_version.clone())
    .set(value);
}

/// How the host learns of changes in the plugin directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// File events (inotify on Linux).
    pub events: bool,
    /// A rescan this often as well, for mounts that deliver no events.
    pub poll: Option<Duration>,
}

/// Watch the plugin directory until `stop`; send a [`ChainUpdate`] for every change of
/// the serving chain.
pub async fn watch(
    mut reloader: Reloader,
    delivery: Delivery,
    updates: mpsc::Sender<ChainUpdate>,
    mut stop: watch::Receiver<bool>,
) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Duration)>(256);
    // Kept alive for as long as the loop runs.
    let _watcher = match delivery.events {
        false => None,
        true => {
            let mut watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    if let Ok(event) = event {
                        let quiet = quiet_period(&event.kind);
                        if let Some(quiet) =
                            quiet.filter(|_| event.paths.iter().any(|p| directory::is_relevant(p)))
                        {
                            // Full channel: a reload is already pending, which will see
                            // this change too.
                            let _ = tx.try_send((Instant::now(), quiet));
                        }
                    }
                })?;
            watcher.watch(&reloader.dir.clone(), RecursiveMode::NonRecursive)?;
            Some(watcher)
        }
    };
    let mut poll = delivery.poll.map(|every| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    tracing::info!(dir = %reloader.dir.display(), events = delivery.events,
        poll_secs = delivery.poll.map(|p| p.as_secs()), "watching the plugin directory");
    loop {
        let retry = async {
            if reloader.retry_pending {
                tokio::time::sleep(RETRY).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let polled = async {
            match poll.as_mut() {
                Some(ticks) => {
                    ticks.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let (seen_at, mut quiet) = tokio::select! {
            seen = rx.recv(), if delivery.events => match seen { Some(t) => t, None => break },
            _ = retry => (Instant::now(), Duration::ZERO),
            _ = polled => (Instant::now(), Duration::ZERO),
            _ = stop.changed() => break,
        };
        // Until the directory is quiet: the longest wait any of its events asks for.
        while let Ok(Some((_, more))) = tokio::time::timeout(quiet, rx.recv()).await {
            quiet = quiet.max(more);
        }
        let scanned = tokio::task::spawn_blocking(move || {
            let result = reloader.scan();
            (reloader, result)
        })
        .await;
        let Ok((back, result)) = scanned else {
            tracing::error!(
                "plugin reload task panicked; live reload stops, the current chain keeps serving"
            );
            break;
        };
        reloader = back;
        match result {
            Ok(Some(members)) => {
                if updates
                    .send(ChainUpdate { members, seen_at })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(dir = %reloader.dir.display(), error = %e, "cannot read the plugin directory")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
    };
    use notify::EventKind;

    #[test]
    fn a_rename_is_acted_on_at_once_a_write_when_it_stops_and_a_read_not_at_all() {
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(quiet_period(&rename), Some(SETTLE));
        assert_eq!(
            quiet_period(&EventKind::Remove(RemoveKind::File)),
            Some(SETTLE)
        );
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(quiet_period(&write), Some(DEBOUNCE));
        assert_eq!(
            quiet_period(&EventKind::Create(CreateKind::File)),
            Some(DEBOUNCE)
        );
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(quiet_period(&closed), Some(DEBOUNCE));
        // The scan opens every plugin file: that must not schedule another scan.
        let opened = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert_eq!(quiet_period(&opened), None);
    }
}
