//! Campaigns and time sales by id, cached in each instance so a claim or an
//! order reads no database.
//!
//! Only what never changes after creation is read from the cache: the coupon
//! terms, the per-user limit, the opening time, how it issues. Stock, pause
//! and the end of issuing can change (PATCH, on any instance) and are read
//! from the gate.
//!
//! Shared codes redeemed here are cached too (code → campaign, as the
//! record answered), so a storm on one public code reads no database
//! either. Only codes that exist are kept: guesses cannot grow the map.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::campaign::Campaign;
use crate::domain::ids::{CampaignId, SaleId};
use crate::domain::sale::Sale;
use crate::store::{Store, StoreError};

#[derive(Debug, Default)]
pub struct Catalog {
    campaigns: RwLock<HashMap<CampaignId, Arc<Campaign>>>,
    shared_codes: RwLock<HashMap<String, CampaignId>>,
    /// Sales: only their price, limit, opening and payment time are read
    /// from here (they never change); stock, pause and end are the gate's.
    sales: RwLock<HashMap<SaleId, Arc<Sale>>>,
}

impl Catalog {
    pub fn insert(&self, campaign: Campaign) -> Arc<Campaign> {
        let campaign = Arc::new(campaign);
        self.campaigns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(campaign.id, campaign.clone());
        campaign
    }

    /// The campaign a shared code led to when last looked up here.
    pub fn shared_code(&self, code: &str) -> Option<CampaignId> {
        self.shared_codes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(code)
            .copied()
    }

    pub fn remember_shared_code(&self, code: &str, campaign: CampaignId) {
        self.shared_codes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(code.to_owned(), campaign);
    }

    /// The code's campaign ended: a newer one may hold the code now.
    pub fn forget_shared_code(&self, code: &str) {
        self.shared_codes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code);
    }

    /// Whether this instance has seen the campaign (no storage read).
    pub fn contains(&self, id: CampaignId) -> bool {
        self.campaigns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    /// From the cache, or from the record on a miss (a campaign created on
    /// another instance). `None` if there is no such campaign.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: CampaignId,
    ) -> Result<Option<Arc<Campaign>>, StoreError> {
        let cached = self
            .campaigns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if let Some(c) = cached {
            return Ok(Some(c));
        }
        Ok(store.get_campaign(id).await?.map(|c| self.insert(c)))
    }

    pub fn insert_sale(&self, sale: Sale) -> Arc<Sale> {
        let sale = Arc::new(sale);
        self.sales
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sale.id, sale.clone());
        sale
    }

    /// A sale from the cache, or from the record on a miss.
    pub async fn sale(
        &self,
        store: &dyn Store,
        id: SaleId,
    ) -> Result<Option<Arc<Sale>>, StoreError> {
        let cached = self
            .sales
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if let Some(s) = cached {
            return Ok(Some(s));
        }
        Ok(store.get_sale(id).await?.map(|s| self.insert_sale(s)))
    }
}
