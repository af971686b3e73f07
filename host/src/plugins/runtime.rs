//! The wasmtime side: one engine for the process, one sandboxed store per plugin.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};

use super::bindings::exports::streamhost::plugin::rules::{Event as WitEvent, Verdict};
use super::bindings::{Plugin, PluginPre};
use super::{WIT_INTERFACE, WIT_VERSION};

/// How often the engine's epoch advances: the resolution of the per-batch deadline.
const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{origin}: cannot read: {reason}")]
    Read { origin: String, reason: String },
    #[error("{origin}: not a valid WebAssembly component: {reason}")]
    Compile { origin: String, reason: String },
    #[error(
        "{origin}: does not export `{WIT_INTERFACE}` (this host offers {WIT_INTERFACE}@{WIT_VERSION}); \
         its exports are: [{found}]. Build it against wit/ of this repository."
    )]
    MissingInterface { origin: String, found: String },
    #[error(
        "{origin}: built against {WIT_INTERFACE}@{wanted}, but this host offers @{WIT_VERSION} \
         (compatible: the same major version, and the same minor for 0.x); rebuild it against wit/"
    )]
    IncompatibleVersion { origin: String, wanted: String },
    #[error("{origin}: cannot instantiate: {reason}")]
    Instantiate { origin: String, reason: String },
    #[error("{origin}: load-time self-check failed: {reason}")]
    SelfCheck { origin: String, reason: String },
    #[error("{plugin}: {reason}")]
    Failed { plugin: String, reason: String },
}

/// Sandbox limits applied to every plugin instance.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// Linear memory cap per instance. Must fit the largest batch (about 2 KiB per event).
    pub memory_bytes: usize,
    /// CPU budget for one `process` call (one batch).
    pub batch_deadline: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            batch_deadline: Duration::from_millis(500),
        }
    }
}

/// The process-wide engine plus the thread that drives epoch-based deadlines.
#[derive(Debug)]
pub struct PluginRuntime {
    engine: Engine,
    limits: SandboxLimits,
    ticker_stop: Arc<AtomicBool>,
}

impl PluginRuntime {
    pub fn new(limits: SandboxLimits) -> Result<Self, PluginError> {
        let mut config = Config::new();
        // Epoch interruption: a few % overhead, unlike fuel, and enough to stop a loop.
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Compile {
            origin: "engine".into(),
            reason: format!("{e:#}"),
        })?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (ticker_stop.clone(), engine.clone());
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Compile {
                origin: "engine".into(),
                reason: format!("cannot start the epoch thread: {e}"),
            })?;
        Ok(Self {
            engine,
            limits,
            ticker_stop,
        })
    }

    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// Load a component from a file (compiles it: call this off the hot path).
    pub fn load_file(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| PluginError::Read {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        self.load(&bytes, &origin)
    }

    /// Compile, check the interface version, instantiate and self-check a component.
    pub fn load(&self, bytes: &[u8], origin: &str) -> Result<LoadedPlugin, PluginError> {
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginError::Compile {
            origin: origin.into(),
            reason: format!("{e:#}"),
        })?;
        let wit_version = check_interface(&self.engine, &component, origin)?;

        let mut linker: Linker<SandboxState> = Linker::new(&self.engine);
        // No capabilities: any import (Rust's std pulls in WASI) links to a trap.
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| instantiate_error(origin, e))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| instantiate_error(origin, e))?;

        let imports = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();

        let mut plugin = LoadedPlugin {
            name: String::new(),
            version: String::new(),
            wit_version,
            imports,
            origin: origin.into(),
            engine: self.engine.clone(),
            limits: self.limits,
            pre,
            instance: None,
        };
        plugin
            .instantiate()
            .map_err(|e| instantiate_error(origin, e))?;
        let info = plugin.describe().map_err(|reason| PluginError::SelfCheck {
            origin: origin.into(),
            reason: format!("describe() failed: {reason}"),
        })?;
        if info.name.is_empty() || info.version.is_empty() {
            return Err(PluginError::SelfCheck {
                origin: origin.into(),
                reason: "describe() returned an empty name or version".into(),
            });
        }
        plugin.name = info.name;
        plugin.version = info.version;
        plugin.self_check()?;
        Ok(plugin)
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn instantiate_error(origin: &str, e: wasmtime::Error) -> PluginError {
    PluginError::Instantiate {
        origin: origin.into(),
        reason: format!("{e:#}"),
    }
}

/// Find the exported `streamhost:plugin/rules@X.Y.Z` and check X.Y.Z against ours.
fn check_interface(
    engine: &Engine,
    component: &Component,
    origin: &str,
) -> Result<String, PluginError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let prefix = format!("{WIT_INTERFACE}@");
    let Some(version) = exports
        .iter()
        .find_map(|name| name.strip_prefix(&prefix))
        .map(str::to_string)
    else {
        return Err(PluginError::MissingInterface {
            origin: origin.into(),
            found: exports.join(", "),
        });
    };
    if !compatible(&version, WIT_VERSION) {
        return Err(PluginError::IncompatibleVersion {
            origin: origin.into(),
            wanted: version,
        });
    }
    Ok(version)
}

/// Semver compatibility as cargo reads it: same major, and for 0.x the same minor.
pub fn compatible(plugin: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    };
    match (parse(plugin), parse(host)) {
        (Some((0, pm)), Some((0, hm))) => pm == hm,
        (Some((pmaj, pmin)), Some((hmaj, hmin))) => pmaj == hmaj && pmin <= hmin,
        _ => false,
    }
}

/// Per-store state: only the resource limiter.
#[derive(Debug)]
pub struct SandboxState {
    limits: StoreLimits,
}

struct Instance {
    store: Store<SandboxState>,
    bindings: Plugin,
}

/// One plugin, compiled and instantiated, ready to judge batches.
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    /// The WIT version the plugin was built against.
    pub wit_version: String,
    /// What the component imports (all linked to traps: plugins get no capabilities).
    pub imports: Vec<String>,
    pub origin: String,
    engine: Engine,
    limits: SandboxLimits,
    pre: PluginPre<SandboxState>,
    instance: Option<Instance>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.id())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// `name@version`, as written into the DLQ and the `processed_by` field.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    fn deadline_ticks(&self) -> u64 {
        let ticks = self.limits.batch_deadline.as_millis() / EPOCH_TICK.as_millis().max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }

    /// A fresh store and instance: after a trap the old instance must not be entered again.
    fn instantiate(&mut self) -> wasmtime::Result<()> {
        self.instance = None;
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, SandboxState { limits });
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(self.deadline_ticks());
        let bindings = self.pre.instantiate(&mut store)?;
        self.instance = Some(Instance { store, bindings });
        Ok(())
    }

    fn describe(
        &mut self,
    ) -> Result<super::bindings::exports::streamhost::plugin::rules::PluginInfo, String> {
        let ticks = self.deadline_ticks();
        let Some(Instance { store, bindings }) = self.instance.as_mut() else {
            return Err("no instance".into());
        };
        store.set_epoch_deadline(ticks);
        bindings
            .streamhost_plugin_rules()
            .call_describe(&mut *store)
            .map_err(|e| explain(&e, self.limits))
    }

    /// Run a known-good and an empty batch: a plugin that cannot judge them is not loaded.
    fn self_check(&mut self) -> Result<(), PluginError> {
        let sample = WitEvent {
            event_type: "page_view".into(),
            user_id: 1,
            page_url: "/page/1".into(),
            button_id: "00000000-0000-0000-0000-000000000000".into(),
            timestamp: 1_700_000_000,
            country: "US".into(),
            device_type: None,
            attributes: Vec::new(),
        };
        for batch in [Vec::new(), vec![sample]] {
            self.process(&batch).map_err(|e| PluginError::SelfCheck {
                origin: self.origin.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Judge one batch. On a trap, deadline or memory cap the instance is replaced and
    /// the error says what happened; the caller decides what happens to the events.
    pub fn process(&mut self, batch: &[WitEvent]) -> Result<Vec<Verdict>, PluginError> {
        if self.instance.is_none() {
            self.instantiate().map_err(|e| PluginError::Failed {
                plugin: self.id(),
                reason: format!("cannot re-instantiate: {e:#}"),
            })?;
        }
        let ticks = self.deadline_ticks();
        let Some(Instance { store, bindings }) = self.instance.as_mut() else {
            return Err(PluginError::Failed {
                plugin: self.id(),
                reason: "no instance".into(),
            });
        };
        store.set_epoch_deadline(ticks);
        match bindings
            .streamhost_plugin_rules()
            .call_process(&mut *store, batch)
        {
            Ok(verdicts) if verdicts.len() == batch.len() => Ok(verdicts),
            Ok(verdicts) => Err(PluginError::Failed {
                plugin: self.id(),
                reason: format!(
                    "returned {} verdicts for {} events (must be one per event)",
                    verdicts.len(),
                    batch.len()
                ),
            }),
            Err(e) => {
                let reason = explain(&e, self.limits);
                // Entering a trapped instance again is an error: start from a clean one.
                self.instance = None;
                Err(PluginError::Failed {
                    plugin: self.id(),
                    reason,
                })
            }
        }
    }
}

/// Turn a wasmtime error into one line a plugin author can act on.
fn explain(e: &wasmtime::Error, limits: SandboxLimits) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "deadline exceeded: the batch ran longer than {} ms",
            limits.batch_deadline.as_millis()
        ),
        Some(Trap::AllocationTooLarge) | Some(Trap::HeapMisaligned) => {
            format!(
                "out of memory (cap {} MiB): {e:#}",
                limits.memory_bytes >> 20
            )
        }
        Some(trap) => format!("trapped: {trap}: {e:#}"),
        None if format!("{e:#}").contains("forcing a memory growth failure") => {
            format!("out of memory (cap {} MiB)", limits.memory_bytes >> 20)
        }
        None => format!("failed: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn semver_rules_for_the_wit_package() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.0", "0.1.3"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("0.1.0", "0.2.0"));
        assert!(compatible("1.0.0", "1.2.0"));
        assert!(!compatible("1.3.0", "1.2.0"));
        assert!(!compatible("2.0.0", "1.2.0"));
        assert!(!compatible("garbage", "0.1.0"));
    }
}
