//! Sliding event-time windows with bounded memory.

use maillog::Ts;

use crate::compact::Rare;

/// Width of one bucket of a [`Counter`]: counts are kept per minute, so a 24 h window holds at
/// most 1,440 buckets however many events arrive.
pub const BUCKET_SECS: i64 = 60;

/// A count of events in the last `window` seconds of event time, kept in one-minute buckets.
///
/// A bucket is its minute since 1970 as an `i32` and its count, 8 bytes (it was an `i64` and
/// 16): minutes reach `i32::MAX` in the year 6053, and later stamps share the last bucket. A
/// snapshot holds the same integers as before (MessagePack writes each in the fewest bytes).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counter {
    buckets: std::collections::VecDeque<(i32, u32)>,
    total: u64,
}

/// The bucket of `secs` (seconds since 1970), clamped to `i32`.
fn bucket(secs: i64) -> i32 {
    secs.div_euclid(BUCKET_SECS)
        .clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

impl Counter {
    /// Add `n` at `ts`, dropping what fell out of `window_secs`.
    pub fn add(&mut self, ts: Ts, n: u32, window_secs: i64) {
        if n == 0 {
            // Nothing to count: a bucket of zero would only cost memory (most entities add
            // zero discounted, forwarded or failed recipients with every message).
            self.expire(ts, window_secs);
            return;
        }
        let b = bucket(ts.secs());
        match self.buckets.back_mut() {
            Some((last, c)) if *last == b => *c = c.saturating_add(n),
            Some((last, _)) if *last > b => {
                // Out-of-order event (interleaved files): count it in the newest bucket.
                if let Some((_, c)) = self.buckets.back_mut() {
                    *c = c.saturating_add(n);
                }
            }
            _ => crate::compact::push_back(&mut self.buckets, (b, n)),
        }
        self.total += n as u64;
        self.expire(ts, window_secs);
    }

    /// Drop buckets older than the window ending at `ts`.
    pub fn expire(&mut self, ts: Ts, window_secs: i64) {
        let min = bucket(ts.secs().saturating_sub(window_secs));
        while let Some(&(b, c)) = self.buckets.front() {
            if b > min {
                break;
            }
            self.total -= c as u64;
            self.buckets.pop_front();
        }
    }

    /// Events in the window (as of the last `add`/`expire`).
    pub fn get(&self) -> u64 {
        self.total
    }
}

/// A [`Counter`] that most entities never count anything in (discounted or repeated failures,
/// failed logins): absent (one null pointer instead of 40 bytes) until a first non-zero add,
/// and absent again once its window is empty. Snapshots hold the counter as before.
pub type RareCounter = Rare<Counter>;

impl Rare<Counter> {
    /// [`Counter::add`].
    pub fn add(&mut self, ts: Ts, n: u32, window_secs: i64) {
        if n == 0 {
            self.expire(ts, window_secs);
        } else {
            self.get_or_default().add(ts, n, window_secs);
        }
    }

    /// [`Counter::expire`], dropping the counter when nothing is left in its window.
    pub fn expire(&mut self, ts: Ts, window_secs: i64) {
        if let Some(c) = self.get_mut() {
            c.expire(ts, window_secs);
            if c.buckets.is_empty() {
                self.clear();
            }
        }
    }

    /// [`Counter::get`]: events in the window.
    pub fn count(&self) -> u64 {
        self.get().map_or(0, Counter::get)
    }
}

/// Parse a duration such as `90s`, `10m`, `24h`, `7d` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b's' => (&s[..s.len() - 1], 1),
        b'm' => (&s[..s.len() - 1], 60),
        b'h' => (&s[..s.len() - 1], 3600),
        b'd' => (&s[..s.len() - 1], 86_400),
        b'w' => (&s[..s.len() - 1], 7 * 86_400),
        _ => (s, 1),
    };
    let n: i64 = num.trim().parse().ok()?;
    if n < 0 {
        return None;
    }
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slides() {
        let mut c = Counter::default();
        let t0 = Ts::from_secs(1_000_000_020);
        c.add(t0, 5, 3600);
        c.add(t0.plus_secs(1800), 3, 3600);
        assert_eq!(c.get(), 8);
        c.add(t0.plus_secs(3700), 1, 3600);
        assert_eq!(c.get(), 4);
        c.expire(t0.plus_secs(10_000), 3600);
        assert_eq!(c.get(), 0);
    }

    #[test]
    fn zero_adds_keep_no_bucket_but_still_expire() {
        let mut c = Counter::default();
        let t0 = Ts::from_secs(1_000_000_020);
        c.add(t0, 0, 3600);
        assert!(c.buckets.is_empty());
        c.add(t0, 2, 3600);
        c.add(t0.plus_secs(7200), 0, 3600);
        assert_eq!(c.get(), 0);
        assert!(c.buckets.is_empty());
    }

    #[test]
    fn rare_counters_exist_only_while_they_count() {
        let mut c = RareCounter::default();
        let t0 = Ts::from_secs(1_000_000_020);
        c.add(t0, 0, 3600);
        assert!(c.get().is_none());
        c.add(t0, 2, 3600);
        assert_eq!(c.count(), 2);
        c.add(t0.plus_secs(60), 0, 3600);
        assert_eq!(c.count(), 2);
        c.expire(t0.plus_secs(7200), 3600);
        assert_eq!(c.count(), 0);
        assert!(c.get().is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("45"), Some(45));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("-3s"), None);
    }
}
