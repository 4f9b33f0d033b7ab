//! The HTML report of `analyze --format html`: one self-contained file (inline CSS and SVG, no
//! script, nothing fetched), in the order an abuse desk reads it: what was read and found, IIJ's
//! five figures, then one section per incident (highest score first, at most
//! [`MAX_SECTIONS`]).

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use detect::engine::EngineStats;
use detect::evidence::Evidence;
use detect::hijack::Shape;
use detect::incident::Incident;
use detect::{Alert, Detector, Entity, EntityKind};

use super::chart::render as chart;
use super::{evidence, figures};
use crate::pipeline::RunStats;
use crate::report::MESSAGES_SHOWN;
use crate::seen::Seen;

/// Incident sections written (ours first, then by score): a 200,000-user day raises about a
/// thousand incidents (most about outside hosts), and a file of all of them is slow to open and
/// nobody reads past the first pages. The summary table names the first [`MAX_LISTED`]. Our
/// own idea.
pub const MAX_SECTIONS: usize = 50;
/// Countries and networks listed per incident.
pub const MAX_SOURCES: usize = 15;
/// Incidents named in the summary table.
pub const MAX_LISTED: usize = 500;

/// The page's style, screen and print (no web font: the reader's sans-serif and monospace).
pub const CSS: &str = r#"
body{font-family:sans-serif;margin:1.5em auto;max-width:64em;color:#111;line-height:1.35}
h1{font-size:1.6em}h2{border-bottom:2px solid #444;margin-top:2em}h3{margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #bbb;padding:.15em .5em;text-align:left;vertical-align:top;font-size:.9em}
th{background:#eee}table.kv>tbody>tr>th{width:14em}table.ev th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
figure.chart{margin:1em 0}figcaption{font-weight:bold;margin-bottom:.3em}
svg.fig{max-width:100%;height:auto;background:#fff}
svg text{font-family:sans-serif;font-size:10px;fill:#222}svg text.axis{font-size:11px}
svg line.grid{stroke:#ddd}svg line.axis{stroke:#444}
ul.legend{list-style:none;padding:0;margin:.2em 0;font-size:.85em}ul.legend li{display:inline-block;margin-right:1em}
span.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}
span.swatch.line{height:2px;background:#000}
p.note{color:#555;font-size:.85em;margin:.2em 0}
pre.listing{background:#fafafa;border:1px solid #ddd;padding:.5em;overflow-x:auto;font-size:.85em}
pre.listing .fail{color:#b00}pre.listing .ok{color:#060}pre.listing .msg{font-weight:bold}
section.incident{border-top:1px solid #999}
@media print{body{max-width:none;margin:0;font-size:10pt}section.incident{break-before:page}
figure.chart,table{break-inside:avoid}pre.listing{white-space:pre-wrap;border:none}
a{color:inherit;text-decoration:none}}
"#;

/// Everything the report is made of.
pub struct Input<'a> {
    /// What was read.
    pub run: &'a RunStats,
    /// The engine's counters.
    pub engine: &'a EngineStats,
    /// Every alert, in order.
    pub alerts: &'a [Alert],
    /// The incidents.
    pub incidents: &'a [Incident],
    /// The records seen.
    pub seen: &'a Seen,
    /// Geo data, for countries and networks.
    pub geo: &'a geo::GeoDb,
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "100.00".into()
    } else {
        format!("{:.2}", a as f64 * 100.0 / b as f64)
    }
}

/// An incident about one of our own users or customers (what the abuse desk acts on), rather
/// than about an outside host or network attacking us (incoming-failures, incoming-helo,
/// password guessing from outside).
pub fn about_ours(i: &Incident) -> bool {
    i.entity.kind == EntityKind::Account
        || i.detectors.iter().any(|d| {
            matches!(
                d,
                Detector::DeliveryFailures
                    | Detector::MultipleLists
                    | Detector::HeloAnomaly
                    | Detector::AuthHijack
                    | Detector::Campaign
                    | Detector::LoopedBack
                    | Detector::SflowActivity
            )
        })
}

/// Incidents in the report's order: ours first, then outside ones; each by score, then id.
fn by_score(list: &[Incident]) -> Vec<&Incident> {
    let mut v: Vec<&Incident> = list.iter().collect();
    v.sort_by(|a, b| {
        about_ours(b)
            .cmp(&about_ours(a))
            .then(
                b.score
                    .partial_cmp(&a.score)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
            .then(a.id.cmp(&b.id))
    });
    v
}

/// The summary: inputs, parse coverage, period, messages, alerts and incidents per detector.
pub fn summary(r: &Input<'_>) -> Markup {
    let p = &r.run.parse;
    let mail = p.mail_counts();
    let e = r.engine;
    let mut per: BTreeMap<Detector, (u64, std::collections::BTreeSet<&Entity>, u64)> =
        BTreeMap::new();
    for a in r.alerts {
        let x = per.entry(a.detector).or_default();
        x.0 += 1;
        x.1.insert(&a.entity);
    }
    for i in r.incidents {
        per.entry(i.detector).or_default().2 += 1;
    }
    let mut formats: Vec<_> = p.by_format.iter().collect();
    formats.sort_by_key(|(f, _)| **f);
    html! {
        h2 #summary { "Summary" }
        table.kv {
            @for i in &r.run.inputs {
                tr { th { "input" } td { (i.name) " (" (i.lines) " lines, " (format!("{:.1}", i.bytes as f64 / 1e6)) " MB, year " (i.year) ")" } }
            }
            tr { th { "lines" } td { (p.lines) " read, " (p.recognized) " recognized (" (pct(p.recognized, p.lines)) "%)" } }
            tr { th { "mail-program lines" } td { (mail.lines) " (" (pct(mail.recognized, mail.lines)) "% recognized)" } }
            @for (f, c) in &formats {
                tr { th { "format " (f.as_str()) } td { (c.lines) " lines, " (pct(c.recognized, c.lines)) "% recognized" } }
            }
            @if let (Some(a), Some(b)) = (e.first_ts, e.last_ts) {
                tr { th { "period" } td { (a.display_utc()) " .. " (b.display_utc()) " UTC" } }
            }
            tr { th { "messages" } td { (e.records) " (" (e.outgoing) " outgoing, " (e.incoming) " incoming, " (e.internal) " bounces/notifications/internal)" } }
            tr { th { "outgoing" } td { (e.delivered_recipients) " recipients delivered, " (e.failed_recipients) " failed" } }
            @if r.seen.dropped > 0 {
                tr { th { "figures" } td { (r.seen.dropped) " records of unflagged senders left out of the figures (over " (crate::seen::MAX_ROWS) " kept)" } }
            }
        }
        @if per.is_empty() {
            p { "Nothing flagged." }
        } @else {
            table #per-detector {
                thead { tr { th { "detector" } th { "alerts" } th { "entities" } th { "incidents" } } }
                tbody {
                    @for (d, (n, ents, inc)) in &per {
                        tr { td { (d.as_str()) } td.n { (n) } td.n { (ents.len()) } td.n { (inc) } }
                    }
                }
            }
        }
        @if !r.incidents.is_empty() {
            h3 { "Incidents (" (r.incidents.len()) ", " (r.incidents.iter().filter(|i| about_ours(i)).count()) " about our own users and customers)" }
            p.note { "Our own users and customers first, then outside hosts and networks; each by score." }
            table #incident-list {
                thead { tr { th { "#" } th { "entity" } th { "detectors" } th { "state" } th { "score" } th { "alerts" } th { "first .. last UTC" } } }
                tbody {
                    @for (k, i) in by_score(r.incidents).into_iter().take(MAX_LISTED).enumerate() {
                        tr {
                            td.n { @if k < MAX_SECTIONS { a href=(format!("#incident-{}", i.id)) { (i.id) } } @else { (i.id) } }
                            td { (i.entity.kind) " " (i.entity.id) }
                            td { (i.detectors.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (i.state.as_str()) }
                            td.n { (format!("{:.2}", i.score)) }
                            td.n { (i.alerts) }
                            td { (i.first.display_utc()) " .. " (i.last.display_utc()) }
                        }
                    }
                }
            }
            @if r.incidents.len() > MAX_LISTED {
                p.note { (r.incidents.len() - MAX_LISTED) " more incidents not listed (the last in this order); `--format incidents` has them all." }
            }
        }
    }
}

/// IIJ's five figures of the report.
pub fn figures(r: &Input<'_>) -> Markup {
    let period = match (r.engine.first_ts, r.engine.last_ts) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    iij_figures(r.alerts, r.incidents, r.seen, r.geo, period)
}

/// IIJ's five figures from alerts, their incidents and the records seen over `period` (the
/// report's whole run; the dashboard's window): one code for both.
pub fn iij_figures(
    alerts: &[Alert],
    incidents: &[Incident],
    seen: &Seen,
    geo: &geo::GeoDb,
    period: Option<(maillog::Ts, maillog::Ts)>,
) -> Markup {
    let days = figures::accounts_per_day(alerts, period);
    let hij = figures::hijacked(incidents);
    let all: Vec<&Entity> = hij.iter().map(|h| h.entity).collect();
    let top: Vec<&Entity> = all.iter().take(figures::TOP_ACCOUNTS).copied().collect();
    let burst: Vec<&Entity> = hij
        .iter()
        .filter(|h| h.shape == Shape::Burst)
        .map(|h| h.entity)
        .collect();
    let spread: Vec<&Entity> = hij
        .iter()
        .filter(|h| h.shape == Shape::Spread)
        .map(|h| h.entity)
        .collect();
    html! {
        h2 #figures { "Figures" }
        p { "After IIJ's report on hijacked accounts: figures 2 to 5 are drawn from the messages the "
            (all.len()) " accounts flagged by auth-hijack sent (" (burst.len()) " of the \"thousands from one IP\" shape, "
            (spread.len()) " of the \"a few from each of many IPs\" shape, the rest mixed)." }
        (chart(&figures::accounts_per_day_chart(&days)))
        @if let Some(p) = period {
            @let b = figures::Buckets::over(p);
            (chart(&figures::country_mix_chart(&figures::country_mix(seen, geo, &all, b), b, all.len())))
            (chart(&figures::ips_per_account_chart(&figures::ips_per_account(seen, &top, b), b, all.len() - top.len())))
        }
        (chart(&figures::per_source_ip_chart("fig-per-ip-burst",
            "Figure 4. Messages per source IP, accounts of the \"thousands from one IP\" shape",
            &figures::per_source_ip(seen, &burst), burst.len())))
        (chart(&figures::per_source_ip_chart("fig-per-ip-spread",
            "Figure 5. Messages per source IP, accounts of the \"a few from each of many IPs\" shape",
            &figures::per_source_ip(seen, &spread), spread.len())))
    }
}

/// The entities whose records make an incident's timeline: its own, or a campaign's accounts
/// (from its alerts' evidence).
pub fn members(entity: &Entity, alerts: &[Alert]) -> Vec<Entity> {
    if entity.kind != EntityKind::Campaign {
        return vec![entity.clone()];
    }
    let mut out = Vec::new();
    for a in alerts {
        if let Some(Evidence::Campaign(e)) = Evidence::of(a) {
            for j in &e.joined {
                let m = Entity::new(EntityKind::Account, j.account.clone());
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
    }
    out
}

fn source_table(title: &str, rows: &[(String, u64, u64)]) -> Markup {
    html! {
        table.sources {
            thead { tr { th { (title) } th { "source IPs" } th { "messages" } } }
            tbody {
                @for (k, ips, n) in rows.iter().take(MAX_SOURCES) {
                    tr { td { (k) } td.n { (ips) } td.n { (n) } }
                }
            }
        }
        @if rows.len() > MAX_SOURCES { p.note { (rows.len() - MAX_SOURCES) " more not listed" } }
    }
}

/// Per detector of an incident's alerts: its latest alert (which carries the fullest
/// evidence), the time of its first, and how many.
pub type Latest<'a> = BTreeMap<Detector, (&'a Alert, maillog::Ts, u64)>;

/// [`Latest`] of `alerts`.
pub fn latest(alerts: &[Alert]) -> Latest<'_> {
    let mut latest: Latest<'_> = BTreeMap::new();
    for a in alerts {
        let e = latest.entry(a.detector).or_insert((a, a.ts, 0));
        if a.ts >= e.0.ts {
            e.0 = a;
        }
        e.1 = e.1.min(a.ts);
        e.2 += 1;
    }
    latest
}

/// An incident's rules table (one row per detector) and each detector's evidence as tables
/// (the report's and the dashboard's incident pages).
pub fn rules_and_evidence(latest: &Latest<'_>) -> Markup {
    let show_helo = latest.contains_key(&Detector::HeloAnomaly);
    html! {
        table.rules {
            thead { tr { th { "rule (detector)" } th { "alerts" } th { "score" } th { "first UTC" } th { "latest UTC" } th { "finding" } } }
            tbody {
                @for (d, (a, first, n)) in latest {
                    tr { td { (d.as_str()) } td.n { (n) } td.n { (format!("{:.2}", a.score)) }
                         td { (first.display_utc()) } td { (a.ts.display_utc()) } td { (a.summary) } }
                }
            }
        }
        @for (d, (a, _, _)) in latest {
            h4 { "Evidence of " (d.as_str()) }
            @match Evidence::of(a) {
                Some(ev) => {
                    (evidence::render(&ev))
                    @if let Some((ms, of)) = evidence::samples(&ev) {
                        p { "Messages with failures (" (ms.len().min(MESSAGES_SHOWN)) " shown of " (of) "):" }
                        (evidence::message_listing(&ms[..ms.len().min(MESSAGES_SHOWN)], show_helo))
                    }
                }
                None => p.note { "evidence of a shape this version does not read" }
            }
        }
    }
}

/// What the incident's entities sent, from `seen`: the timeline chart (messages and distinct
/// source IPs per 10 minutes) and the country and network tables.
pub fn activity(id: u64, members: &[Entity], seen: &Seen, geo: &geo::GeoDb) -> Markup {
    let refs: Vec<&Entity> = members.iter().collect();
    let rows = seen.rows_of(&refs);
    let (steps, skipped) = figures::timeline(seen, &rows);
    let countries = figures::by_source(seen, &rows, |ip| figures::country(geo, ip));
    let asns = figures::by_source(seen, &rows, |ip| {
        geo.lookup_fast(ip)
            .1
            .map_or_else(|| "unknown".to_string(), |a| format!("AS{a}"))
    });
    html! {
        @if steps.is_empty() {
            p.note { "No mail sent by this entity was seen (timelines cover the mail our users and customers send)." }
        } @else {
            (chart(&figures::timeline_chart(id, &steps, skipped)))
            div.sources {
                (source_table("country", &countries))
                (source_table("network (AS)", &asns))
            }
        }
    }
}

/// One incident: its rules and numbers, evidence tables, timeline, sources and messages.
pub fn incident(i: &Incident, seen: &Seen, geo: &geo::GeoDb) -> Markup {
    html! {
        section.incident id=(format!("incident-{}", i.id)) {
            h3 { "#" (i.id) " " (i.entity.kind) " " (i.entity.id) }
            p { (i.state.as_str()) ", score " (format!("{:.2}", i.score)) ", " (i.alerts) " alerts, "
                (i.first.display_utc()) " .. " (i.last.display_utc()) " UTC. " (i.summary) }
            (rules_and_evidence(&latest(&i.evidence)))
            (activity(i.id, &members(&i.entity, &i.evidence), seen, geo))
            @if !i.timeline.is_empty() {
                h4 { "Incident timeline" }
                table.timeline {
                    tbody {
                        @for t in &i.timeline {
                            tr { td { (maillog::Ts::from_secs(t.at).display_utc()) } td { (t.step.as_str()) } td { (t.note) } }
                        }
                    }
                }
            }
        }
    }
}

/// The whole report.
pub fn document(r: &Input<'_>) -> Markup {
    let order = by_score(r.incidents);
    let left = order.len().saturating_sub(MAX_SECTIONS);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "smtpscope report" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "smtpscope report" }
                (summary(r))
                (figures(r))
                h2 #incidents { "Incidents" }
                @if left > 0 {
                    p.note { "The first " (MAX_SECTIONS) " incidents (ours first, then by score); " (left) " more left out (see the summary)." }
                }
                @for i in order.into_iter().take(MAX_SECTIONS) {
                    (incident(i, r.seen, r.geo))
                }
            }
        }
    }
}
