//! Following one request (issue 18): its id and trace id in its answer's
//! headers and in every log line it causes, taken from the client when
//! sane (`X-Request-Id`, a W3C `traceparent`), made up otherwise.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app, start_binary};

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
    let (mut child, base) = start_binary(
        Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("FLASHCOUPON_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("FLASHCOUPON_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("FLASHCOUPON_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,tower_http=debug")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
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

/// A stand-in OpenTelemetry collector: keeps every OTLP/HTTP body posted to
/// `/v1/traces`.
async fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.to_vec());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), bodies)
}

/// The 16 or 8 bytes a hex id stands for (as OTLP's protobuf carries them).
fn id_bytes(hex_id: &str) -> Vec<u8> {
    hex::decode(hex_id).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// Two threads: the collector must answer while the test waits for the
// server to exit (a blocking wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_otlp_endpoint_each_request_is_a_span_in_the_callers_trace() {
    let (endpoint, bodies) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start_binary(
        Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--otlp-endpoint",
                &endpoint,
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("FLASHCOUPON_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("FLASHCOUPON_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stderr(Stdio::null()),
    );
    let client = reqwest::Client::new();
    // One request in the shop's trace, one that begins a trace of its own.
    let joined = client
        .get(format!("{base}/api/v1/campaigns"))
        .header("traceparent", PARENT)
        .send()
        .await
        .unwrap();
    let hop = joined.headers()["traceparent"].to_str().unwrap().to_owned();
    let fresh = client
        .get(format!("{base}/api/v1/campaigns"))
        .send()
        .await
        .unwrap();
    let own = fresh.headers()["traceparent"].to_str().unwrap().to_owned();
    let own_id = fresh.headers()["x-request-id"].to_str().unwrap().to_owned();
    // A clean stop sends the spans still queued.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "a clean exit");

    let all: Vec<u8> = bodies.lock().unwrap().concat();
    assert!(!all.is_empty(), "nothing reached the collector");
    let part = |tp: &str, i: usize| tp.split('-').nth(i).unwrap().to_owned();
    // The first: the shop's trace id, its span as the parent, and our
    // span's id is the hop the answer named.
    assert_eq!(part(&hop, 1), "4bf92f3577b34da6a3ce929d0e0e4736");
    for id in [part(&hop, 1), "00f067aa0ba902b7".to_owned(), part(&hop, 2)] {
        assert!(contains(&all, &id_bytes(&id)), "{id} not exported");
    }
    // The second: the trace the exporter began is the one the answer and
    // the request id name, and it is sampled.
    assert_eq!(part(&own, 1), own_id, "no client id: the trace names it");
    assert_eq!(part(&own, 3), "01", "{own}");
    for id in [part(&own, 1), part(&own, 2)] {
        assert!(contains(&all, &id_bytes(&id)), "{id} not exported");
    }
    assert!(
        contains(&all, b"flashcoupon"),
        "the service is named in the resource"
    );
}

#[test]
fn a_bad_otlp_endpoint_is_refused_at_start() {
    for bad in [
        "localhost:4318",
        "ftp://collector",
        "http://collector:4318/?x=1",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
            .args(["serve", "--listen", "127.0.0.1:0", "--otlp-endpoint", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} was taken");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--otlp-endpoint"), "{bad}: {err}");
    }
}
