//! Time-sale checkout (API.md "Time sales and orders", promise 8): an order
//! takes its unit, reserves its coupon and holds its points in one step or
//! not at all; payment events (and the buyer's cancel) move all three
//! together; an order paid too late is reported; the first paid order
//! fires `first_order_paid`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, spawn_app_with};
use crate::payments::{EVENTS, payment};
use crate::reservations::wallet_status;
use crate::sales::{create_sale, order};
use crate::service_keys::service_key;

/// A buyer's view of everything an order can move.
#[derive(Debug, PartialEq)]
struct Snapshot {
    remaining: u64,
    coupons: Vec<String>,
    balance: i64,
    held: i64,
}

struct Buyer {
    user: String,
    token: String,
    coupons: Vec<String>,
}

async fn snapshot(app: &TestApp, sale: &str, b: &Buyer) -> Snapshot {
    let s = body(app.get(&format!("/api/v1/sales/{sale}"), None).await).await;
    let mut coupons = Vec::new();
    for c in &b.coupons {
        coupons.push(
            wallet_status(app, &b.token, c).await["status"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let p = body(app.get("/api/v1/me/points", Some(&b.token)).await).await;
    Snapshot {
        remaining: s["remaining_quantity"].as_u64().unwrap(),
        coupons,
        balance: p["balance"].as_i64().unwrap(),
        held: p["held"].as_i64().unwrap(),
    }
}

/// A buyer with `coupons` coupons of a new campaign (5,000 off from
/// 30,000; or from `min_order`) and `points` points.
async fn buyer(app: &TestApp, key: &str, email: &str, coupons: usize, points: i64) -> Buyer {
    let (user, token) = app.signup(email).await;
    let campaign = app
        .create_campaign(json!({"per_user_limit": coupons.max(1)}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for _ in 0..coupons {
        let r = app.issue(&campaign, &token, None).await;
        ids.push(body(r).await["id"].as_str().unwrap().to_owned());
    }
    if points > 0 {
        let r = app
            .post_json(
                &format!("/api/v1/users/{user}/points/earn"),
                Some(key),
                &json!({"amount": points, "reference": format!("earn-{email}"), "reason": "welcome"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    Buyer {
        user,
        token,
        coupons: ids,
    }
}

async fn order_with(app: &TestApp, sale: &str, token: &str, b: Value) -> reqwest::Response {
    app.post_json(&format!("/api/v1/sales/{sale}/orders"), Some(token), &b)
        .await
}

async fn status_of(app: &TestApp, order: &str) -> String {
    let r = app
        .get(&format!("/api/v1/orders/{order}"), Some(&app.admin))
        .await;
    body(r).await["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_order_takes_its_coupon_and_points_with_its_unit_and_bad_input_changes_nothing() {
    let app = spawn_app_with(|_| {}).await;
    let (_, key) = service_key(&app, "shop").await;
    let sale = create_sale(&app, json!({"total_quantity": 3, "per_user_limit": 3})).await;
    let sale = sale["id"].as_str().unwrap().to_owned();
    let b = buyer(&app, &key, "checkout@example.com", 2, 8_000).await;
    let other = buyer(&app, &key, "other@example.com", 1, 0).await;
    let dear = app
        .create_campaign(json!({"min_order_amount": 60_000}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dear_coupon = body(app.issue(&dear, &b.token, None).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app
        .client
        .post(app.url(&format!("/api/v1/sales/{sale}/orders")))
        .bearer_auth(&b.token)
        .header("Idempotency-Key", "checkout-1")
        .json(&json!({"coupon_id": b.coupons[0], "points": 3_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let o = body(r).await;
    assert_eq!(
        (
            o["unit_price"].as_i64(),
            o["coupon_discount"].as_i64(),
            o["points_used"].as_i64(),
            o["payable_amount"].as_i64()
        ),
        (Some(50_000), Some(5_000), Some(3_000), Some(42_000))
    );
    assert_eq!(o["coupon_id"], b.coupons[0]);
    let held = snapshot(&app, &sale, &b).await;
    // The same key again answers the same order (its coupon is reserved and
    // its points held by it, not by another), and takes nothing more.
    let again = app
        .client
        .post(app.url(&format!("/api/v1/sales/{sale}/orders")))
        .bearer_auth(&b.token)
        .header("Idempotency-Key", "checkout-1")
        .json(&json!({"coupon_id": b.coupons[0], "points": 3_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(body(again).await["id"], o["id"]);
    assert_eq!(snapshot(&app, &sale, &b).await, held);
    assert_eq!(
        held,
        Snapshot {
            remaining: 2,
            coupons: vec!["reserved".into(), "available".into()],
            balance: 5_000,
            held: 3_000
        }
    );

    // Each of these is refused and leaves the unit, the coupons and the points as they were.
    let refused = [
        (
            json!({"coupon_id": b.coupons[0]}),
            StatusCode::CONFLICT,
            "reserved",
        ),
        (
            json!({"points": 6_000}),
            StatusCode::CONFLICT,
            "insufficient_points",
        ),
        (
            json!({"coupon_id": b.coupons[1], "points": 6_000}),
            StatusCode::CONFLICT,
            "insufficient_points",
        ),
        (
            json!({"coupon_id": b.coupons[1], "points": 45_001}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"points": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"points": 1.5}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"coupon_id": other.coupons[0]}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"coupon_id": "00000000-0000-7000-8000-000000000000"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"coupon_id": "not-an-id"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"coupon_id": dear_coupon}),
            StatusCode::CONFLICT,
            "below_min_order",
        ),
        (
            json!({"colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!([null, null]),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ];
    for (request, status, code) in refused {
        let r = order_with(&app, &sale, &b.token, request.clone()).await;
        assert_error(r, status, code).await;
        assert_eq!(
            snapshot(&app, &sale, &b).await,
            held,
            "{request} changed nothing"
        );
    }
    assert_eq!(
        wallet_status(&app, &b.token, &dear_coupon).await["status"],
        "available"
    );

    // The order's coupon and points move only with the order: not by the
    // generic reservation and points-hold endpoints.
    let order_id = o["id"].as_str().unwrap();
    let coupon = &b.coupons[0];
    for (path, token) in [
        (format!("/api/v1/coupons/{coupon}/release"), &b.token),
        (format!("/api/v1/coupons/{coupon}/confirm"), &key),
    ] {
        let r = app
            .post_json(&path, Some(token), &json!({"order_id": order_id}))
            .await;
        assert_error(r, StatusCode::CONFLICT, "sale_order").await;
    }
    for what in ["release", "confirm"] {
        let path = format!("/api/v1/users/{}/points/holds/{order_id}/{what}", b.user);
        let r = app.post_json(&path, Some(&key), &json!({})).await;
        assert_error(r, StatusCode::CONFLICT, "sale_order").await;
    }
    let r = app
        .post_json(
            &format!("/api/v1/coupons/{}/reserve", b.coupons[1]),
            Some(&b.token),
            &json!({"order_id": order_id, "order_amount": 50_000}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "sale_order").await;
    assert_eq!(snapshot(&app, &sale, &b).await, held);

    // The buyer cancels: the unit, the coupon and the points all come back.
    let cancelled = app
        .post_json(
            &format!("/api/v1/orders/{}/cancel", o["id"].as_str().unwrap()),
            Some(&b.token),
            &json!({}),
        )
        .await;
    assert_eq!(body(cancelled).await["status"], "cancelled");
    assert_eq!(
        snapshot(&app, &sale, &b).await,
        Snapshot {
            remaining: 3,
            coupons: vec!["available".into(), "available".into()],
            balance: 8_000,
            held: 0
        }
    );
}

#[tokio::test]
async fn payment_events_pay_cancel_and_refund_an_order_with_its_coupon_and_points() {
    let app = spawn_app_with(|_| {}).await;
    let (_, key) = service_key(&app, "shop").await;
    let sale = create_sale(
        &app,
        json!({"total_quantity": 5, "per_user_limit": 5, "payment_ttl_secs": 60}),
    )
    .await;
    let sale = sale["id"].as_str().unwrap().to_owned();
    let b = buyer(&app, &key, "payer@example.com", 2, 10_000).await;

    // Paid: the coupon is used and the points spent.
    let o = body(
        order_with(
            &app,
            &sale,
            &b.token,
            json!({"coupon_id": b.coupons[0], "points": 4_000}),
        )
        .await,
    )
    .await;
    let id = o["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-1", "payment.succeeded", &id),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let first = body(r).await;
    assert!(
        first["outcome"].as_str().unwrap().contains("order paid"),
        "{first}"
    );
    assert_eq!(status_of(&app, &id).await, "paid");
    let paid = snapshot(&app, &sale, &b).await;
    assert_eq!(
        paid,
        Snapshot {
            remaining: 4,
            coupons: vec!["used".into(), "available".into()],
            balance: 6_000,
            held: 0
        }
    );
    // A repeat changes nothing; a failure after the payment cancels nothing.
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-1", "payment.succeeded", &id),
        )
        .await;
    assert_eq!((r.status(), body(r).await), (StatusCode::OK, first));
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("fail-1", "payment.failed", &id),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status_of(&app, &id).await, "paid");
    assert_eq!(snapshot(&app, &sale, &b).await, paid);

    // Refunded: the coupon and the points come back; the unit stays sold.
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("refund-1", "order.refunded", &id),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status_of(&app, &id).await, "refunded");
    assert_eq!(
        snapshot(&app, &sale, &b).await,
        Snapshot {
            remaining: 4,
            coupons: vec!["available".into(), "available".into()],
            balance: 10_000,
            held: 0
        }
    );

    // A failed payment cancels a pending order: everything comes back.
    let o = body(
        order_with(
            &app,
            &sale,
            &b.token,
            json!({"coupon_id": b.coupons[1], "points": 1_000}),
        )
        .await,
    )
    .await;
    let id = o["id"].as_str().unwrap().to_owned();
    assert_eq!(snapshot(&app, &sale, &b).await.remaining, 3);
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("fail-2", "payment.failed", &id),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status_of(&app, &id).await, "cancelled");
    assert_eq!(
        snapshot(&app, &sale, &b).await,
        Snapshot {
            remaining: 4,
            coupons: vec!["available".into(), "available".into()],
            balance: 10_000,
            held: 0
        }
    );

    // Not paid in time: it expires with its holds; a late payment is reported, not taken.
    let o = body(
        order_with(
            &app,
            &sale,
            &b.token,
            json!({"coupon_id": b.coupons[0], "points": 2_000}),
        )
        .await,
    )
    .await;
    let id = o["id"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(61));
    flashcoupon::selling::orders::expire_due(&app.state)
        .await
        .unwrap();
    flashcoupon::spending::reservations::expire_due(&app.state)
        .await
        .unwrap();
    flashcoupon::points::expire_due(&app.state).await.unwrap();
    assert_eq!(status_of(&app, &id).await, "expired");
    let after = snapshot(&app, &sale, &b).await;
    assert_eq!(
        after,
        Snapshot {
            remaining: 4,
            coupons: vec!["available".into(), "available".into()],
            balance: 10_000,
            held: 0
        }
    );
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-late", "payment.succeeded", &id),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let late = body(r).await;
    assert!(
        late["outcome"].as_str().unwrap().contains("after_expiry"),
        "{late}"
    );
    assert_eq!(status_of(&app, &id).await, "expired");
    assert_eq!(snapshot(&app, &sale, &b).await, after);

    // An event for an order nobody knows is refused.
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment(
                "x-1",
                "payment.succeeded",
                "00000000-0000-7000-8000-000000000000",
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_record_takes_an_orders_coupon_and_points_all_or_nothing() {
    use flashcoupon::domain::ids::{CouponId, OrderId, SaleId, UserId};
    use flashcoupon::domain::sale::{Order, OrderStatus};
    use flashcoupon::store::{HoldRecord, HoldState, NewOrderRow, Refusal, Written};

    let app = spawn_app_with(|_| {}).await;
    let (_, key) = service_key(&app, "shop").await;
    let sale = create_sale(&app, json!({"total_quantity": 8, "per_user_limit": 8})).await;
    let sale_id: SaleId = sale["id"].as_str().unwrap().parse().unwrap();
    let b = buyer(&app, &key, "record@example.com", 2, 1_000).await;
    let user: UserId = b.user.parse().unwrap();
    let b2 = buyer(&app, &key, "record2@example.com", 2, 2_000).await;
    let user2: UserId = b2.user.parse().unwrap();
    let b3 = buyer(&app, &key, "record3@example.com", 2, 1_000).await;
    let user3: UserId = b3.user.parse().unwrap();
    let store = &app.state.store;
    // The generation the record expects (scale-out: the gate's rebuild bumped it).
    let epoch = store.fence_and_load_sale(sale_id).await.unwrap().epoch;
    let now = app.state.record_now().await.unwrap();
    let row_of = |user: UserId, seq: u32, coupon: &str, points: i64| {
        let id = OrderId::generate();
        let coupon: CouponId = coupon.parse().unwrap();
        let expires_at = now.plus_millis(60_000);
        let mut row = NewOrderRow::new(
            Order {
                id,
                sale_id,
                user_id: user,
                seq,
                user_seq: seq,
                idempotency_key: None,
                unit_price: 50_000,
                coupon_id: Some(coupon),
                coupon_discount: 5_000,
                points_used: points,
                payable_amount: 45_000 - points,
                status: OrderStatus::PendingPayment,
                created_at: now,
                expires_at,
                ended_at: None,
                refunded_at: None,
            },
            epoch,
        );
        row.hold = Some(HoldRecord {
            id: uuid::Uuid::now_v7(),
            coupon_id: coupon,
            user_id: user,
            order_id: id.to_string(),
            order_amount: 50_000,
            discount_amount: 5_000,
            reserved_at: now,
            expires_at,
            state: HoldState::Held,
        });
        row.points = Some(flashcoupon::points::hold_write(
            user,
            &id.to_string(),
            points,
            expires_at,
            now,
        ));
        row
    };
    let row = |seq: u32, coupon: &str, points: i64| row_of(user, seq, coupon, points);
    // More points than the balance: the coupon it reserved first is undone too.
    let short = row(1, &b.coupons[0], 1_001);
    // Fits: lands whole, in the same batch.
    let fits = row(2, &b.coupons[1], 1_000);
    // Its coupon is the one `fits` just reserved.
    let taken = row(3, &b.coupons[1], 0);
    let mut taken = taken;
    taken.points = None;
    let landed = store.insert_orders(&[&short, &fits, &taken]).await.unwrap();
    assert_eq!(landed.into_iter().collect::<Vec<_>>(), vec![fits.order.id]);
    assert_eq!(
        short.refusal.get(),
        Some(&Refusal::Points(Written::Insufficient))
    );
    assert_eq!(taken.refusal.get(), Some(&Refusal::CouponTaken));
    assert_eq!(fits.refusal.get(), None);
    for (o, there) in [(&short, false), (&fits, true), (&taken, false)] {
        assert_eq!(store.get_order(o.order.id).await.unwrap().is_some(), there);
    }
    assert_eq!(
        wallet_status(&app, &b.token, &b.coupons[0]).await["status"],
        "available"
    );
    assert_eq!(
        wallet_status(&app, &b.token, &b.coupons[1]).await["status"],
        "reserved"
    );
    let p = body(app.get("/api/v1/me/points", Some(&b.token)).await).await;
    assert_eq!(
        (p["balance"].as_i64(), p["held"].as_i64()),
        (Some(0), Some(1_000))
    );

    // A batch where every order fits lands whole (the writer's fast path,
    // no savepoint per order): each with its coupon and its points.
    let both = [
        row_of(user2, 4, &b2.coupons[0], 700),
        row_of(user2, 5, &b2.coupons[1], 1_300),
    ];
    let landed = store.insert_orders(&[&both[0], &both[1]]).await.unwrap();
    assert_eq!(landed.len(), 2);
    for r in &both {
        assert!(landed.contains(&r.order.id));
        assert_eq!(r.refusal.get(), None);
        assert!(store.get_order(r.order.id).await.unwrap().is_some());
    }
    for c in &b2.coupons {
        assert_eq!(
            wallet_status(&app, &b2.token, c).await["status"],
            "reserved"
        );
    }
    let p = body(app.get("/api/v1/me/points", Some(&b2.token)).await).await;
    assert_eq!(
        (p["balance"].as_i64(), p["held"].as_i64()),
        (Some(0), Some(2_000))
    );

    // A plain order, one that fits, then one refused after it: the batch is
    // written again one savepoint each, so what came before the refusal
    // lands exactly once and the refused one leaves nothing.
    let mut plain = row_of(user3, 6, &b3.coupons[0], 1);
    plain.order.coupon_id = None;
    plain.order.points_used = 0;
    plain.order.coupon_discount = 0;
    plain.order.payable_amount = plain.order.unit_price;
    plain.hold = None;
    plain.points = None;
    let fits = row_of(user3, 7, &b3.coupons[0], 600);
    let short = row_of(user3, 8, &b3.coupons[1], 600);
    let landed = store.insert_orders(&[&plain, &fits, &short]).await.unwrap();
    let mut want = vec![plain.order.id, fits.order.id];
    let mut got: Vec<_> = landed.into_iter().collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(fits.refusal.get(), None);
    assert_eq!(
        short.refusal.get(),
        Some(&Refusal::Points(Written::Insufficient))
    );
    assert!(store.get_order(short.order.id).await.unwrap().is_none());
    assert_eq!(
        wallet_status(&app, &b3.token, &b3.coupons[0]).await["status"],
        "reserved"
    );
    assert_eq!(
        wallet_status(&app, &b3.token, &b3.coupons[1]).await["status"],
        "available"
    );
    // The points held once, for `fits` alone.
    let p = body(app.get("/api/v1/me/points", Some(&b3.token)).await).await;
    assert_eq!(
        (p["balance"].as_i64(), p["held"].as_i64()),
        (Some(400), Some(600))
    );
    let ids = [fits.order.id.to_string(), short.order.id.to_string()];
    let holds = store
        .point_holds_of_orders(&[ids[0].as_str(), ids[1].as_str()])
        .await
        .unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].order_id, fits.order.id.to_string());
}

#[tokio::test]
async fn the_first_paid_order_fires_first_order_paid_once() {
    let app = spawn_app_with(|s| s.test_payments = true).await;
    let welcome = app
        .create_campaign(json!({"trigger": "first_order_paid", "per_user_limit": 5}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sale = create_sale(&app, json!({"per_user_limit": 3})).await;
    let sale = sale["id"].as_str().unwrap();
    let (user, token) = app.signup("first-paid@example.com").await;
    for _ in 0..3 {
        let o = body(order(&app, sale, &token, None).await).await;
        let r = app
            .post_json(
                &format!("/api/v1/orders/{}/pay", o["id"].as_str().unwrap()),
                Some(&token),
                &json!({}),
            )
            .await;
        assert_eq!(body(r).await["status"], "paid");
    }
    let event = crate::triggers::done_event(&app, &format!("first_order_paid:{user}")).await;
    assert_eq!(
        (event["outcome"].as_str(), event["source"].as_str()),
        (Some("issued 1"), Some("order"))
    );
    assert_eq!(
        app.record(&welcome).await.len(),
        1,
        "one welcome coupon for three paid orders"
    );
}
