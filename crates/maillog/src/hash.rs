//! The one hasher of smtpscope's hot maps and stable key hashes: [`foldhash`] with a fixed seed.
//!
//! Detection must be a deterministic function of the event stream, and the standard library's
//! `RandomState` makes every map's iteration order differ from run to run: wherever such an order
//! reached a verdict (which message of several idle ones closes first, which of two groups a
//! campaign joins first) two runs on the same log gave different alerts. With a fixed seed the
//! order is a function of the keys alone; the code still sorts wherever an order reaches output,
//! so the seed is a second line of defence, not the only one.
//!
//! The price of a fixed seed: somebody who controls many keys of one map (user names in failed
//! logins, host names) and knows this seed could choose keys that collide. Every map keyed by log
//! text is capped (the correlator's `max_in_flight`, `MAX_SESSIONS`, 65,536 hosts; the detectors'
//! `max_entities`), which bounds the damage to slower lookups in a map of bounded size; values
//! hashed into counters (distinct recipients, users, domains) only ever lose precision.
//!
//! One hasher instead of five hand-written ones (FNV-1a three times, a polynomial string hash, a
//! seeded multiply-xor): foldhash is maintained, well tested (SMHasher) and as fast as the
//! multiply-xor it replaces.

use std::hash::{BuildHasher, Hasher};

/// The hash state of every hot map: foldhash's fast hasher with its fixed default seed.
pub type State = foldhash::fast::FixedState;
/// A `HashMap` with [`State`].
pub type Map<K, V> = std::collections::HashMap<K, V, State>;
/// A `HashSet` with [`State`].
pub type Set<T> = std::collections::HashSet<T, State>;

/// A stable 64-bit hash of a string (the same in every run and on every machine of one build).
#[inline]
pub fn str_key(s: &str) -> u64 {
    State::default().hash_one(s)
}

/// A stable hash of the ASCII-lower-cased string, without allocating: `Bob@Example.org` and
/// `bob@example.org` hash alike (domains and, in practice, mailboxes are case-insensitive).
/// Not equal to [`str_key`] of the same text: use one or the other for one set of values.
pub fn str_key_ci(s: &str) -> u64 {
    let mut h = State::default().build_hasher();
    let mut buf = [0u8; 64];
    for chunk in s.as_bytes().chunks(buf.len()) {
        // Copied and lower-cased in one pass, not a `memcpy` call and then a pass: 7% fewer
        // instructions for this hash on the benchmark log (addresses and domains, short).
        for (to, from) in buf.iter_mut().zip(chunk) {
            *to = from.to_ascii_lowercase();
        }
        h.write(&buf[..chunk.len()]);
    }
    h.write_u8(0xff);
    h.finish()
}

/// Spreads a 64-bit key over all 64 bits (for sketches that read the top or bottom bits alone):
/// foldhash's quality hasher, fixed seed.
#[inline]
pub fn mix(x: u64) -> u64 {
    foldhash::quality::FixedState::default().hash_one(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_case_insensitive() {
        assert_eq!(str_key("example.org"), str_key("example.org"));
        assert_ne!(str_key("example.org"), str_key("example.com"));
        assert_eq!(str_key_ci("Example.ORG"), str_key_ci("example.org"));
        let long = "A".repeat(200);
        assert_eq!(str_key_ci(&long), str_key_ci(&long.to_ascii_lowercase()));
        assert_ne!(str_key_ci(&long), str_key_ci(&"a".repeat(199)));
        let mut m: Map<&str, u32> = Map::default();
        m.insert("a", 1);
        assert_eq!(m.get("a"), Some(&1));
    }

    /// The hashes are those of each chunk copied, then lower-cased (the hashes counters
    /// restored from a snapshot hold), for texts of every length across several chunks.
    #[test]
    fn case_insensitive_hashes_are_those_of_lower_cased_copies() {
        let reference = |s: &str| {
            let mut h = State::default().build_hasher();
            let mut buf = [0u8; 64];
            for chunk in s.as_bytes().chunks(buf.len()) {
                let b = &mut buf[..chunk.len()];
                b.copy_from_slice(chunk);
                b.make_ascii_lowercase();
                h.write(b);
            }
            h.write_u8(0xff);
            h.finish()
        };
        let text: String = (0..200)
            .map(|i| ['a', 'B', 'z', 'Q', '@', '.', '0'][i % 7])
            .collect();
        for n in 0..=text.len() {
            assert_eq!(str_key_ci(&text[..n]), reference(&text[..n]), "{n}");
        }
    }

    #[test]
    fn mix_spreads_small_keys() {
        // Consecutive small keys land in different top bytes (a HyperLogLog reads them).
        let tops: Set<u64> = (0..64u64).map(|i| mix(i) >> 56).collect();
        assert!(tops.len() > 40, "{}", tops.len());
    }
}
