//! Time sales (API.md "Time sales and orders"): sales written and read,
//! a storm of buyers taking exactly the stock through the admission gate,
//! unpaid orders (cancelled, expired with a moved clock) giving their units
//! back to later buyers, and a restart that rebuilds the gate exactly.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, rfc3339, spawn_app_with, spawn_instance};

/// A sale open now; override fields with `extra`.
pub fn sale_body(app: &TestApp, extra: Value) -> Value {
    let now = app.clock.now();
    let mut b = json!({
        "name": "Air fryer at half price",
        "product": {"sku": "AF-100", "name": "Air fryer", "list_price": 100000},
        "sale_price": 50000,
        "total_quantity": 20,
        "per_user_limit": 1,
        "starts_at": rfc3339(now.plus_millis(-60_000)),
        "ends_at": rfc3339(now.plus_millis(3_600_000)),
        "payment_ttl_secs": 60
    });
    for (k, v) in extra.as_object().expect("object") {
        b[k] = v.clone();
    }
    b
}

pub async fn create_sale(app: &TestApp, extra: Value) -> Value {
    let r = app
        .post_json("/api/v1/sales", Some(&app.admin), &sale_body(app, extra))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    body(r).await
}

pub async fn order(app: &TestApp, sale: &str, token: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/sales/{sale}/orders")))
        .bearer_auth(token);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("request")
}

async fn sale_now(app: &TestApp, sale: &str) -> Value {
    let r = app.get(&format!("/api/v1/sales/{sale}"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await
}

async fn act(app: &TestApp, order: &str, what: &str, token: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/orders/{order}/{what}"),
        Some(token),
        &json!({}),
    )
    .await
}

/// Orders holding a unit, from the record: (seq, user) each.
async fn holding(app: &TestApp, sale: &str) -> Vec<(u32, String)> {
    let orders = app.state.store.gate_orders().await.unwrap();
    let mut held: Vec<(u32, String)> = orders
        .into_iter()
        .filter(|(s, _)| s.to_string() == sale)
        .flat_map(|(_, os)| os)
        .filter(|o| o.status.holds_unit())
        .map(|o| (o.seq, o.user_id.to_string()))
        .collect();
    held.sort();
    held
}

/// Seqs are exactly 1..=n and nobody holds more than `limit`.
fn assert_dense_and_within_limits(held: &[(u32, String)], n: u32, limit: usize) {
    let seqs: Vec<u32> = held.iter().map(|h| h.0).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "units held are seqs 1..={n}"
    );
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for (_, u) in held {
        *per_user.entry(u).or_default() += 1;
    }
    assert!(per_user.values().all(|&k| k <= limit), "{per_user:?}");
}

#[tokio::test]
async fn a_sale_is_created_read_listed_and_patched_and_bad_input_changes_nothing() {
    let app = spawn_app_with(|_| {}).await;
    let sale = create_sale(&app, json!({})).await;
    let id = sale["id"].as_str().unwrap();
    assert_eq!(sale["status"], "open");
    assert_eq!(
        (
            sale["sold_count"].as_u64(),
            sale["remaining_quantity"].as_u64()
        ),
        (Some(0), Some(20))
    );
    assert_eq!(sale["product"]["sku"], "AF-100");
    assert_eq!(sale["payment_ttl_secs"], 60);
    let listed = body(app.get("/api/v1/sales", None).await).await;
    assert_eq!(listed["sales"][0]["id"], id);

    // Bad input: a clear 400 naming the field, nothing created.
    for (extra, field) in [
        (json!({"sale_price": 100001}), "sale_price"),
        (json!({"total_quantity": 0}), "total_quantity"),
        (json!({"payment_ttl_secs": 86401}), "payment_ttl_secs"),
        (
            json!({"product": {"sku": " ", "name": "x", "list_price": 5}}),
            "product.sku",
        ),
        (json!({"ends_at": "2020-01-01T00:00:00Z"}), "ends_at"),
    ] {
        let r = app
            .post_json("/api/v1/sales", Some(&app.admin), &sale_body(&app, extra))
            .await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(message.contains(field), "{message} names {field}");
    }
    let mut unknown = sale_body(&app, json!({}));
    unknown["colour"] = json!("red");
    let r = app
        .post_json("/api/v1/sales", Some(&app.admin), &unknown)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    let (_, shopper) = app.signup("shopper@example.com").await;
    let r = app
        .post_json("/api/v1/sales", Some(&shopper), &sale_body(&app, json!({})))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let listed = body(app.get("/api/v1/sales", None).await).await;
    assert_eq!(listed["sales"].as_array().unwrap().len(), 1);

    // Pause, then the stock: never below a unit an order holds.
    let path = format!("/api/v1/sales/{id}");
    let r = app
        .patch_json(&path, Some(&app.admin), &json!({"paused": true}))
        .await;
    assert_eq!(body(r).await["status"], "paused");
    assert_error(
        order(&app, id, &shopper, None).await,
        StatusCode::CONFLICT,
        "paused",
    )
    .await;
    app.patch_json(&path, Some(&app.admin), &json!({"paused": false}))
        .await;
    let placed = order(&app, id, &shopper, None).await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let r = app
        .patch_json(&path, Some(&app.admin), &json!({"total_quantity": 0}))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    let r = app
        .patch_json(&path, Some(&app.admin), &json!({"total_quantity": 1}))
        .await;
    assert_eq!(body(r).await["remaining_quantity"], 0);
    let r = app
        .patch_json(&path, Some(&app.admin), &json!({"total_quantity": 30}))
        .await;
    let after = body(r).await;
    assert_eq!(
        (
            after["total_quantity"].as_u64(),
            after["remaining_quantity"].as_u64()
        ),
        (Some(30), Some(29))
    );
    assert_error(
        app.get("/api/v1/sales/00000000-0000-7000-8000-000000000000", None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn orders_respect_the_window_and_say_what_went_wrong() {
    let app = spawn_app_with(|_| {}).await;
    let now = app.clock.now();
    let later = create_sale(
        &app,
        json!({"starts_at": rfc3339(now.plus_millis(60_000)), "ends_at": rfc3339(now.plus_millis(120_000))}),
    )
    .await;
    let (_, token) = app.signup("early@example.com").await;
    let id = later["id"].as_str().unwrap();
    assert_eq!(later["status"], "upcoming");
    assert_error(
        order(&app, id, &token, None).await,
        StatusCode::CONFLICT,
        "not_open",
    )
    .await;
    app.clock.advance(Duration::from_secs(121));
    assert_error(
        order(&app, id, &token, None).await,
        StatusCode::CONFLICT,
        "ended",
    )
    .await;
    let r = order(&app, "00000000-0000-7000-8000-000000000000", &token, None).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .client
        .post(app.url(&format!("/api/v1/sales/{id}/orders")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_storm_takes_exactly_the_stock_and_unpaid_units_come_back_for_later_buyers() {
    let app = spawn_app_with(|s| s.test_payments = true).await;
    let sale = create_sale(&app, json!({"total_quantity": 20, "payment_ttl_secs": 60})).await;
    let id = sale["id"].as_str().unwrap().to_owned();
    let users = app.bulk_users("buyer", 60).await;
    // 60 buyers for 20 units, limit 1: each presses twice with one key and
    // once without, all at once.
    let mut tasks = Vec::new();
    for (i, (user, token)) in users.iter().enumerate() {
        for press in 0..3 {
            let (client, url, token, user, id) = (
                app.client.clone(),
                app.url(""),
                token.clone(),
                user.clone(),
                id.clone(),
            );
            let key = (press < 2).then(|| format!("k-{i}"));
            tasks.push(tokio::spawn(async move {
                let mut req = client
                    .post(format!("{url}/api/v1/sales/{id}/orders"))
                    .bearer_auth(&token);
                if let Some(k) = &key {
                    req = req.header("Idempotency-Key", k);
                }
                let r = req.send().await.unwrap();
                (user, token, r.status(), r.json::<Value>().await.unwrap())
            }));
        }
    }
    let mut won: HashMap<String, (String, String)> = HashMap::new();
    let mut order_ids = HashSet::new();
    for t in tasks {
        let (user, token, status, b) = t.await.unwrap();
        match status {
            StatusCode::CREATED => {
                let o = b["id"].as_str().unwrap().to_owned();
                assert_eq!(b["status"], "pending_payment");
                assert_eq!(b["payable_amount"], 50000);
                order_ids.insert(o.clone());
                if let Some((first, _)) = won.insert(user.clone(), (o.clone(), token)) {
                    assert_eq!(first, o, "one buyer, one order (the key replays it)");
                }
            }
            StatusCode::CONFLICT => assert!(
                ["sold_out", "limit_reached"].contains(&b["error"]["code"].as_str().unwrap()),
                "{b}"
            ),
            other => panic!("unexpected {other}: {b}"),
        }
    }
    assert_eq!(order_ids.len(), 20, "exactly the stock was ordered");
    assert_dense_and_within_limits(&holding(&app, &id).await, 20, 1);
    assert_eq!(sale_now(&app, &id).await["status"], "sold_out");

    // 8 paid, 4 cancelled by their buyers, 8 left to expire.
    let mut winners: Vec<(String, (String, String))> = won.into_iter().collect();
    winners.sort();
    for (_, (o, token)) in &winners[..8] {
        let r = act(&app, o, "pay", token).await;
        assert_eq!(body(r).await["status"], "paid");
    }
    for (_, (o, token)) in &winners[8..12] {
        let r = act(&app, o, "cancel", token).await;
        assert_eq!(body(r).await["status"], "cancelled");
        // Cancelling again answers the order as it stands; paying it is refused.
        assert_eq!(
            body(act(&app, o, "cancel", token).await).await["status"],
            "cancelled"
        );
        assert_error(
            act(&app, o, "pay", token).await,
            StatusCode::CONFLICT,
            "order_not_pending",
        )
        .await;
    }
    assert_eq!(sale_now(&app, &id).await["remaining_quantity"], 4);
    // A paid order cannot be cancelled.
    let (paid, paid_token) = &winners[0].1;
    assert_error(
        act(&app, paid, "cancel", paid_token).await,
        StatusCode::CONFLICT,
        "order_not_pending",
    )
    .await;

    app.clock.advance(Duration::from_secs(61));
    flashcoupon::selling::orders::expire_due(&app.state)
        .await
        .unwrap();
    for (_, (o, token)) in &winners[12..] {
        let r = app.get(&format!("/api/v1/orders/{o}"), Some(token)).await;
        assert_eq!(body(r).await["status"], "expired");
        assert_error(
            act(&app, o, "pay", token).await,
            StatusCode::CONFLICT,
            "order_expired",
        )
        .await;
    }
    let now = sale_now(&app, &id).await;
    assert_eq!(
        (
            now["remaining_quantity"].as_u64(),
            now["sold_count"].as_u64()
        ),
        (Some(12), Some(8))
    );
    // Which 8 seqs the paid orders hold depends on who came first: each
    // once, within the stock, until the stock sells out again.
    let held = holding(&app, &id).await;
    let seqs: HashSet<u32> = held.iter().map(|h| h.0).collect();
    assert_eq!((held.len(), seqs.len()), (8, 8), "{held:?}");
    assert!(seqs.iter().all(|s| (1..=20).contains(s)), "{held:?}");

    // A key that placed an order still answers it, now expired: no new unit.
    let (expired_user, (expired_order, expired_token)) = &winners[19];
    let i = users.iter().position(|(u, _)| u == expired_user).unwrap();
    let again = order(&app, &id, expired_token, Some(&format!("k-{i}"))).await;
    let again = body(again).await;
    assert_eq!(
        (again["id"].as_str(), again["status"].as_str()),
        (Some(expired_order.as_str()), Some("expired"))
    );

    // Later buyers take the 12 units back; an expired buyer may buy again.
    let late = app.bulk_users("late", 11).await;
    for (_, token) in &late {
        assert_eq!(
            order(&app, &id, token, None).await.status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(
        order(&app, &id, expired_token, None).await.status(),
        StatusCode::CREATED
    );
    let (_, one_more) = app.signup("too-late@example.com").await;
    assert_error(
        order(&app, &id, &one_more, None).await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;
    assert_dense_and_within_limits(&holding(&app, &id).await, 20, 1);

    // The admin's summary, from the record.
    let r = app
        .get(
            &format!("/api/v1/admin/sales/{id}/summary"),
            Some(&app.admin),
        )
        .await;
    let s = body(r).await;
    assert_eq!(
        s["orders"],
        json!({"pending_payment": 12, "paid": 8, "expired": 8, "cancelled": 4, "refunded": 0})
    );
    assert_eq!(
        (s["units_sold"].as_u64(), s["revenue"].as_i64()),
        (Some(8), Some(400_000))
    );
    assert_eq!(
        (
            s["remaining_quantity"].as_u64(),
            s["discount_total"].as_i64()
        ),
        (Some(0), Some(0))
    );
    assert!(s["sold_out_at"].is_string(), "{s}");
    // Every order placed (32) is in the minutes it was placed in.
    let placed: u64 = s["ordered_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert_eq!(placed, 32, "{s}");
    let as_of =
        flashcoupon::domain::timestamp::Timestamp::parse_rfc3339(s["as_of"].as_str().unwrap())
            .unwrap();
    assert!(
        as_of.0 <= app.clock.now().0 && as_of.0 > app.clock.now().0 - 60_000,
        "read just now: {s}"
    );
    let r = app
        .get(
            &format!("/api/v1/admin/sales/{id}/summary"),
            Some(expired_token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn test_payments_are_off_by_default_and_orders_are_private() {
    let app = spawn_app_with(|_| {}).await;
    let sale = create_sale(&app, json!({})).await;
    let id = sale["id"].as_str().unwrap();
    let (_, token) = app.signup("buyer@example.com").await;
    let (_, other) = app.signup("other@example.com").await;
    // A `null` body is an order paid with money alone, as no body is.
    let o = app
        .post_json(
            &format!("/api/v1/sales/{id}/orders"),
            Some(&token),
            &Value::Null,
        )
        .await;
    assert_eq!(o.status(), StatusCode::CREATED);
    let o = body(o).await;
    let o = o["id"].as_str().unwrap();
    assert_error(
        act(&app, o, "pay", &token).await,
        StatusCode::CONFLICT,
        "test_payments_off",
    )
    .await;
    // Another shopper sees no such order; the admin does.
    assert_error(
        app.get(&format!("/api/v1/orders/{o}"), Some(&other)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        act(&app, o, "cancel", &other).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let seen = app
        .get(&format!("/api/v1/orders/{o}"), Some(&app.admin))
        .await;
    assert_eq!(body(seen).await["status"], "pending_payment");
    let mine = body(app.get("/api/v1/me/orders", Some(&token)).await).await;
    assert_eq!(mine["orders"][0]["id"], o);
    assert_eq!(
        body(app.get("/api/v1/me/orders", Some(&other)).await).await["orders"],
        json!([])
    );
    let r = app.get("/api/v1/me/orders?limit=0", Some(&token)).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
}

#[tokio::test]
async fn a_restart_rebuilds_the_sale_exactly_from_the_record() {
    let mut app = spawn_app_with(|s| s.test_payments = true).await;
    let sale = create_sale(&app, json!({"total_quantity": 5, "payment_ttl_secs": 30})).await;
    let id = sale["id"].as_str().unwrap().to_owned();
    let users = app.bulk_users("r", 4).await;
    let mut orders = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let o = body(order(&app, &id, token, Some(&format!("key-{i}"))).await).await;
        orders.push(o["id"].as_str().unwrap().to_owned());
    }
    act(&app, &orders[0], "pay", &users[0].1).await;
    act(&app, &orders[1], "cancel", &users[1].1).await;
    // Seqs 1, 3, 4 held; 2 given back: 2 left.
    assert_eq!(sale_now(&app, &id).await["remaining_quantity"], 2);
    let settings = app.same_storage();
    app.stop().await;
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let app = spawn_instance(&settings, dir).await;
    let now = sale_now(&app, &id).await;
    assert_eq!(
        (
            now["remaining_quantity"].as_u64(),
            now["sold_count"].as_u64()
        ),
        (Some(2), Some(3))
    );
    // The cancelled order's key replays it; its buyer may order anew and
    // takes the lowest free seq.
    let replay = body(order(&app, &id, &users[1].1, Some("key-1")).await).await;
    assert_eq!(
        (replay["id"].as_str(), replay["status"].as_str()),
        (Some(orders[1].as_str()), Some("cancelled"))
    );
    let anew = body(order(&app, &id, &users[1].1, None).await).await;
    assert_eq!(anew["seq"], 2);
    let paid_again = order(&app, &id, &users[0].1, None).await;
    assert_error(paid_again, StatusCode::CONFLICT, "limit_reached").await;
    assert_dense_and_within_limits(&holding(&app, &id).await, 4, 1);
}

#[tokio::test]
async fn a_sales_live_stream_tells_its_stock_as_it_moves() {
    let app = spawn_app_with(|_| {}).await;
    let sale = create_sale(&app, json!({"total_quantity": 3})).await;
    let id = sale["id"].as_str().unwrap();
    let r = app.get(&format!("/api/v1/sales/{id}/live"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut live = crate::helpers::Sse::new(r);
    let (kind, first) = live.next().await;
    assert_eq!(kind, "stock");
    assert_eq!(
        (
            first["remaining_quantity"].as_u64(),
            first["status"].as_str()
        ),
        (Some(3), Some("open"))
    );
    // Each order moves it; the stream says so without being asked.
    let users = app.bulk_users("live", 3).await;
    for (i, (_, token)) in users.iter().enumerate() {
        assert_eq!(
            order(&app, id, token, None).await.status(),
            StatusCode::CREATED
        );
        loop {
            let (_, s) = live.next().await;
            if s["remaining_quantity"] == json!(2 - i) {
                break;
            }
        }
    }
    let r = app
        .get(
            "/api/v1/sales/00000000-0000-7000-8000-000000000000/live",
            None,
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_stream_joining_a_watched_sale_opens_with_its_current_stock_and_time() {
    let app = spawn_app_with(|_| {}).await;
    let sale = create_sale(&app, json!({"total_quantity": 3})).await;
    let id = sale["id"].as_str().unwrap();
    let path = format!("/api/v1/sales/{id}/live");
    let at = |s: &Value| {
        flashcoupon::domain::timestamp::Timestamp::parse_rfc3339(s["at"].as_str().unwrap()).unwrap()
    };
    // One stream keeps the sale watched.
    let mut watching = crate::helpers::Sse::new(app.get(&path, None).await);
    let (_, opened) = watching.next().await;
    let then = at(&opened);
    app.clock.advance(Duration::from_secs(30));
    let users = app.bulk_users("joining", 1).await;
    assert_eq!(
        order(&app, id, &users[0].1, None).await.status(),
        StatusCode::CREATED
    );
    // A stream joining later opens with the stock as it is now (a reading
    // is due every 250 ms) and the server's time of sending, which a page
    // sets its countdown by.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut joining = crate::helpers::Sse::new(app.get(&path, None).await);
        let (kind, s) = joining.next().await;
        assert_eq!(kind, "stock");
        assert!(at(&s).0 >= then.0 + 30_000, "stamped now: {s}");
        if s["remaining_quantity"] == json!(2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a joining stream still opens with {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
