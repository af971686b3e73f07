//! Built against a WIT this host must refuse (see ../README.md).
#![allow(unsafe_code)] // the exports wit-bindgen generates
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use exports::streamhost::plugin::rules::{Event, Guest, PluginInfo, Verdict};

struct Fixture;

impl Guest for Fixture {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "zoo-wrong-major".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Vec<Verdict> {
        batch.into_iter().map(Verdict::Accept).collect()
    }
}

export!(Fixture);
