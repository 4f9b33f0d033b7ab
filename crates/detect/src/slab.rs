//! A hash map whose table holds 4-byte slot numbers and whose entries sit in a dense vector.
//!
//! The detectors' per-entity maps hold hundreds of thousands of entries. A `HashMap` stores each
//! entry in its table, and a table is a power of two at most 7/8 full, so at 500,000 entries
//! (the default `max_entities`) it has 1,048,576 slots of key + touch time + state pointer, 48
//! to 56 bytes each: about 100 bytes per entry, half of them empty. A [`SlabMap`] keeps the
//! table to slot numbers (`u32`: 5 bytes a slot with hashbrown's control byte) and the entries
//! in a vector that grows by doubling from the entries actually held and reuses the places of
//! removed ones (a free list): about 60 bytes per entry at 500,000 (docs/PERFORMANCE.md,
//! "Memory per tracked account"). The same design as `indexmap`, whose entry vector follows the
//! table's capacity and so keeps the empty half; without its order, which nothing here needs.
//!
//! Iteration is in slot order, which depends only on the sequence of inserts and removals (a
//! function of the event stream, like the fixed-seed hash order it replaces). A snapshot holds
//! the map as a plain MessagePack map, as a `HashMap` wrote it.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use hashbrown::HashTable;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// See the module docs.
pub struct SlabMap<K, V> {
    /// Slot numbers, hashed by their entry's key.
    index: HashTable<u32>,
    /// Entries by slot number; `None` for a removed one, listed in `free`.
    slots: Vec<Option<(K, V)>>,
    /// Slot numbers of removed entries, reused first.
    free: Vec<u32>,
}

fn hash<Q: Hash + ?Sized>(k: &Q) -> u64 {
    maillog::hash::State::default().hash_one(k)
}

/// A key's hash as every [`SlabMap`] computes it, for a caller that looks one key up in more
/// than one map ([`crate::bounded::BoundedMap`]'s two segments) and so hashes it once: the
/// `*_hashed` methods take it. A key and what it borrows as hash the same (`Borrow`'s
/// contract), so an owned key's hash is its borrowed form's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(u64);

impl KeyHash {
    /// The hash of `k`.
    pub fn of<Q: Hash + ?Sized>(k: &Q) -> Self {
        KeyHash(hash(k))
    }
}

impl<K, V> Default for SlabMap<K, V> {
    fn default() -> Self {
        SlabMap {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K, V> SlabMap<K, V> {
    /// Entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Entries, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }

    /// Values, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten().map(|(_, v)| v)
    }

    /// Values for writing, in slot order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().flatten().map(|(_, v)| v)
    }

    /// Entries, their values for writing, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.slots.iter_mut().flatten().map(|(k, v)| (&*k, v))
    }
}

impl<K: Hash + Eq, V> SlabMap<K, V> {
    /// The slot of `k`: stable until `k` is removed, for [`SlabMap::at_mut`] (one look-up
    /// where "is it there?" and "give it to me" would take two).
    pub fn slot<Q>(&self, k: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.index.is_empty() {
            return None; // no hash to compute
        }
        self.slot_hashed(k, KeyHash::of(k))
    }

    /// [`SlabMap::slot`] of `k`, whose hash `h` is (`KeyHash::of(k)`).
    pub fn slot_hashed<Q>(&self, k: &Q, h: KeyHash) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slots = &self.slots;
        self.index
            .find(h.0, |&i| Self::key_is(slots, i, k))
            .copied()
    }

    /// The value in `slot` (from [`SlabMap::slot`] or [`SlabMap::insert_new`]).
    pub fn at(&self, slot: u32) -> &V {
        &self.slots[slot as usize]
            .as_ref()
            .expect("a slot handed out holds its entry until removed")
            .1
    }

    /// The value in `slot` (from [`SlabMap::slot`] or [`SlabMap::insert_new`]), for writing.
    pub fn at_mut(&mut self, slot: u32) -> &mut V {
        &mut self.slots[slot as usize]
            .as_mut()
            .expect("a slot handed out holds its entry until removed")
            .1
    }

    fn key_is<Q>(slots: &[Option<(K, V)>], i: u32, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        slots[i as usize]
            .as_ref()
            .is_some_and(|(key, _)| key.borrow() == k)
    }

    /// Whether `k` is present.
    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.slot(k).is_some()
    }

    /// The value of `k`.
    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.slot(k)?;
        self.slots[i as usize].as_ref().map(|(_, v)| v)
    }

    /// The value of `k`, for writing.
    pub fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.slot(k)?;
        self.slots[i as usize].as_mut().map(|(_, v)| v)
    }

    /// Set `k` to `v` (replacing its value when present).
    pub fn insert(&mut self, k: K, v: V) {
        match self.slot(&k) {
            Some(i) => *self.at_mut(i) = v,
            None => {
                self.insert_new(k, v);
            }
        }
    }

    /// Add `k`, which the caller knows is absent, with `v`; its slot.
    pub fn insert_new(&mut self, k: K, v: V) -> u32 {
        let h = KeyHash::of(&k);
        self.insert_new_hashed(k, v, h)
    }

    /// [`SlabMap::insert_new`] of `k`, whose hash `h` is (`KeyHash::of(&k)`).
    pub fn insert_new_hashed(&mut self, k: K, v: V, h: KeyHash) -> u32 {
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some((k, v));
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 entries");
                self.slots.push(Some((k, v)));
                i
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(h.0, i, |&j| {
            hash(
                &slots[j as usize]
                    .as_ref()
                    .expect("indexed slots hold entries")
                    .0,
            )
        });
        i
    }

    /// Remove `k`, returning its key and value.
    pub fn remove_entry<Q>(&mut self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_entry_hashed(k, KeyHash::of(k))
    }

    /// [`SlabMap::remove_entry`] of `k`, whose hash `h` is (`KeyHash::of(k)`).
    pub fn remove_entry_hashed<Q>(&mut self, k: &Q, h: KeyHash) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(h.0, |&i| Self::key_is(slots, i, k))
            .ok()?;
        let (i, _) = entry.remove();
        self.free.push(i);
        self.slots[i as usize].take()
    }

    /// Keep the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let (slots, free) = (&mut self.slots, &mut self.free);
        self.index.retain(|&mut i| {
            let slot = &mut slots[i as usize];
            let kept = slot.as_mut().is_some_and(|(k, v)| keep(k, v));
            if !kept {
                *slot = None;
                free.push(i);
            }
            kept
        });
        if self.index.is_empty() {
            self.slots.clear();
            self.free.clear();
        }
    }
}

impl<K: Clone, V: Clone> Clone for SlabMap<K, V> {
    fn clone(&self) -> Self {
        SlabMap {
            index: self.index.clone(),
            slots: self.slots.clone(),
            free: self.free.clone(),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SlabMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for SlabMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, K: Deserialize<'de> + Hash + Eq, V: Deserialize<'de>> Deserialize<'de> for SlabMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de> + Hash + Eq, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = SlabMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = SlabMap::default();
                while let Some((k, v)) = a.next_entry()? {
                    m.insert(k, v);
                }
                Ok(m)
            }
        }
        d.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against `std`'s map, through inserts, replacements, removals and retains.
    #[test]
    fn behaves_as_a_hash_map() {
        let mut s: SlabMap<String, u64> = SlabMap::default();
        let mut m = std::collections::HashMap::new();
        let mut x = 12_345u64;
        for step in 0..20_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let k = format!("k{}", (x >> 33) % 700);
            match (x >> 20) % 5 {
                0 | 1 => {
                    s.insert(k.clone(), step);
                    m.insert(k.clone(), step);
                }
                2 => assert_eq!(s.remove_entry(k.as_str()), m.remove_entry(&k)),
                3 => {
                    if let Some(v) = s.get_mut(k.as_str()) {
                        *v += 1;
                    }
                    if let Some(v) = m.get_mut(&k) {
                        *v += 1;
                    }
                }
                _ if step % 97 == 0 => {
                    s.retain(|_, v| *v % 3 != 0);
                    m.retain(|_, v| *v % 3 != 0);
                }
                _ => assert_eq!(s.get(k.as_str()), m.get(&k)),
            }
            assert_eq!(s.len(), m.len());
            assert_eq!(s.contains_key(k.as_str()), m.contains_key(&k));
        }
        let mut a: Vec<_> = s.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut b: Vec<_> = m.into_iter().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(s.slots.len() <= 700 + 1, "removed places are reused");
    }

    /// A key hashed once finds, inserts and removes what the same key hashed by each call
    /// does, in either of two maps: an owned key and its borrowed form hash the same.
    #[test]
    fn a_key_hashed_once_serves_every_map() {
        let (mut a, mut b): (SlabMap<String, u32>, SlabMap<String, u32>) = Default::default();
        for i in 0..100u32 {
            let k = format!("account{i}@example.org");
            let h = KeyHash::of(k.as_str());
            assert_eq!(h, KeyHash::of(&k));
            let map = if i % 2 == 0 { &mut a } else { &mut b };
            let slot = map.insert_new_hashed(k.clone(), i, h);
            assert_eq!(map.slot(k.as_str()), Some(slot));
        }
        for i in 0..100u32 {
            let k = format!("account{i}@example.org");
            let h = KeyHash::of(k.as_str());
            let (has, lacks) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            assert_eq!(has.slot_hashed(k.as_str(), h), has.slot(k.as_str()));
            assert_eq!(has.get(k.as_str()), Some(&i));
            assert_eq!(lacks.slot_hashed(k.as_str(), h), None);
        }
        let h = KeyHash::of("account7@example.org");
        assert_eq!(
            b.remove_entry_hashed("account7@example.org", h),
            Some(("account7@example.org".to_string(), 7))
        );
        assert_eq!(b.slot_hashed("account7@example.org", h), None);
        assert_eq!(a.remove_entry_hashed("account7@example.org", h), None);
    }
    /// A snapshot holds a plain map: what a `HashMap` wrote reads back, and the other way.
    #[test]
    fn serializes_as_a_plain_map() {
        let mut s: SlabMap<String, (i64, u8)> = SlabMap::default();
        for i in 0..50 {
            s.insert(format!("a{i}"), (i, i as u8));
        }
        s.remove_entry("a7");
        let bytes = rmp_serde::to_vec_named(&s).unwrap();
        let m: std::collections::HashMap<String, (i64, u8)> =
            rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(m.len(), 49);
        assert_eq!(m["a9"], (9, 9));
        let back: SlabMap<String, (i64, u8)> =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&m).unwrap()).unwrap();
        assert_eq!(back.len(), 49);
        assert_eq!(back.get("a49"), Some(&(49, 49)));
        assert!(back.get("a7").is_none());
    }
}
