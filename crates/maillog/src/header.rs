//! The part of a log line before the program's own message: time stamp, host, program, pid.
//!
//! Shapes understood:
//! - RFC 3164 syslog: `Nov 20 10:47:15 host postfix/smtpd[123]: msg` (day space- or zero-padded,
//!   optional fraction of a second as Postfix's `maillog_file` and some rsyslog templates write);
//! - RFC 3339 / high-precision (rsyslog `RSYSLOG_FileFormat`): `2026-11-20T10:47:15.123456+01:00 host prog[pid]: msg`;
//! - RFC 5424 with or without the `<PRI>` of a syslog packet: `<22>1 2026-11-20T10:47:15Z host prog pid - - msg`;
//! - a leading `<PRI>` on an RFC 3164 packet;
//! - Exim's own main log: `2026-11-20 10:47:15 [pid] msg`, optionally with `.fff` and a `+0100` zone;
//! - daemontools/multilog TAI64N: `@4000000063f1c0de0a1b2c3d prog: msg` (no host).

use crate::time::{
    days_from_civil, StampFields, StampMemo, TimeContext, Ts, MICROS, STAMP_KEY_BYTES,
};

/// Which time-stamp shape a line had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StampKind {
    /// `Nov 20 10:47:15`, no year, no zone.
    Rfc3164,
    /// ISO 8601 / RFC 3339 with `T` and a zone.
    Rfc3339,
    /// RFC 5424 syslog packet.
    Rfc5424,
    /// Exim main log `YYYY-MM-DD HH:MM:SS`.
    Exim,
    /// TAI64N label.
    Tai64n,
}

/// The parsed syslog-style prefix of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// Event time.
    pub ts: Ts,
    /// Host name, empty when the line has none.
    pub host: &'a str,
    /// Program ("postfix/submission/smtpd", "exim", "dovecot"); empty when the line has none
    /// (Exim's native main log).
    pub program: &'a str,
    /// Process id.
    pub pid: Option<u32>,
    /// The message after `program[pid]: `.
    pub msg: &'a str,
    /// The stamp's shape.
    pub stamp: StampKind,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn hms(b: &[u8]) -> Option<(u32, u32, u32)> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, s) = (digits(&b[0..2])?, digits(&b[3..5])?, digits(&b[6..8])?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s))
}

/// Fraction `.ffffff` at the start of `b`: (microseconds, bytes used).
fn fraction(b: &[u8]) -> (u32, usize) {
    if b.first() != Some(&b'.') {
        return (0, 0);
    }
    let mut us = 0u32;
    let mut n = 1;
    let mut scale = 100_000u32;
    while n < b.len() && b[n].is_ascii_digit() {
        if scale > 0 {
            us += (b[n] - b'0') as u32 * scale;
            scale /= 10;
        }
        n += 1;
    }
    if n == 1 {
        (0, 0)
    } else {
        (us, n)
    }
}

/// `+01:00`, `-0500`, `Z` at the start of `b`: (offset seconds, bytes used).
fn zone(b: &[u8]) -> Option<(i64, usize)> {
    match b.first()? {
        b'Z' | b'z' => Some((0, 1)),
        c @ (b'+' | b'-') => {
            let sign = if *c == b'-' { -1 } else { 1 };
            let h = digits(b.get(1..3)?)? as i64;
            let (m, n) = if b.get(3) == Some(&b':') {
                (digits(b.get(4..6)?)? as i64, 6)
            } else {
                (digits(b.get(3..5)?)? as i64, 5)
            };
            Some((sign * (h * 3600 + m * 60), n))
        }
        _ => None,
    }
}

/// ISO 8601 date-time with `T` or space and an optional zone: (UTC time if zoned, bytes used).
/// Returns the wall-clock time (offset 0) when no zone follows; callers that need the zone-less
/// case use [`parse_iso_parts`].
pub(crate) fn parse_iso(b: &[u8]) -> Option<(Ts, usize)> {
    let p = parse_iso_parts(b)?;
    let off = p.offset?;
    Some((Ts(p.wall_micros - off * MICROS), p.len))
}

pub(crate) struct IsoParts {
    pub y: i64,
    pub mo: u32,
    pub d: u32,
    pub h: u32,
    pub mi: u32,
    pub s: u32,
    pub us: u32,
    pub wall_micros: i64,
    pub offset: Option<i64>,
    pub len: usize,
}

pub(crate) fn parse_iso_parts(b: &[u8]) -> Option<IsoParts> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let y = digits(&b[0..4])? as i64;
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let (h, mi, s) = hms(&b[11..19])?;
    let mut n = 19;
    let (us, fl) = fraction(&b[n..]);
    n += fl;
    let mut offset = None;
    if let Some((o, zl)) = zone(&b[n..]) {
        offset = Some(o);
        n += zl;
    } else if b.get(n) == Some(&b' ') {
        // Exim's log_timezone: "2026-11-20 10:47:15 +0100"
        if let Some((o, zl)) = zone(&b[n + 1..]) {
            if zl == 5 && b.get(n + 1 + zl).is_none_or(|c| *c == b' ') {
                offset = Some(o);
                n += 1 + zl;
            }
        }
    }
    let wall = days_from_civil(y, mo, d) * 86_400 + (h as i64) * 3600 + (mi as i64) * 60 + s as i64;
    Some(IsoParts {
        y,
        mo,
        d,
        h,
        mi,
        s,
        us,
        wall_micros: wall * MICROS + us as i64,
        offset,
        len: n,
    })
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

/// Split `host prog[pid]: msg` (or `prog[pid]: msg` without host) starting at `i`.
///
/// The text after the stamp is sliced once with its boundaries checked; the parts within it
/// are cut at the places of the ASCII bytes that delimit them (a space, the tag's `:`, its
/// `[`) without checking again (`bytes::between_boundaries`): about 7 instructions a line
/// fewer.
fn host_prog(line: &str, i: usize, want_host: bool) -> Option<(&str, &str, Option<u32>, &str)> {
    let rest = &line[skip_spaces(line.as_bytes(), i)..];
    let b = rest.as_bytes();
    let sp = crate::bytes::find_byte(b, b' ');
    let first_end = sp.unwrap_or(b.len());
    // A tag ends in ':' or has '[pid]:'; a host name has neither.
    let first_is_tag = first_end > 0 && b[first_end - 1] == b':';
    let (host_end, tag_from) = if want_host && !first_is_tag && sp.is_some() {
        (first_end, first_end + 1)
    } else {
        (0, 0)
    };
    let t = skip_spaces(b, tag_from);
    let tag = tag_of(&b[t..])?;
    let (colon, msg_from) = (t + tag.end, t + tag.end + 2);
    // SAFETY: `host_end` is 0 or a space's place, `t` the place after a space (or 0) and
    // spaces, `colon` the tag's `:` after it, `msg_from` two places after that `:` (after the
    // space that follows it), and the bracket a `[` between `t` and `colon`: every one the
    // place of an ASCII byte, after one, or the text's end, so a character boundary of
    // `rest`, in order, within it (`msg_from` only when it is).
    let (host, msg) = unsafe {
        (
            crate::bytes::between_boundaries(rest, 0, host_end),
            if msg_from <= b.len() {
                crate::bytes::between_boundaries(rest, msg_from, b.len())
            } else {
                ""
            },
        )
    };
    match tag.bracket {
        Some(lb) => {
            if tag.space.is_some_and(|sp| sp < lb) {
                return None; // a space in the program name
            }
            let pid = match b[t + lb + 1..colon].last() {
                Some(b']') => pid_in(&b[t..], lb + 1, tag.end - 1),
                _ => None,
            };
            // SAFETY: as above.
            let program = unsafe { crate::bytes::between_boundaries(rest, t, t + lb) };
            Some((host, program, pid, msg))
        }
        None if tag.space.is_some() => None,
        // SAFETY: as above.
        None => Some((
            host,
            unsafe { crate::bytes::between_boundaries(rest, t, colon) },
            None,
            msg,
        )),
    }
}

/// The pid in `t[start..end]` ([`pid_of`]'s answer): read as one word ([`digits_word`]) when it
/// is one to [`PID_WORD_DIGITS`] digits and `t` has a word's bytes from `start` (a line goes on
/// after its tag), else by [`pid_of`]. A Linux pid has up to seven digits; read a digit at a
/// time they were about 55 instructions a line.
fn pid_in(t: &[u8], start: usize, end: usize) -> Option<u32> {
    let n = end.checked_sub(start)?;
    if (1..=PID_WORD_DIGITS).contains(&n) {
        if let Some(word) = t.get(start..start + PID_WORD_DIGITS) {
            let word: &[u8; PID_WORD_DIGITS] = word.try_into().expect("a word's bytes");
            if let Some(v) = digits_word(word, n) {
                return Some(v);
            }
        }
    }
    pid_of(t.get(start..end)?)
}

/// Digits [`digits_word`] reads at once: the bytes of a `u64`.
const PID_WORD_DIGITS: usize = 8;

/// Each byte of a `u64` repeated: [`digits_word`]'s lane constants.
const fn lanes(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// The value of the `n` (1 to 8) decimal digits at the start of `word`, or None when one of
/// them is no digit: the digits moved to the top of a little-endian word with `0`s below,
/// checked all at once, and summed pairwise in three multiplications (the well-known
/// eight-digit SWAR conversion).
fn digits_word(word: &[u8; PID_WORD_DIGITS], n: usize) -> Option<u32> {
    debug_assert!((1..=PID_WORD_DIGITS).contains(&n));
    let shift = 8 * (PID_WORD_DIGITS - n) as u32;
    // The bytes after the digits shift out; `0`s fill the lanes below the first digit.
    let pad = lanes(b'0') & 1u64.checked_shl(shift).map_or(u64::MAX, |b| b - 1);
    let x = u64::from_le_bytes(*word).checked_shl(shift).unwrap_or(0) | pad;
    // A lane is a digit exactly when it is ASCII, not below `0` and not above `9`.
    let below = x.wrapping_sub(lanes(b'0'));
    let above = x.wrapping_add(lanes(0x80 - b':'));
    if (x | below | above) & lanes(0x80) != 0 {
        return None;
    }
    // Lane values 0-9, the most significant digit in the lowest lane: pairs, fours, eight.
    let v = (below.wrapping_mul(10) + (below >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    let v = (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF;
    u32::try_from(v).ok()
}

/// Digits of a pid that cannot overflow a `u32` whatever they are (`999,999,999`).
const PID_DIGITS_UNCHECKED: usize = 9;

/// A pid as `str::parse::<u32>` reads it (an optional `+`, then decimal digits, at most
/// `u32::MAX`), without its general machinery: one per line. Up to
/// [`PID_DIGITS_UNCHECKED`] digits are summed without overflow checks (a Linux pid has at most
/// seven), which were most of its instructions.
fn pid_of(b: &[u8]) -> Option<u32> {
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() {
        return None;
    }
    let mut v = 0u32;
    if digits.len() <= PID_DIGITS_UNCHECKED {
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u32::from(d);
        }
        return Some(v);
    }
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(d))?;
    }
    Some(v)
}

/// Where a syslog tag (`prog[pid]`) ends, and its first `[` and first space.
struct Tag {
    /// The tag's `:` (followed by a space, or ending the line).
    end: usize,
    bracket: Option<usize>,
    space: Option<usize>,
}

/// The tag at the start of `t`: up to the first `": "`, or a `:` ending the line; None when
/// there is neither or the tag is empty. One pass over the tag's bytes that stops only at the
/// bytes that matter (`:`, `[`, space), found sixteen at a time ([`tag_bytes`]): a byte-by-byte
/// loop cost about 190 instructions a line, finding each of the three with a search about 500.
fn tag_of(t: &[u8]) -> Option<Tag> {
    let (mut bracket, mut space) = (None, None);
    // The byte at `j` matters; Some(tag) when it ends the tag.
    let mut visit = |j: usize| -> Option<Option<Tag>> {
        match t[j] {
            b':' if t.get(j + 1).is_none_or(|&n| n == b' ') => Some((j > 0).then_some(Tag {
                end: j,
                bracket,
                space,
            })),
            b'[' if bracket.is_none() => {
                bracket = Some(j);
                None
            }
            b' ' if space.is_none() => {
                space = Some(j);
                None
            }
            _ => None,
        }
    };
    let mut chunks = t.chunks_exact(CHUNK_BYTES);
    let mut base = 0;
    for c in chunks.by_ref() {
        let mut m = tag_bytes(c.try_into().expect("a chunk"));
        while m != 0 {
            if let Some(end) = visit(base + m.trailing_zeros() as usize) {
                return end;
            }
            m &= m - 1;
        }
        base += CHUNK_BYTES;
    }
    for j in base..t.len() {
        if let Some(end) = visit(j) {
            return end;
        }
    }
    None
}

/// Bytes per chunk in [`tag_of`]'s scan.
const CHUNK_BYTES: usize = crate::bytes::NEAR;

/// The bytes of a tag that matter.
const TAG_BYTES: [u8; 3] = [b':', b'[', b' '];

/// Bit `i` set exactly where byte `i` of `c` is `:`, `[` or a space, with three vector
/// compares on x86-64 (`bytes::mask_of`): the eight-byte word arithmetic this replaced took
/// about 23 instructions a word, 1.3% of `analyze`'s instructions on the benchmark log, and
/// the plain loop ([`tag_bytes_bytewise`], the other architectures') is not vectorized as
/// well by the compiler.
fn tag_bytes(c: &[u8; CHUNK_BYTES]) -> u32 {
    crate::bytes::mask_of(c, TAG_BYTES)
}

/// [`tag_bytes`] a byte at a time.
#[cfg(test)]
fn tag_bytes_bytewise(c: &[u8; CHUNK_BYTES]) -> u32 {
    crate::bytes::mask_of_bytewise(c, TAG_BYTES)
}

/// Parse the prefix of `line`. `ctx` supplies year and zone for stamps that lack them.
pub fn parse_header<'a>(line: &'a str, ctx: &mut TimeContext) -> Option<Header<'a>> {
    let mut line = line;
    let b0 = line.as_bytes();
    // <PRI> of a syslog packet.
    if b0.first() == Some(&b'<') {
        let end = memchr::memchr(b'>', &b0[..b0.len().min(5)])?;
        digits(&b0[1..end])?;
        line = &line[end + 1..];
        if let Some(rest) = line.strip_prefix("1 ") {
            return parse_5424(rest, ctx);
        }
    }
    let b = line.as_bytes();
    if b.len() < 15 {
        return None;
    }
    // RFC 3164
    if b[3] == b' ' && b[0].is_ascii_uppercase() {
        let (ts, i) = rfc3164_stamp(b, ctx)?;
        let (host, program, pid, msg) = host_prog(line, i, true)?;
        return Some(Header {
            ts,
            host,
            program,
            pid,
            msg,
            stamp: StampKind::Rfc3164,
        });
    }
    // ISO: RFC 3339 (syslog) or Exim native.
    if b[4] == b'-' {
        let p = parse_iso_parts(b)?;
        let ts = match p.offset {
            Some(o) => Ts(p.wall_micros - o * MICROS),
            None => ctx.local_to_utc(p.y, p.mo, p.d, p.h, p.mi, p.s, p.us),
        };
        if b[10] == b'T' {
            let (host, program, pid, msg) = host_prog(line, p.len, true)?;
            return Some(Header {
                ts,
                host,
                program,
                pid,
                msg,
                stamp: StampKind::Rfc3339,
            });
        }
        // Exim: "YYYY-MM-DD HH:MM:SS [pid] msg"
        let mut i = skip_spaces(b, p.len);
        let mut pid = None;
        if b.get(i) == Some(&b'[') {
            let end = memchr::memchr(b']', &b[i..])? + i;
            pid = digits(&b[i + 1..end]);
            i = skip_spaces(b, end + 1);
        }
        return Some(Header {
            ts,
            host: "",
            program: "",
            pid,
            msg: &line[i..],
            stamp: StampKind::Exim,
        });
    }
    // TAI64N: @ + 24 hex digits
    if b[0] == b'@' && b.len() > 26 && b[25] == b' ' {
        let hex = std::str::from_utf8(&b[1..17]).ok()?;
        let secs = u64::from_str_radix(hex, 16).ok()?;
        let nanos = u32::from_str_radix(std::str::from_utf8(&b[17..25]).ok()?, 16).ok()?;
        // TAI64 label 2^62 + seconds; TAI is ahead of UTC by 10 s at the epoch plus leap
        // seconds. multilog's stamps are in practice written as UTC + 10, so subtract 10.
        // A label far past 2^62 is not a time: refused, never wrapped (found by fuzzing).
        let unix = i64::try_from(secs.checked_sub(1u64 << 62)?).ok()? - 10;
        let ts = unix
            .checked_mul(MICROS)?
            .checked_add((nanos / 1000) as i64)?;
        let (host, program, pid, msg) = host_prog(line, 26, false)?;
        return Some(Header {
            ts: Ts(ts),
            host,
            program,
            pid,
            msg,
            stamp: StampKind::Tai64n,
        });
    }
    None
}

/// The RFC 3164 stamp at the start of `b` (`Nov 20 10:47:15`, day space- or zero-padded or
/// unpadded, an optional fraction): its time and where it ends. When the line's first
/// [`STAMP_KEY_BYTES`] bytes are the last stamp's ([`StampMemo`]), its fields are not read
/// again, and its time is reused when the year (asked of `ctx` for every line, as it moves at
/// a new year) is the one it was made in.
fn rfc3164_stamp(b: &[u8], ctx: &mut TimeContext) -> Option<(Ts, usize)> {
    let key: Option<[u8; STAMP_KEY_BYTES]> =
        b.get(..STAMP_KEY_BYTES).and_then(|k| k.try_into().ok());
    let memo = ctx.last_stamp.filter(|m| key == Some(m.key));
    let fields = match memo {
        Some(m) => m.fields,
        None => rfc3164_fields(b)?,
    };
    let year = ctx.year_for_date(fields.month, fields.day);
    let whole = match memo {
        Some(m) if m.year == year => m.ts,
        _ => {
            let f = fields;
            let whole = ctx.local_to_utc(year, f.month, f.day, f.hour, f.minute, f.second, 0);
            ctx.last_stamp = key.map(|key| StampMemo {
                key,
                fields,
                year,
                ts: whole,
            });
            whole
        }
    };
    let (us, fl) = fraction(&b[fields.end..]);
    Some((Ts(whole.0 + us as i64), fields.end + fl))
}

/// The fields of the RFC 3164 stamp at the start of `b` (up to the seconds).
fn rfc3164_fields(b: &[u8]) -> Option<StampFields> {
    let month = MONTHS.iter().position(|m| &b[0..3] == *m)? as u32 + 1;
    let (day, mut i) = if b[4] == b' ' {
        (digits(&b[5..6])?, 6)
    } else if b[5] == b' ' {
        // Unpadded day ("Sep 8 07:46:30"), as some relays and exporters write it.
        (digits(&b[4..5])?, 5)
    } else {
        (digits(&b[4..6])?, 6)
    };
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let (hour, minute, second) = hms(b.get(i..i + 8)?)?;
    Some(StampFields {
        month,
        day,
        hour,
        minute,
        second,
        end: i + 8,
    })
}

fn parse_5424<'a>(rest: &'a str, ctx: &mut TimeContext) -> Option<Header<'a>> {
    // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG
    let mut it = rest.splitn(6, ' ');
    let tsf = it.next()?;
    let host = it.next()?;
    let app = it.next()?;
    let procid = it.next()?;
    let _msgid = it.next()?;
    let mut tail = it.next().unwrap_or("");
    let ts = if tsf == "-" {
        ctx.local_to_utc(ctx.year(), 1, 1, 0, 0, 0, 0)
    } else {
        parse_iso(tsf.as_bytes())?.0
    };
    // structured data: "-" or one or more [..] groups
    if let Some(t) = tail.strip_prefix('-') {
        tail = t.strip_prefix(' ').unwrap_or(t);
    } else if tail.starts_with('[') {
        let b = tail.as_bytes();
        let mut i = 0;
        let mut depth_q = false;
        while i < b.len() {
            match b[i] {
                b'\\' if depth_q => i += 1,
                b'"' => depth_q = !depth_q,
                b']' if !depth_q && b.get(i + 1) != Some(&b'[') => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        tail = tail.get(i..).unwrap_or("").trim_start_matches(' ');
    }
    let tail = tail.strip_prefix('\u{feff}').unwrap_or(tail);
    Some(Header {
        ts,
        host: if host == "-" { "" } else { host },
        program: if app == "-" { "" } else { app },
        pid: procid.parse().ok(),
        msg: tail,
        stamp: StampKind::Rfc5424,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag split as it was written before `tag_of` (three searches), as an oracle.
    fn tag_split_by_searches(tb: &str) -> Option<(&str, Option<u32>, &str)> {
        let b = tb.as_bytes();
        let colon = (0..b.len())
            .find(|&i| b[i] == b':' && b.get(i + 1) == Some(&b' '))
            .or_else(|| tb.ends_with(':').then(|| tb.len() - 1))?;
        let tag = &tb[..colon];
        if tag.is_empty() || tag.contains(' ') && !tag.contains('[') {
            return None;
        }
        let msg = tb.get(colon + 2..).unwrap_or("");
        if let Some(lb) = tag.find('[') {
            let prog = &tag[..lb];
            let pid = tag[lb + 1..].strip_suffix(']').and_then(|p| p.parse().ok());
            if prog.contains(' ') {
                return None;
            }
            Some((prog, pid, msg))
        } else {
            Some((tag, None, msg))
        }
    }

    /// [`host_prog`] as it was before it cut its parts without checking their boundaries
    /// again: every part sliced from the line with the checks.
    fn host_prog_by_slices(
        line: &str,
        i: usize,
        want_host: bool,
    ) -> Option<(&str, &str, Option<u32>, &str)> {
        let b = line.as_bytes();
        let i = skip_spaces(b, i);
        let rest = &line[i..];
        let sp = crate::bytes::find_byte(rest.as_bytes(), b' ');
        let first = &rest[..sp.unwrap_or(rest.len())];
        let first_is_tag = first.ends_with(':');
        let (host, tagstart) = if want_host && !first_is_tag && sp.is_some() {
            (first, i + first.len() + 1)
        } else {
            ("", i)
        };
        let tb = &line[skip_spaces(b, tagstart)..];
        let tag = tag_of(tb.as_bytes())?;
        let msg = tb.get(tag.end + 2..).unwrap_or("");
        let tag_text = &tb[..tag.end];
        match tag.bracket {
            Some(lb) => {
                if tag.space.is_some_and(|sp| sp < lb) {
                    return None;
                }
                let pid = match tag_text.as_bytes()[lb + 1..].last() {
                    Some(b']') => pid_in(tb.as_bytes(), lb + 1, tag.end - 1),
                    _ => None,
                };
                Some((host, &tag_text[..lb], pid, msg))
            }
            None if tag.space.is_some() => None,
            None => Some((host, tag_text, None, msg)),
        }
    }

    /// Host, program, pid and message are what slicing them from the line gave, with and
    /// without a host, for hosts and tags of every shape over the bytes that delimit them,
    /// non-ASCII text among them.
    #[test]
    fn host_and_tag_cut_at_their_delimiters_are_the_slices() {
        let pieces = [
            "mx", " ", "  ", ":", "[", "]", "12", "é", "p/q", ": msg é", "\u{3000}",
        ];
        let mut checked = 0;
        for t in &crate::testing::joins(&pieces, 5) {
            for lead in ["", " ", "host ", "hé "] {
                let line = format!("Dec  4 12:00:00 {lead}{t}");
                for want_host in [true, false] {
                    assert_eq!(
                        host_prog(&line, 15, want_host),
                        host_prog_by_slices(&line, 15, want_host),
                        "{line:?} {want_host}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1_000_000, "{checked}");
    }

    #[test]
    fn the_one_pass_tag_split_agrees_with_the_searches() {
        // Every string of up to 6 bytes over the characters that matter, behind a program
        // name, and a few whole tags.
        let alphabet = [b':', b' ', b'[', b']', b'7', b'p'];
        let mut cases: Vec<String> = vec![
            "postfix/smtpd[123]: connect from x".into(),
            "dovecot: imap-login: Login: user=<a>".into(),
            "exim[1 2]: x".into(),
            "a b[1]: x".into(),
            "a[1] b: x".into(),
            "prog:".into(),
            ":".into(),
            "".into(),
        ];
        for len in 0..=6 {
            let mut n = vec![0usize; len];
            loop {
                let tail: Vec<u8> = n.iter().map(|&d| alphabet[d]).collect();
                cases.push(format!("sm{}", String::from_utf8(tail).unwrap()));
                let Some(i) = (0..len).rev().find(|&i| n[i] + 1 < alphabet.len()) else {
                    break;
                };
                n[i] += 1;
                n[i + 1..].iter_mut().for_each(|d| *d = 0);
            }
        }
        // The same behind 0 to 17 more bytes of program name, so that every byte that
        // matters falls on every place of `tag_of`'s sixteen-byte chunks and in its tail.
        let cases: Vec<String> = cases
            .iter()
            .flat_map(|c| (0..=17).map(move |k| format!("{}{c}", "x".repeat(k))))
            .collect();
        for tb in &cases {
            let line = format!("Dec  4 12:00:00 {tb}");
            let got = host_prog(&line, 16, false).map(|(_, prog, pid, msg)| (prog, pid, msg));
            assert_eq!(got, tag_split_by_searches(tb), "{tb:?}");
        }
    }

    #[test]
    fn tag_bytes_are_found_wherever_they_are() {
        // Every byte value in every place of a chunk, alone and beside the bytes that matter.
        for fill in [b'x', b':', b' ', 0x80] {
            for at in 0..CHUNK_BYTES {
                for v in 0..=255u8 {
                    let mut c = [fill; CHUNK_BYTES];
                    c[at] = v;
                    assert_eq!(tag_bytes(&c), tag_bytes_bytewise(&c), "{fill} {at} {v}");
                }
            }
        }
        let mut c = [b'a'; CHUNK_BYTES];
        c[0] = b':';
        c[7] = b'[';
        c[15] = b' ';
        assert_eq!(tag_bytes(&c), 1 | 1 << 7 | 1 << 15);
    }

    #[test]
    fn pids_read_as_str_parse_reads_them() {
        for p in [
            "",
            "+",
            "-",
            "0",
            "+0",
            "-1",
            "123",
            "+123",
            "00042",
            "999999999",
            "+999999999",
            "1000000000",
            "12345678a",
            "0000000001234",
            "4294967295",
            "4294967296",
            "99999999999",
            "12a",
            "a12",
            " 1",
            "1 ",
            "１",
            "٣",
        ] {
            assert_eq!(pid_of(p.as_bytes()), p.parse::<u32>().ok(), "{p:?}");
            // In a tag, with the rest of a line after it: the word read gives the same.
            let t = format!("x[{p}]: message text");
            assert_eq!(
                pid_in(t.as_bytes(), 2, 2 + p.len()),
                p.parse::<u32>().ok(),
                "{p:?}"
            );
            // At the very end of a line (no word's bytes after it).
            let t = format!("x[{p}]");
            assert_eq!(
                pid_in(t.as_bytes(), 2, 2 + p.len()),
                p.parse::<u32>().ok(),
                "{p:?}"
            );
        }
    }

    /// A word of one to eight digits reads as the byte loop reads them, whatever byte stands
    /// in any place of the digits (every value for a tenth of the numbers) and whatever
    /// follows them in the word; a word with anything but digits (a `+` the loop takes
    /// included) is refused, for the loop to read.
    #[test]
    fn a_word_of_digits_reads_as_the_byte_loop() {
        let pid_of = |d: &[u8]| {
            d.iter()
                .all(u8::is_ascii_digit)
                .then(|| pid_of(d))
                .flatten()
        };
        let mut checked = 0;
        for n in 1..=PID_WORD_DIGITS {
            for seed in 0..200u64 {
                let digits: Vec<u8> = (0..n as u64)
                    .map(|i| b'0' + ((seed * 7_919 + i * 104_729 + i * i * seed) % 10) as u8)
                    .collect();
                for tail in [b']', 0xFF, b'9', 0, b'0'] {
                    let mut w = [tail; PID_WORD_DIGITS];
                    w[..n].copy_from_slice(&digits);
                    assert_eq!(digits_word(&w, n), pid_of(&w[..n]), "{w:?} {n}");
                    checked += 1;
                    if seed % 10 != 0 {
                        continue;
                    }
                    for at in 0..n {
                        for c in 0..=255u8 {
                            let mut v = w;
                            v[at] = c;
                            assert_eq!(digits_word(&v, n), pid_of(&v[..n]), "{v:?} {n}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 400_000, "{checked}");
    }

    fn ctx() -> TimeContext {
        TimeContext::utc(2026)
    }

    /// A run of lines read with the last stamp remembered gives what each line gives read
    /// without it (the memo cleared first), year state included: repeated stamps, fractions
    /// after a repeated stamp, unpadded days, a new year, a zone with a daylight-saving change,
    /// and a reference time in the past, which moves the year back at every line (so a stamp
    /// repeated is not the same time). Seen to fail when the memo's time was used whatever
    /// the year.
    #[test]
    fn the_last_stamp_remembered_reads_as_read_afresh() {
        let lines = [
            "Dec 31 23:59:59 h postfix/smtpd[1]: a",
            "Dec 31 23:59:59 h postfix/smtpd[1]: b",
            "Dec 31 23:59:59.25 h postfix/smtpd[1]: c",
            "Dec 31 23:59:59.5 h postfix/qmgr[2]: d",
            "Jan  1 00:00:00 h postfix/smtpd[1]: e",
            "Jan  1 00:00:00 h postfix/smtpd[1]: f",
            "Jan 1 00:00:00 h postfix/smtpd[1]: g",
            "Jan 1 00:00:00 i postfix/smtpd[1]: h",
            "Jan  1 00:00:0x h postfix/smtpd[1]: bad",
            "Jan  1 00:00:00 h postfix/smtpd[1]: i",
            "Mar 29 02:30:00 h postfix/smtpd[1]: j",
            "Mar 29 02:30:00 h postfix/smtpd[1]: k",
            "Oct 25 02:30:00 h postfix/smtpd[1]: l",
            "Oct 25 02:30:00 h postfix/smtpd[1]: m",
        ];
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let contexts = |reference: Option<i64>| {
            let mut c = TimeContext::new(2026, berlin.clone());
            if let Some(r) = reference {
                c.set_reference(Ts(r * MICROS));
            }
            c
        };
        // No reference; a reference in 2020 (every 2026 date lies in its future).
        for reference in [None, Some(1_577_836_800)] {
            let (mut kept, mut afresh) = (contexts(reference), contexts(reference));
            for line in lines {
                afresh.last_stamp = None;
                let a = parse_header(line, &mut kept).map(|h| (h.ts, h.host, h.msg));
                let b = parse_header(line, &mut afresh).map(|h| (h.ts, h.host, h.msg));
                assert_eq!(a, b, "{line}");
                assert_eq!(
                    (kept.year(), kept.last_month()),
                    (afresh.year(), afresh.last_month()),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn rfc3164() {
        let h = parse_header(
            "Nov 20 10:47:15 host postfix/submission/smtpd[123]: connect from x[1.2.3.4]",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.ts.rfc3339(), "2026-11-20T10:47:15Z");
        assert_eq!(h.host, "host");
        assert_eq!(h.program, "postfix/submission/smtpd");
        assert_eq!(h.pid, Some(123));
        assert_eq!(h.msg, "connect from x[1.2.3.4]");
        let h = parse_header(
            "Feb  5 15:10:17 z1 dovecot: master: Dovecot v2.2.33.2",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.program, "dovecot");
        assert_eq!(h.pid, None);
        assert_eq!(h.msg, "master: Dovecot v2.2.33.2");
        let h = parse_header(
            "Nov 20 10:47:15.250000 host postfix/qmgr[9]: ABC: removed",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.ts.rfc3339(), "2026-11-20T10:47:15.250000Z");
    }

    #[test]
    fn rfc3339() {
        let h = parse_header(
            "2024-08-29T01:08:59.764590+02:00 machine postfix/smtpd[1938053]: NOQUEUE: reject: x",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.ts.rfc3339(), "2024-08-28T23:08:59.764590Z");
        assert_eq!(h.host, "machine");
        assert_eq!(h.msg, "NOQUEUE: reject: x");
    }

    #[test]
    fn exim_native() {
        let h = parse_header(
            "2020-02-22 01:01:56 1j5IF1-0006A7-Ub <= root@x U=root P=local S=1",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.stamp, StampKind::Exim);
        assert_eq!(h.msg, "1j5IF1-0006A7-Ub <= root@x U=root P=local S=1");
        let h = parse_header(
            "2020-02-22 01:01:56 [1234] 1j5IF1-0006A7-Ub Completed",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.pid, Some(1234));
        assert_eq!(h.msg, "1j5IF1-0006A7-Ub Completed");
        let h = parse_header(
            "2020-02-22 01:01:56 +0100 1j5IF1-0006A7-Ub Completed",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.ts.rfc3339(), "2020-02-22T00:01:56Z");
        assert_eq!(h.msg, "1j5IF1-0006A7-Ub Completed");
    }

    #[test]
    fn rfc5424_and_pri() {
        let h = parse_header(
            "<22>1 2026-11-20T10:47:15Z mx1 postfix/smtpd 4242 - - connect from a[1.2.3.4]",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.program, "postfix/smtpd");
        assert_eq!(h.pid, Some(4242));
        assert_eq!(h.msg, "connect from a[1.2.3.4]");
        let h = parse_header(
            "<22>1 2026-11-20T10:47:15Z mx1 app - - [x@1 a=\"]\"] hello",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.msg, "hello");
        let h = parse_header("<22>Nov 20 10:47:15 mx1 postfix/smtpd[1]: hi", &mut ctx()).unwrap();
        assert_eq!(h.msg, "hi");
    }

    #[test]
    fn tai64n() {
        let h = parse_header(
            "@400000004c91b044077a9e94 dovecot-auth: pam_unix(dovecot:auth): authentication failure",
            &mut ctx(),
        )
        .unwrap();
        assert_eq!(h.program, "dovecot-auth");
        assert_eq!(h.ts.secs(), 0x4c91b044 - 10);
        // Seconds whose microseconds overflow i64: no header (this panicked in debug builds).
        for label in ["@450000004c91b044077a9e94", "@ffffffffffffffff077a9e94"] {
            assert!(parse_header(&format!("{label} dovecot: x"), &mut ctx()).is_none());
        }
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            "",
            "x",
            "Nov 99 10:47:15 h p: m",
            "2026-13-01 00:00:00 x",
            "<999999>",
            "@4000zz",
        ] {
            let _ = parse_header(s, &mut ctx());
        }
        assert!(parse_header("hello world this is not a log line", &mut ctx()).is_none());
    }
}
