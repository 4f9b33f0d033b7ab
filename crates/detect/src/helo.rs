//! `helo-anomaly`: the HELO/EHLO names of viruses and spam bots.
//!
//! Real mail programs say who they are, more or less honestly: a host name, or an address literal
//! `[192.0.2.1]`. Mass-mailing worms and spam bots say anything: a bare IP without brackets, our
//! own name, a word that is no host name, a random label in front of the MAIL FROM domain
//! (`HELO lrhnow.usa.net` with `MAIL FROM:<kwntefsqhi@usa.net>`), the recipient's domain — and
//! spam software that randomizes its HELO shows several different ones in a short time
//! (Clayton, CEAS 2004/2005). A NetBIOS-style name such as `DESKTOP-4F2K1` is what Outlook sends
//! and is only weak evidence on its own.

use std::net::IpAddr;

use maillog::Ts;
use serde::Serialize;
use serde_json::json;

use crate::alert::{round3, Alert, Detector, Entity};
use crate::bounded::BoundedMap;
use crate::config::Config;

/// One sign a HELO can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sign {
    /// An IP address without the brackets RFC 5321 requires for an address literal.
    BareIp,
    /// Our own host name or address.
    OwnName,
    /// Not a host name at all (no dot, bad characters, `localhost`).
    NotHostname,
    /// A random-looking label in front of the MAIL FROM domain.
    ForgedSenderDomain,
    /// The domain of a recipient (the sender's domain being another).
    RecipientDomain,
    /// More than the allowed distinct HELOs from one client in the window.
    Changing,
}

impl Sign {
    /// Weight in the combined score `1 - Π(1 - w)`.
    pub fn weight(self) -> f64 {
        match self {
            Sign::OwnName => 0.9,
            Sign::ForgedSenderDomain => 0.9,
            Sign::RecipientDomain => 0.8,
            Sign::Changing => 0.7,
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
        }
    }
    const ALL: [Sign; 6] = [
        Sign::BareIp,
        Sign::OwnName,
        Sign::NotHostname,
        Sign::ForgedSenderDomain,
        Sign::RecipientDomain,
        Sign::Changing,
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

fn domain_of(addr: &str) -> Option<&str> {
    addr.rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// True when `s` is a syntactically valid host name with at least one dot.
pub fn is_hostname(s: &str) -> bool {
    if s.len() > 253 || !s.contains('.') {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("localhost") {
        return false;
    }
    let labels: Vec<&str> = s.trim_end_matches('.').split('.').collect();
    if labels.iter().any(|l| {
        l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    }) {
        return false;
    }
    // A numeric last label is an IP-ish string, not a host name.
    !labels
        .last()
        .is_some_and(|l| l.bytes().all(|c| c.is_ascii_digit()))
}

/// The signs one HELO shows in the context of one message.
pub fn signs(helo: &str, sender: Option<&str>, rcpts: &[&str], own_names: &[String]) -> u8 {
    let mut m = 0u8;
    let h = helo.trim();
    if h.is_empty() {
        return Sign::NotHostname.bit();
    }
    let lower = h.to_ascii_lowercase();
    if h.parse::<IpAddr>().is_ok() {
        m |= Sign::BareIp.bit();
    } else if h.starts_with('[') && h.ends_with(']') {
        // An address literal is correct.
    } else if !is_hostname(h) {
        m |= Sign::NotHostname.bit();
    }
    if own_names.iter().any(|n| {
        n.eq_ignore_ascii_case(&lower)
            || n.eq_ignore_ascii_case(lower.trim_matches(|c| c == '[' || c == ']'))
    }) {
        m |= Sign::OwnName.bit();
    }
    let sdom = sender.and_then(domain_of).map(|d| d.to_ascii_lowercase());
    if let Some(sd) = &sdom {
        if let Some(label) = lower
            .strip_suffix(sd.as_str())
            .and_then(|p| p.strip_suffix('.'))
        {
            if !label.contains('.') && random_looking(label) {
                m |= Sign::ForgedSenderDomain.bit();
            }
        }
    }
    for r in rcpts {
        if let Some(rd) = domain_of(r) {
            let rd = rd.to_ascii_lowercase();
            if sdom.as_deref() == Some(rd.as_str()) {
                continue;
            }
            if lower == rd || lower.ends_with(&format!(".{rd}")) {
                m |= Sign::RecipientDomain.bit();
                break;
            }
        }
    }
    m
}

#[derive(Debug, Default)]
struct State {
    ours: bool,
    distinct: Vec<(String, Ts)>,
    sign_counts: [u64; 6],
    events: u64,
    anomalous: u64,
    samples: Vec<serde_json::Value>,
    alerted: Option<Ts>,
    alerted_mask: u8,
    first: Option<Ts>,
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
    /// What it came from: `message` (an accepted message) or the check's reply text.
    pub context: &'a str,
    /// Whether this entity is known to be one of our customers.
    pub ours: bool,
}

/// The detector.
#[derive(Debug)]
pub struct HeloDetector {
    state: BoundedMap<Entity, State>,
}

impl HeloDetector {
    /// Empty.
    pub fn new(cfg: &Config) -> Self {
        HeloDetector {
            state: BoundedMap::new(cfg.limits.max_entities),
        }
    }

    /// Mark an entity as ours (it relayed or authenticated), which lets its buffered signs alert.
    pub fn mark_ours(&mut self, e: &Entity, ts: Ts) {
        if let Some(s) = self.state.get_mut(e) {
            s.ours = true;
        }
        let _ = ts;
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
        let mut m = signs(o.helo, o.sender, &o.rcpts, own_names);
        let st = self.state.get_or_insert_with(entity, o.ts, State::default);
        st.ours |= o.ours;
        st.events += 1;
        st.first.get_or_insert(o.ts);
        st.distinct.retain(|(_, t)| t.plus_secs(window) >= o.ts);
        let lower = o.helo.to_ascii_lowercase();
        if let Some(e) = st.distinct.iter_mut().find(|(h, _)| *h == lower) {
            e.1 = o.ts;
        } else if st.distinct.len() < MAX_DISTINCT {
            st.distinct.push((lower, o.ts));
        }
        if st.distinct.len() > cfg.helo.max_distinct {
            m |= Sign::Changing.bit();
        }
        if m != 0 {
            st.anomalous += 1;
            for s in Sign::ALL {
                if m & s.bit() != 0 {
                    st.sign_counts[s as usize] += 1;
                }
            }
            if st.samples.len() < MAX_SAMPLES {
                st.samples.push(json!({
                    "time": o.ts.display_utc(),
                    "helo": o.helo,
                    "client": o.client.map(|c| c.to_string()),
                    "mail_from": o.sender,
                    "rcpt_to": o.rcpts.iter().take(3).collect::<Vec<_>>(),
                    "signs": Sign::ALL.iter().filter(|s| m & s.bit() != 0).map(|s| s.as_str()).collect::<Vec<_>>(),
                    "context": o.context,
                }));
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
                evidence: json!({
                    "signs": Sign::ALL.iter().filter(|s| st.sign_counts[**s as usize] > 0).map(|s| json!({"sign": s.as_str(), "count": st.sign_counts[*s as usize], "weight": s.weight()})).collect::<Vec<_>>(),
                    "anomalous": st.anomalous,
                    "observed": st.events,
                    "distinct_helos": st.distinct.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
                    "first": st.first.map(|t| t.rfc3339()),
                    "samples": st.samples,
                }),
            });
            st.alerted = Some(o.ts);
            st.alerted_mask = mask;
        }
    }
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

    #[test]
    fn signs_of_bots() {
        assert!(has(signs("192.0.2.7", None, &[], &own()), Sign::BareIp));
        assert_eq!(signs("[192.0.2.7]", None, &[], &own()), 0);
        assert!(has(
            signs("smtp.isp.example", None, &[], &own()),
            Sign::OwnName
        ));
        assert!(has(
            signs("WIN-9QL4SDRB93L", None, &[], &own()),
            Sign::NotHostname
        ));
        assert!(has(
            signs("localhost.localdomain", None, &[], &own()),
            Sign::NotHostname
        ));
        let m = signs(
            "lrhnow.usa.net",
            Some("kwntefsqhi@usa.net"),
            &["a@b.example"],
            &own(),
        );
        assert!(has(m, Sign::ForgedSenderDomain));
        let m = signs("mail.usa.net", Some("bob@usa.net"), &[], &own());
        assert_eq!(m, 0);
        let m = signs(
            "yahoo.com",
            Some("x@spam.example"),
            &["victim@yahoo.com"],
            &own(),
        );
        assert!(has(m, Sign::RecipientDomain));
        // Same domain on both sides is a company mailing itself, not forgery.
        assert_eq!(
            signs(
                "acme.example",
                Some("a@acme.example"),
                &["b@acme.example"],
                &own()
            ),
            0
        );
        assert_eq!(
            signs(
                "dsl-1-2-3-4.pool.isp.example",
                Some("a@gmail.com"),
                &["x@y.example"],
                &own()
            ),
            0
        );
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
