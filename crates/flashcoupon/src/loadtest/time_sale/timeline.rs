//! The time sale over time: answers per bucket by outcome, the stock's
//! readings and the payments, and the charts drawn from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::report::SaleReport;
use super::storm::{Kind, Sample};
use super::verify::StockPoll;
use crate::loadtest::svg::{self, Series};

/// Buckets of the timeline: 100 ms, or wider to keep at most 150 of them.
fn bucket_ms(span_ms: f64) -> f64 {
    (span_ms / 150.0 / 100.0).ceil().max(1.0) * 100.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaleTimeline {
    pub bucket_ms: f64,
    /// Answers per bucket by outcome (orders; `paid` for payments).
    pub outcomes: BTreeMap<String, Vec<u64>>,
    /// The stock's last reading in each bucket (carried over when none).
    pub sold: Vec<u64>,
    pub remaining: Vec<u64>,
    /// Payments answered so far.
    pub paid: Vec<u64>,
    /// The p99 latency of the orders answered in each bucket (ms; 0: none),
    /// to see when the slow ones happened.
    pub order_p99_ms: Vec<f64>,
}

impl SaleTimeline {
    /// From every answer with its outcome label, and the stock's readings.
    pub fn build(labelled: &[(&Sample, String)], polls: &[StockPoll], stock: u64) -> Self {
        let last_done = labelled
            .iter()
            .map(|(s, _)| s.shot.done_ms)
            .fold(0.0, f64::max);
        let last_poll = polls.last().map_or(0.0, |p| p.at_ms);
        let bucket = bucket_ms(last_done.max(last_poll));
        let n = (last_done.max(last_poll) / bucket).floor() as usize + 1;
        let at = |ms: f64| ((ms.max(0.0) / bucket).floor() as usize).min(n - 1);
        let mut outcomes: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut paid = vec![0u64; n];
        let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
        for (s, l) in labelled {
            let b = at(s.shot.done_ms);
            outcomes.entry(l.clone()).or_insert_with(|| vec![0; n])[b] += 1;
            if l == "paid" {
                paid[b] += 1;
            }
            if s.kind == Kind::Order {
                latencies[b].push(s.shot.latency_us);
            }
        }
        let order_p99_ms = latencies
            .iter_mut()
            .map(|l| {
                l.sort_unstable();
                let i = (l.len() * 99).div_ceil(100).saturating_sub(1);
                l.get(i).map_or(0.0, |&us| us as f64 / 1e3)
            })
            .collect();
        let mut total = 0;
        for p in &mut paid {
            total += *p;
            *p = total;
        }
        let (mut sold, mut remaining) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut polls_in = polls.iter().filter(|p| p.at_ms >= 0.0).peekable();
        let (mut s, mut r) = (0, stock);
        for b in 0..n {
            while let Some(p) = polls_in.next_if(|p| at(p.at_ms) <= b) {
                (s, r) = (p.sold, p.remaining);
            }
            sold.push(s);
            remaining.push(r);
        }
        SaleTimeline {
            bucket_ms: bucket,
            outcomes,
            sold,
            remaining,
            paid,
            order_p99_ms,
        }
    }
}

pub fn charts(r: &SaleReport) -> Vec<(&'static str, String)> {
    let tl = &r.timeline;
    let xs: Vec<String> = (0..tl.sold.len())
        .map(|i| format!("{:.1}s", i as f64 * tl.bucket_ms / 1e3))
        .collect();
    let f = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let sum_of = |pick: &dyn Fn(&str) -> bool| -> Vec<f64> {
        (0..xs.len())
            .map(|i| {
                tl.outcomes
                    .iter()
                    .filter(|(k, _)| pick(k))
                    .map(|(_, v)| v[i] as f64)
                    .sum()
            })
            .collect()
    };
    let known = ["placed", "replayed", "paid", "sold_out"];
    let mix = [
        Series {
            name: "placed",
            color: "#2e9e5b",
            values: sum_of(&|k| k == "placed" || k == "replayed"),
        },
        Series {
            name: "paid",
            color: "#3b6fd4",
            values: sum_of(&|k| k == "paid"),
        },
        Series {
            name: "sold_out",
            color: "#d4793b",
            values: sum_of(&|k| k == "sold_out"),
        },
        Series {
            name: "other",
            color: "#b3261e",
            values: sum_of(&|k| !known.contains(&k)),
        },
    ];
    let stock = [
        Series {
            name: "sold",
            color: "#d4793b",
            values: f(&tl.sold),
        },
        Series {
            name: "remaining",
            color: "#2e9e5b",
            values: f(&tl.remaining),
        },
        Series {
            name: "paid",
            color: "#3b6fd4",
            values: f(&tl.paid),
        },
    ];
    let p99 = format!("Order p99 per {:.0} ms (ms)", tl.bucket_ms);
    let ranges: Vec<String> = r
        .latency_histogram
        .iter()
        .map(|b| b.range.clone())
        .collect();
    let counts: Vec<f64> = r.latency_histogram.iter().map(|b| b.count as f64).collect();
    let mut all = r.outcomes.clone();
    for (k, v) in &r.pay_outcomes {
        let k = if k == "paid" {
            k.clone()
        } else {
            format!("pay {k}")
        };
        *all.entry(k).or_default() += v;
    }
    let names: Vec<String> = all.keys().cloned().collect();
    let totals: Vec<f64> = all.values().map(|&v| v as f64).collect();
    let per = format!("{:.0} ms", tl.bucket_ms);
    vec![
        (
            "latency",
            svg::bars(
                "Order latency (orders per range)",
                &ranges,
                &counts,
                "#3b6fd4",
            ),
        ),
        (
            "outcome_mix",
            svg::stacked(&format!("Answers per {per}"), &xs, &mix),
        ),
        ("stock", svg::lines("Stock over time", &xs, &stock)),
        (
            "order_p99",
            svg::line(&p99, &xs, &tl.order_p99_ms, "#b3261e"),
        ),
        (
            "outcomes",
            svg::bars("Outcomes", &names, &totals, "#8a4fd4"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::client::Shot;

    fn sample(kind: Kind, done_ms: f64, latency_us: u64) -> Sample {
        Sample {
            user: 0,
            kind,
            key: String::new(),
            shot: Shot {
                status: Some(201),
                answer: Default::default(),
                sent_ms: done_ms,
                done_ms,
                latency_us,
            },
        }
    }

    fn poll(at_ms: f64, sold: u64) -> StockPoll {
        StockPoll {
            at_ms,
            sold,
            remaining: 10 - sold,
            total: 10,
        }
    }

    #[test]
    fn buckets_count_answers_carry_the_stock_over_and_keep_each_p99() {
        let a = sample(Kind::Order, 10.0, 2_000);
        let b = sample(Kind::Order, 20.0, 9_000);
        let c = sample(Kind::Pay, 30.0, 50_000);
        let d = sample(Kind::Order, 250.0, 1_000);
        let labelled = vec![
            (&a, "placed".to_owned()),
            (&b, "sold_out".to_owned()),
            (&c, "paid".to_owned()),
            (&d, "sold_out".to_owned()),
        ];
        let polls = [poll(-40.0, 0), poll(50.0, 1), poll(320.0, 0)];
        let t = SaleTimeline::build(&labelled, &polls, 10);
        assert_eq!(t.bucket_ms, 100.0);
        assert_eq!(t.outcomes["sold_out"], vec![1, 0, 1, 0]);
        assert_eq!(t.paid, vec![1, 1, 1, 1], "payments so far");
        assert_eq!(t.sold, vec![1, 1, 1, 0], "the last reading, carried over");
        assert_eq!(t.remaining, vec![9, 9, 9, 10]);
        // Payments are not orders: bucket 0's p99 is its slower order.
        assert_eq!(t.order_p99_ms, vec![9.0, 0.0, 1.0, 0.0]);
        assert_eq!(bucket_ms(40_000.0), 300.0, "at most 150 buckets");
    }
}
