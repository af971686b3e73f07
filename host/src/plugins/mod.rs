//! Stage 3: the plugin chain. WebAssembly components judge decoded events in batches.
//!
//! * [`runtime`]: the wasmtime engine, sandbox limits and one loaded component.
//! * [`chain`]: the ordered list of plugins an event batch runs through.
//! * [`directory`]: finding and loading the components in the plugin directory.

pub mod chain;
pub mod directory;
pub mod runtime;

pub use chain::{Chain, Outcome, Rejection};
pub use runtime::{LoadedPlugin, PluginError, PluginRuntime, SandboxLimits};

/// The WIT package version this host implements, and the range it accepts.
pub const WIT_PACKAGE: &str = "streamhost:plugin";
pub const WIT_INTERFACE: &str = "streamhost:plugin/rules";
pub const WIT_VERSION: &str = "0.1.0";

/// Generated from `wit/plugin.wit`.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
    });
}
