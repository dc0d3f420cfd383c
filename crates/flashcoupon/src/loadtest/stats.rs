//! Latency statistics every report shares: HDR histograms per outcome,
//! percentiles, a log-spaced histogram for the chart, and pass criteria.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The bar for p99 (seed 000 and the time sale), on a 2-core
/// machine with the generator on it.
pub const P99_TARGET_MS: f64 = 50.0;

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

/// One line of a report's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

impl Criterion {
    pub fn new(name: impl Into<String>, pass: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            pass,
            detail: detail.into(),
        }
    }

    /// `p99 ≤ 50 ms`.
    pub fn p99(latency: &Percentiles) -> Self {
        Self::new(
            format!("p99 ≤ {P99_TARGET_MS} ms"),
            latency.p99 <= P99_TARGET_MS,
            format!("p99 {:.2} ms", latency.p99),
        )
    }
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

fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Is this outcome label a failure of the request itself (not an answer
/// such as `sold_out`)?
pub fn is_error(label: &str) -> bool {
    label.starts_with("http_") || label == "no_answer"
}

/// The outcome label of an answer that is not a success.
pub fn refusal_label(status: Option<u16>, code: Option<&str>) -> String {
    match (status, code) {
        (Some(409), Some(code)) => code.to_owned(),
        (Some(status), _) => format!("http_{status}"),
        (None, _) => "no_answer".into(),
    }
}

/// Latencies of one kind of request, overall and per outcome label.
#[derive(Debug)]
pub struct Latencies {
    all: Histogram<u64>,
    by_outcome: BTreeMap<String, Histogram<u64>>,
    counts: BTreeMap<String, u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            all: histogram(),
            by_outcome: BTreeMap::new(),
            counts: BTreeMap::new(),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, label: &str, latency_us: u64) {
        let us = latency_us.max(1);
        let _ = self.all.record(us);
        let _ = self
            .by_outcome
            .entry(label.to_owned())
            .or_insert_with(histogram)
            .record(us);
        *self.counts.entry(label.to_owned()).or_default() += 1;
    }

    pub fn overall(&self) -> Percentiles {
        Percentiles::of(&self.all)
    }

    pub fn by_outcome(&self) -> BTreeMap<String, Percentiles> {
        self.by_outcome
            .iter()
            .map(|(k, h)| (k.clone(), Percentiles::of(h)))
            .collect()
    }

    /// Requests per outcome label.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.clone()
    }

    /// Requests that failed as requests (no answer, an unexpected status).
    pub fn errors(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| is_error(k))
            .map(|(_, v)| v)
            .sum()
    }

    /// Requests per latency range, log-spaced, empty ends trimmed.
    pub fn histogram(&self) -> Vec<LatencyBucket> {
        let mut out = Vec::new();
        let mut low = 0.0;
        for &high in &EDGES_MS {
            let count = self
                .all
                .count_between((low * 1_000.0) as u64, (high * 1_000.0) as u64 - 1);
            let range = if high >= 600_000.0 {
                format!("≥{low} ms")
            } else {
                format!("{low}–{high} ms")
            };
            out.push(LatencyBucket { range, count });
            low = high;
        }
        while out.last().is_some_and(|b| b.count == 0) {
            out.pop();
        }
        let first = out.iter().position(|b| b.count > 0).unwrap_or(0);
        out.drain(..first);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_split_by_outcome_and_errors_counted() {
        let mut l = Latencies::default();
        for us in [1_000, 2_000, 3_000] {
            l.record("placed", us);
        }
        l.record("no_answer", 30_000_000);
        l.record("http_503", 500);
        l.record("sold_out", 800);
        assert_eq!(l.errors(), 2);
        assert_eq!(l.counts()["placed"], 3);
        assert_eq!(l.by_outcome()["placed"].count, 3);
        assert!((l.overall().max / 30_000.0 - 1.0).abs() < 0.01);
        let h = l.histogram();
        assert_eq!(h.first().unwrap().range, "0.5–1 ms");
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 6);
        assert_eq!(refusal_label(Some(409), Some("sold_out")), "sold_out");
        assert_eq!(refusal_label(Some(503), Some("unavailable")), "http_503");
        assert_eq!(refusal_label(None, None), "no_answer");
    }
}
