//! The text report, in the style abuse desks know: a summary, then each flagged entity with the
//! rules that fired and its messages, failed recipients marked `!!!`, delivered ones `->`.

use std::collections::BTreeMap;
use std::fmt::Write;

use detect::engine::EngineStats;
use detect::evidence::{BruteforceEvidence, Evidence, HijackEvidence, MessageSample};
use detect::{Alert, Entity};
use maillog::record::Outcome;

use crate::pipeline::RunStats;

/// Recipients listed per message before "and N more valid destinations".
pub const RCPTS_SHOWN: usize = 6;
/// Messages listed per entity.
pub const MESSAGES_SHOWN: usize = 12;

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        100.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// The summary block.
pub fn summary(run: &RunStats, eng: &EngineStats, alerts: &[Alert]) -> String {
    let mut s = String::new();
    let p = &run.parse;
    let mail = p.mail_counts();
    let _ = writeln!(s, "smtpscope report");
    let _ = writeln!(s, "================");
    for i in &run.inputs {
        let _ = writeln!(
            s,
            "input     {} ({} lines, {:.1} MB, year {})",
            i.name,
            i.lines,
            i.bytes as f64 / 1e6,
            i.year
        );
    }
    let _ = writeln!(
        s,
        "lines     {} read, {} recognized ({:.2}%); mail-program lines {} ({:.2}% recognized)",
        p.lines,
        p.recognized,
        pct(p.recognized, p.lines),
        mail.lines,
        pct(mail.recognized, mail.lines)
    );
    if let (Some(a), Some(b)) = (eng.first_ts, eng.last_ts) {
        let _ = writeln!(
            s,
            "period    {} .. {} UTC",
            a.display_utc(),
            b.display_utc()
        );
    }
    let _ = writeln!(
        s,
        "messages  {} ({} outgoing, {} incoming, {} bounces/notifications/internal)",
        eng.records, eng.outgoing, eng.incoming, eng.internal
    );
    let _ = writeln!(
        s,
        "outgoing  {} recipients delivered, {} failed",
        eng.delivered_recipients, eng.failed_recipients
    );
    let mut by_det: BTreeMap<&str, std::collections::BTreeSet<&Entity>> = BTreeMap::new();
    for a in alerts {
        by_det
            .entry(a.detector.as_str())
            .or_default()
            .insert(&a.entity);
    }
    if by_det.is_empty() {
        let _ = writeln!(s, "flagged   nothing");
    }
    for (d, es) in by_det {
        let _ = writeln!(s, "flagged   {d}: {} entities", es.len());
    }
    s
}

/// One line of a message listing, as the text report and the HTML report show it.
#[derive(Debug, Clone, PartialEq)]
pub enum ListingLine<'a> {
    /// The message: time, envelope sender (`<>` for the null sender) and what is known of it.
    Message {
        /// Time as the sample carries it.
        time: &'a str,
        /// Envelope sender, `<>` when empty.
        sender: &'a str,
        /// Size in bytes.
        size: Option<u64>,
        /// Client address.
        client: Option<&'a str>,
        /// HELO name (only when the HELO evidence is shown with it).
        helo: Option<&'a str>,
    },
    /// A failed recipient (`!!!`), with the remote reply.
    Failed {
        /// Address.
        addr: &'a str,
        /// Remote reply.
        reply: Option<&'a str>,
    },
    /// A delivered recipient (`->`).
    Delivered {
        /// Address.
        addr: &'a str,
        /// Note on how it was delivered, empty when plainly.
        note: &'static str,
    },
    /// Failed recipients not listed.
    MoreFailed(usize),
    /// Delivered recipients not listed.
    MoreValid(usize),
}

/// The listing of one sample message: the message line, every failed recipient, at most
/// [`RCPTS_SHOWN`] delivered ones and counts of the rest.
pub fn listing(m: &MessageSample, show_helo: bool) -> Vec<ListingLine<'_>> {
    let mut out = vec![ListingLine::Message {
        time: &m.time,
        sender: if m.sender.is_empty() { "<>" } else { &m.sender },
        size: m.size,
        client: m.client.as_deref(),
        helo: m.helo.as_deref().filter(|_| show_helo),
    }];
    let mut shown = 0;
    let mut hidden_ok = m.more_delivered;
    for r in &m.recipients {
        if r.outcome.is_failure() {
            out.push(ListingLine::Failed {
                addr: &r.addr,
                reply: r.reply.as_deref(),
            });
        } else if shown < RCPTS_SHOWN {
            let note = match r.outcome {
                Outcome::Deferred => "still deferred",
                Outcome::DeferredThenDelivered => "after deferral",
                _ => "",
            };
            out.push(ListingLine::Delivered {
                addr: &r.addr,
                note,
            });
            shown += 1;
        } else {
            hidden_ok += 1;
        }
    }
    if m.more_failed > 0 {
        out.push(ListingLine::MoreFailed(m.more_failed));
    }
    if hidden_ok > 0 {
        out.push(ListingLine::MoreValid(hidden_ok));
    }
    out
}

fn render_message(s: &mut String, m: &MessageSample, show_helo: bool) {
    for l in listing(m, show_helo) {
        let _ = match l {
            ListingLine::Message {
                time,
                sender,
                size,
                client,
                helo,
            } => {
                let size = size.map(|x| format!(" Size={x}")).unwrap_or_default();
                let mut extra = String::new();
                if let Some(c) = client {
                    let _ = write!(extra, " [{c}]");
                }
                if let Some(h) = helo {
                    let _ = write!(extra, " HELO={h}");
                }
                writeln!(s, "  {time} {sender}{size}{extra}")
            }
            ListingLine::Failed { addr, reply } => {
                let reply = reply.map(|x| format!(" ({x})")).unwrap_or_default();
                writeln!(s, "     !!! {addr}{reply}")
            }
            ListingLine::Delivered { addr, note } => {
                if note.is_empty() {
                    writeln!(s, "     ->  {addr}")
                } else {
                    writeln!(s, "     ->  {addr} ({note})")
                }
            }
            ListingLine::MoreFailed(n) => writeln!(s, "     !!! and {n} more failed destinations"),
            ListingLine::MoreValid(n) => writeln!(s, "     and {n} more valid destinations"),
        };
    }
}

/// The incidents: alerts merged per entity, and what the containment policy would have done
/// (`detect::incident`, by the alerts' own times).
pub fn incidents(list: &[detect::incident::Incident]) -> String {
    let mut s = String::new();
    if list.is_empty() {
        return s;
    }
    let contained = list
        .iter()
        .filter(|i| {
            i.timeline
                .iter()
                .any(|t| t.step == detect::incident::Step::Contained)
        })
        .count();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "incidents {} ({contained} contained by the policy of [serve.containment])",
        list.len()
    );
    for i in list {
        let dets: Vec<&str> = i.detectors.iter().map(|d| d.as_str()).collect();
        let _ = writeln!(
            s,
            "  #{:<4} {:<9} {} {}  {}  score {:.2}, {} alert{}, {} .. {} UTC",
            i.id,
            i.state.as_str(),
            i.entity.kind,
            i.entity.id,
            dets.join(","),
            i.score,
            i.alerts,
            if i.alerts == 1 { "" } else { "s" },
            i.first.display_utc(),
            i.last.display_utc()
        );
    }
    s
}

/// The per-entity sections.
pub fn entities(alerts: &[Alert]) -> String {
    let mut groups: BTreeMap<&Entity, Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        groups.entry(&a.entity).or_default().push(a);
    }
    let mut order: Vec<(&Entity, Vec<&Alert>)> = groups.into_iter().collect();
    order.sort_by(|a, b| {
        let ma = a.1.iter().map(|x| x.score).fold(0.0, f64::max);
        let mb = b.1.iter().map(|x| x.score).fold(0.0, f64::max);
        mb.partial_cmp(&ma)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(b.0))
    });
    let mut s = String::new();
    for (ent, als) in order {
        // The latest alert of each detector carries the fullest evidence.
        let mut latest: BTreeMap<detect::Detector, &Alert> = BTreeMap::new();
        for a in &als {
            latest.insert(a.detector, a);
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "== {} {} ==", ent.kind, ent.id);
        for (d, a) in &latest {
            let first = als
                .iter()
                .filter(|x| x.detector == *d)
                .map(|x| x.ts)
                .min()
                .unwrap_or(a.ts);
            let _ = writeln!(
                s,
                "  {d} (score {:.2}, first {} UTC): {}",
                a.score,
                first.display_utc(),
                a.summary
            );
        }
        let ev = |d: detect::Detector| latest.get(&d).and_then(|a| Evidence::of(a));
        if let Some(a) = latest.get(&detect::Detector::AuthHijack) {
            if let Some(Evidence::AuthHijack(e)) = Evidence::of(a) {
                render_hijack(&mut s, &als, &e);
            }
        }
        if let Some(Evidence::Campaign(e)) = ev(detect::Detector::Campaign) {
            let _ = writeln!(
                s,
                "  campaign since {} UTC; accounts and when they joined:",
                e.first
            );
            for j in &e.joined {
                let _ = writeln!(s, "    {}  {}", j.at, j.account);
            }
        }
        if let Some(Evidence::AuthBruteforce(e)) = ev(detect::Detector::AuthBruteforce) {
            if let BruteforceEvidence::Address(x) = &e {
                let _ = writeln!(s, "  accounts tried: {}", x.sample_accounts.join(", "));
            }
            let ips = e.sample_failing_ips();
            if !ips.is_empty() {
                let _ = writeln!(s, "  failing from: {}", ips.join(", "));
            }
        }
        if let Some(Evidence::HeloAnomaly(e)) = ev(detect::Detector::HeloAnomaly) {
            let _ = writeln!(s, "  HELO evidence:");
            for m in e.samples.iter().take(MESSAGES_SHOWN) {
                let signs: Vec<&str> = m.signs.iter().map(|x| x.as_str()).collect();
                let _ = writeln!(
                    s,
                    "  {} HELO={} MAIL FROM=<{}> [{}] {}",
                    m.time,
                    m.helo,
                    m.mail_from.as_deref().unwrap_or(""),
                    m.client.as_deref().unwrap_or("?"),
                    signs.join(",")
                );
            }
        }
        if let Some(Evidence::MultipleLists(e)) = ev(detect::Detector::MultipleLists) {
            for l in &e.lists {
                let _ = writeln!(
                    s,
                    "  list {}: {} messages, {} distinct recipients, {} delivered, {} failed",
                    l.sender, l.messages, l.distinct_recipients, l.delivered, l.failed
                );
            }
        }
        if let Some(Evidence::DeliveryFailures(e)) = ev(detect::Detector::DeliveryFailures) {
            if !e.top_failure_replies.is_empty() {
                let _ = writeln!(s, "  top failure replies:");
                for r in &e.top_failure_replies {
                    let _ = writeln!(s, "    {}  {}", r.count, r.reply);
                }
            }
            let show_helo = latest.contains_key(&detect::Detector::HeloAnomaly);
            let ms = &e.sample_messages;
            let _ = writeln!(
                s,
                "  messages with failures ({} shown of {}):",
                ms.len().min(MESSAGES_SHOWN),
                e.sampled_of
            );
            for m in ms.iter().take(MESSAGES_SHOWN) {
                render_message(&mut s, m, show_helo);
            }
        }
    }
    s
}

/// A number as the alert's JSON shows it (`2.0`, not `2`), so the report reads like the evidence.
fn num(x: f64) -> String {
    serde_json::Value::from(x).to_string()
}

/// The section of a hijacked account: countries with counts, networks, per-IP shape, timeline.
fn render_hijack(s: &mut String, als: &[&Alert], e: &HijackEvidence) {
    let countries: Vec<String> = e
        .countries
        .iter()
        .map(|c| format!("{} {}", c.country, c.ips))
        .collect();
    let asns: Vec<String> = e
        .asns
        .iter()
        .map(|a| format!("AS{} {}", a.asn, a.ips))
        .collect();
    let _ = writeln!(
        s,
        "  source IPs {} in the window ({} in the last 10 min from {} countries, {} today, {} networks /24 or /48, {} of them new), {} new ASNs, {} new countries, country entropy {} bits",
        e.source_ips,
        e.source_ips_10m,
        e.countries_10m,
        e.source_ips_day,
        e.prefixes,
        e.new_networks,
        e.new_asns,
        e.new_countries,
        num(e.country_entropy_bits)
    );
    let _ = writeln!(s, "  countries (IPs): {}", countries.join(", "));
    let _ = writeln!(s, "  networks (IPs):  {}", asns.join(", "));
    let p = &e.messages_per_ip;
    let _ = writeln!(
        s,
        "  shape: {}; IPs by messages sent (1: {}, 2-5: {}, 6-20: {}, 21-100: {}, >100: {}); most from one IP {}",
        e.shape, p.one, p.few, p.some, p.many, p.lots, e.max_messages_one_ip,
    );
    if let Some(r) = &e.burst_run {
        let _ = writeln!(
            s,
            "  sustained run: {} messages in {}s from {} ({} per minute; address {} to the account)",
            r.messages,
            num(r.secs),
            r.ip,
            num(r.per_minute),
            r.address
        );
    }
    let _ = writeln!(
        s,
        "  {} messages, {} recipients ({} failed, {} domains); failed logins before: {}",
        e.messages, e.recipients, e.failed_recipients, e.recipient_domains, e.auth_failures
    );
    let _ = writeln!(s, "  sample recipients: {}", e.sample_recipients.join(", "));
    let b = &e.baseline;
    let _ = writeln!(
        s,
        "  baseline: {} days learned, countries {}, {} ASNs",
        b.days,
        serde_json::to_string(&b.countries).unwrap_or_default(),
        b.asns
    );
    for sig in &e.signals {
        let _ = writeln!(
            s,
            "  signal {} ({}): {}",
            sig.name,
            num(sig.score),
            sig.detail
        );
    }
    let _ = writeln!(s, "  timeline:");
    let mut hist: Vec<&&Alert> = als
        .iter()
        .filter(|x| x.detector == detect::Detector::AuthHijack)
        .collect();
    hist.sort_by_key(|x| x.ts);
    for h in hist {
        let _ = writeln!(s, "    {} UTC  {}", h.ts.display_utc(), h.summary);
    }
    let _ = writeln!(s, "  latest IPs:");
    for ip in &e.recent_ips {
        let _ = writeln!(
            s,
            "    {:<39} {} AS{} {} msgs  {} .. {}",
            ip.ip, ip.country, ip.asn, ip.messages, ip.first, ip.last
        );
    }
}

/// An alert as `analyze` and the service write it (JSON Lines, the store's `alerts.json`),
/// read back; `None` when a field is missing or of another shape (an alert of another version).
pub fn alert_from_json(v: &serde_json::Value) -> Option<Alert> {
    Some(Alert {
        ts: maillog::Ts::parse_rfc3339(v.get("ts")?.as_str()?)?,
        detector: serde_json::from_value(v.get("detector")?.clone()).ok()?,
        entity: serde_json::from_value(v.get("entity")?.clone()).ok()?,
        score: v.get("score")?.as_f64()?,
        summary: v.get("summary")?.as_str()?.to_string(),
        evidence: v.get("evidence").cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use detect::evidence::{ListSender, ListsEvidence};
    use detect::{Detector, EntityKind};

    /// Real alerts of every detector, as `analyze` wrote them before the evidence was typed
    /// (see `crates/detect/tests/evidence.rs`).
    const STORED: &str = include_str!("../../detect/tests/data/evidence-alerts.jsonl");

    /// The stored alerts, read back (also used by the HTML evidence tests).
    pub(crate) fn stored() -> Vec<Alert> {
        STORED
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
                alert_from_json(&v).expect("an alert")
            })
            .collect()
    }

    #[test]
    fn entity_sections_render_from_typed_evidence() {
        let text = entities(&stored());
        for want in [
            "  campaign since ",
            "  failing from: ",
            "  accounts tried: ",
            "  HELO evidence:",
            "  top failure replies:",
            "  messages with failures (",
            "     !!! ",
            "  source IPs ",
            "  signal ",
            "  baseline: ",
            "  latest IPs:",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
    }

    #[test]
    fn multiple_lists_section_lists_each_sender() {
        let ev = ListsEvidence {
            lists: ["offers@shop-a.example", "deals@shop-b.example"]
                .iter()
                .map(|s| ListSender {
                    sender: s.to_string(),
                    messages: 4,
                    distinct_recipients: 200,
                    repeat_deliveries: 0,
                    delivered: 183,
                    failed: 17,
                    first: "2026-11-20T10:00:00Z".into(),
                    last: "2026-11-20T10:10:30Z".into(),
                })
                .collect(),
            min_recipients: 20,
            max_failure_ratio: 0.2,
        };
        let a = Alert {
            ts: maillog::Ts::from_secs(1_795_168_800),
            detector: Detector::MultipleLists,
            entity: Entity::new(EntityKind::Account, "reseller@isp.example"),
            score: 0.6,
            summary: "2 list-like senders".into(),
            evidence: serde_json::to_value(&ev).expect("serializable"),
        };
        let text = entities(&[a]);
        assert!(text.contains(
            "  list offers@shop-a.example: 4 messages, 200 distinct recipients, 183 delivered, 17 failed\n  list deals@shop-b.example: "
        ), "{text}");
    }

    #[test]
    fn evidence_of_an_unknown_shape_leaves_out_the_details_only() {
        let mut a = stored()
            .into_iter()
            .find(|a| a.detector == Detector::Campaign)
            .expect("a campaign alert");
        a.evidence = serde_json::json!({"n": 1});
        let text = entities(&[a]);
        assert!(text.contains("== campaign "), "{text}");
        assert!(!text.contains("campaign since"), "{text}");
    }
}
