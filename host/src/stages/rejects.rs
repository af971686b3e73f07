//! Every rejection, in one place: counted (`streamhost_rejections_total`), logged as a
//! structured line, and turned into its DLQ record, a batch at a time ([`Rejects`]).
//! The log is rate-limited so that a flood of bad data cannot drown it: past [`BURST`]
//! lines, [`PER_SECOND`] a second get through, and the next line that does says how
//! many were left out.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::limiter::Limiter;
use crate::records::dlq::{DlqRecord, HostCode, Step};
use crate::records::{Output, SourceRecord};
use crate::telemetry;
use crate::text::shown;

/// Distinct plugin codes that get a label value of their own in
/// `streamhost_rejections_total`; rejections with codes seen after these count under
/// [`OTHER_CODE`]. Plugins choose their codes: without a bound, a plugin (or the data
/// it quotes) could make a series per event.
pub const MAX_CODE_LABELS: usize = 200;
/// The label value for codes past [`MAX_CODE_LABELS`].
pub const OTHER_CODE: &str = "other";

/// Plugin codes given a label value so far in this process.
static CODE_LABELS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The `code` label value for `code`: itself if it is a host code or one of the first
/// [`MAX_CODE_LABELS`] plugin codes seen, else [`OTHER_CODE`].
pub fn code_label(code: &str) -> &str {
    if HostCode::ALL.iter().any(|c| c.as_str() == code) {
        return code;
    }
    let mut labels = CODE_LABELS.lock().unwrap_or_else(PoisonError::into_inner);
    let labels = labels.get_or_insert_with(HashSet::new);
    if labels.contains(code) {
        return code;
    }
    if labels.len() < MAX_CODE_LABELS {
        labels.insert(code.to_owned());
        return code;
    }
    OTHER_CODE
}

/// Lines logged back to back before the rate applies.
pub const BURST: u32 = 20;
/// Lines a second after the burst.
pub const PER_SECOND: u64 = 5;

static LIMITER: Mutex<Limiter> = Mutex::new(Limiter::new(
    BURST,
    Duration::from_millis(1000 / PER_SECOND),
));

/// The rejections of one batch. Each becomes its DLQ record at once and is logged (or
/// left out by the limiter) in order; the counters are bumped once per batch, when
/// this is dropped, since a metric update costs far more than the rejection itself.
#[derive(Debug)]
pub struct Rejects<'a> {
    source_topic: &'a str,
    /// The batch's time, for the limiter.
    now: Instant,
    /// Rejections per (step, code), in first-seen order; a batch has a handful.
    counts: Vec<(Step, String, u64)>,
    suppressed: u64,
}

impl<'a> Rejects<'a> {
    /// Rejections of records read from `source_topic`, in a batch processed `now`.
    pub fn new(source_topic: &'a str, now: Instant) -> Self {
        Self {
            source_topic,
            now,
            counts: Vec::new(),
            suppressed: 0,
        }
    }

    /// The DLQ output for `record`, turned away by `rejected_by` at `step` with `code`
    /// and `message`; counted and logged.
    pub fn reject(
        &mut self,
        record: &SourceRecord,
        step: Step,
        rejected_by: &str,
        code: &str,
        message: &str,
    ) -> Output {
        let label = code_label(code);
        match self
            .counts
            .iter_mut()
            .find(|(s, c, _)| *s == step && c == label)
        {
            Some((_, _, n)) => *n += 1,
            None => self.counts.push((step, label.to_owned(), 1)),
        }
        let admitted = LIMITER
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(self.now);
        match admitted {
            // Codes, names and messages come from plugins and producers: escaped, so
            // that none of them can forge a line of their own.
            Some(suppressed) => tracing::warn!(
                code = %shown(code, 64),
                stage = step.as_str(),
                rejected_by = %shown(rejected_by, 160),
                topic = self.source_topic,
                partition = record.partition,
                offset = record.offset,
                suppressed,
                "rejected: {}",
                shown(message, 512)
            ),
            None => self.suppressed += 1,
        }
        DlqRecord::rejecting(record, self.source_topic, step, rejected_by, code, message)
    }
}

impl Drop for Rejects<'_> {
    fn drop(&mut self) {
        for (step, code, n) in self.counts.drain(..) {
            metrics::counter!(telemetry::REJECTIONS.name, "stage" => step.as_str(), "code" => code)
                .increment(n);
        }
        if self.suppressed > 0 {
            metrics::counter!(telemetry::REJECTION_LOGS_SUPPRESSED.name).increment(self.suppressed);
        }
    }
}
