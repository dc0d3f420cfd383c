//! `Application`: builds everything from `Settings` — storage, the gate
//! rebuilt from the record, the group-commit writer, the router — and runs it
//! until shutdown. `main` and the tests both start the platform through it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::{PasswordHasher, TokenKeys, load_or_create_secret};
use crate::clock::Clock;
use crate::domain::account::{Email, Password};
use crate::gate::{CampaignGate, MemoryGate};
use crate::group_commit::{GroupCommit, WriterHandle};
use crate::http::{self, RateLimits};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::state::{AppState, Shared};
use crate::store::Store;

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    writer: WriterHandle,
}

impl Application {
    pub async fn build(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let store = Store::open(&settings.data_dir, settings.sqlite_synchronous)
            .await
            .with_context(|| format!("opening the database in {}", settings.data_dir.display()))?;
        let secret = load_or_create_secret(settings.jwt_secret.as_deref(), &settings.data_dir)?;
        let tokens = TokenKeys::new(&secret, Duration::from_secs(settings.token_ttl_secs.max(1)));
        let passwords = PasswordHasher::new()?;
        ensure_first_admin(settings, &store, &passwords, &clock).await?;

        let gate = MemoryGate::default();
        let mut issued = store.issued_by_campaign().await?;
        for campaign in store.all_campaigns().await? {
            let g = gate.insert(CampaignGate::new(&campaign));
            g.restore(issued.remove(&campaign.id).unwrap_or_default());
        }
        let metrics = Metrics::new();
        let (commit, writer) = GroupCommit::start(
            store.writer_connection().await?,
            settings.commit_max_batch,
            metrics.clone(),
        );
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        let state = AppState(Arc::new(Shared {
            store,
            gate,
            commit,
            tokens,
            passwords,
            clock,
            metrics,
            limits: RateLimits::new(settings.claim_rate_per_user, settings.auth_rate_per_ip),
            campaign_writes: tokio::sync::Mutex::new(()),
        }));
        Ok(Self {
            listener,
            state,
            writer,
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
    /// close the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            writer,
        } = self;
        let gc = tokio::spawn({
            let state = state.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    state.limits.forget_idle();
                }
            }
        });
        let checkpoints = tokio::spawn(
            state
                .store
                .clone()
                .run_checkpoints(Duration::from_millis(500)),
        );
        let app = http::router(state.clone());
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        gc.abort();
        writer.drain().await;
        checkpoints.abort();
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn ensure_first_admin(
    settings: &Settings,
    store: &Store,
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
    let password = Password::parse(password.clone()).context("FLASHCOUPON_ADMIN_PASSWORD")?;
    let hash = passwords.hash(password.expose().to_owned()).await?;
    let (_, created) = store.upsert_admin(&email, &hash, None, clock.now()).await?;
    if created {
        tracing::info!(email = email.as_str(), "created the first admin");
    }
    Ok(())
}
