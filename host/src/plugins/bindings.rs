//! Host types generated from the WIT files, one module per contract generation.
//!
//! The functions are looked up by export name at load time (see `runtime`), so one
//! generation's types serve every version with the same records.

/// `wit/archive/0.2.0`: whole events in, one verdict per event out. Also serves 0.1,
/// which is 0.2 without `configure` (its records are the same).
pub(crate) mod wit_0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/archive/0.2.0",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{Event, PluginInfo, Verdict};
}

/// `wit/archive/0.3.0`: the brief's fields in columns, differences out.
pub(crate) mod wit_0_3 {
    wasmtime::component::bindgen!({
        path: "../wit/archive/0.3.0",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{
        Answer, AttributeTable, Batch, Fields, Kind, NumberField, PluginInfo, TextColumn, TextField,
    };
}

/// `wit/plugin.wit` (1.0): named, typed columns in, differences by name out.
pub(crate) mod wit_1 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
    });
    pub(crate) use exports::streamhost::plugin::rules::{
        Answer, Batch, Column, Kind, PluginInfo, TextColumn, Values,
    };
}
