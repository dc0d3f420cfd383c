//! Following one request (issue 18): its id and trace id in its answer's
//! headers and in every log line it causes, taken from the client when
//! sane (`X-Request-Id`, a W3C `traceparent`), made up otherwise.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn answers_carry_the_request_id_and_continue_the_callers_trace() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/api/v1/campaigns"))
        .header("x-request-id", "shop-order-77")
        .header("traceparent", PARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "shop-order-77");
    let next = r.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && next.ends_with("-01"),
        "{next}"
    );
    assert!(
        !next.contains("00f067aa0ba902b7"),
        "a span of our own: {next}"
    );

    // Errors too, and a forged id is replaced by a fresh one.
    let r = app
        .client
        .get(app.url("/api/v1/no-such-thing"))
        .header("x-request-id", "evil\"id, injected=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let parent = r.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        parent.contains(&id),
        "the made-up id is the trace id: {parent}"
    );
}

#[tokio::test]
async fn every_log_line_of_a_request_names_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("FLASHCOUPON_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("FLASHCOUPON_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("FLASHCOUPON_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,tower_http=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("flashcoupon listening on ")
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("x-request-id", "follow-me-1")
        .json(&serde_json::json!({"email": "nobody@example.com", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The request's start and end are logged in its span, as JSON lines
    // with its id (poll the file, bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ours = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let ours: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l: &serde_json::Value| l.to_string().contains("/api/v1/auth/login"))
            .collect();
        if ours.len() >= 2 || tokio::time::Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ours.len() >= 2, "the request's lines: {ours:?}");
    for l in &ours {
        assert_eq!(l["span"]["request_id"], "follow-me-1", "{l}");
        assert_eq!(
            l["span"]["trace_id"].as_str().map(str::len),
            Some(32),
            "{l}"
        );
    }
}
