//! Accounts and authentication.

use flashcoupon::app::Application;
use flashcoupon::clock::Clock;
use flashcoupon::domain::account::{Email, Role};
use flashcoupon::domain::ids::UserId;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, assert_error, body, spawn_app, spawn_app_with};

#[tokio::test]
async fn signup_returns_a_user_id_and_a_working_token() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": "Kim@Example.com", "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = body(r).await;
    let token = b["token"].as_str().unwrap();
    let wallet = app.get("/api/v1/me/coupons", Some(token)).await;
    assert_eq!(wallet.status(), StatusCode::OK);
    assert_eq!(body(wallet).await["coupons"], json!([]));
}

#[tokio::test]
async fn a_taken_email_is_409_email_taken_whatever_its_case() {
    let app = spawn_app().await;
    app.signup("kim@example.com").await;
    let r = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": "KIM@example.com", "password": "password-456"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn signup_rejects_short_passwords_and_bad_emails_by_field() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": "kim@example.com", "password": "1234567"}),
        )
        .await;
    assert!(
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input")
            .await
            .contains("password")
    );
    let r = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": "not-an-email", "password": "password-123"}),
        )
        .await;
    assert!(
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input")
            .await
            .contains("email")
    );
    let r = app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": "kim@example.com"}),
        )
        .await;
    assert!(
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input")
            .await
            .contains("password")
    );
    // Nothing was created: the address is still free.
    app.signup("kim@example.com").await;
}

#[tokio::test]
async fn login_returns_the_role() {
    let app = spawn_app().await;
    let (id, _) = app.signup("kim@example.com").await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "kim@example.com", "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r).await;
    assert_eq!(
        (b["user_id"].as_str().unwrap(), b["role"].as_str().unwrap()),
        (id.as_str(), "user")
    );
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(body(r).await["role"], "admin");
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_401_invalid_credentials() {
    let app = spawn_app().await;
    app.signup("kim@example.com").await;
    for (email, password) in [
        ("kim@example.com", "wrong-password"),
        ("nobody@example.com", "password-123"),
        ("garbage", "x"),
    ] {
        let r = app
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn missing_malformed_expired_forged_and_unsigned_tokens_are_401() {
    let app = spawn_app().await;
    let (id, _) = app.signup("kim@example.com").await;
    let user: UserId = id.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = app
        .state
        .tokens
        .issue_with_expiry(user, Role::User, 0, now - 7200, now - 3600);
    let forged =
        flashcoupon::auth::TokenKeys::new(&[42u8; 32], std::time::Duration::from_secs(60), "any")
            .issue(user, Role::Admin, 0);
    // {"alg":"none"} claiming to be an admin, without a signature.
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        base64_url(&format!(
            r#"{{"sub":"{id}","role":"admin","iat":0,"exp":9999999999}}"#
        ))
    );
    let r = app
        .client
        .get(app.url("/api/v1/me/coupons"))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for token in [
        "garbage",
        expired.as_str(),
        forged.as_str(),
        unsigned.as_str(),
    ] {
        let r = app.get("/api/v1/me/coupons", Some(token)).await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let r = app
        .client
        .get(app.url("/api/v1/me/coupons"))
        .header("Authorization", "Basic a2ltOnB3")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

fn base64_url(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn a_shopper_token_on_an_admin_route_is_403() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let r = app
        .post_json(
            "/api/v1/campaigns",
            Some(&token),
            &app.campaign_body(json!({})),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_json(
            "/api/v1/admin/users/bulk",
            Some(&token),
            &json!({"count": 1, "email_prefix": "x", "password": "password-123"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn bulk_users_are_created_all_or_none_and_can_log_in() {
    let app = spawn_app().await;
    let users = app.bulk_users("load", 50).await;
    assert_eq!(users.len(), 50);
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "load-50@bulk.invalid", "password": "password-123"}),
        )
        .await;
    assert_eq!(body(r).await["user_id"].as_str().unwrap(), users[49].0);
    // One clash refuses the whole batch.
    app.signup("mixed-3@bulk.invalid").await;
    let r = app
        .post_json(
            "/api/v1/admin/users/bulk",
            Some(&app.admin),
            &json!({"count": 5, "email_prefix": "mixed", "password": "password-123"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "email_taken").await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "mixed-1@bulk.invalid", "password": "password-123"}),
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    for bad in [
        json!({"count": 0, "email_prefix": "a", "password": "password-123"}),
        json!({"count": 10001, "email_prefix": "a", "password": "password-123"}),
        json!({"count": 1, "email_prefix": "a b", "password": "password-123"}),
    ] {
        let r = app
            .post_json("/api/v1/admin/users/bulk", Some(&app.admin), &bad)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
}

#[tokio::test]
async fn too_many_logins_from_one_address_are_429_with_retry_after() {
    let app = spawn_app_with(|s| s.auth_rate_per_ip = 1).await;
    // Three at once against a burst of two, so at least one is refused
    // however slowly the box hashes (one after another, each waiting for
    // its Argon2 on a loaded machine, the bucket could refill between).
    let wrong = json!({"email": "nobody@example.com", "password": "password-123"});
    let login = || app.post_json("/api/v1/auth/login", None, &wrong);
    let mut statuses = Vec::new();
    for r in futures::future::join_all((0..3).map(|_| login())).await {
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                r.headers().get("retry-after").is_some(),
                "Retry-After is set"
            );
            assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn start_up_never_makes_an_admin_of_an_account_somebody_else_signed_up_with() {
    let mut app = spawn_app().await;
    // Somebody signs up with the e-mail the operator is about to configure.
    let (squatter, _) = app.signup("boss@example.com").await;
    app.stop().await;

    let mut settings = app.same_storage();
    settings.admin_email = Some("boss@example.com".into());
    settings.admin_password = Some("the-operators-password".into());
    let refused = Application::build(&settings, Clock::default())
        .await
        .expect_err("start-up refuses to promote the account");
    let why = format!("{refused:#}");
    assert!(
        why.contains("not an admin") && why.contains("admin create"),
        "the message says what to do: {why}"
    );

    // The record is untouched: still a shopper, with the squatter's password.
    let again = Application::build(&app.same_storage(), Clock::default())
        .await
        .expect("starts with the usual admin");
    let account = again
        .state()
        .store
        .find_user_by_email(&Email::parse("boss@example.com").unwrap())
        .await
        .unwrap()
        .expect("still there");
    assert_eq!(account.id.to_string(), squatter);
    assert_eq!(account.role, Role::User);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_sign_in_limit_counts_each_forwarded_client() {
    let login = async |app: &crate::helpers::TestApp, forwarded: &str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": "nobody@example.com", "password": "password-123"}))
            .send()
            .await
            .unwrap()
            .status()
    };
    // The test client is 127.0.0.1: trusted here, so each forwarded client
    // has its own burst of two.
    let proxied = spawn_app_with(|s| {
        s.auth_rate_per_ip = 1;
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for i in 0..4 {
        let status = login(&proxied, &format!("203.0.113.{i}")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "client {i} is not limited"
        );
    }
    let statuses: Vec<StatusCode> =
        futures::future::join_all((0..3).map(|_| login(&proxied, "198.51.100.7"))).await;
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    // Not trusted: the header is the client's to forge, and ignored.
    let direct = spawn_app_with(|s| s.auth_rate_per_ip = 1).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(login(&direct, &format!("203.0.113.{i}")).await);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_token_signed_with_the_same_secret_for_another_record_is_401() {
    let secret = "one-secret-shared-by-two-records-0123456789";
    let here = spawn_app_with(|s| s.jwt_secret = Some(secret.into())).await;
    let there = spawn_app_with(|s| s.jwt_secret = Some(secret.into())).await;
    let (_, token) = there.signup("elsewhere@example.com").await;
    assert_eq!(
        there.get("/api/v1/me/coupons", Some(&token)).await.status(),
        StatusCode::OK
    );
    let r = here.get("/api/v1/me/coupons", Some(&token)).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn a_password_reset_or_promotion_revokes_the_tokens_issued_before_it() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    assert_eq!(
        app.get("/api/v1/me/coupons", Some(&token)).await.status(),
        StatusCode::OK
    );
    // `flashcoupon admin create --email kim@example.com`: promoted, with a
    // new password.
    let hash = flashcoupon::auth::hash_password("a-new-password-9").unwrap();
    app.state
        .store
        .upsert_admin(
            &Email::parse("kim@example.com").unwrap(),
            &hash,
            Some(&hash),
            app.clock.now(),
        )
        .await
        .unwrap();
    // Every instance polls the record for revocations: the old token stops
    // working within a poll.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = app.get("/api/v1/me/coupons", Some(&token)).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A token issued after the reset works, and carries the new role.
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "kim@example.com", "password": "a-new-password-9"}),
        )
        .await;
    let fresh = body(r).await;
    assert_eq!(fresh["role"], "admin");
    let fresh = fresh["token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/admin/webhooks", Some(fresh))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_admin_route_asks_the_record_not_only_the_token() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/api/v1/admin/webhooks", Some(&app.admin))
            .await
            .status(),
        StatusCode::OK
    );
    app.execute(&format!(
        "UPDATE users SET role = 'user' WHERE email = '{ADMIN_EMAIL}'"
    ))
    .await;
    let r = app.get("/api/v1/admin/webhooks", Some(&app.admin)).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}
