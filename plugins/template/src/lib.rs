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

    use exports::streamhost::plugin::rules::{Event, Guest, PluginInfo, Rejection, Verdict};

    struct Plugin;

    impl Guest for Plugin {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
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

        /// One verdict per event, in order. Accept (possibly changed: add fields with
        /// `event.attributes.push((name, value))`) or reject with a stable code.
        fn process(batch: Vec<Event>) -> Vec<Verdict> {
            batch
                .into_iter()
                .map(|event| match super::judge(&event.event_type) {
                    Ok(()) => Verdict::Accept(event),
                    Err((code, message)) => Verdict::Reject(Rejection {
                        code: code.into(),
                        message,
                    }),
                })
                .collect()
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
