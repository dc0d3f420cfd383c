//! Live events (a coupon issued, a campaign changed) for whoever listens in
//! this process: the notification and UI features subscribe here. In
//! scale-out mode every event also crosses to the other instances through
//! Redis pub/sub, so a client connected to instance A hears about a claim
//! made on instance B.
//!
//! Events are notifications, never the record: a lost one loses no coupon.
//! Publishing never blocks a claim; when Redis is unreachable the backlog is
//! bounded and the oldest events are dropped.

mod kinds;

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::domain::ids::{CampaignId, UserId};
use crate::domain::timestamp::Timestamp;
use crate::redis_conn::RedisConn;
use crate::tasks::{Shutdown, Tasks};

pub use kinds::{EventKind, Opening, Payload, SaleOpening, SaleSoldOut, StockNumbers};

/// Events a slow local listener may fall behind by before it starts missing some.
/// Sized for a drop: a sell-out announces itself to every subscriber at once.
const LOCAL_BUFFER: usize = 65_536;
/// Events waiting to be published to Redis.
const REMOTE_BUFFER: usize = 10_000;
/// How long the publisher may spend on what is still queued at shutdown.
const PUBLISH_AT_EXIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignId>,
    pub data: serde_json::Value,
    /// The instance that published it (so it does not hear itself twice).
    #[serde(default)]
    pub origin: String,
    /// The request that caused it (see `crate::trace`), for the outbox
    /// row and webhook deliveries written with it here. Not sent to other
    /// instances: they only push it to clients.
    #[serde(skip)]
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
}

impl Event {
    pub fn new(
        payload: Payload,
        at: Timestamp,
        user: Option<UserId>,
        campaign: Option<CampaignId>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            kind: payload.kind(),
            at,
            user,
            campaign,
            data: payload.data(),
            origin: String::new(),
            trace: crate::trace::current(),
        }
    }
}

impl Event {
    /// The event as the broker publishes it (see `broker::relay`).
    pub fn outbound_json(&self) -> String {
        outbound_json(
            self.id,
            self.kind,
            self.at,
            self.data.clone(),
            self.user,
            self.campaign,
        )
    }
}

/// An event as the broker publishes it: `{id, type, at, data}`, with the
/// user and the campaign it concerns added to `data` as `user_id` and
/// `campaign_id` (a consumer of the exchange has no other way to know them).
pub fn outbound_json(
    id: uuid::Uuid,
    kind: EventKind,
    at: Timestamp,
    mut data: serde_json::Value,
    user: Option<UserId>,
    campaign: Option<CampaignId>,
) -> String {
    if let Some(fields) = data.as_object_mut() {
        if let Some(user) = user {
            fields.insert("user_id".into(), user.to_string().into());
        }
        if let Some(campaign) = campaign {
            fields.insert("campaign_id".into(), campaign.to_string().into());
        }
    }
    serde_json::json!({"id": id, "type": kind, "at": at, "data": data}).to_string()
}

#[derive(Debug, Clone)]
pub struct EventBus {
    local: broadcast::Sender<Event>,
    instance: String,
    remote: Option<mpsc::Sender<String>>,
}

impl EventBus {
    /// In-process only (embedded mode).
    pub fn local() -> Self {
        Self {
            local: broadcast::channel(LOCAL_BUFFER).0,
            instance: uuid::Uuid::now_v7().to_string(),
            remote: None,
        }
    }

    /// Also across instances, on the Redis channel `channel`: starts the
    /// publisher and the relay that hands other instances' events to local
    /// listeners. `subscribe_url` is a plain Redis URL (on a cluster, any node:
    /// Redis Cluster propagates PUBLISH to every node).
    pub fn over_redis(
        conn: RedisConn,
        subscribe_url: String,
        channel: String,
        tasks: &mut Tasks,
    ) -> Self {
        let mut bus = Self::local();
        let (tx, rx) = mpsc::channel(REMOTE_BUFFER);
        tasks.spawn(
            "event publisher",
            publisher(conn, channel.clone(), rx, tasks.shutdown()),
        );
        tasks.spawn_loop(
            "event relay",
            relay(
                subscribe_url,
                channel,
                bus.local.clone(),
                bus.instance.clone(),
            ),
        );
        bus.remote = Some(tx);
        bus
    }

    pub fn publish(&self, mut event: Event) {
        event.origin.clone_from(&self.instance);
        if let Some(remote) = &self.remote
            && let Ok(json) = serde_json::to_string(&event)
            && remote.try_send(json).is_err()
        {
            tracing::debug!("event backlog full; dropping an event for other instances");
        }
        // No listener is not an error.
        let _ = self.local.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }
}

/// Publish queued events to other instances. At shutdown (the server has
/// answered its last request) it publishes what is still queued, for at most
/// [`PUBLISH_AT_EXIT`], then stops.
async fn publisher(
    mut conn: RedisConn,
    channel: String,
    mut rx: mpsc::Receiver<String>,
    mut shutdown: Shutdown,
) {
    let mut publish = async |json: String| {
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&json)
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not publish an event to other instances");
        }
    };
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(json) => publish(json).await,
                None => return,
            },
            () = shutdown.begun() => break,
        }
    }
    let _ = tokio::time::timeout(PUBLISH_AT_EXIT, async {
        while let Ok(json) = rx.try_recv() {
            publish(json).await;
        }
    })
    .await;
}

/// Forward other instances' events to local listeners, reconnecting forever.
async fn relay(url: String, channel: String, local: broadcast::Sender<Event>, me: String) {
    loop {
        match subscribe_once(&url, &channel, &local, &me).await {
            Ok(()) => tracing::warn!("event subscription ended; reconnecting"),
            Err(e) => tracing::debug!(error = %e, "event subscription failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn subscribe_once(
    url: &str,
    channel: &str,
    local: &broadcast::Sender<Event>,
    me: &str,
) -> redis::RedisResult<()> {
    let mut pubsub = redis::Client::open(url)?.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        match serde_json::from_str::<Event>(&payload) {
            Ok(event) if event.origin != me => {
                let _ = local.send(event);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "ignoring a malformed event"),
        }
    }
    Ok(())
}
