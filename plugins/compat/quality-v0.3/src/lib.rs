//! `quality` as it was as a WIT 0.3.0 plugin, built against the frozen
//! `wit/archive/0.3.0`, so the host's 0.3 path (the brief's fields in columns, an answer
//! of rejections and typed updates) stays built and tested. Same rules, settings and
//! DLQ codes as `quality`: the rules file is `quality`'s own.
//!
//! The rules:
//!
//! * `invalid_user_id`: `user_id` must not be negative (the generator negates 5 % of ids).
//! * `invalid_country`: the country must be one of the ISO 3166-1 alpha-2 codes the
//!   product serves. `XX` and `ZZ` are user-assigned codes that the generator uses as
//!   garbage, so an allow-list (not a deny-list) is the rule: a new garbage code is
//!   rejected without a plugin change.
//!
//! The rules themselves are plain functions (`check`) so they are unit-tested natively;
//! the component glue is a thin layer over them.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the exports wit-bindgen generates
mod component {
    wit_bindgen::generate!({ path: "../../../wit/archive/0.3.0", world: "plugin" });

    use std::sync::RwLock;

    use exports::streamhost::plugin::rules::{
        Answer, Batch, Fields, Guest, Kind, PluginInfo, Rejection,
    };

    /// The allow-list of this instance (the default, or the manifest's `allowed_countries`).
    static ALLOWED: RwLock<Option<super::AllowList>> = RwLock::new(None);

    struct Quality;

    impl Guest for Quality {
        /// A validator reading two fields: the host sends only `user_id` and `country`
        /// and expects rejections only.
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                kind: Kind::Validator,
                reads: Fields::USER_ID | Fields::COUNTRY,
            }
        }

        fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
            let allowed = super::Settings::parse(&settings)?.allowed_countries;
            let mut slot = ALLOWED.write().map_err(|_| "poisoned".to_string())?;
            *slot = Some(allowed);
            Ok(())
        }

        fn process(batch: Batch) -> Answer {
            let allowed = ALLOWED
                .read()
                .ok()
                .and_then(|a| a.clone())
                .unwrap_or_default();
            let countries = &batch.country;
            let mut rejections = Vec::new();
            let mut start = 0;
            for (event, (&user_id, &end)) in batch.user_id.iter().zip(&countries.ends).enumerate() {
                let end = end as usize;
                let country = countries.text.get(start..end).unwrap_or_default();
                start = end;
                if let Err(problem) = super::check(user_id, country, &allowed) {
                    rejections.push(Rejection {
                        event: event as u32,
                        code: problem.code().to_string(),
                        message: problem.to_string(),
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

    export!(Quality);
}

#[path = "../../../quality/src/rules.rs"]
mod rules;
pub use rules::*;
