//! Points (적립금): earn, spend, adjust, refund, hold for an order, and the
//! background round that expires holds and lots and warns of expiries.
//! The rules of each write (amounts, references, which lots) are here; the
//! ledger itself, with its constraints, is `store::points`.
//!
//! Writes go through [`writer::LedgerWriter`] (the points group commit).
//!
//! Every write that a caller may retry is idempotent by `(user, reference)`
//! (a hold by `(user, order_id)`): the same request again answers the first
//! entry; the same reference with other fields is `reference_conflict`.

pub mod writer;

use uuid::Uuid;

use crate::domain::InvalidInput;
use crate::domain::coupon::{check_order_id, check_reference};
use crate::domain::ids::UserId;
use crate::domain::timestamp::{MILLIS_PER_DAY, Timestamp};
use crate::events::{Event, Payload};
use crate::state::Shared;
use crate::store::{
    EntryKind, HoldChange, HoldState, LedgerWrite, LotMove, PointEntry, PointHold, Posting,
    Reports, StoreError, Written,
};

/// The largest amount one entry may carry (API.md: 1..10¹²).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// How long earned points last unless the earn says.
pub const DEFAULT_VALID_DAYS: u32 = 365;
/// The longest validity an earn may ask for.
pub const MAX_VALID_DAYS: u32 = 3_650;
/// Owners hear `points.expiring_soon` this long before a lot expires.
pub const WARN_BEFORE_MS: i64 = 7 * MILLIS_PER_DAY;
/// A hold's time when the request names none, and the longest.
pub const DEFAULT_HOLD_SECS: u32 = 900;
pub const MAX_HOLD_SECS: u32 = 86_400;
/// Rounds a write is tried when a concurrent one keeps changing its rows.
const ROUNDS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("no such user")]
    UnknownUser,
    #[error("the balance does not cover {0} points")]
    Insufficient(i64),
    #[error("reference {0:?} was already used for another request")]
    ReferenceConflict(String),
    #[error("no spend with reference {0:?}")]
    NoSuchSpend(String),
    #[error("that spend was already refunded")]
    AlreadyRefunded,
    #[error("no points are held for order {0:?}")]
    NoSuchHold(String),
    /// The hold already ended another way (`confirmed`, `released`).
    #[error("the hold for this order was already {}", .0.as_str())]
    HoldEnded(HoldState),
    #[error("the hold for this order ran out before it was confirmed")]
    HoldExpired,
    #[error("the points changed while this was written; retry")]
    Busy,
    /// The order is a time-sale order: its points move only with it.
    #[error("{}", crate::selling::orders::SALE_ORDER)]
    SaleOrder,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A write's answer: written now, or the first time's entry.
#[derive(Debug, Clone)]
pub enum Entry {
    First(PointEntry),
    Repeat(PointEntry),
}

impl Entry {
    pub fn entry(&self) -> &PointEntry {
        match self {
            Entry::First(e) | Entry::Repeat(e) => e,
        }
    }
}

/// An amount of points: an integer in `1..=10¹²` (`signed`: also the
/// negatives, never zero).
pub fn check_amount(field: &'static str, amount: i64, signed: bool) -> Result<(), InvalidInput> {
    let ok = if signed {
        amount != 0 && amount.unsigned_abs() <= MAX_AMOUNT as u64
    } else {
        (1..=MAX_AMOUNT).contains(&amount)
    };
    if ok {
        Ok(())
    } else if signed {
        Err(InvalidInput::new(
            field,
            format!("must be a non-zero integer between -{MAX_AMOUNT} and {MAX_AMOUNT}"),
        ))
    } else {
        Err(InvalidInput::new(
            field,
            format!("must be an integer between 1 and {MAX_AMOUNT}"),
        ))
    }
}

/// A reason: 1 to 500 characters, no control characters but line breaks.
pub fn check_reason(reason: &str) -> Result<(), InvalidInput> {
    let chars = reason.chars().count();
    if !(1..=500).contains(&chars)
        || reason
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(InvalidInput::new(
            "reason",
            "must be 1 to 500 characters without control characters",
        ));
    }
    Ok(())
}

fn check_valid_days(days: Option<u32>) -> Result<u32, InvalidInput> {
    let days = days.unwrap_or(DEFAULT_VALID_DAYS);
    if !(1..=MAX_VALID_DAYS).contains(&days) {
        return Err(InvalidInput::new(
            "valid_days",
            format!("must be between 1 and {MAX_VALID_DAYS}"),
        ));
    }
    Ok(days)
}

/// A posting of the caller's: its kind, signed amount and reference.
fn posting(kind: EntryKind, amount: i64, reference: &str, reason: &str, lots: LotMove) -> Posting {
    Posting {
        id: Uuid::now_v7(),
        kind,
        amount,
        reference: Some(reference.to_owned()),
        reason: Some(reason.to_owned()),
        order_id: None,
        refund_of: None,
        expires_at: match lots {
            LotMove::NewLot(at) => Some(at),
            _ => None,
        },
        lots,
    }
}

async fn known_user(state: &Shared, user: UserId) -> Result<(), PointsError> {
    if state.store.user_exists(user).await? {
        Ok(())
    } else {
        Err(PointsError::UnknownUser)
    }
}

/// Write `w`; once it is committed, count its entries, wake the relay for
/// its outbox rows and push `announced` to their owners. That follow-up
/// runs with the commit (in the points group commit's task), not in this
/// future: a request cancelled while its write waits in the queue still
/// gets its write committed, and then its events told.
async fn commit(
    state: &Shared,
    w: &LedgerWrite,
    announced: Vec<Event>,
) -> Result<Written, PointsError> {
    let (notifier, metrics) = (state.notifier.clone(), state.metrics.clone());
    let outbox = !w.reports.outbox.is_empty();
    let after: writer::After = Box::new(move |written: &Written| {
        if let Written::Done(entries) = written {
            count_in(&metrics, entries);
            if outbox {
                notifier.outbox_written();
            }
            for event in announced {
                notifier.emit(event);
            }
        }
    });
    Ok(state.ledger.write(w.clone(), after).await?)
}

/// Count entries written (here or inside a payment event's transaction).
pub fn count(state: &Shared, entries: &[PointEntry]) {
    count_in(&state.metrics, entries);
}

fn count_in(metrics: &crate::metrics::Metrics, entries: &[PointEntry]) {
    for e in entries {
        metrics
            .point_entries
            .with_label_values(&[e.kind.as_str()])
            .inc();
    }
}

/// A caller's write: written, or the first time's entry if it is the same
/// request (`same`), or a conflict. The events (`announce`) are written to
/// the outbox with the entries and pushed once committed.
async fn write(
    state: &Shared,
    w: LedgerWrite,
    events: impl Fn(&PointEntry) -> Option<Event>,
    same: impl Fn(&PointEntry) -> bool,
) -> Result<Entry, PointsError> {
    let (w, announced) = announcing(state, w, events);
    let wanted = -w.postings.iter().map(|p| p.amount).sum::<i64>();
    for _ in 0..ROUNDS {
        // The owner hears points arrive and leave (inbox and push).
        match commit(state, &w, announced.clone()).await? {
            Written::Done(entries) => {
                let main = entries
                    .into_iter()
                    .find(|e| e.reference.is_some() || e.kind == EntryKind::Hold)
                    .ok_or(PointsError::Busy)?;
                return Ok(Entry::First(main));
            }
            Written::Existing(first) if same(&first) => return Ok(Entry::Repeat(first)),
            Written::Existing(first) => {
                return Err(PointsError::ReferenceConflict(
                    first.reference.or(first.order_id).unwrap_or_default(),
                ));
            }
            Written::Insufficient => return Err(PointsError::Insufficient(wanted)),
            Written::AlreadyRefunded => return Err(PointsError::AlreadyRefunded),
            Written::Raced => continue,
        }
    }
    Err(PointsError::Busy)
}

/// `points.earned`, for an entry that brought points.
fn earned(entry: &PointEntry) -> Option<Event> {
    (entry.amount > 0 && matches!(entry.kind, EntryKind::Earn | EntryKind::Adjust)).then(|| {
        let mut e = Event::new(
            Payload::PointsEarned {
                entry_id: entry.id,
                amount: entry.amount,
                reason: entry.reason.clone(),
                expires_at: entry.expires_at,
            },
            entry.created_at,
            Some(entry.user_id),
            None,
        );
        e.id = entry.id;
        e
    })
}

/// `points.spent`, for an entry that spent points.
pub fn spent(entry: &PointEntry) -> Option<Event> {
    (entry.kind == EntryKind::Spend).then(|| {
        let mut e = Event::new(
            Payload::PointsSpent {
                entry_id: entry.id,
                amount: -entry.amount,
                order_id: entry.order_id.clone(),
                reason: entry.reason.clone(),
            },
            entry.created_at,
            Some(entry.user_id),
            None,
        );
        e.id = entry.id;
        e
    })
}

/// One entry of the caller's, idempotent by its reference: `amount`
/// (signed) of `kind`, with the lot move `lots` makes of the record's time.
/// A repeat is the same request when it has the same kind, amount, reason
/// and validity.
#[allow(clippy::too_many_arguments)]
async fn by_reference(
    state: &Shared,
    user: UserId,
    kind: EntryKind,
    amount: i64,
    reference: &str,
    reason: &str,
    lots: impl FnOnce(Timestamp) -> LotMove,
    events: fn(&PointEntry) -> Option<Event>,
) -> Result<Entry, PointsError> {
    check_reference("reference", reference)?;
    check_reason(reason)?;
    known_user(state, user).await?;
    let now = state.record_now().await?;
    let p = posting(kind, amount, reference, reason, lots(now));
    let lasts = p.expires_at.map(|at| at.0 - now.0);
    let w = LedgerWrite {
        reference: Some(reference.to_owned()),
        postings: vec![p],
        ..LedgerWrite::new(user, now)
    };
    write(state, w, events, |first| {
        first.kind == kind
            && first.amount == amount
            && first.reason.as_deref() == Some(reason)
            && lasted(first) == lasts
    })
    .await
}

/// How long an entry was written to last (an earn's lot, a hold).
fn lasted(entry: &PointEntry) -> Option<i64> {
    entry.expires_at.map(|at| at.0 - entry.created_at.0)
}

/// A new lot valid `days` from `now`.
fn lot_for(days: u32) -> impl FnOnce(Timestamp) -> LotMove {
    move |now| LotMove::NewLot(now.plus_millis(i64::from(days) * MILLIS_PER_DAY))
}

/// Earn `amount` points valid for `valid_days` (a service key or an admin).
pub async fn earn(
    state: &Shared,
    user: UserId,
    amount: i64,
    reference: &str,
    reason: &str,
    valid_days: Option<u32>,
) -> Result<Entry, PointsError> {
    check_amount("amount", amount, false)?;
    let days = check_valid_days(valid_days)?;
    let lots = lot_for(days);
    by_reference(
        state,
        user,
        EntryKind::Earn,
        amount,
        reference,
        reason,
        lots,
        earned,
    )
    .await
}

/// Spend `amount` points from the earliest-expiring lots: all or nothing.
pub async fn spend(
    state: &Shared,
    user: UserId,
    amount: i64,
    reference: &str,
    reason: &str,
) -> Result<Entry, PointsError> {
    check_amount("amount", amount, false)?;
    let lots = |_| LotMove::TakeFifo;
    by_reference(
        state,
        user,
        EntryKind::Spend,
        -amount,
        reference,
        reason,
        lots,
        spent,
    )
    .await
}

/// An admin's correction, either way, with a reason: points added are a
/// lot valid for `valid_days`; points taken come from the earliest lots.
pub async fn adjust(
    state: &Shared,
    user: UserId,
    amount: i64,
    reference: &str,
    reason: &str,
    valid_days: Option<u32>,
) -> Result<Entry, PointsError> {
    check_amount("amount", amount, true)?;
    let days = check_valid_days(valid_days)?;
    let lots = move |now| {
        if amount > 0 {
            lot_for(days)(now)
        } else {
            LotMove::TakeFifo
        }
    };
    by_reference(
        state,
        user,
        EntryKind::Adjust,
        amount,
        reference,
        reason,
        lots,
        earned,
    )
    .await
}

/// Refund the spend with reference `spend_reference`: its points go back
/// to the lots they came from, with their old expiry (once).
pub async fn refund(
    state: &Shared,
    user: UserId,
    spend_reference: &str,
    reference: &str,
    reason: &str,
) -> Result<Entry, PointsError> {
    check_reference("spend_reference", spend_reference)?;
    check_reference("reference", reference)?;
    check_reason(reason)?;
    known_user(state, user).await?;
    let spend = state
        .store
        .point_entry_by_reference(user, spend_reference)
        .await?
        .filter(|e| e.kind == EntryKind::Spend)
        .ok_or_else(|| PointsError::NoSuchSpend(spend_reference.to_owned()))?;
    let now = state.record_now().await?;
    let w = LedgerWrite::refund_spend(&spend, Some(reference.to_owned()), reason.to_owned(), now);
    write(
        state,
        w,
        |_| None,
        |first| {
            first.kind == EntryKind::Refund
                && first.refund_of == Some(spend.id)
                && first.reason.as_deref() == Some(reason)
        },
    )
    .await
}

/// Hold `amount` points for an order until it is paid (confirmed), fails
/// or is cancelled (released), or `ttl_secs` pass (expired).
pub async fn hold(
    state: &Shared,
    user: UserId,
    order_id: &str,
    amount: i64,
    ttl_secs: Option<u32>,
) -> Result<Entry, PointsError> {
    check_amount("amount", amount, false)?;
    check_order_id(order_id)?;
    if crate::selling::orders::is_sale_order(state, order_id).await? {
        return Err(PointsError::SaleOrder);
    }
    let ttl = ttl_secs.unwrap_or(DEFAULT_HOLD_SECS);
    if !(1..=MAX_HOLD_SECS).contains(&ttl) {
        return Err(InvalidInput::new(
            "ttl_secs",
            format!("must be between 1 and {MAX_HOLD_SECS}"),
        )
        .into());
    }
    known_user(state, user).await?;
    let now = state.record_now().await?;
    let expires_at = now.plus_millis(i64::from(ttl) * 1_000);
    let w = hold_write(user, order_id, amount, expires_at, now);
    let entry = write(
        state,
        w,
        |_| None,
        |first| {
            first.kind == EntryKind::Hold
                && first.amount == -amount
                && lasted(first) == Some(i64::from(ttl) * 1_000)
        },
    )
    .await?;
    // A repeat of a hold that has ended since holds nothing: say so rather
    // than answer the old hold as if it stood (an order holds points once).
    if let Entry::Repeat(_) = &entry {
        match state
            .store
            .point_hold(user, order_id)
            .await?
            .map(|h| h.state)
        {
            Some(HoldState::Held) | None => {}
            Some(HoldState::Expired) => return Err(PointsError::HoldExpired),
            Some(ended) => return Err(PointsError::HoldEnded(ended)),
        }
    }
    Ok(entry)
}

/// The write that holds `amount` points of `user` for `order_id` until
/// `expires_at` (also for a time-sale order, inside its own step).
pub fn hold_write(
    user: UserId,
    order_id: &str,
    amount: i64,
    expires_at: Timestamp,
    now: Timestamp,
) -> LedgerWrite {
    LedgerWrite {
        postings: vec![Posting {
            id: Uuid::now_v7(),
            kind: EntryKind::Hold,
            amount: -amount,
            reference: None,
            reason: Some("held for an order".into()),
            order_id: Some(order_id.to_owned()),
            refund_of: None,
            expires_at: Some(expires_at),
            lots: LotMove::TakeFifo,
        }],
        hold: HoldChange::Open {
            order_id: order_id.to_owned(),
            expires_at,
        },
        held_delta: amount,
        ..LedgerWrite::new(user, now)
    }
}

/// Confirm (the order was paid: the points are spent) or release the
/// user's hold for `order_id`; the entries written. Ending it the same way
/// again answers the entries of the first time's end as `[]`.
pub async fn end_hold(
    state: &Shared,
    user: UserId,
    order_id: &str,
    to: HoldState,
) -> Result<Vec<PointEntry>, PointsError> {
    check_order_id(order_id)?;
    if crate::selling::orders::is_sale_order(state, order_id).await? {
        return Err(PointsError::SaleOrder);
    }
    for _ in 0..ROUNDS {
        let hold = state
            .store
            .point_hold(user, order_id)
            .await?
            .ok_or_else(|| PointsError::NoSuchHold(order_id.to_owned()))?;
        let now = state.record_now().await?;
        match (hold.state, to) {
            (HoldState::Held, HoldState::Confirmed) if hold.expires_at <= now => {
                return Err(PointsError::HoldExpired);
            }
            (HoldState::Held, _) => {}
            (HoldState::Expired, HoldState::Confirmed) => return Err(PointsError::HoldExpired),
            (ended, _) if ended == to => return Ok(Vec::new()),
            // Released after it ran out: it is back either way.
            (HoldState::Expired, HoldState::Released) => return Ok(Vec::new()),
            (ended, _) => return Err(PointsError::HoldEnded(ended)),
        }
        // A confirm spends: its owner hears it, as of any spend.
        let (w, told) = announcing(state, ending(&hold, to, now), spent);
        match commit(state, &w, told).await? {
            Written::Done(entries) => return Ok(entries),
            // Ended meanwhile (an event, the expiry): read it again.
            _ => continue,
        }
    }
    Err(PointsError::Busy)
}

/// The write that ends `hold` as `to` at `now`.
pub fn ending(hold: &PointHold, to: HoldState, now: Timestamp) -> LedgerWrite {
    if to == HoldState::Confirmed {
        LedgerWrite::confirm_hold(
            hold.user_id,
            hold.entry_id,
            hold.amount,
            &hold.order_id,
            now,
        )
    } else {
        LedgerWrite::end_hold(
            hold.user_id,
            hold.entry_id,
            hold.amount,
            &hold.order_id,
            to,
            now,
        )
    }
}

/// `w` with the outbox rows of the events `of` its entries, and those
/// events, for their owners once it is committed. The events name the
/// entries, which exist only as postings yet: they are built from what the
/// entries will read.
pub fn announcing(
    state: &Shared,
    mut w: LedgerWrite,
    of: impl Fn(&PointEntry) -> Option<Event>,
) -> (LedgerWrite, Vec<Event>) {
    let events: Vec<Event> = w.planned().iter().filter_map(of).collect();
    w.reports = Reports {
        deliveries: Vec::new(),
        outbox: events
            .iter()
            .filter_map(|e| state.notifier.outbound(e))
            .collect(),
    };
    (w, events)
}

/// One background round on every instance: end the holds that ran out,
/// expire the lots whose time is up (one `expire` entry per lot, once,
/// whatever other instances do), and warn owners 7 days ahead. How many
/// holds and lots this round expired.
pub async fn expire_due(state: &Shared) -> Result<(usize, usize), PointsError> {
    let now = state.record_now().await?;
    let mut holds = 0;
    for hold in state.store.due_point_holds(now, 500).await? {
        let w = ending(&hold, HoldState::Expired, now);
        // One that fails must not stop the others (nor every later round).
        match commit(state, &w, Vec::new()).await {
            Ok(Written::Done(_)) => holds += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, hold = %hold.entry_id, "a points hold did not expire; will retry")
            }
        }
    }
    let due = state.store.due_point_lots(now, 500).await?;
    let mut lots = 0;
    let mut by_user: std::collections::BTreeMap<UserId, Vec<crate::store::PointLot>> =
        std::collections::BTreeMap::new();
    for lot in due {
        by_user.entry(lot.user_id).or_default().push(lot);
    }
    for (user, due) in by_user {
        let w = LedgerWrite::expire_lots(user, &due, now);
        // Raced: another instance expired them first (or a refund put
        // points back meanwhile: the next round sees the new remainder).
        match commit(state, &w, Vec::new()).await {
            Ok(Written::Done(_)) => lots += due.len(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, %user, "points lots did not expire; will retry"),
        }
    }
    warn_expiring(state, now).await?;
    Ok((holds, lots))
}

/// `points.expiring_soon` to the owners of lots that expire within 7
/// days, once per lot (the inbox row's once-key decides who pushes).
async fn warn_expiring(state: &Shared, now: Timestamp) -> Result<(), PointsError> {
    let lots = state
        .store
        .point_lots_to_warn(now, now.plus_millis(WARN_BEFORE_MS), 500)
        .await?;
    if lots.is_empty() {
        return Ok(());
    }
    let events: Vec<(Event, String)> = lots
        .iter()
        .map(|l| {
            let mut event = Event::new(
                Payload::PointsExpiringSoon {
                    amount: l.remaining,
                    expires_at: l.expires_at,
                },
                now,
                Some(l.user_id),
                None,
            );
            event.id = Uuid::now_v7();
            (event, format!("points_expiring:{}", l.id))
        })
        .collect();
    state.notifier.emit_once(events).await?;
    let ids: Vec<Uuid> = lots.iter().map(|l| l.id).collect();
    state.store.mark_point_lots_warned(&ids).await?;
    Ok(())
}
