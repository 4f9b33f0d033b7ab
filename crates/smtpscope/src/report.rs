//! The text report, in the style abuse desks know: a summary, then each flagged entity with the
//! rules that fired and its messages, failed recipients marked `!!!`, delivered ones `->`.

use std::collections::BTreeMap;
use std::fmt::Write;

use detect::engine::EngineStats;
use detect::{Alert, Entity};
use serde_json::Value;

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

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn render_message(s: &mut String, m: &Value, show_helo: bool) {
    let time = str_of(m, "time").unwrap_or("?");
    let sender = str_of(m, "sender").unwrap_or("");
    let sender = if sender.is_empty() { "<>" } else { sender };
    let size = m
        .get("size")
        .and_then(Value::as_u64)
        .map(|x| format!(" Size={x}"))
        .unwrap_or_default();
    let mut extra = String::new();
    if let Some(c) = str_of(m, "client") {
        let _ = write!(extra, " [{c}]");
    }
    if show_helo {
        if let Some(h) = str_of(m, "helo") {
            let _ = write!(extra, " HELO={h}");
        }
    }
    let _ = writeln!(s, "  {time} {sender}{size}{extra}");
    let mut shown = 0;
    let mut hidden_ok = m.get("more_delivered").and_then(Value::as_u64).unwrap_or(0);
    let hidden_fail = m.get("more_failed").and_then(Value::as_u64).unwrap_or(0);
    for r in m
        .get("recipients")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let addr = str_of(r, "addr").unwrap_or("?");
        let outcome = str_of(r, "outcome").unwrap_or("");
        let failed = matches!(outcome, "bounced" | "expired" | "rejected");
        if failed {
            let reply = str_of(r, "reply")
                .map(|x| format!(" ({x})"))
                .unwrap_or_default();
            let _ = writeln!(s, "     !!! {addr}{reply}");
        } else if shown < RCPTS_SHOWN {
            let note = match outcome {
                "deferred" => " (still deferred)",
                "deferred_then_delivered" => " (after deferral)",
                _ => "",
            };
            let _ = writeln!(s, "     ->  {addr}{note}");
            shown += 1;
        } else {
            hidden_ok += 1;
        }
    }
    if hidden_fail > 0 {
        let _ = writeln!(s, "     !!! and {hidden_fail} more failed destinations");
    }
    if hidden_ok > 0 {
        let _ = writeln!(s, "     and {hidden_ok} more valid destinations");
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
        if let Some(a) = latest.get(&detect::Detector::AuthHijack) {
            render_hijack(&mut s, &als, a);
        }
        if let Some(a) = latest.get(&detect::Detector::Campaign) {
            let e = &a.evidence;
            let _ = writeln!(
                s,
                "  campaign since {} UTC; accounts and when they joined:",
                str_of(e, "first").unwrap_or("?")
            );
            for j in e
                .get("joined")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = writeln!(
                    s,
                    "    {}  {}",
                    str_of(j, "at").unwrap_or("?"),
                    str_of(j, "account").unwrap_or("?")
                );
            }
        }
        if let Some(a) = latest.get(&detect::Detector::AuthBruteforce) {
            let e = &a.evidence;
            if let Some(u) = e.get("sample_accounts").and_then(Value::as_array) {
                let names: Vec<&str> = u.iter().filter_map(Value::as_str).collect();
                let _ = writeln!(s, "  accounts tried: {}", names.join(", "));
            }
            if let Some(u) = e
                .get("sample_ips")
                .and_then(Value::as_array)
                .or_else(|| e.get("sample_failure_ips").and_then(Value::as_array))
            {
                let ips: Vec<&str> = u.iter().filter_map(Value::as_str).collect();
                if !ips.is_empty() {
                    let _ = writeln!(s, "  failing from: {}", ips.join(", "));
                }
            }
        }
        if let Some(a) = latest.get(&detect::Detector::HeloAnomaly) {
            if let Some(samples) = a.evidence.get("samples").and_then(Value::as_array) {
                let _ = writeln!(s, "  HELO evidence:");
                for m in samples.iter().take(MESSAGES_SHOWN) {
                    let signs: Vec<&str> = m
                        .get("signs")
                        .and_then(Value::as_array)
                        .map(|v| v.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "  {} HELO={} MAIL FROM=<{}> [{}] {}",
                        str_of(m, "time").unwrap_or("?"),
                        str_of(m, "helo").unwrap_or("?"),
                        str_of(m, "mail_from").unwrap_or(""),
                        str_of(m, "client").unwrap_or("?"),
                        signs.join(",")
                    );
                }
            }
        }
        if let Some(a) = latest.get(&detect::Detector::MultipleLists) {
            for l in a
                .evidence
                .get("lists")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = writeln!(
                    s,
                    "  list {}: {} messages, {} distinct recipients, {} delivered, {} failed",
                    str_of(l, "sender").unwrap_or("?"),
                    l["messages"],
                    l["distinct_recipients"],
                    l["delivered"],
                    l["failed"]
                );
            }
        }
        if let Some(a) = latest.get(&detect::Detector::DeliveryFailures) {
            if let Some(reps) = a
                .evidence
                .get("top_failure_replies")
                .and_then(Value::as_array)
            {
                if !reps.is_empty() {
                    let _ = writeln!(s, "  top failure replies:");
                    for r in reps {
                        let _ = writeln!(
                            s,
                            "    {:>5}  {}",
                            r["count"],
                            str_of(r, "reply").unwrap_or("")
                        );
                    }
                }
            }
            let show_helo = latest.contains_key(&detect::Detector::HeloAnomaly);
            if let Some(ms) = a.evidence.get("sample_messages").and_then(Value::as_array) {
                let seen = a
                    .evidence
                    .get("sampled_of")
                    .and_then(Value::as_u64)
                    .unwrap_or(ms.len() as u64);
                let _ = writeln!(
                    s,
                    "  messages with failures ({} shown of {}):",
                    ms.len().min(MESSAGES_SHOWN),
                    seen
                );
                for m in ms.iter().take(MESSAGES_SHOWN) {
                    render_message(&mut s, m, show_helo);
                }
            }
        }
    }
    s
}

/// The section of a hijacked account: countries with counts, networks, per-IP shape, timeline.
fn render_hijack(s: &mut String, als: &[&Alert], a: &Alert) {
    let e = &a.evidence;
    let list = |k: &str, name: &str, label: &str| -> String {
        e.get(k)
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .map(|x| {
                        let n = x
                            .get(name)
                            .map(|n| n.to_string().trim_matches('"').to_string())
                            .unwrap_or_default();
                        format!("{label}{n} {}", x["ips"])
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let _ = writeln!(
        s,
        "  source IPs {} in the window ({} in the last 10 min from {} countries, {} today, {} networks /24 or /48, {} of them new), {} new ASNs, {} new countries, country entropy {} bits",
        e["source_ips"], e["source_ips_10m"], e["countries_10m"], e["source_ips_day"], e["prefixes"], e["new_networks"], e["new_asns"], e["new_countries"], e["country_entropy_bits"]
    );
    let _ = writeln!(s, "  countries (IPs): {}", list("countries", "country", ""));
    let _ = writeln!(s, "  networks (IPs):  {}", list("asns", "asn", "AS"));
    let per_ip = ["1", "2-5", "6-20", "21-100", ">100"]
        .iter()
        .map(|k| format!("{k}: {}", e["messages_per_ip"][k]))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "  shape: {}; IPs by messages sent ({per_ip}); most from one IP {}",
        str_of(e, "shape").unwrap_or("?"),
        e["max_messages_one_ip"],
    );
    if let Some(r) = e.get("burst_run").filter(|r| !r.is_null()) {
        let _ = writeln!(
            s,
            "  sustained run: {} messages in {}s from {} ({} per minute; address {} to the account)",
            r["messages"],
            r["secs"],
            str_of(r, "ip").unwrap_or("?"),
            r["per_minute"],
            str_of(r, "address").unwrap_or("?")
        );
    }
    let _ = writeln!(
        s,
        "  {} messages, {} recipients ({} failed, {} domains); failed logins before: {}",
        e["messages"],
        e["recipients"],
        e["failed_recipients"],
        e["recipient_domains"],
        e["auth_failures"]
    );
    if let Some(r) = e.get("sample_recipients").and_then(Value::as_array) {
        let v: Vec<&str> = r.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(s, "  sample recipients: {}", v.join(", "));
    }
    let b = &e["baseline"];
    let _ = writeln!(
        s,
        "  baseline: {} days learned, countries {}, {} ASNs",
        b["days"], b["countries"], b["asns"]
    );
    for sig in e
        .get("signals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            s,
            "  signal {} ({}): {}",
            str_of(sig, "name").unwrap_or("?"),
            sig["score"],
            str_of(sig, "detail").unwrap_or("")
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
    for ip in e
        .get("recent_ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            s,
            "    {:<39} {} AS{:<7} {} msgs  {} .. {}",
            str_of(ip, "ip").unwrap_or("?"),
            str_of(ip, "country").unwrap_or("--"),
            ip["asn"],
            ip["messages"],
            str_of(ip, "first").unwrap_or(""),
            str_of(ip, "last").unwrap_or("")
        );
    }
}
