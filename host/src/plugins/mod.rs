//! Stage 3: the plugin chain. WebAssembly components judge decoded events in batches.
//!
//! * [`runtime`]: the wasmtime engine, sandbox limits, compiled plugins and instances.
//! * [`chain`]: the ordered list of plugins a batch runs through, with the circuit breaker.
//! * [`directory`]: the plugin directory: `*.wasm` files and their optional manifests.
//! * [`reload`]: watching that directory and swapping the chain live.
//! * [`status`]: what `/plugins` shows.

pub mod chain;
pub mod directory;
pub mod reload;
pub mod runtime;
pub mod status;

pub use chain::{Chain, Outcome, Rejection};
pub use runtime::{CompiledPlugin, LoadedPlugin, PluginError, PluginRuntime, SandboxLimits};

/// The WIT interface plugins export.
pub const WIT_INTERFACE: &str = "streamhost:plugin/rules";
/// The WIT version of `wit/plugin.wit`, which new plugins are built against.
pub const WIT_VERSION: &str = "0.2.0";
/// Every version this host loads (each with its semver-compatible patch releases).
/// 0.1 is 0.2 without `configure`; its frozen copy is `wit/archive/0.1.0/`.
pub const ACCEPTED_WIT_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// Types generated from `wit/plugin.wit`. The functions are looked up by export name
/// at load time (see `runtime`), so the same types serve every accepted version: the
/// records did not change between them.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
    });
}
