//! The ordered plugin chain: each plugin sees the events the previous one accepted
//! (with its changes); the first rejection ends the chain for that event.
//!
//! Circuit breaker: a plugin that fails `breaker_threshold` batches in a row is
//! disabled. A disabled *required* plugin (the default) sends its events to the DLQ as
//! `plugin_disabled`, so nothing it should have judged slips through; an optional one
//! (manifest `required = false`, e.g. an enrichment) is skipped. Deploying a new file
//! for it resets the breaker.

use super::answer::{Rejection, Verdict};
use super::runtime::LoadedPlugin;
use super::status::{self, PluginBoard};
use crate::event::Event;

use crate::records::dlq::{HostCode, REJECTED_BY_HOST};

/// One chain member: the plugin and whether the chain may go on without it.
#[derive(Debug)]
pub struct Member {
    pub plugin: LoadedPlugin,
    pub required: bool,
}

#[derive(Debug, Default)]
pub struct Chain {
    members: Vec<Member>,
    breaker_threshold: u32,
    board: Option<PluginBoard>,
}

impl Chain {
    pub fn new(members: Vec<Member>, breaker_threshold: u32, board: Option<PluginBoard>) -> Self {
        Self {
            members,
            breaker_threshold: breaker_threshold.max(1),
            board,
        }
    }

    /// A chain of required plugins with the default breaker (3 failures), no board.
    pub fn of(plugins: Vec<LoadedPlugin>) -> Self {
        let members = plugins
            .into_iter()
            .map(|plugin| Member {
                plugin,
                required: true,
            })
            .collect();
        Self::new(members, 3, None)
    }

    /// The same chain settings with new members (a live swap).
    pub fn with_members(self, members: Vec<Member>) -> Self {
        Self { members, ..self }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// `quality@0.2.0,enrich@0.2.0`: written into every accepted event.
    pub fn processed_by(&self) -> String {
        let ids: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.plugin.disabled)
            .map(|m| m.plugin.id())
            .collect();
        ids.join(",")
    }

    /// Run a batch through every plugin. Returns one outcome per input, in order.
    pub fn process(&mut self, events: Vec<Event>) -> Vec<Verdict> {
        let mut outcomes: Vec<Option<Verdict>> = vec![None; events.len()];
        let mut indices: Vec<usize> = (0..events.len()).collect();
        let mut batch = events;

        for member in &mut self.members {
            if batch.is_empty() {
                break;
            }
            let plugin = &mut member.plugin;
            if plugin.disabled {
                if member.required {
                    let message = format!(
                        "{} is disabled after {} failed batches in a row; deploy a fixed version",
                        plugin.id(),
                        plugin.consecutive_failures
                    );
                    reject_all(
                        &mut outcomes,
                        &mut indices,
                        &mut batch,
                        HostCode::PluginDisabled.as_str(),
                        &message,
                        &plugin.id(),
                    );
                }
                continue;
            }
            let count = batch.len();
            metrics::counter!("streamhost_plugin_calls_total", "plugin" => plugin.name().to_string())
                .increment(1);
            match plugin.process(std::mem::take(&mut batch)) {
                Ok(judged) => {
                    let mut next_indices = Vec::with_capacity(count);
                    for (index, judgement) in indices.iter().zip(judged) {
                        match judgement {
                            Verdict::Accepted(event) => {
                                next_indices.push(*index);
                                batch.push(event);
                            }
                            rejected @ Verdict::Rejected(_) => outcomes[*index] = Some(rejected),
                        }
                    }
                    indices = next_indices;
                }
                Err(error) => {
                    tracing::error!(plugin = %plugin.id(), events = count, %error,
                        "plugin failed on a batch; its events go to the DLQ as {}", HostCode::PluginFailed);
                    metrics::counter!("streamhost_plugin_failures_total", "plugin" => plugin.name().to_string())
                        .increment(1);
                    let message = error.to_string();
                    reject_all(
                        &mut outcomes,
                        &mut indices,
                        &mut batch,
                        HostCode::PluginFailed.as_str(),
                        &message,
                        &plugin.id(),
                    );
                    if plugin.consecutive_failures >= self.breaker_threshold {
                        plugin.disabled = true;
                        tracing::error!(plugin = %plugin.id(), failures = plugin.consecutive_failures,
                            required = member.required,
                            "circuit breaker open: plugin disabled until a new version is deployed");
                        metrics::counter!("streamhost_plugin_disabled_total", "plugin" => plugin.name().to_string())
                            .increment(1);
                        if let Some(board) = &self.board {
                            status::mark(
                                board,
                                &plugin.compiled.origin,
                                status::PluginState::Disabled,
                                Some(message),
                            );
                        }
                    }
                }
            }
        }
        for (index, event) in indices.into_iter().zip(batch) {
            outcomes[index] = Some(Verdict::Accepted(event));
        }
        outcomes
            .into_iter()
            .map(|o| {
                // Every index is either rejected on the way or accepted at the end.
                o.unwrap_or_else(|| {
                    Verdict::Rejected(Rejection {
                        code: HostCode::PluginFailed.as_str().into(),
                        message: "internal: event lost track in the chain".into(),
                        rejected_by: REJECTED_BY_HOST.into(),
                    })
                })
            })
            .collect()
    }
}

fn reject_all(
    outcomes: &mut [Option<Verdict>],
    indices: &mut Vec<usize>,
    batch: &mut Vec<Event>,
    code: &str,
    message: &str,
    rejected_by: &str,
) {
    for index in indices.drain(..) {
        outcomes[index] = Some(Verdict::Rejected(Rejection {
            code: code.into(),
            message: message.into(),
            rejected_by: rejected_by.into(),
        }));
    }
    batch.clear();
}
