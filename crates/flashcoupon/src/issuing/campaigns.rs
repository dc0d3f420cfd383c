//! Creating and changing campaigns: the record and the gate change together,
//! under `campaign_writes` (claims never take it), ordered so the gate never
//! admits a seq the record would refuse: stock grows in the record first and
//! shrinks in the gate first. Each write runs on its own task, so a caller
//! that goes away (a client hanging up) cannot leave it half-done.

use std::future::Future;

use super::{drop_of, terms_of};
use crate::admission::{GateError, Stock};
use crate::domain::InvalidInput;
use crate::domain::campaign::{Campaign, CampaignPatch, Issuance};
use crate::domain::ids::CampaignId;
use crate::events::{Event, Payload};
use crate::state::AppState;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CampaignWriteError {
    #[error("no such campaign")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The stock would drop below a coupon already issued or being issued.
    #[error("total_quantity cannot go below the {0} coupons already issued or being issued")]
    BelowIssued(u32),
    /// A `codes` campaign's stock would drop below its codes.
    #[error("total_quantity cannot go below the codes generated or being generated")]
    BelowCodes,
    /// A campaign that has not ended uses this shared code.
    #[error("the code {0} is in use by a campaign that has not ended")]
    CodeTaken(String),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("campaign write task failed: {0}")]
    Task(String),
}

type Written = Result<(Campaign, Stock), CampaignWriteError>;

/// Store a new campaign and open its gate.
pub async fn create(state: &AppState, campaign: Campaign) -> Written {
    detached(state.clone(), move |state| async move {
        let _writes = state.campaign_writes.lock().await;
        match state
            .store
            .insert_campaign(&campaign, state.clock.now())
            .await
        {
            Err(StoreError::Unique(_)) if campaign.code.is_some() => {
                return Err(CampaignWriteError::CodeTaken(
                    campaign.code.clone().unwrap_or_default(),
                ));
            }
            other => other?,
        }
        // If this fails (Redis unreachable) the campaign is in the record
        // without a gate; the first claim or read rebuilds it from the record.
        state
            .gate
            .open(drop_of(campaign.id), &terms_of(&campaign))
            .await?;
        state.catalog.insert(campaign.clone());
        let stock = state.gate.stock(drop_of(campaign.id)).await?;
        Ok((campaign, stock))
    })
    .await
}

/// Pause or resume, move the end of issuing, or change the stock; tells the
/// live channels (`campaign.updated`).
pub async fn patch(state: &AppState, id: CampaignId, body: CampaignPatch) -> Written {
    detached(state.clone(), move |state| apply_patch(state, id, body)).await
}

/// Run `work` on its own task (in the request's trace) and wait for it:
/// dropping the caller's future no longer cancels it half-way.
async fn detached<F, Fut>(state: AppState, work: F) -> Written
where
    F: FnOnce(AppState) -> Fut,
    Fut: Future<Output = Written> + Send + 'static,
{
    tokio::spawn(crate::trace::carry(work(state)))
        .await
        .map_err(|e| CampaignWriteError::Task(e.to_string()))?
}

async fn apply_patch(state: AppState, id: CampaignId, body: CampaignPatch) -> Written {
    let _writes = state.campaign_writes.lock().await;
    let campaign = state
        .store
        .get_campaign(id)
        .await?
        .ok_or(CampaignWriteError::NotFound)?;
    let drop = drop_of(id);
    let stock = state.gate.stock(drop).await?;
    let new_total = body.validate(&campaign)?;
    let below_issued =
        |e: crate::admission::StockBelowIssued| CampaignWriteError::BelowIssued(e.highest_seq);
    // Shrinking: close the gate first, so no claim takes a seq above the new total.
    let shrunk_from = match new_total {
        Some(total) if total < stock.total => Some(
            state
                .gate
                .set_total(drop, total)
                .await?
                .map_err(below_issued)?,
        ),
        _ => None,
    };
    if let Err(err) = state
        .store
        .update_campaign(
            id,
            body.paused,
            body.issue_ends_at,
            new_total,
            state.clock.now(),
        )
        .await
    {
        if let Some(old) = shrunk_from {
            let _ = state.gate.set_total(drop, old).await;
        }
        return Err(match err {
            StoreError::Unique(_) if campaign.code.is_some() => {
                CampaignWriteError::CodeTaken(campaign.code.clone().unwrap_or_default())
            }
            StoreError::Constraint(_) if campaign.issuance == Issuance::Codes => {
                CampaignWriteError::BelowCodes
            }
            StoreError::Constraint(_) => CampaignWriteError::BelowIssued(stock.issued),
            other => other.into(),
        });
    }
    // Growing: the record allows it now, so the gate may hand out more.
    if let Some(total) = new_total
        && shrunk_from.is_none()
    {
        state
            .gate
            .set_total(drop, total)
            .await?
            .map_err(below_issued)?;
    }
    if let Some(paused) = body.paused {
        state.gate.set_paused(drop, paused).await?;
    }
    if let Some(ends) = body.issue_ends_at {
        state.gate.set_ends_at(drop, ends).await?;
    }
    let campaign = state
        .store
        .get_campaign(id)
        .await?
        .ok_or(CampaignWriteError::NotFound)?;
    let stock = state.gate.stock(drop).await?;
    let updated = Payload::CampaignUpdated {
        paused: stock.paused,
        total_quantity: stock.total,
        remaining_quantity: stock.remaining,
    };
    state
        .events
        .publish(Event::new(updated, state.clock.now(), None, Some(id)));
    Ok((campaign, stock))
}
