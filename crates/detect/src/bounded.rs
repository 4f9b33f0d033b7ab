//! A map with a size cap, for per-entity state under adversarial cardinality.

use std::collections::HashMap;
use std::hash::Hash;

use maillog::Ts;

/// A `HashMap` that never holds more than `cap` entries: when full, the least recently touched
/// half is dropped (their state is forgotten, which only delays a detection; it never invents one).
#[derive(Debug, Clone)]
pub struct BoundedMap<K, V> {
    map: HashMap<K, (Ts, V)>,
    cap: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// Empty, holding at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            cap: cap.max(2),
            evicted: 0,
        }
    }

    /// Entry for `k`, created with `make` when absent, touched at `ts`.
    pub fn get_or_insert_with(&mut self, k: &K, ts: Ts, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(k) {
            if self.map.len() >= self.cap {
                self.evict();
            }
            self.map.insert(k.clone(), (ts, make()));
        }
        let e = self.map.get_mut(k).expect("present: inserted above");
        if ts > e.0 {
            e.0 = ts;
        }
        &mut e.1
    }

    /// Look up without touching.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(_, v)| v)
    }

    /// Look up mutably without touching.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries dropped so far because of the cap.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Drop entries not touched since `before`.
    pub fn retain_since(&mut self, before: Ts) {
        self.map.retain(|_, (t, _)| *t >= before);
    }

    /// Iterate.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (_, v))| (k, v))
    }

    fn evict(&mut self) {
        let mut ts: Vec<Ts> = self.map.values().map(|(t, _)| *t).collect();
        let mid = ts.len() / 2;
        ts.select_nth_unstable(mid);
        let cut = ts[mid];
        let before = self.map.len();
        self.map.retain(|_, (t, _)| *t > cut);
        self.evicted += (before - self.map.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_keeps_recent() {
        let mut m = BoundedMap::new(100);
        for i in 0..10_000i64 {
            *m.get_or_insert_with(&i, Ts::from_secs(i), || 0u32) += 1;
        }
        assert!(m.len() <= 100);
        assert!(m.get(&9_999).is_some());
        assert!(m.get(&0).is_none());
        assert!(m.evicted() >= 9_900);
    }
}
