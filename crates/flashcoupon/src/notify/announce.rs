//! Telling many at once: every subscriber of a campaign or a sale, once
//! each (the once key in the record decides who was told), and the shop's
//! endpoints, for news about the whole drop (opened, sold out, stock low).

use crate::admission::Stock;
use crate::domain::campaign::Campaign;
use crate::events::{Event, EventKind, Payload, StockNumbers};
use crate::store::{StoreError, Topic};

use super::{Notifier, lock};

/// A stable event id for a once key (the first 16 bytes of its SHA-256).
fn keyed_id(key: &str) -> uuid::Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// A once-only event about a campaign or a sale: its once key, payload and
/// chat text.
#[derive(Debug)]
pub(super) struct Announcement {
    pub key: String,
    pub payload: Payload,
    pub text: String,
}

impl Notifier {
    /// Tell every subscriber of `topic` about it, once each.
    pub async fn tell_subscribers(
        &self,
        topic: Topic,
        payload: Payload,
    ) -> Result<usize, StoreError> {
        const PAGE: u32 = 1_000;
        let once_key = format!("{}:{}", payload.kind(), topic.id());
        let mut told = 0;
        loop {
            let users = self
                .store
                .subscribers_missing(topic, &once_key, PAGE)
                .await?;
            let now = self.clock.now();
            let events = users
                .iter()
                .map(|u| {
                    let e = Event::new(payload.clone(), now, Some(*u), topic.campaign());
                    (e, once_key.clone())
                })
                .collect::<Vec<_>>();
            told += self.emit_once(events).await?;
            if (users.len() as u32) < PAGE {
                return Ok(told);
            }
        }
    }

    /// An event about a whole campaign or sale for its subscribers (if
    /// `subscribers`) and the shop's endpoints that `accept` it, once. It is
    /// skipped quickly if this instance already announced it.
    pub(super) async fn announce(
        &self,
        topic: Topic,
        a: Announcement,
        accept: impl Fn(&crate::store::WebhookRecord) -> bool,
        subscribers: bool,
    ) -> Result<(), StoreError> {
        if lock(&self.announced).contains(&a.key) {
            return Ok(());
        }
        if subscribers {
            self.tell_subscribers(topic, a.payload.clone()).await?;
        }
        let mut event = Event::new(a.payload, self.clock.now(), None, topic.campaign());
        self.webhooks
            .enqueue(&event, &a.key, &a.text, accept)
            .await?;
        // News for everyone (opened, sold out) goes out to the broker too,
        // with an id of the once key: instances that both announce it
        // publish one id (at least once, deduplicable). A stock-low notice
        // is one shop endpoint's own threshold: webhooks only.
        event.id = keyed_id(&a.key);
        if let Some(row) = self.outbound(&event).filter(|_| subscribers) {
            self.store.enqueue_outbox(&[row]).await?;
            self.outbox_written();
        }
        lock(&self.announced).insert(a.key);
        Ok(())
    }

    /// React to a campaign's live numbers: sold out, stock low.
    pub async fn on_stock(&self, campaign: &Campaign, stock: &Stock) -> Result<(), StoreError> {
        // Sold out once every coupon is durable (not while the last claims
        // are still committing: one of them could fail and free its stock).
        if stock.total > 0 && stock.issued >= stock.total {
            let a = Announcement {
                key: format!("{}:{}:{}", EventKind::SoldOut, campaign.id, stock.total),
                payload: Payload::SoldOut(StockNumbers {
                    campaign_name: campaign.name.clone(),
                    total_quantity: stock.total,
                    issued_count: stock.issued,
                    remaining_quantity: stock.remaining,
                }),
                text: format!(
                    "🎟️ \"{}\" sold out: all {} coupons issued.",
                    campaign.name, stock.total
                ),
            };
            self.announce(Topic::Campaign(campaign.id), a, |_| true, true)
                .await?;
        }
        let remaining = i64::from(stock.remaining);
        let endpoints = self.webhooks.endpoints().await?;
        for w in endpoints.iter() {
            let Some(threshold) = w.stock_low_threshold else {
                continue;
            };
            let low = EventKind::StockLow;
            if remaining <= threshold && w.events.iter().any(|e| e == low.as_str()) {
                let a = Announcement {
                    key: format!("{low}:{}:{}:{threshold}", campaign.id, w.id),
                    payload: Payload::StockLow {
                        threshold,
                        campaign_name: campaign.name.clone(),
                        remaining_quantity: stock.remaining,
                        total_quantity: stock.total,
                    },
                    text: format!(
                        "⚠️ \"{}\": {} of {} coupons left (threshold {threshold}).",
                        campaign.name, stock.remaining, stock.total
                    ),
                };
                let only_this = |candidate: &crate::store::WebhookRecord| candidate.id == w.id;
                self.announce(Topic::Campaign(campaign.id), a, only_this, false)
                    .await?;
            }
        }
        Ok(())
    }
}
