//! Codes: redeeming a shared or unique code (another door into the same
//! claim), and the background jobs that generate a campaign's unique codes.
//!
//! ```text
//! redeem(code) ── wrong shape ──────────────────────────────▶ invalid_input
//!   out of failed guesses (user, with the tries in flight; address) ▶ rate_limited
//!   shared code (cache, else the record) ─▶ claim(SharedCode) ▶ the claim's answer
//!   unique code ─ redeemed already ─────────────────────────▶ code_used (or the replay)
//!               └ lease it (one conditional write) ─ taken ─▶ code_used
//!                                   (by this same request retried: unavailable, retry)
//!                 └ claim(Code) ─ issued: the coupon carries the code, the lease stays
//!                               └ refused: the lease goes back
//!                               └ the record refused it: another coupon has the code
//!                                 (its stock went back) ▶ code_used
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
use crate::domain::timestamp::Timestamp;
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
    /// The same user and Idempotency-Key are redeeming this code already
    /// (an earlier try still being decided): retry, nothing is lost.
    #[error("your earlier redemption of this code is still being decided; retry shortly")]
    InFlight,
    /// The Idempotency-Key answered another code before.
    #[error("this Idempotency-Key was used for another code")]
    KeyReused,
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
    let result = match code::normalize(raw) {
        Err(e) => Err(e.into()),
        Ok(code) => match state.limits.begin_code_guess(user, client) {
            Err(wait) => Err(RedeemError::RateLimited(wait)),
            Ok(guess) => {
                let result = redeem_code(state, user, &code, key).await;
                guess.end(matches!(
                    result,
                    Err(RedeemError::NotFound | RedeemError::CodeUsed(_))
                ));
                result
            }
        },
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
        Err(RedeemError::InFlight) => "in_flight",
        Err(RedeemError::KeyReused) => "key_reused",
        Err(RedeemError::RateLimited(_) | RedeemError::Claim(ClaimError::RateLimited(_))) => {
            "rate_limited"
        }
        Err(RedeemError::Claim(_)) => "error",
    }
}

async fn redeem_code(
    state: &Shared,
    user: UserId,
    code: &str,
    key: Option<&str>,
) -> Result<ClaimOutcome, RedeemError> {
    let cached = state.catalog.shared_code(code);
    let hit = match cached {
        Some(campaign) => Some(CodeHit::Shared(campaign)),
        None => state.store.find_code(code).await?,
    };
    match hit {
        None => Err(RedeemError::NotFound),
        Some(CodeHit::Unique(campaign)) => redeem_unique(state, user, campaign, code, key).await,
        Some(CodeHit::Shared(campaign)) => {
            if cached.is_none() {
                state.catalog.remember_shared_code(code, campaign);
            }
            let outcome = claim(state, campaign, user, key, Door::SharedCode).await?;
            if cached.is_some() && matches!(outcome, ClaimOutcome::Rejected(Rejection::Ended)) {
                // What this instance remembered ended; a newer campaign may
                // hold the code now (taken over on another instance).
                state.catalog.forget_shared_code(code);
                if let Some(CodeHit::Shared(newer)) = state.store.find_code(code).await?
                    && newer != campaign
                {
                    state.catalog.remember_shared_code(code, newer);
                    return Ok(claim(state, newer, user, key, Door::SharedCode).await?);
                }
            }
            Ok(outcome)
        }
    }
}

async fn redeem_unique(
    state: &Shared,
    user: UserId,
    campaign: CampaignId,
    code: &str,
    key: Option<&str>,
) -> Result<ClaimOutcome, RedeemError> {
    if let Some(used) = redeemed(state, user, code, key).await? {
        return used;
    }
    let now = state.clock.now();
    let until = now.plus_millis(CODE_LEASE.as_millis() as i64);
    // Who holds the lease: the same request retried is told to wait.
    let holder = format!("{user}:{}", key.unwrap_or(""));
    match state.store.lease_code(code, &holder, now, until).await? {
        None => {}
        Some(other) if key.is_some() && other == holder => return Err(RedeemError::InFlight),
        Some(_) => {
            return Err(RedeemError::CodeUsed(
                "this code is being redeemed right now",
            ));
        }
    }
    // Redeemed between the first look and the lease (its lease ran out)?
    if let Some(used) = redeemed(state, user, code, key).await? {
        return used;
    }
    let result = claim(state, campaign, user, key, Door::Code(code.into())).await;
    let release = || async move {
        if let Err(e) = state.store.release_code(code, until).await {
            tracing::debug!(error = %e, "code lease not given back; it runs out by itself");
        }
    };
    match result {
        Ok(ClaimOutcome::Issued(c)) => Ok(ClaimOutcome::Issued(c)),
        Ok(ClaimOutcome::Replayed(c)) => {
            // The key replayed a coupon: of this code, or of another one
            // this key redeemed before (then this code is untouched).
            match state.store.redemption_of(code).await? {
                Some(r) if r.coupon == c.id => Ok(ClaimOutcome::Replayed(c)),
                _ => {
                    release().await;
                    Err(RedeemError::KeyReused)
                }
            }
        }
        // Nothing issued for certain: the code is free again at once.
        Ok(ClaimOutcome::Rejected(r)) => {
            release().await;
            Ok(ClaimOutcome::Rejected(r))
        }
        Err(
            e @ (ClaimError::RateLimited(_)
            | ClaimError::NoSuchCampaign
            | ClaimError::NotClaimable(_)),
        ) => {
            release().await;
            Err(e.into())
        }
        Err(e) => {
            // Another coupon took the code meanwhile (the record refused
            // ours, and gave its stock back): say so. Otherwise the outcome
            // may be unknown: the lease runs out, and by then the record
            // tells whether our coupon (which carries the code) landed.
            match redeemed(state, user, code, key).await {
                Ok(Some(used)) => used,
                _ => Err(e.into()),
            }
        }
    }
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
/// The most a round waits for the record to copy the last one out of its
/// write-ahead log (a drop writing at the same time may keep it from ever
/// catching up; the job goes on then).
const LOG_CATCH_UP: Duration = Duration::from_secs(2);
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
        let until = now.plus_millis(JOB_LEASE.as_millis() as i64);
        match state.store.lease_job(now, until).await {
            Ok(Some(job)) => work(&state, job, until).await,
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

/// Make a job's remaining codes, one transaction per round, while its lease
/// (until `held`) is ours. Memory holds one round's codes, however many the
/// job makes.
async fn work(state: &Shared, mut job: Job, mut held: Timestamp) {
    let pattern = match Pattern::parse(&job.pattern) {
        Ok(p) => p,
        Err(e) => return fail(state, &job, held, &e.to_string()).await,
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
        match state.store.add_codes(&job, held, &codes, now, lease).await {
            Ok(None) => {
                tracing::info!(job = %job.id, "code job: taken over or ended elsewhere; leaving it");
                return;
            }
            Ok(Some(added)) => {
                // (0 only if every code collided: they are made again.)
                failures = 0;
                held = lease;
                job.done += added as i64;
                state.metrics.codes_generated.inc_by(added);
            }
            Err(e) if e.is_unavailable() => {
                // The record is down: not the job's fault. Its lease runs
                // out and a runner (here or elsewhere) carries on later.
                tracing::warn!(job = %job.id, error = %e, "code job: the record is unreachable; pausing it");
                return;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(job = %job.id, error = %e, attempt = failures, "code job: a round failed");
                if failures >= ROUND_ATTEMPTS {
                    return fail(state, &job, held, &format!("writing codes failed: {e}")).await;
                }
                tokio::time::sleep(Duration::from_millis(500 << failures)).await;
            }
        }
        // Let the record copy the round out of its log (SQLite), and claims
        // and their group commit go first, between rounds.
        state.store.let_log_catch_up(LOG_CATCH_UP).await;
        tokio::task::yield_now().await;
    }
    tracing::info!(job = %job.id, total = job.total, "code job: done");
}

async fn fail(state: &Shared, job: &Job, held: Timestamp, error: &str) {
    tracing::error!(job = %job.id, error, "code job failed");
    if let Err(e) = state
        .store
        .fail_job(job.id, held, error, state.clock.now())
        .await
    {
        // The lease runs out and a runner takes the job up again.
        tracing::warn!(job = %job.id, error = %e, "code job: could not record the failure");
    }
}
