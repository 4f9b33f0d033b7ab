//! `helo-anomaly`: the HELO/EHLO names of viruses and spam bots.
//!
//! Real mail programs say who they are, more or less honestly: a host name, or an address literal
//! `[192.0.2.1]`. Mass-mailing worms and spam bots say anything: a bare IP without brackets, our
//! own name, a word that is no host name, a random label in front of the MAIL FROM domain
//! (`HELO lrhnow.usa.net` with `MAIL FROM:<kwntefsqhi@usa.net>`), the recipient's domain — and
//! spam software that randomizes its HELO shows several different ones in a short time
//! (Clayton, CEAS 2004/2005). A NetBIOS-style name such as `DESKTOP-4F2K1` is what Outlook sends
//! and is only weak evidence on its own.
//!
//! A HELO that names the sender's own domain is normal: mailing-list servers and customer MTAs
//! say `HELO acme.example` and send as `news@acme.example`. Clayton's sign is a HELO that names
//! *somebody else's* domain — a freemail provider, a bank — matched to MAIL FROM or RCPT TO, from
//! a host that is not that domain's server. From traffic alone a claimed domain is somebody
//! else's when (any of):
//! - the client's reverse-DNS name (as the MTA logged it) is not in that domain, and
//! - the domain's owner refused the mail citing SPF or DMARC (the domain says this host is not
//!   its server), or
//! - the domain's own servers were seen elsewhere: mail came in from an internet client whose
//!   reverse-DNS name is in that domain, or
//! - clients in [`MIN_CLAIMANT_NETS`] unrelated networks (/24, /48) claimed the same domain, or
//! - the claim follows the sender: one client's HELO matched [`MIN_FOLLOWED_DOMAINS`] different
//!   MAIL FROM domains (a server has one name; ratware copies the sender's domain), or
//! - the client put [`MIN_RANDOM_LABELS`] different random labels in front of the MAIL FROM
//!   domain (`lrhnow.usa.net`, `qzxwvt.usa.net`; a list server's `lists.` never changes), or
//! - the domain is one of the biggest freemail providers ([`FREEMAIL_DOMAINS`]), whose servers
//!   are never on a customer line;
//! - a HELO that names a recipient's domain (the sender's organisation being another) is the
//!   ratware tell on its own.
//!
//! Many HELOs from one address are normal behind a business NAT with many PCs. Only bot-like
//! HELOs count towards `changing`: bare IPs, address literals of another public host, random
//! words, our own name, forged domains — not the PCs' NetBIOS names.

use std::net::IpAddr;

use maillog::event::domain_of;
use maillog::Ts;
use serde::Serialize;

use crate::alert::{round3, Alert, Detector, Entity};
use crate::bounded::{BoundedMap, Handle};
use crate::cold::{Cold, ColdMap};
use crate::compact::Rare;
use crate::config::Config;
use crate::packed::Packed;

/// One sign a HELO can show.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Sign {
    /// An IP address without the brackets RFC 5321 requires for an address literal.
    BareIp,
    /// Our own host name or address.
    OwnName,
    /// Not a host name at all (no dot, bad characters, `localhost`).
    NotHostname,
    /// The MAIL FROM domain, which is somebody else's (see the module doc).
    ForgedSenderDomain,
    /// The domain of a recipient (the sender's organisation being another).
    RecipientDomain,
    /// More than the allowed distinct bot-like HELOs from one entity in the window.
    Changing,
    /// A workstation (a HELO that is no host name, as a PC's mail program says) sending as
    /// more than [`MAX_WORKSTATION_SENDER_DOMAINS`] sender domains in the window.
    RotatingSenders,
}

impl Sign {
    /// Weight in the combined score `1 - Π(1 - w)`.
    pub fn weight(self) -> f64 {
        match self {
            Sign::OwnName => 0.9,
            Sign::ForgedSenderDomain => 0.9,
            Sign::RecipientDomain => 0.8,
            Sign::Changing => 0.7,
            Sign::RotatingSenders => 0.7,
            Sign::BareIp => 0.5,
            Sign::NotHostname => 0.2,
        }
    }
    /// Name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sign::BareIp => "bare-ip",
            Sign::OwnName => "own-name",
            Sign::NotHostname => "not-hostname",
            Sign::ForgedSenderDomain => "forged-sender-domain",
            Sign::RecipientDomain => "recipient-domain",
            Sign::Changing => "changing",
            Sign::RotatingSenders => "rotating-senders",
        }
    }
    const ALL: [Sign; 7] = [
        Sign::BareIp,
        Sign::OwnName,
        Sign::NotHostname,
        Sign::ForgedSenderDomain,
        Sign::RecipientDomain,
        Sign::Changing,
        Sign::RotatingSenders,
    ];
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Labels that are ordinary first labels of mail hosts, never "random".
const COMMON_LABELS: &[&str] = &[
    "mail", "smtp", "mx", "mta", "relay", "out", "outbound", "gw", "gateway", "www", "host",
    "server", "exchange", "owa", "webmail", "post", "email", "send", "sender", "mailout", "mailer",
    "ns", "office", "remote", "vpn",
];

/// True when a DNS label looks machine-generated: 5–16 lower-case letters with few vowels or a
/// long consonant run, and not a common mail-host label.
pub fn random_looking(label: &str) -> bool {
    let n = label.len();
    if !(5..=16).contains(&n) || !label.bytes().all(|c| c.is_ascii_lowercase()) {
        return false;
    }
    if COMMON_LABELS.contains(&label) {
        return false;
    }
    let is_vowel = |c: u8| matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y');
    let vowels = label.bytes().filter(|&c| is_vowel(c)).count();
    let mut run = 0;
    let mut max_run = 0;
    for c in label.bytes() {
        if is_vowel(c) {
            run = 0;
        } else {
            run += 1;
            max_run = max_run.max(run);
        }
    }
    (vowels as f64) / (n as f64) < 0.25 || max_run >= 5
}

/// Clients in this many distinct networks (/24, /48) claiming one domain in HELO matched to their
/// MAIL FROM make the domain somebody else's: one organisation's servers seldom sit in three
/// customers' networks, a botnet forging one bank does. Our own idea.
pub const MIN_CLAIMANT_NETS: usize = 3;
/// One client whose HELO matched this many different MAIL FROM domains copies the sender's
/// domain into its HELO (ratware; Clayton 2004: "HELOs forged to match MAIL FROM"). Three, not
/// two, so that a host name change during a day is not enough. Our own idea.
pub const MIN_FOLLOWED_DOMAINS: usize = 3;
/// Different random labels in front of the MAIL FROM domain from one entity before they count
/// as forged (`lrhnow.usa.net`, then `qzxwvt.usa.net`): a real host's first label is constant.
pub const MIN_RANDOM_LABELS: usize = 2;
/// Sender domains one workstation HELO (no host name: `DESKTOP-4F2K1`, `WIN-…`, `HOME-PC`) may
/// send as within the window before it counts as `rotating-senders`. A PC's mail program sends
/// as its user's few identities (work, private, a club: three); servers that relay for many
/// senders (hosting, list servers, customer MTAs) say a host name. A spam bot that makes up a
/// new sender per message, refused by our own server for its HELO before any recipient can
/// fail, shows dozens within minutes (issue 9 class 7: infected customers on port 25 whose
/// every RCPT we refused were missed). Our own idea, after Clayton 2004 (senders forged per
/// message).
pub const MAX_WORKSTATION_SENDER_DOMAINS: usize = 3;
/// (workstation HELO, sender domain) pairs remembered per entity for `rotating-senders`.
pub const MAX_WORKSTATION_PAIRS: usize = 64;

/// Claimed domains remembered at once (across all clients), with their claimant networks.
pub const MAX_CLAIMS: usize = 65_536;
/// Domains of the biggest freemail providers: their outgoing servers are never a customer line
/// of an ISP, so a HELO naming one of them (matched to MAIL FROM) is forged. Public knowledge
/// of the providers' domains; not a list of "bad" domains.
pub const FREEMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
];

/// Why a claimed domain is known to be somebody else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Foreign {
    /// A remote server refused mail claiming it, citing SPF or DMARC.
    AuthRefused,
    /// Mail came in from an internet client whose reverse-DNS name is in it.
    ServersElsewhere,
    /// Clients in [`MIN_CLAIMANT_NETS`] networks claimed it.
    ManyClaimants,
    /// One of [`FREEMAIL_DOMAINS`].
    Freemail,
    /// This entity's HELO followed [`MIN_FOLLOWED_DOMAINS`] sender domains.
    FollowsSender,
    /// This entity put [`MIN_RANDOM_LABELS`] random labels in front of it.
    RandomLabels,
}

/// What is known about one claimed domain.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Claim {
    /// Networks (hashed /24 or /48) of the clients that claimed it, capped.
    nets: Vec<u64>,
    /// Known to be somebody else's, and why.
    foreign: Option<Foreign>,
}

/// Second-level labels that are generic under a two-letter country code (`co.uk`, `com.au`,
/// `ne.jp`), so that [`org_domain`] keeps a third label below them.
const GENERIC_SECOND_LEVELS: [&str; 12] = [
    "co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gr", "ltd",
];

/// The organisational part of a host or mail domain: its last two labels, or three under a
/// two-letter country code whose second level is a generic one (`co.uk`, `com.au`, `ne.jp`).
/// An approximation of the Public Suffix List, enough to tell `lists.univ.example` and
/// `univ.example` apart from `bank.example`. Blind to ASCII case (the labels are compared
/// without it and the name's own slice is returned), so the organisational part of a
/// lower-cased name is the lower-cased organisational part, and callers can compare without
/// a lower-cased copy.
pub fn org_domain(name: &str) -> &str {
    let n = name.trim_end_matches('.');
    // Found by bytes from the end: a dot is never part of a longer UTF-8 character.
    let last_dot = |end: usize| n.as_bytes()[..end].iter().rposition(|&c| c == b'.');
    let Some(before_tld) = last_dot(n.len()) else {
        return n;
    };
    let Some(before_sld) = last_dot(before_tld) else {
        return n;
    };
    let tld = &n[before_tld + 1..];
    let sld = &n[before_sld + 1..before_tld];
    let generic = GENERIC_SECOND_LEVELS
        .iter()
        .any(|g| sld.eq_ignore_ascii_case(g));
    let start = if tld.len() == 2 && generic {
        last_dot(before_sld).map_or(0, |d| d + 1)
    } else {
        before_sld + 1
    };
    &n[start..]
}

/// True when a refusal cites sender authentication (SPF, DMARC): RFC 7372 §3.2 (5.7.23 SPF
/// validation failed) and §3.3 (5.7.26 multiple authentication checks failed), RFC 7489.
pub fn auth_refusal(reply: &str) -> bool {
    let l = reply.to_ascii_lowercase();
    l.contains("spf") || l.contains("dmarc") || l.contains("5.7.23") || l.contains("5.7.26")
}

/// A key for the client's network (/24 for IPv4, /48 for IPv6).
fn net_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v) => u64::from(u32::from(v) >> 8),
        IpAddr::V6(v) => (u128::from(v) >> 80) as u64 | 1 << 63,
    }
}

/// True when `s` is a syntactically valid host name with at least one dot.
pub fn is_hostname(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() > 253 || maillog::bytes::find_byte(b, b'.').is_none() {
        return false;
    }
    if b.get(..LOCALHOST.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(LOCALHOST))
    {
        return false;
    }
    // One pass over the name without its trailing dots, label by label.
    let name = &b[..b.len() - b.iter().rev().take_while(|&&c| c == b'.').count()];
    let mut start = 0;
    for (i, &c) in name.iter().enumerate() {
        if c == b'.' {
            if !is_label(&name[start..i]) {
                return false;
            }
            start = i + 1;
        } else if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
            return false;
        }
    }
    let last = &name[start..];
    // A numeric last label is an IP-ish string, not a host name.
    is_label(last) && !last.iter().all(u8::is_ascii_digit)
}

/// Whether `l`, whose bytes are letters, digits, `-` and `_`, is a label of a host name: not
/// empty, at most 63 bytes, no `-` at either end.
fn is_label(l: &[u8]) -> bool {
    !l.is_empty() && l.len() <= 63 && l[0] != b'-' && l[l.len() - 1] != b'-'
}

/// A HELO beginning with this (in any case) is no host name ([`is_hostname`]).
const LOCALHOST: &[u8] = b"localhost";

/// The signs one HELO shows by itself and against the recipients' domains (the claims matched
/// to MAIL FROM need the detector's memory: [`HeloDetector::observe`]). `client_host` is the
/// client's reverse-DNS name as the MTA logged it.
pub fn signs(
    helo: &str,
    sender: Option<&str>,
    rcpts: &[&str],
    client_host: Option<&str>,
    own_names: &[String],
) -> u8 {
    let mut m = 0u8;
    let h = helo.trim();
    if h.is_empty() {
        return Sign::NotHostname.bit();
    }
    if maillog::ip::parse(h).is_some() {
        m |= Sign::BareIp.bit();
    } else if h.starts_with('[') && h.ends_with(']') {
        // An address literal is correct.
    } else if !is_hostname(h) {
        m |= Sign::NotHostname.bit();
    }
    // Names compared without ASCII case, and organisational domains taken of the texts as
    // logged (`org_domain` is blind to case): no lower-cased copies.
    if own_names.iter().any(|n| {
        n.eq_ignore_ascii_case(h)
            || n.eq_ignore_ascii_case(h.trim_matches(|c| c == '[' || c == ']'))
    }) {
        m |= Sign::OwnName.bit();
    }
    if m & (Sign::BareIp.bit() | Sign::NotHostname.bit()) != 0 || h.starts_with('[') {
        return m;
    }
    let hd = org_domain(h);
    if confirmed_by_rdns(hd, client_host) {
        return m;
    }
    let sorg = sender.and_then(domain_of).map(org_domain);
    for r in rcpts {
        if let Some(rd) = domain_of(r) {
            let rorg = org_domain(rd);
            // Mail within one organisation (a list server at `lists.univ.example` writing to
            // `univ.example`) is not forgery.
            if sorg.is_some_and(|s| s.eq_ignore_ascii_case(rorg)) {
                continue;
            }
            if hd.eq_ignore_ascii_case(rorg) {
                m |= Sign::RecipientDomain.bit();
                break;
            }
        }
    }
    m
}

/// Whether a HELO is a host name ([`is_hostname`]), read off the signs [`signs`] found in it
/// (`m`) rather than asked again: neither sign of a non-name, and no address literal (the one
/// case in which [`signs`] does not ask). `lower` is the trimmed HELO in lower case
/// (`is_hostname` is blind to case). A HELO detector's observation needs both answers, and
/// this one was about 300 instructions a message.
fn hostname_by_signs(m: u8, lower: &str) -> bool {
    m & (Sign::BareIp.bit() | Sign::NotHostname.bit()) == 0 && !lower.starts_with('[')
}

/// True when the client's reverse-DNS name lies in the organisational domain `org` (compared
/// without ASCII case).
fn confirmed_by_rdns(org: &str, client_host: Option<&str>) -> bool {
    client_host
        .filter(|h| !h.is_empty() && *h != "unknown")
        .is_some_and(|h| org_domain(h).eq_ignore_ascii_case(org))
}

/// True when `helo` is an address literal of another public host than `client` (not the
/// client's own address, nor a private one as PCs behind a NAT send).
fn foreign_literal(helo: &str, client: Option<IpAddr>) -> bool {
    let Some(inner) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else {
        return false;
    };
    let Some(ip) = maillog::ip::parse_logged(inner) else {
        return false;
    };
    let private = match ip {
        IpAddr::V4(v) => v.is_private() || v.is_loopback() || v.is_link_local(),
        IpAddr::V6(v) => v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00,
    };
    !private && Some(ip) != client
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    ours: bool,
    /// Distinct bot-like HELOs with when each was last seen.
    /// (Each an exact `Box<str>`: 24 bytes an entry, a `String` made it 32.)
    distinct: Vec<(Box<str>, Ts)>,
    /// Organisational domains this entity's HELO matched to its MAIL FROM (hashed, capped).
    /// (Absent until a first one: most entities' HELOs never match their sender.)
    followed: Rare<Vec<u64>>,
    /// Random labels it put in front of its MAIL FROM domain (hashed, capped).
    /// (Absent until a first one.)
    random_labels: Rare<Vec<u64>>,
    /// (workstation HELO, sender org domain) pairs (hashed) with when each was last seen.
    workstation_senders: Vec<(u64, u64, Ts)>,
    /// Anomalous HELOs per sign, 32-bit (they saturate): the same integers in a snapshot, whose
    /// older 64-bit counts saturate when read.
    #[serde(deserialize_with = "sign_counts32")]
    sign_counts: [u32; 7],
    events: u64,
    anomalous: u64,
    /// The first [`MAX_SAMPLES`] anomalous HELOs, packed: read only when an alert is raised. A
    /// snapshot holds them as the list of [`HeloSample`]s it did.
    #[serde(with = "stored_helos")]
    samples: Packed<StoredHelo>,
    alerted: Option<Ts>,
    alerted_mask: u8,
    first: Option<Ts>,
}

/// Evidence of a `helo-anomaly` alert (its `evidence` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HeloEvidence {
    /// Each sign seen, with how often and its weight.
    pub signs: Vec<SignCount>,
    /// Anomalous HELOs seen from the entity.
    pub anomalous: u64,
    /// HELOs seen from the entity.
    pub observed: u64,
    /// Distinct bot-like HELOs in the window.
    pub distinct_helos: Vec<String>,
    /// First HELO seen, RFC 3339.
    pub first: Option<String>,
    /// The first [`MAX_SAMPLES`] anomalous HELOs.
    pub samples: Vec<HeloSample>,
}

/// One sign in [`HeloEvidence`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SignCount {
    /// Which.
    pub sign: Sign,
    /// Anomalous HELOs that showed it.
    pub count: u64,
    /// Its weight in the score.
    pub weight: f64,
}

/// One anomalous HELO, as kept in the detector's state and shown in [`HeloEvidence`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HeloSample {
    /// When, `2026-11-20 10:47:15` UTC.
    pub time: String,
    /// The HELO as given.
    pub helo: String,
    /// Client IP.
    pub client: Option<String>,
    /// Envelope sender.
    pub mail_from: Option<String>,
    /// The first three recipients.
    pub rcpt_to: Vec<String>,
    /// The signs it showed.
    pub signs: Vec<Sign>,
    /// Why its claimed domain is somebody else's, when it is.
    pub forged_because: Option<Foreign>,
    /// The client's reverse-DNS name as logged.
    pub client_host: Option<String>,
    /// `message` or the check's reply text.
    pub context: String,
}

/// A [`HeloSample`] as the state keeps it, packed: its time as seconds since 1970 and its signs
/// as their bit mask (about 35 bytes less a sample than the text of both) whenever they say
/// exactly the same, as they do for every sample the detector makes (a snapshot's sample that
/// does not is kept as its text).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct StoredHelo {
    /// When, in seconds since 1970 (when `time_text` is `None`).
    secs: i64,
    /// The time as given, when it is not `secs` shown as [`Ts::display_utc`].
    time_text: Option<String>,
    helo: String,
    client: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// The signs' [`Sign::bit`]s (when `signs_list` is `None`): listed in [`Sign::ALL`] order.
    signs: u8,
    /// The signs as given, when they are not the mask's list.
    signs_list: Option<Vec<Sign>>,
    forged_because: Option<Foreign>,
    client_host: Option<String>,
    context: String,
    /// Fields left empty because they are the previous sample's ([`SAME_HELO`] and so on): an
    /// entity's samples mostly share its HELO, address, sender, host name and context.
    same: u8,
}

/// [`StoredHelo::same`]: the HELO is the previous sample's.
const SAME_HELO: u8 = 1;
/// [`StoredHelo::same`]: the client address is the previous sample's.
const SAME_CLIENT: u8 = 1 << 1;
/// [`StoredHelo::same`]: the envelope sender is the previous sample's.
const SAME_MAIL_FROM: u8 = 1 << 2;
/// [`StoredHelo::same`]: the client's host name is the previous sample's.
const SAME_CLIENT_HOST: u8 = 1 << 3;
/// [`StoredHelo::same`]: the context is the previous sample's.
const SAME_CONTEXT: u8 = 1 << 4;

/// `x` emptied when it equals `prev` (a `bit` for `same`), else 0.
fn ditto_str(x: &mut String, prev: &str, bit: u8) -> u8 {
    if x.is_empty() || x != prev {
        return 0;
    }
    x.clear();
    bit
}

/// `x` emptied when it equals `prev` and is not empty (a `bit` for `same`), else 0.
fn ditto_opt(x: &mut Option<String>, prev: Option<&str>, bit: u8) -> u8 {
    if x.is_none() || x.as_deref() != prev {
        return 0;
    }
    *x = None;
    bit
}

/// Append `s` to `samples`, its fields that are the previous sample's left empty.
fn push_sample(samples: &mut Packed<StoredHelo>, mut s: StoredHelo) {
    if let Some(p) = last_resolved(samples) {
        s.same = ditto_str(&mut s.helo, p.helo, SAME_HELO)
            | ditto_opt(&mut s.client, p.client, SAME_CLIENT)
            | ditto_opt(&mut s.mail_from, p.mail_from, SAME_MAIL_FROM)
            | ditto_opt(&mut s.client_host, p.client_host, SAME_CLIENT_HOST)
            | ditto_str(&mut s.context, p.context, SAME_CONTEXT);
    }
    samples.push(&s);
}

/// The fields of a [`StoredHelo`] that [`push_sample`] compares, borrowed from the packed
/// samples; the others read past. Positional, as [`StoredHelo`]'s.
#[derive(serde::Deserialize)]
struct HeloFieldsRef<'a> {
    _secs: serde::de::IgnoredAny,
    _time_text: serde::de::IgnoredAny,
    #[serde(borrow)]
    helo: &'a str,
    #[serde(borrow)]
    client: Option<&'a str>,
    #[serde(borrow)]
    mail_from: Option<&'a str>,
    _rcpt_to: serde::de::IgnoredAny,
    _signs: serde::de::IgnoredAny,
    _signs_list: serde::de::IgnoredAny,
    _forged_because: serde::de::IgnoredAny,
    #[serde(borrow)]
    client_host: Option<&'a str>,
    #[serde(borrow)]
    context: &'a str,
    same: u8,
}

/// The last sample's fields that [`push_sample`] compares, with those left empty as the
/// previous sample's filled in: what [`resolved`]`(samples).last()` holds, read without
/// decoding every sample into strings (each push did, about 11,000 instructions a sample on
/// the benchmark log; docs/PERFORMANCE.md).
fn last_resolved(samples: &Packed<StoredHelo>) -> Option<HeloFieldsRef<'_>> {
    let mut last: Option<HeloFieldsRef<'_>> = None;
    samples.for_each_borrowed(|mut s: HeloFieldsRef<'_>| {
        if let Some(p) = &last {
            if s.same & SAME_HELO != 0 {
                s.helo = p.helo;
            }
            if s.same & SAME_CLIENT != 0 {
                s.client = p.client;
            }
            if s.same & SAME_MAIL_FROM != 0 {
                s.mail_from = p.mail_from;
            }
            if s.same & SAME_CLIENT_HOST != 0 {
                s.client_host = p.client_host;
            }
            if s.same & SAME_CONTEXT != 0 {
                s.context = p.context;
            }
        }
        s.same = 0;
        last = Some(s);
    });
    last
}

/// The samples with the fields left empty as the previous sample's filled in again.
fn resolved(samples: &Packed<StoredHelo>) -> Vec<StoredHelo> {
    let mut v = samples.to_vec();
    for i in 1..v.len() {
        let (done, rest) = v.split_at_mut(i);
        let (p, s) = (&done[i - 1], &mut rest[0]);
        if s.same & SAME_HELO != 0 {
            s.helo.clone_from(&p.helo);
        }
        if s.same & SAME_CLIENT != 0 {
            s.client.clone_from(&p.client);
        }
        if s.same & SAME_MAIL_FROM != 0 {
            s.mail_from.clone_from(&p.mail_from);
        }
        if s.same & SAME_CLIENT_HOST != 0 {
            s.client_host.clone_from(&p.client_host);
        }
        if s.same & SAME_CONTEXT != 0 {
            s.context.clone_from(&p.context);
        }
        s.same = 0;
    }
    v
}

/// The signs of a mask, in [`Sign::ALL`] order.
fn signs_of(mask: u8) -> Vec<Sign> {
    Sign::ALL
        .iter()
        .copied()
        .filter(|s| mask & s.bit() != 0)
        .collect()
}

/// Fields of `2026-11-20 10:47:15` ([`Ts::display_utc`]): year, month, day, hour, minute, second.
const DISPLAY_FIELDS: [std::ops::Range<usize>; 6] = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19];

/// The time `t` shows in [`Ts::display_utc`]'s form, when it is exactly that form.
fn display_secs(t: &str) -> Option<i64> {
    let f: Vec<i64> = DISPLAY_FIELDS
        .iter()
        .map(|r| t.get(r.clone())?.parse::<i64>().ok())
        .collect::<Option<_>>()?;
    let day =
        maillog::time::days_from_civil(f[0], u32::try_from(f[1]).ok()?, u32::try_from(f[2]).ok()?);
    let secs = day * 86_400 + f[3] * 3600 + f[4] * 60 + f[5];
    // Anything else (another length, a sign, an out-of-range field) does not show the same.
    (Ts::from_secs(secs).display_utc() == t).then_some(secs)
}

impl StoredHelo {
    fn of(h: HeloSample) -> StoredHelo {
        let secs = display_secs(&h.time);
        let mask = h.signs.iter().fold(0u8, |m, s| m | s.bit());
        let exact = signs_of(mask) == h.signs;
        StoredHelo {
            secs: secs.unwrap_or(0),
            time_text: secs.is_none().then_some(h.time),
            helo: h.helo,
            client: h.client,
            mail_from: h.mail_from,
            rcpt_to: h.rcpt_to,
            signs: if exact { mask } else { 0 },
            signs_list: (!exact).then_some(h.signs),
            forged_because: h.forged_because,
            client_host: h.client_host,
            context: h.context,
            same: 0,
        }
    }

    fn sample(self) -> HeloSample {
        HeloSample {
            time: self
                .time_text
                .unwrap_or_else(|| Ts::from_secs(self.secs).display_utc()),
            helo: self.helo,
            client: self.client,
            mail_from: self.mail_from,
            rcpt_to: self.rcpt_to,
            signs: self.signs_list.unwrap_or_else(|| signs_of(self.signs)),
            forged_because: self.forged_because,
            client_host: self.client_host,
            context: self.context,
        }
    }
}

/// [`State::sign_counts`] from a snapshot, which may hold counts past `u32` (they were 64-bit).
fn sign_counts32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u32; 7], D::Error> {
    let wide = <[u64; 7] as serde::Deserialize>::deserialize(d)?;
    Ok(wide.map(|c| u32::try_from(c).unwrap_or(u32::MAX)))
}

/// [`State::samples`] in snapshots: the list of [`HeloSample`]s.
mod stored_helos {
    use super::{push_sample, resolved, HeloSample, StoredHelo};
    use crate::packed::Packed;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(p: &Packed<StoredHelo>, s: S) -> Result<S::Ok, S::Error> {
        if crate::cold::packing() {
            return p.serialize_raw(s);
        }
        let v: Vec<HeloSample> = resolved(p).into_iter().map(StoredHelo::sample).collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Packed<StoredHelo>, D::Error> {
        if crate::cold::packing() {
            return Packed::deserialize_raw(d);
        }
        let mut p = Packed::default();
        for h in Vec::<HeloSample>::deserialize(d)? {
            push_sample(&mut p, StoredHelo::of(h));
        }
        Ok(p)
    }
}

/// Most distinct HELOs remembered per client.
pub const MAX_DISTINCT: usize = 32;
/// Sample HELO observations kept per client.
pub const MAX_SAMPLES: usize = 10;

/// One observation of a HELO.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// When.
    pub ts: Ts,
    /// HELO text.
    pub helo: &'a str,
    /// Envelope sender, if known.
    pub sender: Option<&'a str>,
    /// Recipients, if known.
    pub rcpts: Vec<&'a str>,
    /// Client IP, if known.
    pub client: Option<IpAddr>,
    /// The client's reverse-DNS name as the MTA logged it (`unknown` or absent when none).
    pub client_host: Option<&'a str>,
    /// Replies of the recipients that were refused (remote or our own server's).
    pub refusals: Vec<&'a str>,
    /// What it came from: `message` (an accepted message) or the check's reply text.
    pub context: &'a str,
    /// Whether this entity is known to be one of our customers.
    pub ours: bool,
}

/// The detector.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct HeloDetector {
    /// Live while active, packed when idle `[detect.limits] pack_idle_after`
    /// ([`HeloDetector::freeze_idle`]).
    state: ColdMap<Entity, State>,
    claims: BoundedMap<u64, Claim>,
}

impl HeloDetector {
    /// Empty.
    pub fn new(cfg: &Config) -> Self {
        HeloDetector {
            state: ColdMap::new(cfg.limits.max_entities),
            claims: BoundedMap::new(MAX_CLAIMS),
        }
    }

    /// Entities whose state was dropped because of `[detect.limits] max_entities`.
    pub fn evicted(&self) -> u64 {
        self.state.evicted()
    }

    /// Pack the state of the entities not touched since `before` ([`crate::cold`]: the next
    /// HELO of such an entity decodes it; detection is the same either way).
    pub fn freeze_idle(&mut self, sweep: impl Into<crate::cold::Sweep>) {
        self.state.freeze_idle(sweep);
    }

    /// [`Self::freeze_idle`], the compressing left to the caller
    /// ([`crate::cold::ColdMap::freeze_idle_deferred`]).
    pub fn freeze_idle_deferred(
        &mut self,
        sweep: impl Into<crate::cold::Sweep>,
    ) -> Option<crate::cold::PackWork<Entity>> {
        self.state.freeze_idle_deferred(sweep)
    }

    /// Put back states compressed elsewhere ([`crate::cold::ColdMap::packed_back`]).
    pub fn packed_back(&mut self, work: crate::cold::PackWork<Entity>) {
        self.state.packed_back(work);
    }

    /// Entities whose state is packed, and the dictionary they are compressed with.
    pub fn packing(&self) -> crate::cold::Packing {
        self.state.packing()
    }

    /// Entities whose state the last sweep left packed ([`crate::cold::ColdMap::swept`]).
    pub fn swept(&self) -> crate::cold::Swept {
        self.state.swept()
    }

    /// Mark an entity as ours (it relayed or authenticated), which lets its buffered signs alert.
    pub fn mark_ours(&mut self, e: &Entity, ts: Ts) {
        if let Some(s) = self.state.get_mut(e).map(Cold::thaw) {
            s.ours = true;
        }
        let _ = ts;
    }

    /// Mail came in from an internet client whose reverse-DNS name is `client_host`: that
    /// name's domain has its own servers elsewhere, so our customers' HELOs naming it are forged.
    pub fn note_foreign_server(&mut self, ts: Ts, client_host: &str) {
        let h = client_host.trim().to_ascii_lowercase();
        if h.is_empty() || h == "unknown" || !is_hostname(&h) {
            return;
        }
        let key = maillog::hash::str_key(org_domain(&h));
        let c = self.claims.get_or_insert_with(&key, ts, Claim::default);
        c.foreign.get_or_insert(Foreign::ServersElsewhere);
    }

    /// Whether this HELO, matched to the MAIL FROM domain, names somebody else's domain, and
    /// why. Remembers the claim.
    fn forged_claim(
        &mut self,
        at: Handle,
        o: &Observation<'_>,
        lower: &str,
        hostname: bool,
    ) -> Option<Foreign> {
        if !hostname {
            return None;
        }
        let sd = maillog::bytes::ascii_lower(o.sender.and_then(domain_of)?);
        let hd = org_domain(lower);
        if org_domain(&sd) != hd || confirmed_by_rdns(hd, o.client_host) {
            return None;
        }
        let key = maillog::hash::str_key(hd);
        let st = self.state.at_mut(at)?.thaw();
        let followed = st.followed.get_or_default();
        if !followed.contains(&key) && followed.len() < MIN_FOLLOWED_DOMAINS {
            crate::compact::push(followed, key);
        }
        // A random label in front of the sender's own domain (`lrhnow.usa.net`).
        if let Some(label) = lower.strip_suffix(&*sd).and_then(|p| p.strip_suffix('.')) {
            if !label.contains('.') && random_looking(label) {
                let lk = maillog::hash::str_key(label);
                let labels = st.random_labels.get_or_default();
                if !labels.contains(&lk) && labels.len() < MIN_RANDOM_LABELS {
                    crate::compact::push(labels, lk);
                }
            }
        }
        let follows = st.followed.get().map_or(0, Vec::len) >= MIN_FOLLOWED_DOMAINS;
        let random = st.random_labels.get().map_or(0, Vec::len) >= MIN_RANDOM_LABELS;
        let claim = self.claims.get_or_insert_with(&key, o.ts, Claim::default);
        if let Some(ip) = o.client {
            let n = net_key(ip);
            if !claim.nets.contains(&n) && claim.nets.len() < MIN_CLAIMANT_NETS {
                claim.nets.push(n);
            }
        }
        if o.refusals.iter().any(|r| auth_refusal(r)) {
            claim.foreign.get_or_insert(Foreign::AuthRefused);
        }
        if claim.nets.len() >= MIN_CLAIMANT_NETS {
            claim.foreign.get_or_insert(Foreign::ManyClaimants);
        }
        if FREEMAIL_DOMAINS.contains(&hd) {
            return Some(Foreign::Freemail);
        }
        claim
            .foreign
            .or(follows.then_some(Foreign::FollowsSender))
            .or(random.then_some(Foreign::RandomLabels))
    }

    /// Observe one HELO from `entity`.
    pub fn observe(
        &mut self,
        cfg: &Config,
        own_names: &[String],
        entity: &Entity,
        o: &Observation<'_>,
        out: &mut Vec<Alert>,
    ) {
        if !cfg.helo.enabled {
            return;
        }
        let window = cfg.helo.window.0;
        let mut m = signs(o.helo, o.sender, &o.rcpts, o.client_host, own_names);
        let lower = maillog::bytes::ascii_lower(o.helo.trim());
        let at = self.state.entry_with(entity, o.ts, Cold::default);
        let hostname = hostname_by_signs(m, &lower);
        debug_assert_eq!(hostname, is_hostname(&lower), "{lower:?}");
        let foreign = self.forged_claim(at, o, &lower, hostname);
        if foreign.is_some() {
            m |= Sign::ForgedSenderDomain.bit();
        }
        // Only bot-like HELOs count towards "changing": a NAT's PCs each say their own name.
        let bot_like = (m != 0 && m != Sign::NotHostname.bit())
            || (m == Sign::NotHostname.bit() && random_looking(&lower))
            || foreign_literal(&lower, o.client);
        // Entered above; nothing was inserted since (claims are another map).
        let Some(st) = self.state.at_mut(at).map(Cold::thaw) else {
            return;
        };
        st.ours |= o.ours;
        st.events += 1;
        st.first.get_or_insert(o.ts);
        st.distinct.retain(|(_, t)| t.plus_secs(window) >= o.ts);
        if m & Sign::NotHostname.bit() != 0 && rotating_senders(st, &lower, o.sender, o.ts, window)
        {
            m |= Sign::RotatingSenders.bit();
        }
        if bot_like {
            if let Some(e) = st.distinct.iter_mut().find(|(h, _)| **h == *lower) {
                e.1 = o.ts;
            } else if st.distinct.len() < MAX_DISTINCT {
                crate::compact::push(
                    &mut st.distinct,
                    (lower.into_owned().into_boxed_str(), o.ts),
                );
            }
            if st.distinct.len() > cfg.helo.max_distinct {
                m |= Sign::Changing.bit();
            }
        }
        if m != 0 {
            st.anomalous += 1;
            for s in Sign::ALL {
                if m & s.bit() != 0 {
                    let c = &mut st.sign_counts[s as usize];
                    *c = c.saturating_add(1);
                }
            }
            if st.samples.len() < MAX_SAMPLES {
                let sample = StoredHelo {
                    secs: o.ts.secs(),
                    time_text: None,
                    helo: o.helo.to_string(),
                    client: o.client.map(maillog::ip::text),
                    mail_from: o.sender.map(str::to_string),
                    rcpt_to: o.rcpts.iter().take(3).map(|r| r.to_string()).collect(),
                    signs: m,
                    signs_list: None,
                    forged_because: foreign,
                    client_host: o.client_host.map(str::to_string),
                    context: o.context.to_string(),
                    same: 0,
                };
                push_sample(&mut st.samples, sample);
            }
        }
        if !st.ours {
            return;
        }
        // Combined score over the signs seen (each counted once).
        let mut mask = 0u8;
        let mut keep = 1.0;
        for s in Sign::ALL {
            if st.sign_counts[s as usize] > 0 {
                mask |= s.bit();
                keep *= 1.0 - s.weight();
            }
        }
        let score = 1.0 - keep;
        // Alert once, and again only when a new kind of sign appears.
        let grew = mask & !st.alerted_mask != 0;
        if score >= cfg.helo.min_score
            && st.anomalous >= cfg.helo.min_events
            && (st.alerted.is_none() || grew)
        {
            let names: Vec<&str> = Sign::ALL
                .iter()
                .filter(|s| mask & s.bit() != 0)
                .map(|s| s.as_str())
                .collect();
            out.push(Alert {
                ts: o.ts,
                detector: Detector::HeloAnomaly,
                entity: entity.clone(),
                score: round3(score),
                summary: format!(
                    "{} of {} HELOs anomalous ({}); {} distinct in {}",
                    st.anomalous,
                    st.events,
                    names.join(", "),
                    st.distinct.len(),
                    cfg.helo.window.to_string_h()
                ),
                evidence: serde_json::to_value(HeloEvidence {
                    signs: Sign::ALL
                        .iter()
                        .filter(|s| st.sign_counts[**s as usize] > 0)
                        .map(|s| SignCount {
                            sign: *s,
                            count: st.sign_counts[*s as usize].into(),
                            weight: s.weight(),
                        })
                        .collect(),
                    anomalous: st.anomalous,
                    observed: st.events,
                    distinct_helos: st.distinct.iter().map(|(h, _)| h.to_string()).collect(),
                    first: st.first.map(|t| t.rfc3339()),
                    samples: resolved(&st.samples)
                        .into_iter()
                        .map(StoredHelo::sample)
                        .collect(),
                })
                .unwrap_or_default(),
            });
            st.alerted = Some(o.ts);
            st.alerted_mask = mask;
        }
    }
}

/// Remember that workstation HELO `helo` sent as `sender`'s domain at `ts`; true when it sent
/// as more than [`MAX_WORKSTATION_SENDER_DOMAINS`] sender domains within `window`.
fn rotating_senders(st: &mut State, helo: &str, sender: Option<&str>, ts: Ts, window: i64) -> bool {
    let Some(d) = sender.and_then(domain_of) else {
        return false;
    };
    let hk = maillog::hash::str_key(helo);
    let dk = maillog::hash::str_key(org_domain(&maillog::bytes::ascii_lower(d)));
    st.workstation_senders
        .retain(|(_, _, t)| t.plus_secs(window) >= ts);
    if let Some(e) = st
        .workstation_senders
        .iter_mut()
        .find(|(h, d, _)| *h == hk && *d == dk)
    {
        e.2 = ts;
    } else if st.workstation_senders.len() < MAX_WORKSTATION_PAIRS {
        crate::compact::push(&mut st.workstation_senders, (hk, dk, ts));
    }
    st.workstation_senders
        .iter()
        .filter(|(h, _, _)| *h == hk)
        .count()
        > MAX_WORKSTATION_SENDER_DOMAINS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<String> {
        vec!["smtp.isp.example".into()]
    }

    fn has(m: u8, s: Sign) -> bool {
        m & s.bit() != 0
    }

    /// Snapshots written while samples were kept as JSON values (snapshot format 3) hold each
    /// sample as a map with the same keys: they still decode into [`HeloSample`], so the
    /// snapshot format did not change.
    #[test]
    fn samples_of_snapshots_kept_as_json_decode_typed() {
        let old = serde_json::json!({
            "time": "2026-11-20 10:47:15",
            "helo": "192.0.2.7",
            "client": "192.0.2.7",
            "mail_from": null,
            "rcpt_to": ["a@example.org"],
            "signs": ["bare-ip", "forged-sender-domain"],
            "forged_because": "freemail",
            "client_host": null,
            "context": "message",
        });
        let mut buf = Vec::new();
        let mut ser = rmp_serde::Serializer::new(&mut buf).with_struct_map();
        serde::Serialize::serialize(&vec![old.clone()], &mut ser).expect("encodes");
        let back: Vec<HeloSample> = rmp_serde::from_slice(&buf).expect("decodes typed");
        assert_eq!(back[0].signs, [Sign::BareIp, Sign::ForgedSenderDomain]);
        assert_eq!(back[0].forged_because, Some(Foreign::Freemail));
        assert_eq!(back[0].mail_from, None);
        assert_eq!(serde_json::to_value(&back[0]).expect("json"), old);
    }

    /// The last sample's fields read borrowed ([`last_resolved`]) are those of the last
    /// sample decoded and filled in ([`resolved`]), after every push of samples whose fields
    /// repeat the one before, or not, in every combination.
    #[test]
    fn the_last_sample_read_borrowed_is_the_last_resolved() {
        let mut p: Packed<StoredHelo> = Packed::default();
        assert!(last_resolved(&p).is_none());
        for i in 0..64u32 {
            let pick = |bit: u32, a: &str, b: &str| {
                if (i >> bit) & 1 == 0 {
                    a.to_string()
                } else {
                    b.to_string()
                }
            };
            let x = HeloSample {
                time: format!("2026-11-20 10:{:02}:00", i % 60),
                // Each field changes every few samples (its bit), so runs repeat it.
                helo: pick(3, "pc-1", "pc-2"),
                client: ((i >> 4) & 3 != 3).then(|| pick(2, "192.0.2.1", "192.0.2.2")),
                mail_from: (i % 16 != 0).then(|| pick(4, "a@x.example", "b@y.example")),
                rcpt_to: vec![format!("r{i}@z.example")],
                signs: vec![Sign::NotHostname],
                forged_because: None,
                client_host: ((i >> 1) & 3 != 3).then(|| pick(5, "h1.example", "h2.example")),
                context: pick(1, "", "554 5.7.1 refused"),
            };
            push_sample(&mut p, StoredHelo::of(x));
            let want = resolved(&p).pop().expect("one pushed");
            let got = last_resolved(&p).expect("one pushed");
            assert_eq!(
                (
                    got.helo,
                    got.client,
                    got.mail_from,
                    got.client_host,
                    got.context
                ),
                (
                    want.helo.as_str(),
                    want.client.as_deref(),
                    want.mail_from.as_deref(),
                    want.client_host.as_deref(),
                    want.context.as_str()
                ),
                "after sample {i}"
            );
        }
        // Every field was left empty as the previous sample's some times, not always.
        let same: Vec<u8> = p.to_vec().iter().map(|s| s.same).collect();
        for bit in [
            SAME_HELO,
            SAME_CLIENT,
            SAME_MAIL_FROM,
            SAME_CLIENT_HOST,
            SAME_CONTEXT,
        ] {
            let n = same.iter().filter(|s| *s & bit != 0).count();
            assert!(n > 8 && n < 60, "field {bit}: {n} of 64");
        }
    }

    /// The state keeps samples packed ([`Packed`]): every field of a sample, `None`s and enums
    /// included, comes back as it was, and a snapshot holds them as the plain list it did.
    #[test]
    fn samples_round_trip_packed() {
        let full = HeloSample {
            time: "2026-11-20 10:47:15".into(),
            helo: "pc-17".into(),
            client: Some("192.0.2.7".into()),
            mail_from: Some("a@example.org".into()),
            rcpt_to: vec!["b@example.net".into(), "c@example.com".into()],
            signs: vec![Sign::NotHostname, Sign::ForgedSenderDomain],
            forged_because: Some(Foreign::ManyClaimants),
            client_host: Some("pc-17.dsl.example.net".into()),
            context: "message".into(),
        };
        let bare = HeloSample {
            client: None,
            mail_from: None,
            rcpt_to: vec![],
            signs: vec![],
            forged_because: None,
            client_host: None,
            context: "554 5.7.1 refused".into(),
            ..full.clone()
        };
        // Neither a display time nor signs in ALL order: kept as given.
        let odd = HeloSample {
            time: "2026-11-20T10:47:15Z".into(),
            signs: vec![
                Sign::ForgedSenderDomain,
                Sign::NotHostname,
                Sign::NotHostname,
            ],
            ..full.clone()
        };
        let feb30 = HeloSample {
            time: "2026-02-30 10:47:15".into(),
            ..bare.clone()
        };
        let later = HeloSample {
            time: "2026-11-20 10:49:01".into(),
            rcpt_to: vec!["d@example.net".into()],
            ..full.clone()
        };
        let want = vec![full, later.clone(), bare, odd, feb30, later];
        let mut p: Packed<StoredHelo> = Packed::default();
        for x in &want {
            push_sample(&mut p, StoredHelo::of(x.clone()));
        }
        let got: Vec<HeloSample> = resolved(&p).into_iter().map(StoredHelo::sample).collect();
        assert_eq!(got, want);
        let kept = p.to_vec();
        assert!(kept[0].time_text.is_none() && kept[0].signs_list.is_none());
        // The second sample is the first's but for time and recipients: all five left empty.
        assert_eq!(kept[1].same, 0b1_1111);
        assert!(kept[1].helo.is_empty() && kept[1].client_host.is_none());
        // The third has no client, sender nor host: only its HELO is the second's.
        assert_eq!(kept[2].same, SAME_HELO);
        assert!(kept[3].time_text.is_some() && kept[3].signs_list.is_some());
        assert!(kept[4].time_text.is_some());
        // A snapshot holds the plain list of samples, in and out.
        #[derive(Serialize, serde::Deserialize)]
        struct Holder {
            #[serde(with = "stored_helos")]
            samples: Packed<StoredHelo>,
        }
        #[derive(Serialize)]
        struct Plain {
            samples: Vec<HeloSample>,
        }
        let plain = crate::snapshot::encode(&Plain {
            samples: want.clone(),
        })
        .expect("encodes");
        let h = Holder { samples: p };
        assert_eq!(crate::snapshot::encode(&h).expect("encodes"), plain);
        let back: Holder = crate::snapshot::decode(&plain).expect("decodes");
        assert!(back.samples == h.samples);
    }

    #[test]
    fn signs_of_bots() {
        let sg = |h: &str, from: Option<&str>, to: &[&str]| signs(h, from, to, None, &own());
        assert!(has(sg("192.0.2.7", None, &[]), Sign::BareIp));
        assert_eq!(sg("[192.0.2.7]", None, &[]), 0);
        assert!(has(sg("smtp.isp.example", None, &[]), Sign::OwnName));
        assert!(has(sg("WIN-9QL4SDRB93L", None, &[]), Sign::NotHostname));
        assert!(has(
            sg("localhost.localdomain", None, &[]),
            Sign::NotHostname
        ));
        let m = sg("yahoo.com", Some("x@spam.example"), &["victim@yahoo.com"]);
        assert!(has(m, Sign::RecipientDomain));
        // ... unless the client's reverse DNS is in that domain.
        let m = signs(
            "yahoo.com",
            Some("x@spam.example"),
            &["victim@yahoo.com"],
            Some("mta7.mail.yahoo.com"),
            &own(),
        );
        assert_eq!(m, 0);
        // Same domain on both sides is a company mailing itself, not forgery.
        assert_eq!(
            sg("acme.example", Some("a@acme.example"), &["b@acme.example"]),
            0
        );
        // Issue 9 class 3: a list server of one organisation writing to its members there.
        assert_eq!(
            sg(
                "lists.univ.example",
                Some("physics-bounces@lists.univ.example"),
                &["prof@univ.example"]
            ),
            0
        );
        assert_eq!(
            sg(
                "dsl-1-2-3-4.pool.isp.example",
                Some("a@gmail.com"),
                &["x@y.example"]
            ),
            0
        );
    }

    #[test]
    fn organisational_domains() {
        assert_eq!(org_domain("mail.acme.example"), "acme.example");
        assert_eq!(org_domain("acme.example"), "acme.example");
        assert_eq!(org_domain("mx.shop.co.uk"), "shop.co.uk");
        assert_eq!(org_domain("a.b.ne.jp"), "b.ne.jp");
        assert_eq!(org_domain("localhost"), "localhost");
        assert_eq!(org_domain("x.example."), "x.example");
        assert_eq!(org_domain("MX.Shop.CO.UK"), "Shop.CO.UK");
        assert_eq!(org_domain(""), "");
        assert_eq!(org_domain(".x"), ".x");
        assert_eq!(org_domain("a..b"), ".b");
    }

    /// Names of every shape the texts give (labels empty, numeric, generic or not, country
    /// codes, trailing dots, upper and mixed case, localhost, non-ASCII).
    fn name_shapes() -> Vec<String> {
        let parts = [
            "",
            "mx",
            "MX",
            "co",
            "Co",
            "com",
            "uk",
            "UK",
            "jp",
            "ne",
            "example",
            "Example",
            "127",
            "0",
            "-a",
            "a-",
            "a_b",
            "localhost",
            "LocalHost",
            "é",
            "x",
        ];
        let mut out = Vec::new();
        for a in parts {
            out.push(a.to_string());
            for b in parts {
                out.push(format!("{a}.{b}"));
                out.push(format!("{a}.{b}."));
                for c in ["co", "uk", "shop", "1"] {
                    out.push(format!("{a}.{b}.{c}"));
                    out.push(format!("mail.{a}.{c}.{b}"));
                }
            }
        }
        out
    }

    /// `org_domain` without ASCII case: of a lower-cased name it is the lower-cased answer,
    /// and on lower-case names it answers as the rule it states (last two labels, three under a
    /// country code's generic second level), written out here the long way.
    #[test]
    fn organisational_domains_are_blind_to_case() {
        let by_rule = |n: &str| -> String {
            let n = n.trim_end_matches('.');
            let labels: Vec<&str> = n.split('.').collect();
            let k = labels.len();
            if k < 2 {
                return n.to_string();
            }
            let keep = if labels[k - 1].len() == 2
                && GENERIC_SECOND_LEVELS.contains(&labels[k - 2])
                && k >= 3
            {
                3
            } else {
                2
            };
            labels[k - keep..].join(".")
        };
        for name in name_shapes() {
            let lower = name.to_ascii_lowercase();
            assert_eq!(org_domain(&lower), by_rule(&lower), "{name}");
            assert_eq!(
                org_domain(&name).to_ascii_lowercase(),
                org_domain(&lower),
                "{name}"
            );
        }
    }

    /// A host name read off the signs is `is_hostname`'s answer, for HELOs of every shape:
    /// names, bare addresses (v4, v6, mapped), literals well and badly formed, empty, spaces,
    /// localhost, upper case, trailing dots, bad labels, non-ASCII.
    #[test]
    fn the_hostname_read_off_the_signs_is_is_hostname() {
        let helos = [
            "mail.example.com",
            "MAIL.Example.COM",
            "mail.example.com.",
            "mx1",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "[192.0.2.1",
            "192.0.2.1]",
            "",
            "   ",
            " mail.example.com ",
            "localhost",
            "localhost.localdomain",
            "LocalHost.example",
            "-bad.example.com",
            "bad-.example.com",
            "a..b.example",
            "under_score.example.org",
            "host.123",
            "müller.example.de",
            "x.y",
            "my pc.example",
        ];
        for helo in helos {
            let m = signs(helo, Some("a@example.com"), &["b@example.net"], None, &[]);
            let lower = helo.trim().to_ascii_lowercase();
            assert_eq!(
                hostname_by_signs(m, &lower),
                is_hostname(&lower),
                "{helo:?}"
            );
        }
    }

    /// [`is_hostname`] as it was written first, label by label with `split`: the one-pass
    /// version must answer the same.
    fn is_hostname_by_labels(s: &str) -> bool {
        if s.len() > 253 || !s.contains('.') {
            return false;
        }
        if s.as_bytes()
            .get(..LOCALHOST.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(LOCALHOST))
        {
            return false;
        }
        let mut last = "";
        for l in s.trim_end_matches('.').split('.') {
            if l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return false;
            }
            last = l;
        }
        !last.bytes().all(|c| c.is_ascii_digit())
    }

    #[test]
    fn a_host_name_is_judged_as_label_by_label() {
        // Every string of up to 6 characters over the bytes that matter, bare and behind
        // prefixes that reach the length limits.
        let alphabet = ['a', '.', '-', '_', '7', ' ', 'é', 'L'];
        let long = "x".repeat(63);
        let prefixes = [
            String::new(),
            "mail.".to_string(),
            format!("{long}."),
            format!("{long}x."),
            format!("{}.", ["a"; 124].join(".")),
            "localhost".to_string(),
            "LocalHost.".to_string(),
            "1.2.3.".to_string(),
        ];
        let mut n = 0;
        let mut yes = 0;
        for tail in crate::testing::strings_over(&alphabet, 6) {
            for p in &prefixes {
                let name = format!("{p}{tail}");
                let expected = is_hostname_by_labels(&name);
                assert_eq!(is_hostname(&name), expected, "{name:?}");
                n += 1;
                yes += usize::from(expected);
            }
        }
        assert!(n > 2_000_000 && yes > 50_000 && yes < n / 2, "{n} {yes}");
    }

    /// `is_hostname` and `signs` answer for a name as for its lower-cased form.
    #[test]
    fn hostnames_and_signs_are_blind_to_case() {
        let own = vec!["mx.isp.example".to_string()];
        for name in name_shapes() {
            let lower = name.to_ascii_lowercase();
            assert_eq!(is_hostname(&name), is_hostname(&lower), "{name}");
            for (from, to) in [
                (Some("a@Shop.CO.uk"), "b@MAIL.shop.co.UK"),
                (Some("a@example"), "b@Example"),
                (None, "x@mx.isp.example"),
            ] {
                let rcpts = [to, "c@other.example"];
                assert_eq!(
                    signs(&name, from, &rcpts, Some("MX.Example"), &own),
                    signs(
                        &lower,
                        from.map(str::to_ascii_lowercase).as_deref(),
                        &[&to.to_ascii_lowercase(), "c@other.example"],
                        Some("mx.example"),
                        &own
                    ),
                    "{name} {from:?} {to}"
                );
            }
        }
        assert!(!is_hostname("LOCALHOST.example"));
        assert!(is_hostname("Mail.Example"));
        assert!(!is_hostname("host.123"));
    }

    #[test]
    fn literals_of_other_hosts() {
        let c: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!foreign_literal("[198.51.100.7]", Some(c)));
        assert!(!foreign_literal("[192.168.1.20]", Some(c)));
        assert!(foreign_literal("[203.0.113.9]", Some(c)));
        assert!(!foreign_literal("pc.example", Some(c)));
    }

    #[test]
    fn auth_refusals() {
        assert!(auth_refusal("550 5.7.23 SPF validation failed"));
        assert!(auth_refusal("550 5.7.1 Unauthenticated email from bank.example is not accepted due to domain's DMARC policy"));
        assert!(!auth_refusal("550 5.1.1 User unknown"));
    }

    #[test]
    fn random_labels() {
        assert!(random_looking("lrhnow"));
        assert!(random_looking("kwntefsqhi"));
        assert!(!random_looking("mail"));
        assert!(!random_looking("smtp"));
        assert!(!random_looking("newsletter"));
        assert!(!random_looking("marketing"));
    }
}
