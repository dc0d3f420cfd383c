//! Time-based events: `campaign.opening_soon`, `campaign.opened`,
//! `coupon.expiring_soon`, and for time sales `sale.opening_soon`,
//! `sale.opened` and `sale.sold_out`, decided against the platform clock (so
//! tests step it instead of sleeping).
//!
//! Every instance runs the scheduler. Exactly once per (user, object, kind)
//! comes from the record, not from coordination: each event carries a once
//! key, the inbox's unique index admits one row per user and key, and only
//! the instance whose insert landed pushes it. A restart finds the rows and
//! sends nothing twice.

use super::announce::Announcement;
use super::{Notifier, before};
use crate::domain::campaign::{Campaign, Validity};
use crate::domain::sale::Sale;
use crate::domain::timestamp::Timestamp;
use crate::events::{Event, EventKind, Opening, Payload, SaleOpening, SaleSoldOut};
use crate::issuing::drop_of;
use crate::store::Topic;

/// Expiring coupons handled per campaign per pass (the rest come next pass).
const REMINDER_PAGE: u32 = 1_000;

impl Notifier {
    /// One scheduler pass at `now`; `reminders` adds the expiry scan.
    /// Public so tests can run a pass right after stepping the clock.
    pub async fn tick(&self, now: Timestamp, reminders: bool) -> anyhow::Result<()> {
        let campaigns = self.store.all_campaigns().await?;
        let mut first_error = None;
        for c in &campaigns {
            let mut pass = self.campaign_pass(c, now).await;
            if reminders && pass.is_ok() {
                pass = self.remind_expiring(c, now).await;
            }
            if let Err(e) = pass {
                tracing::debug!(error = %e, campaign = %c.id, "scheduler: campaign pass failed");
                first_error.get_or_insert(e);
            }
        }
        for s in &self.store.all_sales().await? {
            if let Err(e) = self.sale_pass(s, now).await {
                tracing::debug!(error = %e, sale = %s.id, "scheduler: sale pass failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A sale's subscribers hear it opens soon, then that it opened; they
    /// and the shop's endpoints hear it sold out.
    async fn sale_pass(&self, s: &Sale, now: Timestamp) -> anyhow::Result<()> {
        // A patch moves the record's end too: no need to ask the gate.
        if now >= s.ends_at {
            return Ok(());
        }
        let topic = Topic::Sale(s.id);
        let opening = SaleOpening {
            sale_id: s.id,
            sale_name: s.name.clone(),
            starts_at: s.starts_at,
        };
        if now < s.starts_at {
            if now >= before(s.starts_at, self.settings.opening_lead) {
                self.tell_subscribers(topic, Payload::SaleOpeningSoon(opening))
                    .await?;
            }
            return Ok(());
        }
        let stock = self.gate.stock(crate::selling::drop_of(s.id)).await?;
        if !stock.paused && stock.remaining > 0 {
            let a = Announcement {
                key: format!("{}:{}", EventKind::SaleOpened, s.id),
                payload: Payload::SaleOpened(opening),
                text: format!(
                    "🟢 \"{}\" is on sale: {} × {} at {} KRW.",
                    s.name, stock.remaining, s.product.name, s.sale_price
                ),
            };
            self.announce(topic, a, |_| true, true).await?;
        }
        // Every unit taken by a durable order. An order that expires gives
        // its unit back; the sale is announced sold out once per total.
        if stock.total > 0 && stock.issued >= stock.total {
            let a = Announcement {
                key: format!("{}:{}:{}", EventKind::SaleSoldOut, s.id, stock.total),
                payload: Payload::SaleSoldOut(SaleSoldOut {
                    sale_id: s.id,
                    sale_name: s.name.clone(),
                    total_quantity: stock.total,
                    sold_count: stock.issued,
                }),
                text: format!(
                    "🛒 \"{}\" sold out: all {} units ordered.",
                    s.name, stock.total
                ),
            };
            self.announce(topic, a, |_| true, true).await?;
        }
        Ok(())
    }

    async fn campaign_pass(&self, c: &Campaign, now: Timestamp) -> anyhow::Result<()> {
        let opening = Opening {
            campaign_name: c.name.clone(),
            issue_starts_at: c.issue_starts_at,
        };
        if now < c.issue_starts_at {
            if now >= before(c.issue_starts_at, self.settings.opening_lead) {
                self.tell_subscribers(Topic::Campaign(c.id), Payload::OpeningSoon(opening))
                    .await?;
            }
            return Ok(());
        }
        // The end may have been moved by a patch: the gate has the live value.
        let stock = self.gate.stock(drop_of(c.id)).await?;
        if now >= stock.ends_at {
            return Ok(());
        }
        if !stock.paused && now < stock.ends_at && stock.remaining > 0 {
            let a = Announcement {
                key: format!("{}:{}", EventKind::Opened, c.id),
                payload: Payload::Opened(opening),
                text: format!(
                    "🟢 \"{}\" is open: {} coupons to claim.",
                    c.name, stock.remaining
                ),
            };
            self.announce(Topic::Campaign(c.id), a, |_| true, true)
                .await?;
        }
        self.on_stock(c, &stock).await?;
        Ok(())
    }

    /// Remind owners of available coupons that expire within the lead.
    async fn remind_expiring(&self, c: &Campaign, now: Timestamp) -> anyhow::Result<()> {
        let horizon = now.plus_millis(self.settings.expiry_lead.as_millis() as i64);
        // The earliest and latest expiry any coupon of this campaign can have.
        let (earliest, latest) = match c.terms.validity {
            Validity::Days(d) => {
                let days = i64::from(d) * 86_400_000;
                (
                    c.issue_starts_at.plus_millis(days),
                    // A later end (a patch) only moves this later; bound it loosely.
                    Timestamp(i64::MAX),
                )
            }
            Validity::Window { until, .. } => (until, until),
        };
        if earliest > horizon || latest <= now {
            return Ok(());
        }
        loop {
            let coupons = self
                .store
                .expiring_unreminded(c.id, now, horizon, REMINDER_PAGE)
                .await?;
            let events = coupons
                .iter()
                .map(|coupon| {
                    let reminder = Payload::ExpiringSoon {
                        coupon_id: coupon.id,
                        campaign_name: c.name.clone(),
                        valid_until: coupon.valid_until,
                    };
                    let e = Event::new(reminder, now, Some(coupon.user), Some(c.id));
                    (e, format!("{}:{}", EventKind::ExpiringSoon, coupon.id))
                })
                .collect::<Vec<_>>();
            self.emit_once(events).await?;
            if (coupons.len() as u32) < REMINDER_PAGE {
                return Ok(());
            }
        }
    }
}
