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

use std::cell::RefCell;
use std::marker::PhantomData;

use rmp::Marker;
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
        self.push_as(x);
    }

    /// Append `x`, a value that serializes as a `T` does (a borrowed view of one, say: the
    /// caller's tests check the bytes are the same).
    pub fn push_as(&mut self, x: &impl Serialize) {
        with_encoded(x, |x| self.append_encoded(x));
    }

    /// Append a value encoded already ([`Encoded`]).
    pub fn push_encoded(&mut self, x: &Encoded<T>) {
        self.append_encoded(&x.bytes);
    }

    /// Append the value whose MessagePack encoding is `x`.
    fn append_encoded(&mut self, x: &[u8]) {
        self.bytes = joined(&[&self.bytes, x]);
        self.len += 1;
    }

    /// Byte offset of value `i` (the end when `i` is the length): the values before it skipped
    /// by their MessagePack markers ([`skip`]), without decoding them.
    fn offset(&self, i: usize) -> usize {
        skip(&self.bytes, 0, i.min(self.len())).expect("well formed: written by push")
    }

    /// Put `x` before value `i` (at the end when `i` is the length; re-allocates exactly).
    pub fn insert(&mut self, i: usize, x: &T) {
        self.insert_as(i, x);
    }

    /// [`Packed::insert`] of a value that serializes as a `T` does (see [`Packed::push_as`]).
    pub fn insert_as(&mut self, i: usize, x: &impl Serialize) {
        let at = self.offset(i);
        let b = &self.bytes;
        self.bytes = with_encoded(x, |x| joined(&[&b[..at], x, &b[at..]]));
        self.len += 1;
    }

    /// Take out value `i` and append `x`: what [`Packed::remove`] after [`Packed::push`] gives,
    /// with one walk to value `i` and one re-allocation instead of two of each. A rolling window
    /// of samples (`evidence::Samples`) does this for every record it keeps once full: done as
    /// two steps it was 9% of `analyze`'s CPU.
    pub fn remove_push(&mut self, i: usize, x: &T) {
        self.remove_push_as(i, x);
    }

    /// [`Packed::remove_push`] of a value that serializes as a `T` does (see
    /// [`Packed::push_as`]).
    pub fn remove_push_as(&mut self, i: usize, x: &impl Serialize) {
        with_encoded(x, |x| self.remove_append_encoded(i, x));
    }

    /// [`Packed::remove_push`] of a value encoded already ([`Encoded`]).
    pub fn remove_push_encoded(&mut self, i: usize, x: &Encoded<T>) {
        self.remove_append_encoded(i, &x.bytes);
    }

    /// Take out value `i` and append the value whose MessagePack encoding is `x`.
    fn remove_append_encoded(&mut self, i: usize, x: &[u8]) {
        if i >= self.len() {
            return self.append_encoded(x);
        }
        let from = self.offset(i);
        let to = skip(&self.bytes, from, 1).expect("well formed: written by push");
        let b = &self.bytes;
        self.bytes = joined(&[&b[..from], &b[to..], x]);
    }

    /// Take out value `i` (nothing when there is none; re-allocates exactly).
    pub fn remove(&mut self, i: usize) {
        if i >= self.len() {
            return;
        }
        let from = self.offset(i);
        let to = skip(&self.bytes, from, 1).expect("well formed: written by push");
        self.bytes = joined(&[&self.bytes[..from], &self.bytes[to..]]);
        self.len -= 1;
    }

    /// `f` of every value in order, each decoded as `V`: a view of a `T` that borrows its
    /// strings from the packed bytes (a `T` with `&str` fields, say, or some fields read as
    /// `serde::de::IgnoredAny`). What [`Packed::to_vec`] decodes, without a `String` made.
    pub fn for_each_borrowed<'a, V: Deserialize<'a>>(&'a self, mut f: impl FnMut(V)) {
        let mut de = rmp_serde::Deserializer::from_read_ref(&self.bytes[..]);
        for _ in 0..self.len {
            f(V::deserialize(&mut de).expect("decodes: written by push"));
        }
    }

    /// The values, decoded.
    pub fn to_vec(&self) -> Vec<T> {
        let mut de = rmp_serde::Deserializer::new(&self.bytes[..]);
        (0..self.len)
            .map(|_| T::deserialize(&mut de).expect("decodes: written by push"))
            .collect()
    }
}

/// One value's MessagePack encoding as a [`Packed<T>`] holds it, made once to go into several
/// lists ([`Packed::push_encoded`]): a failing message's sample goes into its entity's samples
/// and, for a client or account relaying for several senders, its sender's and its sender
/// domain's, and encoding it was most of a push.
pub struct Encoded<T> {
    bytes: Box<[u8]>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Encoded<T> {
    /// The encoding of `x`, a value that serializes as a `T` does (see [`Packed::push_as`]).
    pub fn of(x: &impl Serialize) -> Self {
        Encoded {
            bytes: with_encoded(x, |b| Box::from(b)),
            _t: PhantomData,
        }
    }
}

thread_local! {
    /// This thread's buffer for a value's encoding before it joins a byte string.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `f` of `x`'s MessagePack encoding, written into this thread's buffer ([`ENCODED`]; a new
/// one in the unlikely case that `x`'s serialization packs a value itself).
///
/// A byte string used to be grown in place with the value written onto its end: a vector
/// with 64 bytes to spare, grown again when the value was longer (a sample with its
/// recipients mostly is) and shrunk to fit after, up to three allocations and copies of the
/// whole string per value. Encoded apart first, the value's length is known and the new
/// string is allocated once, exactly ([`joined`]).
fn with_encoded<R>(x: &impl Serialize, f: impl FnOnce(&[u8]) -> R) -> R {
    let encode = |buf: &mut Vec<u8>| {
        buf.clear();
        rmp_serde::encode::write(buf, x).expect("serializing to memory does not fail");
    };
    ENCODED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            encode(&mut buf);
            f(&buf)
        }
        Err(_) => {
            let mut own = Vec::new();
            encode(&mut own);
            f(&own)
        }
    })
}

/// `parts` one after the other, in one exactly sized allocation.
fn joined(parts: &[&[u8]]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    v.into_boxed_slice()
}

/// The offset just past `values` whole MessagePack values that start at `at` in `b` (`None`
/// when `b` ends inside one or holds the reserved marker).
///
/// Finding the `i`-th sample used to decode the ones before it with serde's `IgnoredAny`, which
/// checks every string's UTF-8 and goes through the deserializer per value: 3.4% of `analyze`'s
/// CPU (profile of 2026-12-03 14:05 UTC, docs/PERFORMANCE.md). A value's length is in its
/// marker and the length field after it (the MessagePack specification's formats), so the walk
/// only reads those; a container adds its items (a map two per entry) to the values left.
/// Written here rather than taken from a crate: `rmp` gives the markers but no skip.
fn skip(b: &[u8], mut at: usize, mut values: usize) -> Option<usize> {
    while values > 0 {
        values -= 1;
        let marker = Marker::from_u8(*b.get(at)?);
        at += 1;
        // Bytes of payload after the marker and its length field, and values it contains.
        let (payload, items) = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (usize::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (length(b, &mut at, 1)?, 0),
            Marker::Str16 | Marker::Bin16 => (length(b, &mut at, 2)?, 0),
            Marker::Str32 | Marker::Bin32 => (length(b, &mut at, 4)?, 0),
            Marker::FixArray(n) => (0, usize::from(n)),
            Marker::Array16 => (0, length(b, &mut at, 2)?),
            Marker::Array32 => (0, length(b, &mut at, 4)?),
            Marker::FixMap(n) => (0, 2 * usize::from(n)),
            Marker::Map16 => (0, 2 * length(b, &mut at, 2)?),
            Marker::Map32 => (0, 2usize.checked_mul(length(b, &mut at, 4)?)?),
            // An extension's type byte, then its data.
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (length(b, &mut at, 1)? + 1, 0),
            Marker::Ext16 => (length(b, &mut at, 2)? + 1, 0),
            Marker::Ext32 => (length(b, &mut at, 4)?.checked_add(1)?, 0),
            Marker::Reserved => return None,
        };
        at = at.checked_add(payload)?;
        values = values.checked_add(items)?;
    }
    (at <= b.len()).then_some(at)
}

/// A big-endian length field of `n` bytes at `*at`, which moves past it.
fn length(b: &[u8], at: &mut usize, n: usize) -> Option<usize> {
    let field = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(field.iter().fold(0, |v, &x| (v << 8) | usize::from(x)))
}

impl<T> Packed<T> {
    /// Serialize as its count and its bytes as they are: how a packed per-entity state holds
    /// it ([`crate::cold`], while [`crate::cold::packing`]), without decoding a value.
    pub fn serialize_raw<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.len, RawBytes(&self.bytes)).serialize(s)
    }

    /// Read what [`Packed::serialize_raw`] wrote (refused unless the bytes hold exactly
    /// that many values).
    pub fn deserialize_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (len, RawBuf(bytes)) = <(u32, RawBuf)>::deserialize(d)?;
        if skip(&bytes, 0, len as usize) != Some(bytes.len()) {
            return Err(serde::de::Error::custom(
                "packed values: the count does not match the bytes",
            ));
        }
        Ok(Packed {
            bytes,
            len,
            _t: PhantomData,
        })
    }
}

/// Bytes serialized as a byte string (MessagePack `bin`), not as a list of integers.
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A byte string read back.
struct RawBuf(Box<[u8]>);

impl<'de> Deserialize<'de> for RawBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<RawBuf, E> {
                Ok(RawBuf(Box::from(b)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<RawBuf, E> {
                Ok(RawBuf(b.into_boxed_slice()))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for Packed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if crate::cold::packing() {
            return self.serialize_raw(s);
        }
        self.to_vec().serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Packed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if crate::cold::packing() {
            return Packed::deserialize_raw(d);
        }
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

    /// One value of every MessagePack format (the specification's list), nested too.
    fn every_format() -> Vec<Vec<u8>> {
        use rmp::encode as e;
        let mut out = Vec::new();
        let mut one = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            out.push(v);
        };
        one(&|v| e::write_nil(v).unwrap());
        one(&|v| e::write_bool(v, true).unwrap());
        for x in [
            0u64,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as u64 + 1,
        ] {
            one(&|v| {
                e::write_uint(v, x).unwrap();
            });
        }
        for x in [-1i64, -32, -33, -128, -129, -32_768, -32_769, i64::MIN] {
            one(&|v| {
                e::write_sint(v, x).unwrap();
            });
        }
        one(&|v| e::write_f32(v, 1.5).unwrap());
        one(&|v| e::write_f64(v, -2.25).unwrap());
        for n in [0usize, 31, 32, 255, 256, 65_535, 65_536] {
            let text = "é".repeat(n / 2) + &"x".repeat(n % 2);
            one(&|v| e::write_str(v, &text).unwrap());
            let bytes = vec![0xc1u8; n];
            one(&|v| e::write_bin(v, &bytes).unwrap());
        }
        for n in [1u32, 2, 4, 8, 16, 0, 3, 300, 70_000] {
            one(&|v| {
                e::write_ext_meta(v, n, 7).unwrap();
                v.extend(std::iter::repeat_n(0xffu8, n as usize));
            });
        }
        for n in [0u32, 15, 16, 65_536] {
            one(&|v| {
                e::write_array_len(v, n).unwrap();
                for i in 0..n {
                    e::write_uint(v, u64::from(i)).unwrap();
                }
            });
            one(&|v| {
                e::write_map_len(v, n).unwrap();
                for i in 0..n {
                    e::write_str(v, "k").unwrap();
                    e::write_array_len(v, 2).unwrap();
                    e::write_nil(v).unwrap();
                    e::write_uint(v, u64::from(i)).unwrap();
                }
            });
        }
        out
    }

    /// `skip` ends each value where decoding it ends, alone and after others, and finds a cut
    /// value or the reserved marker ill formed rather than reading past the end.
    #[test]
    fn skip_ends_values_where_decoding_does() {
        let values = every_format();
        let mut all = Vec::new();
        for v in &values {
            let mut rest = &v[..];
            let mut de = rmp_serde::Deserializer::new(&mut rest);
            serde::de::IgnoredAny::deserialize(&mut de).unwrap();
            assert!(
                rest.is_empty(),
                "decoding ends at the value's end: {:x?}",
                &v[..1]
            );
            assert_eq!(skip(v, 0, 1), Some(v.len()), "marker {:x?}", &v[..1]);
            for cut in [0, 1, v.len() / 2, v.len() - 1] {
                if cut < v.len() {
                    assert_eq!(skip(&v[..cut], 0, 1), None, "{:x?} cut at {cut}", &v[..1]);
                }
            }
            all.extend_from_slice(v);
        }
        let mut at = 0;
        for (i, v) in values.iter().enumerate() {
            assert_eq!(skip(&all, 0, i), Some(at));
            at += v.len();
            assert_eq!(skip(&all, at - v.len(), 1), Some(at));
        }
        assert_eq!(skip(&all, 0, values.len()), Some(all.len()));
        assert_eq!(skip(&[0xc1], 0, 1), None);
        assert_eq!(skip(&[0xdd, 0xff, 0xff, 0xff, 0xff], 0, 1), None);
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

    #[test]
    fn raw_form_round_trips_and_checks_its_count() {
        let mut p: Packed<String> = Packed::default();
        p.push(&"a".to_string());
        p.push(&"ÿy".to_string());
        let mut buf = Vec::new();
        p.serialize_raw(&mut rmp_serde::Serializer::new(&mut buf))
            .unwrap();
        let back =
            Packed::<String>::deserialize_raw(&mut rmp_serde::Deserializer::new(&buf[..])).unwrap();
        assert_eq!(back, p);
        let mut bad = Vec::new();
        (3u32, RawBytes(&p.bytes))
            .serialize(&mut rmp_serde::Serializer::new(&mut bad))
            .unwrap();
        assert!(
            Packed::<String>::deserialize_raw(&mut rmp_serde::Deserializer::new(&bad[..])).is_err()
        );
    }
}
