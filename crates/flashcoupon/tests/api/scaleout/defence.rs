//! The record as the last line of defence: PostgreSQL refuses what a broken
//! gate would admit, a written-off claim never lands, a gate out of step
//! with the record is rebuilt.

use super::*;

#[tokio::test]
async fn postgres_refuses_what_a_broken_gate_would_admit() {
    use sqlx::Connection;
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let app = &instances(&settings, 1).await[0];
    let c = app
        .create_campaign(json!({"total_quantity": 2, "per_user_limit": 1}))
        .await;
    let campaign = c["id"].as_str().unwrap();
    let (user, _) = app.signup("victim@example.com").await;
    let (other, _) = app.signup("other@example.com").await;
    let mut db = sqlx::PgConnection::connect(app.postgres.as_deref().unwrap())
        .await
        .unwrap();
    let insert = |id: &str, user: &str, seq: i64, user_seq: i64| {
        format!(
            "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, issued_at, valid_from, valid_until) \
             VALUES ('{id}', '{campaign}', '{user}', {seq}, {user_seq}, 1, 1, 2)"
        )
    };
    sqlx::query(&insert("a", &user, 2, 1))
        .execute(&mut db)
        .await
        .expect("a valid coupon");
    for (what, sql) in [
        ("seq above the stock", insert("b", &other, 3, 1)),
        ("a repeated seq", insert("c", &other, 2, 1)),
        ("user_seq above the limit", insert("d", &other, 1, 2)),
        ("a user slot twice", insert("e", &user, 1, 1)),
    ] {
        assert!(
            sqlx::query(&sql).execute(&mut db).await.is_err(),
            "PostgreSQL accepted {what}"
        );
    }
    // The bounds are checked per statement (migration 20): a batch with one
    // row out of bounds is refused whole, as a constraint, and its good row
    // is not there either.
    let batch = format!(
        "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, issued_at, valid_from, valid_until) \
         VALUES ('f', '{campaign}', '{other}', 1, 1, 1, 1, 2), ('g', '{campaign}', '{other}', 3, 2, 1, 1, 2)"
    );
    let refused = sqlx::query(&batch).execute(&mut db).await.unwrap_err();
    let code = refused
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("23514"), "{refused}");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupons WHERE id IN ('f', 'g')")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing of the refused batch landed");
    assert!(
        sqlx::query(&format!(
            "UPDATE campaigns SET total_quantity = 1 WHERE id = '{campaign}'"
        ))
        .execute(&mut db)
        .await
        .is_err(),
        "stock below an issued seq"
    );
}

#[tokio::test]
async fn a_claim_the_reconciler_wrote_off_can_never_land_later() {
    use flashcoupon::domain::ids::{CampaignId, CouponId, UserId};
    use flashcoupon::domain::timestamp::Timestamp;
    use flashcoupon::store::NewCouponRow;
    use sqlx::Connection;
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let app = &instances(&settings, 1).await[0];
    let campaign: CampaignId = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (user, _) = app.signup("late@example.com").await;
    let mut db = sqlx::PgConnection::connect(app.postgres.as_deref().unwrap())
        .await
        .unwrap();
    let (epoch,): (i64,) = sqlx::query_as("SELECT gate_epoch FROM campaigns WHERE id = $1")
        .bind(campaign.to_string())
        .fetch_one(&mut db)
        .await
        .unwrap();
    // An instance admitted this claim, then stalled before its commit; the
    // reconciler judged it lost and gave its stock back.
    let id = CouponId::generate();
    let landed = app
        .state
        .store
        .resolve_stale(campaign, &[(1, id)])
        .await
        .unwrap();
    assert!(landed.is_empty());
    // The stalled writer wakes up and commits its batch.
    let row = NewCouponRow {
        id,
        campaign_id: campaign,
        user_id: user.parse::<UserId>().unwrap(),
        seq: 1,
        user_seq: 1,
        idempotency_key: None,
        issued_at: Timestamp(1),
        valid_from: Timestamp(1),
        valid_until: Timestamp(2),
        gate_epoch: epoch as u64,
        code: None,
        trace: None,
    };
    let mut writer = app.state.store.writer(false).await.unwrap();
    let written = writer.insert(&[&row]).await.unwrap();
    assert!(written.is_empty(), "the written-off claim is skipped");
    assert!(app.record_coupon(&id.to_string()).await.is_none());
}

#[tokio::test]
async fn a_gate_out_of_step_with_the_record_is_refused_and_rebuilt() {
    use sqlx::Connection;
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let app = &instances(&settings, 1).await[0];
    let c = app
        .create_campaign(json!({"total_quantity": 5, "per_user_limit": 1}))
        .await;
    let campaign = c["id"].as_str().unwrap();
    // Seq 1 lands in the record behind the gate's back (as if Redis came back
    // from an old snapshot that predates it).
    let (ghost, _) = app.signup("ghost@example.com").await;
    let mut db = sqlx::PgConnection::connect(app.postgres.as_deref().unwrap())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, issued_at, valid_from, valid_until) \
         VALUES ($3, $1, $2, 1, 1, 1, 1, 2)",
    )
    .bind(campaign)
    .bind(&ghost)
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&mut db)
    .await
    .unwrap();
    let rebuilds = app.state.metrics.gate_rebuilds.get();
    let (_, token) = app.signup("shopper@example.com").await;
    // The gate offers seq 1 again: the record refuses it, the answer is 503,
    // never 201, and the gate is dropped to be rebuilt from the record.
    let r = app.issue(campaign, &token, Some("k")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = app.issue(campaign, &token, Some("k")).await;
    let status = r.status();
    let coupon = body(r).await;
    assert_eq!(status, StatusCode::CREATED, "healed by a rebuild: {coupon}");
    assert_eq!(coupon["seq"], 2);
    assert!(app.state.metrics.gate_rebuilds.get() > rebuilds);
    let view = body(
        app.get(&format!("/api/v1/campaigns/{campaign}"), None)
            .await,
    )
    .await;
    assert_eq!(
        (
            view["issued_count"].as_u64(),
            view["remaining_quantity"].as_u64()
        ),
        (Some(2), Some(3))
    );
}
