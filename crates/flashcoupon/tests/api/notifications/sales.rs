//! "Notify me" for a time sale: subscribers hear it opens soon, opened and
//! sold out, once each, stepped through with the test clock; the shop's
//! endpoints hear it opened and sold out.

use super::webhooks::{Receiver, loopback, register};
use super::*;
use crate::sales::{create_sale, order};

async fn toggle(
    app: &TestApp,
    method: reqwest::Method,
    sale: &str,
    token: &str,
) -> reqwest::Response {
    app.client
        .request(
            method,
            app.url(&format!("/api/v1/sales/{sale}/subscription")),
        )
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn sale_kinds(inbox: &Value) -> Vec<String> {
    inbox["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .filter(|t| t.starts_with("sale."))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn sale_subscribers_hear_opening_soon_opened_and_sold_out_once_each() {
    // The background scheduler is slowed down: the test runs each pass itself.
    let app = spawn_app_with(|s| {
        s.scheduler_tick_ms = 3_600_000;
        s.webhook_allow = loopback();
    })
    .await;
    let receiver = Receiver::default();
    let url = receiver.clone().start(false).await;
    register(
        &app,
        json!({"url": url, "events": ["sale.opened", "sale.sold_out"]}),
    )
    .await;
    let opens = app.clock.now().plus_millis(3_600_000);
    let sale = create_sale(
        &app,
        json!({
            "total_quantity": 2,
            "starts_at": rfc3339(opens),
            "ends_at": rfc3339(opens.plus_millis(3_600_000)),
        }),
    )
    .await;
    let id = sale["id"].as_str().unwrap();
    let (_, fan) = app.signup("fan@example.com").await;
    let (_, other) = app.signup("other@example.com").await;

    // Subscribing is idempotent and says so; others are not subscribed.
    for _ in 0..2 {
        let r = toggle(&app, reqwest::Method::PUT, id, &fan).await;
        assert_eq!(r.status(), StatusCode::OK);
        let b = body(r).await;
        assert_eq!(b["sale_id"], id);
        assert_eq!(b["subscribed"], true);
        assert!(b["subscribed_at"].is_string(), "{b}");
    }
    let r = toggle(&app, reqwest::Method::GET, id, &other).await;
    assert_eq!(body(r).await["subscribed"], false);
    let mut ws = ws_connect(&app.base, &fan).await;
    let notifier = app.state.notifier.clone();

    // 11 minutes before opening: nothing yet (the lead is 10 minutes).
    app.clock.advance(Duration::from_secs(49 * 60));
    notifier.tick(app.clock.now(), false).await.unwrap();
    assert!(sale_kinds(&inbox(&app, &fan, "").await).is_empty());

    // 9 minutes before: opening soon, once however many passes run.
    app.clock.advance(Duration::from_secs(2 * 60));
    notifier.tick(app.clock.now(), false).await.unwrap();
    notifier.tick(app.clock.now(), false).await.unwrap();
    let soon = next_of(&mut ws, "sale.opening_soon").await;
    assert_eq!(soon["data"]["sale_id"], id);
    assert_eq!(soon["data"]["sale_name"], sale["name"]);
    assert_eq!(soon["data"]["starts_at"], sale["starts_at"]);

    // Opening time: opened, once.
    app.clock.advance(Duration::from_secs(9 * 60 + 1));
    notifier.tick(app.clock.now(), false).await.unwrap();
    notifier.tick(app.clock.now(), false).await.unwrap();
    let opened = next_of(&mut ws, "sale.opened").await;
    assert_eq!(opened["data"]["sale_id"], id);

    // Two buyers take both units: sold out, once, with the numbers.
    for who in ["b1@example.com", "b2@example.com"] {
        let (_, buyer) = app.signup(who).await;
        assert_eq!(
            order(&app, id, &buyer, None).await.status(),
            StatusCode::CREATED
        );
    }
    notifier.tick(app.clock.now(), false).await.unwrap();
    notifier.tick(app.clock.now(), false).await.unwrap();
    let sold_out = next_of(&mut ws, "sale.sold_out").await;
    assert_eq!(sold_out["data"]["sale_id"], id);
    assert_eq!(sold_out["data"]["total_quantity"], 2);
    assert_eq!(sold_out["data"]["sold_count"], 2);

    let kinds = sale_kinds(&inbox_until(&app, &fan, |b| sale_kinds(b).len() >= 3).await);
    assert_eq!(
        kinds,
        ["sale.sold_out", "sale.opened", "sale.opening_soon"],
        "newest first, once each"
    );
    assert!(sale_kinds(&inbox(&app, &other, "").await).is_empty());

    // The shop's endpoint heard the opening and the sell-out, once each.
    let seen = receiver.wait_for(2).await;
    let mut types: Vec<String> = seen
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["sale.opened", "sale.sold_out"]);
    notifier.tick(app.clock.now(), false).await.unwrap();
    assert_eq!(receiver.requests().len(), 2, "nothing twice");

    // Unsubscribing is idempotent; an unknown sale is 404.
    for _ in 0..2 {
        let r = toggle(&app, reqwest::Method::DELETE, id, &fan).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let r = toggle(&app, reqwest::Method::GET, id, &fan).await;
    assert_eq!(body(r).await["subscribed"], false);
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = toggle(&app, reqwest::Method::PUT, &unknown, &fan).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}
