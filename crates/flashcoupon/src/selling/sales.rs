//! Creating and changing sales: the record and the gate change together,
//! under `campaign_writes` (every drop's writes take it; orders never do),
//! ordered so the gate never admits a seq the record would refuse: stock
//! grows in the record first and shrinks in the gate first. Each write runs
//! on its own task, so a caller that goes away cannot leave it half-done.

use super::{SellError, drop_of, terms_of};
use crate::admission::Stock;
use crate::domain::ids::SaleId;
use crate::domain::sale::{Sale, SalePatch};
use crate::state::AppState;
use crate::store::StoreError;

type Written = Result<(Sale, Stock), SellError>;

/// Run `work` on its own task (in the request's trace) and wait for it.
async fn detached<Fut>(work: Fut) -> Written
where
    Fut: std::future::Future<Output = Written> + Send + 'static,
{
    tokio::spawn(crate::trace::carry(work))
        .await
        .map_err(|e| SellError::Task(e.to_string()))?
}

/// Store a new sale and open its gate.
pub async fn create(state: &AppState, sale: Sale) -> Written {
    let state = state.clone();
    detached(async move {
        let _writes = state.campaign_writes.lock().await;
        state.store.insert_sale(&sale).await?;
        // If this fails (Redis unreachable) the sale is in the record without
        // a gate; the first order or read rebuilds it from the record.
        state.gate.open(drop_of(sale.id), &terms_of(&sale)).await?;
        state.catalog.insert_sale(sale.clone());
        let stock = state.gate.stock(drop_of(sale.id)).await?;
        Ok((sale, stock))
    })
    .await
}

/// Pause or resume, move the end, or change the stock (never below a unit
/// an order holds).
pub async fn patch(state: &AppState, id: SaleId, body: SalePatch) -> Written {
    let state = state.clone();
    detached(async move {
        let _writes = state.campaign_writes.lock().await;
        let sale = state
            .store
            .get_sale(id)
            .await?
            .ok_or(SellError::NoSuchSale)?;
        let drop = drop_of(id);
        let stock = state.gate.stock(drop).await?;
        let new_total = body.validate(&sale)?;
        let below = |e: crate::admission::StockBelowIssued| SellError::BelowSold(e.highest_seq);
        let shrunk_from = match new_total {
            Some(total) if total < stock.total => {
                Some(state.gate.set_total(drop, total).await?.map_err(below)?)
            }
            _ => None,
        };
        if let Err(err) = state
            .store
            .update_sale(id, body.paused, body.ends_at, new_total)
            .await
        {
            if let Some(old) = shrunk_from {
                let _ = state.gate.set_total(drop, old).await;
            }
            return Err(match err {
                StoreError::Constraint(_) => SellError::BelowSold(stock.total - stock.remaining),
                other => other.into(),
            });
        }
        if let Some(total) = new_total
            && shrunk_from.is_none()
        {
            state.gate.set_total(drop, total).await?.map_err(below)?;
        }
        if let Some(paused) = body.paused {
            state.gate.set_paused(drop, paused).await?;
        }
        if let Some(ends) = body.ends_at {
            state.gate.set_ends_at(drop, ends).await?;
        }
        let sale = state
            .store
            .get_sale(id)
            .await?
            .ok_or(SellError::NoSuchSale)?;
        let stock = state.gate.stock(drop).await?;
        Ok((sale, stock))
    })
    .await
}
