//! `AppState`: what every handler shares, built once by [`crate::app::Application::build`].

use std::ops::Deref;
use std::sync::Arc;

use crate::admission::{Gate, GroupCommit};
use crate::auth::{Claims, PasswordHasher, Revocations, TokenKeys};
use crate::catalog::Catalog;
use crate::claim_stats::ClaimStats;
use crate::clock::Clock;
use crate::connections::Connections;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::rate_limit::RateLimits;
use crate::store::{NewCouponRow, NewOrderRow, Store};

#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub gate: Arc<dyn Gate>,
    pub catalog: Catalog,
    /// Coupons admitted by the gate, on their way into the record.
    pub commit: GroupCommit<NewCouponRow>,
    /// Time-sale orders admitted by the gate, on their way into the record.
    pub orders: GroupCommit<NewOrderRow>,
    /// `--test-payments`: buyers may pay their own orders at once.
    pub test_payments: bool,
    /// Pollers of the sales watched live on this instance.
    pub sale_live: crate::selling::live::SaleLive,
    /// Points ledger writes, on their way into the record.
    pub ledger: crate::points::writer::LedgerWriter,
    pub events: EventBus,
    pub notifier: Arc<Notifier>,
    pub tokens: TokenKeys,
    /// Accounts whose older tokens are refused (polled from the record).
    pub revocations: Arc<Revocations>,
    pub passwords: PasswordHasher,
    pub clock: Clock,
    pub metrics: Metrics,
    pub limits: RateLimits,
    /// Caps on sockets and live streams.
    pub connections: Arc<Connections>,
    /// Per-campaign claim outcomes and latency for the admin dashboard (this instance's claims).
    pub claim_stats: ClaimStats,
    /// This instance's claim counts on their way to the record (cluster-wide).
    pub tally: crate::stats::tally::ClusterTally,
    /// Summaries read recently, shared by the admins polling them.
    pub summaries: crate::http::summary::Summaries,
    /// Serialises this instance's campaign and sale writes (create, patch)
    /// so the record and the gate change together; claims never take it.
    pub campaign_writes: tokio::sync::Mutex<()>,
    /// A reservation's hold when the request names none.
    pub reservation_ttl: std::time::Duration,
    /// Wakes this instance's job runner (a job was just created).
    pub jobs_created: tokio::sync::Notify,
    /// Wakes this instance's trigger runner (an event was just taken in).
    pub triggers_arrived: tokio::sync::Notify,
}

impl Shared {
    /// The record's time: holds and payment events are judged by it, not
    /// by this host's clock (see `Store::now`).
    pub async fn record_now(
        &self,
    ) -> Result<crate::domain::timestamp::Timestamp, crate::store::StoreError> {
        self.store.now(self.clock.offset_ms()).await
    }

    /// The claims of a bearer token that is well signed, unexpired, issued by
    /// this record and not revoked since; `None` otherwise (401).
    pub fn authenticate(&self, token: &str) -> Option<Claims> {
        self.tokens
            .verify(token)
            .filter(|c| !self.revocations.is_revoked(c.sub, c.tep))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
