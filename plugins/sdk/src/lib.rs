//! Write a streamhost rule plugin as one plain function per event.
//!
//! The host sends a plugin batches of events as named, typed columns and takes back an
//! answer of rejections and updates (`wit/plugin.wit`, `streamhost:plugin@1.0.0`). This
//! crate owns that codec, so a rule only sees one [`Event`] at a time:
//!
//! ```
//! use streamhost_sdk::{export_validator, info, Event, Info, Settings, Validator, Verdict};
//!
//! pub struct NonNegative;
//!
//! impl Validator for NonNegative {
//!     const INFO: Info = info!["user_id"];
//!     fn configure(settings: &Settings) -> Result<Self, String> {
//!         settings.none().map(|()| NonNegative)
//!     }
//!     fn check(&self, event: &Event) -> Verdict {
//!         match event.integer("user_id") {
//!             Some(id) if id < 0 => Verdict::reject("invalid_user_id", format!("user_id {id} is negative")),
//!             _ => Verdict::Accept,
//!         }
//!     }
//! }
//!
//! export_validator!(NonNegative);
//! # assert_eq!(streamhost_sdk::testing::check(&NonNegative, r#"{"user_id": -1}"#).code(), Some("invalid_user_id"));
//! ```
//!
//! [`export_validator!`] / [`export_enricher!`] generate the component's exports when
//! built for `wasm32-wasip2`, and nothing natively: `cargo test` on the host target runs
//! the rule through the same codec with [`testing`].

mod changes;
mod codec;
mod event;
mod rule;
mod settings;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use changes::Changes;
pub use codec::Text;
pub use event::{Event, Value};
pub use rule::{Enricher, Info, Validator, Verdict};
pub use settings::Settings;

/// The guest bindings of `wit/plugin.wit`, generated once, here.
#[doc(hidden)]
#[allow(unsafe_code, missing_debug_implementations)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_rules",
        // Answers compare in tests.
        additional_derives: [PartialEq],
    });
}

/// The WIT types of the contract, for tests that build a batch by hand
/// ([`testing::run_validator`]) and for reading an [`wit::Answer`].
pub mod wit {
    pub use crate::bindings::exports::streamhost::plugin::rules::{
        Answer, Batch, Column, Kind, PluginInfo, Rejection, TextColumn, Update, Values,
    };
}

/// What the export macros expand to. Not API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::streamhost::plugin::rules::Guest;
    pub use crate::rule::{configure, describe, process, AsEnricher, AsValidator};
}

/// The plugin's [`Info`]: its package name and version (from its Cargo.toml, shown in
/// the DLQ's `rejected_by` as `name@version`) and the fields it reads, e.g.
/// `info!["user_id", "country"]`.
#[macro_export]
macro_rules! info {
    ($($field:expr),* $(,)?) => {
        $crate::Info {
            name: ::core::env!("CARGO_PKG_NAME"),
            version: ::core::env!("CARGO_PKG_VERSION"),
            reads: &[$($field),*],
        }
    };
}

/// Exports a [`Validator`] as the plugin's `streamhost:plugin/rules` (on wasm32 only).
#[macro_export]
macro_rules! export_validator {
    ($rule:ty) => {
        $crate::__export!($crate::__private::AsValidator<$rule>);
    };
}

/// Exports an [`Enricher`] as the plugin's `streamhost:plugin/rules` (on wasm32 only).
#[macro_export]
macro_rules! export_enricher {
    ($rule:ty) => {
        $crate::__export!($crate::__private::AsEnricher<$rule>);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)] // the exported functions wit-bindgen writes
        const _: () = {
            use $crate::wit::{Answer, Batch, PluginInfo};

            ::std::thread_local! {
                /// The instance's rule, made by `configure`.
                static RULE: ::core::cell::RefCell<::core::option::Option<$rule>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct Component;

            impl $crate::__private::Guest for Component {
                fn describe() -> PluginInfo {
                    $crate::__private::describe::<$rule>()
                }

                fn configure(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    RULE.with(|slot| $crate::__private::configure(slot, settings))
                }

                fn process(batch: Batch) -> Answer {
                    RULE.with(|slot| $crate::__private::process(slot, &batch))
                }
            }

    $crate::bindings::__export_rules!(Component with_types_in $crate::bindings);
        };
    };
}
