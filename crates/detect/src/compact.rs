//! Growing per-entity collections without their standard minimum capacity.
//!
//! `Vec` and `VecDeque` grow to a capacity of at least 4 on their first push and double after:
//! a detector keeping two addresses of an account in a 72-byte struct paid for four. An ISP's
//! state is mostly accounts with one to three of everything, so the pushes here grow exactly
//! (one more slot) while a collection is small, and double as usual past [`SMALL`], which keeps
//! the cost of a long collection's pushes amortized constant (issue 12; docs/PERFORMANCE.md,
//! "Memory per tracked account").

use std::collections::VecDeque;

use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Serialize};

/// Length up to which a collection grows one slot at a time.
pub const SMALL: usize = 8;

/// `v.push(x)`, growing exactly while `v` is short.
pub fn push<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() && v.len() < SMALL {
        v.reserve_exact(1);
    }
    v.push(x);
}

/// `d.push_back(x)`, growing exactly while `d` is short.
pub fn push_back<T>(d: &mut VecDeque<T>, x: T) {
    if d.len() == d.capacity() && d.len() < SMALL {
        d.reserve_exact(1);
    }
    d.push_back(x);
}

/// A part of an entity's state that most entities never use, absent (one null pointer) until
/// it is first written. Serialized as the part itself (its default when absent), so snapshots
/// hold the same bytes as when the part was inline; one that equals the default is read back as
/// absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rare<T>(Option<Box<T>>);

impl<T: Default> Rare<T> {
    /// The part, if it was ever written.
    pub fn get(&self) -> Option<&T> {
        self.0.as_deref()
    }

    /// The part, if it was ever written, for writing.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    /// The part for writing, made (default) on first use.
    pub fn get_or_default(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }

    /// Make it absent again.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Put `x` (absent again when it is the default).
    pub fn set(&mut self, x: T)
    where
        T: PartialEq,
    {
        self.0 = (x != T::default()).then(|| Box::new(x));
    }
}

impl<T: Default + Serialize> Serialize for Rare<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(x) => x.serialize(s),
            None => T::default().serialize(s),
        }
    }
}

impl<'de, T: Default + PartialEq + Deserialize<'de>> Deserialize<'de> for Rare<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut r = Rare(None);
        r.set(T::deserialize(d)?);
        Ok(r)
    }
}

/// Separator of the strings in a [`RecentStrings`]: a log line's field never holds a newline
/// (lines are split on it), nor does a policy request's (one attribute per line).
const RECENT_SEP: char = '\n';
/// [`RECENT_SEP`] as the byte it is in UTF-8 (ASCII: it occurs in no multi-byte character).
const RECENT_SEP_BYTE: u8 = b'\n';

/// The latest few short strings (addresses), in one string, each followed by [`RECENT_SEP`]: a
/// ring of `String`s costs 24 bytes of struct per string, a slot of the ring's table, and an
/// allocation each. Serialized as the sequence of the strings, the same bytes as the
/// `VecDeque<String>` it replaced. The number held is kept beside them: counting the
/// separators at every push was about 190 instructions (docs/PERFORMANCE.md, "Steps of
/// 2026-12-07, afternoon").
#[derive(Debug, Clone, Default)]
pub struct RecentStrings {
    /// The strings, each followed by [`RECENT_SEP`].
    text: String,
    /// How many: the separators in `text`.
    held: u32,
}

impl RecentStrings {
    /// Strings held.
    pub fn len(&self) -> usize {
        self.held as usize
    }

    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Bytes of heap memory used.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
    }

    /// Append `x`, dropping the oldest while more than `keep` would be held. A separator in `x`
    /// (which no log field holds) is replaced by a space, so the count stays right.
    ///
    /// Called for every recipient an account sends to: the oldest go in one cut, and `x` is
    /// copied whole unless it holds a separator.
    pub fn push(&mut self, x: &str, keep: usize) {
        let keep = keep.clamp(1, u32::MAX as usize);
        let held = self.len();
        if held >= keep {
            // Cut after the (held - keep + 1)-th separator: `keep - 1` strings stay.
            let drop = held - keep + 1;
            let end = memchr::memchr_iter(RECENT_SEP_BYTE, self.text.as_bytes())
                .nth(drop - 1)
                .map_or(self.text.len(), |i| i + 1);
            self.text.drain(..end);
            self.held = (keep - 1) as u32;
        }
        let need = self.text.len() + x.len() + RECENT_SEP.len_utf8();
        if need > self.text.capacity() {
            // Exactly while the ring fills (a handful of addresses per entity, most never
            // filling it); once full, with room to spare, so that a longer string than the one
            // dropped does not reallocate at every push.
            let more = need - self.text.len();
            if held >= keep {
                self.text.reserve(more);
            } else {
                self.text.reserve_exact(more);
            }
        }
        if maillog::bytes::find_byte(x.as_bytes(), RECENT_SEP_BYTE).is_some() {
            self.text
                .extend(x.chars().map(|c| if c == RECENT_SEP { ' ' } else { c }));
        } else {
            self.text.push_str(x);
        }
        self.text.push(RECENT_SEP);
        self.held += 1;
    }

    /// The strings, oldest first: each ends at its separator, found with `memchr` (what
    /// `split_terminator` returns, without its character searcher: about 170 instructions a
    /// state when a state is packed).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let s = self.text.as_str();
        let mut start = 0;
        memchr::memchr_iter(RECENT_SEP_BYTE, s.as_bytes()).map(move |end| {
            let x = &s[start..end];
            start = end + 1;
            x
        })
    }
}

impl Serialize for RecentStrings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The length first: a format without a list end (postcard, packed states) needs it.
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for x in self.iter() {
            seq.serialize_element(x)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for RecentStrings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        let mut r = RecentStrings::default();
        for x in &v {
            r.push(x, v.len());
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_is_absent_until_written_and_snapshots_as_the_part() {
        let mut r: Rare<Vec<u32>> = Rare::default();
        assert!(r.get().is_none());
        assert_eq!(
            crate::snapshot::encode(&r).unwrap(),
            crate::snapshot::encode(&Vec::<u32>::new()).unwrap()
        );
        r.get_or_default().push(7);
        assert_eq!(r.get(), Some(&vec![7]));
        let bytes = crate::snapshot::encode(&r).unwrap();
        assert_eq!(bytes, crate::snapshot::encode(&vec![7u32]).unwrap());
        let back: Rare<Vec<u32>> = crate::snapshot::decode(&bytes).unwrap();
        assert_eq!(back.get(), Some(&vec![7]));
        let empty: Rare<Vec<u32>> =
            crate::snapshot::decode(&crate::snapshot::encode(&Vec::<u32>::new()).unwrap()).unwrap();
        assert!(empty.get().is_none());
    }

    #[test]
    fn recent_strings_keep_the_latest_and_snapshot_as_a_sequence() {
        let mut r = RecentStrings::default();
        assert!(r.is_empty());
        for x in ["a@x", "", "b@y", "c@z"] {
            r.push(x, 3);
        }
        assert_eq!(r.iter().collect::<Vec<_>>(), ["", "b@y", "c@z"]);
        assert_eq!(r.len(), 3);
        let want: std::collections::VecDeque<String> =
            ["", "b@y", "c@z"].iter().map(|s| s.to_string()).collect();
        let bytes = crate::snapshot::encode(&r).unwrap();
        assert_eq!(bytes, crate::snapshot::encode(&want).unwrap());
        let back: RecentStrings = crate::snapshot::decode(&bytes).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), ["", "b@y", "c@z"]);
        r.push("new\nline", 3);
        assert_eq!(r.iter().last(), Some("new line"));
        assert_eq!(r.len(), 3);
        // A smaller `keep` drops every string beyond it at once.
        r.push("d@w", 2);
        assert_eq!(r.iter().collect::<Vec<_>>(), ["new line", "d@w"]);
        r.push("e@v", 1);
        assert_eq!(r.iter().collect::<Vec<_>>(), ["e@v"]);
        // The count kept is the separators counted, through fills, cuts and longer strings.
        let mut r = RecentStrings::default();
        for i in 0..100 {
            let x = "r".repeat(i % 37) + "@example.org";
            r.push(&x, 8);
            assert_eq!(r.len(), r.iter().count());
            assert_eq!(r.len(), (i + 1).min(8));
            assert_eq!(r.iter().last(), Some(x.as_str()));
        }
    }

    #[test]
    fn grows_exactly_while_small_then_doubles() {
        let mut v = Vec::new();
        let mut d = VecDeque::new();
        for i in 0..SMALL {
            push(&mut v, i as u64);
            push_back(&mut d, i as u64);
            assert_eq!(v.capacity(), i + 1);
            assert_eq!(d.capacity(), i + 1);
        }
        for i in SMALL..100 {
            push(&mut v, i as u64);
            push_back(&mut d, i as u64);
        }
        assert!(v.capacity() >= 100 && v.capacity() < 200);
        assert!(d.capacity() >= 100 && d.capacity() < 200);
        assert_eq!(v, (0..100).collect::<Vec<u64>>());
        assert_eq!(
            d.iter().copied().collect::<Vec<_>>(),
            (0..100).collect::<Vec<u64>>()
        );
    }
}
