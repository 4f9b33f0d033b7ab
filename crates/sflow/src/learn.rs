//! Learning from log verdicts (issue 15, item 3): what spam sources and mail servers look like
//! on this network, estimated from the labelled hosts, and what the labels say about networks.
//!
//! Two things are learned each time the hosts are judged ([`crate::activity::Activity`]):
//!
//! * **The size term.** The share of a host's samples that are full-sized data segments (IP
//!   length ≥ [`FULL_SEGMENT_IP_LEN`]) measures its message size: a spam engine's messages are
//!   a few kB (few full segments, many SYNs, commands and refused sessions), a mail server's
//!   tens of kB. How far apart the two are differs from network to network, so the two
//!   distributions are *estimated here from the labels*, not fixed: a beta-binomial (each
//!   host its own share, drawn from a Beta distribution per kind) fitted by the method of
//!   moments to the labelled-bad hosts ("spam"), and one to the unlabelled hosts that the other
//!   terms already call servers with odds of 100 to 1 ("server"; the absence of a label is not
//!   a good label, strong server evidence is). The term is the log10 likelihood ratio of the
//!   host's counts under the two, capped at ±[`SIZE_CAP`]. A beta-binomial, not a binomial:
//!   the ratio stays bounded as samples grow (a list server at 0.56 against business MTAs at
//!   0.88 is not condemned by its thousands of samples), because hosts of one kind differ.
//! * **Labelled networks.** A source network (/24, /48) of at least
//!   [`crate::activity::SNOWSHOE_MIN_ADDRESSES`] addresses with at least [`NET_MIN_LABELLED`]
//!   labelled bad, more than the share of labelled addresses at large explains (binomial tail
//!   at most [`NET_LABEL_ALPHA`]): its other addresses without a correspondent of their own
//!   are flagged (the snowshoe verdict): campaign co-membership by address block.
//!
//! **Noisy verdicts.** Labelled hosts whose own evidence from the other terms is at most
//! [`NOISY_LABEL_EVIDENCE`] (a hundred to one for "server") are left out of the spam fit: a log
//! verdict against a host that looks like a mail server by every other measure is more likely a
//! wrong verdict than a spam source (the filtering of mislabelled training data: C. E. Brodley
//! and M. A. Friedl, "Identifying mislabeled training data", JAIR 11, 1999). The network rule
//! tests against the labelled share at large, which wrong verdicts spread evenly over good
//! hosts cannot exceed in one network by chance (a business /24 of 8 servers needs 5 labelled).
//! Unlabelled hosts are never used as "bad", labelled ones never as "server".
//!
//! Pure functions; the caller passes the judged hosts.

use crate::activity::{HostSummary, Verdict, SNOWSHOE_MIN_ADDRESSES};
use serde::Serialize;
use std::collections::HashSet;
use std::net::IpAddr;

/// IP length from which a sample counts as a full-sized data segment: 1,500 at the Ethernet
/// MTU (1,448 bytes of payload and 52 of headers), 1,492 over PPPoE; commands, SYNs, ACKs and
/// the last segment of a message are shorter.
pub const FULL_SEGMENT_IP_LEN: u32 = 1400;
/// Cap (log10) on the size term either way: message size alone never decides more than this.
pub const SIZE_CAP: f64 = 2.0;
/// Without labels, unlabelled hosts whose evidence from the other terms is at least this (odds
/// of a hundred to one for "spam source", the mirror of [`NOISY_LABEL_EVIDENCE`]) are the spam
/// reference of the size fit: self-training (D. Yarowsky, "Unsupervised word sense
/// disambiguation rivaling supervised methods", ACL 1995: a classifier's confident decisions
/// label the data it learns from). The term then carries what the confident detections' message
/// sizes say to the hosts the other terms leave undecided.
pub const SELF_SPAM_EVIDENCE: f64 = 2.0;
/// Labelled hosts whose evidence from the other terms is at most this are taken for wrong
/// verdicts and left out of the spam fit; unlabelled hosts at most this (and with at least
/// [`SERVER_MIN_SAMPLES`]) are the server reference.
pub const NOISY_LABEL_EVIDENCE: f64 = -2.0;
/// Samples an unlabelled host needs to serve as a server reference.
pub const SERVER_MIN_SAMPLES: u64 = 20;
/// Hosts each fit needs (labelled bad kept, server references), else nothing is learned.
pub const MIN_FIT_HOSTS: usize = 10;
/// Bounds of the overdispersion ρ = 1/(α+β+1) of a fit: at least a little spread between
/// hosts of one kind, at most a Beta of α+β = 1.
pub const RHO_MIN: f64 = 0.005;
/// Upper bound of ρ.
pub const RHO_MAX: f64 = 0.5;
/// Labelled addresses a network needs before its labels can flag the others.
pub const NET_MIN_LABELLED: u64 = 3;
/// Binomial tail the labelled count of a network must stay under (against the labelled
/// share of all addresses seen).
pub const NET_LABEL_ALPHA: f64 = 1e-3;

/// A beta-binomial distribution of a count out of n (the Beta's α and β).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BetaBinomial {
    /// α of the Beta.
    pub alpha: f64,
    /// β of the Beta.
    pub beta: f64,
}

impl BetaBinomial {
    /// Method-of-moments fit to per-host counts `(k, n)` (hosts with n = 0 ignored): the mean
    /// of the per-host shares, and the overdispersion from their variance less the binomial
    /// part, ρ clamped to [[`RHO_MIN`], [`RHO_MAX`]]. `None` without hosts.
    pub fn fit(counts: &[(u64, u64)]) -> Option<BetaBinomial> {
        let c: Vec<(f64, f64)> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|&(k, n)| (k.min(n) as f64, n as f64))
            .collect();
        if c.is_empty() {
            return None;
        }
        let len = c.len() as f64;
        let mean = (c.iter().map(|(k, n)| k / n).sum::<f64>() / len).clamp(0.005, 0.995);
        let var = c.iter().map(|(k, n)| (k / n - mean).powi(2)).sum::<f64>() / (len - 1.0).max(1.0);
        let inv_n = c.iter().map(|(_, n)| 1.0 / n).sum::<f64>() / len;
        let base = mean * (1.0 - mean);
        let rho = if inv_n < 1.0 {
            (var - base * inv_n) / (base * (1.0 - inv_n))
        } else {
            RHO_MAX
        };
        let s = 1.0 / rho.clamp(RHO_MIN, RHO_MAX) - 1.0;
        Some(BetaBinomial {
            alpha: mean * s,
            beta: (1.0 - mean) * s,
        })
    }

    /// The mean share α/(α+β).
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// ln P(k of n) without the binomial coefficient (it cancels in a ratio).
    fn ln_p(&self, k: u64, n: u64) -> f64 {
        let (k, n) = (k.min(n) as f64, n as f64);
        ln_beta(k + self.alpha, n - k + self.beta) - ln_beta(self.alpha, self.beta)
    }
}

/// log10 of P(k of n | a) / P(k of n | b).
pub fn log10_ratio(k: u64, n: u64, a: &BetaBinomial, b: &BetaBinomial) -> f64 {
    (a.ln_p(k, n) - b.ln_p(k, n)) / std::f64::consts::LN_10
}

/// ln B(a, b).
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error below 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// P(X ≥ k) for X ~ Binomial(n, p).
pub fn binomial_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (nf, lp, lq) = (n as f64, p.ln(), (1.0 - p).ln());
    (k..=n)
        .map(|i| {
            let i = i as f64;
            (ln_gamma(nf + 1.0) - ln_gamma(i + 1.0) - ln_gamma(nf - i + 1.0)
                + i * lp
                + (nf - i) * lq)
                .exp()
        })
        .sum::<f64>()
        .min(1.0)
}

/// Where the spam reference of the size fit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpamReference {
    /// The labelled-bad hosts (log verdicts, `--labels`), wrong verdicts left out: at least
    /// [`MIN_FIT_HOSTS`] of them.
    Labels,
    /// Without enough labels (none, too few, or all taken for wrong verdicts): the hosts the
    /// other terms call spam sources with odds of at least [`SELF_SPAM_EVIDENCE`]
    /// (self-training), with the labelled ones kept.
    Traffic,
}

/// What was learned from the labels at one judgement (printed with the report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Learned {
    /// Where the spam reference came from.
    pub spam_from: SpamReference,
    /// Spam reference hosts of the size fit (labelled bad kept, or confident by traffic).
    pub spam_references: u64,
    /// Labelled-bad hosts with enough samples.
    pub labelled: u64,
    /// Of them left out of the spam fit as probably wrong verdicts.
    pub noisy: u64,
    /// Unlabelled hosts used as the server reference.
    pub servers: u64,
    /// The size fit of spam sources (share of full-sized segments), if learned.
    pub spam_size: Option<BetaBinomial>,
    /// The size fit of servers.
    pub server_size: Option<BetaBinomial>,
    /// Share of all addresses seen that are labelled bad (the network rule's null).
    pub labelled_share: f64,
    /// Networks whose labels flag their other addresses.
    pub labelled_networks: u64,
}

impl Learned {
    /// The size term of `full` full-sized samples of `samples`: 0 when nothing was learned.
    pub fn size_evidence(&self, full: u64, samples: u64) -> f64 {
        match (&self.spam_size, &self.server_size) {
            (Some(s), Some(g)) if samples > 0 => {
                log10_ratio(full, samples, s, g).clamp(-SIZE_CAP, SIZE_CAP)
            }
            _ => 0.0,
        }
    }
}

/// Learns from `bad` (the labels) over the judged hosts `v` (evidence and verdicts from the
/// other terms) and adds the size term to every host's evidence, re-deciding the verdicts of
/// hosts with `min_samples` against `min_evidence`. Known servers are left alone.
pub fn apply(
    v: &mut [HostSummary],
    bad: &HashSet<IpAddr>,
    min_samples: u64,
    min_evidence: f64,
) -> Learned {
    let judged = |s: &&HostSummary| !s.known && s.samples >= min_samples;
    let labelled: Vec<&HostSummary> = v
        .iter()
        .filter(judged)
        .filter(|s| bad.contains(&s.ip))
        .collect();
    // Labelled hosts that do not look like servers (wrong verdicts left out) are the spam
    // reference when there are enough of them; else the unlabelled hosts the other terms call
    // spam sources with odds of a hundred to one join them (self-training), so that labels that
    // are few or all wrong never teach less than none.
    let kept_labelled: Vec<(u64, u64)> = labelled
        .iter()
        .filter(|s| s.evidence > NOISY_LABEL_EVIDENCE)
        .map(|s| (s.full_samples, s.samples))
        .collect();
    let spam_from = if kept_labelled.len() >= MIN_FIT_HOSTS {
        SpamReference::Labels
    } else {
        SpamReference::Traffic
    };
    let kept: Vec<(u64, u64)> = match spam_from {
        SpamReference::Labels => kept_labelled.clone(),
        SpamReference::Traffic => v
            .iter()
            .filter(judged)
            .filter(|s| {
                if bad.contains(&s.ip) {
                    s.evidence > NOISY_LABEL_EVIDENCE
                } else {
                    s.evidence >= SELF_SPAM_EVIDENCE
                }
            })
            .map(|s| (s.full_samples, s.samples))
            .collect(),
    };
    let servers: Vec<(u64, u64)> = v
        .iter()
        .filter(|s| {
            !s.known
                && !bad.contains(&s.ip)
                && s.samples >= SERVER_MIN_SAMPLES.max(min_samples)
                && s.evidence <= NOISY_LABEL_EVIDENCE
        })
        .map(|s| (s.full_samples, s.samples))
        .collect();
    let seen = v.iter().filter(|s| !s.known).count();
    let seen_bad = v.iter().filter(|s| !s.known && bad.contains(&s.ip)).count();
    let enough = kept.len() >= MIN_FIT_HOSTS && servers.len() >= MIN_FIT_HOSTS;
    let learned = Learned {
        spam_from,
        spam_references: kept.len() as u64,
        labelled: labelled.len() as u64,
        noisy: (labelled.len() - kept_labelled.len()) as u64,
        servers: servers.len() as u64,
        spam_size: if enough {
            BetaBinomial::fit(&kept)
        } else {
            None
        },
        server_size: if enough {
            BetaBinomial::fit(&servers)
        } else {
            None
        },
        labelled_share: if seen == 0 {
            0.0
        } else {
            seen_bad as f64 / seen as f64
        },
        labelled_networks: 0,
    };
    for s in v.iter_mut().filter(|s| !s.known) {
        s.size_evidence = discount_recurring(
            learned.size_evidence(s.full_samples, s.samples),
            s.recurring_share,
        );
        s.evidence += s.size_evidence;
        s.score = 1.0 / (1.0 + 10f64.powf(-s.evidence));
        if s.samples >= min_samples {
            s.verdict = if s.evidence >= min_evidence {
                Verdict::Suspicious
            } else {
                Verdict::ServerLike
            };
        }
    }
    learned
}

/// The size term of a host whose samples fall to `recurring_share` in hours of the day it was
/// active on two days or more: a positive (spam-like) term times (1 − recurring share), a
/// negative one in full. Small messages sent on a daily schedule are a list's daily run or a
/// newsletter, which send small messages as spam does but at the same hours every day; a bot's
/// campaigns come at hours of their own. The same discount as the spread term's
/// ([`crate::activity::HostSummary::spread_evidence`]). Measured on the simulated exchange
/// points (docs/DETECTION.md): list servers flagged with verdicts on test seeds 22 of 289
/// without it, 2 of 289 with it.
pub fn discount_recurring(size: f64, recurring_share: f64) -> f64 {
    if size > 0.0 {
        size * (1.0 - recurring_share.clamp(0.0, 1.0))
    } else {
        size
    }
}

/// Whether a network of `addresses` seen, `labelled` of them labelled bad, is a labelled
/// network: enough addresses and labels, and a binomial tail against `share` (the labelled
/// share at large) of at most [`NET_LABEL_ALPHA`].
pub fn labelled_network(addresses: u64, labelled: u64, share: f64) -> bool {
    addresses >= SNOWSHOE_MIN_ADDRESSES
        && labelled >= NET_MIN_LABELLED
        && share > 0.0
        && share < 1.0
        && binomial_tail(labelled, addresses, share) <= NET_LABEL_ALPHA
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::{Activity, ActivityConfig};
    use crate::observe::FlowObservation;
    use std::net::Ipv4Addr;

    const T0: i64 = 1_700_006_400; // a midnight UTC
    const H: i64 = 3600;

    fn send(
        a: &mut Activity,
        ts: i64,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        syn: bool,
        len: u32,
    ) {
        a.observe(
            ts,
            &FlowObservation {
                agent: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                sampling_rate: 2000,
                src_ip: IpAddr::from(src),
                dst_ip: IpAddr::from(dst),
                protocol: 6,
                src_port: sport,
                dst_port: 25,
                tcp_flags: if syn { 0x02 } else { 0x18 },
                ip_len: len,
                frame_len: len + 14,
            },
        );
    }

    /// An office-hours server: 9 hours a day for 3 days, 2 samples an hour to 4 partner
    /// networks of its own, 9 in 10 samples full-sized, one SYN in 40.
    fn server(a: &mut Activity, src: [u8; 4], id: u8) {
        let mut i = 0u32;
        for day in 0..3 {
            for hr in 8..17 {
                for k in 0..2 {
                    let dst = [172, 16 + id / 64, (id % 64) * 4 + (i % 4) as u8, 1];
                    let len = if i % 10 == 9 { 300 } else { 1500 };
                    let ts = T0 + day * 24 * H + hr * H + k * 1200;
                    send(a, ts, src, dst, 30000 + (i / 3) as u16, i % 40 == 0, len);
                    i += 1;
                }
            }
        }
    }

    /// A spam source: 3 samples an hour in `hours` (hour offsets from T0), each to a new
    /// network, 3 in 10 full-sized, one SYN in `syn_every`.
    fn spammer(a: &mut Activity, src: [u8; 4], id: u16, hours: &[i64], syn_every: u32) {
        let mut i = 0u32;
        for &hr in hours {
            for k in 0..3 {
                let n = u32::from(id) * 64 + i;
                let dst = [100, 64 + (n >> 8) as u8, n as u8, 1];
                let len = if i % 10 < 3 { 1500 } else { 120 };
                send(
                    a,
                    T0 + hr * H + k * 900,
                    src,
                    dst,
                    40000 + i as u16,
                    i % syn_every == 0,
                    len,
                );
                i += 1;
            }
        }
    }

    /// 40 servers, 40 campaign bots (3 hours on day 2), 8 quiet bots (an hour on each of two
    /// days at the same hour, two more on day 3: half a schedule by the daily term), 8 list servers
    /// (small messages at the same two hours every day: a schedule).
    fn population(cfg: ActivityConfig) -> Activity {
        let mut a = Activity::new(cfg);
        for id in 0..40u8 {
            server(&mut a, [10, 1, id, 1], id);
        }
        for id in 0..40u16 {
            spammer(&mut a, [10, 2, id as u8, 1], id, &[30, 31, 32], 8);
        }
        for id in 0..8u16 {
            spammer(
                &mut a,
                [10, 3, id as u8, 1],
                100 + id,
                &[10, 34, 61, 62],
                12,
            );
        }
        for id in 0..8u16 {
            spammer(
                &mut a,
                [10, 4, id as u8, 1],
                200 + id,
                &[6, 7, 30, 31, 54, 55],
                12,
            );
        }
        a
    }

    fn ip(s: [u8; 4]) -> IpAddr {
        IpAddr::from(s)
    }

    #[test]
    fn learning_finds_quiet_spammers_and_wrong_labels_flip_no_server() {
        // 30% of the campaign bots labelled, plus 6 servers labelled wrongly (a third of the
        // labels wrong).
        let labels: Vec<IpAddr> = (0..12u8)
            .map(|i| ip([10, 2, i, 1]))
            .chain((0..6u8).map(|i| ip([10, 1, i, 1])))
            .collect();
        let mut plain = population(ActivityConfig {
            learn: false,
            ..ActivityConfig::default()
        });
        plain.label(labels.iter().copied());
        let mut a = population(ActivityConfig::default());
        a.label(labels.iter().copied());
        assert!(plain.learned().is_none());
        let l = a.learned().unwrap();
        // The wrong labels are recognised and left out of the spam fit.
        assert_eq!((l.labelled, l.noisy, l.servers), (18, 6, 34));
        let (spam, server) = (l.spam_size.unwrap(), l.server_size.unwrap());
        assert!((spam.mean() - 0.33).abs() < 0.05, "{spam:?}");
        assert!(server.mean() > 0.85, "{server:?}");
        for id in 0..40u8 {
            let s = a.summary(ip([10, 1, id, 1])).unwrap();
            assert!(s.size_evidence < 0.0, "{s:?}");
            assert_eq!(s.verdict, Verdict::ServerLike, "{s:?}");
        }
        // The quiet spammers: server-like without learning, flagged with it.
        for id in 0..8u8 {
            let p = plain.summary(ip([10, 3, id, 1])).unwrap();
            let s = a.summary(ip([10, 3, id, 1])).unwrap();
            assert_eq!(p.verdict, Verdict::ServerLike, "{p:?}");
            assert!(s.size_evidence > 0.5, "{s:?}");
            assert_eq!(s.verdict, Verdict::Suspicious, "{s:?}");
        }
        // The list servers send small messages as spam does, but at the same hours every day:
        // the size term does not count against them, with or without learning.
        for id in 0..8u8 {
            let p = plain.summary(ip([10, 4, id, 1])).unwrap();
            let s = a.summary(ip([10, 4, id, 1])).unwrap();
            assert_eq!(s.recurring_share, 1.0, "{s:?}");
            assert_eq!(s.size_evidence, 0.0, "{s:?}");
            assert_eq!(
                (p.verdict, s.verdict),
                (Verdict::ServerLike, Verdict::ServerLike)
            );
        }
        assert_eq!(
            (l.spam_from, l.spam_references),
            (SpamReference::Labels, 12)
        );
    }

    #[test]
    fn without_labels_the_confident_detections_teach_the_size_term() {
        // No labels: the campaign bots, spam sources by every other term, are the spam
        // reference (self-training); the quiet spammers are found by their message size as
        // with labels, no server or list server is flagged.
        let plain = population(ActivityConfig {
            learn: false,
            ..ActivityConfig::default()
        });
        let mut a = population(ActivityConfig::default());
        assert!(plain.learned().is_none());
        let l = a.learned().unwrap();
        assert_eq!(
            (l.spam_from, l.labelled, l.noisy),
            (SpamReference::Traffic, 0, 0)
        );
        assert_eq!(l.spam_references, 40, "{l:?}");
        let (spam, server) = (l.spam_size.unwrap(), l.server_size.unwrap());
        assert!((spam.mean() - 0.33).abs() < 0.05, "{spam:?}");
        assert!(server.mean() > 0.85, "{server:?}");
        for id in 0..8u8 {
            let p = plain.summary(ip([10, 3, id, 1])).unwrap();
            let s = a.summary(ip([10, 3, id, 1])).unwrap();
            assert_eq!(p.verdict, Verdict::ServerLike, "{p:?}");
            assert_eq!(s.verdict, Verdict::Suspicious, "{s:?}");
            let s = a.summary(ip([10, 4, id, 1])).unwrap();
            assert_eq!((s.size_evidence, s.verdict), (0.0, Verdict::ServerLike));
        }
        let flagged = a.take_new_suspicious(i64::MAX);
        assert!(flagged
            .iter()
            .all(|s| !s.ip.to_string().starts_with("10.1.")));
        assert!(flagged
            .iter()
            .all(|s| !s.ip.to_string().starts_with("10.4.")));
        assert_eq!(
            flagged.len(),
            48,
            "the 40 campaign bots and the 8 quiet ones"
        );
    }

    #[test]
    fn labels_all_wrong_teach_nothing() {
        // Only servers labelled: every one of them is left out as a wrong verdict, so the spam
        // fit is the traffic's own (the 40 confident campaign bots), as without labels, and no
        // server is flagged.
        let mut a = population(ActivityConfig::default());
        a.label((0..20u8).map(|i| ip([10, 1, i, 1])));
        let l = a.learned().unwrap();
        let none = population(ActivityConfig::default()).learned().unwrap();
        assert_eq!((l.labelled, l.noisy, l.spam_references), (20, 20, 40));
        assert_eq!(l.spam_size, none.spam_size);
        for s in a.summaries() {
            if s.ip.to_string().starts_with("10.1.") {
                assert!(s.size_evidence < 0.0, "{s:?}");
                assert_eq!(s.verdict, Verdict::ServerLike, "{s:?}");
            }
        }
    }

    /// The population, a snowshoe /24 of 40 addresses (2 samples each at the same hour on two
    /// days, full-sized: no spam pattern of their own), 12 of them labelled, and a business /24
    /// of 8 servers, 2 of them labelled wrongly (14 labels of 136 addresses at large).
    fn with_networks(cfg: ActivityConfig) -> Activity {
        let mut a = population(cfg);
        for h in 0..40u8 {
            for day in 0..2 {
                let n = 9000 + u32::from(h) * 2 + day as u32;
                let dst = [101, (n >> 8) as u8, n as u8, 1];
                let ts = T0 + day * 24 * H + 14 * H;
                send(&mut a, ts, [10, 9, 9, h + 1], dst, 5000, false, 1500);
            }
        }
        for h in 0..8u8 {
            server(&mut a, [10, 8, 8, h + 1], 100 + h);
        }
        let labels: Vec<IpAddr> = (1..=12u8)
            .map(|i| ip([10, 9, 9, i]))
            .chain([ip([10, 8, 8, 1]), ip([10, 8, 8, 2])])
            .collect();
        a.label(labels);
        a
    }

    #[test]
    fn labelled_networks_flag_their_other_addresses_but_not_for_a_few_wrong_labels() {
        let a = with_networks(ActivityConfig::default());
        let l = a.learned().unwrap();
        assert_eq!(l.labelled_networks, 1);
        for h in 13..=40u8 {
            let s = a.summary(ip([10, 9, 9, h])).unwrap();
            assert_eq!(
                (s.verdict, s.net_labelled),
                (Verdict::Snowshoe, 12),
                "{s:?}"
            );
        }
        for h in 1..=8u8 {
            let s = a.summary(ip([10, 8, 8, h])).unwrap();
            assert_eq!(
                (s.verdict, s.net_labelled),
                (Verdict::ServerLike, 2),
                "{s:?}"
            );
        }
        // Learning off: the snowshoe addresses are not flagged.
        let b = with_networks(ActivityConfig {
            learn: false,
            ..ActivityConfig::default()
        });
        let s = b.summary(ip([10, 9, 9, 20])).unwrap();
        assert_eq!((s.verdict, s.net_labelled), (Verdict::TooFewSamples, 0));
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..20u32 {
            f *= f64::from(n);
            assert!((ln_gamma(f64::from(n) + 1.0) - f.ln()).abs() < 1e-9, "{n}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn binomial_tail_values() {
        // P(X >= 1 | 3, 0.5) = 7/8; P(X >= 5 | 8, 0.1) = 4.3e-4.
        assert!((binomial_tail(1, 3, 0.5) - 0.875).abs() < 1e-12);
        assert!((binomial_tail(5, 8, 0.1) - 4.3165e-4).abs() < 1e-7);
        assert_eq!(binomial_tail(0, 8, 0.1), 1.0);
        assert_eq!(binomial_tail(9, 8, 0.1), 0.0);
    }

    #[test]
    fn fit_recovers_mean_and_spread() {
        // Hosts at 0.4 and 0.6 with 100 samples each: mean 0.5, overdispersed.
        let f = BetaBinomial::fit(&[(40, 100), (60, 100), (40, 100), (60, 100)]).unwrap();
        assert!((f.mean() - 0.5).abs() < 1e-9);
        let s = f.alpha + f.beta;
        // Var of the shares 0.01333 = 0.25·(ρ + (1−ρ)/100): ρ = 0.0437, α+β ≈ 21.9.
        assert!((s - 21.9).abs() < 0.5, "{s}");
        // No spread beyond the binomial: ρ at its floor.
        let g = BetaBinomial::fit(&[(50, 100), (50, 100)]).unwrap();
        assert!((g.alpha + g.beta - (1.0 / RHO_MIN - 1.0)).abs() < 1e-9);
        assert!(BetaBinomial::fit(&[]).is_none());
    }

    #[test]
    fn ratio_is_bounded_for_many_samples() {
        let spam = BetaBinomial {
            alpha: 4.0,
            beta: 6.0,
        };
        let server = BetaBinomial {
            alpha: 17.0,
            beta: 3.0,
        };
        // A host at the spam mean: evidence for spam grows with n, but stays bounded.
        let r100 = log10_ratio(40, 100, &spam, &server);
        let r10k = log10_ratio(4000, 10000, &spam, &server);
        assert!(r100 > 1.0 && r10k > r100 && r10k < 10.0, "{r100} {r10k}");
        // A host at the server mean: evidence for server.
        assert!(log10_ratio(85, 100, &spam, &server) < -1.0);
    }
}
