//! Panics on every batch: must be rejected by the load-time self-check.
#![allow(unsafe_code)] // the exports wit-bindgen generates
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit/archive/0.3.0", world: "plugin" });

use exports::streamhost::plugin::rules::{Answer, Batch, Fields, Guest, Kind, PluginInfo};

struct AlwaysPanic;

impl Guest for AlwaysPanic {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "zoo-always-panic".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Validator,
            reads: Fields::empty(),
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(_batch: Batch) -> Answer {
        panic!("always")
    }
}

export!(AlwaysPanic);
