//! The time sale's report: order and payment latencies, the outcome mix
//! and the stock over time, the six promises as pass/fail criteria and the
//! p99 bar; JSON and the same self-contained HTML page as the drop's.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::storm::{Kind, Sample};
use super::timeline::{SaleTimeline, charts};
use super::verify::{SaleViolation, StockPoll, Tally};
use crate::loadtest::args::LoadtestArgs;
use crate::loadtest::page::{self, LatencyTable, Page};
use crate::loadtest::stats::{Criterion, Latencies, LatencyBucket, Percentiles, refusal_label};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaleReport {
    pub sale_id: String,
    pub targets: Vec<String>,
    pub scenario: String,
    pub users: usize,
    pub stock: u32,
    pub per_user_limit: u32,
    pub arrival: String,
    pub connections: usize,
    pub never_pay_share: f64,
    pub payment_ttl_secs: u64,
    pub retries: u32,
    pub retry_after_ms: u64,
    pub points_share: f64,
    pub coupon_share: f64,
    pub requests: u64,
    pub answered: u64,
    pub duration_ms: f64,
    pub throughput_rps: f64,
    /// Orders (`POST /sales/{id}/orders`): the p99 bar is on these.
    pub latency_ms: Percentiles,
    pub latency_by_outcome_ms: BTreeMap<String, Percentiles>,
    pub pay_latency_ms: Percentiles,
    pub outcomes: BTreeMap<String, u64>,
    pub pay_outcomes: BTreeMap<String, u64>,
    pub errors: u64,
    pub sold_out_after_ms: Option<f64>,
    pub tally: Tally,
    /// The longest time between two readings of the stock.
    pub max_poll_gap_ms: f64,
    pub timeline: SaleTimeline,
    pub violations: Vec<String>,
    pub violation_details: Vec<SaleViolation>,
    pub criteria: Vec<Criterion>,
    pub latency_histogram: Vec<LatencyBucket>,
}

/// Each sample's outcome label: `placed` (a key's first 201), `replayed`,
/// `paid`, or the refusal's code.
fn label(s: &Sample, seen: &mut HashSet<(usize, String)>) -> String {
    match (s.kind, s.shot.status) {
        (Kind::Order, Some(201)) if seen.insert((s.user, s.key.clone())) => "placed".into(),
        (Kind::Order, Some(201)) => "replayed".into(),
        (Kind::Pay, Some(200)) => "paid".into(),
        (_, status) => refusal_label(status, s.shot.code().as_deref()),
    }
}

/// The six promises as criteria: a promise passes when none of its
/// violations occurred.
fn promises(
    t: &Tally,
    v: &[SaleViolation],
    stock: u32,
    users: usize,
    limit: u32,
) -> Vec<Criterion> {
    let held = |n: u8| !v.iter().any(|x| x.promise() == n);
    let extras = if t.points_buyers + t.coupon_buyers == 0 {
        "no coupons or points in this run".to_owned()
    } else {
        format!(
            "{} points buyers' balances and {} coupon buyers' coupons read",
            t.points_buyers, t.coupon_buyers
        )
    };
    vec![
        Criterion::new(
            "1. sold ≤ stock at every instant",
            held(1),
            format!(
                "{} readings of the stock, at most {} sold of {stock}; sold + remaining = {stock} each time",
                t.polls, t.max_sold
            ),
        ),
        Criterion::new(
            "2. paid ≤ stock",
            held(2),
            format!("{} paid of {stock}", t.paid),
        ),
        Criterion::new(
            "3. every unit given back is sold again or in stock",
            held(3),
            format!(
                "{} expired + {} cancelled, {} units returned: {} sold again; {} held + {} in stock = {stock}",
                t.expired, t.cancelled, t.returned, t.resold, t.held, t.remaining
            ),
        ),
        Criterion::new(
            format!("4. nobody holds more than {limit}"),
            held(4),
            format!("every one of {users} buyers' orders read"),
        ),
        Criterion::new(
            "5. every 201 order exists; no seq held twice, skipped or beyond the stock",
            held(5),
            format!(
                "{} orders exist, {} hold a unit; {} got a seq given back",
                t.placed, t.held, t.resold
            ),
        ),
        Criterion::new(
            "6. every coupon and points hold resolved once",
            held(6),
            extras,
        ),
    ]
}

impl SaleReport {
    pub fn build(
        args: &LoadtestArgs,
        targets: &[String],
        sale: &str,
        samples: &[Sample],
        polls: &[StockPoll],
        tally: Tally,
        violations: Vec<SaleViolation>,
    ) -> Self {
        let mut order = samples.iter().collect::<Vec<_>>();
        order.sort_by(|a, b| a.shot.done_ms.total_cmp(&b.shot.done_ms));
        let mut seen = HashSet::new();
        let labelled: Vec<(&Sample, String)> = order
            .into_iter()
            .map(|s| (s, label(s, &mut seen)))
            .collect();
        let (mut orders, mut pays) = (Latencies::default(), Latencies::default());
        for (s, l) in &labelled {
            match s.kind {
                Kind::Order => orders.record(l, s.shot.latency_us),
                Kind::Pay => pays.record(l, s.shot.latency_us),
            }
        }
        let first_sent = samples
            .iter()
            .map(|s| s.shot.sent_ms)
            .fold(f64::INFINITY, f64::min);
        let last_done = samples.iter().map(|s| s.shot.done_ms).fold(0.0, f64::max);
        let duration_ms = (last_done - first_sent.min(last_done)).max(1.0);
        let answered = samples.iter().filter(|s| s.shot.status.is_some()).count() as u64;
        let errors = orders.errors() + pays.errors();
        let latency_ms = orders.overall();

        let timeline = SaleTimeline::build(&labelled, polls, args.stock as u64);
        let max_poll_gap_ms = polls
            .windows(2)
            .map(|w| w[1].at_ms - w[0].at_ms)
            .fold(0.0, f64::max);

        let mut criteria = vec![
            Criterion::new(
                "every request answered",
                answered == samples.len() as u64,
                format!("{answered} of {}", samples.len()),
            ),
            Criterion::new("0 errors", errors == 0, format!("{errors} errors")),
        ];
        criteria.extend(promises(
            &tally,
            &violations,
            args.stock,
            args.users,
            args.limit,
        ));
        criteria.push(Criterion::p99(&latency_ms));

        let sale_args = &args.sale;
        SaleReport {
            sale_id: sale.to_owned(),
            targets: targets.to_vec(),
            scenario: "time-sale".into(),
            users: args.users,
            stock: args.stock,
            per_user_limit: args.limit,
            arrival: crate::loadtest::report::describe_arrival(args),
            connections: args.connections,
            never_pay_share: sale_args.never_pay_share,
            payment_ttl_secs: sale_args.payment_ttl.as_secs(),
            retries: sale_args.retries,
            retry_after_ms: sale_args.retry_after().as_millis() as u64,
            points_share: sale_args.points_share,
            coupon_share: sale_args.coupon_share,
            requests: samples.len() as u64,
            answered,
            duration_ms,
            throughput_rps: answered as f64 / (duration_ms / 1e3),
            latency_ms,
            latency_by_outcome_ms: orders.by_outcome(),
            pay_latency_ms: pays.overall(),
            outcomes: orders.counts(),
            pay_outcomes: pays.counts(),
            errors,
            sold_out_after_ms: polls
                .iter()
                .find(|p| p.at_ms >= 0.0 && p.remaining == 0)
                .map(|p| p.at_ms),
            tally,
            max_poll_gap_ms,
            timeline,
            violations: violations.iter().map(SaleViolation::describe).collect(),
            violation_details: violations,
            criteria,
            latency_histogram: orders.histogram(),
        }
    }

    /// The text printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let t = &self.tally;
        let _ = writeln!(
            out,
            "time sale {} on {}",
            self.sale_id,
            self.targets.join(", ")
        );
        let _ = writeln!(
            out,
            "{} users, {} units, limit {}, {}; {:.0}% never pay, payment time {} s, {} retries after {} ms; {:.0}% use points, {:.0}% a coupon",
            self.users,
            self.stock,
            self.per_user_limit,
            self.arrival,
            self.never_pay_share * 100.0,
            self.payment_ttl_secs,
            self.retries,
            self.retry_after_ms,
            self.points_share * 100.0,
            self.coupon_share * 100.0
        );
        let pays: u64 = self.pay_outcomes.values().sum();
        let _ = writeln!(
            out,
            "{} orders + {pays} payments in {:.0} ms = {:.0} req/s",
            self.requests - pays,
            self.duration_ms,
            self.throughput_rps
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "order latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        let p = &self.pay_latency_ms;
        let _ = writeln!(
            out,
            "payment latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            p.p50, p.p90, p.p99, p.max
        );
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "orders: {}; payments: {}",
            list(&self.outcomes),
            list(&self.pay_outcomes)
        );
        let sold_out = self
            .sold_out_after_ms
            .map_or("never sold out".to_owned(), |ms| {
                format!("sold out {ms:.0} ms after opening")
            });
        let _ = writeln!(
            out,
            "{sold_out}; {} orders: {} paid, {} expired, {} cancelled, {} pending; {} units returned, {} sold again, {} in stock at the end",
            t.placed, t.paid, t.expired, t.cancelled, t.pending, t.returned, t.resold, t.remaining
        );
        if self.violations.is_empty() {
            let _ = writeln!(out, "promises: all held");
        } else {
            for v in &self.violations {
                let _ = writeln!(out, "VIOLATION: {v}");
            }
        }
        for c in &self.criteria {
            let mark = if c.pass { "PASS" } else { "FAIL" };
            let _ = writeln!(out, "[{mark}] {} ({})", c.name, c.detail);
        }
        let _ = writeln!(out, "p99 of orders: {:.2} ms", l.p99);
        out
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let charts = charts(self);
        page::write(dir, self, &charts, &self.html(&charts))
    }

    fn html(&self, charts: &[(&'static str, String)]) -> String {
        let sold_out = self
            .sold_out_after_ms
            .map_or("not sold out".to_owned(), |ms| format!("{ms:.0} ms"));
        let l = &self.latency_ms;
        let t = &self.tally;
        Page {
            what: "time sale",
            id: &self.sale_id,
            intro: format!(
                "{} users, {} units, limit {}, {}; {:.0}% never pay (payment time {} s); buyers who find no unit retry {} times after {} ms; {:.0}% pay with points, {:.0}% with a coupon; {} connections, against {}.",
                self.users,
                self.stock,
                self.per_user_limit,
                self.arrival,
                self.never_pay_share * 100.0,
                self.payment_ttl_secs,
                self.retries,
                self.retry_after_ms,
                self.points_share * 100.0,
                self.coupon_share * 100.0,
                self.connections,
                self.targets.join(", ")
            ),
            kpis: vec![
                (format!("{:.0}", self.throughput_rps), "requests / s".into()),
                (format!("{:.2} ms", l.p50), "order p50".into()),
                (format!("{:.2} ms", l.p99), "order p99".into()),
                (format!("{:.2} ms", l.max), "order max".into()),
                (sold_out, "time to sell out".into()),
                (t.paid.to_string(), "paid".into()),
                (t.resold.to_string(), "sold again".into()),
            ],
            violations: &self.violations,
            criteria: &self.criteria,
            charts,
            tables: vec![LatencyTable { title: "Order latency by outcome (ms)", rows: &self.latency_by_outcome_ms }],
            note: "Latency counts from each request's planned send instant (open loop): a buyer's first order at their arrival, a retry after its wait, a payment as soon as its order was answered. The stock is read during the run; the last reading comes after every unpaid order's payment time ran out.",
        }
        .html()
    }
}
