//! The ordered plugin chain: each plugin sees the events the previous one accepted
//! (with its changes); the first rejection ends the chain for that event.
//!
//! A rule stays judged:
//! - A call that fails (trap, deadline, memory cap, bad answer) is tried again on each
//!   half of its events, down to the event it fails on ([`judge`]): one poison event
//!   goes to the DLQ as `plugin_failed` alone, and the others are judged.
//! - Circuit breaker: a plugin that judges nothing of `breaker_threshold` batches in a
//!   row is disabled. A disabled *required* plugin (the default) sends its events to
//!   the DLQ as `plugin_disabled`, so nothing it should have judged slips through; an
//!   optional one (manifest `required = false`, e.g. an enrichment) is skipped. After
//!   `breaker_retry` it is tried again on one batch (half-open): judged, it serves
//!   again; failed, it waits twice as long (up to [`MAX_RETRY`]). Deploying a new
//!   file for it resets the breaker.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::answer::{Rejection, Rejections, Verdict};
use super::runtime::LoadedPlugin;
use super::status::{self, PluginBoard};
use crate::event::Event;
use crate::limiter::Limiter;

use crate::records::dlq::{HostCode, REJECTED_BY_HOST};
use crate::telemetry;

/// One chain member: the plugin and whether the chain may go on without it.
#[derive(Debug)]
pub struct Member {
    pub plugin: LoadedPlugin,
    pub required: bool,
}

/// The longest wait before a disabled plugin is tried again.
pub const MAX_RETRY: Duration = Duration::from_secs(600);

/// The first wait before a disabled plugin is tried again, unless set.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Chain {
    members: Vec<Member>,
    breaker_threshold: u32,
    breaker_retry: Duration,
    board: Option<PluginBoard>,
}

impl Chain {
    pub fn new(members: Vec<Member>, breaker_threshold: u32, board: Option<PluginBoard>) -> Self {
        Self {
            members,
            breaker_threshold: breaker_threshold.max(1),
            breaker_retry: DEFAULT_RETRY,
            board,
        }
    }

    /// Try a disabled plugin again after `retry` (then twice as long each time).
    pub fn with_retry(self, retry: Duration) -> Self {
        Self {
            breaker_retry: retry,
            ..self
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

    /// Tell `/plugins` this chain serves now (the stage installed it).
    pub fn announce(&self) {
        if let Some(board) = &self.board {
            let ids = self.members.iter().map(|m| m.plugin.id()).collect();
            status::installed(board, ids);
        }
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
    ///
    /// The events stay in one vector: each plugin changes them in place, and its
    /// rejections move out only when another plugin is to run, so the next plugin sees
    /// the accepted ones in order. The last plugin's rejections go straight to the
    /// outcomes: nothing is moved for them.
    pub fn process(&mut self, events: Vec<Event>) -> Vec<Verdict> {
        let total = events.len();
        let mut batch = events;
        // The input position of each event of `batch`.
        let mut positions: Vec<usize> = (0..total).collect();
        // Rejections by input position, in the order the plugins made them.
        let mut rejected: Rejections = Vec::new();
        // The latest plugin's rejections, by position in `batch`, still in it.
        let mut latest: Rejections = Vec::new();

        for member in &mut self.members {
            remove(
                &mut batch,
                &mut positions,
                std::mem::take(&mut latest),
                &mut rejected,
            );
            if batch.is_empty() {
                break;
            }
            let plugin = &mut member.plugin;
            let now = Instant::now();
            let half_open = plugin.disabled && plugin.retry_at.is_some_and(|at| now >= at);
            if plugin.disabled && !half_open {
                if member.required {
                    let message = format!(
                        "{} is disabled after {} batches in a row on which it judged nothing; \
                         it is tried again in {} s, or deploy a fixed version",
                        plugin.id(),
                        plugin.consecutive_failures,
                        plugin
                            .retry_at
                            .map_or(0, |at| at.saturating_duration_since(now).as_secs())
                    );
                    let rejection = Rejection {
                        code: HostCode::PluginDisabled.as_str().into(),
                        message,
                        rejected_by: plugin.id(),
                    };
                    reject_all(&mut rejected, &mut positions, &mut batch, &rejection);
                }
                continue;
            }
            let judged = judge(plugin, &mut batch);
            metrics::counter!(telemetry::PLUGIN_CALLS.name, "plugin" => plugin.name().to_string())
                .increment(judged.calls);
            latest = judged.rejections;
            let Some(error) = judged.error else {
                plugin.consecutive_failures = 0;
                if half_open {
                    serving_again(plugin, self.board.as_ref());
                }
                continue;
            };
            metrics::counter!(telemetry::PLUGIN_FAILURES.name, "plugin" => plugin.name().to_string())
                .increment(judged.failed_calls);
            let admitted = FAILURE_LOG
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(now);
            if let Some(suppressed) = admitted {
                tracing::error!(plugin = %plugin.id(), events = batch.len(), failed_events = judged.failed_events,
                    calls = judged.calls, error = %crate::text::shown(&error, 512), suppressed,
                    "plugin failed on a batch; the events it failed on go to the DLQ as {}", HostCode::PluginFailed);
            }
            if judged.judged_any {
                plugin.consecutive_failures = 0;
            } else {
                plugin.consecutive_failures += 1;
            }
            if half_open && !judged.judged_any {
                // Still failing: wait twice as long.
                plugin.backoff = (plugin.backoff * 2).min(MAX_RETRY);
                plugin.retry_at = Some(now + plugin.backoff);
                tracing::error!(plugin = %plugin.id(), retry_in_secs = plugin.backoff.as_secs(),
                    "plugin tried again and still failing: stays disabled");
            } else if !plugin.disabled && plugin.consecutive_failures >= self.breaker_threshold {
                plugin.disabled = true;
                plugin.backoff = self.breaker_retry.min(MAX_RETRY);
                plugin.retry_at = Some(now + plugin.backoff);
                tracing::error!(plugin = %plugin.id(), failures = plugin.consecutive_failures,
                    required = member.required, retry_in_secs = plugin.backoff.as_secs(),
                    "circuit breaker open: plugin disabled");
                metrics::counter!(telemetry::PLUGIN_DISABLED.name, "plugin" => plugin.name().to_string())
                    .increment(1);
                if let Some(board) = &self.board {
                    status::mark(
                        board,
                        &plugin.compiled.origin,
                        status::PluginState::Disabled,
                        Some(error),
                    );
                }
            }
            if half_open && judged.judged_any {
                serving_again(plugin, self.board.as_ref());
            }
        }
        // The last plugin's rejections leave for the outcomes; the batch stays as it is.
        let mut gone = Vec::with_capacity(latest.len());
        rejected.extend(latest.into_iter().map(|(at, rejection)| {
            gone.push(at);
            (positions[at], rejection)
        }));
        let mut gone = gone.into_iter().peekable();
        let accepted = positions
            .into_iter()
            .zip(batch)
            .enumerate()
            .filter(move |(at, _)| gone.next_if_eq(at).is_none())
            .map(|(_, kept)| kept);
        merge(total, accepted, rejected)
    }
}

/// A disabled plugin that judged its trial batch serves again.
fn serving_again(plugin: &mut LoadedPlugin, board: Option<&PluginBoard>) {
    plugin.disabled = false;
    plugin.retry_at = None;
    tracing::info!(plugin = %plugin.id(), "plugin tried again and judged its batch: serving again");
    if let Some(board) = board {
        status::mark(
            board,
            &plugin.compiled.origin,
            status::PluginState::Serving,
            None,
        );
    }
}

/// The log of failed batches: a plugin failing on every batch must not flood it (the
/// failures are still counted, and every event is dead-lettered).
static FAILURE_LOG: Mutex<Limiter> = Mutex::new(Limiter::new(10, Duration::from_secs(1)));

/// What one plugin made of a batch ([`judge`]).
#[derive(Debug, Default)]
struct Judged {
    /// Its rejections and the events it failed on (`plugin_failed`), by position,
    /// ascending.
    rejections: Rejections,
    /// The last failure, if any call failed.
    error: Option<String>,
    /// Whether any call succeeded (an empty batch counts as judged).
    judged_any: bool,
    calls: u64,
    failed_calls: u64,
    failed_events: usize,
}

/// Judge `batch` with `plugin`. A call that fails is tried again on each half of its
/// events, so that the events the plugin fails on are found and the others judged.
/// At most `2 ⌈log2 n⌉ + 2` calls may fail (time bounded by that many deadlines):
/// past that, the events not yet judged fail together.
fn judge(plugin: &mut LoadedPlugin, batch: &mut [Event]) -> Judged {
    let mut out = Judged {
        judged_any: batch.is_empty(),
        ..Judged::default()
    };
    let mut failures_left = 2 * (usize::BITS - batch.len().leading_zeros()) + 2;
    let mut todo = vec![(0, batch.len())];
    while let Some((start, end)) = todo.pop() {
        out.calls += 1;
        match plugin.process(&mut batch[start..end]) {
            Ok(rejections) => {
                out.judged_any = true;
                out.rejections
                    .extend(rejections.into_iter().map(|(i, r)| (start + i, r)));
            }
            Err(error) => {
                out.failed_calls += 1;
                failures_left = failures_left.saturating_sub(1);
                let error = error.to_string();
                let mut give_up = |start: usize, end: usize| {
                    out.failed_events += end - start;
                    out.rejections.extend((start..end).map(|i| {
                        (
                            i,
                            Rejection {
                                code: HostCode::PluginFailed.as_str().into(),
                                message: error.clone(),
                                rejected_by: plugin.id(),
                            },
                        )
                    }));
                };
                if end - start == 1 || failures_left == 0 {
                    give_up(start, end);
                    if failures_left == 0 {
                        for (start, end) in todo.drain(..) {
                            give_up(start, end);
                        }
                    }
                } else {
                    let mid = start + (end - start) / 2;
                    // The first half is judged first.
                    todo.push((mid, end));
                    todo.push((start, mid));
                }
                out.error = Some(error);
            }
        }
    }
    out.rejections.sort_unstable_by_key(|(i, _)| *i);
    out
}

/// Move the `rejections` (by position in `batch`, ascending) out of `batch` into
/// `rejected` (by input position), keeping the other events in order.
fn remove(
    batch: &mut Vec<Event>,
    positions: &mut Vec<usize>,
    rejections: Rejections,
    rejected: &mut Rejections,
) {
    if rejections.is_empty() {
        return;
    }
    let mut next = rejections.into_iter().peekable();
    let (mut at, mut kept) = (0, 0);
    batch.retain(|_| {
        let rejection = next.next_if(|(r, _)| *r == at);
        let position = positions[at];
        at += 1;
        match rejection {
            Some((_, rejection)) => {
                rejected.push((position, rejection));
                false
            }
            None => {
                positions[kept] = position;
                kept += 1;
                true
            }
        }
    });
    positions.truncate(kept);
}

/// The outcomes in input order: each position is accepted (ascending, as the chain
/// keeps them) or rejected (in any order).
fn merge(
    total: usize,
    accepted: impl Iterator<Item = (usize, Event)>,
    mut rejected: Rejections,
) -> Vec<Verdict> {
    rejected.sort_unstable_by_key(|(position, _)| *position);
    let mut accepted = accepted.peekable();
    let mut rejected = rejected.into_iter().peekable();
    (0..total)
        .map(|position| {
            if let Some((_, event)) = accepted.next_if(|(p, _)| *p == position) {
                Verdict::Accepted(event)
            } else if let Some((_, rejection)) = rejected.next_if(|(p, _)| *p == position) {
                Verdict::Rejected(rejection)
            } else {
                // Every position is either rejected on the way or accepted at the end.
                Verdict::Rejected(Rejection {
                    code: HostCode::PluginFailed.as_str().into(),
                    message: "internal: event lost track in the chain".into(),
                    rejected_by: REJECTED_BY_HOST.into(),
                })
            }
        })
        .collect()
}

/// Reject every event left in the batch with `rejection`.
fn reject_all(
    rejected: &mut Rejections,
    positions: &mut Vec<usize>,
    batch: &mut Vec<Event>,
    rejection: &Rejection,
) {
    rejected.extend(positions.drain(..).map(|p| (p, rejection.clone())));
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    fn event(n: i64) -> Event {
        Event {
            fields: vec![Some(Value::Integer(n))],
            extra: Vec::new(),
        }
    }

    fn rejection(code: &str) -> Rejection {
        Rejection::by_plugin(code.into(), String::new())
    }

    /// Each outcome as the rejection's code, or the accepted event's number as [`kept`].
    fn summary(outcomes: &[Verdict]) -> Vec<String> {
        outcomes
            .iter()
            .map(|o| match o {
                Verdict::Accepted(e) => format!("{:?}", e.get(0)),
                Verdict::Rejected(r) => r.code.clone(),
            })
            .collect()
    }

    fn kept(n: i64) -> String {
        format!("{:?}", Some(&Value::Integer(n)))
    }

    /// Two plugins' rejections out of a batch of six: the rest stay in order, and the
    /// outcomes come back in input order whatever order the rejections were made in.
    #[test]
    fn rejected_events_leave_the_batch_and_outcomes_keep_input_order() {
        let mut batch: Vec<Event> = (0..6).map(event).collect();
        let mut positions: Vec<usize> = (0..6).collect();
        let mut rejected = Vec::new();
        let first = vec![(1, rejection("a")), (4, rejection("a"))];
        remove(&mut batch, &mut positions, first, &mut rejected);
        assert_eq!(batch, [event(0), event(2), event(3), event(5)]);
        assert_eq!(positions, [0, 2, 3, 5]);
        // Position 0 of the second plugin's batch is input position 0, 3 is 5.
        let second = vec![(0, rejection("b")), (3, rejection("b"))];
        remove(&mut batch, &mut positions, second, &mut rejected);
        assert_eq!(positions, [2, 3]);
        let outcomes = merge(6, positions.into_iter().zip(batch), rejected);
        let got = summary(&outcomes);
        assert_eq!(got, ["b", "a", &kept(2), &kept(3), "a", "b"]);
    }

    /// A position neither accepted nor rejected (a bug) is an outcome of its own: the
    /// outcomes after it stay with their inputs.
    #[test]
    fn a_lost_position_keeps_the_others_in_place() {
        let accepted = [(1, event(1)), (3, event(3))].into_iter();
        let outcomes = merge(5, accepted, vec![(4, rejection("a"))]);
        let got = summary(&outcomes);
        let lost = HostCode::PluginFailed.as_str();
        assert_eq!(got, [lost, &kept(1), lost, &kept(3), "a"]);
    }
}
