//! `Application`: builds everything from `Settings` — the record and the gate
//! of the selected mode, the group-commit writer, the router — and runs it
//! until shutdown. `main` and the tests both start the platform through it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::admission::{
    Gate, GroupCommit, MemoryGate, RedisGate, RowWriter, Stockpile, WriterConfig, WriterHandle,
    reconcile_forever,
};
use crate::auth::{PasswordHasher, Revocations, TokenKeys, load_or_create_secret};
use crate::broker::{BrokerSettings, Names};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::connections::{Caps, Connections};
use crate::domain::account::{Email, Password, Role};
use crate::domain::ids::UserId;
use crate::events::EventBus;
use crate::http;
use crate::issuing::{CouponRows, CouponStock};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::rate_limit::RateLimits;
use crate::redis_conn::RedisConn;
use crate::selling::{OrderRows, SaleStock};
use crate::settings::{Mode, Secret, Settings};
use crate::state::{AppState, Shared};
use crate::store::{NewCouponRow, NewOrderRow, PgStore, SqliteStore, Store, StoreError};
use crate::tasks::Tasks;

/// How long background tasks may take to finish after the server stopped
/// answering and the commit queue is drained. Kept under the usual 10 s stop
/// timeout of process managers; a webhook send cut short is sent again later
/// (its lease expires), so nothing is lost by stopping it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    writer: WriterHandle,
    order_writer: WriterHandle,
    /// Every kind of stock the admission core serves (the reconciler's list).
    stockpiles: Vec<Arc<dyn Stockpile>>,
    /// Background loops started while building (the event relay).
    tasks: Tasks,
    reconcile_after: Duration,
    /// How often the claim counts go to the record; zero: never.
    stats_flush: Duration,
    /// RabbitMQ, when configured.
    broker: Option<BrokerSettings>,
}

/// The record and the gate of one mode, wired together.
struct Engines {
    store: Arc<dyn Store>,
    gate: Arc<dyn Gate>,
    events: EventBus,
    writer: WriterConfig,
    /// Group-commit writers to run.
    writers: usize,
    secret: Vec<u8>,
}

async fn embedded(settings: &Settings) -> anyhow::Result<Engines> {
    let store = SqliteStore::open(&settings.data_dir, settings.sqlite_synchronous)
        .await
        .with_context(|| format!("opening the database in {}", settings.data_dir.display()))?;
    store.log().set_limit(settings.sqlite_log_restart_frames);
    let store: Arc<dyn Store> = Arc::new(store);
    let gate = MemoryGate::default();
    gate.load(&CouponStock(store.clone())).await?;
    gate.load(&SaleStock(store.clone())).await?;
    Ok(Engines {
        secret: load_or_create_secret(
            settings.jwt_secret.as_ref().map(Secret::expose),
            &settings.data_dir,
        )?,
        store,
        gate: Arc::new(gate),
        events: EventBus::local(),
        // SQLite serialises writers anyway; more would only wait on its lock.
        writers: 1,
        writer: WriterConfig {
            max_batch: settings.commit_max_batch,
            max_age: None,
        },
    })
}

async fn scale_out(
    settings: &Settings,
    redis: &[String],
    cluster: bool,
    postgres: &str,
    metrics: &Metrics,
    tasks: &mut Tasks,
) -> anyhow::Result<Engines> {
    let store: Arc<dyn Store> = Arc::new(
        PgStore::connect(postgres)
            .await
            .context("connecting to PostgreSQL (--postgres-url)")?,
    );
    let conn = RedisConn::open(redis, cluster)
        .await
        .context("connecting to Redis (--redis-url)")?;
    let gate = Arc::new(RedisGate::new(
        conn.clone(),
        &settings.redis_prefix,
        vec![
            Arc::new(CouponStock(store.clone())),
            Arc::new(SaleStock(store.clone())),
        ],
        metrics.clone(),
    ));
    let channel = format!("{}:events", settings.redis_prefix);
    let reconcile_after = Duration::from_millis(settings.reconcile_after_ms.max(1));
    Ok(Engines {
        secret: load_or_create_secret(
            settings.jwt_secret.as_ref().map(Secret::expose),
            &settings.data_dir,
        )?,
        store,
        gate,
        events: EventBus::over_redis(conn, redis[0].clone(), channel, tasks),
        writers: settings.commit_writers.unwrap_or(1).max(1),
        writer: WriterConfig {
            max_batch: settings.commit_max_batch,
            // Half the reconciler's patience: a claim the reconciler may judge
            // is one this instance will no longer write.
            max_age: Some(reconcile_after / 2),
        },
    })
}

impl Application {
    pub async fn build(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let mut tasks = Tasks::default();
        let engines = match settings.mode()? {
            Mode::Embedded => embedded(settings).await?,
            Mode::ScaleOut {
                redis,
                cluster,
                postgres,
            } => scale_out(settings, &redis, cluster, &postgres, &metrics, &mut tasks).await?,
        };
        let generation = engines
            .store
            .record_generation(&uuid::Uuid::now_v7().to_string())
            .await
            .context("reading the record's generation")?;
        let tokens = TokenKeys::new(
            &engines.secret,
            Duration::from_secs(settings.token_ttl_secs.max(1)),
            &generation,
        );
        let revocations = Arc::new(Revocations::default());
        revocations
            .refresh(&*engines.store)
            .await
            .context("reading revoked tokens")?;
        let passwords = PasswordHasher::new(settings.hash_nice, metrics.hashes_abandoned.clone())?;
        ensure_first_admin(settings, &*engines.store, &passwords, &clock).await?;
        let mut writers: Vec<Box<dyn RowWriter<NewCouponRow>>> =
            Vec::with_capacity(engines.writers);
        for _ in 0..engines.writers {
            writers.push(Box::new(CouponRows(
                engines.store.writer(settings.amqp_url.is_some()).await?,
            )));
        }
        let stockpiles: Vec<Arc<dyn Stockpile>> = vec![
            Arc::new(CouponStock(engines.store.clone())),
            Arc::new(SaleStock(engines.store.clone())),
        ];
        let (commit, writer) = GroupCommit::start(
            writers,
            engines.gate.clone(),
            engines.writer,
            metrics.clone(),
        );
        let order_writers: Vec<Box<dyn RowWriter<NewOrderRow>>> = (0..engines.writers)
            .map(|_| Box::new(OrderRows(engines.store.clone())) as Box<dyn RowWriter<NewOrderRow>>)
            .collect();
        let (orders, order_writer) = GroupCommit::start(
            order_writers,
            engines.gate.clone(),
            engines.writer,
            metrics.clone(),
        );
        if settings.test_payments {
            tracing::warn!(
                "--test-payments is on: buyers can pay their own time-sale orders with POST /api/v1/orders/{{id}}/pay; never in production"
            );
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        let notifier = Arc::new(Notifier::new(
            engines.store.clone(),
            engines.gate.clone(),
            engines.events.clone(),
            clock.clone(),
            &metrics,
            settings.notify(),
        )?);
        let ledger = crate::points::writer::LedgerWriter::start(engines.store.clone(), &mut tasks);
        let state = AppState(Arc::new(Shared {
            ledger,
            store: engines.store,
            gate: engines.gate,
            catalog: Catalog::default(),
            commit,
            orders,
            test_payments: settings.test_payments,
            sale_live: Default::default(),
            events: engines.events,
            notifier,
            tokens,
            revocations,
            passwords,
            clock,
            metrics,
            reservation_ttl: std::time::Duration::from_secs(settings.reservation_ttl_secs),
            connections: Connections::new(Caps {
                total: settings.max_connections,
                per_address: settings.max_connections_per_address,
                per_user: settings.max_sockets_per_user,
                waiting: settings.max_sockets_waiting,
            }),
            limits: RateLimits::new(
                settings.claim_rate_per_user,
                settings.write_rate_per_user,
                settings.auth_rate_per_ip,
                settings.trusted_proxies.clone(),
            )
            .with_code_guesses(
                settings.code_guesses_per_user,
                settings.code_guesses_per_address,
            ),
            claim_stats: Default::default(),
            tally: Default::default(),
            summaries: Default::default(),
            campaign_writes: tokio::sync::Mutex::new(()),
            jobs_created: tokio::sync::Notify::new(),
            triggers_arrived: tokio::sync::Notify::new(),
        }));
        Ok(Self {
            listener,
            state,
            writer,
            order_writer,
            stockpiles,
            tasks,
            reconcile_after: Duration::from_millis(settings.reconcile_after_ms.max(1)),
            stats_flush: Duration::from_millis(settings.stats_flush_ms),
            broker: settings.amqp_url.as_ref().map(|url| BrokerSettings {
                url: url.clone(),
                names: Names::new(&settings.amqp_namespace),
                prefetch: settings.amqp_prefetch,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serve until `shutdown` resolves, then finish in-flight requests, drain
    /// the commit queue (every admitted claim is committed or released) and
    /// close the record.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            writer,
            order_writer,
            stockpiles,
            mut tasks,
            reconcile_after,
            stats_flush,
            broker,
        } = self;
        if let Some(broker) = broker {
            crate::broker::start(state.clone(), broker, &mut tasks);
        }
        tasks.spawn_loop("forget idle limits and statistics", {
            let state = state.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    state.limits.forget_idle();
                    state.claim_stats.forget_idle(state.clock.now());
                }
            }
        });
        if stats_flush > Duration::ZERO {
            tasks.spawn_loop("claim counts to the record", {
                let state = state.clone();
                async move {
                    let mut every = tokio::time::interval(stats_flush);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        every.tick().await;
                        flush_claim_counts(&state).await;
                    }
                }
            });
        }
        if let Some(upkeep) = state.store.upkeep() {
            tasks.spawn_loop("record upkeep", upkeep);
        }
        state.notifier.start(&mut tasks);
        tasks.spawn_loop("token revocations", {
            let state = state.clone();
            async move {
                let mut every = tokio::time::interval(crate::auth::REVOCATION_POLL);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if let Err(e) = state.revocations.refresh(&*state.store).await {
                        tracing::debug!(error = %e, "revocations: the record is unreachable; will retry");
                    }
                }
            }
        });
        tasks.spawn_loop("hold and points expiry", {
            let state = state.clone();
            async move {
                // Every instance: each hold (a coupon's, points') and each
                // lot of points expires once (the record decides), within
                // about a second of its time.
                let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if let Err(e) = crate::spending::reservations::expire_due(&state).await {
                        tracing::debug!(error = %e, "reservation expiry: will retry");
                    }
                    if let Err(e) = crate::points::expire_due(&state).await {
                        tracing::debug!(error = %e, "points expiry: will retry");
                    }
                    if let Err(e) = crate::selling::orders::expire_due(&state).await {
                        tracing::debug!(error = %e, "order expiry: will retry");
                    }
                }
            }
        });
        tasks.spawn_loop("code jobs", crate::issuing::codes::run_jobs(state.clone()));
        tasks.spawn_loop(
            "trigger events",
            crate::issuing::triggers::run_triggers(state.clone()),
        );
        tasks.spawn_loop(
            "reconciler",
            reconcile_forever(state.gate.clone(), stockpiles, reconcile_after),
        );
        let app = http::router(state.clone());
        let notifier = state.notifier.clone();
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Live streams never end by themselves: end them, or the
            // server would wait for every open drop page.
            notifier.shutdown().await;
        })
        .await?;
        // Durable work first: no request is left to queue a claim, so the
        // writer commits what is queued and stops; then the background tasks.
        writer.drain().await;
        order_writer.drain().await;
        // The last claims' counts, so a restart keeps every one.
        if stats_flush > Duration::ZERO {
            flush_claim_counts(&state).await;
        }
        // The requests that finished after the first flush (above, which
        // ended the live streams) queued inbox rows too: flush again.
        state.notifier.shutdown().await;
        tasks.drain(SHUTDOWN_GRACE).await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Write this instance's claim counts to the record (a failure is retried
/// at the next tick: each write carries the running totals).
async fn flush_claim_counts(state: &AppState) {
    if let Err(e) = state
        .tally
        .flush(&state.claim_stats, &*state.store, state.clock.now())
        .await
    {
        tracing::debug!(error = %e, "claim counts: the record is unreachable; will retry");
    }
}

async fn ensure_first_admin(
    settings: &Settings,
    store: &dyn Store,
    passwords: &PasswordHasher,
    clock: &Clock,
) -> anyhow::Result<()> {
    let (email, password) = match (&settings.admin_email, &settings.admin_password) {
        (Some(e), Some(p)) => (e, p),
        (None, None) => return Ok(()),
        _ => anyhow::bail!(
            "set both FLASHCOUPON_ADMIN_EMAIL and FLASHCOUPON_ADMIN_PASSWORD, or neither"
        ),
    };
    let email = Email::parse(email).context("FLASHCOUPON_ADMIN_EMAIL")?;
    let password =
        Password::parse(password.expose().to_owned()).context("FLASHCOUPON_ADMIN_PASSWORD")?;
    // Start-up creates the admin if absent and never promotes an existing
    // account: whoever signed up with this e-mail first (perhaps not the
    // operator) would otherwise become admin. Promotion is `admin create`,
    // which also resets the password.
    if existing_admin(store, &email).await? {
        return Ok(());
    }
    let hash = passwords.hash(password.expose().to_owned()).await?;
    match store
        .insert_user(UserId::generate(), &email, &hash, Role::Admin, clock.now())
        .await
    {
        Ok(()) => {
            tracing::info!(email = email.as_str(), "created the first admin");
            Ok(())
        }
        // Another instance starting with us created it, or somebody signed
        // up with it meanwhile: the record decides which.
        Err(StoreError::Unique(_)) => existing_admin(store, &email).await.map(drop),
        Err(e) => Err(e.into()),
    }
}

/// `true` if `email` is an admin's, `false` if nobody has it; an error that
/// says what to do if it belongs to an account that is not an admin.
async fn existing_admin(store: &dyn Store, email: &Email) -> anyhow::Result<bool> {
    match store.find_user_by_email(email).await? {
        None => Ok(false),
        Some(user) if user.role == Role::Admin => Ok(true),
        Some(_) => anyhow::bail!(
            "FLASHCOUPON_ADMIN_EMAIL {} belongs to an existing account that is not an admin; \
             start-up will not promote it (whoever signed up with it would become admin). \
             If the account is yours, run `flashcoupon admin create --email {}` (it also \
             resets the password); otherwise choose another admin e-mail",
            email.as_str(),
            email.as_str()
        ),
    }
}
