//! Following one request into the broker (issue 18): the events a request
//! causes carry its `x-request-id` and the `traceparent` of its hop (the
//! one its answer carries); those a payment message causes carry the
//! message's; those nobody asked for carry none.

use lapin::types::{AMQPValue, FieldTable};
use reqwest::StatusCode;
use serde_json::json;

use super::{Got, TestBroker};
use crate::helpers::{body, spawn_app_with};
use crate::payments::{EVENTS, payment};
use crate::reservations::path;
use crate::sales::{create_sale, order};
use crate::service_keys::service_key;

/// The shop's trace, as its HTTP client and its message publisher send it.
const SHOP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const MESSAGE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const MESSAGE_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[tokio::test]
async fn events_carry_the_request_or_the_message_that_caused_them() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let (_, key) = service_key(&app, "shop").await;
    let campaign = app.create_campaign(json!({"total_quantity": 2})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let users = app.bulk_users("follow", 2).await;

    // A claim the shop names, in the shop's trace; another with no ids.
    let named = app
        .client
        .post(app.url(&format!("/api/v1/campaigns/{campaign}/issue")))
        .bearer_auth(&users[0].1)
        .header("x-request-id", "claim-1")
        .header("traceparent", PARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), StatusCode::CREATED);
    let named_hop = named.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(named_hop.starts_with(&format!("00-{SHOP_TRACE}-")) && named_hop != PARENT);
    let first = body(named).await["id"].as_str().unwrap().to_owned();
    let plain = app.issue(&campaign, &users[1].1, None).await;
    assert_eq!(plain.status(), StatusCode::CREATED);
    let plain_id = plain.headers()["x-request-id"].to_str().unwrap().to_owned();
    let plain_hop = plain.headers()["traceparent"].to_str().unwrap().to_owned();
    let second = body(plain).await["id"].as_str().unwrap().to_owned();

    // Both reserved, then paid: one by a message naming its own request,
    // one over HTTP by a request the shop names.
    for ((_, token), (coupon, order)) in users
        .iter()
        .zip([(&first, "order-1"), (&second, "order-2")])
    {
        let r = app
            .post_json(
                &path(coupon, "reserve"),
                Some(token),
                &json!({"order_id": order, "order_amount": 42_000, "ttl_secs": 600}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let mut headers = FieldTable::default();
    headers.insert(
        "x-request-id".into(),
        AMQPValue::LongString("pay-message-1".into()),
    );
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(MESSAGE_PARENT.into()),
    );
    let paid = payment("pay-1", "payment.succeeded", "order-1").to_string();
    broker
        .send_with(&broker.payments(), paid.as_bytes(), headers)
        .await;
    let r = app
        .client
        .post(app.url(EVENTS))
        .bearer_auth(&key)
        .header("x-request-id", "pay-http-2")
        .json(&payment("pay-2", "payment.succeeded", "order-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let pay_hop = r.headers()["traceparent"].to_str().unwrap().to_owned();

    let got = broker
        .events_until(|all| {
            let n = |kind: &str| all.iter().filter(|g| g.routing_key == kind).count();
            n("coupon.issued") >= 2 && n("coupon.used") >= 2 && n("campaign.sold_out") >= 1
        })
        .await;
    let about = |kind: &str, coupon: &str| -> &Got {
        got.iter()
            .find(|g| g.routing_key == kind && g.json()["data"]["coupon_id"] == coupon)
            .unwrap_or_else(|| panic!("no {kind} for {coupon}: {got:?}"))
    };
    let ids = |g: &Got| (g.header("x-request-id"), g.header("traceparent"));

    // The claims, written by the group commit, name their requests.
    assert_eq!(
        ids(about("coupon.issued", &first)),
        (Some("claim-1".to_owned()), Some(named_hop))
    );
    assert_eq!(
        ids(about("coupon.issued", &second)),
        (Some(plain_id), Some(plain_hop))
    );
    // The message's payment continues the message's trace, with a hop of
    // its own; the HTTP payment names its request.
    let (id, parent) = ids(about("coupon.used", &first));
    assert_eq!(id.as_deref(), Some("pay-message-1"));
    let parent = parent.unwrap();
    assert!(
        parent.starts_with(&format!("00-{MESSAGE_TRACE}-")) && parent != MESSAGE_PARENT,
        "{parent}"
    );
    assert_eq!(
        ids(about("coupon.used", &second)),
        (Some("pay-http-2".to_owned()), Some(pay_hop))
    );
    // The sell-out is noticed by the platform, not asked for.
    let sold = got
        .iter()
        .find(|g| g.routing_key == "campaign.sold_out")
        .unwrap();
    assert_eq!(ids(sold), (None, None), "{sold:?}");
    broker.delete().await;
}

#[tokio::test]
async fn coupons_a_trigger_issues_later_carry_the_request_it_came_with() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    // Signed up before the welcome campaign exists: no welcome coupon.
    let (_, buyer) = app.signup("follow-buyer@example.com").await;
    let welcome = app
        .create_campaign(json!({"trigger": "signup", "total_quantity": 5}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let birthday = app
        .create_campaign(json!({"trigger": "custom:birthday", "total_quantity": 5}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A sign-up the shop names: its welcome coupon is issued by the
    // trigger runner, after the answer.
    let r = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("x-request-id", "signup-9")
        .json(&json!({"email": "follow-signup@example.com", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let user = body(r).await["user_id"].as_str().unwrap().to_owned();
    // A birthday message naming the shop's request.
    let mut headers = FieldTable::default();
    headers.insert(
        "x-request-id".into(),
        AMQPValue::LongString("birthday-msg-3".into()),
    );
    let message = json!({"event_id": "bday-follow", "name": "birthday", "user_id": user});
    broker
        .send_with(&broker.triggers(), message.to_string().as_bytes(), headers)
        .await;
    // A time-sale order paid by a message naming its request: the buyer's
    // first paid order, whose trigger row is written in the payment's own
    // commit (on SQLite, by the checkout's writer thread).
    let first_paid = app
        .create_campaign(json!({"trigger": "first_order_paid", "total_quantity": 5}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sale = create_sale(&app, json!({"per_user_limit": 1, "payment_ttl_secs": 600})).await;
    let ordered = body(order(&app, sale["id"].as_str().unwrap(), &buyer, None).await).await;
    let mut headers = FieldTable::default();
    headers.insert(
        "x-request-id".into(),
        AMQPValue::LongString("paid-msg-4".into()),
    );
    let paid = payment(
        "follow-paid",
        "payment.succeeded",
        ordered["id"].as_str().unwrap(),
    );
    broker
        .send_with(&broker.payments(), paid.to_string().as_bytes(), headers)
        .await;

    let got = broker
        .events_until(|all| {
            let issued = |campaign: &str| {
                all.iter().any(|g| {
                    g.routing_key == "coupon.issued" && g.json()["data"]["campaign_id"] == campaign
                })
            };
            issued(&welcome) && issued(&birthday) && issued(&first_paid)
        })
        .await;
    let issued_in = |campaign: &str| -> &Got {
        got.iter()
            .find(|g| {
                g.routing_key == "coupon.issued" && g.json()["data"]["campaign_id"] == campaign
            })
            .unwrap_or_else(|| panic!("no coupon.issued of {campaign}: {got:?}"))
    };
    assert_eq!(
        issued_in(&welcome).header("x-request-id").as_deref(),
        Some("signup-9")
    );
    assert_eq!(
        issued_in(&birthday).header("x-request-id").as_deref(),
        Some("birthday-msg-3")
    );
    assert_eq!(
        issued_in(&first_paid).header("x-request-id").as_deref(),
        Some("paid-msg-4")
    );
    broker.delete().await;
}
