//! Codes: redeeming a shared or unique code (another door into the same
//! claim), and the background jobs that generate a campaign's unique codes.
//!
//! ```text
//! redeem(code) ── wrong shape ──────────────────────────────▶ invalid_input
//!   out of failed guesses (user or address) ────────────────▶ rate_limited
//!   shared code (cache, else the record) ─▶ claim(SharedCode) ▶ the claim's answer
//!   unique code ─ redeemed already ─────────────────────────▶ code_used (or the replay)
//!               └ lease it (one conditional write) ─ taken ─▶ code_used
//!                 └ claim(Code) ─ issued: the coupon carries the code, the lease stays
//!                               └ refused: the lease goes back
//!   nothing ────────────────────────────────────────────────▶ not_found
//! ```
//!
//! Every code that leads nowhere takes the same path (one lookup of both
//! kinds in the record), so its answer and its time say nothing about which
//! codes exist.

use std::net::IpAddr;
use std::time::Duration;

use super::claim::{ClaimError, ClaimOutcome, Door, claim};
use crate::admission::Rejection;
use crate::domain::InvalidInput;
use crate::domain::campaign::Issuance;
use crate::domain::code::{self, Pattern};
use crate::domain::ids::{CampaignId, JobId, UserId};
use crate::rate_limit::RetryAfter;
use crate::state::Shared;
use crate::store::{CodeHit, Job, JobStatus, StoreError};

/// How long a redemption holds its unique code while its claim is decided:
/// longer than any commit can take (a PostgreSQL statement times out at 5 s).
const CODE_LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("no such code")]
    NotFound,
    #[error("{0}")]
    CodeUsed(&'static str),
    #[error("too many failed codes; retry in {} s", .0.secs)]
    RateLimited(RetryAfter),
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

impl From<StoreError> for RedeemError {
    fn from(e: StoreError) -> Self {
        RedeemError::Claim(ClaimError::Store(e))
    }
}

/// Redeem `raw` for `user`, who sends it from `client`.
pub async fn redeem(
    state: &Shared,
    user: UserId,
    client: IpAddr,
    raw: &str,
    key: Option<&str>,
) -> Result<ClaimOutcome, RedeemError> {
    let result = redeem_code(state, user, client, raw, key).await;
    let failed = matches!(
        result,
        Err(RedeemError::NotFound | RedeemError::CodeUsed(_))
    );
    let result = match result {
        // A failure counts against the guesser; the one that runs them out
        // is already refused.
        Err(e) if failed => match state.limits.code_guess_failed(user, client) {
            Err(wait) => Err(RedeemError::RateLimited(wait)),
            Ok(()) => Err(e),
        },
        other => other,
    };
    state
        .metrics
        .code_redemptions
        .with_label_values(&[label(&result)])
        .inc();
    result
}

fn label(result: &Result<ClaimOutcome, RedeemError>) -> &'static str {
    match result {
        Ok(ClaimOutcome::Issued(_)) => "issued",
        Ok(ClaimOutcome::Replayed(_)) => "replayed",
        Ok(ClaimOutcome::Rejected(r)) => super::claim::refusal(*r).0,
        Err(RedeemError::Invalid(_)) => "invalid_input",
        Err(RedeemError::NotFound) => "not_found",
        Err(RedeemError::CodeUsed(_)) => "code_used",
        Err(RedeemError::RateLimited(_) | RedeemError::Claim(ClaimError::RateLimited(_))) => {
            "rate_limited"
        }
        Err(RedeemError::Claim(_)) => "error",
    }
}

async fn redeem_code(
    state: &Shared,
    user: UserId,
    client: IpAddr,
    raw: &str,
    key: Option<&str>,
) -> Result<ClaimOutcome, RedeemError> {
    let code = code::normalize(raw)?;
    state
        .limits
        .check_code_guess(user, client)
        .map_err(RedeemError::RateLimited)?;
    let hit = match state.catalog.shared_code(&code) {
        Some(campaign) => Some(CodeHit::Shared(campaign)),
        None => state.store.find_code(&code).await?,
    };
    match hit {
        None => Err(RedeemError::NotFound),
        Some(CodeHit::Shared(campaign)) => {
            state.catalog.remember_shared_code(&code, campaign);
            let outcome = claim(state, campaign, user, key, Door::SharedCode).await?;
            if matches!(outcome, ClaimOutcome::Rejected(Rejection::Ended)) {
                // A newer campaign may have taken the code over: look again next time.
                state.catalog.forget_shared_code(&code);
            }
            Ok(outcome)
        }
        Some(CodeHit::Unique(campaign)) => redeem_unique(state, user, campaign, code, key).await,
    }
}

async fn redeem_unique(
    state: &Shared,
    user: UserId,
    campaign: CampaignId,
    code: String,
    key: Option<&str>,
) -> Result<ClaimOutcome, RedeemError> {
    if let Some(used) = redeemed(state, user, &code, key).await? {
        return used;
    }
    let now = state.clock.now();
    let until = now.plus_millis(CODE_LEASE.as_millis() as i64);
    if !state.store.lease_code(&code, now, until).await? {
        return Err(RedeemError::CodeUsed(
            "this code is being redeemed right now",
        ));
    }
    // Redeemed between the first look and the lease (its lease ran out)?
    if let Some(used) = redeemed(state, user, &code, key).await? {
        return used;
    }
    let result = claim(
        state,
        campaign,
        user,
        key,
        Door::Code(code.clone().into_boxed_str()),
    )
    .await;
    // Nothing issued for certain: the code is free again at once. An
    // unknown outcome keeps the lease until it runs out; by then the record
    // tells whether the coupon (which carries the code) landed.
    let issued_nothing = matches!(
        result,
        Ok(ClaimOutcome::Rejected(_))
            | Err(ClaimError::RateLimited(_)
                | ClaimError::NoSuchCampaign
                | ClaimError::NotClaimable(_))
    );
    if issued_nothing && let Err(e) = state.store.release_code(&code, until).await {
        tracing::debug!(error = %e, "code lease not given back; it runs out by itself");
    }
    Ok(result?)
}

/// If the code was redeemed: the replay (same user, same Idempotency-Key),
/// or `code_used`.
async fn redeemed(
    state: &Shared,
    user: UserId,
    code: &str,
    key: Option<&str>,
) -> Result<Option<Result<ClaimOutcome, RedeemError>>, RedeemError> {
    let Some(r) = state.store.redemption_of(code).await? else {
        return Ok(None);
    };
    if r.user == user && key.is_some() && r.key.as_deref() == key {
        let coupon = state.store.get_coupon(r.coupon).await?;
        if let Some(coupon) = coupon {
            return Ok(Some(Ok(ClaimOutcome::Replayed(coupon))));
        }
    }
    Ok(Some(Err(RedeemError::CodeUsed(
        "this code has been redeemed already",
    ))))
}

/// The most codes one job makes.
pub const MAX_JOB_CODES: i64 = 10_000_000;
/// Codes written per transaction: big enough to be quick, small enough that
/// the group commit never waits long behind one (embedded: one writer).
const CODES_PER_ROUND: i64 = 5_000;
/// A job's lease: renewed every round; one that runs out (its instance
/// died) lets another instance take the job over.
pub const JOB_LEASE: Duration = Duration::from_secs(30);
/// A round that fails this many times in a row fails the job.
const ROUND_ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no such campaign")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("this campaign's issuance is {0}: only a codes campaign has unique codes")]
    NotCodes(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Start a job making `count` codes of `pattern` (default: 12 random
/// symbols) for a `codes` campaign; it runs in the background.
pub async fn start_job(
    state: &Shared,
    campaign: CampaignId,
    count: i64,
    pattern: Option<&str>,
) -> Result<Job, JobError> {
    let c = state
        .store
        .get_campaign(campaign)
        .await?
        .ok_or(JobError::NotFound)?;
    if c.issuance != Issuance::Codes {
        return Err(JobError::NotCodes(c.issuance.as_str()));
    }
    if !(1..=MAX_JOB_CODES).contains(&count) {
        return Err(
            InvalidInput::new("count", format!("must be between 1 and {MAX_JOB_CODES}")).into(),
        );
    }
    let pattern = pattern.map(Pattern::parse).transpose()?.unwrap_or_default();
    let now = state.clock.now();
    let job = Job {
        id: JobId::generate(),
        kind: "codes".into(),
        campaign_id: campaign,
        pattern: pattern.as_str().to_owned(),
        status: JobStatus::Running,
        done: 0,
        total: count,
        error: None,
        created_at: now,
        updated_at: now,
    };
    if !state.store.create_code_job(&job).await? {
        return Err(InvalidInput::new(
            "count",
            format!(
                "would take the campaign's codes past its total_quantity ({}): no more codes than coupons",
                c.total_quantity
            ),
        )
        .into());
    }
    state.jobs_created.notify_one();
    Ok(job)
}

/// This instance's job runner: takes running jobs whose lease is free (new
/// ones, and ones whose instance died) and works them to the end.
pub async fn run_jobs(state: crate::state::AppState) {
    loop {
        let now = state.clock.now();
        let leased = state
            .store
            .lease_job(now, now.plus_millis(JOB_LEASE.as_millis() as i64))
            .await;
        match leased {
            Ok(Some(job)) => work(&state, job).await,
            Ok(None) => {
                // Woken by a job created here; others' and orphaned ones
                // are found by the poll.
                let _ = tokio::time::timeout(Duration::from_secs(2), state.jobs_created.notified())
                    .await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "jobs: the record is unreachable; will retry");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Make a job's remaining codes, one transaction per round. Memory holds
/// one round's codes, however many the job makes.
async fn work(state: &Shared, mut job: Job) {
    let pattern = match Pattern::parse(&job.pattern) {
        Ok(p) => p,
        Err(e) => return fail(state, &job, &e.to_string()).await,
    };
    tracing::info!(job = %job.id, campaign = %job.campaign_id, done = job.done, total = job.total, "code job: working");
    let mut failures = 0;
    while job.done < job.total {
        let round = (job.total - job.done).min(CODES_PER_ROUND) as usize;
        let codes = {
            let mut rng = rand::thread_rng();
            (0..round)
                .map(|_| pattern.generate(&mut rng))
                .collect::<Vec<_>>()
        };
        let now = state.clock.now();
        let lease = now.plus_millis(JOB_LEASE.as_millis() as i64);
        match state.store.add_codes(&job, &codes, now, lease).await {
            Ok(0) => {
                // Every code collided (never in practice), or the job is no
                // longer ours to write: read it again.
                match state.store.get_job(job.id).await {
                    Ok(Some(current)) if current.status == JobStatus::Running => job = current,
                    _ => return,
                }
            }
            Ok(added) => {
                failures = 0;
                job.done += added as i64;
                state.metrics.codes_generated.inc_by(added);
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(job = %job.id, error = %e, attempt = failures, "code job: a round failed");
                if failures >= ROUND_ATTEMPTS {
                    return fail(state, &job, &format!("writing codes failed: {e}")).await;
                }
                tokio::time::sleep(Duration::from_millis(500 << failures)).await;
            }
        }
        // Let claims and their group commit go first between rounds.
        tokio::task::yield_now().await;
    }
    tracing::info!(job = %job.id, total = job.total, "code job: done");
}

async fn fail(state: &Shared, job: &Job, error: &str) {
    tracing::error!(job = %job.id, error, "code job failed");
    if let Err(e) = state.store.fail_job(job.id, error, state.clock.now()).await {
        // The lease runs out and a runner takes the job up again.
        tracing::warn!(job = %job.id, error = %e, "code job: could not record the failure");
    }
}
