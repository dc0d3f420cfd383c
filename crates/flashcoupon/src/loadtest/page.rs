//! The report page every scenario writes: one self-contained HTML file
//! (inline styles and SVG charts, no scripts, nothing fetched), next to
//! `report.json` and each chart as its own `.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::stats::{Criterion, Percentiles};

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A table of latency percentiles per outcome.
#[derive(Debug)]
pub struct LatencyTable<'a> {
    pub title: &'a str,
    pub rows: &'a BTreeMap<String, Percentiles>,
}

/// What a page shows, top to bottom.
#[derive(Debug)]
pub struct Page<'a> {
    /// What was loaded, e.g. "campaign" or "time sale".
    pub what: &'a str,
    pub id: &'a str,
    /// One sentence on the run's shape.
    pub intro: String,
    /// Headline figures: (value, label).
    pub kpis: Vec<(String, String)>,
    pub violations: &'a [String],
    pub criteria: &'a [Criterion],
    pub charts: &'a [(&'static str, String)],
    pub tables: Vec<LatencyTable<'a>>,
    pub note: &'a str,
}

impl Page<'_> {
    pub fn html(&self) -> String {
        let kpis: String = self
            .kpis
            .iter()
            .map(|(v, l)| format!("<div>{}<span>{}</span></div>", esc(v), esc(l)))
            .collect();
        let violations = if self.violations.is_empty() {
            "<p class=\"pass\">Every promise held.</p>".to_owned()
        } else {
            format!(
                "<ul>{}</ul>",
                self.violations
                    .iter()
                    .map(|v| format!("<li class=\"fail\">{}</li>", esc(v)))
                    .collect::<String>()
            )
        };
        let mut criteria = String::new();
        for c in self.criteria {
            let _ = write!(
                criteria,
                "<li class=\"{}\">{} {} <small>({})</small></li>",
                if c.pass { "pass" } else { "fail" },
                if c.pass { "✔" } else { "✘" },
                esc(&c.name),
                esc(&c.detail)
            );
        }
        let figures: String = self
            .charts
            .iter()
            .map(|(_, c)| format!("<figure>{c}</figure>"))
            .collect();
        let mut tables = String::new();
        for t in &self.tables {
            let _ = write!(
                tables,
                "<h2>{}</h2>\n<table><tr><th>outcome</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>",
                esc(t.title)
            );
            for (k, p) in t.rows {
                let _ = write!(
                    tables,
                    "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                    esc(k),
                    p.count,
                    p.p50,
                    p.p90,
                    p.p99,
                    p.p999,
                    p.max
                );
            }
            tables.push_str("</table>\n");
        }
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flashcoupon loadtest {what} {id}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1d2330; }}
h1 {{ font-size: 1.4rem; }} table {{ border-collapse: collapse; }} td, th {{ padding: .25rem .7rem; border-bottom: 1px solid #dde; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} .pass {{ color: #1e7a45; }} .fail {{ color: #b3261e; font-weight: 600; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1rem; }} figure {{ margin: 0; }}
.kpi {{ display: flex; gap: 2rem; flex-wrap: wrap; }} .kpi div {{ font-size: 1.6rem; font-weight: 600; }} .kpi span {{ display: block; font-size: .8rem; color: #556; font-weight: 400; }}
</style></head><body>
<h1>flashcoupon loadtest — {what} <code>{id}</code></h1>
<p>{intro}</p>
<div class="kpi">
{kpis}
</div>
<h2>Promises</h2>{violations}
<h2>Pass criteria</h2><ul>{criteria}</ul>
<div class="grid">{figures}</div>
{tables}<p><small>{note}</small></p>
</body></html>
"#,
            what = esc(self.what),
            id = esc(self.id),
            intro = esc(&self.intro),
            note = esc(self.note),
        )
    }
}

/// Write `report.json`, every chart as `<name>.svg` and `report.html` into `dir`.
pub fn write(
    dir: &Path,
    json: &impl Serialize,
    charts: &[(&'static str, String)],
    html: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(json)?)?;
    for (name, chart) in charts {
        std::fs::write(dir.join(format!("{name}.svg")), chart)?;
    }
    std::fs::write(dir.join("report.html"), html)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_escapes_what_it_is_given_and_names_each_failure() {
        let rows = BTreeMap::from([("sold<out".to_owned(), Percentiles::default())]);
        let violations = vec!["sold 3 > stock 2".to_owned()];
        let criteria = vec![Criterion::new("a & b", false, "x")];
        let charts = vec![("c", "<svg></svg>".to_owned())];
        let html = Page {
            what: "time sale",
            id: "<id>",
            intro: "1 < 2".into(),
            kpis: vec![("3 ms".into(), "p99".into())],
            violations: &violations,
            criteria: &criteria,
            charts: &charts,
            tables: vec![LatencyTable {
                title: "Orders",
                rows: &rows,
            }],
            note: "n",
        }
        .html();
        assert!(html.contains("<code>&lt;id&gt;</code>") && html.contains("1 &lt; 2"));
        assert!(html.contains("sold&lt;out") && html.contains("a &amp; b"));
        assert!(html.contains("<li class=\"fail\">sold 3 &gt; stock 2</li>"));
        assert!(html.contains("<figure><svg></svg></figure>") && !html.contains("<script"));
    }
}
