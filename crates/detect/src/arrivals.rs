//! Entries numbered in arrival order, kept oldest first: what a `BTreeMap<u64, T>` keyed by a
//! growing sequence number gives, in a ring of slots instead of a tree.
//!
//! The policy claims and the sessions' HELOs ([`crate::claims`]) add one entry per policy
//! request and remove nearly always the oldest (expiry, overflow), sometimes one in the middle
//! (a log line took it). In a tree each insertion and removal walks and rebalances nodes; here
//! both are an index into a `VecDeque`, and a removal in the middle leaves an empty slot that
//! goes when it reaches the front.
//!
//! The entries are kept in the slots themselves (`Option<T>`), not boxed: the one retired is
//! nearly always the oldest, so the ring is walked in order, and a retired entry is read
//! where its neighbours were just read, instead of through a pointer to a block allocated
//! ~100,000 requests earlier (a cache miss per retirement; with boxes the engine thread took
//! 1.58-1.89 µs per policy request in the policy benchmark, 1.38-1.63 µs without, four
//! alternating runs, docs/PERFORMANCE.md). An empty slot is then as large as an entry, so the
//! users bound the slots spanned ([`Arrivals::span`]), not only the entries present.
//!
//! Written to the snapshot as the map from sequence number to entry, exactly as the
//! `BTreeMap` it replaces was, so snapshots of either load in both.

use std::collections::{BTreeMap, VecDeque};

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Entries by increasing sequence number (see the module doc).
#[derive(Debug, Clone)]
pub struct Arrivals<T> {
    /// Sequence number of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<T>>,
    /// Entries present (slots that are `Some`).
    len: usize,
}

impl<T> Default for Arrivals<T> {
    fn default() -> Self {
        Arrivals {
            first: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Arrivals<T> {
    /// Entries present.
    pub fn len(&self) -> usize {
        self.len
    }

    /// None present?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots from the oldest entry to the newest, empty ones included: the memory held.
    pub fn span(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        (i < self.slots.len()).then_some(i)
    }

    /// Add entry `seq`, which must be newer than every entry ever added (a sequence number
    /// at or below the newest slot is refused: returns the value back).
    pub fn push(&mut self, seq: u64, v: T) -> Result<(), T> {
        if self.slots.is_empty() {
            self.first = seq;
        }
        let Some(gap) = seq
            .checked_sub(self.first)
            .and_then(|d| usize::try_from(d).ok())
            .and_then(|d| d.checked_sub(self.slots.len()))
        else {
            return Err(v);
        };
        for _ in 0..gap {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(v));
        self.len += 1;
        Ok(())
    }

    /// Entry `seq`.
    pub fn get(&self, seq: u64) -> Option<&T> {
        self.slots.get(self.index(seq)?)?.as_ref()
    }

    /// Entry `seq`, to change.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut T> {
        let i = self.index(seq)?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// Take entry `seq` out.
    pub fn remove(&mut self, seq: u64) -> Option<T> {
        let i = self.index(seq)?;
        let v = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        self.trim();
        Some(v)
    }

    /// The oldest entry.
    pub fn first(&self) -> Option<(u64, &T)> {
        // The front slot is always full (`trim`).
        let v = self.slots.front()?.as_ref()?;
        Some((self.first, v))
    }

    /// Sequence number of the oldest slot, when there is one (it holds the oldest entry).
    pub fn oldest_slot(&self) -> Option<u64> {
        (!self.slots.is_empty()).then_some(self.first)
    }

    /// Take the oldest entry out.
    pub fn pop_first(&mut self) -> Option<(u64, T)> {
        let seq = self.first;
        let v = self.slots.pop_front()??;
        self.first += 1;
        self.len -= 1;
        self.trim();
        Some((seq, v))
    }

    /// Drop the empty slots at the front, so that the front slot is an entry.
    fn trim(&mut self) {
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// Every entry, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let first = self.first;
        self.slots
            .iter()
            .zip(first..)
            .filter_map(|(v, seq)| Some((seq, v.as_ref()?)))
    }

    /// Every entry, oldest first, taken.
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.slots.into_iter().flatten()
    }
}

/// Keys (hashes the owner computes) of entries of an [`Arrivals`], to their sequence numbers,
/// whose mappings are **not removed when their entry goes**: a look-up may yield the number of
/// an entry gone, which [`Arrivals::get`] then does not find (a number is never given twice),
/// and the owner checks what it finds against its key as before.
///
/// Why: the policy claims and sessions' HELOs retire one entry per policy request, nearly
/// always the oldest, and removing its mapping was a look-up of a key hashed ~100,000 requests
/// earlier, in a table larger than the cache — a miss on every retirement (most of
/// `PolicyClaims::remove` and `SessionHelos::pop_oldest` in `examples/policy_engine.rs`'s
/// profile, docs/PERFORMANCE.md). Instead, once the index holds [`STALE_FACTOR`] times as many
/// mappings as its arrivals span slots, it drops in one pass the mappings older
/// than the oldest slot; that pass reads only the index, in order. Mappings of entries taken
/// from the middle stay until the oldest slot passes them, as those entries' slots do, so the
/// index stays within `STALE_FACTOR` times the arrivals' own bound.
#[derive(Debug, Clone, Default)]
pub struct LazyIndex {
    map: maillog::hash::Map<u64, u64>,
}

/// The index's size, as a multiple of its arrivals' span (at least [`LAZY_INDEX_MIN`]), that
/// makes it drop its stale mappings. Two: a pass over the index every span's worth of
/// insertions, so the pass costs a constant per insertion, and the index at most twice the
/// size of one that removed each mapping at once. Our own choice.
pub const STALE_FACTOR: usize = 2;

/// The smallest size at which the index drops its stale mappings, so that a small index is
/// not walked at every few insertions. Our own choice.
pub const LAZY_INDEX_MIN: usize = 1024;

impl LazyIndex {
    /// The sequence number mapped to `key`, if any (its entry may be gone).
    pub fn get(&self, key: u64) -> Option<u64> {
        self.map.get(&key).copied()
    }

    /// Map `key` to `seq`, an entry of `arrivals` (replacing what `key` mapped to); drop the
    /// stale mappings first when there are too many.
    pub fn insert<T>(&mut self, key: u64, seq: u64, arrivals: &Arrivals<T>) {
        if self.map.len() >= arrivals.span().max(LAZY_INDEX_MIN) * STALE_FACTOR {
            self.drop_stale(arrivals);
        }
        self.map.insert(key, seq);
    }

    /// Drop the mappings older than `arrivals`' oldest slot (all of them when it is empty).
    pub fn drop_stale<T>(&mut self, arrivals: &Arrivals<T>) {
        let oldest = arrivals.oldest_slot().unwrap_or(u64::MAX);
        self.map.retain(|_, seq| *seq >= oldest);
    }

    /// Mappings held, stale ones included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// None held?
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forget every mapping.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

impl<T: Serialize> Serialize for Arrivals<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The length first: a format without a map end (postcard, packed states) needs it.
        let mut m = s.serialize_map(Some(self.len()))?;
        for (seq, v) in self.iter() {
            m.serialize_entry(&seq, v)?;
        }
        m.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arrivals<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<u64, T>::deserialize(d)?;
        let mut a = Arrivals::default();
        for (seq, v) in m {
            // A map's keys are distinct and come in order: every push is accepted.
            let _ = a.push(seq, v);
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on an `Arrivals` and on a `BTreeMap` give the same entries.
    #[test]
    fn behaves_as_the_map_it_replaces() {
        let mut a = Arrivals::default();
        let mut m = BTreeMap::new();
        let mut seq = 10u64;
        // A fixed pseudo-random walk: pushes (some with gaps), removals in the middle and at
        // the front.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 7 {
                0..=2 => {
                    seq += 1 + (x >> 8) % 3;
                    a.push(seq, seq * 2).unwrap();
                    m.insert(seq, seq * 2);
                }
                3 => {
                    assert_eq!(a.pop_first(), m.pop_first());
                }
                4 => {
                    let k = seq.saturating_sub((x >> 8) % 20);
                    assert_eq!(a.remove(k), m.remove(&k));
                }
                5 => {
                    let k = seq.saturating_sub((x >> 8) % 20);
                    if let Some(v) = a.get_mut(k) {
                        *v += 1;
                    }
                    if let Some(v) = m.get_mut(&k) {
                        *v += 1;
                    }
                }
                _ => {
                    let k = seq.saturating_sub((x >> 8) % 20);
                    assert_eq!(a.get(k), m.get(&k));
                }
            }
            assert_eq!(a.len(), m.len());
            assert_eq!(a.first(), m.first_key_value().map(|(k, v)| (*k, v)));
        }
        let got: Vec<(u64, u64)> = a.iter().map(|(k, v)| (k, *v)).collect();
        let want: Vec<(u64, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, want);
        assert_eq!(
            a.clone().into_values().collect::<Vec<_>>(),
            m.values().copied().collect::<Vec<_>>()
        );
    }

    /// A [`LazyIndex`] beside arrivals that retire their oldest entry at each push (the policy
    /// claims' steady state) and some from the middle: every live entry stays found, and the
    /// mappings held stay within [`STALE_FACTOR`] times the largest span (the arrivals' own
    /// bound; a span shrinks at once when the oldest goes, the index at its next pass).
    #[test]
    fn a_lazy_index_finds_every_entry_and_stays_bounded() {
        let mut a = Arrivals::default();
        let mut idx = LazyIndex::default();
        let key = |seq: u64| seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let live = 3 * LAZY_INDEX_MIN;
        let mut widest = 0;
        for seq in 0..(40 * LAZY_INDEX_MIN as u64) {
            a.push(seq, seq).unwrap();
            idx.insert(key(seq), seq, &a);
            if a.len() > live {
                a.pop_first();
            }
            // One in seven taken from the middle, as a log line takes a claim.
            if seq % 7 == 0 {
                a.remove(seq.saturating_sub(100));
            }
            widest = widest.max(a.span());
            assert!(
                idx.len() <= widest.max(LAZY_INDEX_MIN) * STALE_FACTOR + 1,
                "{} mappings for spans of at most {widest}",
                idx.len(),
            );
        }
        for (seq, _) in a.iter() {
            assert_eq!(idx.get(key(seq)), Some(seq));
        }
        // The mapping of an entry gone stays until a pass, and finds no entry.
        let s = 40 * LAZY_INDEX_MIN as u64;
        a.push(s, s).unwrap();
        idx.insert(key(s), s, &a);
        a.remove(s);
        assert_eq!(idx.get(key(s)), Some(s));
        assert!(a.get(s).is_none());
        idx.drop_stale(&a);
        assert!(
            idx.len() <= a.span(),
            "only mappings at or after the oldest slot"
        );
        a = Arrivals::default();
        idx.drop_stale(&a);
        assert!(idx.is_empty(), "no slots: every mapping is stale");
    }

    #[test]
    fn refuses_a_sequence_number_not_newer() {
        let mut a = Arrivals::default();
        a.push(5, "a").unwrap();
        a.push(8, "b").unwrap();
        assert_eq!(a.push(8, "c"), Err("c"));
        assert_eq!(a.push(3, "d"), Err("d"));
        assert_eq!(a.span(), 4, "5, two empty slots, 8");
        a.remove(8);
        // The slot of 8 is gone with its entry only when it reaches the front.
        assert_eq!(a.push(7, "e"), Err("e"));
        assert_eq!((a.len(), a.span()), (1, 4));
        a.pop_first();
        assert_eq!(
            (a.len(), a.span()),
            (0, 0),
            "the empty slots go with the oldest"
        );
    }

    /// Written as the `BTreeMap` was: a snapshot of either reads back into both.
    #[test]
    fn snapshot_form_is_the_maps() {
        let mut a = Arrivals::default();
        for s in [3u64, 4, 9] {
            a.push(s, format!("v{s}")).unwrap();
        }
        a.remove(4);
        let m: BTreeMap<u64, String> = [(3, "v3".to_string()), (9, "v9".to_string())].into();
        let bytes = rmp_serde::to_vec(&a).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec(&m).unwrap());
        let back: Arrivals<String> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            back.iter().map(|(k, v)| (k, v.clone())).collect::<Vec<_>>(),
            vec![(3, "v3".to_string()), (9, "v9".to_string())]
        );
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
    }
}
