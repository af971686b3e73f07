//! The ordered plugin chain: each plugin sees the events the previous one accepted
//! (with its changes); the first rejection ends the chain for that event.

use super::bindings::exports::streamhost::plugin::rules::{Event as WitEvent, Verdict};
use super::runtime::LoadedPlugin;
use crate::decode::Event;

/// What the chain decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(Event),
    Rejected(Rejection),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: String,
    pub message: String,
    /// `name@version` of the plugin that rejected (or failed on) the event.
    pub rejected_by: String,
}

/// Code for events a plugin could not judge (trap, deadline, memory cap, bad answer).
pub const PLUGIN_FAILED: &str = "plugin_failed";

#[derive(Debug, Default)]
pub struct Chain {
    plugins: Vec<LoadedPlugin>,
}

impl Chain {
    pub fn new(plugins: Vec<LoadedPlugin>) -> Self {
        Self { plugins }
    }

    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// `quality@0.1.0,enrich@0.2.0`: written into every accepted event.
    pub fn processed_by(&self) -> String {
        let ids: Vec<String> = self.plugins.iter().map(LoadedPlugin::id).collect();
        ids.join(",")
    }

    /// Run a batch through every plugin. Returns one outcome per input, in order.
    pub fn process(&mut self, events: Vec<Event>) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut indices: Vec<usize> = (0..events.len()).collect();
        let mut batch: Vec<WitEvent> = events.into_iter().map(WitEvent::from).collect();

        for plugin in &mut self.plugins {
            if batch.is_empty() {
                break;
            }
            match plugin.process(&batch) {
                Ok(verdicts) => {
                    let mut next_indices = Vec::with_capacity(indices.len());
                    let mut next_batch = Vec::with_capacity(batch.len());
                    for (index, verdict) in indices.iter().zip(verdicts) {
                        match verdict {
                            Verdict::Accept(event) => {
                                next_indices.push(*index);
                                next_batch.push(event);
                            }
                            Verdict::Reject(r) => {
                                outcomes[*index] = Some(Outcome::Rejected(Rejection {
                                    code: r.code,
                                    message: r.message,
                                    rejected_by: plugin.id(),
                                }));
                            }
                        }
                    }
                    indices = next_indices;
                    batch = next_batch;
                }
                Err(error) => {
                    tracing::error!(plugin = %plugin.id(), events = batch.len(), %error,
                        "plugin failed on a batch; its events go to the DLQ as {PLUGIN_FAILED}");
                    metrics::counter!("streamhost_plugin_failures_total", "plugin" => plugin.name.clone())
                        .increment(1);
                    let message = error.to_string();
                    for index in indices.drain(..) {
                        outcomes[index] = Some(Outcome::Rejected(Rejection {
                            code: PLUGIN_FAILED.into(),
                            message: message.clone(),
                            rejected_by: plugin.id(),
                        }));
                    }
                    batch.clear();
                }
            }
        }
        for (index, event) in indices.into_iter().zip(batch) {
            outcomes[index] = Some(Outcome::Accepted(event.into()));
        }
        outcomes
            .into_iter()
            .map(|o| {
                // Every index is either rejected on the way or accepted at the end.
                o.unwrap_or_else(|| {
                    Outcome::Rejected(Rejection {
                        code: PLUGIN_FAILED.into(),
                        message: "internal: event lost track in the chain".into(),
                        rejected_by: "host".into(),
                    })
                })
            })
            .collect()
    }
}

impl From<Event> for WitEvent {
    fn from(e: Event) -> Self {
        WitEvent {
            event_type: e.event_type,
            user_id: e.user_id,
            page_url: e.page_url,
            button_id: e.button_id,
            timestamp: e.timestamp,
            country: e.country,
            device_type: e.device_type,
            attributes: e.attributes,
        }
    }
}

impl From<WitEvent> for Event {
    fn from(e: WitEvent) -> Self {
        Event {
            event_type: e.event_type,
            user_id: e.user_id,
            page_url: e.page_url,
            button_id: e.button_id,
            timestamp: e.timestamp,
            country: e.country,
            device_type: e.device_type,
            attributes: e.attributes,
        }
    }
}
