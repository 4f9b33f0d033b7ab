//! Equality of short strings, a literal's place in a line and a split at an address's `@`, as
//! the hot paths of a line need them: ours because speed demands it (docs/PERFORMANCE.md,
//! "Steps of 2026-12-07, late morning"), each the standard library's answer (tested against
//! it, or by the parsers' corpus tests for `find`).
//!
//! Comparing two slices (`a == b`) calls `memcmp` whatever their length: about 20 instructions
//! in the library and a call's worth around it. The hot comparisons of a line are short: a
//! program name (`postfix/smtpd`, 13 bytes), a host name, a recipient address. [`same`]
//! compares strings of up to [`INLINE_MAX`] bytes with a few overlapping word loads instead.
//!
//! [`find`] looks for a short literal with a `memchr` on its first non-space byte and a
//! compare, where `str::find(&str)` builds a two-way searcher for every call.
//!
//! [`rsplit_once`] splits at the last of an ASCII byte with the `memchr` crate's search: the
//! standard library's `str::rsplit_once(char)` reads backwards a word at a time, about 140
//! instructions for an address's `@`, asked several times of every message.

/// The longest strings [`same`] compares with word loads; longer ones go to `memcmp`.
pub const INLINE_MAX: usize = 32;

/// The `N` bytes of `s` from `at` (which the caller keeps in bounds) as one word.
#[inline(always)]
fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    s[at..at + N].try_into().expect("in bounds")
}

/// Whether `a` and `b` are the same bytes: `a == b`, with strings of up to [`INLINE_MAX`]
/// bytes compared as words that overlap to cover every byte (1–3 bytes: the first, middle and
/// last; 4–7: two 4-byte words; 8–16: two 8-byte words; 17–32: four).
#[inline]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        17..=INLINE_MAX => {
            word::<8>(a, 0) == word::<8>(b, 0)
                && word::<8>(a, 8) == word::<8>(b, 8)
                && word::<8>(a, n - 16) == word::<8>(b, n - 16)
                && word::<8>(a, n - 8) == word::<8>(b, n - 8)
        }
        _ => a == b,
    }
}

/// Byte offset of `needle` in `hay`. Log lines are short and the needles are short literals, so
/// a `memchr` on the needle's first non-space byte plus a compare beats building a `memmem`
/// searcher on every call.
pub(crate) fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let k = n.iter().position(|&c| c != b' ')?;
    memchr::memchr_iter(n[k], h)
        .filter(|&i| i >= k)
        .map(|i| i - k)
        .find(|&i| h[i..].starts_with(n))
}

/// `s.rsplit_once(byte as char)` for an ASCII `byte`: the text before and after its last
/// occurrence, None when there is none.
#[inline]
pub fn rsplit_once(s: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(
        byte.is_ascii(),
        "an ASCII byte splits a str at a character boundary"
    );
    let i = memchr::memrchr(byte, s.as_bytes())?;
    Some((&s[..i], &s[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rsplit_once` splits as the standard library's does, wherever the byte is and whatever
    /// characters surround it.
    #[test]
    fn rsplit_once_is_the_standard_librarys() {
        let parts = [
            "",
            "@",
            "a",
            "é",
            "@@",
            "b.example",
            "ü@",
            "x y",
            "\u{1F600}",
        ];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    let s = format!("{a}{b}{c}");
                    assert_eq!(rsplit_once(&s, b'@'), s.rsplit_once('@'), "{s:?}");
                    assert_eq!(rsplit_once(&s, b'.'), s.rsplit_once('.'), "{s:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, parts.len().pow(3));
    }

    /// `same` answers as `==` for every pair of equal-length strings that differ in one byte,
    /// at every position, and for equal ones, at every length up to past [`INLINE_MAX`].
    #[test]
    fn same_is_slice_equality() {
        let mut compared = 0;
        for n in 0..=INLINE_MAX + 3 {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same(&a, &a.clone()));
            for at in 0..n {
                for delta in [1u8, 0x80] {
                    let mut b = a.clone();
                    b[at] ^= delta;
                    assert_eq!(same(&a, &b), a == b, "n {n} at {at}");
                    assert!(!same(&a, &b));
                    compared += 1;
                }
            }
            // Lengths differ: never the same, whatever the bytes.
            assert!(!same(&a, &a[..n.saturating_sub(1)]) || n == 0);
            assert!(!same(&a, &[a.as_slice(), b"x"].concat()));
        }
        assert!(compared > 1_000);
    }
}
