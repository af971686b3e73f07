//! Every rejection, in one place: counted (`streamhost_rejections_total`), logged as a
//! structured line, and turned into its DLQ record, a batch at a time ([`Rejects`]).
//! The log is rate-limited so that a flood of bad data cannot drown it: past [`BURST`]
//! lines, [`PER_SECOND`] a second get through, and the next line that does says how
//! many were left out.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::records::dlq::{DlqRecord, Step};
use crate::records::{Output, SourceRecord};

/// Lines logged back to back before the rate applies.
pub const BURST: f64 = 20.0;
/// Lines a second after the burst.
pub const PER_SECOND: f64 = 5.0;

/// A token bucket that counts what it turns away.
#[derive(Debug)]
struct Limiter {
    tokens: f64,
    last: Option<Instant>,
    suppressed: u64,
}

impl Limiter {
    const fn new() -> Self {
        Self {
            tokens: BURST,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log this one, after `n` left out since the last logged line.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * PER_SECOND;
            self.tokens = (self.tokens + refill).min(BURST);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

static LIMITER: Mutex<Limiter> = Mutex::new(Limiter::new());

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
        match self
            .counts
            .iter_mut()
            .find(|(s, c, _)| *s == step && c == code)
        {
            Some((_, _, n)) => *n += 1,
            None => self.counts.push((step, code.to_owned(), 1)),
        }
        let admitted = LIMITER
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(self.now);
        match admitted {
            Some(suppressed) => tracing::warn!(
                code,
                stage = step.as_str(),
                rejected_by,
                topic = self.source_topic,
                partition = record.partition,
                offset = record.offset,
                suppressed,
                "rejected: {message}"
            ),
            None => self.suppressed += 1,
        }
        DlqRecord::rejecting(record, self.source_topic, step, rejected_by, code, message)
    }
}

impl Drop for Rejects<'_> {
    fn drop(&mut self) {
        for (step, code, n) in self.counts.drain(..) {
            metrics::counter!("streamhost_rejections_total", "stage" => step.as_str(), "code" => code)
                .increment(n);
        }
        if self.suppressed > 0 {
            metrics::counter!("streamhost_rejection_logs_suppressed_total")
                .increment(self.suppressed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_the_next_line_counts_what_was_left_out() {
        let mut l = Limiter::new();
        let t0 = Instant::now();
        let logged = (0..1000).filter(|_| l.admit(t0).is_some()).count();
        assert_eq!(logged, BURST as usize);
        // A second later, PER_SECOND more get through; the first says how many were cut.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.admit(t1), Some(1000 - BURST as u64));
        let more = (0..100).filter(|_| l.admit(t1).is_some()).count();
        assert_eq!(more, PER_SECOND as usize - 1);
        // Quiet for long enough, the burst is back.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(l.admit(t2), Some(100 - (PER_SECOND as u64 - 1)));
    }
}
