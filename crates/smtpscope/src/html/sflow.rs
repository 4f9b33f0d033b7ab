//! `sflow analyze --format html`: Clayton's figure (how spammy hosts are against how many hours
//! they were active on port 25, from the sflow crate's label table) and the flagged hosts, as
//! one self-contained page like the log report.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use detect::Alert;
use sflow::activity::{HostSummary, LabelTable};

use super::chart::{render as chart, Chart, Series};
use super::report::CSS;

/// Hosts listed in the page's table (the highest-scored first, as the analysis sorts them).
pub const MAX_HOSTS: usize = 200;

/// Clayton's figure: per hours-active bucket, the share of hosts the labels call bad (bars, in
/// percent) and the number of hosts (line).
pub fn hours_chart(t: &LabelTable) -> Chart {
    Chart {
        id: "fig-sflow-hours".into(),
        title: "Share of bad hosts by hours active (port-25 sFlow samples)".into(),
        labels: t
            .by_hours
            .iter()
            .map(|r| format!("{} h", r.bucket))
            .collect(),
        bars: vec![Series {
            name: "bad hosts, % of the bucket".into(),
            values: t.by_hours.iter().map(|r| r.bad_share * 100.0).collect(),
        }],
        line: Some(Series {
            name: "hosts".into(),
            values: t.by_hours.iter().map(|r| r.hosts as f64).collect(),
        }),
        y_label: "% bad".into(),
        note: Some(format!(
            "{} hosts, {} labelled bad; {} bad hosts flagged of {} flagged",
            t.hosts, t.bad, t.flagged_bad, t.flagged
        )),
    }
}

/// Clayton's own figure (CEAS 2006): days on which an address was active in at least 5 of the
/// 6 four-hour blocks, by the hours it was active that day; bars the share of them the labels
/// call bad, the line their number.
pub fn five_of_six_chart(t: &LabelTable) -> Chart {
    Chart {
        id: "fig-sflow-five-of-six".into(),
        title: format!(
            "Days active in at least {} of 6 four-hour blocks: share bad by hours active that day",
            sflow::activity::CLAYTON_MIN_BLOCKS
        ),
        labels: t
            .five_of_six
            .iter()
            .map(|r| format!("{} h", r.bucket))
            .collect(),
        bars: vec![Series {
            name: "bad, % of the days".into(),
            values: t.five_of_six.iter().map(|r| r.bad_share * 100.0).collect(),
        }],
        line: Some(Series {
            name: "days".into(),
            values: t.five_of_six.iter().map(|r| r.hosts as f64).collect(),
        }),
        y_label: "% bad".into(),
        note: Some(format!(
            "{} addresses with such a day (known servers left out)",
            t.five_of_six_hosts
        )),
    }
}

/// The page.
pub fn page(table: Option<&LabelTable>, alerts: &[Alert], hosts: &[HostSummary]) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "smtpscope sFlow report" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "smtpscope sFlow report" }
                p { (hosts.len()) " hosts sending to port 25, " (alerts.len()) " flagged." }
                @match table {
                    Some(t) => {
                        (chart(&hours_chart(t)))
                        table #by-hours {
                            thead { tr { th { "hours active" } th { "hosts" } th { "bad" } th { "flagged" } th { "bad share" } } }
                            tbody { @for r in &t.by_hours {
                                tr { td { (r.bucket) } td.n { (r.hosts) } td.n { (r.bad) } td.n { (r.flagged) } td.n { (format!("{:.1}%", r.bad_share * 100.0)) } }
                            } }
                        }
                        (chart(&five_of_six_chart(t)))
                        table #five-of-six {
                            thead { tr { th { "hours active that day" } th { "days" } th { "bad" } th { "flagged" } th { "bad share" } } }
                            tbody { @for r in &t.five_of_six {
                                tr { td { (r.bucket) } td.n { (r.hosts) } td.n { (r.bad) } td.n { (r.flagged) } td.n { (format!("{:.1}%", r.bad_share * 100.0)) } }
                            } }
                        }
                    }
                    None => p.note { "No labels (--labels): the share of bad hosts cannot be drawn." }
                }
                h2 { "Flagged hosts" }
                table #flagged {
                    thead { tr { th { "host" } th { "score" } th { "finding" } } }
                    tbody { @for a in alerts.iter().take(MAX_HOSTS) {
                        tr { td { (a.entity.id) } td.n { (format!("{:.2}", a.score)) } td { (a.summary) } }
                    } }
                }
                @if alerts.len() > MAX_HOSTS { p.note { (alerts.len() - MAX_HOSTS) " more not listed" } }
            }
        }
    }
}
