//! `spawn_app()`: a real server on port 0 over fresh storage of its own, plus
//! small request helpers. Every test gets its own. (Over 400 lines: it is
//! the one harness of both modes, and splitting it would scatter it.)
//!
//! The mode comes from `FLASHCOUPON_TEST_MODE`: unset or `embedded`, a
//! SQLite data dir; `scale-out`, a PostgreSQL schema and a Redis key prefix
//! of the test's own (the real servers; `scripts/test.sh` runs the suite in
//! both modes).

use std::time::Duration;

use flashcoupon::app::Application;
use flashcoupon::clock::Clock;
use flashcoupon::settings::Settings;
use flashcoupon::state::AppState;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, SqliteConnection};

pub const ADMIN_EMAIL: &str = "admin@flashcoupon.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Clock,
    pub state: AppState,
    pub admin: String,
    pub dir: tempfile::TempDir,
    /// Scale-out: the record's URL (with the test's schema).
    pub postgres: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// One coupon as the record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub id: String,
    pub user_id: String,
    pub seq: i64,
    pub user_seq: i64,
    pub status: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Which storage the suite runs against.
pub fn scale_out() -> bool {
    match std::env::var("FLASHCOUPON_TEST_MODE").as_deref() {
        Ok("scale-out") => true,
        Ok("embedded") | Err(_) => false,
        Ok(other) => panic!("FLASHCOUPON_TEST_MODE={other:?}: expected embedded or scale-out"),
    }
}

pub const JWT_SECRET: &str = "scale-out-test-secret-0123456789abcdef";

pub fn redis_url() -> String {
    std::env::var("FLASHCOUPON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The database the scale-out tests make their schemas in.
pub fn postgres_base() -> String {
    std::env::var("FLASHCOUPON_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/flashcoupon_test".into())
}

/// A fresh PostgreSQL schema; returns a URL whose connections use it.
pub async fn fresh_postgres() -> String {
    let base = postgres_base();
    let mut conn = match PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(_) => {
            // First use on this server: create the database.
            let (server, db) = base.rsplit_once('/').expect("a database in the URL");
            let mut admin = PgConnection::connect(&format!("{server}/postgres"))
                .await
                .expect("PostgreSQL is reachable (scripts/test.sh starts it)");
            let _ = sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await;
            PgConnection::connect(&base)
                .await
                .expect("the test database")
        }
    };
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create a schema");
    format!("{base}?options=-c%20search_path%3D{schema}")
}

/// Point `settings` at fresh scale-out storage of its own.
pub async fn use_scale_out(settings: &mut Settings) {
    settings.postgres_url = Some(fresh_postgres().await);
    settings.redis_url = Some(redis_url());
    settings.redis_prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    settings.jwt_secret = Some(JWT_SECRET.into());
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_data_dir(dir.path());
    if scale_out() {
        use_scale_out(&mut settings).await;
    }
    settings.admin_email = Some(ADMIN_EMAIL.into());
    settings.admin_password = Some(ADMIN_PASSWORD.into());
    configure(&mut settings);
    spawn_instance(&settings, dir).await
}

/// Start one instance from complete settings (several may share storage).
pub async fn spawn_instance(settings: &Settings, dir: tempfile::TempDir) -> TestApp {
    let clock = Clock::default();
    let app = Application::build(settings, clock.clone())
        .await
        .expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let state = app.state();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let mut app = TestApp {
        base,
        client,
        clock,
        state,
        admin: String::new(),
        dir,
        postgres: settings.postgres_url.clone(),
        stop: Some(stop),
        server: Some(server),
    };
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "the start-up admin can log in"
    );
    app.admin = body(login).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    app
}

pub async fn body(r: Response) -> Value {
    let status = r.status();
    let text = r.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
}

/// Assert the status and the API.md error code, and return the message.
pub async fn assert_error(r: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status, "status");
    let b = body(r).await;
    assert_eq!(b["error"]["code"], code, "error code in {b}");
    b["error"]["message"].as_str().expect("message").to_owned()
}

pub fn rfc3339(ts: flashcoupon::domain::timestamp::Timestamp) -> String {
    ts.to_string()
}

impl TestApp {
    /// Shut the server down gracefully, as `flashcoupon serve` does on SIGTERM
    /// (open sockets are dropped), and wait until its storage is closed.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(20), &mut server)
                .await
                .is_err()
        {
            server.abort();
            panic!("the server did not stop within 20 s");
        }
    }

    /// Settings for another instance over this one's storage (the same data
    /// dir, or the same PostgreSQL schema with a fresh Redis prefix, whose
    /// gate is rebuilt from the record).
    pub fn same_storage(&self) -> Settings {
        let mut settings = Settings::for_data_dir(self.dir.path());
        if let Some(postgres) = &self.postgres {
            settings.postgres_url = Some(postgres.clone());
            settings.redis_url = Some(redis_url());
            settings.redis_prefix = format!("t{}", uuid::Uuid::now_v7().simple());
            settings.jwt_secret = Some(JWT_SECRET.into());
        }
        settings.admin_email = Some(ADMIN_EMAIL.into());
        settings.admin_password = Some(ADMIN_PASSWORD.into());
        settings
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, b: &Value) -> Response {
        let mut req = self.client.post(self.url(path)).json(b);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, b: &Value) -> Response {
        let mut req = self.client.patch(self.url(path)).json(b);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// Sign up a shopper; returns (user_id, token).
    pub async fn signup(&self, email: &str) -> (String, String) {
        let r = self
            .post_json(
                "/api/v1/auth/signup",
                None,
                &json!({"email": email, "password": "password-123"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let b = body(r).await;
        (
            b["user_id"].as_str().unwrap().to_owned(),
            b["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Many shoppers through the admin's bulk endpoint; returns (user_id, token) pairs.
    pub async fn bulk_users(&self, prefix: &str, count: usize) -> Vec<(String, String)> {
        let r = self
            .post_json(
                "/api/v1/admin/users/bulk",
                Some(&self.admin),
                &json!({"count": count, "email_prefix": prefix, "password": "password-123"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        body(r).await["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["user_id"].as_str().unwrap().to_owned(),
                    u["token"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// A campaign body that is open now; override fields with `extra`.
    pub fn campaign_body(&self, extra: Value) -> Value {
        let now = self.clock.now();
        let mut b = json!({
            "name": "Black Friday 5,000 off",
            "discount": {"type": "fixed", "amount": 5000},
            "min_order_amount": 30000,
            "total_quantity": 100,
            "per_user_limit": 1,
            "issue_starts_at": rfc3339(now.plus_millis(-60_000)),
            "issue_ends_at": rfc3339(now.plus_millis(3_600_000)),
            "valid_days": 30
        });
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    }

    /// Create a campaign (as admin) and return its JSON.
    pub async fn create_campaign(&self, extra: Value) -> Value {
        let r = self
            .post_json(
                "/api/v1/campaigns",
                Some(&self.admin),
                &self.campaign_body(extra),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        body(r).await
    }

    pub async fn issue(&self, campaign: &str, token: &str, key: Option<&str>) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/api/v1/campaigns/{campaign}/issue")))
            .bearer_auth(token);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("request")
    }

    /// A read-only look at the SQLite record itself, bypassing the API.
    pub async fn db(&self) -> SqliteConnection {
        let url = format!(
            "sqlite://{}?mode=ro",
            self.dir.path().join("flashcoupon.db").display()
        );
        SqliteConnection::connect(&url)
            .await
            .expect("open the database")
    }

    /// Run one statement on the record behind the API's back (SQLite or
    /// PostgreSQL, whichever this app writes to): how a test plays an
    /// operator editing the database.
    pub async fn execute(&self, sql: &str) {
        self.try_execute(sql).await.expect("statement");
    }

    /// [`TestApp::execute`], answering the record's refusal instead of
    /// panicking on it: the rows changed, or the database's message.
    pub async fn try_execute(&self, sql: &str) -> Result<u64, String> {
        let done = match &self.postgres {
            Some(url) => {
                let mut conn = PgConnection::connect(url).await.expect("PostgreSQL");
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .map(|r| r.rows_affected())
            }
            None => {
                let url = format!(
                    "sqlite://{}",
                    self.dir.path().join("flashcoupon.db").display()
                );
                let mut conn = SqliteConnection::connect(&url).await.expect("SQLite");
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .map(|r| r.rows_affected())
            }
        };
        done.map_err(|e| e.to_string())
    }

    /// The coupons of one campaign in the record, in `seq` order, read with
    /// plain SQL (SQLite or PostgreSQL, whichever this app writes to).
    pub async fn record(&self, campaign: &str) -> Vec<RecordRow> {
        self.record_where("campaign_id", campaign).await
    }

    /// One coupon from the record, if it is there.
    pub async fn record_coupon(&self, id: &str) -> Option<RecordRow> {
        self.record_where("id", id).await.pop()
    }

    async fn record_where(&self, column: &str, value: &str) -> Vec<RecordRow> {
        let sql = record_sql(column);
        let rows: Vec<RowTuple> = match &self.postgres {
            Some(url) => return pg_record(url, column, value).await,
            None => {
                let mut conn = self.db().await;
                sqlx::query_as(&sql).bind(value).fetch_all(&mut conn).await
            }
        }
        .expect("read the record");
        rows.into_iter().map(RecordRow::from).collect()
    }
}

type RowTuple = (String, String, i64, i64, String);

impl From<RowTuple> for RecordRow {
    fn from((id, user_id, seq, user_seq, status): RowTuple) -> Self {
        RecordRow {
            id,
            user_id,
            seq,
            user_seq,
            status,
        }
    }
}

fn record_sql(column: &str) -> String {
    format!(
        "SELECT id, user_id, seq, user_seq, status FROM coupons WHERE {column} = $1 ORDER BY seq"
    )
}

/// Coupons from a PostgreSQL record at `url` where `column = value`, in `seq` order.
pub async fn pg_record(url: &str, column: &str, value: &str) -> Vec<RecordRow> {
    let mut conn = PgConnection::connect(url).await.expect("PostgreSQL");
    let rows: Vec<RowTuple> = sqlx::query_as(&record_sql(column))
        .bind(value)
        .fetch_all(&mut conn)
        .await
        .expect("read the record");
    rows.into_iter().map(RecordRow::from).collect()
}

/// Log in the start-up admin at `base`; returns the token.
pub async fn admin_token(client: &reqwest::Client, base: &str) -> String {
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    body(r).await["token"].as_str().unwrap().to_owned()
}

/// The value of a line of `base`'s `/metrics` (its name and labels, e.g.
/// `flashcoupon_gate_reconciled_total`), 0 if absent.
pub async fn metric_at(client: &reqwest::Client, base: &str, line: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Start the real binary (`cmd`, already given its arguments; its stderr
/// is the caller's, inherited unless set) with its stdout piped, and read
/// the URL from its "listening on" line.
pub fn start_binary(cmd: &mut std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start flashcoupon");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    let base = line
        .trim()
        .strip_prefix("flashcoupon listening on ")
        .expect("listening line")
        .to_owned();
    (child, base)
}

/// A Server-Sent Events response, read one event at a time.
pub struct Sse {
    pub response: Response,
    buffer: String,
}

impl Sse {
    pub fn new(response: Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event that carries data: its `event:` name and its JSON.
    /// Fails the test if none arrives within 15 s.
    pub async fn next(&mut self) -> (String, Value) {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(str::to_owned))
                };
                if let Some(data) = field("data: ") {
                    let event = field("event: ").unwrap_or_default();
                    return (event, serde_json::from_str(&data).unwrap());
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.response.chunk())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the stream is still open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
