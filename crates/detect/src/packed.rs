//! A short list of values kept as one compact byte string.
//!
//! Evidence samples (a HELO's sample is nine strings, a vector and an enum: 200 bytes of
//! struct and seven allocations) are written once, when seen, and read back only when an alert
//! is raised, which most entities never see. [`Packed`] keeps them as positional MessagePack in
//! one exactly sized allocation (about 130 bytes for a typical HELO sample) and decodes them on
//! demand. Only for types whose serde shape is positional-safe: no `skip_serializing_if`, no
//! flattening (a skipped field would shift the ones after it); the round trip is tested for
//! each type it holds. A snapshot holds a [`Packed`] as the plain sequence of its values, the
//! same bytes as the `Vec` it replaced (issue 12; docs/PERFORMANCE.md).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Values of `T`, packed (see the module docs).
pub struct Packed<T> {
    bytes: Box<[u8]>,
    len: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Default for Packed<T> {
    fn default() -> Self {
        Packed {
            bytes: Box::default(),
            len: 0,
            _t: PhantomData,
        }
    }
}

impl<T> Clone for Packed<T> {
    fn clone(&self) -> Self {
        Packed {
            bytes: self.bytes.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T> PartialEq for Packed<T> {
    fn eq(&self, o: &Self) -> bool {
        self.len == o.len && self.bytes == o.bytes
    }
}

impl<T> std::fmt::Debug for Packed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("len", &self.len)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Packed<T> {
    /// Values held.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of heap memory used.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Append one (re-allocates the byte string exactly: for short lists).
    pub fn push(&mut self, x: &T) {
        let mut v = std::mem::take(&mut self.bytes).into_vec();
        v.reserve_exact(64);
        rmp_serde::encode::write(&mut v, x).expect("serializing to memory does not fail");
        self.bytes = v.into_boxed_slice();
        self.len += 1;
    }

    /// Byte offset of value `i` (the end when `i` is the length): the values before it skipped.
    fn offset(&self, i: usize) -> usize {
        let mut rest: &[u8] = &self.bytes;
        for _ in 0..i.min(self.len()) {
            let mut de = rmp_serde::Deserializer::new(&mut rest);
            serde::de::IgnoredAny::deserialize(&mut de).expect("decodes: written by push");
        }
        self.bytes.len() - rest.len()
    }

    /// Put `x` before value `i` (at the end when `i` is the length; re-allocates exactly).
    pub fn insert(&mut self, i: usize, x: &T) {
        let at = self.offset(i);
        let mut one = Vec::new();
        rmp_serde::encode::write(&mut one, x).expect("serializing to memory does not fail");
        let mut v = Vec::with_capacity(self.bytes.len() + one.len());
        v.extend_from_slice(&self.bytes[..at]);
        v.extend_from_slice(&one);
        v.extend_from_slice(&self.bytes[at..]);
        self.bytes = v.into_boxed_slice();
        self.len += 1;
    }

    /// Take out value `i` and append `x`: what [`Packed::remove`] after [`Packed::push`] gives,
    /// with one walk to value `i` and one re-allocation instead of two of each. A rolling window
    /// of samples (`evidence::Samples`) does this for every record it keeps once full: done as
    /// two steps it was 9% of `analyze`'s CPU.
    pub fn remove_push(&mut self, i: usize, x: &T) {
        if i >= self.len() {
            return self.push(x);
        }
        let from = self.offset(i);
        let mut rest = &self.bytes[from..];
        let mut de = rmp_serde::Deserializer::new(&mut rest);
        serde::de::IgnoredAny::deserialize(&mut de).expect("decodes: written by push");
        let to = self.bytes.len() - rest.len();
        let mut one = Vec::new();
        rmp_serde::encode::write(&mut one, x).expect("serializing to memory does not fail");
        let mut v = Vec::with_capacity(self.bytes.len() - (to - from) + one.len());
        v.extend_from_slice(&self.bytes[..from]);
        v.extend_from_slice(&self.bytes[to..]);
        v.extend_from_slice(&one);
        self.bytes = v.into_boxed_slice();
    }

    /// Take out value `i` (nothing when there is none; re-allocates exactly).
    pub fn remove(&mut self, i: usize) {
        if i >= self.len() {
            return;
        }
        let (from, to) = (self.offset(i), self.offset(i + 1));
        let mut v = Vec::with_capacity(self.bytes.len() - (to - from));
        v.extend_from_slice(&self.bytes[..from]);
        v.extend_from_slice(&self.bytes[to..]);
        self.bytes = v.into_boxed_slice();
        self.len -= 1;
    }

    /// The values, decoded.
    pub fn to_vec(&self) -> Vec<T> {
        let mut de = rmp_serde::Deserializer::new(&self.bytes[..]);
        (0..self.len)
            .map(|_| T::deserialize(&mut de).expect("decodes: written by push"))
            .collect()
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for Packed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_vec().serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Packed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        let mut p = Packed::default();
        for x in &v {
            p.push(x);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct S {
        a: String,
        b: Option<String>,
        c: Vec<String>,
        d: u64,
    }

    fn s(i: u64) -> S {
        S {
            a: format!("a{i}"),
            b: i.is_multiple_of(2).then(|| "b".to_string()),
            c: (0..i % 3).map(|k| k.to_string()).collect(),
            d: i * 1_000_003,
        }
    }

    /// `remove_push` gives the bytes of `push` then `remove`, wherever the value taken out is
    /// (and appends when there is none to take).
    #[test]
    fn remove_push_is_push_then_remove() {
        for i in 0..6 {
            let mut a = Packed::default();
            for k in 0..6 {
                a.push(&s(k));
            }
            let mut b = a.clone();
            a.push(&s(99));
            a.remove(i);
            b.remove_push(i, &s(99));
            assert_eq!(a, b, "value {i}");
            assert_eq!(a.to_vec(), b.to_vec());
        }
        let mut c = Packed::default();
        c.remove_push(0, &s(1));
        assert_eq!(c.to_vec(), [s(1)]);
    }

    #[test]
    fn round_trips_and_snapshots_as_a_plain_sequence() {
        let mut p = Packed::default();
        let want: Vec<S> = (0..10).map(s).collect();
        for x in &want {
            p.push(x);
        }
        assert_eq!(p.len(), 10);
        assert_eq!(p.to_vec(), want);
        // The snapshot form is the Vec's.
        let packed = crate::snapshot::encode(&p).unwrap();
        let plain = crate::snapshot::encode(&want).unwrap();
        assert_eq!(packed, plain);
        let back: Packed<S> = crate::snapshot::decode(&plain).unwrap();
        assert_eq!(back.to_vec(), want);
    }

    #[test]
    fn inserts_and_removes_in_place() {
        let mut p = Packed::default();
        let mut want: Vec<S> = Vec::new();
        for i in 0..6 {
            p.push(&s(i));
            want.push(s(i));
        }
        p.insert(2, &s(100));
        want.insert(2, s(100));
        p.insert(7, &s(101));
        want.insert(7, s(101));
        p.remove(0);
        want.remove(0);
        p.remove(3);
        want.remove(3);
        p.remove(99);
        assert_eq!(p.len(), want.len());
        assert_eq!(p.to_vec(), want);
        let mut fresh = Packed::default();
        for x in &want {
            fresh.push(x);
        }
        assert_eq!(p, fresh);
    }
}
