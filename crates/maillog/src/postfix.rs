//! Postfix log messages (the part after `postfix/<daemon>[pid]: `).
//!
//! Postfix writes a small number of message families, most of them shared by several daemons:
//!
//! - queue-file lines `QID: …` (`client=`, `message-id=`, `from=… (queue active)`, `to=… status=`,
//!   `removed`, bounce notices), where `QID` is a short (upper-case hex) or long
//!   (`[0-9A-Za-z]`, `enable_long_queue_ids`) queue id, or `NOQUEUE` before a queue file exists;
//! - access and content checks `QID|NOQUEUE: <action>: <STAGE> from host[ip]: <reply>; from=<…>
//!   to=<…> proto=… helo=<…>` (smtpd, postscreen, and cleanup's `header`/`body` checks and milter
//!   actions);
//! - session lines without a queue id (`connect from`, `disconnect from … commands=…`,
//!   `lost connection after …`, TLS, postscreen verdicts, statistics);
//! - severity-tagged lines `warning:`/`error:`/`fatal:`/`panic:`, among them SMTP AUTH failures
//!   (`warning: host[ip]: SASL LOGIN authentication failed: …`);
//! - `-v` debugging chatter (`send attr …`, `qmgr_active_feed: …`), counted as `debug`.
//!
//! The parser mostly keys on the message shape rather than on the daemon name, because sites
//! rename services (`postfix/submission/smtpd`, `postfix-out/smtp`) and some collectors drop the
//! program altogether. The daemon only names the delivery transport and picks the `Info` name for
//! statistics and lifecycle lines.
//!
//! Everything is borrowed from the message; nothing allocates. Scanning uses `str::find` and
//! byte loops (no regular expressions).

use crate::bytes::find;
use crate::event::{
    peer_brackets, unbracket, Action, Delay, DeliveryStatus, Event, NoticeKind, Peer, Service,
};

/// Shortest short (hexadecimal) queue id accepted. Real ones are 6–12 characters; test data and
/// small inode numbers give shorter ones (`0F5383D`), so allow a little less.
pub const MIN_SHORT_QID: usize = 5;
/// Longest queue id accepted (long ids are 12–17 characters; some sites log 21-digit short ids).
pub const MAX_QID: usize = 24;
/// Shortest long (`enable_long_queue_ids`) queue id accepted.
pub const MIN_LONG_QID: usize = 10;

/// Parse the message of a Postfix daemon (`daemon` is the last component of the program name:
/// `smtpd`, `qmgr`, `smtp`, `cleanup`…). `None` when the line is not understood.
pub fn parse<'a>(daemon: &'a str, msg: &'a str) -> Option<Event<'a>> {
    let mut msg = msg;
    while let Some(m) = msg.strip_suffix('\n').or_else(|| msg.strip_suffix('\r')) {
        msg = m;
    }
    match split_qid(msg) {
        Some((qid, rest)) => queue_line(daemon, qid, rest),
        None => plain_line(daemon, msg),
    }
}

/// What a byte is in a queue id ([`QID_BYTES`]): a bit each, or-ed over an id's bytes.
const QID_DIGIT: u8 = 1;
/// `A`–`F`: a short id's letters.
const QID_HEX_LETTER: u8 = 2;
/// Any other ASCII letter: only in long ids.
const QID_OTHER_LETTER: u8 = 4;
/// Any byte that is in no queue id.
const QID_NOT: u8 = 8;

/// Each byte's queue-id class (see [`QID_DIGIT`]).
const QID_BYTES: [u8; 256] = {
    let mut t = [QID_NOT; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_digit() {
            t[c] = QID_DIGIT;
        } else if matches!(b, b'A'..=b'F') {
            t[c] = QID_HEX_LETTER;
        } else if b.is_ascii_alphabetic() {
            t[c] = QID_OTHER_LETTER;
        }
        c += 1;
    }
    t
};

/// The classes of `b`'s bytes, or-ed.
fn qid_classes(b: &[u8]) -> u8 {
    b.iter().fold(0, |seen, &c| seen | QID_BYTES[c as usize])
}

/// Whether an id `len` bytes long whose bytes have the classes `seen` is a queue id: short
/// upper-case hex, or long `[0-9A-Za-z]` with a digit.
fn is_qid_shape(len: usize, seen: u8) -> bool {
    (MIN_SHORT_QID..=MAX_QID).contains(&len)
        && seen & QID_NOT == 0
        && (seen & QID_OTHER_LETTER == 0 || (len >= MIN_LONG_QID && seen & QID_DIGIT != 0))
}

/// Bytes [`qid_head`] classifies at once: the first [`MAX_QID`] + 1 of a line, rounded up to
/// two vector registers.
const QID_HEAD_BYTES: usize = 32;

/// The first `:` in the first [`MAX_QID`] + 1 bytes of `b`, and the classes ([`QID_BYTES`]) of
/// the bytes before it, or-ed. Every Postfix line asks (ten million times on the benchmark
/// log): a line of [`QID_HEAD_BYTES`] or more has its head classified with a few vector
/// compares ([`qid_head_vector`]), where the byte loop ([`qid_head_bytewise`]; a `memchr` and a
/// second pass before it, about 130 instructions) cost about 130 instructions a line, most on
/// lines without a queue id, whose loop runs to the limit.
fn qid_head(b: &[u8]) -> Option<(usize, u8)> {
    match b.first_chunk::<QID_HEAD_BYTES>() {
        Some(head) => qid_head_vector(head),
        None => qid_head_bytewise(b),
    }
}

/// [`qid_head`] a byte at a time (short lines; the tests' reference for the vector one).
fn qid_head_bytewise(b: &[u8]) -> Option<(usize, u8)> {
    let lim = b.len().min(MAX_QID + 1);
    let mut seen = 0;
    let colon = b[..lim].iter().position(|&c| {
        let end = c == b':';
        if !end {
            seen |= QID_BYTES[c as usize];
        }
        end
    })?;
    Some((colon, seen))
}

/// [`qid_head`] of a line's first [`QID_HEAD_BYTES`]: one bit a byte for the `:`, digits,
/// `A`–`F` and ASCII letters ([`HeadMasks`]), then the classes of the bytes before the first
/// `:` from those masks.
fn qid_head_vector(head: &[u8; QID_HEAD_BYTES]) -> Option<(usize, u8)> {
    let m = HeadMasks::of(head);
    let colon = m.colon & ((1u32 << (MAX_QID + 1)) - 1);
    if colon == 0 {
        return None;
    }
    let at = colon.trailing_zeros() as usize;
    let before = (1u32 << at) - 1;
    let class = |mask: u32, class: u8| if mask & before != 0 { class } else { 0 };
    let seen = class(m.digit, QID_DIGIT)
        | class(m.hex_letter, QID_HEX_LETTER)
        | class(m.letter & !m.hex_letter, QID_OTHER_LETTER)
        | class(!(m.digit | m.letter), QID_NOT);
    Some((at, seen))
}

/// Bit `i` set where byte `i` of a line's head is of the kind (see [`qid_head_vector`]).
#[derive(Debug, PartialEq, Eq)]
struct HeadMasks {
    colon: u32,
    digit: u32,
    /// `A`–`F`.
    hex_letter: u32,
    /// `A`–`Z` and `a`–`z`.
    letter: u32,
}

impl HeadMasks {
    /// With SSE2 (in every x86-64 processor): a compare for the `:` and an unsigned range
    /// check each for the rest, sixteen bytes at a time.
    #[cfg(target_arch = "x86_64")]
    fn of(head: &[u8; QID_HEAD_BYTES]) -> HeadMasks {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        /// Bytes `v` in `lo..lo + n`: `v - lo < n` unsigned, as a signed compare of both sides
        /// moved by 128.
        #[inline(always)]
        fn in_range(v: __m128i, lo: u8, n: u8) -> __m128i {
            // SAFETY: SSE2 is in the x86-64 baseline.
            unsafe {
                let moved = _mm_add_epi8(v, _mm_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
                _mm_cmplt_epi8(moved, _mm_set1_epi8(0x80u8.wrapping_add(n) as i8))
            }
        }
        let half = |at: usize| -> [u32; 4] {
            // SAFETY: SSE2 is in the x86-64 baseline; the unaligned load reads bytes
            // at..at + 16 of `head`, which has 32.
            unsafe {
                let v = _mm_loadu_si128(head.as_ptr().add(at).cast());
                let mask = |x: __m128i| _mm_movemask_epi8(x) as u32;
                [
                    mask(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8))),
                    mask(in_range(v, b'0', 10)),
                    mask(in_range(v, b'A', 6)),
                    // Letters of either case: lower-case is upper-case with bit 5 set.
                    mask(in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', 26)),
                ]
            }
        };
        let (lo, hi) = (half(0), half(16));
        let join = |i: usize| lo[i] | hi[i] << 16;
        HeadMasks {
            colon: join(0),
            digit: join(1),
            hex_letter: join(2),
            letter: join(3),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn of(head: &[u8; QID_HEAD_BYTES]) -> HeadMasks {
        HeadMasks::bytewise(head)
    }

    /// [`HeadMasks::of`] a byte at a time (the other architectures', and the tests' reference).
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    fn bytewise(head: &[u8; QID_HEAD_BYTES]) -> HeadMasks {
        let mut m = HeadMasks {
            colon: 0,
            digit: 0,
            hex_letter: 0,
            letter: 0,
        };
        for (i, &c) in head.iter().enumerate() {
            let bit = |yes: bool| u32::from(yes) << i;
            m.colon |= bit(c == b':');
            m.digit |= bit(c.is_ascii_digit());
            m.hex_letter |= bit((b'A'..=b'F').contains(&c));
            m.letter |= bit(c.is_ascii_alphabetic());
        }
        m
    }
}

/// Is `s` a Postfix queue id (short upper-case hex, or long `[0-9A-Za-z]` with a digit)?
pub fn is_qid(s: &str) -> bool {
    is_qid_shape(s.len(), qid_classes(s.as_bytes()))
}

/// `QID: rest` -> (Some(qid), rest); `NOQUEUE: rest` -> (None, rest); otherwise `None`.
/// The `:` is looked for and the id's bytes classified in one pass over at most
/// [`MAX_QID`] + 1 bytes ([`qid_head`]).
fn split_qid(msg: &str) -> Option<(Option<&str>, &str)> {
    let b = msg.as_bytes();
    let (colon, seen) = qid_head(b)?;
    if b.get(colon + 1) != Some(&b' ') {
        return None;
    }
    let head = &msg[..colon];
    let rest = &msg[colon + 2..];
    if head == "NOQUEUE" {
        Some((None, rest))
    } else if is_qid_shape(colon, seen) {
        Some((Some(head), rest))
    } else {
        None
    }
}

/// Byte offset of the last `needle` in `hay` (see [`find`]).
fn rfind(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let k = n.iter().position(|&c| c != b' ')?;
    memchr::memrchr_iter(n[k], h)
        .filter(|&i| i >= k)
        .map(|i| i - k)
        .find(|&i| h[i..].starts_with(n))
}

/// Bytes that end a `key` in a `key=value` list.
const KEY_STOP: [u8; 5] = [b'=', b' ', b',', b'(', b';'];

fn info<'a>(what: &'static str, qid: Option<&'a str>, client: Option<Peer<'a>>) -> Event<'a> {
    Event::Info { what, qid, client }
}

// ---------------------------------------------------------------------------------------------
// Small scanners

/// A peer at the start of `s`: `host[ip]`, `host[ip]:port` or `[ip]:port`, without spaces before
/// the `[`. Returns the peer and the text after it.
fn take_peer(s: &str) -> Option<(Peer<'_>, &str)> {
    let b = s.as_bytes();
    let lb = crate::bytes::find_byte2(b, b'[', b' ')?;
    if b[lb] != b'[' {
        return None;
    }
    let rb = lb + crate::bytes::find_byte(&b[lb..], b']')?;
    let mut end = rb + 1;
    let mut port = None;
    if b.get(end) == Some(&b':') {
        let digits = b[end + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 {
            port = s[end + 1..end + 1 + digits].parse().ok();
            end += 1 + digits;
        }
    }
    // Same shape as `peer_brackets`, without scanning the text again.
    let (host, ip) = (&s[..lb], &s[lb + 1..rb]);
    let peer = Peer {
        host: Some(host).filter(|h| !h.is_empty()),
        ip: Some(ip).filter(|i| !i.is_empty()),
        port,
    };
    Some((peer, &s[end..]))
}

/// The peer after the first `marker` (e.g. `" from "`) in `s`.
fn peer_after<'a>(s: &'a str, marker: &str) -> Option<Peer<'a>> {
    let i = find(s, marker)?;
    take_peer(&s[i + marker.len()..]).map(|(p, _)| p)
}

/// An IP address text (v4 or v6) as a peer with only `ip` set.
fn ip_peer(s: &str) -> Option<Peer<'_>> {
    crate::ip::parse(s)?;
    Some(Peer {
        host: None,
        ip: Some(s),
        port: None,
    })
}

/// Iterator over `key=value` pairs separated by spaces and/or commas, as Postfix writes them
/// (`to=<a>, relay=x[ip]:25, delay=1` or `from=<a> to=<b> proto=ESMTP helo=<h>`). A value in
/// angle brackets runs to the first `>` that ends a token, so it may contain spaces and commas.
/// Iteration stops at the first token that is not `key=value`; [`Kv::rest`] gives what is left.
///
/// It reads the text through a cursor and searches the whole text from it, and cuts each key
/// and value at its delimiters without checking the boundaries again (`bytes::between_boundaries`):
/// it sliced the remainder again three times a pair, every slice checked, and `Kv::next`
/// took about 1,940 M instructions of `analyze`'s 48,077 M on the benchmark log; now about
/// 1,190 M (docs/PERFORMANCE.md, "Steps of 2026-12-08").
struct Kv<'a> {
    s: &'a str,
    /// Where the next pair's search starts: 0 or just after an ASCII byte (a separator or a
    /// value's end), so always a character boundary.
    at: usize,
}

impl<'a> Kv<'a> {
    fn new(s: &'a str) -> Self {
        Kv { s, at: 0 }
    }

    /// Unparsed remainder (after the last pair returned).
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
}

impl<'a> Iterator for Kv<'a> {
    type Item = (&'a str, &'a str);

    // Inlined into its callers' loops: called about 3.5 times a line, and as a call its
    // prologue, epilogue and the pair returned through memory were about 17 instructions
    // (`#[inline]` alone left it a call).
    #[inline(always)]
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let b = self.s.as_bytes();
        let mut start = self.at;
        while let Some(b' ' | b',') = b.get(start) {
            start += 1;
        }
        let eq = crate::bytes::find_any_from(b, start, KEY_STOP)?;
        if b[eq] != b'=' || eq == start {
            self.at = start;
            return None;
        }
        let v = eq + 1;
        let end = if b.get(v) == Some(&b'<') {
            // First '>' followed by the end, a separator or a ':' (cleanup's trailing text).
            let mut i = v + 1;
            let mut end = b.len();
            while let Some(j) = crate::bytes::find_byte_from(b, i, b'>') {
                match b.get(j + 1) {
                    None | Some(b' ') | Some(b',') | Some(b':') | Some(b';') => {
                        end = j + 1;
                        break;
                    }
                    _ => i = j + 1,
                }
            }
            end
        } else {
            crate::bytes::find_byte2_from(b, v, b' ', b',').unwrap_or(b.len())
        };
        self.at = end;
        // SAFETY: `start` is 0, the end of the last value or after separators (ASCII), `eq`
        // is an `=` at or after it, `v` the place after that `=`, and `end` a `>`'s next place,
        // the place of a separator at or after `v`, or the text's end: every one a character
        // boundary, in order, within the text.
        let (key, value) = unsafe {
            (
                crate::bytes::between_boundaries(self.s, start, eq),
                crate::bytes::between_boundaries(self.s, v, end),
            )
        };
        Some((key, value))
    }
}

/// Envelope fields of a check line (`from=<a> to=<b> proto=ESMTP helo=<h>`).
#[derive(Default)]
struct Envelope<'a> {
    from: Option<&'a str>,
    to: Option<&'a str>,
    proto: Option<&'a str>,
    helo: Option<&'a str>,
}

fn envelope(kv: &str) -> Envelope<'_> {
    let mut e = Envelope::default();
    for (k, v) in Kv::new(kv) {
        match k {
            "from" => e.from = Some(unbracket(v)),
            "to" => e.to = Some(unbracket(v)),
            "proto" => e.proto = Some(v),
            "helo" => e.helo = Some(unbracket(v)),
            _ => {}
        }
    }
    e
}

/// Where the envelope of a check line starts (the `; ` before `from=<`, `to=<`, `proto=`…).
/// The reply text itself may contain `; ` (`Service unavailable; Client host … blocked`), so
/// take the last `;` that is followed by one of the keys.
fn envelope_start(s: &str) -> Option<usize> {
    memchr::memrchr_iter(b';', s.as_bytes()).find(|&i| {
        let r = &s[i + 1..];
        r.starts_with(" from=")
            || r.starts_with(" to=")
            || r.starts_with(" proto=")
            || r.starts_with(" helo=")
    })
}

// ---------------------------------------------------------------------------------------------
// Lines with a queue id (or NOQUEUE)

fn queue_line<'a>(daemon: &'a str, qid: Option<&'a str>, rest: &'a str) -> Option<Event<'a>> {
    if rest.starts_with("to=") {
        return Some(delivery(daemon, qid, rest));
    }
    if rest.starts_with("from=") {
        return Some(queued(qid, rest));
    }
    if rest.starts_with("client=") {
        return Some(client(qid, rest));
    }
    if let Some(id) = rest.strip_prefix("message-id=") {
        return Some(match qid {
            Some(qid) => Event::MessageId {
                qid,
                message_id: unbracket(id.trim_end()),
            },
            None => info("message-id", None, None),
        });
    }
    if rest.starts_with("resent-message-id=") {
        return Some(info("resent-message-id", qid, None));
    }
    if rest.starts_with("uid=") {
        return Some(pickup(qid, rest));
    }
    if rest == "removed" {
        return Some(match qid {
            Some(qid) => Event::Removed { qid },
            None => info("removed", None, None),
        });
    }
    // Checks before notices: a check line (a fifth of a busy server's lines) is known by its
    // first word, a notice only by the text before its last `:`, which meant a search of the
    // whole line from its end first. A check's text can end in ` notification: …` (a header
    // check on a subject line); it is a check.
    if let Some(ev) = check(qid, rest) {
        return Some(ev);
    }
    if let Some(ev) = notice(qid, rest) {
        return Some(ev);
    }
    if let Some(w) = severity(rest) {
        return Some(warning(w, qid));
    }
    queue_info(qid, rest)
}

/// `to=<a>, orig_to=<b>, relay=…, delay=…, delays=…, dsn=…, status=sent (reply)`.
fn delivery<'a>(daemon: &'a str, qid: Option<&'a str>, rest: &'a str) -> Event<'a> {
    let mut to = "";
    let mut orig_to = None;
    let mut relay = None;
    let mut delay = None;
    let mut delays = None;
    let mut dsn = None;
    let mut status = None;
    let mut kv = Kv::new(rest);
    // Chosen by the key's length first, then one comparison (two for five and six letters):
    // matched in order, a key was compared with every name before its own, and `status`,
    // always the last, with all seven (about 15 instructions a key, seven keys a line).
    for (k, v) in kv.by_ref() {
        match k.len() {
            2 if k == "to" => to = unbracket(v),
            3 if k == "dsn" => dsn = Some(v),
            5 if k == "relay" => relay = Some(v),
            5 if k == "delay" => delay = Some(Delay(v)),
            6 if k == "delays" => delays = Some(v),
            6 if k == "status" => {
                status = Some(v);
                break;
            }
            7 if k == "orig_to" => orig_to = Some(unbracket(v)),
            _ => {}
        }
    }
    let st = status.and_then(delivery_status);
    let (Some(qid), Some(status)) = (qid, st) else {
        return info("delivery", qid, None);
    };
    let after = kv.rest();
    // The reply in parentheses: from the first `(` to the last `)` (memchr's searches: the
    // standard library's `find(char)` and `rfind(char)` were about 240 instructions a line).
    let ab = after.as_bytes();
    let reply = crate::bytes::find_byte(ab, b'(').and_then(|l| {
        crate::bytes::rfind_byte(ab, b')')
            .filter(|&r| r > l)
            .map(|r| &after[l + 1..r])
    });
    Event::Delivery {
        qid,
        to,
        orig_to,
        relay,
        transport: Some(daemon),
        delay,
        delays,
        dsn,
        status,
        reply,
    }
}

fn delivery_status(s: &str) -> Option<DeliveryStatus> {
    Some(match s {
        "sent" => DeliveryStatus::Sent,
        "deferred" | "SOFTBOUNCE" => DeliveryStatus::Deferred,
        "bounced" => DeliveryStatus::Bounced,
        "expired" => DeliveryStatus::Expired,
        "deliverable" => DeliveryStatus::Deliverable,
        "undeliverable" | "undeliverable-but-not-cached" => DeliveryStatus::Undeliverable,
        _ => return None,
    })
}

/// qmgr `from=<a>, size=N, nrcpt=N (queue active)` or `from=<a>, status=expired, returned to
/// sender`.
fn queued<'a>(qid: Option<&'a str>, rest: &'a str) -> Event<'a> {
    let mut from = None;
    let mut size = None;
    let mut nrcpt = None;
    let mut expired = false;
    for (k, v) in Kv::new(rest) {
        match k {
            "from" => from = Some(unbracket(v)),
            "size" => size = v.parse().ok(),
            "nrcpt" => nrcpt = v.parse().ok(),
            "status" => expired = v == "expired",
            _ => {}
        }
    }
    let (Some(qid), Some(from)) = (qid, from) else {
        return info("queued", qid, None);
    };
    if expired {
        return Event::Expired { qid, from };
    }
    Event::Queued {
        qid,
        from,
        size,
        nrcpt,
        client: None,
        helo: None,
        auth_user: None,
        local_user: None,
        proto: None,
        message_id: None,
        parent: None,
    }
}

/// smtpd `client=host[ip], sasl_method=…, sasl_username=…, orig_queue_id=…`.
fn client<'a>(qid: Option<&'a str>, rest: &'a str) -> Event<'a> {
    let mut peer = None;
    let mut sasl_method = None;
    let mut sasl_username = None;
    let mut orig_qid = None;
    for (k, v) in Kv::new(rest) {
        match k {
            "client" => peer = peer_brackets(v),
            "sasl_method" => sasl_method = Some(v),
            "sasl_username" => sasl_username = Some(v),
            "orig_queue_id" => orig_qid = Some(v),
            _ => {}
        }
    }
    match qid {
        Some(qid) => Event::Client {
            qid,
            client: peer.unwrap_or_default(),
            sasl_method,
            sasl_username,
            uid: None,
            from: None,
            orig_qid,
        },
        None => info("client", None, peer),
    }
}

/// pickup `uid=N from=<a>`.
fn pickup<'a>(qid: Option<&'a str>, rest: &'a str) -> Event<'a> {
    let mut uid = None;
    let mut from = None;
    let mut orig_qid = None;
    for (k, v) in Kv::new(rest) {
        match k {
            "uid" => uid = v.parse().ok(),
            "from" => from = Some(unbracket(v)),
            "orig_id" => orig_qid = Some(v),
            _ => {}
        }
    }
    match qid {
        Some(qid) => Event::Client {
            qid,
            client: Peer::default(),
            sasl_method: None,
            sasl_username: None,
            uid,
            from,
            orig_qid,
        },
        None => info("pickup", None, None),
    }
}

/// bounce/defer/trace `sender non-delivery notification: NEWQID`.
fn notice<'a>(qid: Option<&'a str>, rest: &'a str) -> Option<Event<'a>> {
    let c = memchr::memrchr(b':', rest.as_bytes())?;
    let what = rest[..c].strip_suffix(" notification")?;
    let new = rest[c + 1..].trim();
    let kind = match what {
        "sender non-delivery" => NoticeKind::NonDelivery,
        "postmaster non-delivery" => NoticeKind::PostmasterNonDelivery,
        "sender delay" => NoticeKind::Delay,
        "sender delivery status" => NoticeKind::Success,
        w if w.ends_with(" delay") || w.ends_with(" non-delivery") || w.ends_with(" status") => {
            NoticeKind::Other
        }
        _ => return None,
    };
    Some(match qid {
        Some(qid) if is_qid(new) => Event::Notice {
            qid,
            kind,
            notice_qid: new,
        },
        _ => info("notice", qid, None),
    })
}

/// Longest action word of a check line (`milter-header-redirect`, with room to spare).
const MAX_ACTION: usize = 32;

fn check_action(a: &str) -> Option<Action> {
    Some(match a {
        "reject" | "milter-reject" | "proxy-reject" => Action::Reject,
        "defer" | "defer_if_permit" | "defer_if_reject" | "milter-tempfail" => Action::Defer,
        "permit" | "proxy-accept" => Action::Permit,
        "hold" | "milter-hold" => Action::Hold,
        "discard" | "milter-discard" => Action::Discard,
        "warn" | "warning" | "info" | "reject_warning" => Action::Warn,
        "filter" => Action::Filter,
        "redirect" | "bcc" | "milter-header-redirect" => Action::Redirect,
        "replace" | "prepend" | "strip" => Action::Modify,
        a if a.starts_with("milter-header-") || a.starts_with("milter-body-") => Action::Modify,
        _ => return None,
    })
}

/// Check lines: `<action>: <STAGE> from host[ip]: <reply>; from=<a> to=<b> proto=P helo=<h>`,
/// cleanup `<action>: header <name>: <value> from host[ip]; from=<a> …[: text]`, and
/// `proxy-reject: END-OF-MESSAGE: <reply>; from=…`.
fn check<'a>(qid: Option<&'a str>, rest: &'a str) -> Option<Event<'a>> {
    let b = rest.as_bytes();
    let colon = crate::bytes::find_byte(&b[..b.len().min(MAX_ACTION + 1)], b':')?;
    if b.get(colon + 1) != Some(&b' ') {
        return None;
    }
    let action = check_action(&rest[..colon])?;
    let body = &rest[colon + 2..];
    let (head, env) = match envelope_start(body) {
        Some(k) => (&body[..k], envelope(&body[k + 2..])),
        None => (body, Envelope::default()),
    };
    let (stage, client, reason);
    if let Some(h) = head
        .strip_prefix("header ")
        .map(|h| ("header", h))
        .or_else(|| head.strip_prefix("body ").map(|h| ("body", h)))
        .or_else(|| head.strip_prefix("mime-header ").map(|h| ("header", h)))
    {
        // cleanup header/body check: the trigger text, then " from host[ip]" or " from local".
        stage = Some(h.0);
        match rfind(h.1, " from ") {
            Some(f) => {
                reason = &h.1[..f];
                client = take_peer(&h.1[f + 6..]).map(|(p, _)| p);
            }
            None => {
                reason = h.1;
                client = None;
            }
        }
    } else {
        let sp = crate::bytes::find_byte2(head.as_bytes(), b' ', b':').unwrap_or(head.len());
        stage = Some(&head[..sp]).filter(|s| !s.is_empty());
        let after = &head[sp..];
        if let Some(p) = after.strip_prefix(" from ") {
            let (peer, r) = take_peer(p)?;
            client = Some(peer);
            reason = r
                .strip_prefix(": ")
                .or_else(|| r.strip_prefix(':'))
                .unwrap_or(r);
        } else {
            client = None;
            reason = after
                .strip_prefix(": ")
                .or_else(|| after.strip_prefix(':'))
                .unwrap_or(after);
        }
    }
    Some(Event::Check {
        qid,
        action,
        stage,
        client,
        reason,
        from: env.from,
        to: env.to,
        proto: env.proto,
        helo: env.helo,
    })
}

/// Other queue-id lines: smtp/lmtp session problems, postsuper, qmgr notes.
fn queue_info<'a>(qid: Option<&'a str>, rest: &'a str) -> Option<Event<'a>> {
    let what = if let Some(h) = rest.strip_prefix("host ") {
        return Some(info("remote", qid, take_peer(h).map(|(p, _)| p)));
    } else if let Some(h) = rest.strip_prefix("lost connection with ") {
        return Some(info("lost", qid, take_peer(h).map(|(p, _)| p)));
    } else if let Some(h) = rest.strip_prefix("conversation with ") {
        return Some(info("timeout", qid, take_peer(h).map(|(p, _)| p)));
    } else if let Some(h) = rest.strip_prefix("Used TLS for ") {
        return Some(info("tls", qid, take_peer(h).map(|(p, _)| p)));
    } else if rest.starts_with("enabling PIX workarounds") {
        return Some(info("pix", qid, peer_after(rest, " for ")));
    } else if rest.starts_with("SASL authentication failed; server ") {
        return Some(info("sasl-client", qid, peer_after(rest, " server ")));
    } else if let Some((_, what)) = AFTER_PHRASES.iter().find(|(p, _)| rest.starts_with(p)) {
        return Some(info(what, qid, peer_after(rest, " from ")));
    } else if rest.starts_with("skipped, still being delivered") {
        "skipped"
    } else if matches!(
        rest,
        "placed on hold" | "released from hold" | "requeued" | "expired"
    ) {
        "postsuper"
    } else if rest.starts_with("recipient limit ")
        || rest.starts_with("sender ")
        || rest.starts_with("deferred ")
    {
        "qmgr"
    } else if find(rest, " TLS connection established ").is_some() || rest.starts_with("TLS ") {
        "tls"
    } else if rest.starts_with("connect to ") {
        return Some(info("connect", qid, peer_after(rest, "connect to ")));
    } else if rest.starts_with("discard: ") || rest.starts_with("delivery ") {
        "delivery"
    } else {
        return None;
    };
    Some(info(what, qid, None))
}

// ---------------------------------------------------------------------------------------------
// Lines without a queue id

/// Severity tags Postfix puts in front of a message, with their `Info` names.
fn severity(msg: &str) -> Option<(&'static str, &str)> {
    for (p, w) in [
        ("warning: ", "warning"),
        ("error: ", "error"),
        ("fatal: ", "fatal"),
        ("panic: ", "panic"),
    ] {
        if let Some(r) = msg.strip_prefix(p) {
            return Some((w, r));
        }
    }
    None
}

/// A `warning:`/`error:`/`fatal:` line; `text` is after the tag.
fn warning<'a>((what, text): (&'static str, &'a str), qid: Option<&'a str>) -> Event<'a> {
    // `warning: QID: text`
    let (qid, text) = match split_qid(text) {
        Some((Some(q), t)) if qid.is_none() => (Some(q), t),
        _ => (qid, text),
    };
    if let Some(ev) = sasl_failure(text) {
        return ev;
    }
    info(what, qid, warning_peer(text))
}

/// `host[ip](:port)?: SASL MECH authentication failed: reason[, sasl_username=user]`.
fn sasl_failure(text: &str) -> Option<Event<'_>> {
    let (client, r) = take_peer(text)?;
    let r = r.strip_prefix(": SASL ")?;
    let fail = find(r, " authentication failed")?;
    let mechanism = &r[..fail];
    let mut reason = r[fail + " authentication failed".len()..].trim_start_matches(':');
    reason = reason.strip_prefix(' ').unwrap_or(reason);
    let mut user = None;
    if let Some(u) = rfind(reason, ", sasl_username=") {
        user = Some(&reason[u + ", sasl_username=".len()..]);
        reason = &reason[..u];
    }
    Some(Event::AuthFailure {
        client,
        user,
        mechanism: Some(mechanism).filter(|m| !m.is_empty()),
        service: Service::Smtp,
        reason,
    })
}

/// The remote peer a warning is about, for the shapes that name one.
fn warning_peer(text: &str) -> Option<Peer<'_>> {
    // "host[ip]: …" (SASL, TLS, unverified certificates)
    if let Some((p, r)) = take_peer(text) {
        if r.starts_with(':') {
            return Some(p);
        }
    }
    // "hostname H does not resolve to address IP[: reason]"
    if let Some(r) = text.strip_prefix("hostname ") {
        let sp = r.find(' ')?;
        let host = &r[..sp];
        let ip = find(r, " address ").map(|i| &r[i + 9..])?;
        let ip = &ip[..ip.find([':', ' ']).unwrap_or(ip.len())];
        crate::ip::parse(ip)?;
        return Some(Peer {
            host: Some(host),
            ip: Some(ip),
            port: None,
        });
    }
    // "IP: address not listed for hostname H", "IP: hostname H verification failed: …"
    if let Some(c) = find(text, ": ") {
        if let Some(mut p) = ip_peer(&text[..c]) {
            let r = &text[c + 2..];
            if let Some(h) = r
                .strip_prefix("address not listed for hostname ")
                .or_else(|| r.strip_prefix("hostname "))
            {
                p.host = Some(&h[..h.find(' ').unwrap_or(h.len())]);
            }
            return Some(p);
        }
    }
    // "non-SMTP command from host[ip]: …", "Illegal address syntax from host[ip] in …", …
    peer_after(text, " from ")
}

/// Session phrases `<phrase> after <STAGE> from host[ip]`, with their `Info` names.
const AFTER_PHRASES: [(&str, &str); 6] = [
    ("lost connection after ", "lost"),
    ("timeout after ", "timeout"),
    ("too many errors after ", "errors"),
    ("improper command pipelining after ", "pipelining"),
    ("bare <LF> received after ", "bare-lf"),
    ("bare <CR> received after ", "bare-cr"),
];

fn plain_line<'a>(daemon: &'a str, msg: &'a str) -> Option<Event<'a>> {
    let first = *msg.as_bytes().first()?;
    if !first.is_ascii_lowercase() {
        // Postscreen/tlsproxy verdicts, `Anonymous TLS …`, `SSL_accept …`, `Deleted: …`, `>>> …`.
        if let Some(ev) = tls_line(msg) {
            return Some(ev);
        }
        if let Some(ev) = postscreen_line(daemon, msg) {
            return Some(ev);
        }
        return lifecycle_line(daemon, msg);
    }
    if let Some(w) = severity(msg) {
        return Some(warning(w, None));
    }
    if let Some(r) = msg.strip_prefix("connect from ") {
        return take_peer(r).map(|(client, _)| Event::Connect { client });
    }
    if let Some(r) = msg.strip_prefix("disconnect from ") {
        return take_peer(r).map(|(client, rest)| disconnect(client, rest));
    }
    for (p, what) in AFTER_PHRASES {
        if msg.starts_with(p) {
            return Some(info(what, None, peer_after(msg, " from ")));
        }
    }
    if let Some(r) = msg.strip_prefix("statistics: ") {
        let what = match daemon {
            "anvil" => "anvil",
            "scache" => "scache",
            _ => "statistics",
        };
        return Some(info(what, None, anvil_peer(r)));
    }
    if msg.starts_with("proxy-accept: ") || msg.starts_with("proxy-reject: ") {
        return check(None, msg);
    }
    for (p, what) in [
        ("connect to ", "connect"),
        ("host ", "remote"),
        ("lost connection with ", "lost"),
        ("conversation with ", "timeout"),
    ] {
        if let Some(r) = msg.strip_prefix(p) {
            if let Some((peer, _)) = take_peer(r) {
                return Some(info(what, None, Some(peer)));
            }
        }
    }
    if let Some(r) = msg.strip_prefix("addr ") {
        if find(r, " listed by domain ").is_some() {
            let ip = &r[..r.find(' ').unwrap_or(r.len())];
            return Some(info("dnsblog", None, ip_peer(ip)));
        }
    }
    if msg.starts_with("cache ") && find(msg, " cleanup").is_some() {
        return Some(info("cache", None, None));
    }
    if let Some(ev) = tls_line(msg) {
        return Some(ev);
    }
    lifecycle_line(daemon, msg)
}

/// `disconnect from host[ip] ehlo=1 auth=0/1 quit=1 commands=2/3`.
fn disconnect<'a>(client: Peer<'a>, rest: &'a str) -> Event<'a> {
    let counts = rest.trim();
    let auth = auth_count(counts).and_then(|v| match v.split_once('/') {
        Some((ok, total)) => ok.parse().ok().zip(total.parse().ok()),
        None => v.parse().ok().map(|n| (n, n)),
    });
    Event::Disconnect {
        client,
        commands: Some(counts).filter(|c| !c.is_empty()),
        auth,
    }
}

/// The value of the last `auth=` among a disconnect line's command counts (`ehlo=1 auth=0/1
/// quit=1 commands=2/3`): found with one search for the key, where reading every pair of the
/// counts ([`Kv`]) cost about 130 instructions a pair, 1,000 a line. A key starts the counts or
/// follows a space or comma, as the pairs' reader has it; unlike that reader, a word that is
/// no pair before it does not hide it (Postfix writes only pairs there).
fn auth_count(counts: &str) -> Option<&str> {
    const KEY: &str = "auth=";
    let b = counts.as_bytes();
    let mut found = None;
    let mut from = 0;
    while let Some(off) = find(&counts[from..], KEY) {
        let at = from + off;
        if at == 0 || matches!(b[at - 1], b' ' | b',') {
            let v = &counts[at + KEY.len()..];
            let end = crate::bytes::find_byte2(v.as_bytes(), b' ', b',').unwrap_or(v.len());
            found = Some(&v[..end]);
        }
        from = at + KEY.len();
    }
    found
}

/// anvil `max connection rate 1/60s for (smtp:192.0.2.1) at …`: the client IP. The service
/// part may itself contain colons (`127.0.0.1:2525:192.0.2.1`), and so may an IPv6 address, so
/// try every colon until the rest is an address.
fn anvil_peer(r: &str) -> Option<Peer<'_>> {
    let l = find(r, " for (")? + 6;
    let inner = &r[l..l + r[l..].find(')')?];
    let mut from = 0;
    while let Some(c) = inner[from..].find(':') {
        let cand = &inner[from + c + 1..];
        if let Some(p) = ip_peer(cand) {
            return Some(p);
        }
        from += c + 1;
    }
    None
}

fn tls_line(msg: &str) -> Option<Event<'_>> {
    const EST: &str = " TLS connection established ";
    let first_space = crate::bytes::find_byte(msg.as_bytes(), b' ').unwrap_or(msg.len());
    let peer = if msg[first_space..].starts_with(EST) {
        let r = &msg[first_space + EST.len()..];
        let r = r.strip_prefix("from ").or_else(|| r.strip_prefix("to "))?;
        take_peer(r).map(|(p, _)| p)
    } else if msg.starts_with("SSL_accept error from ")
        || msg.starts_with("SSL_connect error to ")
        || msg.starts_with("certificate verification failed for ")
        || msg.starts_with("setting up TLS connection ")
        || msg.starts_with("server certificate verification failed for ")
        || msg.starts_with("Server certificate could not be verified")
        || msg.starts_with("TLS ")
    {
        let r = &msg[msg.find([' ']).unwrap_or(0)..];
        find(r, " from ")
            .or_else(|| find(r, " to "))
            .or_else(|| find(r, " for "))
            .and_then(|i| {
                let r = &r[i + 1..];
                take_peer(&r[r.find(' ')? + 1..]).map(|(p, _)| p)
            })
    } else if let Some((p, r)) = take_peer(msg) {
        // "host[ip]: Trusted: subject_CN=…", "host[ip]: subject_CN=…", "host[ip]: issuer=…"
        if r.starts_with(": Trusted:")
            || r.starts_with(": Untrusted:")
            || r.starts_with(": Verified:")
            || r.starts_with(": subject_CN=")
            || r.starts_with(": issuer=")
            || r.starts_with(": depth=")
            || r.starts_with(": certificate")
        {
            Some(p)
        } else {
            return None;
        }
    } else {
        return None;
    };
    Some(info("tls", None, peer))
}

/// Postscreen (and tlsproxy) verdicts: `CONNECT from [ip]:port to [ip]:25`, `PASS NEW [ip]:port`,
/// `DNSBL rank 3 for [ip]:port`, `PREGREET 6 after 1.2 from [ip]:port: …`, `HANGUP after …`,
/// `DISCONNECT [ip]:port`, `COMMAND PIPELINING from …`, `WHITELISTED [ip]:port`, … and its
/// `cache … full cleanup: retained=N dropped=N entries`.
fn postscreen_line<'a>(daemon: &'a str, msg: &'a str) -> Option<Event<'a>> {
    let what = if daemon == "tlsproxy" {
        "tlsproxy"
    } else {
        "postscreen"
    };
    let b = msg.as_bytes();
    let lb = crate::bytes::find_byte(b, b'[');
    if let Some(lb) = lb {
        let verdict = &b[..lb];
        let upper = verdict.first().is_some_and(|c| c.is_ascii_uppercase())
            && verdict
                .iter()
                .take_while(|&&c| c != b' ')
                .all(|c| c.is_ascii_uppercase() || *c == b'-');
        if upper {
            return Some(info(what, None, take_peer(&msg[lb..]).map(|(p, _)| p)));
        }
    }
    None
}

/// Phrases of master, postfix-script, postsuper, postfix(1) and friends that carry no peer or
/// queue id, with their `Info` names.
const LIFECYCLE: [(&str, &str); 29] = [
    ("daemon started", "master"),
    ("reload ", "master"),
    ("terminating on signal", "master"),
    ("master exit time", "master"),
    ("starting the Postfix mail system", "postfix-script"),
    ("stopping the Postfix mail system", "postfix-script"),
    ("refreshing the Postfix mail system", "postfix-script"),
    ("the Postfix mail system is ", "postfix-script"),
    ("waiting for the Postfix mail system", "postfix-script"),
    (
        "Postfix is running with backwards-compatible",
        "postfix-script",
    ),
    ("Postfix is using backwards-compatible", "postfix-script"),
    ("  To disable backwards compatibility", "postfix-script"),
    ("  and \"postfix reload\"", "postfix-script"),
    (
        "  See http://www.postfix.org/COMPATIBILITY_README",
        "postfix-script",
    ),
    (
        "using backwards-compatible default setting",
        "postfix-script",
    ),
    ("Deleted: ", "postsuper"),
    ("Requeued: ", "postsuper"),
    ("Placed on hold: ", "postsuper"),
    ("Released from hold: ", "postsuper"),
    ("discarding EHLO keywords: ", "ehlo"),
    ("connection rate limit exceeded", "anvil"),
    ("connection count limit exceeded", "anvil"),
    ("table ", "table"),
    ("sender_canonical_maps", "table"),
    ("mail for ", "loop"),
    ("setting up TLS", "tls"),
    ("SSL_", "tls"),
    ("Trusted TLS", "tls"),
    ("Anonymous TLS", "tls"),
];

fn lifecycle_line<'a>(daemon: &'a str, msg: &'a str) -> Option<Event<'a>> {
    for (p, what) in LIFECYCLE {
        if msg.starts_with(p) {
            return Some(info(what, None, None));
        }
    }
    if daemon == "postfix-script" || daemon == "postlog" || daemon == "postfix" && msg.is_empty() {
        return Some(info("postfix-script", None, None));
    }
    if is_debug(msg) {
        return Some(info("debug", None, None));
    }
    None
}

/// `-v` (verbose) logging: `function_name: …`, attribute exchanges and queue-scan chatter.
fn is_debug(msg: &str) -> bool {
    const PHRASES: [&str; 40] = [
        "send attr ",
        "input attribute ",
        "connect to subsystem ",
        "start sorted recipient list",
        "end sorted recipient list",
        "done incoming queue scan",
        "done deferred queue scan",
        "request ignored",
        "name_mask: ",
        "event_",
        "watchdog_",
        "< ",
        "> ",
        ">>> ",
        "auto_clnt_",
        "vstream_",
        "rewrite stream ",
        "request: ",
        "wakeup ",
        "start move queue ",
        "end move queue ",
        "mynetworks: ",
        "process generation: ",
        "master disconnect -- exiting",
        "idle timeout -- exiting",
        "connection established",
        "connection closed",
        "proxymap stream disconnect",
        "Compiled against Berkeley DB",
        "Run-time linked against Berkeley DB",
        "fsspace: ",
        "initial envelope ",
        "extracted envelope ",
        "cleanup flags = ",
        "open incoming/",
        "connecting to ",
        "host name lookup methods",
        "pref ",
        "lookup ",
        "dns: ",
    ];
    if PHRASES.iter().any(|p| msg.starts_with(p)) {
        return true;
    }
    if (msg.starts_with("private/") || msg.starts_with("public/"))
        && find(msg, " socket: wanted attribute: ").is_some()
        || find(msg, "input_transp_cleanup: ").is_some()
        || (msg.starts_with("begin ") || msg.starts_with("end ")) && msg.ends_with(" address list")
    {
        return true;
    }
    // `identifier_with_underscore: …` or `identifier: identifier_…` (function names)
    let b = msg.as_bytes();
    let id = b
        .iter()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || **c == b'_')
        .count();
    id > 0 && b[..id].contains(&b'_') && (b.get(id) == Some(&b':') || msg[id..].starts_with(" = "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(daemon: &'static str, msg: &'static str) -> Event<'static> {
        parse(daemon, msg).unwrap_or_else(|| panic!("not recognized: {daemon}: {msg}"))
    }

    fn ip<'a>(e: &Event<'a>) -> Option<&'a str> {
        match e {
            Event::Connect { client }
            | Event::Disconnect { client, .. }
            | Event::AuthFailure { client, .. }
            | Event::Client { client, .. } => client.ip,
            Event::Check { client, .. } | Event::Info { client, .. } => client.and_then(|c| c.ip),
            _ => None,
        }
    }

    #[test]
    fn qids() {
        assert!(is_qid("B4C5A1100935"));
        assert!(is_qid("0F5383D"));
        assert!(is_qid("4Nw1sP3J0kz9vFJ"));
        assert!(is_qid("ED06590130AA1C9D6D862"));
        assert!(!is_qid("warning"));
        assert!(!is_qid("statistics"));
        assert!(!is_qid("NOQUEUE"));
        assert!(!is_qid("abc"));
    }

    /// The queue-id check as it was written before the one-pass scan: the definition.
    fn is_qid_by_definition(s: &str) -> bool {
        let b = s.as_bytes();
        if b.len() < MIN_SHORT_QID || b.len() > MAX_QID {
            return false;
        }
        let (mut hex, mut digit) = (true, false);
        for &c in b {
            if c.is_ascii_digit() {
                digit = true;
            } else if c.is_ascii_alphabetic() {
                hex &= (b'A'..=b'F').contains(&c);
            } else {
                return false;
            }
        }
        hex || (b.len() >= MIN_LONG_QID && digit)
    }

    /// `split_qid` as it was written before: a `memchr` for the `:`, then the check.
    fn split_qid_by_definition(msg: &str) -> Option<(Option<&str>, &str)> {
        let b = msg.as_bytes();
        let colon = memchr::memchr(b':', &b[..b.len().min(MAX_QID + 1)])?;
        if b.get(colon + 1) != Some(&b' ') {
            return None;
        }
        let (head, rest) = (&msg[..colon], &msg[colon + 2..]);
        if head == "NOQUEUE" {
            Some((None, rest))
        } else if is_qid_by_definition(head) {
            Some((Some(head), rest))
        } else {
            None
        }
    }

    /// The pairs [`Kv`] reads from `s` and what it leaves, written with the standard
    /// library's searches as an oracle.
    fn kv_by_searches(s: &str) -> (Vec<(&str, &str)>, &str) {
        let mut pairs = Vec::new();
        let mut rest = s;
        loop {
            let t = rest.trim_start_matches([' ', ',']);
            let Some(stop) = t.find(|c: char| c.is_ascii() && KEY_STOP.contains(&(c as u8))) else {
                return (pairs, rest);
            };
            if !t[stop..].starts_with('=') || stop == 0 {
                return (pairs, t);
            }
            let (key, value) = (&t[..stop], &t[stop + 1..]);
            let end = if value.starts_with('<') {
                value
                    .match_indices('>')
                    .map(|(j, _)| j + 1)
                    .find(|&e| {
                        e > 1
                            && matches!(
                                value.as_bytes().get(e),
                                None | Some(b' ' | b',' | b':' | b';')
                            )
                    })
                    .unwrap_or(value.len())
            } else {
                value.find([' ', ',']).unwrap_or(value.len())
            };
            pairs.push((key, &value[..end]));
            rest = &value[end..];
        }
    }

    /// The cursor's pairs and remainder are the searches', for every sequence of up
    /// to four pieces of `key=value` text (separators, bracketed values with `>` inside, keys
    /// without values, stops, non-ASCII text).
    #[test]
    fn the_cursor_reads_pairs_as_the_searches_do() {
        let pieces = [
            "to=<a@b.example>",
            ", ",
            " ",
            ",",
            "relay=mx.example[192.0.2.1]:25",
            "status=sent (250 2.0.0 Ok)",
            "from=<x>y> z>",
            "a=b=c",
            "=v",
            "key",
            ";",
            "é=ü",
            "helo=<[10.0.0.1]>:",
            "delay=0.5",
        ];
        let texts = crate::testing::joins(&pieces, 4);
        for t in &texts {
            let mut kv = Kv::new(t);
            let pairs: Vec<_> = kv.by_ref().collect();
            assert_eq!((pairs, kv.rest()), kv_by_searches(t), "{t:?}");
        }
        assert_eq!(
            texts.len(),
            1 + 14 + 14 * 14 + 14 * 14 * 14 + 14usize.pow(4)
        );
    }

    /// The one-pass queue-id scan answers as the definition does: every string of up to five
    /// bytes from those that matter (each class, the `:` and space that end an id, a byte of a
    /// multi-byte character), behind runs that put it at the length limits.
    #[test]
    fn the_one_pass_qid_scan_agrees_with_the_definition() {
        let alphabet = ["A", "F", "G", "z", "0", "9", ":", " ", "-", "é"];
        let mut tails = vec![String::new()];
        let mut all = vec![String::new()];
        for _ in 0..5 {
            tails = tails
                .iter()
                .flat_map(|t| alphabet.iter().map(move |a| format!("{t}{a}")))
                .collect();
            all.extend(tails.iter().cloned());
        }
        let mut checked = 0;
        for run in [0, 3, 4, 8, 9, 18, 19, 22, 23, 24, 25] {
            for fill in ["B", "7", "q"] {
                let prefix = fill.repeat(run);
                for t in &all {
                    let s = format!("{prefix}{t}");
                    assert_eq!(is_qid(&s), is_qid_by_definition(&s), "{s:?}");
                    assert_eq!(split_qid(&s), split_qid_by_definition(&s), "{s:?}");
                    // The same head on a line long enough for the vector scan.
                    let long = format!("{s} and the rest of a line, long enough");
                    assert!(long.len() >= QID_HEAD_BYTES);
                    assert_eq!(split_qid(&long), split_qid_by_definition(&long), "{long:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 3_000_000, "{checked}");
    }

    /// The vector masks of a line's head are the bytewise ones for every byte value in every
    /// place, and the vector scan answers as the byte loop does.
    #[test]
    fn the_vector_qid_head_agrees_with_the_byte_loop() {
        let mut checked = 0;
        for place in 0..QID_HEAD_BYTES {
            for c in 0..=255u8 {
                for fill in [b'7', b'B', b'q', b':'] {
                    let mut head = [fill; QID_HEAD_BYTES];
                    head[place] = c;
                    assert_eq!(HeadMasks::of(&head), HeadMasks::bytewise(&head), "{head:?}");
                    assert_eq!(qid_head_vector(&head), qid_head_bytewise(&head), "{head:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, QID_HEAD_BYTES * 256 * 4);
    }

    #[test]
    fn connect_disconnect() {
        let e = p("smtpd", "connect from unknown[119.73.162.126]");
        assert_eq!(
            e,
            Event::Connect {
                client: Peer {
                    host: Some("unknown"),
                    ip: Some("119.73.162.126"),
                    port: None
                }
            }
        );
        let e = p(
            "smtpd",
            "disconnect from z1.yanah.hier[192.168.11.100] ehlo=1 auth=0/1 quit=1 commands=2/3",
        );
        match e {
            Event::Disconnect {
                client,
                commands,
                auth,
            } => {
                assert_eq!(client.host, Some("z1.yanah.hier"));
                assert_eq!(client.ip, Some("192.168.11.100"));
                assert_eq!(commands, Some("ehlo=1 auth=0/1 quit=1 commands=2/3"));
                assert_eq!(auth, Some((0, 1)));
            }
            e => panic!("{e:?}"),
        }
        match p("smtpd", "disconnect from unknown[119.73.162.126]") {
            Event::Disconnect { commands, auth, .. } => {
                assert_eq!(commands, None);
                assert_eq!(auth, None);
            }
            e => panic!("{e:?}"),
        }
        match p(
            "smtpd",
            "disconnect from x[192.0.2.1] ehlo=1 auth=1 mail=1 commands=3",
        ) {
            Event::Disconnect { auth, .. } => assert_eq!(auth, Some((1, 1))),
            e => panic!("{e:?}"),
        }
    }

    /// The `auth=` count found by its key is the one the pairs' reader finds, for counts of
    /// pairs in any order, separated by spaces or commas, with keys that end in `auth`
    /// (`xauth=`), values that hold it, several `auth=`, none, and an empty value.
    #[test]
    fn the_auth_count_is_the_pairs_readers() {
        fn by_pairs(counts: &str) -> Option<&str> {
            let mut auth = None;
            for (k, v) in Kv::new(counts) {
                if k == "auth" {
                    auth = Some(v);
                }
            }
            auth
        }
        let pairs = [
            "ehlo=1",
            "auth=0/1",
            "auth=2",
            "xauth=5",
            "mail=auth=3",
            "auth=",
            "quit=1",
            "commands=2/3",
        ];
        let mut checked = 0;
        for a in pairs {
            for b in pairs {
                for c in pairs {
                    for sep in [" ", ",", ", "] {
                        let counts = [a, b, c].join(sep);
                        assert_eq!(auth_count(&counts), by_pairs(&counts), "{counts:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, pairs.len().pow(3) * 3);
        assert_eq!(auth_count(""), None);
    }

    #[test]
    fn session_lines() {
        for (m, what) in [
            ("lost connection after AUTH from unknown[59.90.135.135]", "lost"),
            ("lost connection after DATA (approximately 0 bytes) from unknown[59.90.135.135]", "lost"),
            ("timeout after END-OF-MESSAGE from unknown[59.90.135.135]", "timeout"),
            ("too many errors after RCPT from unknown[59.90.135.135]", "errors"),
            ("improper command pipelining after EHLO from unknown[59.90.135.135]: QUIT\\r\\n", "pipelining"),
            ("bare <LF> received after CONNECT from unknown[59.90.135.135]", "bare-lf"),
            ("Anonymous TLS connection established from unknown[59.90.135.135]: TLSv1.2 with cipher AECDH-AES256-SHA (256/256 bits)", "tls"),
            ("SSL_accept error from unknown[59.90.135.135]: lost connection", "tls"),
        ] {
            let e = p("smtpd", m);
            match &e {
                Event::Info { what: w, .. } => assert_eq!(*w, what, "{m}"),
                e => panic!("{e:?}"),
            }
            assert_eq!(ip(&e), Some("59.90.135.135"), "{m}");
        }
    }

    #[test]
    fn client_lines() {
        let e = p(
            "smtpd",
            "7C220110013E: client=phoenix.shared.net.au[127.0.0.1], sasl_method=LOGIN, sasl_username=jordy",
        );
        assert_eq!(
            e,
            Event::Client {
                qid: "7C220110013E",
                client: Peer {
                    host: Some("phoenix.shared.net.au"),
                    ip: Some("127.0.0.1"),
                    port: None
                },
                sasl_method: Some("LOGIN"),
                sasl_username: Some("jordy"),
                uid: None,
                from: None,
                orig_qid: None,
            }
        );
        match p(
            "smtpd",
            "4Nw1sP3J0kz9vFJ: client=localhost[127.0.0.1], orig_queue_id=4Nw1sN0Zmqz9vFH, orig_client=mx[192.0.2.7]",
        ) {
            Event::Client { qid, orig_qid, sasl_username, .. } => {
                assert_eq!(qid, "4Nw1sP3J0kz9vFJ");
                assert_eq!(orig_qid, Some("4Nw1sN0Zmqz9vFH"));
                assert_eq!(sasl_username, None);
            }
            e => panic!("{e:?}"),
        }
        match p("pickup", "B4C5A1100935: uid=0 from=<root>") {
            Event::Client {
                qid,
                uid,
                from,
                client,
                ..
            } => {
                assert_eq!((qid, uid, from), ("B4C5A1100935", Some(0), Some("root")));
                assert_eq!(client, Peer::default());
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(
            ip(&p("smtpd", "NOQUEUE: client=unknown[10.100.0.3]")),
            Some("10.100.0.3")
        );
    }

    #[test]
    fn auth_failures() {
        let e = p(
            "smtpd",
            "warning: unknown[203.0.113.10]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=postmaster@example.org",
        );
        assert_eq!(
            e,
            Event::AuthFailure {
                client: Peer {
                    host: Some("unknown"),
                    ip: Some("203.0.113.10"),
                    port: None
                },
                user: Some("postmaster@example.org"),
                mechanism: Some("LOGIN"),
                service: Service::Smtp,
                reason: "(reason unavailable)",
            }
        );
        match p(
            "smtpd",
            "warning: unknown[82.221.106.233]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        ) {
            Event::AuthFailure { reason, user, .. } => {
                assert_eq!(reason, "UGFzc3dvcmQ6");
                assert_eq!(user, None);
            }
            e => panic!("{e:?}"),
        }
        match p("smtpd", "warning: unknown[192.0.2.237]:55729: SASL LOGIN authentication failed: authentication failure") {
            Event::AuthFailure { client, reason, .. } => {
                assert_eq!(client.port, Some(55729));
                assert_eq!(reason, "authentication failure");
            }
            e => panic!("{e:?}"),
        }
        match p(
            "smtpd",
            "warning: mail.foldsandwalker.com[98.191.84.74]: SASL Plain authentication failed:",
        ) {
            Event::AuthFailure {
                reason, mechanism, ..
            } => {
                assert_eq!(reason, "");
                assert_eq!(mechanism, Some("Plain"));
            }
            e => panic!("{e:?}"),
        }
        // Cyrus's own line has no peer: a warning.
        assert!(matches!(
            p(
                "smtpd",
                "warning: SASL authentication failure: Password verification failed"
            ),
            Event::Info {
                what: "warning",
                ..
            }
        ));
    }

    #[test]
    fn smtpd_checks() {
        let e = p(
            "smtpd",
            "NOQUEUE: reject: RCPT from 36-224-128-19.dynamic-ip.hinet.net[36.224.128.19]: 454 4.7.1 <vkihwtrim@dmnoo.com.tw>: Relay access denied; from=<z2007tw@dmnoo.com.tw> to=<sniphwtrim@dmnoo.com.tw> proto=SMTP helo=<USER>",
        );
        assert_eq!(
            e,
            Event::Check {
                qid: None,
                action: Action::Reject,
                stage: Some("RCPT"),
                client: Some(Peer {
                    host: Some("36-224-128-19.dynamic-ip.hinet.net"),
                    ip: Some("36.224.128.19"),
                    port: None
                }),
                reason: "454 4.7.1 <vkihwtrim@dmnoo.com.tw>: Relay access denied",
                from: Some("z2007tw@dmnoo.com.tw"),
                to: Some("sniphwtrim@dmnoo.com.tw"),
                proto: Some("SMTP"),
                helo: Some("USER"),
            }
        );
        match p("smtpd", "NOQUEUE: reject: RCPT from x[93.184.216.34]: 454 4.7.1 Service unavailable; Client host [93.184.216.34] blocked using rbl.example.com; http://www.example.com/q?ip=93.184.216.34; from=<s@example.com> to=<g@example.com> proto=ESMTP helo=<badguy>") {
            Event::Check { reason, from, helo, .. } => {
                assert_eq!(reason, "454 4.7.1 Service unavailable; Client host [93.184.216.34] blocked using rbl.example.com; http://www.example.com/q?ip=93.184.216.34");
                assert_eq!(from, Some("s@example.com"));
                assert_eq!(helo, Some("badguy"));
            }
            e => panic!("{e:?}"),
        }
        match p("smtpd", "00ADB3C0899: reject: RCPT from example.com[192.0.2.1]: 550 5.1.1 <sales@server.com>: Recipient address rejected: User unknown; from=<x@example.com> to=<sales@server.com> proto=ESMTP helo=<mail.example.com>") {
            Event::Check { qid, .. } => assert_eq!(qid, Some("00ADB3C0899")),
            e => panic!("{e:?}"),
        }
        match p("smtpd", "NOQUEUE: reject: EHLO from s271272.static.corbina.ru[78.107.251.238]: 504 5.5.2 <User>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<User>") {
            Event::Check { stage, from, to, proto, helo, .. } => {
                assert_eq!(stage, Some("EHLO"));
                assert_eq!((from, to, proto, helo), (None, None, Some("SMTP"), Some("User")));
            }
            e => panic!("{e:?}"),
        }
        match p(
            "smtpd",
            "NOQUEUE: reject: RCPT from unknown[192.168.1.1]: 554 5.7.1 Service unavailable",
        ) {
            Event::Check { reason, from, .. } => {
                assert_eq!(reason, "554 5.7.1 Service unavailable");
                assert_eq!(from, None);
            }
            e => panic!("{e:?}"),
        }
        match p("smtpd", "1D8CC1CA0A7F: milter-reject: DATA from m.example.com[192.0.2.151]: 550 5.7.1 Command rejected; from=<s@mail.example.com> to=<h@example.com> proto=ESMTP helo=<h>") {
            Event::Check { action, stage, .. } => assert_eq!((action, stage), (Action::Reject, Some("DATA"))),
            e => panic!("{e:?}"),
        }
        for (m, a) in [
            ("NOQUEUE: hold: RCPT from a[192.0.2.1]: <x@y>: Recipient address triggers HOLD action; from=<a@b> to=<x@y> proto=ESMTP helo=<h>", Action::Hold),
            ("NOQUEUE: discard: MAIL from a[192.0.2.1]: <x@y>: Sender address SPAM; from=<x@y> proto=ESMTP helo=<h>", Action::Discard),
            ("NOQUEUE: filter: RCPT from a[192.0.2.1]: <a[192.0.2.1]>: Client host triggers FILTER smtp:[127.0.0.1]:10025; from=<a@b> to=<x@y> proto=ESMTP helo=<h>", Action::Filter),
            ("NOQUEUE: permit: RCPT from a[192.0.2.1]: <x@y>: ok; from=<a@b> to=<x@y> proto=ESMTP helo=<h>", Action::Permit),
            ("NOQUEUE: reject_warning: RCPT from a[192.0.2.1]: 553 5.7.1 <x@y>: no; from=<a@b> to=<x@y> proto=ESMTP helo=<h>", Action::Warn),
            ("NOQUEUE: redirect: RCPT from a[192.0.2.1]: <x@y>: Recipient triggers REDIRECT z@y; from=<a@b> to=<x@y> proto=ESMTP helo=<h>", Action::Redirect),
            ("NOQUEUE: warn: RCPT from a[192.0.2.1]: look; from=<a@b> to=<x@y> proto=ESMTP helo=<h>", Action::Warn),
            ("NOQUEUE: info: RCPT from a[192.0.2.1]: look; from=<a@b> to=<x@y> proto=ESMTP helo=<h>", Action::Warn),
        ] {
            match p("smtpd", m) {
                Event::Check { action, client, from, .. } => {
                    assert_eq!(action, a, "{m}");
                    assert_eq!(client.and_then(|c| c.ip), Some("192.0.2.1"));
                    assert!(from.is_some());
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn postscreen_reject_and_verdicts() {
        match p("postscreen", "NOQUEUE: reject: RCPT from [216.245.194.173]:60591: 550 5.7.1 Service unavailable; client [216.245.194.173] blocked using rbl.example.com; from=<spammer@example.com>, to=<goodguy@example.com>, proto=ESMTP, helo=<badguy.example.com>") {
            Event::Check { action, client, reason, from, to, proto, helo, .. } => {
                assert_eq!(action, Action::Reject);
                let c = client.unwrap();
                assert_eq!((c.host, c.ip, c.port), (None, Some("216.245.194.173"), Some(60591)));
                assert_eq!(reason, "550 5.7.1 Service unavailable; client [216.245.194.173] blocked using rbl.example.com");
                assert_eq!(from, Some("spammer@example.com"));
                assert_eq!(to, Some("goodguy@example.com"));
                assert_eq!(proto, Some("ESMTP"));
                assert_eq!(helo, Some("badguy.example.com"));
            }
            e => panic!("{e:?}"),
        }
        for m in [
            "CONNECT from [61.238.241.86]:53024 to [89.105.204.244]:25",
            "PASS NEW [61.238.241.86]:53024",
            "PASS OLD [61.238.241.86]:53024",
            "DNSBL rank 3 for [61.238.241.86]:53024",
            "PREGREET 6 after 1.2 from [61.238.241.86]:53024: RSET\\r\\n",
            "HANGUP after 63 from [61.238.241.86]:53024 in tests after SMTP handshake",
            "DISCONNECT [61.238.241.86]:53024",
            "COMMAND PIPELINING from [61.238.241.86]:53024 after .: \\n",
            "NON-SMTP COMMAND from [61.238.241.86]:53024 after CONNECT: GET / HTTP/1.1",
            "WHITELIST VETO [61.238.241.86]:53024",
        ] {
            let e = p("postscreen", m);
            assert!(
                matches!(
                    e,
                    Event::Info {
                        what: "postscreen",
                        ..
                    }
                ),
                "{m}"
            );
            assert_eq!(ip(&e), Some("61.238.241.86"), "{m}");
        }
        assert!(matches!(
            p("postscreen", "cache btree:/var/lib/postfix/postscreen_cache full cleanup: retained=242 dropped=7 entries"),
            Event::Info { what: "cache", .. }
        ));
    }

    #[test]
    fn cleanup_lines() {
        assert_eq!(
            p(
                "cleanup",
                "B4C5A1100935: message-id=<20141214204627.B4C5A1100935@dmnesisparty.co.uk>"
            ),
            Event::MessageId {
                qid: "B4C5A1100935",
                message_id: "20141214204627.B4C5A1100935@dmnesisparty.co.uk"
            }
        );
        assert_eq!(
            p("cleanup", "4104E3D: message-id=<>"),
            Event::MessageId {
                qid: "4104E3D",
                message_id: ""
            }
        );
        assert_eq!(
            p("cleanup", "4104E3D: message-id="),
            Event::MessageId {
                qid: "4104E3D",
                message_id: ""
            }
        );
        assert_eq!(
            p("cleanup", "4104E3D: message-id=abc@x"),
            Event::MessageId {
                qid: "4104E3D",
                message_id: "abc@x"
            }
        );
        assert!(matches!(
            p("cleanup", "4104E3D: resent-message-id=<a@b>"),
            Event::Info {
                what: "resent-message-id",
                qid: Some("4104E3D"),
                ..
            }
        ));
        assert_eq!(
            p("cleanup", "3D770111AF50: reject: header Subject: buy now from unknown[10.1.1.1]; from=<foo@corp.com> to=<first.last@corp.com> proto=ESMTP helo=<SUB.CORP.COM>: 5.7.1 no spam"),
            Event::Check {
                qid: Some("3D770111AF50"),
                action: Action::Reject,
                stage: Some("header"),
                client: Some(Peer { host: Some("unknown"), ip: Some("10.1.1.1"), port: None }),
                reason: "Subject: buy now",
                from: Some("foo@corp.com"),
                to: Some("first.last@corp.com"),
                proto: Some("ESMTP"),
                helo: Some("SUB.CORP.COM"),
            }
        );
        match p("cleanup", "D95341E50350: info: header Subject: Hi from local; from=<from@example.com> to=<to@example.com>") {
            Event::Check { action, client, reason, to, .. } => {
                assert_eq!(action, Action::Warn);
                assert_eq!(client, None);
                assert_eq!(reason, "Subject: Hi");
                assert_eq!(to, Some("to@example.com"));
            }
            e => panic!("{e:?}"),
        }
        match p("cleanup", "4104E3D: milter-reject: END-OF-MESSAGE from x.example.com[61.238.241.86]: 5.7.1 Blocked by SpamAssassin; from=<w@c.com> to=<v@example.com> proto=ESMTP helo=<e.com>") {
            Event::Check { action, stage, reason, .. } => {
                assert_eq!(action, Action::Reject);
                assert_eq!(stage, Some("END-OF-MESSAGE"));
                assert_eq!(reason, "5.7.1 Blocked by SpamAssassin");
            }
            e => panic!("{e:?}"),
        }
        for (m, a) in [
            ("4104E3D: milter-hold: END-OF-MESSAGE from x[192.0.2.1]: milter triggers HOLD action; from=<a@b> to=<c@d> proto=ESMTP helo=<h>", Action::Hold),
            ("4104E3D: milter-discard: END-OF-MESSAGE from x[192.0.2.1]: milter triggers DISCARD action; from=<a@b> to=<c@d> proto=ESMTP helo=<h>", Action::Discard),
            ("4104E3D: hold: body spam text from x[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>", Action::Hold),
            ("4104E3D: redirect: header To: a from x[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: z@y", Action::Redirect),
            ("4104E3D: prepend: header X-Spam: Yes from x[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: X-Flag: 1", Action::Modify),
            ("4104E3D: replace: header From: a from x[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: From: b", Action::Modify),
            ("4104E3D: filter: header X: a from x[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: smtp:[127.0.0.1]:10025", Action::Filter),
            ("4104E3D: discard: header X: a from x[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>", Action::Discard),
            ("4104E3D: warning: header X: a from x[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>", Action::Warn),
        ] {
            match p("cleanup", m) {
                Event::Check { action, helo, client, .. } => {
                    assert_eq!(action, a, "{m}");
                    assert_eq!(helo, Some("h"), "{m}");
                    assert_eq!(client.and_then(|c| c.ip), Some("192.0.2.1"), "{m}");
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn qmgr_lines() {
        match p(
            "qmgr",
            "B4C5A1100935: from=<rtrim@dmnesisparty.co.uk>, size=579, nrcpt=1 (queue active)",
        ) {
            Event::Queued {
                qid,
                from,
                size,
                nrcpt,
                ..
            } => {
                assert_eq!(
                    (qid, from, size, nrcpt),
                    (
                        "B4C5A1100935",
                        "rtrim@dmnesisparty.co.uk",
                        Some(579),
                        Some(1)
                    )
                );
            }
            e => panic!("{e:?}"),
        }
        match p("qmgr", "585BC3F: from=<>, size=10, nrcpt=2 (queue active)") {
            Event::Queued { from, .. } => assert_eq!(from, ""),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            p("qmgr", "B12B9110102D: removed"),
            Event::Removed {
                qid: "B12B9110102D"
            }
        );
        assert_eq!(
            p(
                "qmgr",
                "EF0771103AB0: from=<patrim@d.co.uk>, status=expired, returned to sender"
            ),
            Event::Expired {
                qid: "EF0771103AB0",
                from: "patrim@d.co.uk"
            }
        );
        assert!(matches!(
            p("qmgr", "144EC11002A1: skipped, still being delivered"),
            Event::Info {
                what: "skipped",
                qid: Some("144EC11002A1"),
                ..
            }
        ));
        assert!(matches!(
            p("qmgr", "warning: bounce_queue_lifetime is larger than maximal_queue_lifetime - adjusting bounce_queue_lifetime"),
            Event::Info { what: "warning", .. }
        ));
    }

    #[test]
    fn deliveries() {
        assert_eq!(
            p("smtp", "B73341100F29: to=<a@b.uk>, orig_to=<a>, relay=x.google.com[173.194.72.123]:25, conn_use=2, delay=959, delays=0/956/1.9/0.75, dsn=2.0.0, status=sent (250 2.0.0 OK 1418589993 cl3si10990405pad.214 - gsmtp)"),
            Event::Delivery {
                qid: "B73341100F29",
                to: "a@b.uk",
                orig_to: Some("a"),
                relay: Some("x.google.com[173.194.72.123]:25"),
                transport: Some("smtp"),
                delay: Some(Delay("959")),
                delays: Some("0/956/1.9/0.75"),
                dsn: Some("2.0.0"),
                status: DeliveryStatus::Sent,
                reply: Some("250 2.0.0 OK 1418589993 cl3si10990405pad.214 - gsmtp"),
            }
        );
        match p("smtp", "A0E85200BD: to=<w@l.example.org>, relay=o.example.nl[10.49.140.10]:25, delay=2.3, delays=0.25/0.05/2/0.04, dsn=4.2.0, status=deferred (host o.example.nl[10.49.140.10] said: 450 4.2.0 Greylisted (in reply to RCPT TO command))") {
            Event::Delivery { status, reply, .. } => {
                assert_eq!(status, DeliveryStatus::Deferred);
                assert_eq!(reply, Some("host o.example.nl[10.49.140.10] said: 450 4.2.0 Greylisted (in reply to RCPT TO command)"));
            }
            e => panic!("{e:?}"),
        }
        match p("local", "2A22C263F6: to=user@h.example.com, orig_to=root@localhost, relay=local, delay=0.07, delays=0.04/0/0/0.03, dsn=2.0.0, status=sent (delivered to command: procmail -a \"$EXTENSION\")") {
            Event::Delivery { to, orig_to, transport, reply, .. } => {
                assert_eq!((to, orig_to, transport), ("user@h.example.com", Some("root@localhost"), Some("local")));
                assert_eq!(reply, Some("delivered to command: procmail -a \"$EXTENSION\""));
            }
            e => panic!("{e:?}"),
        }
        match p("discard", "25F2E5E061: to=<g@t.example.com>, relay=none, delay=0.05, delays=0.05/0/0/0, dsn=2.0.0, status=sent (discarded)") {
            Event::Delivery { status, transport, reply, relay, .. } => {
                assert_eq!((status, transport, reply, relay), (DeliveryStatus::Sent, Some("discard"), Some("discarded"), Some("none")));
            }
            e => panic!("{e:?}"),
        }
        for (st, want) in [
            ("bounced", DeliveryStatus::Bounced),
            ("expired", DeliveryStatus::Expired),
            ("undeliverable", DeliveryStatus::Undeliverable),
            (
                "undeliverable-but-not-cached",
                DeliveryStatus::Undeliverable,
            ),
            ("deliverable", DeliveryStatus::Deliverable),
        ] {
            let m = format!("3E29030F8637E: to=<u@y.com>, relay=none, delay=0.01, delays=0.01/0/0/0, dsn=5.1.1, status={st} (User unknown)");
            match parse("error", &m) {
                Some(Event::Delivery { status, dsn, .. }) => {
                    assert_eq!(status, want);
                    assert_eq!(dsn, Some("5.1.1"));
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn smtp_client_side() {
        let e = p(
            "smtp",
            "connect to com-oct1022.ga[198.52.150.41]:25: Connection timed out",
        );
        assert!(matches!(
            e,
            Event::Info {
                what: "connect",
                qid: None,
                ..
            }
        ));
        assert_eq!(ip(&e), Some("198.52.150.41"));
        for (m, what) in [
            ("ED59C3D: host mail2.example.com[1.74.253.23] said: 450 4.7.1 <u@e.com>: Greylisted (in reply to RCPT TO command)", "remote"),
            ("40197AA: host mg2.egov.bg[213.91.191.86] refused to talk to me: 450 4.3.2 try again later", "remote"),
            ("B99FE3D: lost connection with mx3.hotmail.com[65.55.37.72] while receiving the initial server greeting", "lost"),
            ("78D6B41: conversation with mx00.gmx.com[74.208.5.4] timed out while receiving the initial server greeting", "timeout"),
        ] {
            match p("smtp", m) {
                Event::Info { what: w, qid, client } => {
                    assert_eq!(w, what);
                    assert!(qid.is_some());
                    assert!(client.and_then(|c| c.ip).is_some());
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn notices() {
        assert_eq!(
            p(
                "bounce",
                "17CCA8044: sender non-delivery notification: ADD2F8052"
            ),
            Event::Notice {
                qid: "17CCA8044",
                kind: NoticeKind::NonDelivery,
                notice_qid: "ADD2F8052"
            }
        );
        for (m, k) in [
            (
                "482E4404AC8: postmaster non-delivery notification: 47335405A44",
                NoticeKind::PostmasterNonDelivery,
            ),
            (
                "264FE1A18: sender delay notification: 0A87A1A08",
                NoticeKind::Delay,
            ),
            (
                "65AFB8B5: sender delivery status notification: 1DF35917",
                NoticeKind::Success,
            ),
        ] {
            match p("bounce", m) {
                Event::Notice { kind, .. } => assert_eq!(kind, k),
                e => panic!("{e:?}"),
            }
        }
        // A header check on a subject that ends like a notice is a check.
        match p(
            "cleanup",
            "4F2E3A1B2: warning: header Subject: Delivery status notification: 4F2E3A1B3 from \
             local; from=<a@example.org> to=<b@example.net>",
        ) {
            Event::Check {
                action, stage, to, ..
            } => {
                assert_eq!(action, Action::Warn);
                assert_eq!(stage, Some("header"));
                assert_eq!(to, Some("b@example.net"));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn daemons_misc() {
        for (d, m, what) in [
            ("anvil", "statistics: max connection rate 1/60s for (smtpd:61.238.241.86) at Oct 26 18:13:50", "anvil"),
            ("scache", "statistics: domain lookup hits=0 miss=1 success=0%", "scache"),
            ("master", "daemon started -- version 2.11.0, configuration /etc/postfix", "master"),
            ("master", "reload -- version 2.11.0, configuration /etc/postfix", "master"),
            ("master", "terminating on signal 15", "master"),
            ("postfix-script", "starting the Postfix mail system", "postfix-script"),
            ("dnsblog", "addr 61.238.241.86 listed by domain psbl.surriel.com as 127.0.0.2", "dnsblog"),
            ("postsuper", "Deleted: 115 messages", "postsuper"),
            ("verify", "cache lmdb:/var/lib/postfix/verify_cache full cleanup: retained=724 dropped=6 entries", "cache"),
            ("tlsmgr", "warning: request to update table btree:/x in non-postfix directory /y", "warning"),
            ("trivial-rewrite", "warning: do not list domain a.cl in BOTH mydestination and virtual_alias_domains", "warning"),
            ("sendmail", "fatal: root(0): message file too big", "fatal"),
            ("qmgr", "qmgr_active_feed: queue deferred", "debug"),
            ("smtpd", "send attr request = rewrite", "debug"),
        ] {
            match p(d, m) {
                Event::Info { what: w, .. } => assert_eq!(w, what, "{m}"),
                e => panic!("{e:?}"),
            }
        }
        assert_eq!(
            ip(&p("anvil", "statistics: max connection count 1 for (127.0.0.1:2525:127.0.0.1) at Oct 26 19:46:00")),
            Some("127.0.0.1")
        );
        assert_eq!(
            ip(&p("anvil", "statistics: max connection count 1 for (smtpd:2604:8d00:0:1::3) at Oct 26 17:46:59")),
            Some("2604:8d00:0:1::3")
        );
        assert_eq!(
            p("postsuper", "D4F2023DB: removed"),
            Event::Removed { qid: "D4F2023DB" }
        );
        assert!(matches!(
            p("postsuper", "D4F2023DB: placed on hold"),
            Event::Info {
                what: "postsuper",
                qid: Some("D4F2023DB"),
                ..
            }
        ));
    }

    #[test]
    fn warnings_name_peers() {
        let e = p("smtpd", "warning: hostname host.example.cl does not resolve to address 190.102.254.46: Name or service not known");
        assert!(matches!(
            e,
            Event::Info {
                what: "warning",
                ..
            }
        ));
        assert_eq!(ip(&e), Some("190.102.254.46"));
        assert_eq!(
            ip(&p(
                "smtpd",
                "warning: 122.179.84.12: address not listed for hostname abts.example.in"
            )),
            Some("122.179.84.12")
        );
        assert_eq!(
            ip(&p(
                "smtpd",
                "warning: non-SMTP command from unknown[192.168.1.1]: GET / HTTP/1.1"
            )),
            Some("192.168.1.1")
        );
        assert_eq!(
            ip(&p(
                "smtpd",
                "warning: Illegal address syntax from unknown[192.0.2.9] in MAIL command: <a b>"
            )),
            Some("192.0.2.9")
        );
        match p("cleanup", "warning: 9BECF3F19D: sender_canonical_maps map lookup problem for s@example.com -- message not accepted, try again later") {
            Event::Info { what, qid, .. } => assert_eq!((what, qid), ("warning", Some("9BECF3F19D"))),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn unknown_is_none() {
        assert_eq!(parse("smtpd", "something completely different"), None);
        assert_eq!(parse("smtpd", ""), None);
        assert_eq!(parse("smtpd", "connect from nowhere"), None);
    }
}
