//! Tiny inline-SVG charts for the HTML report: no scripts, no CDN, readable
//! offline and pasteable into docs.

use std::fmt::Write as _;

const W: f64 = 560.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 48.0;
const TOP: f64 = 28.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn frame(title: &str, labels: &[String], max: f64, body: &str) -> String {
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="system-ui, sans-serif" font-size="11" role="img" aria-label="{t}"><rect width="{W}" height="{H}" fill="#fff"/><text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#1d2330">{t}</text>"##,
        t = esc(title)
    );
    let plot_h = H - TOP - BOTTOM;
    for i in 0..=4 {
        let y = TOP + plot_h * (1.0 - i as f64 / 4.0);
        let v = max * i as f64 / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e6ee"/><text x="{tx}" y="{ty:.1}" text-anchor="end" fill="#556">{v}</text>"##,
            x2 = W - 8.0,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            v = if max >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        );
    }
    out.push_str(body);
    // At most ~12 x labels, evenly picked.
    let n = labels.len().max(1);
    let step = n.div_ceil(12);
    let slot = (W - LEFT - 8.0) / n as f64;
    for (i, label) in labels.iter().enumerate().step_by(step) {
        let x = LEFT + slot * (i as f64 + 0.5);
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{y}" text-anchor="end" transform="rotate(-35 {x:.1} {y})" fill="#556">{l}</text>"##,
            y = H - BOTTOM + 14.0,
            l = esc(label)
        );
    }
    out.push_str("</svg>");
    out
}

/// A bar per label.
pub fn bars(title: &str, labels: &[String], values: &[f64], color: &str) -> String {
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - 8.0) / values.len().max(1) as f64;
    let mut body = String::new();
    for (i, &v) in values.iter().enumerate() {
        let h = plot_h * v / max;
        let _ = write!(
            body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"><title>{l}: {v}</title></rect>"#,
            x = LEFT + slot * i as f64 + slot * 0.1,
            y = TOP + plot_h - h,
            w = slot * 0.8,
            l = esc(labels.get(i).map_or("", String::as_str)),
        );
    }
    frame(title, labels, max, &body)
}

/// A line through the values.
pub fn line(title: &str, labels: &[String], values: &[f64], color: &str) -> String {
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - 8.0) / values.len().max(1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            format!(
                "{:.1},{:.1}",
                LEFT + slot * (i as f64 + 0.5),
                TOP + plot_h * (1.0 - v / max)
            )
        })
        .collect();
    let body = format!(
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        points.join(" ")
    );
    frame(title, labels, max, &body)
}

/// One named series of a chart with several.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// The series' names and colours, top right.
fn legend(series: &[Series<'_>]) -> String {
    let mut out = String::new();
    let mut x = W - 8.0;
    for s in series.iter().rev() {
        let width = 18.0 + 6.5 * s.name.chars().count() as f64;
        x -= width;
        let _ = write!(
            out,
            r##"<rect x="{x:.1}" y="8" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="17" fill="#334">{n}</text>"##,
            c = s.color,
            tx = x + 13.0,
            n = esc(s.name)
        );
    }
    out
}

/// Bars per label, the series stacked (e.g. outcomes per 100 ms).
pub fn stacked(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let n = labels.len();
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1.0);
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - 8.0) / n.max(1) as f64;
    let mut body = String::new();
    for (i, label) in labels.iter().enumerate() {
        let mut base = TOP + plot_h;
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = plot_h * v / max;
            base -= h;
            let _ = write!(
                body,
                r#"<rect x="{x:.1}" y="{base:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{l} {name}: {v}</title></rect>"#,
                x = LEFT + slot * i as f64 + slot * 0.1,
                w = slot * 0.8,
                c = s.color,
                l = esc(label),
                name = esc(s.name),
            );
        }
    }
    body.push_str(&legend(series));
    frame(title, labels, max, &body)
}

/// A line per series over the same labels.
pub fn lines(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max)
        .max(1.0);
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - 8.0) / labels.len().max(1) as f64;
    let mut body = String::new();
    for s in series {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + slot * (i as f64 + 0.5),
                    TOP + plot_h * (1.0 - v / max)
                )
            })
            .collect();
        let _ = write!(
            body,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"><title>{n}</title></polyline>"#,
            c = s.color,
            p = points.join(" "),
            n = esc(s.name)
        );
    }
    body.push_str(&legend(series));
    frame(title, labels, max, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg_with_escaped_labels() {
        let svg = bars("a < b", &["x&y".into(), "z".into()], &[1.0, 3.0], "#000");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt; b") && svg.contains("x&amp;y"));
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(line("l", &["a".into()], &[0.0], "#000").contains("<polyline"));
    }

    #[test]
    fn stacked_bars_and_lines_draw_every_series_with_a_legend() {
        let labels: Vec<String> = vec!["0.0s".into(), "0.1s".into()];
        let series = [
            Series {
                name: "placed",
                color: "#0a0",
                values: vec![2.0, 0.0],
            },
            Series {
                name: "sold<out",
                color: "#a00",
                values: vec![1.0, 3.0],
            },
        ];
        let svg = stacked("Outcomes", &labels, &series);
        // Three non-empty segments, two legend swatches.
        assert_eq!(svg.matches("<rect x=").count(), 3 + 2);
        assert!(svg.contains("sold&lt;out") && svg.ends_with("</svg>"));
        let svg = lines("Stock", &labels, &series);
        assert_eq!(svg.matches("<polyline").count(), 2);
    }
}
