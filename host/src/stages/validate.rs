//! The validate stage: `my_events` → decode by the schema → plugin chain →
//! `enriched_events` (accepted) / `dlq` (rejected, with why and the original bytes).
//! The chain is swapped live between batches when the plugin directory changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::rejects::Rejects;
use super::{Processed, Stage, StageError};
use crate::config::DEFAULT_MAX_FUTURE_SECS;
use crate::decode::Decoder;
use crate::event::{Event, Value};
use crate::liveness::StageName;
use crate::plugins::reload::ChainUpdate;
use crate::plugins::{Chain, Verdict};
use crate::records::dlq::{HostCode, Step, REJECTED_BY_HOST};
use crate::records::enriched::Enricher;
use crate::records::{next_positions, Output, SourceRecord, MAX_OUTPUT_BYTES};
use crate::schema::Schema;
use crate::telemetry;
use crate::timefmt::{self, Clock};

/// The validate stage's work on a batch, without I/O: decode by the schema, judge
/// with the chain, route. Shared by the Kafka loop, `streamhost plugin test` and the
/// benchmarks.
#[derive(Debug, Clone)]
pub struct Validate {
    pub decoder: Decoder,
    pub enricher: Enricher,
    pub source_topic: String,
    /// Events stamped further ahead of `clock` than this go to the DLQ.
    max_future_secs: i64,
    clock: Clock,
}

impl Validate {
    /// The validate stage for `schema`, keying output events by the window key field.
    pub fn new(
        schema: Arc<Schema>,
        key_field: &str,
        source_topic: &str,
        max_message_bytes: usize,
    ) -> Result<Self, String> {
        let key = schema
            .index(key_field)
            .filter(|i| schema.field(*i).required)
            .ok_or_else(|| {
                format!(
                    "windows.key_field `{key_field}` must be a required field of the event schema"
                )
            })?;
        Ok(Self {
            decoder: Decoder::new(schema.clone(), max_message_bytes),
            enricher: Enricher::new(schema, key),
            source_topic: source_topic.to_string(),
            max_future_secs: future_bound(DEFAULT_MAX_FUTURE_SECS),
            clock: timefmt::wall_clock,
        })
    }

    /// `pipeline.max_fields` and `pipeline.max_future_secs` (the defaults otherwise).
    pub fn with_limits(mut self, max_fields: usize, max_future_secs: u64) -> Self {
        self.decoder = self.decoder.with_max_fields(max_fields);
        self.max_future_secs = future_bound(max_future_secs);
        self
    }

    /// Another clock than the wall clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Why `event` is not let in although it decodes: an event time further ahead of
    /// `now` than the bound, which would move event time ahead for everyone.
    fn too_far_ahead(&self, event: &Event, now: i64) -> Option<String> {
        let time = self.decoder.schema().time();
        let Some(Value::Integer(t)) = event.get(time) else {
            return None;
        };
        future_event(*t, now, self.max_future_secs)
    }

    /// Decode, judge and route one batch. One output per input record.
    pub fn process_batch(&self, judge: &mut impl Judge, records: &[SourceRecord]) -> Vec<Output> {
        let mut rejects = Rejects::new(&self.source_topic, Instant::now());
        let mut outputs = Vec::with_capacity(records.len());
        let mut decoded = Vec::with_capacity(records.len());
        let mut events = Vec::with_capacity(records.len());
        let now = (self.clock)();
        for record in records {
            match self.decoder.decode(&record.payload) {
                Ok(event) => match self.too_far_ahead(&event, now) {
                    Some(message) => outputs.push(rejects.reject(
                        record,
                        Step::Decode,
                        REJECTED_BY_HOST,
                        HostCode::FutureEvent.as_str(),
                        &message,
                    )),
                    None => {
                        events.push(event);
                        decoded.push(record);
                    }
                },
                Err(e) => outputs.push(rejects.reject(
                    record,
                    Step::Decode,
                    REJECTED_BY_HOST,
                    e.code().as_str(),
                    &e.to_string(),
                )),
            }
        }
        let verdicts = judge.judge(events);
        let processed_by = judge.processed_by();
        for (record, verdict) in decoded.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Accepted(event) => {
                    let output = self.enricher.output(&event, record, &processed_by);
                    if output.size() <= MAX_OUTPUT_BYTES {
                        outputs.push(output);
                        continue;
                    }
                    // The broker would refuse it on every attempt, and every batch behind
                    // it would wait: the event goes to the DLQ instead.
                    outputs.push(rejects.reject(
                        record,
                        Step::Route,
                        REJECTED_BY_HOST,
                        HostCode::OutputTooLarge.as_str(),
                        &format!(
                            "the enriched record would be {} bytes (key and value), over the {MAX_OUTPUT_BYTES}-byte limit on output records",
                            output.size(),
                        ),
                    ));
                }
                Verdict::Rejected(r) => outputs.push(rejects.reject(
                    record,
                    Step::Plugin,
                    &r.rejected_by,
                    &r.code,
                    &r.message,
                )),
            }
        }
        outputs
    }
}

/// The bound in seconds, as event times are kept.
pub(crate) fn future_bound(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Why an event time `t` is refused when the clock says `now`: more than `bound`
/// seconds ahead. Shared with the window stage, which applies the same bound.
pub fn future_event(t: i64, now: i64, bound: i64) -> Option<String> {
    (t > now.saturating_add(bound)).then(|| {
        format!(
            "event time {} is {} s ahead of the host's clock ({}), more than pipeline.max_future_secs ({bound} s)",
            timefmt::datetime(t),
            t.saturating_sub(now),
            timefmt::datetime(now),
        )
    })
}

/// What judges the decoded events of a batch: the plugin chain, or (in the benchmark
/// and the equivalence test) the same rules compiled into the host, so that both run
/// through the same decode and routing.
pub trait Judge {
    /// One verdict per event, in order.
    fn judge(&mut self, events: Vec<Event>) -> Vec<Verdict>;
    /// What accepted events record as `processed_by`.
    fn processed_by(&self) -> String;
}

impl Judge for Chain {
    fn judge(&mut self, events: Vec<Event>) -> Vec<Verdict> {
        self.process(events)
    }

    fn processed_by(&self) -> String {
        Chain::processed_by(self)
    }
}

/// The validate stage as the runtime drives it: [`Validate`] with its live chain.
#[derive(Debug)]
pub struct ValidateStage {
    validate: Validate,
    chain: Chain,
    updates: mpsc::Receiver<ChainUpdate>,
    /// An update taken by [`Stage::wake`], installed next.
    woken_by: Option<ChainUpdate>,
    in_flight: usize,
}

impl ValidateStage {
    pub fn new(
        validate: Validate,
        chain: Chain,
        updates: mpsc::Receiver<ChainUpdate>,
        in_flight: usize,
    ) -> Self {
        tracing::info!(topic = %validate.source_topic, chain = %chain.processed_by(), "validate stage started");
        chain.announce();
        Self {
            validate,
            chain,
            updates,
            woken_by: None,
            in_flight,
        }
    }
}

/// The validate stage's longest wait for input ([`Stage::idle_wait`]). Short: a chain
/// update waiting while no records arrive is installed within this.
pub const IDLE_WAIT: Duration = Duration::from_millis(200);

impl Stage for ValidateStage {
    fn name(&self) -> StageName {
        StageName::Validate
    }

    fn idle_wait(&self) -> Duration {
        IDLE_WAIT
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A batch runs start to end on one chain: a new one is installed between batches.
    fn between_batches(&mut self) {
        let woken_by = self.woken_by.take();
        let updates = woken_by
            .into_iter()
            .chain(std::iter::from_fn(|| self.updates.try_recv().ok()));
        for update in updates {
            self.chain = std::mem::take(&mut self.chain).with_members(update.members);
            self.chain.announce();
            let took = update.seen_at.elapsed();
            metrics::counter!(telemetry::PLUGIN_SWAPS.name).increment(1);
            metrics::histogram!(telemetry::PLUGIN_SWAP_SECONDS.name).record(took.as_secs_f64());
            tracing::info!(chain = %self.chain.processed_by(), swap_ms = took.as_millis() as u64, "plugin chain swapped");
        }
    }

    /// A new chain stops the wait for input: it serves from the next batch, not after
    /// the next poll of a quiet topic.
    async fn wake(&mut self) {
        if self.woken_by.is_none() {
            match self.updates.recv().await {
                Some(update) => self.woken_by = Some(update),
                // The watcher is gone: nothing will come.
                None => std::future::pending().await,
            }
        }
    }

    async fn process(
        &mut self,
        batch: &[SourceRecord],
        _source: &impl super::io::Source,
        _assigned: &[i32],
        _now: Instant,
    ) -> Result<Processed, StageError> {
        if batch.is_empty() {
            return Ok(Processed::default());
        }
        Ok(Processed {
            outputs: self.validate.process_batch(&mut self.chain, batch),
            commit: next_positions(batch),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Destination;

    /// The clock the tests read: a fixed second, no sleeping.
    const NOW: i64 = 1_800_000_000;

    /// Accepts every event, counting what it was shown.
    struct AcceptAll(usize);

    impl Judge for AcceptAll {
        fn judge(&mut self, events: Vec<Event>) -> Vec<Verdict> {
            self.0 += events.len();
            events.into_iter().map(Verdict::Accepted).collect()
        }
        fn processed_by(&self) -> String {
            "none".into()
        }
    }

    fn at(offset: i64, t: i64) -> SourceRecord {
        SourceRecord {
            partition: 0,
            offset,
            timestamp_ms: 0,
            payload: format!(
                r#"{{"event_type": "page_view", "user_id": 1, "page_url": "/p", "button_id": "b", "timestamp": {t}, "country": "US"}}"#
            )
            .into_bytes(),
        }
    }

    /// Per input offset: where it went, and the DLQ code and stage if there.
    fn routed(outputs: &[Output]) -> Vec<(i64, Option<(String, String)>)> {
        let mut routed: Vec<_> = outputs
            .iter()
            .map(|o| {
                let v: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
                let offset = v["source_offset"].as_i64().unwrap();
                let dlq = (o.destination == Destination::Dlq).then(|| {
                    (
                        v["code"].as_str().unwrap().to_string(),
                        v["stage"].as_str().unwrap().to_string(),
                    )
                });
                (offset, dlq)
            })
            .collect();
        routed.sort();
        routed
    }

    #[test]
    fn events_stamped_ahead_of_the_clock_by_more_than_the_bound_go_to_the_dlq_first() {
        let validate = Validate::new(Arc::new(Schema::brief()), "country", "my_events", 1 << 20)
            .unwrap()
            .with_limits(1000, 30)
            .with_clock(|| NOW);
        let mut judge = AcceptAll(0);
        let ten_years = NOW + 10 * 365 * 86_400;
        let out = validate.process_batch(
            &mut judge,
            &[
                at(0, NOW),
                at(1, NOW + 30),
                at(2, NOW + 31),
                at(3, ten_years),
                at(4, 0),
            ],
        );
        let future = Some(("future_event".to_string(), "decode".to_string()));
        assert_eq!(
            routed(&out),
            [
                (0, None),
                (1, None),
                (2, future.clone()),
                (3, future),
                (4, None)
            ]
        );
        assert_eq!(judge.0, 3, "the plugins never see a future event");
        let dlq: serde_json::Value = out
            .iter()
            .find(|o| o.destination == Destination::Dlq)
            .map(|o| serde_json::from_slice(&o.payload).unwrap())
            .unwrap();
        assert_eq!(
            dlq["message"],
            "event time 2027-01-15 08:00:31 is 31 s ahead of the host's clock (2027-01-15 08:00:00), more than pipeline.max_future_secs (30 s)"
        );
    }

    #[test]
    fn the_bound_is_configurable_and_saturates() {
        for (bound, t, future) in [
            (0, NOW + 1, true),
            (0, NOW, false),
            (u64::MAX, i64::MAX, false),
        ] {
            let validate =
                Validate::new(Arc::new(Schema::brief()), "country", "my_events", 1 << 20)
                    .unwrap()
                    .with_limits(1000, bound)
                    .with_clock(|| NOW);
            let event = validate
                .decoder
                .decode(&at(0, t.min(crate::decode::MAX_TIMESTAMP)).payload)
                .unwrap();
            assert_eq!(
                validate.too_far_ahead(&event, NOW).is_some(),
                future,
                "{bound} {t}"
            );
        }
    }
}
