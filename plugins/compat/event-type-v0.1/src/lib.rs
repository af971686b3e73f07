//! A rule built against `wit/archive/0.1.0` (no `configure`): the host must keep
//! loading plugins built against that version. Rejects event types other than the two
//! the product knows, with code `invalid_event_type`.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the exports wit-bindgen generates
mod component {
    wit_bindgen::generate!({ path: "../../../wit/archive/0.1.0", world: "plugin" });

    use exports::streamhost::plugin::rules::{Event, Guest, PluginInfo, Rejection, Verdict};

    struct Legacy;

    impl Guest for Legacy {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }
        }

        fn process(batch: Vec<Event>) -> Vec<Verdict> {
            batch
                .into_iter()
                .map(|event| {
                    if super::known(&event.event_type) {
                        Verdict::Accept(event)
                    } else {
                        Verdict::Reject(Rejection {
                            code: "invalid_event_type".into(),
                            message: format!(
                                "event_type {:?} is neither page_view nor button_click",
                                event.event_type
                            ),
                        })
                    }
                })
                .collect()
        }
    }

    export!(Legacy);
}

pub fn known(event_type: &str) -> bool {
    matches!(event_type, "page_view" | "button_click")
}

#[cfg(test)]
mod tests {
    #[test]
    fn knows_the_two_event_types() {
        assert!(super::known("page_view") && super::known("button_click"));
        assert!(!super::known("Page_View") && !super::known(""));
    }
}
