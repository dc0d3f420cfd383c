//! The ledger against a model (proptest, a real SQLite record): random
//! earns, spends, holds, confirms, releases, refunds, clock moves and
//! expiry rounds on one user. After every step the record must agree with
//! the model on what happened (written, insufficient, raced, refunded
//! before) and on the balance, the held total and every lot's remainder;
//! and it must add up on its own: the entries chain, their sum is the
//! balance, the lots' remainders sum to it, and nothing is below zero.

use std::collections::HashMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::domain::account::{Email, Role};
use crate::settings::Durability;
use crate::store::{AccountStore, SqliteStore, Store};

const DAY: i64 = 86_400_000;
const START: i64 = 1_800_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Earn { amount: i64, days: i64 },
    Spend(i64),
    Hold { amount: i64, ttl_ms: i64 },
    Confirm(usize),
    Release(usize),
    Refund(usize),
    Advance(i64),
    Expire,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (1..500i64, 1..30i64).prop_map(|(amount, days)| Op::Earn { amount, days }),
        3 => (1..600i64).prop_map(Op::Spend),
        2 => (1..600i64, 1..(5 * DAY)).prop_map(|(amount, ttl_ms)| Op::Hold { amount, ttl_ms }),
        2 => (0..8usize).prop_map(Op::Confirm),
        1 => (0..8usize).prop_map(Op::Release),
        2 => (0..8usize).prop_map(Op::Refund),
        2 => (1..(12 * DAY)).prop_map(Op::Advance),
        2 => Just(Op::Expire),
    ];
    proptest::collection::vec(op, 1..40)
}

#[derive(Debug, Clone)]
struct Lot {
    id: Uuid,
    remaining: i64,
    expires_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
enum HoldIs {
    Held,
    Ended,
}

#[derive(Debug, Clone)]
struct Hold {
    entry: Uuid,
    order: String,
    amount: i64,
    expires_at: i64,
    is: HoldIs,
    takes: Vec<(Uuid, i64)>,
}

#[derive(Debug, Clone)]
struct Spend {
    entry: PointEntry,
    takes: Vec<(Uuid, i64)>,
    refunded: bool,
}

#[derive(Debug, Default)]
struct Model {
    now: i64,
    balance: i64,
    lots: Vec<Lot>,
    holds: Vec<Hold>,
    spends: Vec<Spend>,
}

impl Model {
    /// Take `amount` from live lots, earliest first (expiry, then id): the
    /// takes, or `None` (nothing taken) if they do not cover it.
    fn take(&mut self, amount: i64) -> Option<Vec<(Uuid, i64)>> {
        let now = self.now;
        let mut live: Vec<&mut Lot> = self
            .lots
            .iter_mut()
            .filter(|l| l.remaining > 0 && l.expires_at > now)
            .collect();
        if live.iter().map(|l| l.remaining).sum::<i64>() < amount || self.balance < amount {
            return None;
        }
        live.sort_by_key(|l| (l.expires_at, l.id));
        let mut need = amount;
        let mut takes = Vec::new();
        for lot in live {
            if need == 0 {
                break;
            }
            let t = need.min(lot.remaining);
            lot.remaining -= t;
            need -= t;
            takes.push((lot.id, t));
        }
        self.balance -= amount;
        Some(takes)
    }

    fn give_back(&mut self, takes: &[(Uuid, i64)]) {
        for (lot, amount) in takes {
            if let Some(l) = self.lots.iter_mut().find(|l| l.id == *lot) {
                l.remaining += amount;
            }
            self.balance += amount;
        }
    }

    fn held(&self) -> i64 {
        self.holds
            .iter()
            .filter(|h| h.is == HoldIs::Held)
            .map(|h| h.amount)
            .sum()
    }
}

fn user() -> UserId {
    UserId(Uuid::from_u128(7))
}

fn posting(kind: EntryKind, amount: i64, reference: &str, lots: LotMove) -> Posting {
    Posting {
        id: Uuid::now_v7(),
        kind,
        amount,
        reference: Some(reference.to_owned()),
        reason: Some("model".into()),
        order_id: None,
        refund_of: None,
        expires_at: match lots {
            LotMove::NewLot(at) => Some(at),
            _ => None,
        },
        lots,
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal)
        .await
        .unwrap();
    store
        .insert_user(
            user(),
            &Email::parse("model@example.com").unwrap(),
            "x",
            Role::User,
            Timestamp(0),
        )
        .await
        .unwrap();
    let mut m = Model {
        now: START,
        ..Model::default()
    };
    for (n, op) in ops.into_iter().enumerate() {
        let now = Timestamp(m.now);
        let reference = format!("r{n}");
        match op {
            Op::Earn { amount, days } => {
                let expires_at = m.now + days * DAY;
                let p = posting(
                    EntryKind::Earn,
                    amount,
                    &reference,
                    LotMove::NewLot(Timestamp(expires_at)),
                );
                let id = p.id;
                let w = LedgerWrite {
                    reference: Some(reference),
                    postings: vec![p],
                    ..LedgerWrite::new(user(), now)
                };
                let done = store.write_points(&w).await.unwrap();
                prop_assert!(matches!(done, Written::Done(_)), "{done:?}");
                m.lots.push(Lot {
                    id,
                    remaining: amount,
                    expires_at,
                });
                m.balance += amount;
            }
            Op::Spend(amount) => {
                let w = LedgerWrite {
                    reference: Some(reference.clone()),
                    postings: vec![posting(
                        EntryKind::Spend,
                        -amount,
                        &reference,
                        LotMove::TakeFifo,
                    )],
                    ..LedgerWrite::new(user(), now)
                };
                let done = store.write_points(&w).await.unwrap();
                match (m.take(amount), done) {
                    (Some(takes), Written::Done(entries)) => m.spends.push(Spend {
                        entry: entries[0].clone(),
                        takes,
                        refunded: false,
                    }),
                    (None, Written::Insufficient) => {}
                    (model, record) => {
                        prop_assert!(false, "spend {amount}: model {model:?}, record {record:?}")
                    }
                }
            }
            Op::Hold { amount, ttl_ms } => {
                let order = format!("o{n}");
                let w = crate::points::hold_write(
                    user(),
                    &order,
                    amount,
                    Timestamp(m.now + ttl_ms),
                    now,
                );
                let entry = w.postings[0].id;
                let done = store.write_points(&w).await.unwrap();
                match (m.take(amount), done) {
                    (Some(takes), Written::Done(_)) => m.holds.push(Hold {
                        entry,
                        order,
                        amount,
                        expires_at: m.now + ttl_ms,
                        is: HoldIs::Held,
                        takes,
                    }),
                    (None, Written::Insufficient) => {}
                    (model, record) => {
                        prop_assert!(false, "hold {amount}: model {model:?}, record {record:?}")
                    }
                }
            }
            Op::Confirm(i) | Op::Release(i) => {
                let Some(h) = m.holds.get(i).cloned() else {
                    continue;
                };
                let confirm = matches!(op, Op::Confirm(_));
                let w = if confirm {
                    LedgerWrite::confirm_hold(user(), h.entry, h.amount, &h.order, now)
                } else {
                    LedgerWrite::end_hold(
                        user(),
                        h.entry,
                        h.amount,
                        &h.order,
                        HoldState::Released,
                        now,
                    )
                };
                let spend = w
                    .postings
                    .iter()
                    .find(|p| p.kind == EntryKind::Spend)
                    .map(|p| p.id);
                let done = store.write_points(&w).await.unwrap();
                let may = h.is == HoldIs::Held && (!confirm || h.expires_at > m.now);
                match (may, done) {
                    (true, Written::Done(entries)) => {
                        m.holds[i].is = HoldIs::Ended;
                        if confirm {
                            let entry = entries.into_iter().find(|e| Some(e.id) == spend).unwrap();
                            m.spends.push(Spend {
                                entry,
                                takes: h.takes.clone(),
                                refunded: false,
                            });
                        } else {
                            m.give_back(&h.takes);
                        }
                    }
                    (false, Written::Raced) => {}
                    (may, record) => prop_assert!(false, "end hold {i} (may {may}): {record:?}"),
                }
            }
            Op::Refund(i) => {
                let Some(s) = m.spends.get(i).cloned() else {
                    continue;
                };
                let w = LedgerWrite::refund_spend(&s.entry, Some(reference), "model".into(), now);
                match (s.refunded, store.write_points(&w).await.unwrap()) {
                    (false, Written::Done(_)) => {
                        m.spends[i].refunded = true;
                        m.give_back(&s.takes);
                    }
                    (true, Written::AlreadyRefunded) => {}
                    (refunded, record) => {
                        prop_assert!(false, "refund {i} (refunded {refunded}): {record:?}")
                    }
                }
            }
            Op::Advance(ms) => m.now += ms,
            Op::Expire => {
                // As `points::expire_due`: holds first, then lots.
                for h in store.due_point_holds(now, 500).await.unwrap() {
                    let w = LedgerWrite::end_hold(
                        user(),
                        h.entry_id,
                        h.amount,
                        &h.order_id,
                        HoldState::Expired,
                        now,
                    );
                    let done = store.write_points(&w).await.unwrap();
                    prop_assert!(matches!(done, Written::Done(_)), "{done:?}");
                    let mh = m.holds.iter_mut().find(|x| x.entry == h.entry_id).unwrap();
                    prop_assert!(mh.is == HoldIs::Held && mh.expires_at <= m.now);
                    mh.is = HoldIs::Ended;
                    let takes = mh.takes.clone();
                    m.give_back(&takes);
                }
                let due = store.due_point_lots(now, 500).await.unwrap();
                let model_due: Vec<Uuid> = m
                    .lots
                    .iter()
                    .filter(|l| l.remaining > 0 && l.expires_at <= m.now)
                    .map(|l| l.id)
                    .collect();
                prop_assert_eq!(
                    due.iter().map(|l| l.id).collect::<Vec<_>>().len(),
                    model_due.len()
                );
                if !due.is_empty() {
                    let w = LedgerWrite::expire_lots(user(), &due, now);
                    let done = store.write_points(&w).await.unwrap();
                    prop_assert!(matches!(done, Written::Done(_)), "{done:?}");
                    for l in m.lots.iter_mut().filter(|l| model_due.contains(&l.id)) {
                        m.balance -= l.remaining;
                        l.remaining = 0;
                    }
                }
                // Another round right away finds nothing (each once).
                prop_assert!(store.due_point_lots(now, 500).await.unwrap().is_empty());
                prop_assert!(store.due_point_holds(now, 500).await.unwrap().is_empty());
            }
        }
        check(&store, &m).await?;
    }
    store.close().await;
    Ok(())
}

/// The record agrees with the model, and adds up by itself.
async fn check(store: &SqliteStore, m: &Model) -> Result<(), TestCaseError> {
    let b = store
        .point_balance(user(), Timestamp(i64::MIN))
        .await
        .unwrap();
    prop_assert_eq!(b.balance, m.balance);
    prop_assert_eq!(b.held, m.held());
    prop_assert!(b.balance >= 0 && b.held >= 0);
    let entries = store.point_history(user(), 10_000, None).await.unwrap();
    let mut sum = 0;
    for (k, e) in entries.iter().rev().enumerate() {
        sum += e.amount;
        prop_assert_eq!(e.seq, k as i64 + 1);
        prop_assert_eq!(e.balance_after, sum);
        prop_assert!(e.balance_after >= 0);
    }
    prop_assert_eq!(sum, m.balance);
    let lots: HashMap<Uuid, i64> = store
        .due_point_lots(Timestamp(i64::MAX), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.id, l.remaining))
        .collect();
    for l in &m.lots {
        prop_assert_eq!(
            lots.get(&l.id).copied().unwrap_or(0),
            l.remaining,
            "lot {}",
            l.id
        );
    }
    prop_assert_eq!(
        lots.values().sum::<i64>(),
        m.balance,
        "the lots hold the balance"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_agrees_with_the_model_and_adds_up(ops in ops()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}

/// A write for the batch test: user `u` (of three), and what it does.
#[derive(Debug, Clone)]
enum Step {
    Earn(u8, i64),
    Spend(u8, i64, u8),
    Hold(u8, i64, u8),
}

fn steps() -> impl Strategy<Value = (Vec<Step>, Vec<usize>)> {
    let step = prop_oneof![
        (0..3u8, 1..300i64).prop_map(|(u, a)| Step::Earn(u, a)),
        // A small reference space: repeats, and conflicting repeats.
        (0..3u8, 1..300i64, 0..6u8).prop_map(|(u, a, r)| Step::Spend(u, a, r)),
        (0..3u8, 1..300i64, 0..4u8).prop_map(|(u, a, o)| Step::Hold(u, a, o)),
    ];
    (
        proptest::collection::vec(step, 1..60),
        proptest::collection::vec(1..20usize, 1..60),
    )
}

async fn twin_store(dir: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(dir, Durability::Normal).await.unwrap();
    for u in 0..3u8 {
        store
            .insert_user(
                UserId(Uuid::from_u128(100 + u128::from(u))),
                &Email::parse(&format!("u{u}@example.com")).unwrap(),
                "x",
                Role::User,
                Timestamp(0),
            )
            .await
            .unwrap();
    }
    store
}

/// The same writes, one transaction each on one store and in batches of
/// random sizes (`write_points_many`, as the points group commit writes
/// them) on another: every answer and every ledger the same.
async fn batched_equals_alone(steps: Vec<Step>, chunks: Vec<usize>) -> Result<(), TestCaseError> {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alone, batched) = (
        twin_store(a_dir.path()).await,
        twin_store(b_dir.path()).await,
    );
    let now = Timestamp(START);
    let user = |u: u8| UserId(Uuid::from_u128(100 + u128::from(u)));
    let writes: Vec<LedgerWrite> = steps
        .iter()
        .enumerate()
        .map(|(n, step)| match *step {
            Step::Earn(u, amount) => {
                let reference = format!("e{n}");
                LedgerWrite {
                    reference: Some(reference.clone()),
                    postings: vec![posting(
                        EntryKind::Earn,
                        amount,
                        &reference,
                        LotMove::NewLot(Timestamp(START + 30 * DAY)),
                    )],
                    ..LedgerWrite::new(user(u), now)
                }
            }
            Step::Spend(u, amount, r) => {
                let reference = format!("s{r}");
                LedgerWrite {
                    reference: Some(reference.clone()),
                    postings: vec![posting(
                        EntryKind::Spend,
                        -amount,
                        &reference,
                        LotMove::TakeFifo,
                    )],
                    ..LedgerWrite::new(user(u), now)
                }
            }
            Step::Hold(u, amount, o) => crate::points::hold_write(
                user(u),
                &format!("o{o}"),
                amount,
                Timestamp(START + DAY),
                now,
            ),
        })
        .collect();
    let mut one_by_one = Vec::new();
    for w in &writes {
        one_by_one.push(alone.write_points(w).await.unwrap());
    }
    let mut in_batches = Vec::new();
    let mut rest: &[LedgerWrite] = &writes;
    for size in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at((*size).min(rest.len()));
        let refs: Vec<&LedgerWrite> = batch.iter().collect();
        in_batches.extend(batched.write_points_many(&refs).await.unwrap());
        rest = tail;
    }
    prop_assert_eq!(&one_by_one, &in_batches);
    for u in 0..3 {
        let (x, y) = (
            alone.point_balance(user(u), now).await.unwrap(),
            batched.point_balance(user(u), now).await.unwrap(),
        );
        prop_assert_eq!(x, y);
        let (x, y) = (
            alone.point_history(user(u), 10_000, None).await.unwrap(),
            batched.point_history(user(u), 10_000, None).await.unwrap(),
        );
        prop_assert_eq!(x, y);
    }
    alone.close().await;
    batched.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn writes_in_one_batch_answer_and_write_exactly_as_alone((steps, chunks) in steps()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(batched_equals_alone(steps, chunks))?;
    }
}
