//! Stage 3: the plugin chain. WebAssembly components judge decoded events in batches.
//!
//! * [`runtime`]: the wasmtime engine, sandbox limits, compiled plugins and instances.
//! * [`contract`]: what a plugin declares it is (validator or enricher, fields read),
//!   resolved against the event schema.
//! * [`columns`]: batches in columns (1.0: named and typed; 0.3: the brief's fields).
//! * [`answer`]: answers (rejections and changes only), checked and applied.
//! * [`whole`]: 0.1/0.2 calls, whole events in and out.
//! * [`chain`]: the ordered list of plugins a batch runs through, with the circuit breaker.
//! * [`directory`]: the plugin directory: `*.wasm` files and their optional manifests.
//! * [`reload`]: watching that directory and swapping the chain live.
//! * [`status`]: what `/plugins` shows.

pub mod answer;
mod bindings;
pub mod chain;
pub mod columns;
pub mod compiled;
pub mod contract;
pub mod directory;
pub mod reload;
pub mod runtime;
pub mod status;
pub mod whole;

pub use answer::{Rejection, Verdict};
pub use chain::Chain;
pub use contract::{Contract, Kind};
pub use runtime::{CompiledPlugin, Limit, LoadedPlugin, PluginError, PluginRuntime, SandboxLimits};

/// The WIT interface plugins export.
pub const WIT_INTERFACE: &str = "streamhost:plugin/rules";
/// The WIT version of `wit/plugin.wit`, which new plugins are built against.
pub const WIT_VERSION: &str = "1.0.0";
/// Every version this host loads (each with its semver-compatible releases). 0.1 is
/// 0.2 without `configure`; 0.3 crosses the brief's fields in columns; 1.0 names its
/// fields. Frozen copies of the older ones are under `wit/archive/`.
pub const ACCEPTED_WIT_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "1.0.0"];
