//! Reservations: a coupon held for an order until it is paid, confirmed by
//! the shop, released, or expired by the platform: each hold ends once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, spawn_app};
use crate::service_keys::{delete_key, service_key};

/// `count` shoppers holding one coupon each of one campaign (5,000 off,
/// minimum 30,000): (token, coupon id) pairs.
pub async fn holders(app: &TestApp, count: usize) -> Vec<(String, String)> {
    let campaign = app.create_campaign(json!({"total_quantity": count})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut out = Vec::new();
    for (_, token) in app.bulk_users("hold", count).await {
        let r = app.issue(&campaign, &token, None).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let coupon = body(r).await["id"].as_str().unwrap().to_owned();
        out.push((token, coupon));
    }
    out
}

pub fn path(coupon: &str, action: &str) -> String {
    format!("/api/v1/coupons/{coupon}/{action}")
}

pub async fn wallet_status(app: &TestApp, token: &str, coupon: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/coupons/{coupon}"), Some(token))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await
}

#[tokio::test]
async fn a_reservation_holds_the_coupon_for_its_order_until_the_shop_confirms_it() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "order service").await;
    let (token, coupon) = holders(&app, 1).await.remove(0);
    let order = json!({"order_id": "order-1", "order_amount": 42_000, "ttl_secs": 600});
    let r = app
        .post_json(&path(&coupon, "reserve"), Some(&token), &order)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = body(r).await;
    assert_eq!(first["coupon"]["status"], "reserved");
    assert_eq!(first["coupon"]["order_id"], "order-1");
    assert_eq!(
        (
            first["discount_amount"].as_i64(),
            first["payable_amount"].as_i64()
        ),
        (Some(5_000), Some(37_000))
    );
    assert_eq!(first["expires_at"], first["coupon"]["reserved_until"]);
    // The same order again: the same answer, the same expiry.
    let again = body(
        app.post_json(&path(&coupon, "reserve"), Some(&token), &order)
            .await,
    )
    .await;
    assert_eq!(again["expires_at"], first["expires_at"]);
    // Another order, or a spend, while held: refused.
    let other = json!({"order_id": "order-2", "order_amount": 42_000});
    let r = app
        .post_json(&path(&coupon, "reserve"), Some(&token), &other)
        .await;
    assert_error(r, StatusCode::CONFLICT, "reserved").await;
    let r = app
        .post_json(&path(&coupon, "use"), Some(&token), &other)
        .await;
    assert_error(r, StatusCode::CONFLICT, "reserved").await;
    // Only the shop confirms.
    let paid = json!({"order_id": "order-1"});
    let r = app
        .post_json(&path(&coupon, "confirm"), Some(&token), &paid)
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_json(
            &path(&coupon, "confirm"),
            Some(&key),
            &json!({"order_id": "order-2"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_reserved").await;
    let r = app
        .post_json(&path(&coupon, "confirm"), Some(&key), &paid)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let used = body(r).await;
    assert_eq!(
        (used["status"].as_str(), used["order_id"].as_str()),
        (Some("used"), Some("order-1"))
    );
    assert!(used.get("reserved_until").is_none());
    // A repeat answers the same; a release after it is refused.
    let r = app
        .post_json(&path(&coupon, "confirm"), Some(&key), &paid)
        .await;
    assert_eq!(body(r).await["status"], "used");
    let r = app
        .post_json(&path(&coupon, "release"), Some(&token), &paid)
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_reserved").await;
    assert_eq!(wallet_status(&app, &token, &coupon).await["status"], "used");
    // The owner hears it was used (the inbox is written in batches: poll).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inbox = body(app.get("/api/v1/me/notifications", Some(&token)).await).await;
        let told = inbox["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "coupon.used");
        if told {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the owner was never told: {inbox}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_released_coupon_is_available_again_and_cannot_be_confirmed() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "order service").await;
    let (token, coupon) = holders(&app, 1).await.remove(0);
    let order = json!({"order_id": "order-1", "order_amount": 42_000});
    let r = app
        .post_json(&path(&coupon, "reserve"), Some(&key), &order)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the shop's back end may reserve too"
    );
    let hold = json!({"order_id": "order-1"});
    let r = app
        .post_json(&path(&coupon, "release"), Some(&token), &hold)
        .await;
    assert_eq!(body(r).await["status"], "available");
    let r = app
        .post_json(&path(&coupon, "release"), Some(&token), &hold)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a repeated release answers as the first"
    );
    let r = app
        .post_json(&path(&coupon, "confirm"), Some(&key), &hold)
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_reserved").await;
    // Free again: another order can hold it, or the owner can spend it.
    let r = app
        .post_json(
            &path(&coupon, "use"),
            Some(&token),
            &json!({"order_id": "order-2", "order_amount": 42_000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_reservation_is_given_back_once_and_a_late_payment_does_not_confirm_it() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "order service").await;
    let (token, coupon) = holders(&app, 1).await.remove(0);
    let order = json!({"order_id": "order-1", "order_amount": 42_000, "ttl_secs": 60});
    let r = app
        .post_json(&path(&coupon, "reserve"), Some(&token), &order)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.clock.advance(Duration::from_secs(61));
    // Too late, whether or not the platform has swept it yet.
    let paid = json!({"order_id": "order-1"});
    let r = app
        .post_json(&path(&coupon, "confirm"), Some(&key), &paid)
        .await;
    assert_error(r, StatusCode::CONFLICT, "reservation_expired").await;
    // The platform gives it back within a couple of its rounds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while wallet_status(&app, &token, &coupon).await["status"] != "available" {
        assert!(tokio::time::Instant::now() < deadline, "never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app
        .post_json(&path(&coupon, "confirm"), Some(&key), &paid)
        .await;
    assert_error(r, StatusCode::CONFLICT, "reservation_expired").await;
    // The owner is told once, however many rounds run.
    let count = || async {
        let inbox = body(app.get("/api/v1/me/notifications", Some(&token)).await).await;
        inbox["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "coupon.reservation_expired")
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the owner was never told"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await; // two more rounds
    assert_eq!(count().await, 1);
}

/// Promise 8 under concurrency: confirms (the shop), releases (the owner)
/// and the expiry race on the same holds. Each hold ends one way: if a
/// confirm won, every release was refused and the coupon is used; if a
/// release or the expiry won, every confirm was refused and it is available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirms_releases_and_expiries_racing_on_one_hold_end_it_exactly_once() {
    const N: usize = 30;
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "order service").await;
    let held = holders(&app, N).await;
    for (i, (token, coupon)) in held.iter().enumerate() {
        // A third run out while the race is on.
        let ttl = if i % 3 == 0 { 1 } else { 600 };
        let order =
            json!({"order_id": format!("order-{i}"), "order_amount": 42_000, "ttl_secs": ttl});
        let r = app
            .post_json(&path(coupon, "reserve"), Some(token), &order)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The 1 s holds run out now: their confirms and releases race the
    // expiry round; the others race each other. A quarter of the holds get
    // only confirms and a quarter only releases, so both kinds surely win
    // somewhere whatever the scheduling; the other half get both, one kind
    // ahead (the other follows 0 to 24 ms later: some photo finishes).
    app.clock.advance(Duration::from_secs(2));
    let mut tasks = Vec::new();
    for (i, (token, coupon)) in held.iter().enumerate() {
        for attempt in 0..6 {
            let (client, base) = (app.client.clone(), app.base.clone());
            let confirm = match i % 4 {
                0 => true,
                1 => false,
                _ => (attempt + i) % 2 == 0,
            };
            let (who, action) = if confirm {
                (key.clone(), "confirm")
            } else {
                (token.clone(), "release")
            };
            let url = format!("{base}{}", path(coupon, action));
            let ahead = confirm == (i % 2 == 0);
            tasks.push(tokio::spawn(async move {
                if !ahead {
                    tokio::time::sleep(Duration::from_millis((i as u64 * 7) % 25)).await;
                }
                let r = client
                    .post(url)
                    .bearer_auth(who)
                    .json(&json!({"order_id": format!("order-{i}")}))
                    .send()
                    .await
                    .unwrap();
                (i, action, r.status())
            }));
        }
    }
    let mut confirmed = [false; N];
    let mut released = [false; N];
    for t in tasks {
        let (i, action, status) = t.await.unwrap();
        match (action, status) {
            ("confirm", StatusCode::OK) => confirmed[i] = true,
            ("release", StatusCode::OK) => released[i] = true,
            (_, StatusCode::CONFLICT) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    for (i, (token, coupon)) in held.iter().enumerate() {
        assert!(
            !(confirmed[i] && released[i]),
            "hold {i} was both confirmed and released"
        );
        // Wait out the expiry round for holds nobody ended.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            let s = wallet_status(&app, token, coupon).await["status"]
                .as_str()
                .unwrap()
                .to_owned();
            if s != "reserved" || tokio::time::Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let expected = if confirmed[i] { "used" } else { "available" };
        assert_eq!(
            status, expected,
            "hold {i}: confirmed={} released={}",
            confirmed[i], released[i]
        );
    }
    assert!(confirmed.iter().any(|&c| c), "some confirm won a race");
    assert!(released.iter().any(|&r| r), "some release won a race");
}

#[tokio::test]
async fn bad_reservation_requests_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (key_id, key) = service_key(&app, "order service").await;
    let (token, coupon) = holders(&app, 1).await.remove(0);
    let (_, stranger) = app.signup("stranger@example.com").await;
    let reserve = path(&coupon, "reserve");
    for (bad, field) in [
        (
            json!({"order_id": "o", "order_amount": 42_000, "ttl_secs": 0}),
            "ttl_secs",
        ),
        (
            json!({"order_id": "o", "order_amount": 42_000, "ttl_secs": 86_401}),
            "ttl_secs",
        ),
        (
            json!({"order_id": "o", "order_amount": 42_000, "ttl_secs": "soon"}),
            "ttl_secs",
        ),
        (json!({"order_id": "", "order_amount": 42_000}), "order_id"),
        (
            json!({"order_id": "x".repeat(129), "order_amount": 42_000}),
            "order_id",
        ),
        (
            json!({"order_id": "a\nb", "order_amount": 42_000}),
            "order_id",
        ),
        (json!({"order_id": "o", "order_amount": -1}), "order_amount"),
        (
            json!({"order_id": "o", "order_amount": 42_000, "coupon": "x"}),
            "coupon",
        ),
    ] {
        let r = app.post_json(&reserve, Some(&token), &bad).await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(message.contains(field), "{bad}: {message}");
    }
    let order = json!({"order_id": "o", "order_amount": 42_000});
    let r = app
        .post_json(
            &reserve,
            Some(&token),
            &json!({"order_id": "o", "order_amount": 10_000}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "below_min_order").await;
    let r = app.post_json(&reserve, Some(&stranger), &order).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = app
        .post_json(&path(&unknown, "reserve"), Some(&key), &order)
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post_json(
            &path(&unknown, "confirm"),
            Some(&key),
            &json!({"order_id": "o"}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.post_json(&reserve, None, &order).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // A deleted key is refused at once.
    delete_key(&app, &key_id).await;
    let r = app.post_json(&reserve, Some(&key), &order).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        wallet_status(&app, &token, &coupon).await["status"],
        "available",
        "nothing was held"
    );
}

/// The admin console's per-campaign checkout numbers: held for an order,
/// and used, from the record.
#[tokio::test]
async fn the_dashboard_counts_reserved_and_used_coupons() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "order service").await;
    let held = holders(&app, 3).await;
    let campaign = wallet_status(&app, &held[0].0, &held[0].1).await["campaign_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let counts = || async {
        let r = app
            .get(
                &format!("/api/v1/admin/campaigns/{campaign}/stats"),
                Some(&app.admin),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let b = body(r).await;
        (
            b["checkout"]["reserved"].as_i64(),
            b["checkout"]["used"].as_i64(),
        )
    };
    assert_eq!(counts().await, (Some(0), Some(0)));
    for (i, (token, coupon)) in held.iter().take(2).enumerate() {
        let order = json!({"order_id": format!("o-{i}"), "order_amount": 42_000});
        let r = app
            .post_json(&path(coupon, "reserve"), Some(token), &order)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (token, coupon) = &held[2];
    let order = json!({"order_id": "o-2", "order_amount": 42_000});
    let r = app
        .post_json(&path(coupon, "use"), Some(token), &order)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(counts().await, (Some(2), Some(1)));
    let r = app
        .post_json(
            &path(&held[0].1, "confirm"),
            Some(&key),
            &json!({"order_id": "o-0"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_json(
            &path(&held[1].1, "release"),
            Some(&held[1].0),
            &json!({"order_id": "o-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(counts().await, (Some(0), Some(2)));
}
