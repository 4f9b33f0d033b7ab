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
//! [`ascii_lower`] lower-cases a name only when it has capitals, and borrows it otherwise.
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
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some(k) = n.iter().position(|&c| c != b' ') else {
        // Nothing but spaces (or nothing): no byte to look for first.
        return hay.find(needle);
    };
    let mut from = k;
    while let Some(off) = find_byte(h.get(from..)?, n[k]) {
        let i = from + off - k;
        // Compared with `same` (word loads), not `starts_with` (a `memcmp` call each).
        if h.get(i..i + n.len()).is_some_and(|w| same(w, n)) {
            return Some(i);
        }
        from += off + 1;
    }
    None
}

/// Bytes [`find_byte`] and [`find_byte2`] look at with one vector compare before they hand the
/// rest of a search to `memchr`: most of a line's searches (a value's end, a peer's `[`, a
/// host name's space) stop within them, where a `memchr` call costs about 55 instructions of
/// dispatch and set-up whatever the distance (docs/PERFORMANCE.md, "Steps of 2026-12-07,
/// afternoon").
pub const NEAR: usize = 16;

/// Bit `i` set exactly where byte `i` of `c` is one of `any`. On x86-64 one vector compare a
/// byte of `any` and one mask move (SSE2, in every x86-64 processor); elsewhere a byte at a
/// time. Also the syslog tag's scan (`header::tag_of`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn mask_of<const K: usize>(c: &[u8; NEAR], any: [u8; K]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    // SAFETY: SSE2 is in the x86-64 baseline, so rustc enables it for every x86_64 target; the
    // unaligned load reads exactly the 16 bytes `c` refers to.
    let m = unsafe {
        let v = _mm_loadu_si128(c.as_ptr().cast());
        let hits = any.iter().fold(_mm_setzero_si128(), |acc, &b| {
            _mm_or_si128(acc, _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8)))
        });
        _mm_movemask_epi8(hits)
    };
    // The mask has the low 16 bits only.
    m as u32
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn mask_of<const K: usize>(c: &[u8; NEAR], any: [u8; K]) -> u32 {
    mask_of_bytewise(c, any)
}

/// [`mask_of`] a byte at a time (the other architectures', and the tests' reference).
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
pub(crate) fn mask_of_bytewise<const K: usize>(c: &[u8; NEAR], any: [u8; K]) -> u32 {
    let mut m = 0u32;
    for (i, &b) in c.iter().enumerate() {
        m |= u32::from(any.contains(&b)) << i;
    }
    m
}

/// Offset of the first `x` in `hay`: `memchr::memchr(x, hay)`, with the first [`NEAR`] bytes
/// looked at inline.
#[inline(always)]
pub fn find_byte(hay: &[u8], x: u8) -> Option<usize> {
    match hay.first_chunk::<NEAR>() {
        Some(c) => match mask_of(c, [x]) {
            0 => memchr::memchr(x, &hay[NEAR..]).map(|i| i + NEAR),
            m => Some(m.trailing_zeros() as usize),
        },
        None => hay.iter().position(|&b| b == x),
    }
}

/// Offset of the first `x` or `y` in `hay`: `memchr::memchr2(x, y, hay)`, with the first
/// [`INLINE_CHUNKS`] chunks of [`NEAR`] bytes looked at inline ([`find_any_from`]): the end
/// of a `key=value` value (`relay=mx00.example.net[192.0.2.9]:25,` is longer than one chunk).
#[inline(always)]
pub fn find_byte2(hay: &[u8], x: u8, y: u8) -> Option<usize> {
    find_byte2_from(hay, 0, x, y)
}

/// Offset (from the start of `hay`) of the first `x` or `y` in `hay[from..]`: [`find_byte2`]
/// from `from` (a value's end inside the rest of its line).
#[inline(always)]
pub fn find_byte2_from(hay: &[u8], from: usize, x: u8, y: u8) -> Option<usize> {
    match find_any_chunks(hay, from, [x, y], INLINE_CHUNKS) {
        Ok(found) => found,
        Err(at) => memchr::memchr2(x, y, &hay[at..]).map(|i| at + i),
    }
}

/// Offset of the last `x` in `hay`: `memchr::memrchr(x, hay)`, with the last [`NEAR`] bytes
/// looked at inline (a reply's closing `)` ends its line; an address's `@` is a domain's
/// length from its end).
#[inline(always)]
pub fn rfind_byte(hay: &[u8], x: u8) -> Option<usize> {
    match hay.last_chunk::<NEAR>() {
        Some(c) => match mask_of(c, [x]) {
            0 => memchr::memrchr(x, &hay[..hay.len() - NEAR]),
            m => Some(hay.len() - NEAR + (31 - m.leading_zeros()) as usize),
        },
        None => hay.iter().rposition(|&b| b == x),
    }
}

/// Chunks of [`NEAR`] bytes [`find_byte_from`] looks at inline before it hands the rest of a
/// search to `memchr`: a value in angle brackets (an address, a HELO name) ends within them.
pub const INLINE_CHUNKS: usize = 4;

/// Offset (from the start of `hay`) of the first of `any` in `hay[from..]`, [`NEAR`] bytes at a
/// time (`mask_of`); the last bytes, when fewer than [`NEAR`] are left, are looked at as the
/// last [`NEAR`] of `hay` with those before `from` masked off, so only a `hay` shorter than
/// [`NEAR`] is searched a byte at a time. For short searches: a key's end, a value's `>`.
#[inline(always)]
pub fn find_any_from<const K: usize>(hay: &[u8], from: usize, any: [u8; K]) -> Option<usize> {
    find_any_chunks(hay, from, any, usize::MAX).unwrap_or(None)
}

/// [`find_any_from`] over at most `chunks` chunks: `Err(at)` when it stopped at `at` without
/// an answer.
#[inline(always)]
fn find_any_chunks<const K: usize>(
    hay: &[u8],
    from: usize,
    any: [u8; K],
    chunks: usize,
) -> Result<Option<usize>, usize> {
    let n = hay.len();
    let mut at = from;
    for _ in 0..chunks {
        if at >= n {
            return Ok(None);
        }
        let Some(c) = hay.get(at..at + NEAR) else {
            // Fewer than NEAR bytes left.
            if n < NEAR {
                return Ok(hay[at..]
                    .iter()
                    .position(|b| any.contains(b))
                    .map(|i| at + i));
            }
            let start = n - NEAR;
            let last: &[u8; NEAR] = hay[start..].try_into().expect("NEAR bytes");
            let m = mask_of(last, any) >> (at - start);
            return Ok((m != 0).then(|| at + m.trailing_zeros() as usize));
        };
        let m = mask_of(c.try_into().expect("NEAR bytes"), any);
        if m != 0 {
            return Ok(Some(at + m.trailing_zeros() as usize));
        }
        at += NEAR;
    }
    Err(at)
}

/// Offset (from the start of `hay`) of the first `x` in `hay[from..]`: [`find_any_from`] over
/// the first [`INLINE_CHUNKS`] chunks, then `memchr`. Where a search starts inside a longer
/// text (a value's `>` after its `<`), the text's last bytes are one vector compare instead
/// of a byte loop, and a hit in the next few chunks no `memchr` call (about 55 instructions
/// of dispatch each).
#[inline(always)]
pub fn find_byte_from(hay: &[u8], from: usize, x: u8) -> Option<usize> {
    match find_any_chunks(hay, from, [x], INLINE_CHUNKS) {
        Ok(found) => found,
        Err(at) => memchr::memchr(x, &hay[at..]).map(|i| at + i),
    }
}

/// `&s[from..to]` where the caller knows both ends are character boundaries because each is
/// 0, `s.len()`, the place of an ASCII byte of `s` or the place just after one (an ASCII byte
/// is a whole character, so a character starts at it and after it), and `from <= to`: the
/// text without the checks of `&s[from..to]` (its order, its end and both boundaries, about
/// ten instructions a slice), which a line paid for each part cut from it: a `key=value`
/// pair's key and value, a syslog header's host, program and message (docs/PERFORMANCE.md).
/// Checked in debug builds (the tests and the fuzzers).
///
/// # Safety
/// `from <= to <= s.len()`, and `from` and `to` are character boundaries of `s`.
#[inline(always)]
pub unsafe fn between_boundaries(s: &str, from: usize, to: usize) -> &str {
    debug_assert!(from <= to && s.is_char_boundary(from) && s.is_char_boundary(to));
    // SAFETY: the caller's promise is `str::get_unchecked`'s requirement.
    unsafe { s.get_unchecked(from..to) }
}

/// `s.rsplit_once(byte as char)` for an ASCII `byte`: the text before and after its last
/// occurrence, None when there is none.
#[inline]
pub fn rsplit_once(s: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(
        byte.is_ascii(),
        "an ASCII byte splits a str at a character boundary"
    );
    let i = rfind_byte(s.as_bytes(), byte)?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s` in ASCII lower case, borrowed when it is already (as names and addresses in logs
/// nearly always are): what `to_ascii_lowercase` gives, without a `String` made for each.
#[inline]
pub fn ascii_lower(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`ascii_lower`] is `to_ascii_lowercase`, borrowed exactly when nothing changes.
    #[test]
    fn ascii_lower_is_to_ascii_lowercase() {
        for s in [
            "",
            "mail.example.com",
            "MAIL.Example.COM",
            "[192.0.2.1]",
            "pc-Ü7",
            "ümlaut.example",
            "A",
            "z",
            "@",
            "[",
            "`",
            "{",
            "Zz09-_.",
            "User@Example.ORG",
        ] {
            let l = ascii_lower(s);
            assert_eq!(l, s.to_ascii_lowercase(), "{s:?}");
            assert_eq!(
                matches!(l, std::borrow::Cow::Borrowed(_)),
                s == s.to_ascii_lowercase(),
                "{s:?}"
            );
        }
    }

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

    /// `find_byte` and `find_byte2` answer as `memchr` and `memchr2` for every length up to
    /// past the inline chunks and a hit at every place, inside and past them; and
    /// the vector mask as the bytewise one.
    #[test]
    fn the_near_searches_are_memchrs() {
        let mut checked = 0;
        for n in 0..=(INLINE_CHUNKS + 1) * NEAR + 2 {
            let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 7) as u8).collect();
            let mut cases = vec![base.clone()];
            for at in 0..n {
                for hit in [b'[', b' '] {
                    let mut h = base.clone();
                    h[at] = hit;
                    cases.push(h.clone());
                    // A second hit later: the first one is the answer.
                    if at + 3 < n {
                        h[at + 3] = b'[';
                        cases.push(h);
                    }
                }
            }
            for h in &cases {
                assert_eq!(find_byte(h, b'['), memchr::memchr(b'[', h), "{h:?}");
                assert_eq!(find_byte(h, b' '), memchr::memchr(b' ', h), "{h:?}");
                assert_eq!(rfind_byte(h, b'['), memchr::memrchr(b'[', h), "{h:?}");
                assert_eq!(rfind_byte(h, b' '), memchr::memrchr(b' ', h), "{h:?}");
                assert_eq!(
                    find_byte2(h, b'[', b' '),
                    memchr::memchr2(b'[', b' ', h),
                    "{h:?}"
                );
                if let Some(c) = h.first_chunk::<NEAR>() {
                    assert_eq!(mask_of(c, [b'[', b' ']), mask_of_bytewise(c, [b'[', b' ']));
                }
                checked += 1;
            }
        }
        assert!(checked > 1_000, "{checked}");
    }

    /// `find_byte_from`, `find_any_from` and `find_byte2_from` answer as a byte loop from every
    /// start, for
    /// every length from empty to past [`INLINE_CHUNKS`] chunks and hits at every place (one,
    /// two, or none), the starts past the end included.
    #[test]
    fn the_searches_from_a_start_are_byte_loops() {
        let loop_from = |h: &[u8], from: usize, any: &[u8]| {
            h.get(from..)
                .and_then(|t| t.iter().position(|b| any.contains(b)))
                .map(|i| from + i)
        };
        let mut checked = 0;
        for n in 0..=(INLINE_CHUNKS + 1) * NEAR + 3 {
            let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 7) as u8).collect();
            let mut cases = vec![base.clone()];
            for at in 0..n {
                let mut h = base.clone();
                h[at] = b'>';
                cases.push(h.clone());
                if at + 5 < n {
                    h[at + 5] = b'=';
                    cases.push(h);
                }
            }
            for h in &cases {
                for from in 0..=n + 1 {
                    assert_eq!(
                        find_byte_from(h, from, b'>'),
                        loop_from(h, from, b">"),
                        "{h:?} from {from}"
                    );
                    assert_eq!(
                        find_any_from(h, from, [b'=', b'>']),
                        loop_from(h, from, b"=>"),
                        "{h:?} from {from}"
                    );
                    assert_eq!(
                        find_byte2_from(h, from, b'=', b'>'),
                        loop_from(h, from, b"=>"),
                        "{h:?} from {from}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    /// `find` answers as `str::find` for needles with and without leading spaces, in
    /// haystacks of every length over a small alphabet (so partial matches abound), shorter
    /// than the needle's leading spaces included.
    #[test]
    fn find_is_str_find() {
        let needles = ["ab", " ab", "  ba a", "a", "queued as ", "b a", "  ", ""];
        let mut checked = 0;
        for n in 0..40usize {
            for seed in 0..12u32 {
                let hay: String = (0..n)
                    .map(|i| {
                        [b'a', b'b', b' ']
                            [((i as u32 * 7 + seed * 13) ^ (i as u32 >> 1)) as usize % 3]
                            as char
                    })
                    .collect();
                for needle in needles {
                    assert_eq!(find(&hay, needle), hay.find(needle), "{hay:?} {needle:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 2_000);
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
