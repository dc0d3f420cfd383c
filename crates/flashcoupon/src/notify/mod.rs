//! Notifications: what users and shops are told, live and later.
//!
//! ```text
//! claim / use / scheduler ──▶ Notifier::emit ──▶ EventBus (this instance + Redis pub/sub)
//!                                   │                  └──▶ dispatcher ──▶ Hub ──▶ WebSockets
//!                                   └──▶ inbox writer (batched) ──▶ notifications table
//! once-only events: insert into the inbox first (unique per user and key),
//!                   then publish only the rows this instance inserted
//! campaign events:  ──▶ Webhooks::enqueue ──▶ webhook_deliveries ──▶ deliverer ──▶ POST
//! ```
//!
//! Events are never the record: a lost push loses no coupon, and the inbox
//! keeps what was pushed. Nothing here is awaited by the claim path.

mod announce;
mod background;
pub mod egress;
pub mod fanout;
pub mod hub;
mod inbox;
pub mod live;
mod scheduler;
pub mod webhooks;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::admission::Gate;
use crate::clock::Clock;
use crate::domain::coupon::Coupon;
use crate::domain::ids::{CampaignId, UserId};
use crate::domain::timestamp::Timestamp;
use crate::events::{Event, EventBus, Payload};
use crate::metrics::Metrics;
use crate::store::{NotificationRow, OutboxRow, Reports};
use crate::store::{Store, StoreError};
use crate::tasks::Tasks;

pub use hub::Hub;
pub use live::{Live, LiveSnapshot, Watcher};
pub use webhooks::Webhooks;

/// The knobs of notifications (see `Settings`).
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// How long before opening subscribers get `campaign.opening_soon`.
    pub opening_lead: Duration,
    /// How often the scheduler looks at the clock.
    pub tick: Duration,
    /// How long before expiry an unused coupon's owner is reminded.
    pub expiry_lead: Duration,
    /// The first webhook retry waits this long; each next one twice as long.
    pub webhook_retry_base: Duration,
    /// A delivery not accepted after this long is given up.
    pub webhook_give_up: Duration,
    /// How often the deliverer looks for due retries.
    pub webhook_poll: Duration,
    /// Where webhooks may go besides public addresses.
    pub webhook_allow: Vec<ipnet::IpNet>,
    /// Events a socket may have queued before it is cut off as too slow.
    pub socket_queue: usize,
    /// Write outbound events to the outbox (a broker is configured to
    /// publish them).
    pub outbox: bool,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            opening_lead: Duration::from_secs(600),
            tick: Duration::from_secs(1),
            expiry_lead: Duration::from_secs(7 * 86_400),
            webhook_retry_base: Duration::from_secs(30),
            webhook_give_up: Duration::from_secs(86_400),
            webhook_poll: Duration::from_millis(500),
            webhook_allow: Vec::new(),
            socket_queue: 256,
            outbox: false,
        }
    }
}

#[derive(Debug)]
pub struct Notifier {
    store: Arc<dyn Store>,
    gate: Arc<dyn Gate>,
    events: EventBus,
    clock: Clock,
    inbox: inbox::InboxWriter,
    pub hub: Arc<Hub>,
    pub live: Live,
    pub webhooks: Arc<Webhooks>,
    settings: NotifySettings,
    /// (user, campaign, reason) of claim failures this instance stored.
    told_failures: Mutex<HashSet<(UserId, CampaignId, &'static str)>>,
    /// Campaigns whose stock reactions (sold out, stock low) are running.
    reacting: Mutex<HashSet<CampaignId>>,
    stopping: tokio::sync::watch::Sender<bool>,
    /// Once-only announcements this instance already made (the record's
    /// unique keys decide; this only saves asking it again every tick).
    announced: Mutex<HashSet<String>>,
    /// Wakes the outbox relay when this instance wrote outbound events.
    outbox_written: Arc<tokio::sync::Notify>,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        gate: Arc<dyn Gate>,
        events: EventBus,
        clock: Clock,
        metrics: &Metrics,
        settings: NotifySettings,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            inbox: inbox::InboxWriter::start(store.clone()),
            hub: Arc::new(Hub::new(settings.socket_queue, metrics)),
            live: Live::default(),
            webhooks: Arc::new(Webhooks::new(
                store.clone(),
                clock.clone(),
                settings.webhook_retry_base,
                settings.webhook_give_up,
                settings.webhook_poll,
                egress::Egress::new(settings.webhook_allow.clone()),
            )?),
            store,
            gate,
            events,
            clock,
            settings,
            announced: Mutex::new(HashSet::new()),
            outbox_written: Arc::new(tokio::sync::Notify::new()),
            told_failures: Mutex::new(HashSet::new()),
            reacting: Mutex::new(HashSet::new()),
            stopping: tokio::sync::watch::channel(false).0,
        })
    }

    pub fn settings(&self) -> &NotifySettings {
        &self.settings
    }

    /// The background tasks: socket dispatch, live refresh, scheduler, webhook deliverer.
    pub fn start(self: &Arc<Self>, tasks: &mut Tasks) {
        tasks.spawn_loop("socket dispatch", self.clone().dispatch());
        tasks.spawn_loop("live channels", self.clone().run_live());
        tasks.spawn_loop("scheduler", self.clone().run_scheduler());
        tasks.spawn(
            "webhook deliverer",
            self.webhooks.clone().run(tasks.shutdown()),
        );
    }

    /// Push an event to its user (on every instance) and keep it in their inbox.
    pub fn emit(&self, event: Event) {
        if let Some(user) = event.user {
            self.inbox.store(row(&event, user, None));
        }
        self.events.publish(event);
    }

    /// A coupon committed: push `coupon.issued` (its id is the coupon's).
    /// Nothing is stored: the coupon is its own inbox entry (see
    /// `InboxStore::inbox`).
    pub fn coupon_issued(&self, coupon: &Coupon) {
        let issued = Payload::CouponIssued {
            coupon_id: coupon.id,
            seq: coupon.seq,
            valid_until: coupon.valid_until,
        };
        let mut event = Event::new(
            issued,
            coupon.issued_at,
            Some(coupon.user_id),
            Some(coupon.campaign_id),
        );
        event.id = coupon.id.0;
        // The group commit wrote its `coupon.issued` to the outbox too.
        if self.settings.outbox {
            self.outbox_written();
        }
        self.events.publish(event);
    }

    /// Store once-only events (`(event, once key)`), then push the ones that
    /// were new: whichever instance inserts a row is the one that pushes it.
    pub async fn emit_once(&self, events: Vec<(Event, String)>) -> Result<usize, StoreError> {
        let rows: Vec<NotificationRow> = events
            .iter()
            .filter_map(|(e, key)| e.user.map(|u| row(e, u, Some(key.clone()))))
            .collect();
        let inserted: HashSet<uuid::Uuid> = self
            .store
            .insert_notifications(&rows)
            .await?
            .into_iter()
            .collect();
        let mut pushed = 0;
        for (event, _) in events {
            if inserted.contains(&event.id) {
                self.events.publish(event);
                pushed += 1;
            }
        }
        Ok(pushed)
    }

    /// A claim that did not issue, told to its user (with the reason).
    /// A user retrying into a sold-out drop is pushed every answer, but the
    /// inbox keeps the first of each (campaign, reason) this instance saw:
    /// the rest add nothing to read later and would only load the record.
    pub fn claim_failed(
        &self,
        user: UserId,
        campaign: CampaignId,
        reason: &'static str,
        message: &str,
    ) {
        let failed = Payload::ClaimFailed {
            reason,
            message: message.to_owned(),
        };
        let event = Event::new(failed, self.clock.now(), Some(user), Some(campaign));
        let first = {
            let mut told = lock(&self.told_failures);
            if told.len() >= 200_000 {
                told.clear();
            }
            told.insert((user, campaign, reason))
        };
        if first {
            self.emit(event);
        } else {
            self.events.publish(event);
        }
    }

    /// Shutting down: end the live streams (so the server can finish its
    /// requests) and write the inbox rows still queued.
    pub async fn shutdown(&self) {
        self.stopping.send_replace(true);
        if tokio::time::timeout(Duration::from_secs(5), self.inbox.flush())
            .await
            .is_err()
        {
            tracing::warn!("the inbox writer did not finish within 5 s");
        }
    }

    /// Resolves once the server is shutting down.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    /// Something is about to happen to one coupon (used, use cancelled):
    /// the event, and the deliveries to the shop's endpoints that asked for
    /// it, which the caller writes in the same transaction as the change so
    /// a crash cannot keep one and lose the other.
    pub async fn prepare_coupon_event(
        &self,
        coupon: &Coupon,
        payload: Payload,
        text: &str,
    ) -> Result<CouponEvent, StoreError> {
        let event = Event::new(
            payload,
            self.clock.now(),
            Some(coupon.user_id),
            Some(coupon.campaign_id),
        );
        let key = format!("{}:{}", event.kind, event.id);
        let deliveries = self
            .webhooks
            .deliveries_for(&event, &key, text, |_| true)
            .await?;
        let outbox = self.outbound(&event).into_iter().collect();
        Ok(CouponEvent {
            event,
            reports: Reports { deliveries, outbox },
        })
    }

    /// Wakes the outbox relay (see [`Notifier::outbox_written`]).
    pub fn outbox_waker(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_written.clone()
    }

    /// Outbound events were just committed: publish them now rather than
    /// at the relay's next look.
    pub fn outbox_written(&self) {
        self.outbox_written.notify_one();
    }

    /// The event's outbox row, when a broker publishes the outbox.
    pub fn outbound(&self, event: &Event) -> Option<OutboxRow> {
        self.settings.outbox.then(|| outbox_row(event))
    }

    /// Are events written to the outbox (a broker is configured)?
    pub fn outbound_on(&self) -> bool {
        self.settings.outbox
    }

    /// The change committed with its deliveries: tell the owner, wake the
    /// deliverer.
    pub fn coupon_event_committed(&self, committed: CouponEvent) {
        if !committed.reports.deliveries.is_empty() {
            self.webhooks.wake();
        }
        if !committed.reports.outbox.is_empty() {
            self.outbox_written();
        }
        self.emit(committed.event);
    }
}

/// A coupon event and its reports (webhook deliveries, outbound event),
/// written with the change.
#[derive(Debug)]
pub struct CouponEvent {
    event: Event,
    pub reports: Reports,
}

/// An event's outbox row: published with its type as the routing key (see
/// `broker::relay`).
pub fn outbox_row(event: &Event) -> OutboxRow {
    OutboxRow {
        id: event.id,
        event_type: event.kind.as_str().to_owned(),
        body: event.outbound_json(),
        created_at: event.at,
        trace: event.trace.clone(),
    }
}

/// The JSON a client receives for an event.
pub fn client_json(event: &Event) -> String {
    json!({
        "id": event.id,
        "type": event.kind,
        "at": event.at,
        "campaign_id": event.campaign,
        "data": event.data,
    })
    .to_string()
}

fn row(event: &Event, user: UserId, once_key: Option<String>) -> NotificationRow {
    NotificationRow {
        id: event.id,
        user,
        kind: event.kind.as_str().to_owned(),
        campaign: event.campaign,
        payload: event.data.to_string(),
        at: event.at,
        once_key,
    }
}

/// Every notification mutex guards maps and sets changed in single calls, so
/// one poisoned by a panic is still consistent: use it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `t` minus a duration.
fn before(t: Timestamp, d: Duration) -> Timestamp {
    t.plus_millis(-(d.as_millis() as i64))
}
