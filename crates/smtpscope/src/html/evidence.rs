//! Typed evidence as tables: every [`Evidence`] variant read back from the alert, then laid out
//! field by field (the field names of the detector's evidence struct, in its order), never as
//! raw JSON. Numbers become cells, lists of records become tables with a column per field,
//! lists of words become comma lists; long lists are cut at [`MAX_ROWS`] and say how many more.
//!
//! The message samples of `delivery-failures` are not tabled here but listed like the text
//! report (`!!!` / `->`, see [`listing`]).

use maud::{html, Markup};
use serde_json::Value;

use detect::evidence::{Evidence, MessageSample};

use crate::report::{listing, ListingLine};

/// Rows of one list shown in an evidence table (the rest are counted).
pub const MAX_ROWS: usize = 25;

/// Field of `delivery-failures` evidence shown as a message listing instead of a table.
const LISTED: &str = "sample_messages";

fn label(key: &str) -> String {
    key.replace('_', " ")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() != 0.0 => {
                format!("{f:.3}").trim_end_matches('0').to_string()
            }
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{}: {}", label(k), scalar(v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn is_record_list(a: &[Value]) -> bool {
    !a.is_empty() && a.iter().all(Value::is_object)
}

/// A list of records as a table with a column per field.
fn record_table(a: &[Value]) -> Markup {
    let mut cols: Vec<&str> = Vec::new();
    for v in a.iter().take(MAX_ROWS) {
        if let Value::Object(o) = v {
            for k in o.keys() {
                if !cols.contains(&k.as_str()) {
                    cols.push(k);
                }
            }
        }
    }
    html! {
        table.ev {
            thead { tr { @for c in &cols { th { (label(c)) } } } }
            tbody {
                @for v in a.iter().take(MAX_ROWS) {
                    tr { @for c in &cols { td { (v.get(*c).map(scalar).unwrap_or_default()) } } }
                }
            }
        }
        @if a.len() > MAX_ROWS { p.note { "and " (a.len() - MAX_ROWS) " more" } }
    }
}

fn value(v: &Value) -> Markup {
    match v {
        Value::Array(a) if is_record_list(a) => record_table(a),
        Value::Array(a) if a.len() > MAX_ROWS => html! {
            (a[..MAX_ROWS].iter().map(scalar).collect::<Vec<_>>().join(", "))
            " and " (a.len() - MAX_ROWS) " more"
        },
        Value::Object(o) if o.values().any(|x| x.is_object() || x.is_array()) => object(o, &[]),
        _ => html! { (scalar(v)) },
    }
}

fn object(o: &serde_json::Map<String, Value>, skip: &[&str]) -> Markup {
    html! {
        table.kv {
            @for (k, v) in o.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
                tr { th { (label(k)) } td { (value(v)) } }
            }
        }
    }
}

/// The evidence as tables.
pub fn render(ev: &Evidence) -> Markup {
    match ev.to_json() {
        Value::Object(o) => {
            let skip: &[&str] = match ev {
                Evidence::DeliveryFailures(_) => &[LISTED],
                _ => &[],
            };
            object(&o, skip)
        }
        v => html! { p { (scalar(&v)) } },
    }
}

/// The message samples of an alert, if its evidence has them (`delivery-failures`).
pub fn samples(ev: &Evidence) -> Option<(&[MessageSample], u64)> {
    match ev {
        Evidence::DeliveryFailures(e) => Some((&e.sample_messages, e.sampled_of)),
        _ => None,
    }
}

/// Messages as the abuse desk reads them: failed recipients `!!!`, delivered ones `->` (the
/// lines of the text report, [`listing`]).
pub fn message_listing(ms: &[MessageSample], show_helo: bool) -> Markup {
    html! {
        pre.listing {
            @for m in ms {
                @for l in listing(m, show_helo) {
                    @match l {
                        ListingLine::Message { time, sender, size, client, helo } => {
                            span.msg { (time) " " (sender)
                                @if let Some(s) = size { " Size=" (s) }
                                @if let Some(c) = client { " [" (c) "]" }
                                @if let Some(h) = helo { " HELO=" (h) } }
                            "\n"
                        }
                        ListingLine::Failed { addr, reply } => {
                            span.fail { "   !!! " (addr) @if let Some(r) = reply { " (" (r) ")" } } "\n"
                        }
                        ListingLine::Delivered { addr, note } => {
                            span.ok { "   ->  " (addr) @if !note.is_empty() { " (" (note) ")" } } "\n"
                        }
                        ListingLine::MoreFailed(n) => { span.fail { "   !!! and " (n) " more failed destinations" } "\n" }
                        ListingLine::MoreValid(n) => { "   and " (n) " more valid destinations\n" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detect::Detector;

    use crate::report::tests::stored;

    #[test]
    fn every_stored_evidence_renders_as_tables_without_json() {
        let mut seen = std::collections::BTreeSet::new();
        for a in stored() {
            let ev = Evidence::of(&a).expect("typed evidence");
            let html = render(&ev).into_string();
            seen.insert(a.detector);
            assert!(html.starts_with("<table class=\"kv\">"), "{html}");
            assert!(
                !html.contains("{&quot;") && !html.contains("[&quot;"),
                "{html}"
            );
            if let Evidence::AuthHijack(e) = &ev {
                // A list of records is a table with a column per field.
                assert!(
                    html.contains("<th>recent ips</th><td><table class=\"ev\">"),
                    "{html}"
                );
                assert!(
                    html.contains(&format!("<td>{}</td>", e.recent_ips[0].ip)),
                    "{html}"
                );
            }
            if let Some((ms, _)) = samples(&ev) {
                assert!(!html.contains("sample messages"), "listed, not tabled");
                let l = message_listing(ms, false).into_string();
                assert!(l.contains("   !!! "), "{l}");
            }
        }
        for d in [
            Detector::DeliveryFailures,
            Detector::AuthHijack,
            Detector::AuthBruteforce,
            Detector::Campaign,
            Detector::HeloAnomaly,
        ] {
            assert!(seen.contains(&d), "no stored {d} alert");
        }
    }

    #[test]
    fn long_lists_are_cut_and_counted() {
        let v: Value = (0..40).map(|i| format!("a{i}@x.example")).collect();
        let html = value(&v).into_string();
        assert!(html.ends_with(" and 15 more"), "{html}");
        let recs: Value = (0..30).map(|i| serde_json::json!({"ip": i})).collect();
        let html = value(&recs).into_string();
        assert_eq!(html.matches("<tr>").count(), 1 + MAX_ROWS);
        assert!(html.contains("and 5 more"), "{html}");
    }
}
