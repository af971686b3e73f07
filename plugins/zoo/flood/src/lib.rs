//! Answers hostile in size and shape, on request (by `page_url`), after passing the
//! self-check. Built against the current contract (wit/, 1.0).
#![allow(unsafe_code)] // the exports wit-bindgen generates, and `/alias` below
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::streamhost::plugin::rules::{
    Answer, Batch, Guest, Kind, PluginInfo, Rejection, Values,
};

struct Flood;

/// A rejection of `event`.
fn reject(event: u32, code: String, message: String) -> Rejection {
    Rejection {
        event,
        code,
        message,
    }
}

impl Guest for Flood {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "zoo-flood".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Validator,
            reads: vec!["page_url".into(), "user_id".into()],
        }
    }

    fn configure(_settings: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Batch) -> Answer {
        let mut rejections = Vec::new();
        let (Some(urls), Some(ids)) = (batch.columns.first(), batch.columns.get(1)) else {
            return Answer {
                rejections,
                updates: Vec::new(),
            };
        };
        let (Values::Text(urls), Values::Integer(ids)) = (&urls.values, &ids.values) else {
            return Answer {
                rejections,
                updates: Vec::new(),
            };
        };
        let mut start = 0;
        for (i, &end) in urls.ends.iter().enumerate() {
            let end = end as usize;
            let event = i as u32;
            let id = ids.get(i).copied().unwrap_or(0);
            match urls.text.get(start..end).unwrap_or_default() {
                // A code of 2 MiB.
                "/huge-code" => rejections.push(reject(event, "x".repeat(2 << 20), "m".into())),
                // A message of 2 MiB.
                "/huge-message" => {
                    rejections.push(reject(event, "big".into(), "m".repeat(2 << 20)))
                }
                // A code that is not a snake_case identifier, with a line break in it.
                "/bad-code" => {
                    rejections.push(reject(event, "Bad Code\nforged".into(), "m".into()))
                }
                // One code per user id: as many codes as events.
                "/codes" => rejections.push(reject(
                    event,
                    format!("code_{}", id.unsigned_abs()),
                    "m".into(),
                )),
                // 100,000 rejections whose messages all point at one 1 MiB string: 3 MB
                // of answer in the plugin's memory, 100 GB if the host copied each one.
                "/alias" => {
                    let mut text = std::mem::ManuallyDrop::new("a".repeat(1 << 20));
                    let (ptr, len) = (text.as_mut_ptr(), text.len());
                    rejections.reserve_exact(100_000);
                    for _ in 0..100_000 {
                        // SAFETY: none, on purpose: many Strings own one buffer. The host
                        // refuses the answer while lifting it, so the plugin never frees
                        // them (post-return is not reached), and the instance is dropped.
                        let alias = unsafe { String::from_raw_parts(ptr, len, len) };
                        rejections.push(reject(event, "alias".into(), alias));
                    }
                }
                _ => {}
            }
            start = end;
        }
        Answer {
            rejections,
            updates: Vec::new(),
        }
    }
}

export!(Flood);
