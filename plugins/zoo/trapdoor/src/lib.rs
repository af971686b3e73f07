//! Misbehaves on request (by `page_url`), after passing the self-check.
#![allow(unsafe_code)] // the exports wit-bindgen generates
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit/archive/0.3.0", world: "plugin" });

use exports::streamhost::plugin::rules::{
    Answer, Batch, Fields, Guest, Kind, PluginInfo, Rejection,
};

struct Trapdoor;

impl Guest for Trapdoor {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "zoo-trapdoor".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Validator,
            reads: Fields::PAGE_URL,
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Batch) -> Answer {
        let mut rejections = Vec::new();
        let mut start = 0;
        for &end in &batch.page_url.ends {
            let end = end as usize;
            match batch.page_url.text.get(start..end).unwrap_or_default() {
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
                // An answer about an event that is not in the batch.
                "/miscount" => rejections.push(Rejection {
                    event: batch.size,
                    code: "miscount".into(),
                    message: "one past the end".into(),
                }),
                _ => {}
            }
            start = end;
        }
        Answer {
            rejections,
            text_updates: Vec::new(),
            number_updates: Vec::new(),
            attribute_updates: Vec::new(),
        }
    }
}

export!(Trapdoor);
