//! Host types generated from the WIT files, one module per interface generation.
//!
//! The functions are looked up by export name at load time (see `runtime`), so one
//! generation's types serve every version with the same records.

/// `wit/archive/0.2.0`: whole events in, one verdict per event out. Also serves 0.1,
/// which is 0.2 without `configure` (its records are the same).
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit/archive/0.2.0",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{Event, PluginInfo, Verdict};
}

/// `wit/plugin.wit` (0.3): columns of the declared fields in, differences out.
pub(crate) mod v3 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{
        Answer, AttributeTable, Batch, Fields, Kind, NumberField, PluginInfo, TextColumn, TextField,
    };
}
