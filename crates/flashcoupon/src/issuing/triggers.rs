//! Event-triggered issuance: a sign-up, or a shop's custom event, issues one
//! coupon of every campaign with that trigger to the user, exactly once per
//! (user, campaign).
//!
//! An event is taken into the record first (`trigger_events`, one row per
//! `event_id`; a sign-up's in the same transaction as the account), then
//! worked by the runner of any instance under a lease. Each campaign's coupon
//! is claimed through the trigger door with the fixed Idempotency-Key
//! [`TRIGGER_KEY`]: the gate and the record's unique (campaign, user, key)
//! turn every repeat (a redelivered event, another event of the same name,
//! a retry after a crash, another instance) into a replay, never a second
//! coupon. The event is done once every campaign decided (issued, or
//! refused: sold out, ended, …); a passing failure leaves it for the next
//! lease.

use std::time::Duration;

use super::claim::{ClaimError, ClaimOutcome, Door, claim, refusal};
use crate::domain::InvalidInput;
use crate::domain::campaign::Trigger;
use crate::domain::coupon::check_reference;
use crate::domain::ids::UserId;
use crate::state::{AppState, Shared};
use crate::store::{StoreError, TriggerEvent};

/// Every trigger claim of a (user, campaign) carries this key: one coupon.
pub const TRIGGER_KEY: &str = "trigger";
/// How long a runner holds an event before another may take it over.
const LEASE: Duration = Duration::from_secs(30);
/// Events leased per round.
const BATCH: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("no such user")]
    UnknownUser,
    #[error("event_id {0} was taken in before with another name or user")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Take in a shop's custom event (`name` with or without `custom:`);
/// `Ok(true)` if new, `Ok(false)` for a repeat of the same event.
pub async fn take_custom(
    state: &Shared,
    event_id: &str,
    name: &str,
    user: UserId,
    source: &'static str,
) -> Result<bool, TriggerError> {
    check_reference("event_id", event_id)?;
    let full = if name.starts_with("custom:") {
        name.to_owned()
    } else {
        format!("custom:{name}")
    };
    if !matches!(Trigger::parse(&full), Some(Trigger::Custom(_))) {
        return Err(InvalidInput::new(
            "name",
            "must be a custom event name: 1 to 64 of a-z, 0-9, _ . - (optionally after custom:)",
        )
        .into());
    }
    if !state.store.user_exists(user).await? {
        return Err(TriggerError::UnknownUser);
    }
    let event = TriggerEvent {
        event_id: event_id.to_owned(),
        name: full,
        user_id: user,
        source: source.to_owned(),
        received_at: state.clock.now(),
        done_at: None,
        outcome: None,
        trace: crate::trace::current(),
    };
    match state.store.insert_trigger_event(&event).await? {
        None => {
            state.triggers_arrived.notify_one();
            Ok(true)
        }
        Some(before) if before.name == event.name && before.user_id == user => Ok(false),
        Some(_) => Err(TriggerError::Conflict(event_id.to_owned())),
    }
}

/// A sign-up was just written (with its event): work it now rather than
/// at the next poll.
pub fn signed_up(state: &Shared) {
    state.triggers_arrived.notify_one();
}

/// This instance's trigger runner.
pub async fn run_triggers(state: AppState) {
    loop {
        let now = state.clock.now();
        let leased = state
            .store
            .lease_trigger_events(now, now.plus_millis(LEASE.as_millis() as i64), BATCH)
            .await;
        match leased {
            Ok(events) if !events.is_empty() => {
                for event in events {
                    // Its coupons carry the request (or message) it came with.
                    crate::trace::scope(event.trace.clone(), work(&state, event)).await;
                }
            }
            Ok(_) => {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), state.triggers_arrived.notified())
                        .await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "triggers: the record is unreachable; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Claim the event's coupons; finish it once every campaign decided.
async fn work(state: &Shared, event: TriggerEvent) {
    let outcome = match decide(state, &event).await {
        Ok(outcome) => outcome,
        Err(why) => {
            // Left leased: the next lease (here or elsewhere) tries again,
            // and what was issued meanwhile replays.
            tracing::debug!(event = %event.event_id, why, "trigger event: will retry");
            return;
        }
    };
    state
        .metrics
        .trigger_events
        .with_label_values(&[&event.source])
        .inc();
    if let Err(e) = state
        .store
        .finish_trigger_event(&event.event_id, &outcome, state.clock.now())
        .await
    {
        tracing::debug!(event = %event.event_id, error = %e, "trigger event: done, not recorded yet");
    }
}

/// What each campaign with this trigger answered, e.g. `issued 1, sold_out 1`.
async fn decide(state: &Shared, event: &TriggerEvent) -> Result<String, String> {
    if !state
        .store
        .user_exists(event.user_id)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok("no such user".into());
    }
    // A campaign made after the event does not reach back to it (a
    // welcome campaign is for sign-ups from its creation on), however late
    // a runner takes the event up: after a crash, a lease, a busy moment.
    let campaigns = state
        .store
        .trigger_campaigns(&event.name, event.received_at, state.clock.now())
        .await
        .map_err(|e| e.to_string())?;
    let mut counts: Vec<(&'static str, u32)> = Vec::new();
    for campaign in campaigns {
        let answer = match claim(
            state,
            campaign,
            event.user_id,
            Some(TRIGGER_KEY),
            Door::Trigger,
        )
        .await
        {
            Ok(ClaimOutcome::Issued(_)) => "issued",
            Ok(ClaimOutcome::Replayed(_)) => "issued_before",
            Ok(ClaimOutcome::Rejected(r)) => refusal(r).0,
            // Gone or changed since the lookup: nothing to issue.
            Err(ClaimError::NoSuchCampaign | ClaimError::NotClaimable(_)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        match counts.iter_mut().find(|(a, _)| *a == answer) {
            Some((_, n)) => *n += 1,
            None => counts.push((answer, 1)),
        }
        state
            .metrics
            .trigger_issues
            .with_label_values(&[answer])
            .inc();
    }
    if counts.is_empty() {
        return Ok("no campaign".into());
    }
    Ok(counts
        .iter()
        .map(|(a, n)| format!("{a} {n}"))
        .collect::<Vec<_>>()
        .join(", "))
}
