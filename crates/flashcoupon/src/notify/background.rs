//! The notifier's loops: handing events to this instance's sockets, keeping
//! the live channels current, and the scheduler's clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::domain::campaign::Campaign;
use crate::domain::ids::CampaignId;
use crate::events::EventKind;
use crate::issuing::drop_of;

use super::fanout::COALESCE;
use super::live::LiveSnapshot;
use super::{Notifier, client_json, lock};

impl Notifier {
    /// Hand events for users to this instance's sockets.
    pub(super) async fn dispatch(self: Arc<Self>) {
        let mut rx = self.events.subscribe();
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let Some(user) = event.user else { continue };
                    if self.hub.connections(user) == 0 {
                        continue;
                    }
                    let json: Arc<str> = client_json(&event).into();
                    self.hub.send(user, &json);
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "socket dispatch fell behind; those events are in the inbox only"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Keep live channels current: claims and patches mark their campaign;
    /// once per period the dirty ones are read from the gate and published.
    pub(super) async fn run_live(self: Arc<Self>) {
        let mut rx = self.events.subscribe();
        let mut period = tokio::time::interval(COALESCE);
        period.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        let mut campaigns: std::collections::HashMap<CampaignId, Campaign> = Default::default();
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Ok(event) => {
                        if let Some(c) = event.campaign
                            && matches!(event.kind, EventKind::CouponIssued | EventKind::CampaignUpdated)
                        {
                            self.live.mark(c);
                        }
                    }
                    Err(RecvError::Lagged(_)) => self.live.mark_watched(),
                    Err(RecvError::Closed) => return,
                },
                _ = period.tick() => {
                    ticks += 1;
                    // Statuses change with time alone (opening, ending): once a second.
                    if ticks % 10 == 0 {
                        self.live.mark_watched();
                    }
                    for id in self.live.take_dirty() {
                        if let Err(e) = self.refresh(id, &mut campaigns).await {
                            tracing::debug!(error = %e, campaign = %id, "live: cannot read the campaign now");
                        }
                    }
                }
            }
        }
    }

    async fn refresh(
        self: &Arc<Self>,
        id: CampaignId,
        campaigns: &mut std::collections::HashMap<CampaignId, Campaign>,
    ) -> anyhow::Result<()> {
        if let std::collections::hash_map::Entry::Vacant(slot) = campaigns.entry(id) {
            let Some(c) = self.store.get_campaign(id).await? else {
                return Ok(());
            };
            slot.insert(c);
        }
        let campaign = &campaigns[&id];
        let stock = self.gate.stock(drop_of(campaign.id)).await?;
        self.live
            .publish(LiveSnapshot::new(campaign, &stock, self.clock.now()));
        // Telling every subscriber of a sell-out takes a while: not here,
        // where it would hold up every live channel, and once at a time.
        if lock(&self.reacting).insert(id) {
            let me = self.clone();
            let campaign = campaign.clone();
            tokio::spawn(async move {
                if let Err(e) = me.on_stock(&campaign, &stock).await {
                    tracing::debug!(error = %e, campaign = %campaign.id, "stock reactions will retry");
                }
                lock(&me.reacting).remove(&campaign.id);
            });
        }
        Ok(())
    }

    pub(super) async fn run_scheduler(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.settings.tick.max(Duration::from_millis(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            every.tick().await;
            // Expiry reminders scan coupons: once a minute is plenty.
            let reminders = ticks % 60 == 0;
            ticks += 1;
            if let Err(e) = self.tick(self.clock.now(), reminders).await {
                tracing::debug!(error = %e, "scheduler: will retry");
            }
        }
    }
}
