//! Codes: unique codes and the jobs that make them, shared codes, and a
//! redemption's lease on its code.

use async_trait::async_trait;

use super::StoreError;
use super::columns::{Columns, parse_id};
use crate::domain::ids::{CampaignId, CouponId, JobId, UserId};
use crate::domain::timestamp::Timestamp;

/// Where a code leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeHit {
    /// One of a `codes` campaign's unique codes.
    Unique(CampaignId),
    /// The shared code of a campaign (the latest to take it).
    Shared(CampaignId),
}

/// The coupon a unique code was redeemed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub coupon: CouponId,
    pub user: UserId,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }
}

/// A background job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    /// Today always `codes`.
    pub kind: String,
    pub campaign_id: CampaignId,
    pub pattern: String,
    pub status: JobStatus,
    pub done: i64,
    pub total: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One line of a campaign's code export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLine {
    pub code: String,
    /// The coupon it was redeemed for, with its owner, status and issue time.
    pub coupon: Option<(CouponId, UserId, String, Timestamp)>,
}

#[async_trait]
pub trait CodeStore {
    /// A unique code, else a shared one. Both are looked up every time, so
    /// every code that leads nowhere costs the same.
    async fn find_code(&self, code: &str) -> Result<Option<CodeHit>, StoreError>;
    /// The coupon carrying this unique code, if it was redeemed.
    async fn redemption_of(&self, code: &str) -> Result<Option<Redemption>, StoreError>;
    /// Take the code for `holder`'s redemption until `until`, unless
    /// another holds it past `now`: `Ok(None)` if taken, else the holder.
    /// One conditional write: across instances, one winner.
    async fn lease_code(
        &self,
        code: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<String>, StoreError>;
    /// Give back a lease taken until `until` (the redemption issued nothing).
    async fn release_code(&self, code: &str, until: Timestamp) -> Result<(), StoreError>;

    /// Record a new codes job and promise its codes, unless that would take
    /// the campaign's codes past its stock (`Ok(false)`, nothing written).
    async fn create_code_job(&self, job: &Job) -> Result<bool, StoreError>;
    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    /// A campaign's jobs, newest first (at most `limit`).
    async fn campaign_jobs(&self, campaign: CampaignId, limit: u32)
    -> Result<Vec<Job>, StoreError>;
    /// Lease the oldest running job nobody holds past `now`, until `until`.
    async fn lease_job(&self, now: Timestamp, until: Timestamp) -> Result<Option<Job>, StoreError>;
    /// Insert these codes for `job`, whose lease runs until `held` (one
    /// already in the record is skipped: a collision), count the new ones
    /// into `done` in the same transaction, finish the job when `done`
    /// reaches `total`, and renew the lease to `lease_until`. Returns how
    /// many were new, or `None` (nothing written) if the job is no longer
    /// running under this lease: another runner took it over, or it failed.
    async fn add_codes(
        &self,
        job: &Job,
        held: Timestamp,
        codes: &[String],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<u64>, StoreError>;
    /// Mark a job running under the lease `held` failed, and give back the
    /// codes it promised and did not make (as the failing statement read
    /// them).
    async fn fail_job(
        &self,
        job: JobId,
        held: Timestamp,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// A page of a campaign's codes in code order, after `after`.
    async fn code_page(
        &self,
        campaign: CampaignId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CodeLine>, StoreError>;
}

pub(super) const JOB_COLUMNS: &str =
    "id, kind, campaign_id, pattern, status, done, total, error, created_at, updated_at";

pub(super) fn job(row: &impl Columns) -> Result<Job, sqlx::Error> {
    Ok(Job {
        id: parse_id(&row.text("id")?)?,
        kind: row.text("kind")?,
        campaign_id: parse_id(&row.text("campaign_id")?)?,
        pattern: row.text("pattern")?,
        status: match row.text("status")?.as_str() {
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            _ => JobStatus::Failed,
        },
        done: row.int("done")?,
        total: row.int("total")?,
        error: row.opt_text("error")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

pub(super) fn code_line(row: &impl Columns) -> Result<CodeLine, sqlx::Error> {
    let coupon = match row.opt_text("coupon_id")? {
        Some(id) => Some((
            parse_id(&id)?,
            parse_id(&row.text("user_id")?)?,
            row.text("status")?,
            Timestamp(row.int("issued_at")?),
        )),
        None => None,
    };
    Ok(CodeLine {
        code: row.text("code")?,
        coupon,
    })
}

/// How many codes one INSERT writes (3 parameters each: well under
/// SQLite's 32,766 and PostgreSQL's 65,535).
pub const CODES_PER_STATEMENT: usize = 1_000;

/// [`CodeStore`] for a store with a `pool` of database `$db`.
macro_rules! code_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::CodeStore for $store {
            async fn find_code(
                &self,
                code: &str,
            ) -> Result<Option<$crate::store::CodeHit>, StoreError> {
                let rows = sqlx::query(
                    "SELECT 'unique' AS kind, campaign_id FROM campaign_codes WHERE code = $1 \
                     UNION ALL SELECT 'shared' AS kind, campaign_id FROM shared_codes WHERE code = $1",
                )
                .bind(code)
                .fetch_all(&self.pool)
                .await?;
                let mut hit = None;
                for row in &rows {
                    use $crate::store::columns::Columns;
                    let campaign = $crate::store::columns::parse_id(&row.text("campaign_id")?)?;
                    match row.text("kind")?.as_str() {
                        "unique" => return Ok(Some($crate::store::CodeHit::Unique(campaign))),
                        _ => hit = Some($crate::store::CodeHit::Shared(campaign)),
                    }
                }
                Ok(hit)
            }

            async fn redemption_of(
                &self,
                code: &str,
            ) -> Result<Option<$crate::store::Redemption>, StoreError> {
                use $crate::store::columns::{Columns, parse_id};
                let row = sqlx::query(
                    "SELECT id, user_id, idempotency_key FROM coupons WHERE code = $1",
                )
                .bind(code)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::store::Redemption {
                    coupon: parse_id(&row.text("id")?)?,
                    user: parse_id(&row.text("user_id")?)?,
                    key: row.opt_text("idempotency_key")?,
                }))
            }

            async fn lease_code(
                &self,
                code: &str,
                holder: &str,
                now: Timestamp,
                until: Timestamp,
            ) -> Result<Option<String>, StoreError> {
                {
                    let _turn = self.write_turn().await;
                    let done = sqlx::query(
                        "UPDATE campaign_codes SET lease_until = $1, leased_by = $2 \
                         WHERE code = $3 AND (lease_until IS NULL OR lease_until <= $4)",
                    )
                    .bind(until.0)
                    .bind(holder)
                    .bind(code)
                    .bind(now.0)
                    .execute(&self.pool)
                    .await?;
                    if done.rows_affected() == 1 {
                        return Ok(None);
                    }
                }
                let held: Option<Option<String>> =
                    sqlx::query_scalar("SELECT leased_by FROM campaign_codes WHERE code = $1")
                        .bind(code)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(Some(held.flatten().unwrap_or_default()))
            }

            async fn release_code(&self, code: &str, until: Timestamp) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "UPDATE campaign_codes SET lease_until = NULL WHERE code = $1 AND lease_until = $2",
                )
                .bind(code)
                .bind(until.0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn create_code_job(&self, job: &$crate::store::Job) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                // Conditional: two jobs at once cannot both pass the stock.
                let promised = sqlx::query(
                    "UPDATE campaigns SET codes_planned = codes_planned + $1 \
                     WHERE id = $2 AND codes_planned + $1 <= total_quantity",
                )
                .bind(job.total)
                .bind(job.campaign_id.to_string())
                .execute(&mut *tx)
                .await?;
                if promised.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO jobs (id, kind, campaign_id, pattern, status, done, total, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'running', 0, $5, $6, $6)",
                )
                .bind(job.id.to_string())
                .bind(&job.kind)
                .bind(job.campaign_id.to_string())
                .bind(&job.pattern)
                .bind(job.total)
                .bind(job.created_at.0)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn get_job(
                &self,
                id: $crate::domain::ids::JobId,
            ) -> Result<Option<$crate::store::Job>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM jobs WHERE id = $1",
                    $crate::store::codes::JOB_COLUMNS
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::codes::job).transpose()?)
            }

            async fn campaign_jobs(
                &self,
                campaign: CampaignId,
                limit: u32,
            ) -> Result<Vec<$crate::store::Job>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM jobs WHERE campaign_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                    $crate::store::codes::JOB_COLUMNS
                ))
                .bind(campaign.to_string())
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::codes::job)
                    .collect::<Result<_, _>>()?)
            }

            async fn lease_job(
                &self,
                now: Timestamp,
                until: Timestamp,
            ) -> Result<Option<$crate::store::Job>, StoreError> {
                let _turn = self.write_turn().await;
                // The outer condition repeats the inner one (see lease_outbox).
                let row = sqlx::query(&format!(
                    "UPDATE jobs SET lease_until = $1 \
                     WHERE id IN (SELECT id FROM jobs WHERE status = 'running' \
                       AND (lease_until IS NULL OR lease_until <= $2) ORDER BY created_at, id LIMIT 1) \
                     AND status = 'running' AND (lease_until IS NULL OR lease_until <= $2) \
                     RETURNING {}",
                    $crate::store::codes::JOB_COLUMNS
                ))
                .bind(until.0)
                .bind(now.0)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::codes::job).transpose()?)
            }

            async fn add_codes(
                &self,
                job: &$crate::store::Job,
                held: Timestamp,
                codes: &[String],
                now: Timestamp,
                lease_until: Timestamp,
            ) -> Result<Option<u64>, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let (job_id, campaign) = (job.id.to_string(), job.campaign_id.to_string());
                let mut added = 0;
                for chunk in codes.chunks($crate::store::codes::CODES_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO campaign_codes (code, campaign_id, job_id) ",
                    );
                    q.push_values(chunk, |mut b, code| {
                        b.push_bind(code.as_str())
                            .push_bind(campaign.as_str())
                            .push_bind(job_id.as_str());
                    });
                    q.push(" ON CONFLICT (code) DO NOTHING");
                    added += q.build().execute(&mut *tx).await?.rows_affected();
                }
                // Only while this job runs under our lease: on PostgreSQL a
                // runner that took it over (or failed it) meanwhile makes
                // this wait, then match nothing. Nothing of the round lands.
                let moved = sqlx::query(
                    "UPDATE jobs SET done = done + $1, updated_at = $2, lease_until = $3, \
                     status = CASE WHEN done + $1 >= total THEN 'done' ELSE status END \
                     WHERE id = $4 AND status = 'running' AND lease_until = $5",
                )
                .bind(added as i64)
                .bind(now.0)
                .bind(lease_until.0)
                .bind(&job_id)
                .bind(held.0)
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() != 1 {
                    return Ok(None);
                }
                tx.commit().await?;
                Ok(Some(added))
            }

            async fn fail_job(
                &self,
                job: $crate::domain::ids::JobId,
                held: Timestamp,
                error: &str,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                use $crate::store::columns::Columns;
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                // The job's row first (locked on PostgreSQL): what it did not
                // make is read in the statement that ends it.
                let failed = sqlx::query(
                    "UPDATE jobs SET status = 'failed', error = $1, updated_at = $2, lease_until = NULL \
                     WHERE id = $3 AND status = 'running' AND lease_until = $4 \
                     RETURNING campaign_id, total - done AS unmade",
                )
                .bind(error)
                .bind(now.0)
                .bind(job.to_string())
                .bind(held.0)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = failed {
                    sqlx::query(
                        "UPDATE campaigns SET codes_planned = codes_planned - $1 WHERE id = $2",
                    )
                    .bind(row.int("unmade")?)
                    .bind(row.text("campaign_id")?)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn code_page(
                &self,
                campaign: CampaignId,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::store::CodeLine>, StoreError> {
                let rows = sqlx::query(
                    "SELECT k.code, c.id AS coupon_id, c.user_id, c.status, c.issued_at \
                     FROM campaign_codes k LEFT JOIN coupons c ON c.code = k.code \
                     WHERE k.campaign_id = $1 AND ($2 IS NULL OR k.code > $2) \
                     ORDER BY k.code LIMIT $3",
                )
                .bind(campaign.to_string())
                .bind(after)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::codes::code_line)
                    .collect::<Result<_, _>>()?)
            }
        }
    };
}
pub(super) use code_queries;
