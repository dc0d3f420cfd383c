//! Running a time sale: set-up, the storm with the stock read throughout,
//! waiting for every unpaid order to run out, then reading back every
//! buyer's orders (and points and coupon) and verifying.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::plan::{POINTS_EARNED, SalePlan};
use super::report::SaleReport;
use super::setup::{Setup, set_up};
use super::storm::{Counts, Kind, Sample, Storm, buy, poll_stock, read_stock};
use super::verify::{Answered, CouponRead, OrderRead, PointsRead, SaleEvidence, verify};
use crate::domain::timestamp::Timestamp;
use crate::loadtest::args::LoadtestArgs;
use crate::loadtest::client::{admin_token, bar, bases, http_client, read_all, system_now_ms};

/// API.md: an unpaid order expires within 5 s of its `expires_at`.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);

pub async fn run(args: LoadtestArgs) -> anyhow::Result<SaleReport> {
    let targets = bases(&args.targets);
    let base = targets[0].clone();
    let client = http_client(args.connections)?;
    let permits = Arc::new(Semaphore::new(args.connections));
    let admin = admin_token(&client, &base, &args.admin_email, &args.admin_password).await?;
    let plan = SalePlan::new(args.users, args.arrival(), &args.sale, args.over, args.seed);
    let setup = set_up(&args, &targets, &client, &admin, &plan, &permits).await?;
    let Setup { sale, shoppers, .. } = &setup;

    // The sale opens at a wall-clock instant; map it onto the monotonic clock once.
    let until_open = Duration::from_millis((setup.opens.0 - system_now_ms()).max(0) as u64);
    let opening = Instant::now() + until_open;
    let polls = Arc::new(Mutex::new(Vec::new()));
    let remaining = Arc::new(AtomicU64::new(args.stock as u64));
    let poller = tokio::spawn(poll_stock(
        client.clone(),
        targets.clone(),
        sale.clone(),
        opening,
        args.sale.poll_every,
        polls.clone(),
        remaining.clone(),
    ));

    // The storm.
    let storm = Storm {
        shooter: crate::loadtest::client::Shooter::new(args.connections),
        permits: permits.clone(),
        opening,
        run_id: setup.run_id.clone(),
        counts: Arc::new(Counts::default()),
        progress: bar(args.quiet, args.users as u64, "buyers"),
    };
    let ticker = tokio::spawn({
        let (storm, remaining) = (storm.clone(), remaining.clone());
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let left = remaining.load(std::sync::atomic::Ordering::Relaxed);
                storm.progress.set_message(storm.counts.line(left));
            }
        }
    });
    let mut tasks = Vec::with_capacity(plan.buyers.len());
    for buyer in plan.buyers.iter().cloned() {
        let u = buyer.user;
        tasks.push(tokio::spawn(buy(
            storm.clone(),
            buyer,
            targets[u % targets.len()].clone(),
            sale.clone(),
            shoppers[u].token.clone(),
            setup.coupons[u].clone(),
        )));
    }
    let mut samples: Vec<Sample> = Vec::new();
    for t in tasks {
        samples.extend(t.await?);
    }
    ticker.abort();
    storm.progress.finish_and_clear();

    // Every unpaid order runs out, and its unit comes back.
    let paid: Vec<(usize, String)> = samples
        .iter()
        .filter(|s| s.kind == Kind::Pay)
        .filter_map(|s| s.order().map(|(id, _)| (s.user, id)))
        .collect();
    let paid_ids: HashSet<&str> = paid.iter().map(|(_, id)| id.as_str()).collect();
    let last_unpaid_ms = samples
        .iter()
        .filter(|s| s.kind == Kind::Order)
        .filter(|s| {
            s.order()
                .is_some_and(|(id, _)| !paid_ids.contains(id.as_str()))
        })
        .map(|s| s.shot.done_ms)
        .fold(0.0, f64::max);
    let runs_out = opening + Duration::from_secs_f64(last_unpaid_ms / 1e3) + args.sale.payment_ttl;
    tokio::time::sleep_until(runs_out + Duration::from_millis(500)).await;
    let give_up = Instant::now() + EXPIRY_GRACE + Duration::from_secs(1);
    while Instant::now() < give_up {
        let settled = read_stock(&client, &base, sale, opening).await;
        if settled.is_some_and(|p| p.sold <= paid.len() as u64) {
            break;
        }
        tokio::time::sleep(args.sale.poll_every).await;
    }

    // Read back.
    let evidence = read_back(&args, &client, &permits, &setup, &plan).await?;
    let end = read_stock(&client, &base, sale, opening)
        .await
        .context("reading the sale at the end")?;
    poller.abort();
    let mut polls = std::mem::take(&mut *polls.lock().await);
    polls.push(end);

    let uncertain: HashSet<usize> = samples
        .iter()
        .filter(|s| s.kind == Kind::Order)
        .filter(|s| s.shot.status.is_none_or(|c| c >= 500 && c != 503))
        .map(|s| s.user)
        .collect();
    let answered: Vec<Answered> = samples
        .iter()
        .filter(|s| s.kind == Kind::Order)
        .filter_map(|s| {
            s.order().map(|(order, seq)| Answered {
                user: s.user,
                key: s.key.clone(),
                order,
                seq,
            })
        })
        .collect();
    let mut points_asked = vec![None; args.users];
    for b in &plan.buyers {
        points_asked[b.user] = b.points_asked();
    }
    let (violations, tally) = verify(&SaleEvidence {
        stock: args.stock as u64,
        limit: args.limit,
        polls: &polls,
        answered: &answered,
        paid: &paid,
        uncertain: &uncertain,
        orders: &evidence.orders,
        points_asked: &points_asked,
        coupon_asked: &setup.coupons,
        points: &evidence.points,
        coupons: &evidence.coupons,
    });
    let report = SaleReport::build(&args, &targets, sale, &samples, &polls, tally, violations);
    if let Some(dir) = &args.out {
        report.write(dir)?;
    }
    Ok(report)
}

/// What the buyers read at the end.
#[derive(Debug)]
struct ReadBack {
    orders: Vec<Vec<OrderRead>>,
    points: Vec<PointsRead>,
    coupons: Vec<CouponRead>,
}

async fn read_back(
    args: &LoadtestArgs,
    client: &reqwest::Client,
    permits: &Arc<Semaphore>,
    setup: &Setup,
    plan: &SalePlan,
) -> anyhow::Result<ReadBack> {
    let base = bases(&args.targets)[0].clone();
    let tokens = |users: &[usize], path: &str| -> Vec<(String, String)> {
        users
            .iter()
            .map(|&u| (format!("{base}{path}"), setup.shoppers[u].token.clone()))
            .collect()
    };
    let everyone: Vec<usize> = (0..args.users).collect();
    let lists = read_all(
        client,
        permits,
        tokens(&everyone, "/api/v1/me/orders?limit=100"),
        args.quiet,
        "orders",
    )
    .await?;
    let read_at = Timestamp(system_now_ms());
    let grace = EXPIRY_GRACE.as_millis() as i64;
    let orders = lists
        .iter()
        .map(|list| {
            list["orders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o["sale_id"].as_str() == Some(setup.sale.as_str()))
                .map(|o| {
                    let expires_at = o["expires_at"]
                        .as_str()
                        .and_then(|s| Timestamp::parse_rfc3339(s).ok());
                    OrderRead {
                        id: o["id"].as_str().unwrap_or_default().to_owned(),
                        seq: o["seq"].as_u64().unwrap_or(0) as u32,
                        status: o["status"].as_str().unwrap_or_default().to_owned(),
                        points_used: o["points_used"].as_i64().unwrap_or(0),
                        coupon_id: o["coupon_id"].as_str().map(str::to_owned),
                        overdue: expires_at.is_some_and(|e| e.plus_millis(grace) < read_at),
                    }
                })
                .collect()
        })
        .collect();

    let with_points = plan.with_points();
    let balances = read_all(
        client,
        permits,
        tokens(&with_points, "/api/v1/me/points"),
        args.quiet,
        "points",
    )
    .await?;
    let points = with_points
        .iter()
        .zip(&balances)
        .map(|(&user, p)| PointsRead {
            user,
            earned: POINTS_EARNED,
            balance: p["balance"].as_i64().unwrap_or(-1),
            held: p["held"].as_i64().unwrap_or(-1),
        })
        .collect();

    let mut coupons = Vec::new();
    if let Some(campaign) = &setup.campaign {
        let with_coupon = plan.with_coupon();
        let path = format!("/api/v1/campaigns/{campaign}/me");
        let wallets = read_all(
            client,
            permits,
            tokens(&with_coupon, &path),
            args.quiet,
            "coupons",
        )
        .await?;
        let mine: HashMap<usize, &Value> = with_coupon.iter().copied().zip(&wallets).collect();
        for (&user, wallet) in &mine {
            let Some(coupon) = setup.coupons[user].clone() else {
                continue;
            };
            let c = wallet["coupons"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["id"].as_str() == Some(coupon.as_str()));
            coupons.push(CouponRead {
                user,
                status: c
                    .and_then(|c| c["status"].as_str())
                    .unwrap_or("missing")
                    .to_owned(),
                order_id: c.and_then(|c| c["order_id"].as_str()).map(str::to_owned),
                coupon,
            });
        }
        coupons.sort_by_key(|c| c.user);
    }
    Ok(ReadBack {
        orders,
        points,
        coupons,
    })
}
