//! A time sale in scale-out mode: two instances share one sale (orders on
//! either, the same live numbers on both), Redis restarts empty in the
//! middle and the sale's gate is rebuilt from the record with the units
//! orders hold, and unpaid units given back after the rebuild come back
//! exactly once, to be sold again.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::servers::RedisServer;
use super::{bulk_users, instances, prefix, shared_settings, test_client};
use crate::helpers::{admin_token, body, fresh_postgres};

/// The sale's live numbers; right after a Redis restart an instance may
/// answer 503 once or twice (its connection comes back, the gate is being
/// rebuilt by the other): ask again, for at most 10 s.
async fn sale_view(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = client
            .get(format!("{base}/api/v1/sales/{id}"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let b = body(r).await;
        if status == StatusCode::OK {
            return b;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "still unavailable: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Order one unit for each of `buyers`, spread over `targets`, all at once:
/// (token, order id) of each 201.
async fn order_all(
    client: &reqwest::Client,
    targets: &[String],
    sale: &str,
    buyers: &[(String, String)],
) -> Vec<(String, String)> {
    let mut tasks = Vec::new();
    for (i, (_, token)) in buyers.iter().enumerate() {
        let (client, base, token, sale) = (
            client.clone(),
            targets[i % targets.len()].clone(),
            token.clone(),
            sale.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/api/v1/sales/{sale}/orders"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let b = body(r).await;
            match status {
                StatusCode::CREATED => Some((token, b["id"].as_str().unwrap().to_owned())),
                StatusCode::CONFLICT => {
                    assert!(
                        ["sold_out", "limit_reached"]
                            .contains(&b["error"]["code"].as_str().unwrap()),
                        "{b}"
                    );
                    None
                }
                other => panic!("unexpected {other}: {b}"),
            }
        }));
    }
    let mut placed = Vec::new();
    for t in tasks {
        if let Some(p) = t.await.unwrap() {
            placed.push(p);
        }
    }
    placed
}

/// Seqs of the orders holding a unit, from PostgreSQL.
async fn held_seqs(postgres: &str, sale: &str) -> Vec<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(postgres).await.unwrap();
    sqlx::query_scalar(
        "SELECT seq FROM orders WHERE sale_id = $1 AND status IN ('pending_payment', 'paid', 'refunded') ORDER BY seq",
    )
    .bind(sale)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_a_sale_through_a_redis_restart_and_unpaid_units_come_back_once() {
    const UNITS: usize = 60;
    let mut redis = RedisServer::start();
    let postgres = fresh_postgres().await;
    let mut settings = shared_settings(&postgres, &redis.url(), &prefix());
    settings.test_payments = true;
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "sale", 200).await;
    let r = client
        .post(format!("{}/api/v1/sales", targets[0]))
        .bearer_auth(&admin)
        .json(&json!({"name": "shared sale", "product": {"sku": "S-1", "name": "Kettle", "list_price": 30000},
                      "sale_price": 15000, "total_quantity": UNITS, "per_user_limit": 1,
                      "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
                      "payment_ttl_secs": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sale = body(r).await["id"].as_str().unwrap().to_owned();

    // 120 buyers on two instances for 60 units: exactly the stock.
    let placed = order_all(&client, &targets, &sale, &users[..120]).await;
    assert_eq!(placed.len(), UNITS);
    assert_eq!(
        held_seqs(&postgres, &sale).await,
        (1..=UNITS as i64).collect::<Vec<_>>()
    );
    // 20 paid on one instance, 10 cancelled on the other.
    for (token, id) in &placed[..20] {
        let r = client
            .post(format!("{}/api/v1/orders/{id}/pay", targets[1]))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(body(r).await["status"], "paid");
    }
    for (token, id) in &placed[20..30] {
        let r = client
            .post(format!("{}/api/v1/orders/{id}/cancel", targets[0]))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(body(r).await["status"], "cancelled");
    }
    for base in &targets {
        let v = sale_view(&client, base, &sale).await;
        assert_eq!(
            (v["remaining_quantity"].as_u64(), v["sold_count"].as_u64()),
            (Some(10), Some(50)),
            "{base}: {v}"
        );
    }

    // Redis restarts empty: the gate is rebuilt from the record, the same on both.
    redis.restart();
    for base in &targets {
        let v = sale_view(&client, base, &sale).await;
        assert_eq!(
            (v["remaining_quantity"].as_u64(), v["sold_count"].as_u64()),
            (Some(10), Some(50)),
            "{base}: {v}"
        );
    }
    // The 30 pending orders run out: their units come back once, whichever
    // instances run the round, and after the rebuild.
    for app in &apps {
        app.clock.advance(Duration::from_secs(31));
    }
    let (a, b) = tokio::join!(
        flashcoupon::selling::orders::expire_due(&apps[0].state),
        flashcoupon::selling::orders::expire_due(&apps[1].state)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 30, "each order expired once");
    flashcoupon::selling::orders::expire_due(&apps[1].state)
        .await
        .unwrap();
    for base in &targets {
        let v = sale_view(&client, base, &sale).await;
        assert_eq!(
            (v["remaining_quantity"].as_u64(), v["sold_count"].as_u64()),
            (Some(40), Some(20)),
            "{base}"
        );
    }
    // Later buyers (and those whose orders ended) take exactly the 40 back.
    let mut again: Vec<(String, String)> = users[120..].to_vec();
    again.extend(
        users[..120]
            .iter()
            .filter(|(_, t)| placed[20..].iter().any(|(p, _)| p == t))
            .cloned(),
    );
    let second = order_all(&client, &targets, &sale, &again).await;
    assert_eq!(second.len(), 40);
    let ids: HashSet<&String> = placed.iter().chain(&second).map(|(_, id)| id).collect();
    assert_eq!(ids.len(), UNITS + 40, "every order is its own");
    assert_eq!(
        held_seqs(&postgres, &sale).await,
        (1..=UNITS as i64).collect::<Vec<_>>()
    );
    for base in &targets {
        let v = sale_view(&client, base, &sale).await;
        assert_eq!(
            (v["remaining_quantity"].as_u64(), v["status"].as_str()),
            (Some(0), Some("sold_out")),
            "{base}"
        );
    }
}

/// The reconciler on a time sale: a claim whose instance died before its
/// commit is written off (its unit comes back, and the stalled commit can
/// never land it later); one that committed but was never settled is
/// settled as held, and its order, cancelled later, gives its unit back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_settles_a_sales_claims_left_in_flight() {
    use flashcoupon::admission::{Decision, UnitId};
    use flashcoupon::domain::ids::{OrderId, SaleId, UserId};
    use flashcoupon::domain::sale::{Order, OrderStatus};
    use flashcoupon::selling::drop_of;
    use flashcoupon::store::NewOrderRow;

    let postgres = fresh_postgres().await;
    let mut settings = shared_settings(&postgres, &crate::helpers::redis_url(), &prefix());
    settings.test_payments = true;
    let app = &instances(&settings, 1).await[0];
    let client = test_client();
    let r = client
        .post(format!("{}/api/v1/sales", app.base))
        .bearer_auth(&app.admin)
        .json(&json!({"name": "reconciled", "product": {"sku": "R-1", "name": "Lamp", "list_price": 9000},
                      "sale_price": 5000, "total_quantity": 3, "per_user_limit": 1,
                      "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    let sale: SaleId = body(r).await["id"].as_str().unwrap().parse().unwrap();
    let drop = drop_of(sale);
    let (lost_user, _) = app.signup("lost@example.com").await;
    let (kept_user, kept_token) = app.signup("kept@example.com").await;
    let now = app.clock.now();
    let claim = |user: String| async move {
        let unit = UnitId::generate();
        match app
            .state
            .gate
            .claim(drop, user.parse::<UserId>().unwrap(), unit, None, now)
            .await
            .unwrap()
        {
            Decision::Admitted(t) => t,
            other => panic!("expected an admission, got {other:?}"),
        }
    };
    let row = |t: &flashcoupon::admission::Ticket| {
        NewOrderRow::new(
            Order {
                id: OrderId(t.unit.0),
                sale_id: sale,
                user_id: t.user,
                seq: t.seq,
                user_seq: t.user_seq,
                idempotency_key: None,
                unit_price: 5000,
                coupon_id: None,
                coupon_discount: 0,
                points_used: 0,
                payable_amount: 5000,
                status: OrderStatus::PendingPayment,
                created_at: now,
                expires_at: now.plus_millis(600_000),
                ended_at: None,
                refunded_at: None,
            },
            t.epoch,
        )
    };
    // Two claims whose instance "died": one before its commit, one after.
    let lost = claim(lost_user).await;
    let kept = claim(kept_user).await;
    let (lost_row, kept_row) = (row(&lost), row(&kept));
    let landed = app.state.store.insert_orders(&[&kept_row]).await.unwrap();
    assert!(landed.contains(&kept_row.order.id));
    // Neither is settled: their tickets go with the "dead" instance.
    std::mem::drop((lost, kept));
    assert_eq!(app.state.gate.stock(drop).await.unwrap().remaining, 1);

    // The reconciler (every instance, after --reconcile-after-ms) settles both.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let stock = app.state.gate.stock(drop).await.unwrap();
        if (stock.remaining, stock.issued) == (2, 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reconciled: {stock:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The lost claim's stalled commit can never land it now.
    let late = app.state.store.insert_orders(&[&lost_row]).await.unwrap();
    assert!(late.is_empty(), "the written-off order is skipped");
    assert!(
        app.state
            .store
            .get_order(lost_row.order.id)
            .await
            .unwrap()
            .is_none()
    );
    // The kept order is its buyer's; cancelled, its unit comes back.
    let id = kept_row.order.id;
    let r = client
        .post(format!("{}/api/v1/orders/{id}/cancel", app.base))
        .bearer_auth(&kept_token)
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await["status"], "cancelled");
    let stock = app.state.gate.stock(drop).await.unwrap();
    assert_eq!((stock.remaining, stock.issued), (3, 0));
}
