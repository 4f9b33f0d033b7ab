//! Charts as inline SVG, drawn with maud (no script, no font file: text is SVG `<text>` in the
//! page's own sans-serif). One kind of chart does for every figure: stacked bars per category,
//! with an optional line on its own scale at the right.
//!
//! Each category's bars sit in one `<g class="col">` and each bar is a `rect.bar` with a
//! `<title>` tooltip, so a test (or a reader) can count what is drawn.

use maud::{html, Markup};

/// Colours of the series, in order (print-safe, distinguishable without colour vision).
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One series: a value per category.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// One value per category.
    pub values: Vec<f64>,
}

/// A chart: stacked bars per category, optionally a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Element id of the figure (`fig-…`).
    pub id: String,
    /// Caption.
    pub title: String,
    /// Category labels (x axis).
    pub labels: Vec<String>,
    /// Stacked bar series.
    pub bars: Vec<Series>,
    /// A line over the bars, on the right-hand scale.
    pub line: Option<Series>,
    /// What the left scale counts.
    pub y_label: String,
    /// A sentence under the chart (what was left out, where the data comes from).
    pub note: Option<String>,
}

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 48.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 96.0;
/// Most x labels written (every k-th category is labelled past it); they are slanted, so
/// this many fit under the plot without overlapping.
const MAX_X_LABELS: usize = 24;

/// A round number at or above `x` (1, 2 or 5 times a power of ten).
fn nice_max(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= x {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_tick(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The non-zero bars of category `i`: series index, base (sum below it) and value.
fn segments(bars: &[Series], i: usize) -> Vec<(usize, f64, f64)> {
    let mut base = 0.0;
    let mut out = Vec::new();
    for (si, s) in bars.iter().enumerate() {
        let v = s.values.get(i).copied().unwrap_or(0.0);
        if v > 0.0 {
            out.push((si, base, v));
            base += v;
        }
    }
    out
}

/// The chart as a `<figure>` with its SVG, legend and note.
pub fn render(c: &Chart) -> Markup {
    let n = c.labels.len().max(1);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let band = pw / n as f64;
    let totals: Vec<f64> = (0..c.labels.len())
        .map(|i| {
            c.bars
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let ymax = nice_max(totals.iter().copied().fold(0.0, f64::max));
    let lmax = c
        .line
        .as_ref()
        .map(|l| nice_max(l.values.iter().copied().fold(0.0, f64::max)));
    let every = c.labels.len().div_ceil(MAX_X_LABELS).max(1);
    let y = |v: f64| TOP + ph - v / ymax * ph;
    let legend = c.bars.len() > 1 || c.line.is_some();
    html! {
        figure.chart id=(c.id) {
            figcaption { (c.title) }
            svg.fig viewBox=(format!("0 0 {W} {H}"))
                width=(W) height=(H) role="img" aria-label=(c.title) {
                // Axes and grid.
                @for k in 0..=4 {
                    @let v = ymax * k as f64 / 4.0;
                    line.grid x1=(LEFT) x2=(LEFT + pw) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) {}
                    text.tick x=(LEFT - 4.0) y=(format!("{:.1}", y(v) + 4.0)) text-anchor="end" { (fmt_tick(v)) }
                    @if let Some(m) = lmax {
                        text.tick x=(LEFT + pw + 4.0) y=(format!("{:.1}", y(v) + 4.0)) { (fmt_tick(m * k as f64 / 4.0)) }
                    }
                }
                text.axis x="12" y=(TOP + ph / 2.0) transform=(format!("rotate(-90 12 {})", TOP + ph / 2.0)) text-anchor="middle" { (c.y_label) }
                @for (i, label) in c.labels.iter().enumerate() {
                    @let x0 = LEFT + band * i as f64;
                    g.col data-label=(label) data-total=(fmt_tick(totals[i])) {
                        @for (si, base, v) in segments(&c.bars, i) {
                            rect.bar x=(format!("{:.1}", x0 + band * 0.1)) y=(format!("{:.1}", y(base + v)))
                                width=(format!("{:.1}", (band * 0.8).max(0.5))) height=(format!("{:.1}", (y(base) - y(base + v)).max(0.5)))
                                fill=(PALETTE[si % PALETTE.len()]) {
                                title { (label) ": " (c.bars[si].name) " " (fmt_tick(v)) }
                            }
                        }
                    }
                    @if i % every == 0 {
                        @let (lx, ly) = (x0 + band / 2.0, TOP + ph + 12.0);
                        text.tick x=(format!("{lx:.1}")) y=(format!("{ly:.1}")) text-anchor="end"
                            transform=(format!("rotate(-40 {lx:.1} {ly:.1})")) { (label) }
                    }
                }
                @if let (Some(l), Some(m)) = (&c.line, lmax) {
                    @let pts: Vec<String> = l.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", LEFT + band * (i as f64 + 0.5), TOP + ph - v / m * ph)).collect();
                    polyline.line points=(pts.join(" ")) fill="none" stroke="#000" stroke-width="1.5" {
                        title { (l.name) }
                    }
                }
                line.axis x1=(LEFT) x2=(LEFT + pw) y1=(TOP + ph) y2=(TOP + ph) {}
            }
            @if legend {
                ul.legend {
                    @for (si, s) in c.bars.iter().enumerate() {
                        li { span.swatch style=(format!("background:{}", PALETTE[si % PALETTE.len()])) {} (s.name) }
                    }
                    @if let Some(l) = &c.line {
                        li { span.swatch.line {} (l.name) " (right scale)" }
                    }
                }
            }
            @if let Some(n) = &c.note {
                p.note { (n) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_column_per_category_and_one_bar_per_nonzero_value() {
        let c = Chart {
            id: "fig-x".into(),
            title: "t <b>".into(),
            labels: vec!["a".into(), "b".into(), "c".into()],
            bars: vec![
                Series {
                    name: "s1".into(),
                    values: vec![1.0, 0.0, 3.0],
                },
                Series {
                    name: "s2".into(),
                    values: vec![2.0, 2.0, 0.0],
                },
            ],
            line: None,
            y_label: "n".into(),
            note: None,
        };
        let s = render(&c).into_string();
        assert_eq!(s.matches("<g class=\"col\"").count(), 3);
        assert_eq!(s.matches("<rect class=\"bar\"").count(), 4);
        assert!(s.contains("t &lt;b&gt;"), "escaped: {s}");
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(11.0), 20.0);
        assert_eq!(nice_max(100.0), 100.0);
    }
}
