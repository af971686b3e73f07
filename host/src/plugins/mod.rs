//! Stage 3: the plugin chain. WebAssembly components judge decoded events in batches.
//!
//! * [`runtime`]: the wasmtime engine, sandbox limits, compiled plugins and instances.
//! * [`generations`]: one module per contract generation (WIT version), each with its
//!   bindings and how a batch crosses into its plugins; the list of generations.
//! * [`contract`]: what a plugin declares it is (validator or enricher, fields read).
//! * [`columns`]: text columns and what every generation's batches share.
//! * [`answer`]: answers (rejections and changes only): limits and checks.
//! * [`chain`]: the ordered list of plugins a batch runs through, with the circuit breaker.
//! * [`directory`]: the plugin directory: `*.wasm` files and their optional manifests.
//! * [`reload`]: watching that directory and swapping the chain live.
//! * [`status`]: what `/plugins` shows.

pub mod answer;
pub mod chain;
pub mod columns;
pub mod compiled;
pub mod contract;
pub mod directory;
pub(crate) mod generations;
pub mod reload;
pub mod runtime;
pub mod status;

pub use answer::{Rejection, Verdict};
pub use chain::Chain;
pub use contract::{Contract, Kind};
pub use runtime::{CompiledPlugin, Limit, LoadedPlugin, PluginError, PluginRuntime, SandboxLimits};

/// The WIT interface plugins export.
pub const WIT_INTERFACE: &str = "streamhost:plugin/rules";
/// The WIT version of `wit/plugin.wit`, which new plugins are built against.
pub const WIT_VERSION: &str = "1.0.0";

/// Every version this host loads (each with its semver-compatible releases), oldest
/// first: those of every generation in [`generations`]. 0.1 is 0.2 without
/// `configure`; 0.3 crosses the brief's fields in columns; 1.0 names its fields.
/// Frozen copies of the older ones are under `wit/archive/`.
pub fn accepted_wit_versions() -> Vec<&'static str> {
    generations::accepted_versions()
}
