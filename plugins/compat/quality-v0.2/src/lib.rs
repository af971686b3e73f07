//! `quality` as it was before the 0.3 port: built against the frozen
//! `wit/archive/0.2.0`, so the host's 0.2 path (whole events in, one verdict per event
//! out, `configure`) stays built and tested. Same rules, same settings, same DLQ codes:
//! the rules file is `quality`'s own.

#[path = "../../../quality/src/rules.rs"]
mod rules;
pub use rules::*;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the exports wit-bindgen generates
mod component {
    wit_bindgen::generate!({ path: "../../../wit/archive/0.2.0", world: "plugin" });

    use std::sync::RwLock;

    use exports::streamhost::plugin::rules::{Event, Guest, PluginInfo, Rejection, Verdict};

    static ALLOWED: RwLock<Option<super::AllowList>> = RwLock::new(None);

    struct LegacyV2;

    impl Guest for LegacyV2 {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }
        }

        fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
            let allowed = super::Settings::parse(&settings)?.allowed_countries;
            let mut slot = ALLOWED.write().map_err(|_| "poisoned".to_string())?;
            *slot = Some(allowed);
            Ok(())
        }

        fn process(batch: Vec<Event>) -> Vec<Verdict> {
            let allowed = ALLOWED
                .read()
                .ok()
                .and_then(|a| a.clone())
                .unwrap_or_default();
            batch
                .into_iter()
                .map(
                    |event| match super::check(event.user_id, &event.country, &allowed) {
                        Ok(()) => Verdict::Accept(event),
                        Err(problem) => Verdict::Reject(Rejection {
                            code: problem.code().to_string(),
                            message: problem.to_string(),
                        }),
                    },
                )
                .collect()
        }
    }

    export!(LegacyV2);
}
