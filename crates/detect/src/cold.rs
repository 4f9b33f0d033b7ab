//! Per-entity state that is packed while its entity is quiet.
//!
//! An ISP's accounts are mostly quiet: one sends three messages a day, and between them its
//! detector state — windows, the day's hours and addresses, a baseline — sits in memory as live
//! structs, vectors and boxes (auth-hijack's account: about 600 bytes in six allocations). A
//! [`Cold`] holds such a state either **live** (`Hot`) or **packed** (`Frozen`): one exactly
//! sized byte string of positional MessagePack (about 270 bytes for that account), written when
//! the owner's sweep finds the entity idle (`[detect.limits] pack_idle_after`, default
//! [`FREEZE_AFTER_SECS`]) and decoded back the next
//! time the entity is written to. Nothing is lost either way: the packed form is the state's
//! whole serde form, so a state thawed is the state frozen (tested per type by re-encoding), and
//! detection cannot tell the difference — only memory and a decode per thaw can (issue 12;
//! docs/PERFORMANCE.md, "Memory per tracked account").
//!
//! Only for types whose serde shape is positional-safe (no `skip_serializing_if`, no
//! flattening: a skipped field would shift the ones after it). A snapshot holds a `Cold` as the
//! state itself, frozen or not, so snapshots are unchanged.

use std::cell::Cell;
use std::hash::Hash;
use std::ops::Deref;

use maillog::Ts;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bounded::BoundedMap;

/// Default of `[detect.limits] pack_idle_after`: the event time an entity must have been idle
/// for before its state is packed. One hour, the driver's sweep period, so an entity active
/// within the hour stays live and most of the decodes are of entities back after a quiet hour.
/// Our own choice; the packed state is exactly the live one, so this trades only CPU against
/// memory.
pub const FREEZE_AFTER_SECS: i64 = 3_600;

thread_local! {
    /// Set while this thread encodes or decodes a packed state.
    static PACKING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the value being serialized or deserialized on this thread is part of a packed
/// state (not of a snapshot): parts kept packed already ([`crate::packed::Packed`]) then write
/// their bytes as they are instead of their values, which a snapshot holds.
pub fn packing() -> bool {
    PACKING.with(Cell::get)
}

/// Run `f` with [`packing`] true (as it was again afterwards, even if `f` panics).
fn while_packing<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            PACKING.with(|p| p.set(self.0));
        }
    }
    let _reset = Reset(PACKING.with(|p| p.replace(true)));
    f()
}

/// A state, live or packed (see the module docs).
pub enum Cold<T> {
    /// Live, for reading and writing.
    Hot(Box<T>),
    /// Packed: positional MessagePack of the state.
    Frozen(Box<[u8]>),
}

/// A state read through [`Cold::view`]: borrowed when live, decoded when packed.
pub enum View<'a, T> {
    /// The live state.
    Live(&'a T),
    /// A decoded copy of a packed state.
    Decoded(Box<T>),
}

impl<T> Deref for View<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            View::Live(t) => t,
            View::Decoded(t) => t,
        }
    }
}

impl<T: Default> Default for Cold<T> {
    fn default() -> Self {
        Cold::Hot(Box::default())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Cold<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cold::Hot(t) => t.fmt(f),
            Cold::Frozen(b) => f.debug_struct("Frozen").field("bytes", &b.len()).finish(),
        }
    }
}

/// Decode a packed state. The bytes are our own encoding of a `T` (never input), so a failure
/// is a bug in `T`'s serde shape, which the per-type round-trip tests rule out.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Box<T> {
    while_packing(|| {
        Box::new(rmp_serde::from_slice(bytes).expect("a packed state decodes (tested per type)"))
    })
}

impl<T: Serialize + DeserializeOwned> Cold<T> {
    /// A live state.
    pub fn new(t: T) -> Self {
        Cold::Hot(Box::new(t))
    }

    /// The state for writing, decoded first when packed.
    pub fn thaw(&mut self) -> &mut T {
        if let Cold::Frozen(b) = self {
            *self = Cold::Hot(decode(b));
        }
        match self {
            Cold::Hot(t) => t,
            Cold::Frozen(_) => unreachable!("thawed just above"),
        }
    }

    /// The state for reading, decoded into a copy when packed (it stays packed).
    pub fn view(&self) -> View<'_, T> {
        match self {
            Cold::Hot(t) => View::Live(t),
            Cold::Frozen(b) => View::Decoded(decode(b)),
        }
    }

    /// Pack a live state (no-op when packed already).
    pub fn freeze(&mut self) {
        self.freeze_with(&mut Vec::new());
    }

    /// [`Cold::freeze`], encoding in `scratch` (reused across calls: the packed form is then
    /// one exactly sized copy, not a vector grown and shrunk per state).
    pub fn freeze_with(&mut self, scratch: &mut Vec<u8>) {
        if let Cold::Hot(t) = self {
            scratch.clear();
            while_packing(|| rmp_serde::encode::write(scratch, &**t))
                .expect("serializing to memory does not fail");
            *self = Cold::Frozen(Box::from(&scratch[..]));
        }
    }

    /// Whether the state is packed.
    pub fn is_frozen(&self) -> bool {
        matches!(self, Cold::Frozen(_))
    }

    /// Bytes of the packed form, when packed.
    pub fn frozen_bytes(&self) -> Option<usize> {
        match self {
            Cold::Hot(_) => None,
            Cold::Frozen(b) => Some(b.len()),
        }
    }
}

impl<K: Hash + Eq + Clone, T: Serialize + DeserializeOwned> BoundedMap<K, Cold<T>> {
    /// Pack the states not touched since `before` (one encoding buffer for them all).
    pub fn freeze_idle(&mut self, before: Ts) {
        let mut scratch = Vec::new();
        self.for_each_idle(before, |c| c.freeze_with(&mut scratch));
    }

    /// States packed now (walks the map).
    pub fn frozen(&self) -> usize {
        self.iter().filter(|(_, c)| c.is_frozen()).count()
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for Cold<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Cold<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|t| Cold::Hot(Box::new(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct S {
        a: u64,
        b: Vec<String>,
        c: Option<i32>,
    }

    #[test]
    fn a_frozen_state_thaws_to_itself_and_snapshots_the_same() {
        let s = S {
            a: 7,
            b: vec!["x".into(), "ÿ".into()],
            c: Some(-3),
        };
        let mut c = Cold::new(S {
            b: s.b.clone(),
            ..s
        });
        let live = rmp_serde::to_vec_named(&c).unwrap();
        c.freeze();
        assert!(c.is_frozen());
        assert!(c.frozen_bytes().unwrap() > 0);
        assert_eq!(
            *c.view(),
            S {
                b: s.b.clone(),
                ..s
            }
        );
        assert!(c.is_frozen(), "viewing leaves it packed");
        // A snapshot holds the state itself, packed or not.
        assert_eq!(rmp_serde::to_vec_named(&c).unwrap(), live);
        c.freeze();
        c.thaw().a += 1;
        assert!(!c.is_frozen());
        assert_eq!(c.view().a, 8);
        let back: Cold<S> = rmp_serde::from_slice(&live).unwrap();
        assert_eq!(back.view().a, 7);
    }

    #[test]
    fn live_and_packed_are_one_pointer_and_a_length() {
        assert_eq!(std::mem::size_of::<Cold<S>>(), 16);
    }
}
