//! One recipient of a message, its six texts in one allocation.
//!
//! The correlator keeps every recipient of every message in flight until the message leaves
//! the queue, and deferred mail stays in flight for days (Postfix's `maximal_queue_lifetime` is
//! five): on a log with much deferred spam these records are most of `analyze`'s memory. Six
//! `String`s (address, original address, DSN code, relay, transport, reply) cost a recipient
//! 160 bytes of struct and up to six heap blocks, about 430 bytes in all; here the texts share
//! one exactly sized block and the struct is 48 bytes (issue 12; docs/PERFORMANCE.md).
//!
//! Serialized exactly as the struct of six optional strings it replaces (the same JSON from
//! `parse --records` and the same snapshots): see [`RecipientRepr`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::record::{cut_at_char, Outcome};
use crate::time::Ts;

/// The texts of a recipient, in the order they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Addr,
    Orig,
    Dsn,
    Relay,
    Transport,
    Reply,
}

/// How many texts a recipient has ([`Field`]).
const FIELDS: usize = 6;

/// The texts of the last delivery attempt, in [`Field`] order: DSN code, relay, transport, reply.
pub type Attempt<'a> = [Option<&'a str>; 4];

/// The fingerprint of a recipient's address: the upper half of its stable hash
/// ([`crate::hash::str_key`]).
fn addr_key(addr: &str) -> u32 {
    (crate::hash::str_key(addr) >> 32) as u32
}

/// An address to find among a message's recipients ([`Recipient::is`]), its fingerprint made
/// once for the whole search. A delivery line names one recipient, and the correlator looks
/// for it among all of the message's recipients so far: for a list message, one search per
/// recipient over all the ones before it, so the comparison is what most of them cost
/// (issue 12; docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy)]
pub struct AddrQuery<'a> {
    addr: &'a str,
    key: u32,
}

impl<'a> AddrQuery<'a> {
    /// A search for `addr` (compared as bytes, exactly as [`Recipient::addr_is`] does).
    pub fn new(addr: &'a str) -> Self {
        AddrQuery {
            addr,
            key: addr_key(addr),
        }
    }
}

/// Recipients a message has before its [`RecipientIndex`] is used: up to this many, a search
/// compares fingerprints one after another. An estimate, not a measured optimum: building and
/// asking an index costs two hash-map operations per recipient, a comparison a few
/// instructions, so below a few dozen recipients the search costs less.
pub const INDEX_FROM: usize = 32;

/// Where each recipient of a long list is, by its address's fingerprint: the correlator looks
/// for a delivery line's recipient among all of its message's recipients, and with a search
/// one after another a list message of `n` recipients cost `n²/2` comparisons (in the first
/// 400 MB of the benchmark log, 41 messages of more than 128 recipients made nine tenths of
/// them; a message may have [`crate::record::MAX_RECIPIENTS`]). Above [`INDEX_FROM`] recipients the index is
/// built, and kept up to date as recipients are added, when the record is next searched.
///
/// It holds only what the recipients say, so two records with the same recipients are equal
/// whatever their indexes hold, and a snapshot does not keep it (it is made again when needed).
/// It relies on what the correlator does with a record's recipients while the record is in
/// flight: they are only added, at the end, and a recipient's address never changes.
///
/// A record without one holds a null pointer: the correlator keeps deferred mail in flight for
/// days, and most messages never have more than a few recipients.
#[derive(Clone, Default)]
pub struct RecipientIndex(Option<Box<Index>>);

/// The index of a [`RecipientIndex`] that has one.
#[derive(Clone, Default)]
struct Index {
    /// The first position of each fingerprint among the recipients indexed.
    first: crate::hash::Map<u32, u32>,
    /// How many recipients, from the first, are indexed.
    indexed: usize,
}

impl RecipientIndex {
    /// The position of the recipient `q` looks for among `recipients`: what
    /// `recipients.iter().position(|x| x.is(q))` answers.
    pub fn position(&mut self, recipients: &[Recipient], q: &AddrQuery<'_>) -> Option<usize> {
        if recipients.len() <= INDEX_FROM {
            return recipients.iter().position(|x| x.is(q));
        }
        self.0.get_or_insert_default().position(recipients, q)
    }

    /// How many recipients are indexed (0 without an index).
    #[cfg(test)]
    fn indexed(&self) -> usize {
        self.0.as_ref().map_or(0, |ix| ix.indexed)
    }
}

impl Index {
    /// [`RecipientIndex::position`] through the index.
    fn position(&mut self, recipients: &[Recipient], q: &AddrQuery<'_>) -> Option<usize> {
        self.catch_up(recipients);
        let first = *self.first.get(&q.key)? as usize;
        // The first recipient with this fingerprint is nearly always the one; when two
        // addresses share a fingerprint, the others come after it.
        recipients[first..]
            .iter()
            .position(|x| x.is(q))
            .map(|i| first + i)
    }

    /// Index the recipients added since the last search (all of them when there are fewer
    /// than were indexed: a list that shrank is not one the index knows).
    fn catch_up(&mut self, recipients: &[Recipient]) {
        if self.indexed > recipients.len() {
            *self = Index::default();
        }
        for (i, r) in recipients.iter().enumerate().skip(self.indexed) {
            let at = u32::try_from(i).expect("fewer than 2^32 recipients");
            self.first.entry(r.addr_key).or_insert(at);
        }
        self.indexed = recipients.len();
    }
}

impl PartialEq for RecipientIndex {
    /// Always: an index holds nothing its recipients do not say.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RecipientIndex {}

impl std::fmt::Debug for RecipientIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientIndex")
            .field("indexed", &self.0.as_ref().map_or(0, |ix| ix.indexed))
            .finish_non_exhaustive()
    }
}

/// One recipient of a message (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The present texts, one after another.
    text: Box<str>,
    /// Where each [`Field`]'s text ends in `text` (an absent one ends where the one before it
    /// does). The correlator caps every text at [`crate::record::MAX_FIELD`] bytes, so six fit
    /// a `u16` with room to spare.
    ends: [u16; FIELDS],
    /// Bit `i` set: [`Field`] `i` is present (`Some`); an empty text may be present.
    present: u8,
    /// The address's fingerprint ([`addr_key`]): the correlator finds a delivery line's
    /// recipient among the message's by comparing it first (see [`AddrQuery`]). In what was
    /// the struct's padding.
    addr_key: u32,
    /// Final outcome.
    pub outcome: Outcome,
    /// Temporary failures before the outcome.
    pub deferrals: u32,
    /// Time of the last attempt.
    pub ts: Ts,
}

impl Recipient {
    /// A recipient with no delivery attempt yet.
    pub fn new(addr: &str, orig: Option<&str>, outcome: Outcome, ts: Ts) -> Self {
        Self::attempted(addr, orig, [None; 4], outcome, ts)
    }

    /// A recipient first seen in an attempt: what `new(…).with_attempt(attempt)` makes, its
    /// texts packed once instead of twice (most recipients of a Postfix log first appear in
    /// their delivery line).
    pub fn attempted(
        addr: &str,
        orig: Option<&str>,
        attempt: Attempt<'_>,
        outcome: Outcome,
        ts: Ts,
    ) -> Self {
        let [dsn, relay, transport, reply] = attempt;
        let mut r = Recipient {
            text: Box::default(),
            ends: [0; FIELDS],
            present: 0,
            addr_key: 0,
            outcome,
            deferrals: 0,
            ts,
        };
        r.pack([Some(addr), orig, dsn, relay, transport, reply]);
        r.addr_key = addr_key(r.addr());
        r
    }

    /// The same recipient with the texts of an attempt (builder form of [`Self::set_attempt`]).
    pub fn with_attempt(mut self, attempt: Attempt<'_>) -> Self {
        self.set_attempt(attempt);
        self
    }

    /// Address.
    pub fn addr(&self) -> &str {
        self.get(Field::Addr).unwrap_or("")
    }
    /// Whether [`Recipient::addr`] is `addr`: the same answer, compared as bytes without
    /// re-checking the character boundaries of the block. The correlator asks it of each of a
    /// message's recipients for every delivery line (the boundary checks were 2.5% of
    /// `analyze`'s CPU, docs/PERFORMANCE.md).
    pub fn addr_is(&self, addr: &str) -> bool {
        crate::bytes::same(self.get_bytes(Field::Addr).unwrap_or(b""), addr.as_bytes())
    }
    /// Whether this is the recipient `q` looks for: [`Recipient::addr_is`]'s answer, found
    /// by comparing two fingerprints for all but the recipient it is (and the rare one whose
    /// fingerprint is the same).
    #[inline]
    pub fn is(&self, q: &AddrQuery<'_>) -> bool {
        self.addr_key == q.key && self.addr_is(q.addr)
    }
    /// Original address before aliasing.
    pub fn orig(&self) -> Option<&str> {
        self.get(Field::Orig)
    }
    /// Enhanced status code of the last attempt.
    pub fn dsn(&self) -> Option<&str> {
        self.get(Field::Dsn)
    }
    /// Next hop of the last attempt.
    pub fn relay(&self) -> Option<&str> {
        self.get(Field::Relay)
    }
    /// Delivery agent / transport of the last attempt.
    pub fn transport(&self) -> Option<&str> {
        self.get(Field::Transport)
    }
    /// Reply text of the last attempt.
    pub fn reply(&self) -> Option<&str> {
        self.get(Field::Reply)
    }

    /// Replace the last attempt's texts. A retry that logs the same texts as the attempt before
    /// it (a dead host's "Connection timed out", hour after hour) changes nothing and allocates
    /// nothing.
    pub fn set_attempt(&mut self, attempt: Attempt<'_>) {
        let [dsn, relay, transport, reply] = attempt;
        if self.dsn() == dsn
            && self.relay() == relay
            && self.transport() == transport
            && self.reply() == reply
        {
            return;
        }
        let (addr, orig) = (self.get(Field::Addr), self.orig());
        // Packed into a new block before the old one (which `addr` and `orig` borrow) is replaced.
        let packed = Self::packed([addr, orig, dsn, relay, transport, reply]);
        (self.text, self.ends, self.present) = packed;
    }

    /// Bytes on the heap (the texts' block).
    pub fn heap_bytes(&self) -> usize {
        self.text.len()
    }

    fn get(&self, f: Field) -> Option<&str> {
        let i = f as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        // SAFETY: `ends` are made only by `packed`: each the length of `text` after one more
        // whole text (cut at a character when too long), so character boundaries of `text`,
        // never decreasing, at most its length: the detectors read a recipient's fields tens
        // of millions of times on a large log, and need not check them again each time.
        Some(unsafe {
            crate::bytes::between_boundaries(
                &self.text,
                usize::from(start),
                usize::from(self.ends[i]),
            )
        })
    }

    /// [`Recipient::get`]'s bytes.
    fn get_bytes(&self, f: Field) -> Option<&[u8]> {
        let i = f as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text
            .as_bytes()
            .get(usize::from(start)..usize::from(self.ends[i]))
    }

    fn pack(&mut self, texts: [Option<&str>; FIELDS]) {
        (self.text, self.ends, self.present) = Self::packed(texts);
    }

    /// The block, ends and presence bits of `texts`. A text longer than a `u16` can address in
    /// all is cut at a character boundary (the correlator's texts are far shorter).
    fn packed(texts: [Option<&str>; FIELDS]) -> (Box<str>, [u16; FIELDS], u8) {
        let total: usize = texts.iter().flatten().map(|t| t.len()).sum();
        let mut s = String::with_capacity(total.min(usize::from(u16::MAX)));
        let mut ends = [0u16; FIELDS];
        let mut present = 0u8;
        // Nothing to cut (nearly always): no boundary to look for.
        let fits = total <= usize::from(u16::MAX);
        for (i, t) in texts.iter().enumerate() {
            if let Some(t) = t {
                present |= 1 << i;
                if fits {
                    s.push_str(t);
                } else {
                    let room = usize::from(u16::MAX) - s.len();
                    s.push_str(cut_at_char(t, room));
                }
            }
            ends[i] = u16::try_from(s.len()).unwrap_or(u16::MAX);
        }
        (s.into_boxed_str(), ends, present)
    }

    /// The texts, borrowed, in the serialized shape.
    fn repr(&self) -> RecipientRepr<'_> {
        RecipientRepr {
            addr: std::borrow::Cow::Borrowed(self.addr()),
            orig: self.orig().map(std::borrow::Cow::Borrowed),
            outcome: self.outcome,
            dsn: self.dsn().map(std::borrow::Cow::Borrowed),
            relay: self.relay().map(std::borrow::Cow::Borrowed),
            transport: self.transport().map(std::borrow::Cow::Borrowed),
            reply: self.reply().map(std::borrow::Cow::Borrowed),
            deferrals: self.deferrals,
            ts: self.ts,
        }
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient")
            .field("addr", &self.addr())
            .field("orig", &self.orig())
            .field("outcome", &self.outcome)
            .field("dsn", &self.dsn())
            .field("relay", &self.relay())
            .field("transport", &self.transport())
            .field("reply", &self.reply())
            .field("deferrals", &self.deferrals)
            .field("ts", &self.ts)
            .finish()
    }
}

/// The serialized shape of a [`Recipient`]: the struct of six optional strings it replaced,
/// field for field (absent texts left out), so records and snapshots read and write as before.
#[derive(Serialize, Deserialize)]
struct RecipientRepr<'a> {
    #[serde(borrow)]
    addr: std::borrow::Cow<'a, str>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    orig: Option<std::borrow::Cow<'a, str>>,
    outcome: Outcome,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    dsn: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    relay: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    transport: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    reply: Option<std::borrow::Cow<'a, str>>,
    deferrals: u32,
    ts: Ts,
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.repr().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RecipientRepr::deserialize(d)?;
        let attempt = [
            r.dsn.as_deref(),
            r.relay.as_deref(),
            r.transport.as_deref(),
            r.reply.as_deref(),
        ];
        let mut out = Recipient::attempted(&r.addr, r.orig.as_deref(), attempt, r.outcome, r.ts);
        out.deferrals = r.deferrals;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Ts {
        Ts::from_secs(s)
    }

    #[test]
    fn texts_read_back_as_written() {
        let r = Recipient::new("a@b.example", None, Outcome::Deferred, at(1)).with_attempt([
            Some("4.4.1"),
            Some("none"),
            Some("smtp"),
            Some("connect to mx.b.example[192.0.2.1]:25: Connection timed out"),
        ]);
        assert_eq!(r.addr(), "a@b.example");
        assert_eq!(r.orig(), None);
        assert_eq!(r.dsn(), Some("4.4.1"));
        assert_eq!(r.relay(), Some("none"));
        assert_eq!(r.transport(), Some("smtp"));
        assert_eq!(
            r.reply(),
            Some("connect to mx.b.example[192.0.2.1]:25: Connection timed out")
        );
        assert_eq!(std::mem::size_of::<Recipient>(), 48);
    }

    /// `addr_is` answers as comparing `addr()` does, for addresses short, empty, multi-byte,
    /// prefixes of each other, and cut at the field cap.
    #[test]
    fn addr_is_compares_as_addr_does() {
        let long = "é".repeat(40_000);
        let addrs = ["a@b", "a@bc", "", "ü@b.example", "a@b ", long.as_str()];
        for stored in addrs {
            let r = Recipient::new(stored, Some("a@b"), Outcome::Deferred, at(1)).with_attempt([
                Some("a@b"),
                None,
                None,
                Some("a@b"),
            ]);
            for asked in addrs.iter().chain([&"a@", &"é"]) {
                assert_eq!(
                    r.addr_is(asked),
                    r.addr() == *asked,
                    "{stored:.9} vs {asked:.9}"
                );
                assert_eq!(
                    r.is(&AddrQuery::new(asked)),
                    r.addr() == *asked,
                    "{stored:.9} vs {asked:.9}"
                );
            }
        }
    }

    /// A recipient made with its first attempt is the one made and then given it.
    #[test]
    fn attempted_is_new_with_the_attempt() {
        let texts = [
            None,
            Some(""),
            Some("5.1.1"),
            Some("mx.example[192.0.2.1]:25"),
        ];
        for addr in ["a@b", "", "ü@b.example"] {
            for orig in [None, Some("alias@b")] {
                for dsn in texts {
                    for reply in texts {
                        let attempt = [dsn, reply, Some("smtp"), reply];
                        let made =
                            Recipient::attempted(addr, orig, attempt, Outcome::Deferred, at(3));
                        let given = Recipient::new(addr, orig, Outcome::Deferred, at(3))
                            .with_attempt(attempt);
                        assert_eq!(made, given);
                        assert_eq!(made.addr(), addr);
                        assert_eq!(made.dsn(), dsn);
                        assert!(made.is(&AddrQuery::new(addr)));
                    }
                }
            }
        }
        let none = Recipient::attempted("a@b", None, [None; 4], Outcome::Bounced, at(1));
        assert_eq!(none, Recipient::new("a@b", None, Outcome::Bounced, at(1)));
    }

    #[test]
    fn empty_and_absent_differ() {
        let r = Recipient::new("", Some(""), Outcome::Bounced, at(1)).with_attempt([
            None,
            Some(""),
            None,
            Some("x"),
        ]);
        assert_eq!(r.addr(), "");
        assert_eq!(r.orig(), Some(""));
        assert_eq!(r.dsn(), None);
        assert_eq!(r.relay(), Some(""));
        assert_eq!(r.transport(), None);
        assert_eq!(r.reply(), Some("x"));
    }

    #[test]
    fn a_new_attempt_replaces_the_last_and_keeps_the_address() {
        let mut r = Recipient::new("a@b", Some("alias"), Outcome::Deferred, at(1)).with_attempt([
            Some("4.4.1"),
            None,
            Some("smtp"),
            Some("timed out"),
        ]);
        let block = r.text.as_ptr();
        r.set_attempt([Some("4.4.1"), None, Some("smtp"), Some("timed out")]);
        assert_eq!(
            r.text.as_ptr(),
            block,
            "the same attempt again re-packs nothing"
        );
        r.set_attempt([Some("2.0.0"), Some("mx[192.0.2.1]:25"), Some("smtp"), None]);
        assert_eq!(r.addr(), "a@b");
        assert_eq!(r.orig(), Some("alias"));
        assert_eq!(r.dsn(), Some("2.0.0"));
        assert_eq!(r.relay(), Some("mx[192.0.2.1]:25"));
        assert_eq!(r.reply(), None);
    }

    #[test]
    fn serialized_as_the_struct_of_optional_strings() {
        let r = Recipient::new("a@b", None, Outcome::Bounced, at(7)).with_attempt([
            Some("5.1.1"),
            Some("mx"),
            None,
            Some("550 no"),
        ]);
        let mut r2 = r.clone();
        r2.deferrals = 2;
        let j = serde_json::to_string(&r2).unwrap();
        assert_eq!(
            j,
            format!(
                r#"{{"addr":"a@b","outcome":"bounced","dsn":"5.1.1","relay":"mx","reply":"550 no","deferrals":2,"ts":{}}}"#,
                serde_json::to_string(&at(7)).unwrap()
            )
        );
        let back: Recipient = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r2);
        // From a reader (owned strings, no borrowing possible), as snapshots are read.
        let back: Recipient = serde_json::from_reader(j.as_bytes()).unwrap();
        assert_eq!(back, r2);
    }

    #[test]
    fn texts_too_long_for_u16_offsets_are_cut_at_a_char_boundary() {
        let long = "é".repeat(30_000); // 60,000 bytes: the address fits, its original not whole
        let r = Recipient::new(&long, Some(&long), Outcome::Deferred, at(1));
        assert_eq!(r.addr(), long.as_str());
        let o = r.orig().unwrap();
        assert!(o.len() < long.len() && long.starts_with(o));
        assert!(r.text.len() <= usize::from(u16::MAX));
    }

    /// The index answers what a search one after another does, for every address asked, as
    /// the list grows past [`INDEX_FROM`] a recipient at a time, for addresses that share a
    /// fingerprint, and when the list it indexed is replaced by a shorter one.
    #[test]
    fn the_index_finds_what_a_search_finds() {
        const N: usize = 200;
        let addr = |i: usize| format!("member{i}@list.example");
        let linear = |rs: &[Recipient], q: &AddrQuery<'_>| rs.iter().position(|x| x.is(q));
        let mut all: Vec<Recipient> = (0..N)
            .map(|i| Recipient::new(&addr(i), None, Outcome::Deferred, at(0)))
            .collect();
        // Recipients 7, 17, 27… carry a later one's fingerprint, as two addresses may.
        let twin = |i: usize| (i * 3 + 5).min(N - 1);
        for i in (7..N).step_by(10) {
            all[i].addr_key = all[twin(i)].addr_key;
        }
        let mut index = RecipientIndex::default();
        for n in 0..=N {
            let rs = &all[..n];
            let asked = [
                addr(n),
                addr(n / 2),
                addr(0),
                addr(n.saturating_sub(1)),
                addr(twin(n)),
                "x@y.example".to_string(),
            ];
            for a in &asked {
                let q = AddrQuery::new(a);
                assert_eq!(index.position(rs, &q), linear(rs, &q), "{n} {a}");
            }
        }
        assert_eq!(index.indexed(), N, "the index was used");
        let found = (0..N)
            .filter(|&i| index.position(&all, &AddrQuery::new(&addr(i))) == Some(i))
            .count();
        assert_eq!(found, N - N / 10, "all but the twins' first halves");
        all.truncate(INDEX_FROM + 5);
        all.push(Recipient::new(
            "late@list.example",
            None,
            Outcome::Deferred,
            at(0),
        ));
        for a in [addr(3), addr(150), "late@list.example".to_string()] {
            let q = AddrQuery::new(&a);
            assert_eq!(index.position(&all, &q), linear(&all, &q), "{a}");
        }
    }
}
