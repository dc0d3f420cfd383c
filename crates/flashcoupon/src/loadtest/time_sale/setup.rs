//! Setting up a time sale through the API: shoppers, a check that every
//! target takes test payments, points and coupons for the buyers who use
//! them, and the sale itself, opening a few seconds ahead.

use std::sync::Arc;

use anyhow::bail;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::plan::{POINTS_EARNED, SalePlan};
use crate::domain::timestamp::Timestamp;
use crate::loadtest::args::LoadtestArgs;
use crate::loadtest::client::{Shopper, bar, expect_json, provision, system_now_ms};

/// The sale's price (the product lists at twice that) and a coupon's discount.
pub const SALE_PRICE: i64 = 50_000;
const COUPON_DISCOUNT: i64 = 5_000;
/// An order id no server holds: paying it tells whether test payments are on.
const NO_SUCH_ORDER: &str = "00000000-0000-7000-8000-000000000000";

#[derive(Debug)]
pub struct Setup {
    pub run_id: String,
    pub shoppers: Vec<Shopper>,
    pub sale: String,
    /// The wall-clock instant the sale opens.
    pub opens: Timestamp,
    /// The campaign of the buyers' coupons, if any buyer uses one.
    pub campaign: Option<String>,
    /// Per user, the coupon they order with.
    pub coupons: Vec<Option<String>>,
}

/// Every target must let buyers pay at once (`--test-payments`): paying an
/// order that does not exist answers 404 there, `test_payments_off` elsewhere.
async fn check_test_payments(
    client: &reqwest::Client,
    targets: &[String],
    token: &str,
) -> anyhow::Result<()> {
    for t in targets {
        let r = client
            .post(format!("{t}/api/v1/orders/{NO_SUCH_ORDER}/pay"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        match (status, body.pointer("/error/code").and_then(Value::as_str)) {
            (404, _) => {}
            (409, Some("test_payments_off")) => bail!(
                "{t} does not take test payments: the time sale pays its orders with POST /api/v1/orders/{{id}}/pay; \
                 start the server with --test-payments (FLASHCOUPON_TEST_PAYMENTS=true)"
            ),
            _ => bail!("{t}: paying a missing order answered {status} {body}; expected 404"),
        }
    }
    Ok(())
}

/// POST `body` as `token` for each `(url, token, body)`, at most `permits`
/// at once, expecting 201; the answers in order.
async fn post_all(
    client: &reqwest::Client,
    permits: &Arc<Semaphore>,
    posts: Vec<(String, String, Value)>,
    quiet: bool,
    what: &'static str,
) -> anyhow::Result<Vec<Value>> {
    let progress = bar(quiet, posts.len() as u64, what);
    let mut tasks = Vec::with_capacity(posts.len());
    for (url, token, body) in posts {
        let (client, permits, progress) = (client.clone(), permits.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await;
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let answer = expect_json(r, 201, what).await?;
            progress.inc(1);
            anyhow::Ok(answer)
        }));
    }
    let mut answers = Vec::with_capacity(tasks.len());
    for t in tasks {
        answers.push(t.await??);
    }
    progress.finish_and_clear();
    Ok(answers)
}

pub async fn set_up(
    args: &LoadtestArgs,
    targets: &[String],
    client: &reqwest::Client,
    admin: &str,
    plan: &SalePlan,
    permits: &Arc<Semaphore>,
) -> anyhow::Result<Setup> {
    let base = &targets[0];
    let run_id = format!("{:08x}", rand::random::<u32>());
    let shoppers = provision(client, base, admin, args.users, &run_id, args.quiet).await?;
    check_test_payments(client, targets, &shoppers[0].token).await?;

    let earns = plan
        .with_points()
        .into_iter()
        .map(|u| {
            let url = format!("{base}/api/v1/users/{}/points/earn", shoppers[u].id);
            let body = json!({"amount": POINTS_EARNED, "reference": format!("lt-{run_id}"), "reason": "loadtest"});
            (url, admin.to_owned(), body)
        })
        .collect();
    post_all(client, permits, earns, args.quiet, "points").await?;

    let mut coupons = vec![None; args.users];
    let coupon_buyers = plan.with_coupon();
    let mut campaign = None;
    if !coupon_buyers.is_empty() {
        let now = Timestamp(system_now_ms());
        let r = client
            .post(format!("{base}/api/v1/campaigns"))
            .bearer_auth(admin)
            .json(&json!({
                "name": format!("loadtest {run_id} sale coupons"),
                "discount": {"type": "fixed", "amount": COUPON_DISCOUNT},
                "total_quantity": coupon_buyers.len(),
                "per_user_limit": 1,
                "issue_starts_at": now.plus_millis(-60_000).to_string(),
                "issue_ends_at": now.plus_millis(3_600_000).to_string(),
                "valid_days": 30,
            }))
            .send()
            .await?;
        let id = expect_json(r, 201, "coupon campaign").await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let claims = coupon_buyers
            .iter()
            .map(|&u| {
                let url = format!("{base}/api/v1/campaigns/{id}/issue");
                (url, shoppers[u].token.clone(), json!({}))
            })
            .collect();
        let issued = post_all(client, permits, claims, args.quiet, "coupons").await?;
        for (&u, c) in coupon_buyers.iter().zip(issued) {
            coupons[u] = c["id"].as_str().map(str::to_owned);
        }
        campaign = Some(id);
    }

    let opens = Timestamp(system_now_ms()).plus_millis(args.open_in.as_millis() as i64);
    let r = client
        .post(format!("{base}/api/v1/sales"))
        .bearer_auth(admin)
        .json(&json!({
            "name": format!("loadtest {run_id}"),
            "product": {"sku": format!("LT-{run_id}"), "name": "Loadtest kettle", "list_price": 2 * SALE_PRICE},
            "sale_price": SALE_PRICE,
            "total_quantity": args.stock,
            "per_user_limit": args.limit,
            "starts_at": opens.to_string(),
            "ends_at": opens.plus_millis(3_600_000).to_string(),
            "payment_ttl_secs": args.sale.payment_ttl.as_secs(),
        }))
        .send()
        .await?;
    let sale = expect_json(r, 201, "sale").await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok(Setup {
        run_id,
        shoppers,
        sale,
        opens,
        campaign,
        coupons,
    })
}
