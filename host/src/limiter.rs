//! A token bucket for log lines that can come in floods (bad data, a broker gone
//! away): past a burst, a fixed rate gets through, and the next line that does says
//! how many were left out.

use std::time::{Duration, Instant};

/// A token bucket that counts what it turns away. Credit is kept as time, in whole
/// nanoseconds, so that a line every 10 s is one every 10 s, not every 11 s after
/// rounding.
#[derive(Debug)]
pub struct Limiter {
    /// Lines admitted back to back before the rate applies.
    burst: u32,
    /// After the burst, one line per `interval`.
    interval: Duration,
    credit: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Limiter {
    pub const fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst,
            interval,
            credit: interval.saturating_mul(burst),
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log this one, after `n` left out since the last logged line.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last);
            let full = self.interval.saturating_mul(self.burst);
            self.credit = self.credit.saturating_add(refill).min(full);
        }
        self.last = Some(now);
        if self.credit >= self.interval {
            self.credit -= self.interval;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_the_next_line_counts_what_was_left_out() {
        let (burst, per_second) = (20_usize, 5_usize);
        let mut l = Limiter::new(20, Duration::from_millis(200));
        let t0 = Instant::now();
        let logged = (0..1000).filter(|_| l.admit(t0).is_some()).count();
        assert_eq!(logged, burst);
        // A second later, `per_second` more get through; the first says how many were cut.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.admit(t1), Some(1000 - burst as u64));
        let more = (0..100).filter(|_| l.admit(t1).is_some()).count();
        assert_eq!(more, per_second - 1);
        // Quiet for long enough, the burst is back.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(l.admit(t2), Some(100 - (per_second as u64 - 1)));
    }

    #[test]
    fn one_line_every_ten_seconds() {
        let mut l = Limiter::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let logged: Vec<_> = (0..=25)
            .filter_map(|s| l.admit(at(s)).map(|n| (s, n)))
            .collect();
        assert_eq!(logged, [(0, 0), (10, 9), (20, 9)]);
    }
}
