//! The loadtest report: latency percentiles from HDR histograms (overall and
//! per outcome), throughput, time to sell out, outcome counts, the timeline
//! per 100 ms, violations; written as JSON and as a self-contained HTML page.
//! (Long because the HTML page and its styles are here, as one template.)

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::args::LoadtestArgs;
use super::svg;
use super::verify::{Held, Observed, Violation};

const BUCKET_MS: f64 = 100.0;
/// Seed 000's bar for p99 on a 2-core machine with the generator on it.
const P99_TARGET_MS: f64 = 50.0;

/// What one request of the storm saw.
#[derive(Debug, Clone)]
pub struct Sample {
    pub observed: Observed,
    /// The error code of a 4xx/5xx, if any.
    pub code: Option<String>,
    /// Sent and answered, in ms after the opening.
    pub sent_ms: f64,
    pub done_ms: f64,
    /// From the planned send instant to the answer (queueing included).
    pub latency_us: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1_000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    pub bucket_ms: f64,
    /// Coupons issued (first 201 per key) per bucket, by answer time.
    pub issued: Vec<u64>,
    /// Stock left at the end of each bucket.
    pub remaining_stock: Vec<u64>,
    /// Requests answered per bucket.
    pub answered: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub campaign_id: String,
    pub targets: Vec<String>,
    pub scenario: Option<String>,
    pub users: usize,
    pub stock: u32,
    pub per_user_limit: u32,
    pub claims_per_user: u32,
    pub retry_share: f64,
    pub arrival: String,
    pub connections: usize,
    pub requests: u64,
    pub answered: u64,
    pub duration_ms: f64,
    pub throughput_rps: f64,
    pub latency_ms: Percentiles,
    pub latency_by_outcome_ms: BTreeMap<String, Percentiles>,
    pub outcomes: BTreeMap<String, u64>,
    pub errors: u64,
    pub issued: u64,
    pub sold_out_after_ms: Option<f64>,
    pub timeline: Timeline,
    pub violations: Vec<String>,
    pub violation_details: Vec<Violation>,
    pub criteria: Vec<Criterion>,
    /// Requests per latency range, log-spaced.
    pub latency_histogram: Vec<LatencyBucket>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyBucket {
    /// e.g. "1–2 ms".
    pub range: String,
    pub count: u64,
}

/// Bucket edges in ms: 1-2-5 steps from 0.1 ms to 5 s.
const EDGES_MS: [f64; 17] = [
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0,
    10_000.0, 600_000.0,
];

fn latency_histogram(h: &Histogram<u64>) -> Vec<LatencyBucket> {
    let mut out = Vec::new();
    let mut low = 0.0;
    for &high in &EDGES_MS {
        let count = h.count_between((low * 1_000.0) as u64, (high * 1_000.0) as u64 - 1);
        let range = if high >= 600_000.0 {
            format!("≥{low} ms")
        } else {
            format!("{low}–{high} ms")
        };
        out.push(LatencyBucket { range, count });
        low = high;
    }
    // Trim empty ranges at both ends, keeping the chart readable.
    while out.last().is_some_and(|b| b.count == 0) {
        out.pop();
    }
    let first = out.iter().position(|b| b.count > 0).unwrap_or(0);
    out.drain(..first);
    out
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// The outcome label of each sample; the first 201 of a key is `issued`, later ones `replayed`.
fn outcomes(samples: &[Sample]) -> Vec<String> {
    let mut order: Vec<usize> = (0..samples.len()).collect();
    order.sort_by(|&a, &b| samples[a].done_ms.total_cmp(&samples[b].done_ms));
    let mut seen = HashSet::new();
    let mut labels = vec![String::new(); samples.len()];
    for i in order {
        let s = &samples[i];
        labels[i] = match (s.observed.status, &s.code) {
            (Some(201), _) if seen.insert((s.observed.user, s.observed.key.as_str())) => {
                "issued".into()
            }
            (Some(201), _) => "replayed".into(),
            (Some(409), Some(code)) => code.clone(),
            (Some(status), _) => format!("http_{status}"),
            (None, _) => "no_answer".into(),
        };
    }
    labels
}

fn is_error(label: &str) -> bool {
    label.starts_with("http_") || label == "no_answer"
}

impl Report {
    pub fn build(
        args: &LoadtestArgs,
        targets: &[String],
        campaign: &str,
        samples: &[Sample],
        wallets: &[Vec<Held>],
        wall: Duration,
        violations: Vec<Violation>,
    ) -> Self {
        let labels = outcomes(samples);
        let mut all = histogram();
        let mut by_outcome: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (s, label) in samples.iter().zip(&labels) {
            let us = s.latency_us.max(1);
            let _ = all.record(us);
            let _ = by_outcome
                .entry(label.clone())
                .or_insert_with(histogram)
                .record(us);
            *counts.entry(label.clone()).or_default() += 1;
        }
        let first_sent = samples
            .iter()
            .map(|s| s.sent_ms)
            .fold(f64::INFINITY, f64::min);
        let last_done = samples.iter().map(|s| s.done_ms).fold(0.0, f64::max);
        let duration_ms = if samples.is_empty() {
            wall.as_secs_f64() * 1e3
        } else {
            (last_done - first_sent.min(last_done)).max(1.0)
        };
        let answered = samples
            .iter()
            .filter(|s| s.observed.status.is_some())
            .count() as u64;
        let issued: u64 = wallets.iter().map(|w| w.len() as u64).sum();

        let buckets = ((last_done / BUCKET_MS).floor() as usize) + 1;
        let mut issued_per = vec![0u64; buckets];
        let mut answered_per = vec![0u64; buckets];
        let mut last_issue_ms: f64 = 0.0;
        for (s, label) in samples.iter().zip(&labels) {
            let b = ((s.done_ms / BUCKET_MS).floor() as usize).min(buckets - 1);
            answered_per[b] += 1;
            if label == "issued" {
                issued_per[b] += 1;
                last_issue_ms = last_issue_ms.max(s.done_ms);
            }
        }
        let mut left = args.stock as u64;
        let remaining_stock = issued_per
            .iter()
            .map(|&n| {
                left = left.saturating_sub(n);
                left
            })
            .collect();
        let errors = counts
            .iter()
            .filter(|(k, _)| is_error(k))
            .map(|(_, v)| v)
            .sum();
        let latency_ms = Percentiles::of(&all);
        let criteria = vec![
            Criterion {
                name: "every request answered".into(),
                pass: answered == samples.len() as u64,
                detail: format!("{answered} of {}", samples.len()),
            },
            Criterion {
                name: "0 errors".into(),
                pass: errors == 0,
                detail: format!("{errors} errors"),
            },
            Criterion {
                name: "0 violations".into(),
                pass: violations.is_empty(),
                detail: format!("{} violations", violations.len()),
            },
            Criterion {
                name: format!("p99 ≤ {P99_TARGET_MS} ms"),
                pass: latency_ms.p99 <= P99_TARGET_MS,
                detail: format!("p99 {:.2} ms", latency_ms.p99),
            },
        ];
        Report {
            campaign_id: campaign.to_owned(),
            targets: targets.to_vec(),
            scenario: args.scenario.map(|_| "seed-000".to_owned()),
            users: args.users,
            stock: args.stock,
            per_user_limit: args.limit,
            claims_per_user: args.claims_per_user,
            retry_share: args.retry_share,
            arrival: match args.arrival() {
                super::Arrival::Burst => "burst".into(),
                super::Arrival::Spread(d) => format!("spread over {} ms", d.as_millis()),
                super::Arrival::Rate { per_sec } => format!("rate {per_sec}/s"),
            },
            connections: args.connections,
            requests: samples.len() as u64,
            answered,
            duration_ms,
            throughput_rps: answered as f64 / (duration_ms / 1e3),
            latency_ms,
            latency_by_outcome_ms: by_outcome
                .iter()
                .map(|(k, h)| (k.clone(), Percentiles::of(h)))
                .collect(),
            outcomes: counts,
            errors,
            issued,
            sold_out_after_ms: (issued >= args.stock as u64).then_some(last_issue_ms),
            timeline: Timeline {
                bucket_ms: BUCKET_MS,
                issued: issued_per,
                remaining_stock,
                answered: answered_per,
            },
            violations: violations.iter().map(Violation::describe).collect(),
            violation_details: violations,
            criteria,
            latency_histogram: latency_histogram(&all),
        }
    }

    /// The text printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "campaign {} on {}",
            self.campaign_id,
            self.targets.join(", ")
        );
        let _ = writeln!(
            out,
            "{} users, stock {}, limit {}, {} claims each, {}: {} requests in {:.0} ms = {:.0} req/s",
            self.users,
            self.stock,
            self.per_user_limit,
            self.claims_per_user,
            self.arrival,
            self.requests,
            self.duration_ms,
            self.throughput_rps
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "outcomes: {}", outcomes.join(", "));
        match self.sold_out_after_ms {
            Some(ms) => {
                let _ = writeln!(
                    out,
                    "sold out {ms:.0} ms after opening; {} coupons issued",
                    self.issued
                );
            }
            None => {
                let _ = writeln!(out, "not sold out; {} coupons issued", self.issued);
            }
        }
        if self.violations.is_empty() {
            let _ = writeln!(out, "promises: all held");
        } else {
            for v in &self.violations {
                let _ = writeln!(out, "VIOLATION: {v}");
            }
        }
        for c in &self.criteria {
            let _ = writeln!(
                out,
                "[{}] {} ({})",
                if c.pass { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        out
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        let charts = self.charts();
        for (name, chart) in &charts {
            std::fs::write(dir.join(format!("{name}.svg")), chart)?;
        }
        std::fs::write(dir.join("report.html"), self.html(&charts))?;
        Ok(())
    }

    fn charts(&self) -> Vec<(&'static str, String)> {
        let secs = |i: usize| format!("{:.1}s", i as f64 * self.timeline.bucket_ms / 1e3);
        let xs: Vec<String> = (0..self.timeline.issued.len()).map(secs).collect();
        let ranges: Vec<String> = self
            .latency_histogram
            .iter()
            .map(|b| b.range.clone())
            .collect();
        let counts: Vec<f64> = self
            .latency_histogram
            .iter()
            .map(|b| b.count as f64)
            .collect();
        let outcome_labels: Vec<String> = self.outcomes.keys().cloned().collect();
        let outcome_values: Vec<f64> = self.outcomes.values().map(|&v| v as f64).collect();
        vec![
            (
                "latency",
                svg::bars(
                    "Latency histogram (requests per range)",
                    &ranges,
                    &counts,
                    "#3b6fd4",
                ),
            ),
            (
                "issues",
                svg::bars(
                    "Coupons issued per 100 ms",
                    &xs,
                    &self
                        .timeline
                        .issued
                        .iter()
                        .map(|&v| v as f64)
                        .collect::<Vec<_>>(),
                    "#2e9e5b",
                ),
            ),
            (
                "stock",
                svg::line(
                    "Remaining stock",
                    &xs,
                    &self
                        .timeline
                        .remaining_stock
                        .iter()
                        .map(|&v| v as f64)
                        .collect::<Vec<_>>(),
                    "#d4793b",
                ),
            ),
            (
                "outcomes",
                svg::bars("Outcomes", &outcome_labels, &outcome_values, "#8a4fd4"),
            ),
        ]
    }

    fn html(&self, charts: &[(&str, String)]) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut rows = String::new();
        for (k, p) in &self.latency_by_outcome_ms {
            let _ = write!(
                rows,
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
        let mut criteria = String::new();
        for c in &self.criteria {
            let _ = write!(
                criteria,
                "<li class=\"{}\">{} {} <small>({})</small></li>",
                if c.pass { "pass" } else { "fail" },
                if c.pass { "✔" } else { "✘" },
                esc(&c.name),
                esc(&c.detail)
            );
        }
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
        let sold_out = self
            .sold_out_after_ms
            .map_or("not sold out".to_owned(), |ms| format!("{ms:.0} ms"));
        let figures: String = charts
            .iter()
            .map(|(_, c)| format!("<figure>{c}</figure>"))
            .collect();
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flashcoupon loadtest {campaign}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1d2330; }}
h1 {{ font-size: 1.4rem; }} table {{ border-collapse: collapse; }} td, th {{ padding: .25rem .7rem; border-bottom: 1px solid #dde; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} .pass {{ color: #1e7a45; }} .fail {{ color: #b3261e; font-weight: 600; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1rem; }} figure {{ margin: 0; }}
.kpi {{ display: flex; gap: 2rem; flex-wrap: wrap; }} .kpi div {{ font-size: 1.6rem; font-weight: 600; }} .kpi span {{ display: block; font-size: .8rem; color: #556; font-weight: 400; }}
</style></head><body>
<h1>flashcoupon loadtest — campaign <code>{campaign}</code></h1>
<p>{users} users, stock {stock}, limit {limit}, {claims} claims each (retry share {retry}), {arrival}, {conns} connections, against {targets}.</p>
<div class="kpi">
<div>{rps:.0}<span>requests / s</span></div><div>{p50:.2} ms<span>p50</span></div><div>{p99:.2} ms<span>p99</span></div>
<div>{max:.2} ms<span>max</span></div><div>{sold_out}<span>time to sell out</span></div><div>{issued}<span>coupons issued</span></div>
</div>
<h2>Promises</h2>{violations}
<h2>Pass criteria</h2><ul>{criteria}</ul>
<div class="grid">{figures}</div>
<h2>Latency by outcome (ms)</h2>
<table><tr><th>outcome</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>{rows}</table>
<p><small>Latency counts from each claim's planned send instant (open loop), so time spent queued in the generator is included.</small></p>
</body></html>
"#,
            campaign = esc(&self.campaign_id),
            users = self.users,
            stock = self.stock,
            limit = self.per_user_limit,
            claims = self.claims_per_user,
            retry = self.retry_share,
            arrival = esc(&self.arrival),
            conns = self.connections,
            targets = esc(&self.targets.join(", ")),
            rps = self.throughput_rps,
            p50 = self.latency_ms.p50,
            p99 = self.latency_ms.p99,
            max = self.latency_ms.max,
            issued = self.issued,
        )
    }
}
