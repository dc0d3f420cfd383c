//! Promise 7: the record is the last line of defence. Its constraints refuse
//! an over-issue or a limit breach whatever the gate says, and a coupon the
//! record refuses is never answered 201.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, SqliteConnection};

use crate::helpers::{TestApp, body, spawn_app_with};

async fn writer(app: &TestApp) -> SqliteConnection {
    let url = format!(
        "sqlite://{}",
        app.dir.path().join("flashcoupon.db").display()
    );
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn insert(
    conn: &mut SqliteConnection,
    campaign: &str,
    user: &str,
    seq: i64,
    user_seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, issued_at, valid_from, valid_until) \
         VALUES (?, ?, ?, ?, ?, 0, 0, 1)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(campaign)
    .bind(user)
    .bind(seq)
    .bind(user_seq)
    .execute(conn)
    .await
    .map(|_| ())
}

#[tokio::test]
async fn the_schema_refuses_seqs_beyond_the_stock_repeats_and_limit_breaches() {
    let app = spawn_app_with(|_| {}).await;
    let (user, _) = app.signup("kim@example.com").await;
    let id = app
        .create_campaign(json!({"total_quantity": 2, "per_user_limit": 1}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = writer(&app).await;
    insert(&mut conn, &id, &user, 1, 1)
        .await
        .expect("a coupon within bounds is accepted");
    let (other, _) = app.signup("lee@example.com").await;
    assert!(
        insert(&mut conn, &id, &other, 1, 1).await.is_err(),
        "UNIQUE (campaign_id, seq)"
    );
    assert!(
        insert(&mut conn, &id, &other, 3, 1).await.is_err(),
        "seq above total_quantity"
    );
    assert!(
        insert(&mut conn, &id, &other, 0, 1).await.is_err(),
        "seq below 1"
    );
    assert!(
        insert(&mut conn, &id, &user, 2, 1).await.is_err(),
        "UNIQUE (campaign_id, user_id, user_seq)"
    );
    assert!(
        insert(&mut conn, &id, &user, 2, 2).await.is_err(),
        "user_seq above per_user_limit"
    );
    assert!(
        insert(&mut conn, &id, "no-such-user", 2, 1).await.is_err(),
        "coupons belong to real users"
    );
    let shrink = sqlx::query("UPDATE campaigns SET total_quantity = 0 WHERE id = ?")
        .bind(&id)
        .execute(&mut conn)
        .await;
    assert!(shrink.is_err(), "stock cannot drop below an issued seq");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupons")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_coupon_the_record_refuses_is_answered_503_never_201() {
    let app = spawn_app_with(|s| s.claim_rate_per_user = 0).await;
    let users = app.bulk_users("refused", 20).await;
    let id = app.create_campaign(json!({"total_quantity": 100})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another writer takes seq 1 behind the gate's back: the gate and the
    // record now disagree, as they would if the gate were broken.
    let (intruder, _) = app.signup("intruder@example.com").await;
    insert(&mut writer(&app).await, &id, &intruder, 1, 1)
        .await
        .unwrap();

    let answers =
        futures::future::join_all(users.iter().map(|(_, t)| app.issue(&id, t, None))).await;
    let mut issued = Vec::new();
    let mut refused = 0;
    for r in answers {
        match r.status() {
            StatusCode::CREATED => issued.push(body(r).await),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body(r).await["error"]["code"], "unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        refused >= 1,
        "the claim that drew seq 1 was refused by the record"
    );
    assert!(
        issued.iter().all(|c| c["seq"] != 1),
        "no 201 carries the refused seq"
    );
    // Every 201 is in the record, and the refused claims' neighbours in the same batch went through.
    let mut db = app.db().await;
    for c in &issued {
        let row: Option<(i64,)> = sqlx::query_as("SELECT seq FROM coupons WHERE id = ?")
            .bind(c["id"].as_str().unwrap())
            .fetch_optional(&mut db)
            .await
            .unwrap();
        assert_eq!(row.map(|r| r.0), c["seq"].as_i64());
    }
    assert_eq!(issued.len() + refused, users.len());
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_its_files_are_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app_with(|s| s.data_dir = s.data_dir.join("private")).await;
    let dir = app.dir.path().join("private");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the data dir it created");
    for file in [
        "flashcoupon.db",
        "flashcoupon.db-wal",
        "flashcoupon.db-shm",
        "jwt_secret",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}
