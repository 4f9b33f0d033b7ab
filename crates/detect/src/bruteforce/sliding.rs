//! Distinct counts over a true sliding window of event time, with the same one-minute bucket
//! edge as [`crate::window::Counter`], so that "N addresses within 1 h" never counts an address
//! whose failures fell out of "M failures within 1 h" (N ≤ M always).

use std::collections::VecDeque;

use maillog::Ts;

use crate::window::BUCKET_SECS;

fn bucket(secs: i64) -> i64 {
    secs.div_euclid(BUCKET_SECS)
}

/// Whether an event at `t` is inside the window of `w` seconds ending at `now`, exactly as a
/// [`crate::window::Counter`] keeps it.
pub fn in_window(t: Ts, now: Ts, w: i64) -> bool {
    bucket(t.secs()) > bucket(now.secs().saturating_sub(w))
}

/// Keys with the time each was last seen and a value, at most `cap` of them (the least recently
/// seen is replaced when full). Counts are exact while fewer than `cap` keys are in the window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Recent<K, V> {
    items: Vec<(K, V, Ts)>,
    cap: usize,
}

impl<K: Copy + PartialEq, V: Copy> Recent<K, V> {
    /// Empty, holding at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Recent {
            items: Vec::new(),
            cap: cap.max(1),
        }
    }

    /// Note `k` at `ts`; `update` changes the value of a known key, `v` is a new key's value.
    pub fn touch(&mut self, k: K, ts: Ts, v: V, update: impl FnOnce(&mut V)) {
        if let Some(e) = self.items.iter_mut().find(|e| e.0 == k) {
            update(&mut e.1);
            e.2 = e.2.max(ts);
            return;
        }
        if self.items.len() < self.cap {
            self.items.push((k, v, ts));
        } else if let Some(oldest) = self.items.iter_mut().min_by_key(|e| e.2) {
            *oldest = (k, v, ts);
        }
    }

    /// Keys seen within the window of `w` seconds ending at `now`.
    pub fn count_within(&self, now: Ts, w: i64) -> u64 {
        self.items.iter().filter(|e| in_window(e.2, now, w)).count() as u64
    }

    /// Keys and values seen within the window, most recent first.
    pub fn within(&self, now: Ts, w: i64) -> Vec<(K, V)> {
        let mut v: Vec<&(K, V, Ts)> = self
            .items
            .iter()
            .filter(|e| in_window(e.2, now, w))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.2));
        v.into_iter().map(|e| (e.0, e.1)).collect()
    }

    /// Keys, values and the time each was last seen, within the window, most recent first.
    pub fn entries_within(&self, now: Ts, w: i64) -> Vec<(K, V, Ts)> {
        let mut v: Vec<(K, V, Ts)> = self
            .items
            .iter()
            .filter(|e| in_window(e.2, now, w))
            .copied()
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.2));
        v
    }

    /// Forget keys not seen within `w` seconds of `now`.
    pub fn prune(&mut self, now: Ts, w: i64) {
        self.items.retain(|e| in_window(e.2, now, w));
    }
}

/// HyperLogLog registers (2^8): about 6.5% standard error.
const REGS: usize = 256;

/// A HyperLogLog sketch over a sliding window: each register keeps the ranks that can still be
/// its maximum later ("list of future possible maxima", Chabchoub & Hébrail, "Sliding
/// HyperLogLog", 2010), newest last, so expired values leave the count. Memory: at most 57
/// small entries per register, in practice a few.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SlidingHll {
    regs: Vec<VecDeque<(i64, u8)>>,
}

impl Default for SlidingHll {
    fn default() -> Self {
        SlidingHll {
            regs: vec![VecDeque::new(); REGS],
        }
    }
}

impl SlidingHll {
    /// Add a value (any 64-bit key; it is mixed here) seen at `ts`.
    pub fn insert(&mut self, v: u64, ts: Ts) {
        let h = crate::distinct::mix(v);
        let q = &mut self.regs[(h >> 56) as usize];
        let rank = ((h << 8) | 1 << 7).leading_zeros() as u8 + 1;
        // Out-of-order events count in the newest bucket, as in `Counter`.
        let b = q
            .back()
            .map_or(bucket(ts.secs()), |&(last, _)| last.max(bucket(ts.secs())));
        while q.back().is_some_and(|&(_, r)| r <= rank) {
            q.pop_back();
        }
        q.push_back((b, rank));
    }

    /// Estimated distinct values within the window of `w` seconds ending at `now`.
    pub fn count(&mut self, now: Ts, w: i64) -> u64 {
        let min = bucket(now.secs().saturating_sub(w));
        let m = REGS as f64;
        let (mut sum, mut zeros) = (0.0, 0u32);
        for q in &mut self.regs {
            while q.front().is_some_and(|&(b, _)| b <= min) {
                q.pop_front();
            }
            let r = q.front().map_or(0, |&(_, r)| r);
            sum += 2f64.powi(-(r as i32));
            if r == 0 {
                zeros += 1;
            }
        }
        if zeros as usize == REGS {
            return 0;
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let e = alpha * m * m / sum;
        let e = if e <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            e
        };
        e.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_counts_only_the_window() {
        let t0 = Ts::from_secs(1_000_020);
        let mut r: Recent<u32, u32> = Recent::new(8);
        for i in 0..10u32 {
            r.touch(i, t0.plus_secs(i as i64 * 3600), 1, |c| *c += 1);
        }
        // Ten keys an hour apart, cap 8: the two oldest were replaced; one within the hour.
        assert_eq!(r.count_within(t0.plus_secs(9 * 3600), 3600), 1);
        assert_eq!(r.count_within(t0.plus_secs(9 * 3600), 10 * 3600), 8);
        r.touch(9, t0.plus_secs(9 * 3600 + 5), 1, |c| *c += 1);
        assert_eq!(r.within(t0.plus_secs(9 * 3600 + 5), 60), vec![(9, 2)]);
    }

    #[test]
    fn sliding_hll_forgets_and_estimates() {
        let t0 = Ts::from_secs(2_000_000);
        let mut s = SlidingHll::default();
        for i in 0..5_000u64 {
            s.insert(i, t0.plus_secs((i / 100) as i64));
        }
        let n = s.count(t0.plus_secs(60), 3600) as f64;
        assert!((n - 5_000.0).abs() / 5_000.0 < 0.2, "{n}");
        for i in 0..50u64 {
            s.insert(1_000_000 + i, t0.plus_secs(7200));
        }
        let n = s.count(t0.plus_secs(7200), 3600);
        assert!((45..=55).contains(&n), "{n}");
        assert_eq!(s.count(t0.plus_secs(20_000), 3600), 0);
    }
}
