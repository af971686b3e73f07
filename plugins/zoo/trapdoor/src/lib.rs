//! Misbehaves on request (by `page_url`), after passing the self-check.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::streamhost::plugin::rules::{Event, Guest, PluginInfo, Verdict};

struct Trapdoor;

impl Guest for Trapdoor {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "zoo-trapdoor".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Vec<Verdict> {
        let mut miscount = false;
        for e in &batch {
            match e.page_url.as_str() {
                "/panic" => panic!("trapdoor: asked to panic"),
                "/loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                "/oom" => {
                    let mut hog: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hog.push(std::hint::black_box(vec![1u8; 1 << 20]));
                    }
                }
                "/miscount" => miscount = true,
                _ => {}
            }
        }
        let mut verdicts: Vec<Verdict> = batch.into_iter().map(Verdict::Accept).collect();
        if miscount {
            verdicts.pop();
        }
        verdicts
    }
}

export!(Trapdoor);
