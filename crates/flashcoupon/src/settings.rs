//! `Settings`: every knob of `flashcoupon serve`, each a flag that also reads
//! a `FLASHCOUPON_*` environment variable. The embedded mode needs none;
//! `--redis-url` with `--postgres-url` selects the scale-out mode.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// When a committed transaction is flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    /// fsync on every commit: a 201 survives `kill -9`, an OS crash and power loss.
    Full,
    /// fsync at checkpoints only (WAL `synchronous=NORMAL`): a 201 survives
    /// `kill -9` of the process, but an OS crash or power loss can lose the
    /// last commits. Faster; promise 3 as DESIGN.md words it still holds.
    Normal,
}

/// An address (`10.0.0.1`, a single host) or a block (`10.0.0.0/8`).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR block"))
}

/// A setting that must never be printed: `Debug` shows `"***"`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "FLASHCOUPON_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where the SQLite database and the generated token secret live.
    #[arg(long, env = "FLASHCOUPON_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Token signing secret (32+ characters). Default: generated on first start
    /// and kept in <data-dir>/jwt_secret (mode 0600).
    #[arg(long, env = "FLASHCOUPON_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// How long a token from sign-up or log-in stays valid, in seconds.
    #[arg(long, env = "FLASHCOUPON_TOKEN_TTL_SECS", default_value_t = 86_400)]
    pub token_ttl_secs: u64,

    /// With --admin-password: make sure this admin exists at start-up
    /// (created if absent). Start-up refuses to run if a non-admin account
    /// has this e-mail: it never promotes one (`admin create` does).
    #[arg(long, env = "FLASHCOUPON_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// The first admin's password (used only when the admin is created).
    #[arg(long, env = "FLASHCOUPON_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<Secret>,

    /// The most coupons one group-commit transaction writes.
    #[arg(long, env = "FLASHCOUPON_COMMIT_MAX_BATCH", default_value_t = 512)]
    pub commit_max_batch: usize,

    /// Scale-out: group-commit writers per instance (default 1). More let
    /// PostgreSQL commit batches in parallel, which pays when it has cores
    /// to spare (on a 2-core box shared with the load it did not: see
    /// docs/benchmarks.md). Embedded mode always has one (SQLite has one writer).
    #[arg(long, env = "FLASHCOUPON_COMMIT_WRITERS")]
    pub commit_writers: Option<usize>,

    /// SQLite durability: `full` (default) or `normal` (survives kill -9, not power loss).
    #[arg(
        long,
        env = "FLASHCOUPON_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_synchronous: Durability,

    /// SQLite: frames in the write-ahead log past which a group-commit
    /// batch starts it over during a storm (default 65,536, ~270 MB; the
    /// crash tests set a few dozen so kill -9 meets restarts).
    #[arg(long, env = "FLASHCOUPON_SQLITE_LOG_RESTART_FRAMES", default_value_t = crate::store::sqlite::LIMIT_FRAMES,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub sqlite_log_restart_frames: i64,

    /// Claims per second one user may send (bursts of twice that); 0 = unlimited.
    #[arg(long, env = "FLASHCOUPON_CLAIM_RATE_PER_USER", default_value_t = 20)]
    pub claim_rate_per_user: u32,

    /// Other writes per second per shopper (subscribe, mark read, preview,
    /// use; bursts of twice that); 0 = unlimited. Claims have their own limit.
    #[arg(long, env = "FLASHCOUPON_WRITE_RATE_PER_USER", default_value_t = 10)]
    pub write_rate_per_user: u32,

    /// Sign-ups and log-ins per second from one client address (bursts of
    /// twice that); 0 = unlimited. Raise it behind a reverse proxy.
    #[arg(long, env = "FLASHCOUPON_AUTH_RATE_PER_IP", default_value_t = 50)]
    pub auth_rate_per_ip: u32,

    /// The password-hashing threads' priority: `idle` (Linux's SCHED_IDLE:
    /// they get only CPU nothing else wants, and give it up at once), or a
    /// nice value from 0 (the server's own priority) to 19. A log-in flood
    /// during a drop takes only what the claims leave.
    #[arg(long, env = "FLASHCOUPON_HASH_NICE", default_value = "idle")]
    pub hash_nice: crate::auth::HashPriority,

    /// Failed code redemptions (unknown or used codes) a minute per user,
    /// all usable at once; then 429 until the budget refills. 0 = unlimited.
    #[arg(long, env = "FLASHCOUPON_CODE_GUESSES_PER_USER", default_value_t = 10)]
    pub code_guesses_per_user: u32,

    /// Failed code redemptions a minute per client address (see
    /// `--code-guesses-per-user`). 0 = unlimited.
    #[arg(
        long,
        env = "FLASHCOUPON_CODE_GUESSES_PER_ADDRESS",
        default_value_t = 60
    )]
    pub code_guesses_per_address: u32,

    /// Reverse proxies (addresses or CIDR blocks, comma-separated) whose
    /// `X-Forwarded-For` names the client for the sign-in limit; the header
    /// from anybody else is ignored. Default: none.
    #[arg(long = "trusted-proxy", env = "FLASHCOUPON_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Scale-out mode: the Redis gate, e.g. redis://127.0.0.1:6379. A
    /// comma-separated list of nodes means a Redis Cluster. Needs
    /// --postgres-url and FLASHCOUPON_JWT_SECRET.
    #[arg(long, env = "FLASHCOUPON_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Treat --redis-url as a Redis Cluster seed even when it names one node.
    #[arg(long, env = "FLASHCOUPON_REDIS_CLUSTER", default_value_t = false)]
    pub redis_cluster: bool,

    /// Prefix of every Redis key and channel, so several platforms (or test
    /// runs) can share one Redis.
    #[arg(long, env = "FLASHCOUPON_REDIS_PREFIX", default_value = "fc")]
    pub redis_prefix: String,

    /// RabbitMQ, e.g. amqp://guest:guest@127.0.0.1:5672/%2f: consume payment
    /// events from the queue `flashcoupon.payments` and publish every event
    /// to the topic exchange `flashcoupon.events` (from the outbox), in
    /// either mode. Without it, `POST /api/v1/payment-events` does the same
    /// work and nothing is published.
    #[arg(long, env = "FLASHCOUPON_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// The first word of the broker's names (`<it>.payments`,
    /// `<it>.payments.dead`, `<it>.events`), so tests can share one broker.
    #[arg(
        long,
        env = "FLASHCOUPON_AMQP_NAMESPACE",
        default_value = "flashcoupon",
        hide = true
    )]
    pub amqp_namespace: String,

    /// Payment events the consumer has in hand at once (the channel's
    /// prefetch); it takes them in batches of what has arrived (up to 128),
    /// one commit per batch. More than one batch's worth, so the next
    /// batch is already here while one commits and is acknowledged.
    #[arg(
        long,
        env = "FLASHCOUPON_AMQP_PREFETCH",
        default_value_t = 512,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub amqp_prefetch: u16,

    /// Scale-out mode: the system of record, e.g.
    /// postgres://flashcoupon@127.0.0.1/flashcoupon. Needs --redis-url.
    #[arg(long, env = "FLASHCOUPON_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,

    /// Scale-out: a claim still in flight this long after its admission (its
    /// instance died, or lost Redis after committing) is settled from what
    /// the record holds, in milliseconds.
    #[arg(long, env = "FLASHCOUPON_RECONCILE_AFTER_MS", default_value_t = 30_000)]
    pub reconcile_after_ms: u64,

    /// How often this instance writes its claim counts to the record, where
    /// the admin summaries sum every instance's, in milliseconds
    /// (100..=5,000); 0 keeps them in this instance only (the summaries'
    /// `claims` then stay at what was written before).
    #[arg(
        long,
        env = "FLASHCOUPON_STATS_FLUSH_MS",
        default_value_t = 1_000,
        value_parser = stats_flush_ms
    )]
    pub stats_flush_ms: u64,

    /// How long a coupon reservation holds when the request names no
    /// `ttl_secs` (1..=86,400), in seconds.
    #[arg(
        long,
        env = "FLASHCOUPON_RESERVATION_TTL_SECS",
        default_value_t = 900,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub reservation_ttl_secs: u64,

    /// Let a buyer pay their own time-sale order at once
    /// (`POST /api/v1/orders/{id}/pay`), for demos and load tests. Off by
    /// default: payments come from the shop's payment events.
    #[arg(long, env = "FLASHCOUPON_TEST_PAYMENTS", default_value_t = false)]
    pub test_payments: bool,

    /// Subscribers hear `campaign.opening_soon` this many seconds before a drop opens.
    #[arg(
        long,
        env = "FLASHCOUPON_OPENING_SOON_LEAD_SECS",
        default_value_t = 600
    )]
    pub opening_soon_lead_secs: u64,

    /// How often the notification scheduler checks the clock, in milliseconds.
    #[arg(long, env = "FLASHCOUPON_SCHEDULER_TICK_MS", default_value_t = 1_000)]
    pub scheduler_tick_ms: u64,

    /// Webhooks: the first retry waits this long (ms); each next one twice as long, up to an hour.
    #[arg(
        long,
        env = "FLASHCOUPON_WEBHOOK_RETRY_BASE_MS",
        default_value_t = 30_000
    )]
    pub webhook_retry_base_ms: u64,

    /// Webhooks: a delivery not accepted after this many seconds is given up.
    #[arg(
        long,
        env = "FLASHCOUPON_WEBHOOK_GIVE_UP_SECS",
        default_value_t = 86_400
    )]
    pub webhook_give_up_secs: u64,

    /// Webhooks go to public addresses only; these blocks (addresses or
    /// CIDR, comma-separated) are allowed besides, e.g. a shop's back end on
    /// the private network. Default: none.
    #[arg(long = "webhook-allow", env = "FLASHCOUPON_WEBHOOK_ALLOW", value_delimiter = ',', value_parser = parse_net)]
    pub webhook_allow: Vec<ipnet::IpNet>,

    /// Live connections (notification sockets and live streams) in all; 0 = no cap.
    #[arg(long, env = "FLASHCOUPON_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Live connections from one client address (NATs put many shoppers
    /// behind one); 0 = no cap.
    #[arg(
        long,
        env = "FLASHCOUPON_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 500
    )]
    pub max_connections_per_address: usize,

    /// Notification sockets one account may hold (tabs, devices); 0 = no cap.
    #[arg(long, env = "FLASHCOUPON_MAX_SOCKETS_PER_USER", default_value_t = 8)]
    pub max_sockets_per_user: usize,

    /// Notification sockets connected but not yet signed in; 0 = no cap.
    #[arg(long, env = "FLASHCOUPON_MAX_SOCKETS_WAITING", default_value_t = 1_000)]
    pub max_sockets_waiting: usize,

    /// Events a notification socket may have queued before it is closed as too slow.
    #[arg(long, env = "FLASHCOUPON_WS_QUEUE", default_value_t = 256)]
    pub ws_queue: usize,

    /// Log format; the level comes from RUST_LOG (default: info).
    #[arg(
        long,
        env = "FLASHCOUPON_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Export each request's span to this OpenTelemetry collector over
    /// OTLP/HTTP (protobuf, to <it>/v1/traces), e.g. http://127.0.0.1:4318,
    /// continuing the caller's W3C trace. Off by default.
    #[arg(long, env = "FLASHCOUPON_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
}

/// An OTLP/HTTP base URL: `http://` or `https://`, a host, no query.
fn otlp_endpoint(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment".into());
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// `Settings` alone as a command, to read its defaults.
#[derive(Debug, clap::Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// The defaults (the ones `serve --help` shows: written once, on the
    /// flags above) for a server on a free port over `data_dir`, ignoring
    /// the environment (tests, tools).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = DefaultsOnly::command().mut_args(|a| a.env(None::<&'static str>));
        let matches = command
            .try_get_matches_from(["flashcoupon"])
            .expect("every setting has a default or is optional");
        let mut settings = DefaultsOnly::from_arg_matches(&matches)
            .expect("the defaults parse")
            .settings;
        settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.data_dir = data_dir.into();
        settings
    }
}

impl Settings {
    pub fn notify(&self) -> crate::notify::NotifySettings {
        use std::time::Duration;
        let retry_base = Duration::from_millis(self.webhook_retry_base_ms.max(1));
        crate::notify::NotifySettings {
            opening_lead: Duration::from_secs(self.opening_soon_lead_secs),
            tick: Duration::from_millis(self.scheduler_tick_ms.max(10)),
            webhook_retry_base: retry_base,
            webhook_give_up: Duration::from_secs(self.webhook_give_up_secs),
            webhook_poll: retry_base.min(Duration::from_millis(500)),
            webhook_allow: self.webhook_allow.clone(),
            socket_queue: self.ws_queue.max(1),
            outbox: self.amqp_url.is_some(),
            ..Default::default()
        }
    }
}

/// Where the gate and the record live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// In-process gate, SQLite under the data dir.
    Embedded,
    /// Redis gate (a server or a cluster), PostgreSQL record, shared by instances.
    ScaleOut {
        redis: Vec<String>,
        cluster: bool,
        postgres: String,
    },
}

impl Settings {
    /// The mode these settings select, or why they are inconsistent.
    pub fn mode(&self) -> anyhow::Result<Mode> {
        match (&self.redis_url, &self.postgres_url) {
            (None, None) => Ok(Mode::Embedded),
            (Some(redis), Some(postgres)) => {
                // Its length is checked where it is loaded (auth::token).
                anyhow::ensure!(
                    self.jwt_secret.is_some(),
                    "scale-out mode needs FLASHCOUPON_JWT_SECRET (32+ characters), the same on every \
                     instance, so a token from one instance is accepted by all"
                );
                let redis: Vec<String> = redis
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect();
                anyhow::ensure!(!redis.is_empty(), "--redis-url names no Redis server");
                Ok(Mode::ScaleOut {
                    cluster: self.redis_cluster || redis.len() > 1,
                    redis,
                    postgres: postgres.clone(),
                })
            }
            (Some(_), None) => anyhow::bail!(
                "--redis-url needs --postgres-url (FLASHCOUPON_POSTGRES_URL): scale-out mode uses both"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--postgres-url needs --redis-url (FLASHCOUPON_REDIS_URL): scale-out mode uses both"
            ),
        }
    }
}

/// `--stats-flush-ms`: 0 (off) or 100..=5,000 (the API promises claim
/// counts at most 5 s behind).
fn stats_flush_ms(raw: &str) -> Result<u64, String> {
    let ms: u64 = raw.parse().map_err(|e| format!("{e}"))?;
    if ms == 0 || (100..=5_000).contains(&ms) {
        Ok(ms)
    } else {
        Err("must be 0 (off) or between 100 and 5000".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_flags_and_ignore_the_environment() {
        let s = Settings::for_data_dir("/tmp/x");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.commit_max_batch, 512);
        assert_eq!(s.redis_prefix, "fc");
        assert_eq!(s.sqlite_synchronous, Durability::Full);
        assert!(s.redis_url.is_none() && s.postgres_url.is_none());
        assert_eq!(s.mode().unwrap(), Mode::Embedded);
    }

    #[test]
    fn secrets_are_never_printed() {
        let mut s = Settings::for_data_dir("/tmp/x");
        s.jwt_secret = Some("a-very-secret-signing-key-0123456789".into());
        s.admin_password = Some("the-admins-password".into());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("a-very-secret") && !shown.contains("the-admins"),
            "{shown}"
        );
        assert!(shown.contains("jwt_secret: Some(\"***\")"), "{shown}");
    }
}
