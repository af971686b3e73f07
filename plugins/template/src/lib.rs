//! A streamhost plugin to copy. Steps (docs/plugins.md has the details):
//!
//! 1. `cp -r plugins/template plugins/myrule`, rename the package in its Cargo.toml,
//!    add it to `members` in plugins/Cargo.toml;
//! 2. write the rule as a plain function (`judge` below) and unit-test it natively:
//!    `cd plugins && cargo test -p myrule --target x86_64-unknown-linux-gnu`;
//! 3. `scripts/build-plugins`, then `streamhost plugin check plugins/dist/myrule.wasm`
//!    and `streamhost plugin test plugins/dist/myrule.wasm --input events.jsonl`;
//! 4. deploy: copy to a hidden name in the plugin directory, then rename.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

    use exports::streamhost::plugin::rules::{
        Answer, Batch, Fields, Guest, Kind, PluginInfo, Rejection,
    };

    struct Plugin;

    impl Guest for Plugin {
        /// `kind`: `Validator` if the plugin only accepts or rejects (the host then
        /// refuses an answer with changes), `Enricher` if it changes fields or adds
        /// attributes (`text_updates`, `number_updates`, `attribute_updates` in the
        /// answer; see plugins/enrich). `reads`: the fields you look at, and no more:
        /// every declared string field is copied into the plugin for every event, the
        /// others arrive as empty columns.
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                kind: Kind::Validator,
                reads: Fields::EVENT_TYPE,
            }
        }

        /// Manifest `[settings]`, as strings. Refuse what you do not understand: the
        /// host then rejects the plugin with your message instead of running it wrong.
        fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
            match settings.first() {
                None => Ok(()),
                Some((key, _)) => Err(format!("unknown setting `{key}`")),
            }
        }

        /// The batch arrives in columns: event i's `event_type` is
        /// `text[ends[i - 1]..ends[i]]`. Answer with the events you reject (by index,
        /// with a stable code); every event not listed is accepted.
        fn process(batch: Batch) -> Answer {
            let column = &batch.event_type;
            let mut rejections = Vec::new();
            let mut start = 0;
            for (event, &end) in column.ends.iter().enumerate() {
                let end = end as usize;
                let event_type = column.text.get(start..end).unwrap_or_default();
                start = end;
                if let Err((code, message)) = super::judge(event_type) {
                    rejections.push(Rejection {
                        event: event as u32,
                        code: code.into(),
                        message,
                    });
                }
            }
            Answer {
                rejections,
                text_updates: Vec::new(),
                number_updates: Vec::new(),
                attribute_updates: Vec::new(),
            }
        }
    }

    export!(Plugin);
}

/// The rule. Replace with yours; keep it a plain function so it is easy to test.
pub fn judge(_event_type: &str) -> Result<(), (&'static str, String)> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn accepts_everything() {
        assert!(super::judge("page_view").is_ok());
    }
}
