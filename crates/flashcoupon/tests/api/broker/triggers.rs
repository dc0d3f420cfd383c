//! Trigger events in, over the real broker (`flashcoupon.triggers`).

use serde_json::json;

use super::{TestBroker, metric, metric_reaches};
use crate::helpers::{body, spawn_app_with};

const APPLIED: &str = "flashcoupon_trigger_messages_total{result=\"applied\"}";
const REPEATS: &str = "flashcoupon_trigger_messages_total{result=\"repeat\"}";
const DEAD: &str = "flashcoupon_trigger_messages_total{result=\"dead_lettered\"}";

#[tokio::test]
async fn a_trigger_message_issues_once_and_poison_goes_to_its_dead_letter_queue() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let campaign = app
        .create_campaign(json!({"trigger": "custom:birthday", "per_user_limit": 2}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (user, token) = app.signup("birthday@example.com").await;
    let event = json!({"event_id": "bday-1", "name": "birthday", "user_id": user});
    for _ in 0..3 {
        broker
            .send_to(&broker.triggers(), event.to_string().as_bytes())
            .await;
    }
    broker.send_to(&broker.triggers(), b"{not json").await;
    let stranger = json!({"event_id": "bday-2", "name": "birthday",
        "user_id": uuid::Uuid::now_v7().to_string()});
    broker
        .send_to(&broker.triggers(), stranger.to_string().as_bytes())
        .await;
    metric_reaches(&app, APPLIED, 1.0).await;
    metric_reaches(&app, REPEATS, 2.0).await;
    metric_reaches(&app, DEAD, 2.0).await;
    assert_eq!(metric(&app, APPLIED).await, 1.0);

    let dead = broker.dead_letters_of(&broker.triggers_dead(), 2).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| d.header("x-flashcoupon-reason").unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not a trigger event")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("no such user")),
        "{reasons:?}"
    );
    assert!(
        dead.iter()
            .all(|d| d.header("x-flashcoupon-queue") == Some(broker.triggers())),
        "{dead:?}"
    );

    // One coupon, though the limit allows two and the event came three times.
    let mut coupons = 0;
    for _ in 0..400 {
        let r = app
            .get(&format!("/api/v1/campaigns/{campaign}/me"), Some(&token))
            .await;
        coupons = body(r).await["issued"].as_u64().unwrap();
        if coupons > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(coupons, 1);
    let r = app
        .get("/api/v1/trigger-events/bday-1", Some(&app.admin))
        .await;
    assert_eq!(body(r).await["source"], "amqp");
    assert_eq!(app.record(&campaign).await.len(), 1);
    broker.delete().await;
}
