//! A map with a size cap, for per-entity state under adversarial cardinality.
//!
//! Entries live in one of two segments, as in a segmented LRU cache: **probation** for newcomers
//! and **protected** for entries the owner has marked as established with
//! [`BoundedMap::protect`] (an account with a learned baseline). When the map is full, a
//! newcomer takes the place of the least recently touched newcomers; protected entries are only
//! evicted when they themselves crowd the map (more than all but [`PROBATION_SHARE`] of it), so
//! a flood of new keys — half a million invented user names — can churn through probation but
//! never flush what was learned. Every eviction is counted, per segment.

use std::borrow::Borrow;
use std::hash::Hash;

use maillog::Ts;

use crate::slab::{KeyHash, SlabMap};

/// Share of the cap (1/n) kept for newcomers however many entries are protected: a newcomer
/// evicts protected entries only while probation holds less than `cap / PROBATION_SHARE`
/// entries. Our own idea: a quarter leaves room for a day's new accounts at an ISP whose
/// established accounts fill the rest.
pub const PROBATION_SHARE: usize = 4;

/// Share (1/n) of a segment dropped when it must make room: evicting in batches keeps the cost
/// per insert constant (one linear pass per `len / EVICT_SHARE` inserts).
pub const EVICT_SHARE: usize = 2;

/// Which segment an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Newcomers: evicted first, least recently touched first.
    Probation,
    /// Established entries: evicted only when they crowd the map.
    Protected,
}

/// A hash map ([`SlabMap`]: fixed-seed hashes, entries in a dense vector) that never holds more than `cap` entries (see the module docs for who is evicted).
/// Eviction only forgets state, which delays a detection; it never invents one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "K: serde::Serialize + Hash + Eq, V: serde::Serialize",
    deserialize = "K: serde::Deserialize<'de> + Hash + Eq, V: serde::Deserialize<'de>"
))]
pub struct BoundedMap<K, V> {
    probation: SlabMap<K, (Ts, V)>,
    protected: SlabMap<K, (Ts, V)>,
    cap: usize,
    evicted_probation: u64,
    evicted_protected: u64,
    /// Counts the changes that move or drop entries (an insertion, which may evict; a
    /// protection; a purge): a [`Handle`] is good for the count it was made at.
    #[serde(skip)]
    changes: u32,
}

/// Where an entry of a [`BoundedMap`] is, from [`BoundedMap::find`] or
/// [`BoundedMap::entry_with`]: read and written with [`BoundedMap::at`] and
/// [`BoundedMap::at_mut`] without hashing its key again, until the map next inserts, protects
/// or purges (a detector that reads and writes one account's state several times for one event
/// looked it up, hashing its name, at each step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    segment: Segment,
    slot: u32,
    changes: u32,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// Empty, holding at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            probation: Default::default(),
            protected: Default::default(),
            cap: cap.max(2),
            evicted_probation: 0,
            evicted_protected: 0,
            changes: 0,
        }
    }

    fn segment_map(&self, segment: Segment) -> &SlabMap<K, (Ts, V)> {
        match segment {
            Segment::Probation => &self.probation,
            Segment::Protected => &self.protected,
        }
    }

    fn segment_map_mut(&mut self, segment: Segment) -> &mut SlabMap<K, (Ts, V)> {
        match segment {
            Segment::Probation => &mut self.probation,
            Segment::Protected => &mut self.protected,
        }
    }

    /// Note a change that moves or drops entries: the handles made before are void.
    fn changed(&mut self) {
        self.changes = self.changes.wrapping_add(1);
    }

    /// Where `k` is, without touching it.
    pub fn find<Q>(&self, k: &Q) -> Option<Handle>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.is_empty() {
            return None; // no hash to compute
        }
        self.find_hashed(k, KeyHash::of(k))
    }

    /// [`BoundedMap::find`] of `k`, whose hash `h` is: one hash for both segments.
    fn find_hashed<Q>(&self, k: &Q, h: KeyHash) -> Option<Handle>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let (segment, slot) = match self.protected.slot_hashed(k, h) {
            Some(i) => (Segment::Protected, i),
            None => (Segment::Probation, self.probation.slot_hashed(k, h)?),
        };
        Some(Handle {
            segment,
            slot,
            changes: self.changes,
        })
    }

    /// The value at `h`; None when the map has inserted, protected or purged since `h` was
    /// made.
    pub fn at(&self, h: Handle) -> Option<&V> {
        if h.changes != self.changes {
            return None;
        }
        Some(&self.segment_map(h.segment).at(h.slot).1)
    }

    /// The value at `h`, for writing, without touching it; None when the map has inserted,
    /// protected or purged since `h` was made.
    pub fn at_mut(&mut self, h: Handle) -> Option<&mut V> {
        if h.changes != self.changes {
            return None;
        }
        Some(&mut self.segment_map_mut(h.segment).at_mut(h.slot).1)
    }

    /// Entry for `k`, created with `make` (in probation) when absent, touched at `ts`.
    ///
    /// `k` is borrowed (`&str` for a `String` key): the key is copied only when a new entry is
    /// made, never to look one up (a `String` key used to be cloned, and freed, on every call).
    pub fn get_or_insert_with<Q>(&mut self, k: &Q, ts: Ts, make: impl FnOnce() -> V) -> &mut V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let h = self.entry_with(k, ts, make);
        self.at_mut(h).expect("made just now")
    }

    /// [`BoundedMap::get_or_insert_with`], answering where the entry is.
    pub fn entry_with<Q>(&mut self, k: &Q, ts: Ts, make: impl FnOnce() -> V) -> Handle
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // The key is hashed once, for the look-up in both segments and the insertion.
        let hash = KeyHash::of(k);
        let h = match self.find_hashed(k, hash) {
            Some(h) => h,
            None => {
                if self.len() >= self.cap {
                    self.make_room();
                }
                self.changed();
                let slot = self
                    .probation
                    .insert_new_hashed(k.to_owned(), (ts, make()), hash);
                Handle {
                    segment: Segment::Probation,
                    slot,
                    changes: self.changes,
                }
            }
        };
        let touched = &mut self.segment_map_mut(h.segment).at_mut(h.slot).0;
        if ts > *touched {
            *touched = ts;
        }
        h
    }

    /// Move `k` to the protected segment (no-op when absent or already there).
    pub fn protect<Q>(&mut self, k: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = KeyHash::of(k);
        if let Some((key, v)) = self.probation.remove_entry_hashed(k, hash) {
            // A key is in one segment at most.
            self.protected.insert_new_hashed(key, v, hash);
            self.changed();
        }
    }

    /// The segment `k` is in.
    pub fn segment<Q>(&self, k: &Q) -> Option<Segment>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(k).map(|h| h.segment)
    }

    /// Look up without touching.
    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.at(self.find(k)?)
    }

    /// Look up mutably without touching.
    pub fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.find(k)?;
        self.at_mut(h)
    }

    /// Most entries held.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.probation.len() + self.protected.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries dropped so far because of the cap (both segments).
    pub fn evicted(&self) -> u64 {
        self.evicted_probation + self.evicted_protected
    }

    /// Protected entries dropped so far because of the cap.
    pub fn evicted_protected(&self) -> u64 {
        self.evicted_protected
    }

    /// Drop entries (of both segments) not touched since `before`.
    pub fn retain_since(&mut self, before: Ts) {
        self.changed();
        self.probation.retain(|_, (t, _)| *t >= before);
        self.protected.retain(|_, (t, _)| *t >= before);
    }

    /// Visit, for writing, every entry (of both segments) not touched since `before`, without
    /// touching it.
    pub fn for_each_idle(&mut self, before: Ts, mut f: impl FnMut(&mut V)) {
        self.for_each_timed(|_, t, v| {
            if t < before {
                f(v);
            }
        });
    }

    /// Visit, for writing, every entry (of both segments) with its key and the time it was
    /// last touched, without touching it.
    pub fn for_each_timed(&mut self, mut f: impl FnMut(&K, Ts, &mut V)) {
        for (k, (t, v)) in self.protected.iter_mut().chain(self.probation.iter_mut()) {
            f(k, *t, v);
        }
    }

    /// Iterate (protected entries first; order within a segment is unspecified).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.protected
            .iter()
            .chain(self.probation.iter())
            .map(|(k, (_, v))| (k, v))
    }

    fn make_room(&mut self) {
        let floor = self.cap / PROBATION_SHARE;
        if self.probation.len() >= floor.max(1) || self.protected.is_empty() {
            self.evicted_probation += evict_oldest(&mut self.probation);
        } else {
            self.evicted_protected += evict_oldest(&mut self.protected);
        }
    }
}

/// Drop the least recently touched `1 / EVICT_SHARE` of `map` (at least one entry; all entries
/// touched at the cut time go together, so the result never depends on iteration order).
fn evict_oldest<K: Hash + Eq, V>(map: &mut SlabMap<K, (Ts, V)>) -> u64 {
    if map.is_empty() {
        return 0;
    }
    let mut ts: Vec<Ts> = map.values().map(|(t, _)| *t).collect();
    let k = (ts.len() / EVICT_SHARE).saturating_sub(1);
    let (_, cut, _) = ts.select_nth_unstable(k);
    let cut = *cut;
    let before = map.len();
    map.retain(|_, (t, _)| *t > cut);
    (before - map.len()) as u64
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
        assert_eq!(m.evicted_protected(), 0);
    }

    /// A snapshot keeps both segments, the touch times, the cap and the eviction counts, so a
    /// restored map evicts exactly what the original would have.
    #[test]
    fn round_trips_through_a_snapshot_and_evicts_alike() {
        let mut m = BoundedMap::new(100);
        for i in 0..300i64 {
            *m.get_or_insert_with(&i, Ts::from_secs(i), || 0u32) += 1;
            if i % 7 == 0 {
                m.protect(&i);
            }
        }
        let bytes = crate::snapshot::encode(&m).unwrap();
        let mut r: BoundedMap<i64, u32> = crate::snapshot::decode(&bytes).unwrap();
        assert_eq!((r.len(), r.cap), (m.len(), m.cap));
        assert_eq!(r.evicted_protected(), m.evicted_protected());
        assert_eq!(r.evicted(), m.evicted());
        for i in 0..300i64 {
            assert_eq!(r.segment(&i), m.segment(&i), "{i}");
            assert_eq!(r.get(&i), m.get(&i), "{i}");
        }
        for i in 300..1_000i64 {
            m.get_or_insert_with(&i, Ts::from_secs(i), || 0u32);
            r.get_or_insert_with(&i, Ts::from_secs(i), || 0u32);
        }
        let keys = |m: &BoundedMap<i64, u32>| {
            let mut k: Vec<i64> = m.iter().map(|(k, _)| *k).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&r), keys(&m));
        assert_eq!(r.evicted(), m.evicted());
    }

    /// A handle reads and writes its entry without a look-up until the map inserts, protects
    /// or purges; then it answers nothing, and a new `find` says where the entry is now.
    #[test]
    fn a_handle_holds_until_the_map_moves_or_drops_entries() {
        let mut m = BoundedMap::new(4);
        let a = m.entry_with(&1i64, Ts::from_secs(10), || 100u32);
        assert_eq!(m.at(a), Some(&100));
        *m.at_mut(a).unwrap() += 1;
        assert_eq!(m.get(&1), Some(&101));
        // Looking up, touching or writing an existing entry keeps every handle good.
        let again = m.entry_with(&1i64, Ts::from_secs(20), || unreachable!("present"));
        assert_eq!(again, a);
        assert_eq!(m.find(&1), Some(a));
        *m.get_mut(&1).unwrap() += 1;
        assert_eq!(m.at(a), Some(&102));
        assert_eq!(m.find(&2), None);
        // An insertion voids it (it may evict: the map holds 4).
        let b = m.entry_with(&2i64, Ts::from_secs(30), || 200u32);
        assert_eq!(m.at(a), None);
        assert_eq!(m.at_mut(a), None);
        assert_eq!(m.at(b), Some(&200));
        // So does a protection, which moves the entry to the other segment.
        m.protect(&1);
        assert_eq!(m.at(b), None);
        let a = m.find(&1).unwrap();
        assert_eq!(a.segment, Segment::Protected);
        assert_eq!(m.at(a), Some(&102));
        // Evictions: the handle of a dropped entry answers nothing, never another's value.
        let b = m.find(&2).unwrap();
        for k in 3..10i64 {
            m.entry_with(&k, Ts::from_secs(30 + k), || k as u32);
        }
        assert_eq!(m.get(&2), None, "evicted");
        assert_eq!(m.at(b), None);
        // And a purge.
        let last = m.find(&9).unwrap();
        m.retain_since(Ts::from_secs(0));
        assert_eq!(m.at(last), None);
        assert_eq!(m.at(m.find(&9).unwrap()), Some(&9));
        // A restored map's handles are its own.
        let bytes = crate::snapshot::encode(&m).unwrap();
        let r: BoundedMap<i64, u32> = crate::snapshot::decode(&bytes).unwrap();
        assert_eq!(r.at(r.find(&9).unwrap()), Some(&9));
    }

    #[test]
    fn newcomers_never_flush_protected_entries() {
        let mut m = BoundedMap::new(1_000);
        for i in 0..600i64 {
            m.get_or_insert_with(&i, Ts::from_secs(i), || 0u32);
            m.protect(&i);
        }
        // A flood of newer keys, each touched later than every protected entry.
        for i in 1_000..200_000i64 {
            m.get_or_insert_with(&i, Ts::from_secs(i), || 0u32);
        }
        assert!(m.len() <= 1_000);
        assert!((0..600).all(|i| m.segment(&i) == Some(Segment::Protected)));
        assert_eq!(m.evicted_protected(), 0);
        assert!(m.evicted() >= 199_000 - 400);
    }

    #[test]
    fn protected_entries_that_crowd_the_map_make_room_for_newcomers() {
        let mut m = BoundedMap::new(100);
        for i in 0..100i64 {
            m.get_or_insert_with(&i, Ts::from_secs(i), || 0u32);
            m.protect(&i);
        }
        m.get_or_insert_with(&1_000, Ts::from_secs(1_000), || 0u32);
        assert!(m.len() <= 100);
        assert_eq!(m.segment(&1_000), Some(Segment::Probation));
        assert!(m.evicted_protected() > 0);
        // The least recently touched went.
        assert!(m.get(&0).is_none() && m.get(&99).is_some());
    }
}
