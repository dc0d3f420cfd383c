//! The drop's report: latency percentiles (overall and per outcome),
//! throughput, time to sell out, outcome counts, the timeline per 100 ms,
//! violations; written as JSON and as a self-contained HTML page
//! ([`super::page`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::args::LoadtestArgs;
use super::page::{self, LatencyTable, Page};
use super::stats::{Criterion, Latencies, LatencyBucket, Percentiles, refusal_label};
use super::svg;
use super::verify::{Held, Observed, Violation};

const BUCKET_MS: f64 = 100.0;

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

/// "burst", "spread over 1000 ms", "rate 500/s".
pub fn describe_arrival(args: &LoadtestArgs) -> String {
    match args.arrival() {
        super::Arrival::Burst => "burst".into(),
        super::Arrival::Spread(d) => format!("spread over {} ms", d.as_millis()),
        super::Arrival::Rate { per_sec } => format!("rate {per_sec}/s"),
    }
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
            (status, code) => refusal_label(status, code.as_deref()),
        };
    }
    labels
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
        let mut latencies = Latencies::default();
        for (s, label) in samples.iter().zip(&labels) {
            latencies.record(label, s.latency_us);
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
        let errors = latencies.errors();
        let latency_ms = latencies.overall();
        let criteria = vec![
            Criterion::new(
                "every request answered",
                answered == samples.len() as u64,
                format!("{answered} of {}", samples.len()),
            ),
            Criterion::new("0 errors", errors == 0, format!("{errors} errors")),
            Criterion::new(
                "0 violations",
                violations.is_empty(),
                format!("{} violations", violations.len()),
            ),
            Criterion::p99(&latency_ms),
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
            arrival: describe_arrival(args),
            connections: args.connections,
            requests: samples.len() as u64,
            answered,
            duration_ms,
            throughput_rps: answered as f64 / (duration_ms / 1e3),
            latency_ms,
            latency_by_outcome_ms: latencies.by_outcome(),
            outcomes: latencies.counts(),
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
            latency_histogram: latencies.histogram(),
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
        let charts = self.charts();
        page::write(dir, self, &charts, &self.html(&charts))
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

    fn html(&self, charts: &[(&'static str, String)]) -> String {
        let sold_out = self
            .sold_out_after_ms
            .map_or("not sold out".to_owned(), |ms| format!("{ms:.0} ms"));
        let l = &self.latency_ms;
        Page {
            what: "campaign",
            id: &self.campaign_id,
            intro: format!(
                "{} users, stock {}, limit {}, {} claims each (retry share {}), {}, {} connections, against {}.",
                self.users,
                self.stock,
                self.per_user_limit,
                self.claims_per_user,
                self.retry_share,
                self.arrival,
                self.connections,
                self.targets.join(", ")
            ),
            kpis: vec![
                (format!("{:.0}", self.throughput_rps), "requests / s".into()),
                (format!("{:.2} ms", l.p50), "p50".into()),
                (format!("{:.2} ms", l.p99), "p99".into()),
                (format!("{:.2} ms", l.max), "max".into()),
                (sold_out, "time to sell out".into()),
                (self.issued.to_string(), "coupons issued".into()),
            ],
            violations: &self.violations,
            criteria: &self.criteria,
            charts,
            tables: vec![LatencyTable {
                title: "Latency by outcome (ms)",
                rows: &self.latency_by_outcome_ms,
            }],
            note: "Latency counts from each claim's planned send instant (open loop), so time spent queued in the generator is included.",
        }
        .html()
    }
}
