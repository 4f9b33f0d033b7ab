//! `analyze --format html`: one self-contained page (nothing referenced outside it, no script)
//! with IIJ's five figures and one section per incident, on a small simulated ISP.

use std::process::Command;

mod sim_util;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smtpscope"))
}

fn run(args: &[&str], log: &std::path::Path) -> String {
    let out = bin()
        .args(["analyze", "-q", "--year", "2026", "--tz", "UTC"])
        .args(args)
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every value of attribute `attr` in `html`.
fn attrs<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let pat = format!(" {attr}=\"");
    html.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &html[i + pat.len()..];
            &rest[..rest.find('"').unwrap_or(rest.len())]
        })
        .collect()
}

#[test]
fn html_report_is_self_contained_with_five_figures_and_a_section_per_incident() {
    let dir = tempfile::tempdir().unwrap();
    let log = sim_util::simulated_day(dir.path());
    let page = dir.path().join("report.html");
    run(&["--format", "html", "-o", page.to_str().unwrap()], &log);
    let html = std::fs::read_to_string(&page).unwrap();
    let incidents: Vec<serde_json::Value> = run(&["--format", "incidents"], &log)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!incidents.is_empty(), "the simulation has incidents");

    // Self-contained: no script, no reference but to its own anchors, no CSS import.
    assert!(!html.to_ascii_lowercase().contains("<script"), "a script");
    for a in ["src", "href", "xlink:href", "action"] {
        for v in attrs(&html, a) {
            assert!(v.starts_with('#'), "{a}=\"{v}\" points out of the page");
        }
    }
    assert!(
        !html.contains("@import") && !html.contains("url("),
        "CSS fetches"
    );

    // The five figures, as SVG; figure 1 has one column per simulated day (several days are
    // checked in the figure's unit test and in the browser test).
    for id in [
        "fig-accounts-per-day",
        "fig-country-mix",
        "fig-ips-per-account",
        "fig-per-ip-burst",
        "fig-per-ip-spread",
    ] {
        let at = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id}"));
        assert!(
            html[at..].starts_with(&format!("id=\"{id}\"><figcaption>")),
            "{id}"
        );
        let end = html[at..].find("</figure>").unwrap() + at;
        assert!(html[at..end].contains("<svg"), "{id} has no SVG");
    }
    let f1 = html.find("id=\"fig-accounts-per-day\"").unwrap();
    let f1 = &html[f1..f1 + html[f1..].find("</figure>").unwrap()];
    assert_eq!(f1.matches("<g class=\"col\"").count(), 1, "one day: {f1}");

    // One section per incident (all of them: fewer than the cap here), each with its rules.
    assert_eq!(
        html.matches("<section class=\"incident\"").count(),
        incidents.len()
    );
    for i in &incidents {
        assert!(
            html.contains(&format!("id=\"incident-{}\"", i["id"])),
            "no section for incident {}",
            i["id"]
        );
    }
    assert_eq!(
        html.matches("<table class=\"rules\"").count(),
        incidents.len()
    );
    // Evidence as tables, messages as the `!!!` / `->` listing, never raw JSON.
    assert!(html.contains("<pre class=\"listing\">"));
    assert!(html.contains("!!! ") && html.contains("-&gt;  "));
    assert!(!html.contains("{&quot;"), "raw JSON in the page");
}
