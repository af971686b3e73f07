//! The wasmtime side: one engine for the process, one compiled artifact per plugin file
//! ([`CompiledPlugin`]), and one sandboxed store per serving instance ([`LoadedPlugin`]).

use std::io::Read as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};

use super::answer::{self, Rejections};
use super::compiled::CompiledCache;
use super::contract::Contract;
use super::generations::{self, Call, Description, Failure, Generation};
use super::{WIT_INTERFACE, WIT_VERSION};
use crate::event::{Event, Value};
use crate::schema::{FieldType, Schema};

/// How often the engine's epoch advances: the resolution of the per-batch deadline.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Plugin instances alive at once in one runtime: one per plugin per validate stage,
/// twice that while a reload builds the next chain, plus load-time probes. Each one
/// reserves (not commits) a 4 GiB slot of address space, so bounds checks stay elided.
const POOLED_INSTANCES: u32 = 256;

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
         and accepts {accepted}; rebuild it against wit/"
    )]
    IncompatibleVersion {
        origin: String,
        wanted: String,
        accepted: String,
    },
    #[error("{origin}: cannot instantiate: {reason}")]
    Instantiate { origin: String, reason: String },
    #[error("{origin}: load-time self-check failed: {reason}")]
    SelfCheck { origin: String, reason: String },
    #[error("{origin}: manifest: {reason}")]
    Manifest { origin: String, reason: String },
    #[error("{plugin}: {reason}")]
    Failed { plugin: String, reason: String },
    #[error(
        "{origin}: refused: {found}; over the limit on {what} ({allowed}): raise `{key}` to allow it",
        what = .limit.what(),
        key = .limit.key()
    )]
    OverLimit {
        origin: String,
        limit: Limit,
        /// What the plugin needs, as far as it is known.
        found: String,
        /// The limit's value, with its unit.
        allowed: String,
    },
}

/// A bound of the sandbox, each set by a key of `[plugins]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Size of the `.wasm` file.
    FileSize,
    /// Time to compile it.
    CompileTime,
    /// Linear memories of one component, counted over every core instance.
    Memories,
    /// Tables of one component, counted over every core instance.
    Tables,
    /// Core module instances one component creates.
    CoreInstances,
    /// Elements of any one table.
    TableElements,
    /// Bytes of any one linear memory.
    MemorySize,
}

impl Limit {
    /// The configuration key that sets it.
    pub fn key(self) -> &'static str {
        match self {
            Limit::FileSize => "plugins.max_file_mb",
            Limit::CompileTime => "plugins.compile_deadline_ms",
            Limit::Memories => "plugins.memories_per_plugin",
            Limit::Tables => "plugins.tables_per_plugin",
            Limit::CoreInstances => "plugins.core_instances_per_plugin",
            Limit::TableElements => "plugins.table_elements",
            Limit::MemorySize => "plugins.memory_mb",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Limit::FileSize => "the file size",
            Limit::CompileTime => "compile time",
            Limit::Memories => "linear memories per plugin",
            Limit::Tables => "tables per plugin",
            Limit::CoreInstances => "core instances per plugin",
            Limit::TableElements => "elements per table",
            Limit::MemorySize => "linear memory per instance",
        }
    }
}

/// Sandbox limits applied to every plugin (the defaults are `[plugins]`'s, in
/// `config.rs`). A component over one is refused at load with [`PluginError::OverLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Linear memory cap per instance. Must fit the largest batch (about 2 KiB per event).
    pub memory_bytes: usize,
    /// CPU budget for one `process` call (one batch).
    pub batch_deadline: Duration,
    /// Linear memories per component, over all its core instances.
    pub memories: u32,
    /// Tables per component, over all its core instances.
    pub tables: u32,
    /// Core module instances per component.
    pub core_instances: u32,
    /// Elements of any one table (each a pointer in the host).
    pub table_elements: usize,
    /// Largest `.wasm` accepted, checked before it is read whole.
    pub file_bytes: usize,
    /// Longest wait for a compile (see [`PluginRuntime::compile_bounded`]).
    pub compile_deadline: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            batch_deadline: Duration::from_millis(500),
            memories: 2,
            tables: 4,
            core_instances: 8,
            table_elements: 10_000,
            file_bytes: 4 << 20,
            compile_deadline: Duration::from_secs(20),
        }
    }
}

impl SandboxLimits {
    /// `limit`'s value, with its unit.
    fn allowed(&self, limit: Limit) -> String {
        match limit {
            Limit::FileSize => mib(self.file_bytes),
            Limit::CompileTime => format!("{} ms", self.compile_deadline.as_millis()),
            Limit::Memories => self.memories.to_string(),
            Limit::Tables => self.tables.to_string(),
            Limit::CoreInstances => self.core_instances.to_string(),
            Limit::TableElements => self.table_elements.to_string(),
            Limit::MemorySize => mib(self.memory_bytes),
        }
    }

    fn over(&self, origin: &str, limit: Limit, found: String) -> PluginError {
        PluginError::OverLimit {
            origin: origin.into(),
            limit,
            found,
            allowed: self.allowed(limit),
        }
    }

    /// The limit a wasmtime error (from compiling or instantiating) reports as
    /// exceeded, if any: the pooling allocator checks a component against its limits
    /// when it is compiled, the store's limiter when it is instantiated.
    fn exceeded(e: &wasmtime::Error) -> Option<(Limit, String)> {
        const SIGNS: &[(&str, Limit)] = &[
            ("core module instances, which exceeds", Limit::CoreInstances),
            ("instance count too high", Limit::CoreInstances),
            ("linear memories, which exceeds", Limit::Memories),
            ("memory count too high", Limit::Memories),
            ("defined memories count of", Limit::Memories),
            ("tables, which exceeds", Limit::Tables),
            ("table count too high", Limit::Tables),
            ("defined tables count of", Limit::Tables),
            ("minimum element size of", Limit::TableElements),
            ("memory has a minimum byte size of", Limit::MemorySize),
        ];
        e.chain().find_map(|cause| {
            let text = cause.to_string();
            SIGNS
                .iter()
                .find(|(sign, _)| text.contains(sign))
                .map(|(_, limit)| (*limit, text.lines().next().unwrap_or_default().to_string()))
        })
    }

    /// The same bounds as the pool's, for one store (one store per instance): they
    /// hold also when the pool could not be reserved.
    fn store_limits(&self) -> StoreLimits {
        let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .memories(count(self.memories))
            .tables(count(self.tables))
            .instances(count(self.core_instances))
            .table_elements(self.table_elements)
            .trap_on_grow_failure(true)
            .build()
    }

    /// Check what `component` will allocate against the limits, before it is
    /// instantiated (the pooling allocator checks the counts too; without it, the
    /// store's limiter would only tell at instantiation).
    fn check(&self, component: &Component, origin: &str) -> Result<(), PluginError> {
        let Some(needs) = component.resources_required() else {
            return Err(PluginError::Instantiate {
                origin: origin.into(),
                reason: "it imports a core module, which this host cannot provide".into(),
            });
        };
        if needs.num_memories > self.memories {
            return Err(self.over(
                origin,
                Limit::Memories,
                format!("the component has {} linear memories", needs.num_memories),
            ));
        }
        if needs.num_tables > self.tables {
            return Err(self.over(
                origin,
                Limit::Tables,
                format!("the component has {} tables", needs.num_tables),
            ));
        }
        if let Some(elements) = needs.max_initial_table_size {
            if elements > u64::try_from(self.table_elements).unwrap_or(u64::MAX) {
                return Err(self.over(
                    origin,
                    Limit::TableElements,
                    format!("a table starts with {elements} elements"),
                ));
            }
        }
        if let Some(pages) = needs.max_initial_memory_size {
            let bytes = pages.saturating_mul(WASM_PAGE);
            if bytes > u64::try_from(self.memory_bytes).unwrap_or(u64::MAX) {
                return Err(self.over(
                    origin,
                    Limit::MemorySize,
                    format!("a memory starts at {} MiB", bytes >> 20),
                ));
            }
        }
        Ok(())
    }
}

/// `bytes` in MiB when whole, else in bytes.
fn mib(bytes: usize) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Bytes in a WebAssembly page.
const WASM_PAGE: u64 = 64 << 10;

/// The engine's settings; `pooled`: instances come from a pool sized for these limits.
fn engine_config(limits: &SandboxLimits, pooled: bool) -> Config {
    let mut config = Config::new();
    // Epoch interruption: a few % overhead, unlike fuel, and enough to stop a loop.
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if pooled {
        // Pre-mapped slots: a fresh instance (after a trap, or for a new chain) costs
        // no mmap, and a slot keeps its module's memory image for the next one. The
        // per-component bounds keep one component from taking every slot of a kind;
        // the totals are sized so each instance can use its bound.
        let per = |n: u32| POOLED_INSTANCES.saturating_mul(n.max(1));
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(per(limits.core_instances))
            .total_memories(per(limits.memories))
            .total_tables(per(limits.tables))
            .max_core_instances_per_component(limits.core_instances)
            .max_memories_per_component(limits.memories)
            .max_tables_per_component(limits.tables)
            .max_memories_per_module(limits.memories)
            .max_tables_per_module(limits.tables)
            .table_elements(limits.table_elements)
            .max_memory_size(limits.memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The process-wide engine plus the thread that drives epoch-based deadlines.
#[derive(Debug)]
pub struct PluginRuntime {
    engine: Engine,
    /// Where compiled components are kept; `None`: compile every file.
    cache: Option<CompiledCache>,
    limits: SandboxLimits,
    schema: Arc<Schema>,
    ticker_stop: Arc<AtomicBool>,
    /// Compiles given up on at their deadline and still running.
    abandoned: Arc<AtomicUsize>,
}

impl PluginRuntime {
    /// Plugins of this runtime judge events of `schema`.
    pub fn new(limits: SandboxLimits, schema: Arc<Schema>) -> Result<Self, PluginError> {
        let engine_error = |reason: String| PluginError::Compile {
            origin: "engine".into(),
            reason,
        };
        let engine = match Engine::new(&engine_config(&limits, true)) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), instances = POOLED_INSTANCES,
                    "cannot reserve the plugin instance pool (a limit on address space?); \
                     instances are allocated one by one instead");
                Engine::new(&engine_config(&limits, false))
                    .map_err(|e| engine_error(format!("{e:#}")))?
            }
        };
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
            .map_err(|e| engine_error(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self {
            engine,
            cache: None,
            limits,
            schema,
            ticker_stop,
            abandoned: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Keep compiled components in `dir` and load them from there (see
    /// [`CompiledCache`]). A directory that cannot be used is reported and skipped:
    /// plugins then compile every time.
    pub fn with_cache(mut self, dir: &Path) -> Self {
        match CompiledCache::open(dir, &self.engine) {
            Ok(cache) => self.cache = Some(cache),
            Err(e) => tracing::warn!(error = %e, "compiled plugins are not cached"),
        }
        self
    }

    /// Load a component file with no settings (compiles it: call this off the hot path).
    pub fn load_file(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let bytes = self.read_file(path)?;
        let origin = path.display().to_string();
        Arc::new(self.compile(&bytes, &origin, Vec::new())?).instantiate_checked()
    }

    /// The bytes of a plugin file, refused ([`Limit::FileSize`]) if it is larger than
    /// the limit: checked before reading it, and while reading (it may grow meanwhile).
    pub fn read_file(&self, path: &Path) -> Result<Vec<u8>, PluginError> {
        let origin = path.display().to_string();
        let read_error = |e: std::io::Error| PluginError::Read {
            origin: origin.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let max = u64::try_from(self.limits.file_bytes).unwrap_or(u64::MAX);
        let too_large = |size: u64| {
            self.limits.over(
                &origin,
                Limit::FileSize,
                format!("the file has {size} bytes"),
            )
        };
        let size = file.metadata().map_err(read_error)?.len();
        if size > max {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() > self.limits.file_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Compile `bytes` on a thread of its own, waiting at most `compile_deadline`.
    ///
    /// A wasmtime compile cannot be interrupted, so past the deadline the load is
    /// refused and the compile abandoned: it runs to its end on its thread, its result
    /// dropped. Compiling in a child process would reclaim that CPU, but every
    /// embedding (the host, `plugin check`, tests, benchmarks) would need the host
    /// binary and an artifact handed back through a pipe and loaded as native code. The
    /// deadline bounds how long a load waits, and the file-size limit bounds the work
    /// an abandoned compile can still do (docs/design.md has the figures); the reloader
    /// does not retry a refused file until it changes.
    fn compile_bounded(&self, bytes: &[u8], origin: &str) -> Result<Component, PluginError> {
        let compile_error = |reason: String| PluginError::Compile {
            origin: origin.into(),
            reason,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (engine, wasm) = (self.engine.clone(), bytes.to_vec());
        std::thread::Builder::new()
            .name("plugin-compile".into())
            .spawn(move || {
                // The receiver is gone if the compile was abandoned: nothing to tell.
                let _ = tx.send(Component::new(&engine, &wasm));
            })
            .map_err(|e| compile_error(format!("cannot start a compile thread: {e}")))?;
        match rx.recv_timeout(self.limits.compile_deadline) {
            Ok(Ok(component)) => Ok(component),
            Ok(Err(e)) => Err(match SandboxLimits::exceeded(&e) {
                Some((limit, found)) => self.limits.over(origin, limit, found),
                None => compile_error(format!("{e:#}")),
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let running = self.abandoned.fetch_add(1, Ordering::Relaxed) + 1;
                let abandoned = self.abandoned.clone();
                // Count it down when the abandoned compile ends.
                let _ = std::thread::Builder::new()
                    .name("plugin-compile-reaper".into())
                    .spawn(move || {
                        let _ = rx.recv();
                        abandoned.fetch_sub(1, Ordering::Relaxed);
                    });
                tracing::warn!(
                    file = origin,
                    abandoned_running = running,
                    "plugin compile past its deadline: abandoned, it finishes in the background"
                );
                Err(self.limits.over(
                    origin,
                    Limit::CompileTime,
                    "its compile did not end in time".into(),
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(compile_error(
                "the compiler stopped without a result".into(),
            )),
        }
    }

    /// Compiles abandoned at their deadline that are still running.
    pub fn abandoned_compiles(&self) -> usize {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Compile, check the interface version, instantiate, configure and self-check.
    pub fn compile(
        &self,
        bytes: &[u8],
        origin: &str,
        settings: Vec<(String, String)>,
    ) -> Result<CompiledPlugin, PluginError> {
        if bytes.len() > self.limits.file_bytes {
            return Err(self.limits.over(
                origin,
                Limit::FileSize,
                format!("the file has {} bytes", bytes.len()),
            ));
        }
        let cached_at = self.cache.as_ref().map(|c| c.entry(bytes));
        let cached = cached_at.as_ref().and_then(|entry| entry.load());
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => self.compile_bounded(bytes, origin)?,
        };
        self.limits.check(&component, origin)?;
        let (export, wit_version, generation) = find_interface(&self.engine, &component, origin)?;

        let mut linker: Linker<SandboxState> = Linker::new(&self.engine);
        // No capabilities: any import (Rust's std pulls in WASI) links to a trap.
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| instantiate_error(origin, e))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| instantiate_error(origin, e))?;
        let index = |name: &str| -> Result<Option<ComponentExportIndex>, PluginError> {
            let iface = component.get_export_index(None, &export).ok_or_else(|| {
                PluginError::MissingInterface {
                    origin: origin.into(),
                    found: export.clone(),
                }
            })?;
            Ok(component.get_export_index(Some(&iface), name))
        };
        let missing = |name: &str| PluginError::Instantiate {
            origin: origin.into(),
            reason: format!("`{export}` has no function `{name}`"),
        };
        let exports = Exports {
            generation,
            describe: index("describe")?.ok_or_else(|| missing("describe"))?,
            process: index("process")?.ok_or_else(|| missing("process"))?,
            configure: index("configure")?,
        };
        if exports.configure.is_none() && !settings.is_empty() {
            return Err(PluginError::Manifest {
                origin: origin.into(),
                reason: format!(
                    "the manifest has [settings] but the plugin is built against @{wit_version}, \
                     which has no `configure` (added in 0.2.0)"
                ),
            });
        }
        let imports = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();

        let mut compiled = CompiledPlugin {
            name: String::new(),
            version: String::new(),
            wit_version,
            // Until `describe` says otherwise; the self-check runs after it.
            contract: Contract::undescribed(),
            schema: self.schema.clone(),
            imports,
            from_cache,
            origin: origin.into(),
            settings,
            engine: self.engine.clone(),
            limits: self.limits,
            pre,
            exports,
        };
        let mut probe = LoadedPlugin::new(Arc::new(compiled.clone()));
        probe.instantiate().map_err(|e| match e {
            InstantiateError::Limit(limit, found) => self.limits.over(origin, limit, found),
            InstantiateError::Other(reason) => PluginError::Instantiate {
                origin: origin.into(),
                reason,
            },
        })?;
        let info = probe.describe().map_err(|reason| PluginError::SelfCheck {
            origin: origin.into(),
            reason: format!("describe() failed: {reason}"),
        })?;
        if info.name.trim().is_empty() || info.version.trim().is_empty() {
            return Err(PluginError::SelfCheck {
                origin: origin.into(),
                reason: "describe() returned an empty name or version".into(),
            });
        }
        // Names and versions are metric labels and DLQ fields: short, one token.
        let token = |s: &str| {
            s.len() <= answer::MAX_NAME_BYTES
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        };
        if !token(&info.name) || !token(&info.version) {
            return Err(PluginError::SelfCheck {
                origin: origin.into(),
                reason: format!(
                    "describe() returned name \"{}\" and version \"{}\": each must be 1 to {} \
                     bytes of letters, digits and - _ . +",
                    crate::text::shown(&info.name, 64),
                    crate::text::shown(&info.version, 64),
                    answer::MAX_NAME_BYTES
                ),
            });
        }
        compiled.name = info.name;
        compiled.version = info.version;
        compiled.contract = info.contract;
        if let (Some(entry), false) = (&cached_at, from_cache) {
            entry.store(&component);
        }
        Ok(compiled)
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

/// Find the exported `streamhost:plugin/rules@X.Y.Z` and check X.Y.Z against the
/// versions this host accepts. Returns the export's full name, its version and the
/// generation that serves it.
fn find_interface(
    engine: &Engine,
    component: &Component,
    origin: &str,
) -> Result<(String, String, &'static dyn Generation), PluginError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let prefix = format!("{WIT_INTERFACE}@");
    let Some(export) = exports.iter().find(|name| name.starts_with(&prefix)) else {
        return Err(PluginError::MissingInterface {
            origin: origin.into(),
            found: exports.join(", "),
        });
    };
    let version = export[prefix.len()..].to_string();
    let Some(generation) = generations::serving(&version) else {
        return Err(PluginError::IncompatibleVersion {
            origin: origin.into(),
            wanted: version,
            accepted: generations::accepted_versions()
                .iter()
                .map(|v| format!("@{v}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    Ok((export.clone(), version, generation))
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

#[derive(Debug, Clone)]
struct Exports {
    /// Whose bindings its functions are called with.
    generation: &'static dyn Generation,
    describe: ComponentExportIndex,
    process: ComponentExportIndex,
    /// Absent in plugins built against 0.1.x.
    configure: Option<ComponentExportIndex>,
}

/// A compiled, checked plugin: cheap to instantiate again (after a trap, or when a new
/// chain is built on a reload) without compiling.
#[derive(Clone)]
pub struct CompiledPlugin {
    pub name: String,
    pub version: String,
    /// The WIT version the plugin was built against.
    pub wit_version: String,
    /// How the host crosses into it, resolved against the schema.
    pub contract: Contract,
    /// The schema of the events it judges.
    pub schema: Arc<Schema>,
    /// What the component imports (all linked to traps: plugins get no capabilities).
    pub imports: Vec<String>,
    /// Loaded from the compiled-plugin cache rather than compiled.
    pub from_cache: bool,
    pub origin: String,
    pub settings: Vec<(String, String)>,
    engine: Engine,
    limits: SandboxLimits,
    pre: InstancePre<SandboxState>,
    exports: Exports,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("id", &self.id())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl CompiledPlugin {
    /// `name@version`, as written into the DLQ and the `processed_by` field.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// A serving instance that has passed the self-check (one judgement per event).
    pub fn instantiate_checked(self: Arc<Self>) -> Result<LoadedPlugin, PluginError> {
        let mut plugin = LoadedPlugin::new(self);
        plugin.self_check()?;
        Ok(plugin)
    }
}

struct Instance {
    store: Store<SandboxState>,
    instance: wasmtime::component::Instance,
}

/// Why an instance could not be made.
#[derive(Debug)]
enum InstantiateError {
    /// Over a sandbox limit: which, and what the component needs.
    Limit(Limit, String),
    Other(String),
}

impl std::fmt::Display for InstantiateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstantiateError::Limit(limit, found) => {
                write!(f, "{found}: over `{}`", limit.key())
            }
            InstantiateError::Other(reason) => f.write_str(reason),
        }
    }
}

/// One plugin instance judging batches, with its own store and failure count.
pub struct LoadedPlugin {
    pub compiled: Arc<CompiledPlugin>,
    instance: Option<Instance>,
    /// Batches in a row on which it judged nothing (reset by one it judged): the
    /// circuit breaker's input, kept by the chain.
    pub consecutive_failures: u32,
    pub disabled: bool,
    /// While disabled: when the chain tries it again on one batch (half-open), and the
    /// wait after that if it fails again.
    pub retry_at: Option<std::time::Instant>,
    pub backoff: Duration,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.id())
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    fn new(compiled: Arc<CompiledPlugin>) -> Self {
        Self {
            compiled,
            instance: None,
            consecutive_failures: 0,
            disabled: false,
            retry_at: None,
            backoff: Duration::ZERO,
        }
    }

    pub fn id(&self) -> String {
        self.compiled.id()
    }

    pub fn name(&self) -> &str {
        &self.compiled.name
    }

    fn deadline_ticks(&self) -> u64 {
        let ticks = self.compiled.limits.batch_deadline.as_millis() / EPOCH_TICK.as_millis().max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }

    /// A fresh store and instance, configured: after a trap the old one must not be
    /// entered again.
    fn instantiate(&mut self) -> Result<(), InstantiateError> {
        self.instance = None;
        let c = &self.compiled;
        let limits = c.limits.store_limits();
        let mut store = Store::new(&c.engine, SandboxState { limits });
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(self.deadline_ticks());
        // What one call may copy out of the plugin (answers, names), counted by wasmtime
        // before it copies: N rejections pointing at one large string count N times.
        store.set_hostcall_fuel(c.limits.memory_bytes);
        let explain = |e: wasmtime::Error| InstantiateError::Other(explain(&e, c.limits));
        let instance =
            c.pre
                .instantiate(&mut store)
                .map_err(|e| match SandboxLimits::exceeded(&e) {
                    Some((limit, found)) => InstantiateError::Limit(limit, found),
                    None => explain(e),
                })?;
        if let Some(index) = &c.exports.configure {
            let configure = instance
                .get_typed_func::<(Vec<(String, String)>,), (Result<(), String>,)>(
                    &mut store, index,
                )
                .map_err(|e| {
                    InstantiateError::Other(format!("`configure` has the wrong signature: {e:#}"))
                })?;
            store.set_epoch_deadline(self.deadline_ticks());
            let (result,) = configure
                .call(&mut store, (c.settings.clone(),))
                .map_err(explain)?;
            result.map_err(|message| {
                InstantiateError::Other(format!("configure() refused the settings: {message}"))
            })?;
        }
        self.instance = Some(Instance { store, instance });
        Ok(())
    }

    fn describe(&mut self) -> Result<Description, String> {
        let ticks = self.deadline_ticks();
        let c = self.compiled.clone();
        let Some(Instance { store, instance }) = self.instance.as_mut() else {
            return Err("no instance".into());
        };
        store.set_epoch_deadline(ticks);
        let describe = Call {
            store,
            instance,
            export: c.exports.describe,
            name: "describe",
            limits: c.limits,
        };
        c.exports.generation.describe(describe, &c.schema)
    }

    /// Run an empty batch and a known-good event: a plugin that cannot judge them (an
    /// answer that fits the batch, whatever its generation) is not loaded.
    fn self_check(&mut self) -> Result<(), PluginError> {
        let sample = sample_event(&self.compiled.schema);
        for mut batch in [Vec::new(), vec![sample]] {
            self.process(&mut batch)
                .map_err(|e| PluginError::SelfCheck {
                    origin: self.compiled.origin.clone(),
                    reason: e.to_string(),
                })?;
        }
        self.consecutive_failures = 0;
        Ok(())
    }

    /// Judge one batch in place: the plugin's changes are made to the events, and its
    /// rejections returned (by position, ascending). On a trap, deadline, memory cap or
    /// an answer that does not fit the batch, the instance is dropped (the next call gets
    /// a fresh one) and the error says what happened; the events may then be changed in
    /// part, and the caller decides what happens to them.
    pub fn process(&mut self, batch: &mut [Event]) -> Result<Rejections, PluginError> {
        let mut result = self.call_process(batch);
        if let Ok(rejections) = &mut result {
            let id = self.id();
            for (_, rejection) in rejections {
                rejection.rejected_by.clone_from(&id);
            }
        }
        result
    }

    fn call_process(&mut self, batch: &mut [Event]) -> Result<Rejections, PluginError> {
        let failed = |plugin: &Self, reason: String| PluginError::Failed {
            plugin: plugin.id(),
            reason,
        };
        if self.instance.is_none() {
            self.instantiate()
                .map_err(|reason| failed(self, format!("cannot instantiate: {reason}")))?;
        }
        let ticks = self.deadline_ticks();
        let c = self.compiled.clone();
        let Some(Instance { store, instance }) = self.instance.as_mut() else {
            return Err(failed(self, "no instance".into()));
        };
        store.set_epoch_deadline(ticks);
        let process = Call {
            store,
            instance,
            export: c.exports.process,
            name: "process",
            limits: c.limits,
        };
        match c.contract.crossing().process(process, batch, &c.schema) {
            Ok(rejections) => Ok(rejections),
            // A batch the host cannot put in columns is the host's problem, not the
            // plugin's: the instance is fine.
            Err(Failure::Batch(e)) => Err(PluginError::Failed {
                plugin: c.id(),
                reason: e.to_string(),
            }),
            Err(Failure::Plugin(reason)) => {
                // Entering a trapped instance again is an error, and one that answered
                // nonsense may be in any state: start from a clean one.
                self.instance = None;
                Err(failed(self, reason))
            }
        }
    }
}

/// A plain event of `schema` for the load-time self-check: every field present.
fn sample_event(schema: &Schema) -> Event {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            Some(match f.ty {
                FieldType::String => Value::Text("sample".into()),
                FieldType::Integer => Value::Integer(1),
                FieldType::Timestamp => Value::Integer(1_700_000_000),
                FieldType::Float => Value::Float(0.0),
                FieldType::Boolean => Value::Boolean(false),
            })
        })
        .collect();
    Event {
        fields,
        extra: Vec::new(),
    }
}

/// Turn a wasmtime error into one line a plugin author can act on.
pub(super) fn explain(e: &wasmtime::Error, limits: SandboxLimits) -> String {
    let text = format!("{e:#}");
    match e.chain().find_map(|cause| cause.downcast_ref::<Trap>()) {
        Some(Trap::Interrupt) => format!(
            "deadline exceeded: the batch ran longer than {} ms",
            limits.batch_deadline.as_millis()
        ),
        _ if text.contains("forcing trap when growing memory")
            || text.contains("memory growth failure") =>
        {
            format!(
                "out of memory: the instance hit its {} MiB cap",
                limits.memory_bytes >> 20
            )
        }
        // The trap names what happened (a Rust panic is `unreachable`); the wasm
        // backtrace goes to the log, not into every DLQ record.
        Some(trap) => format!("trapped: {trap}"),
        // wasmtime's hostcall fuel (set per store in `LoadedPlugin::instantiate`).
        None if text.contains("too much data is being copied between the host and the guest") => {
            format!(
                "answer too large: it would copy more than {} MiB into the host \
                 (the answer budget, equal to the memory cap plugins.memory_mb)",
                limits.memory_bytes >> 20
            )
        }
        None => match e
            .chain()
            .find(|c| c.to_string().starts_with("unknown import"))
        {
            // Imports are linked to traps. Rust's std calls WASI while printing a panic
            // message, so a panicking plugin ends up here too.
            Some(cause) => format!(
                "trapped: called {}: plugins get no capabilities (a Rust panic does this \
                 while printing its message: did the plugin panic?)",
                cause
                    .to_string()
                    .trim_start_matches("unknown import: ")
                    .trim_end_matches(" has not been defined")
            ),
            None => format!("failed: {text}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component instantiating a core module with `fields` `times` times.
    fn instantiating(engine: &Engine, fields: &str, times: usize) -> wasmtime::Result<Component> {
        let instances = "(core instance (instantiate $m))\n".repeat(times);
        Component::new(
            engine,
            format!("(component (core module $m {fields})\n{instances})"),
        )
    }

    /// Without the pool (its reservation can fail), the static check and the store's
    /// limiter refuse what the pool would, naming the same limits.
    #[test]
    fn without_the_pool_the_limits_hold_per_store() {
        let limits = SandboxLimits::default();
        let engine = Engine::new(&engine_config(&limits, false)).unwrap();
        let over = |fields: &str, times: usize| {
            let component = instantiating(&engine, fields, times).unwrap();
            let check = limits.check(&component, "c");
            let mut store = Store::new(
                &engine,
                SandboxState {
                    limits: limits.store_limits(),
                },
            );
            store.limiter(|state| &mut state.limits);
            let instantiated = Linker::<SandboxState>::new(&engine)
                .instantiate(&mut store, &component)
                .map(|_| ());
            (check, instantiated)
        };
        let (check, instantiated) = over("(memory 1)", limits.memories as usize + 1);
        assert!(matches!(
            check,
            Err(PluginError::OverLimit {
                limit: Limit::Memories,
                ..
            })
        ));
        let e = instantiated.unwrap_err();
        assert_eq!(
            SandboxLimits::exceeded(&e).map(|(l, _)| l),
            Some(Limit::Memories),
            "{e:#}"
        );

        let (check, instantiated) = over("(table 1 funcref)", limits.tables as usize + 1);
        assert!(matches!(
            check,
            Err(PluginError::OverLimit {
                limit: Limit::Tables,
                ..
            })
        ));
        let e = instantiated.unwrap_err();
        assert_eq!(
            SandboxLimits::exceeded(&e).map(|(l, _)| l),
            Some(Limit::Tables),
            "{e:#}"
        );

        let (check, instantiated) = over("", limits.core_instances as usize + 1);
        assert!(
            check.is_ok(),
            "core instances are counted when instantiated"
        );
        let e = instantiated.unwrap_err();
        assert_eq!(
            SandboxLimits::exceeded(&e).map(|(l, _)| l),
            Some(Limit::CoreInstances),
            "{e:#}"
        );
        let (check, instantiated) = over("", limits.core_instances as usize);
        assert!(check.is_ok() && instantiated.is_ok());

        let table = format!("(table {} funcref)", limits.table_elements + 1);
        let (check, _) = over(&table, 1);
        assert!(matches!(
            check,
            Err(PluginError::OverLimit {
                limit: Limit::TableElements,
                ..
            })
        ));
        let pages = limits.memory_bytes / (64 << 10) + 1;
        let (check, _) = over(&format!("(memory {pages})"), 1);
        assert!(matches!(
            check,
            Err(PluginError::OverLimit {
                limit: Limit::MemorySize,
                ..
            })
        ));
    }

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
