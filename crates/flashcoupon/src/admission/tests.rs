//! The admission core driven by a kind of stock that is not a coupon: a
//! test-only kind whose "record" is a list in memory. It shows what a new
//! kind implements (a [`Row`] and a [`RowWriter`]) and that the gate and the
//! group commit keep promises 1–5 for it with no coupon code involved.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::group_commit::Pending;
use super::*;
use crate::metrics::Metrics;

/// The test kind's one drop.
pub(super) const DROP: DropId = DropId {
    kind: Kind {
        tag: "t",
        drop_name: "concert",
        // An unpaid ticket goes back on sale.
        returns: true,
    },
    id: Uuid::nil(),
};

/// Open from 100 to 200.
pub(super) fn terms(total: u32, per_user_limit: u32) -> Terms {
    Terms {
        total,
        per_user_limit,
        starts_at: Timestamp(100),
        ends_at: Timestamp(200),
        paused: false,
    }
}

/// A seat at a concert, say: what this kind writes for an admitted claim.
#[derive(Debug, Clone)]
struct Seat {
    id: UnitId,
    user: UserId,
    seq: u32,
}

impl Row for Seat {
    fn unit(&self) -> UnitId {
        self.id
    }
}

/// The test kind's record: seats in memory, with promise 7's UNIQUE(seq)
/// as a check, and every third batch failing when `flaky` is set.
#[derive(Debug, Default)]
struct Seats {
    rows: Mutex<Vec<Seat>>,
    batches: Mutex<u32>,
    flaky: bool,
}

struct SeatWriter(Arc<Seats>);

#[async_trait]
impl RowWriter<Seat> for SeatWriter {
    async fn insert(&mut self, rows: &[&Seat]) -> Result<HashSet<UnitId>, WriteError> {
        let mut batches = self.0.batches.lock().unwrap();
        *batches += 1;
        if self.0.flaky && *batches % 3 == 0 {
            return Err(WriteError {
                refused: false,
                taken: false,
                message: "disk on fire".into(),
            });
        }
        let mut stored = self.0.rows.lock().unwrap();
        let taken: HashSet<u32> = stored.iter().map(|s| s.seq).collect();
        if rows.iter().any(|r| taken.contains(&r.seq)) {
            return Err(WriteError {
                refused: true,
                taken: false,
                message: "UNIQUE (seq)".into(),
            });
        }
        stored.extend(rows.iter().map(|r| (*r).clone()));
        Ok(rows.iter().map(|r| r.id).collect())
    }

    async fn existing(&mut self, rows: &[&Seat]) -> Result<HashSet<UnitId>, WriteError> {
        let stored = self.0.rows.lock().unwrap();
        let ids: HashSet<UnitId> = stored.iter().map(|s| s.id).collect();
        Ok(rows
            .iter()
            .map(|r| r.id)
            .filter(|id| ids.contains(id))
            .collect())
    }
}

/// One group-commit writer over `writer`, batches of up to 8.
fn start_writer(
    gate: &Arc<impl Gate + 'static>,
    writer: impl RowWriter<Seat> + 'static,
) -> (GroupCommit<Seat>, WriterHandle) {
    GroupCommit::start(
        vec![Box::new(writer) as Box<dyn RowWriter<Seat>>],
        gate.clone(),
        WriterConfig {
            max_batch: 8,
            max_age: None,
        },
        Metrics::new(),
    )
}

async fn claim_seat(
    gate: &MemoryGate,
    commit: &GroupCommit<Seat>,
    user: UserId,
    key: Option<&str>,
) -> Result<Result<UnitId, Rejection>, String> {
    let id = UnitId(Uuid::now_v7());
    match gate.claim(DROP, user, id, key, Timestamp(150)).await {
        Ok(Decision::Admitted(ticket)) => {
            let seat = Seat {
                id,
                user,
                seq: ticket.seq,
            };
            match commit.submit(ticket, seat).await {
                Ok(Ok(())) => Ok(Ok(id)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("writer gone".into()),
            }
        }
        Ok(Decision::Replay(id)) => Ok(Ok(id)),
        Ok(Decision::Rejected(r)) => Ok(Err(r)),
        Ok(Decision::Retry(why)) => Err(why.into()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kind_that_is_not_a_coupon_keeps_every_promise_through_failing_commits() {
    let gate = Arc::new(MemoryGate::default());
    gate.open(DROP, &terms(300, 2)).await.unwrap();
    let record = Arc::new(Seats {
        flaky: true,
        ..Default::default()
    });
    let (commit, writer) = start_writer(&gate, SeatWriter(record.clone()));
    let users: Vec<UserId> = (0..120).map(|_| UserId::generate()).collect();
    // 120 users × 5 presses for 300 seats, limit 2: more demand than stock,
    // and a third of the batches fail and must give their seats back.
    let mut tasks = Vec::new();
    for round in 0..5 {
        for &user in &users {
            let (gate, commit) = (gate.clone(), commit.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    match claim_seat(&gate, &commit, user, None).await {
                        Err(_) => continue, // a failed commit: press again
                        Ok(answer) => return (user, round, answer),
                    }
                }
            }));
        }
    }
    let mut won: HashMap<UserId, u32> = HashMap::new();
    let mut answered_ok = HashSet::new();
    for t in tasks {
        let (user, _, answer) = t.await.unwrap();
        match answer {
            Ok(id) => {
                *won.entry(user).or_default() += 1;
                answered_ok.insert(id);
            }
            Err(r) => assert!(
                matches!(r, Rejection::LimitReached | Rejection::SoldOut),
                "unexpected rejection {r:?}"
            ),
        }
    }
    writer.drain().await;
    let rows = record.rows.lock().unwrap().clone();
    assert_eq!(rows.len(), 240, "each of 120 users got their limit of 2");
    assert!(won.values().all(|&n| n == 2), "per-user limit held");
    let stored: HashSet<UnitId> = rows.iter().map(|r| r.id).collect();
    assert_eq!(
        stored, answered_ok,
        "every success answered is in the record, and nothing else"
    );
    let mut seqs: Vec<u32> = rows.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert!(
        seqs.iter().copied().eq(1..=240),
        "seqs are dense: failed commits gave theirs back"
    );
    for user in &users {
        assert_eq!(rows.iter().filter(|r| r.user == *user).count(), 2);
    }
    let stock = gate.stock(DROP).await.unwrap();
    assert_eq!((stock.issued, stock.remaining), (240, 60));
    assert!(*record.batches.lock().unwrap() >= 3, "some batches failed");
}

#[tokio::test]
async fn a_repeated_key_replays_the_unit_of_its_first_claim() {
    let gate = Arc::new(MemoryGate::default());
    gate.open(DROP, &terms(5, 5)).await.unwrap();
    let record = Arc::new(Seats::default());
    let (commit, writer) = start_writer(&gate, SeatWriter(record.clone()));
    let user = UserId::generate();
    let first = claim_seat(&gate, &commit, user, Some("k")).await.unwrap();
    let again = claim_seat(&gate, &commit, user, Some("k")).await.unwrap();
    assert_eq!(first, again);
    writer.drain().await;
    assert_eq!(record.rows.lock().unwrap().len(), 1);
    assert_eq!(gate.stock(DROP).await.unwrap().remaining, 4);
}

#[tokio::test]
async fn a_claim_dropped_before_its_commit_gives_back_its_stock_and_key() {
    let gate = Arc::new(MemoryGate::default());
    gate.open(DROP, &terms(1, 1)).await.unwrap();
    let user = UserId::generate();
    let unit = UnitId(Uuid::now_v7());
    let claim = || gate.claim(DROP, user, unit, Some("k"), Timestamp(150));
    let Ok(Decision::Admitted(ticket)) = claim().await else {
        panic!("admitted")
    };
    assert_eq!(gate.stock(DROP).await.unwrap().remaining, 0);
    let (reply, mut answer) = oneshot::channel();
    let seat = Seat {
        id: unit,
        user,
        seq: ticket.seq,
    };
    // As if the writer panicked or the runtime stopped with it queued.
    drop(Pending {
        row: seat,
        queued: Instant::now(),
        ticket: Some(ticket),
        gate: gate.clone(),
        reply: Some(reply),
    });
    assert!(
        matches!(answer.try_recv(), Ok(Err(_))),
        "the request is told it failed"
    );
    let stock = gate.stock(DROP).await.unwrap();
    assert_eq!((stock.remaining, stock.issued), (1, 0), "the stock is back");
    assert!(
        matches!(claim().await, Ok(Decision::Admitted(_))),
        "the key is free again, not stuck in flight"
    );
}

/// The test kind's record as the admission core sees it: for a Redis gate's
/// rebuild and reconciler.
#[derive(Debug)]
pub(super) struct SeatRecord {
    seats: Arc<Seats>,
    terms: Terms,
    epoch: std::sync::atomic::AtomicU64,
}

impl SeatRecord {
    /// An empty record for one drop on these terms.
    pub(super) fn new(terms: Terms) -> Self {
        Self {
            seats: Arc::new(Seats::default()),
            terms,
            epoch: Default::default(),
        }
    }

    fn held(&self) -> Vec<Held> {
        let rows = self.seats.rows.lock().unwrap();
        let mut per_user: HashMap<UserId, u32> = HashMap::new();
        rows.iter()
            .map(|r| {
                let n = per_user.entry(r.user).or_default();
                *n += 1;
                Held {
                    id: r.id,
                    user: r.user,
                    seq: r.seq,
                    user_seq: *n,
                    key: None,
                    returned: false,
                }
            })
            .collect()
    }
}

#[async_trait]
impl Stockpile for SeatRecord {
    fn kind(&self) -> Kind {
        DROP.kind
    }

    async fn load_all(&self) -> anyhow::Result<Vec<(Uuid, Terms, Vec<Held>)>> {
        Ok(vec![(DROP.id, self.terms, self.held())])
    }

    async fn drops(&self) -> anyhow::Result<Vec<Uuid>> {
        Ok(vec![DROP.id])
    }

    async fn fence_and_load(&self, drop: Uuid) -> Result<Fenced, GateError> {
        if drop != DROP.id {
            return Err(GateError::NoSuchDrop);
        }
        let epoch = self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Ok(Fenced {
            terms: self.terms,
            epoch,
            held: self.held(),
        })
    }

    async fn resolve_stale(
        &self,
        _drop: Uuid,
        claims: &[(u32, UnitId)],
    ) -> anyhow::Result<HashMap<u32, Held>> {
        let held = self.held();
        Ok(claims
            .iter()
            .filter_map(|(seq, _)| held.iter().find(|h| h.seq == *seq))
            .map(|h| (h.seq, h.clone()))
            .collect())
    }
}

/// The same core over the real Redis (the local server the test command
/// starts): a claim whose instance died is reconciled from the test kind's
/// record, and a gate Redis lost is rebuilt from it — no coupon anywhere.
#[tokio::test]
async fn a_redis_gate_rebuilds_and_reconciles_a_kind_that_is_not_a_coupon() {
    let conn = crate::redis_conn::RedisConn::open(&["redis://127.0.0.1:6379".into()], false)
        .await
        .expect("the local Redis (scripts/services.sh starts it)");
    let prefix = format!("admission-test-{}", Uuid::now_v7());
    let seats = Arc::new(Seats::default());
    let record = Arc::new(SeatRecord {
        seats: seats.clone(),
        terms: terms(10, 2),
        epoch: Default::default(),
    });
    let gate = Arc::new(RedisGate::new(
        conn.clone(),
        &prefix,
        vec![record.clone() as Arc<dyn Stockpile>],
        Metrics::new(),
    ));
    gate.open(DROP, &terms(10, 2)).await.unwrap();
    let (commit, writer) = start_writer(&gate, SeatWriter(seats.clone()));
    let claim = |user: UserId| {
        let (gate, commit) = (gate.clone(), commit.clone());
        async move {
            let id = UnitId::generate();
            match gate
                .claim(DROP, user, id, None, Timestamp(150))
                .await
                .unwrap()
            {
                Decision::Admitted(t) => {
                    let seat = Seat {
                        id,
                        user,
                        seq: t.seq,
                    };
                    commit
                        .submit(t, seat)
                        .await
                        .unwrap()
                        .map(|()| id)
                        .map_err(|e| e.to_string())
                }
                other => Err(format!("{other:?}")),
            }
        }
    };
    let (a, b) = (UserId::generate(), UserId::generate());
    claim(a).await.unwrap();
    claim(a).await.unwrap();
    assert!(claim(a).await.unwrap_err().contains("LimitReached"));

    // b is admitted, then its instance "dies": nothing is written or settled.
    let Decision::Admitted(lost) = gate
        .claim(DROP, b, UnitId::generate(), None, Timestamp(150))
        .await
        .unwrap()
    else {
        panic!("admitted")
    };
    assert_eq!(lost.seq, 3);
    drop(lost);
    assert_eq!(gate.stock(DROP).await.unwrap().remaining, 7);
    let settled = gate
        .reconcile(DROP, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(settled, 1, "the stale claim was found and settled");
    let stock = gate.stock(DROP).await.unwrap();
    assert_eq!(
        (stock.remaining, stock.issued),
        (8, 2),
        "its stock came back"
    );

    // Redis loses the gate: the next claim rebuilds it from the record.
    let mut c = conn.clone();
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("{prefix}:{{{DROP}}}:meta"))
        .query_async(&mut c)
        .await
        .unwrap();
    claim(b).await.unwrap();
    claim(b).await.unwrap();
    assert!(claim(b).await.unwrap_err().contains("LimitReached"));
    writer.drain().await;
    let mut seqs: Vec<u32> = seats.rows.lock().unwrap().iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        [1, 2, 3, 4],
        "the lost claim's seq was reused, none twice"
    );
    let stock = gate.stock(DROP).await.unwrap();
    assert_eq!((stock.remaining, stock.issued), (6, 4));
    assert_eq!(
        record.epoch.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "opened, then rebuilt once"
    );
}

/// A claim written off by the reconciler (its instance was slow, not dead)
/// settles late, after its seq went to another live claim: the late settle
/// must end only the claim it was given, never the live one holding the seq.
/// (Matched by seq alone, it freed the live claim's seq for a third claim:
/// two claims, one seq, refused by the record and a burst of 503s.)
#[tokio::test]
async fn a_late_settle_never_ends_the_live_claim_that_took_its_seq_since() {
    let conn = crate::redis_conn::RedisConn::open(&["redis://127.0.0.1:6379".into()], false)
        .await
        .expect("the local Redis (scripts/services.sh starts it)");
    let prefix = format!("admission-test-{}", Uuid::now_v7());
    let record = Arc::new(SeatRecord {
        seats: Arc::new(Seats::default()),
        terms: terms(10, 5),
        epoch: Default::default(),
    });
    let gate = RedisGate::new(
        conn,
        &prefix,
        vec![record.clone() as Arc<dyn Stockpile>],
        Metrics::new(),
    );
    gate.open(DROP, &terms(10, 5)).await.unwrap();
    let admit = |user: UserId| {
        let gate = &gate;
        async move {
            match gate
                .claim(DROP, user, UnitId::generate(), None, Timestamp(150))
                .await
                .unwrap()
            {
                Decision::Admitted(t) => t,
                other => panic!("expected admission, got {other:?}"),
            }
        }
    };
    let slow = admit(UserId::generate()).await;
    assert_eq!(slow.seq, 1);
    // The reconciler finds nothing in the record for it and writes it off.
    assert_eq!(
        gate.reconcile(DROP, std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    let live = admit(UserId::generate()).await;
    assert_eq!(live.seq, 1, "the written-off seq is handed out again");
    // The slow instance's writer now gives up on its claim and settles it.
    gate.settle(vec![(slow, Outcome::Failed)]).await;
    let stock = gate.stock(DROP).await.unwrap();
    assert_eq!(stock.remaining, 9, "the live claim still holds seq 1");
    let third = admit(UserId::generate()).await;
    assert_eq!(third.seq, 2, "seq 1 is not handed out twice");
    gate.settle(vec![(live, Outcome::Committed(UnitId::generate()))])
        .await;
    assert_eq!(gate.stock(DROP).await.unwrap().issued, 1);
}

/// A writer that panics mid-batch.
struct PanickingWriter;

#[async_trait]
impl RowWriter<Seat> for PanickingWriter {
    async fn insert(&mut self, _rows: &[&Seat]) -> Result<HashSet<UnitId>, WriteError> {
        panic!("a bug in the writer");
    }

    async fn existing(&mut self, _rows: &[&Seat]) -> Result<HashSet<UnitId>, WriteError> {
        unreachable!()
    }
}

#[tokio::test]
async fn a_dead_writer_is_seen_and_its_claims_give_their_stock_back() {
    let gate = Arc::new(MemoryGate::default());
    gate.open(DROP, &terms(3, 3)).await.unwrap();
    let (commit, _writer) = start_writer(&gate, PanickingWriter);
    assert!(commit.writers_alive());
    let answer = claim_seat(&gate, &commit, UserId::generate(), None).await;
    assert!(answer.is_err(), "the claim is told it failed: {answer:?}");
    assert!(
        !commit.writers_alive(),
        "readiness can see the writer is gone"
    );
    let stock = gate.stock(DROP).await.unwrap();
    assert_eq!((stock.remaining, stock.issued), (3, 0), "nothing leaked");
}

/// The record already holds seq 1 (the gate is out of step with it), so the
/// claim that took seq 1 is refused. Nothing of that claim may be handed out
/// again: seq 1 would be refused for every later claim; the user's slot may
/// be the record's (freed, each retry would take a new seq, be refused and
/// so on until one user had eaten the drop); its key answers "retry later".
#[tokio::test]
async fn a_claim_the_record_refused_keeps_its_seq_slot_and_key_until_start_up() {
    let gate = Arc::new(MemoryGate::default());
    gate.open(DROP, &terms(5, 2)).await.unwrap();
    let record = Arc::new(Seats::default());
    record.rows.lock().unwrap().push(Seat {
        id: UnitId::generate(),
        user: UserId::generate(),
        seq: 1,
    });
    let (commit, writer) = start_writer(&gate, SeatWriter(record.clone()));
    let (user, other) = (UserId::generate(), UserId::generate());
    let refused = claim_seat(&gate, &commit, user, Some("k")).await;
    assert!(refused.is_err(), "the record refused seq 1: {refused:?}");
    let again = claim_seat(&gate, &commit, user, Some("k")).await;
    assert!(
        matches!(&again, Err(why) if why.contains("could not be confirmed")),
        "the key answers retry-later, not a fresh claim: {again:?}"
    );
    let second = claim_seat(&gate, &commit, user, None).await;
    assert!(
        matches!(second, Ok(Ok(_))),
        "the user's other slot: {second:?}"
    );
    let third = claim_seat(&gate, &commit, user, None).await;
    assert!(
        matches!(third, Ok(Err(Rejection::LimitReached))),
        "the refused claim still holds a slot: {third:?}"
    );
    let others = claim_seat(&gate, &commit, other, None).await;
    assert!(matches!(others, Ok(Ok(_))), "{others:?}");
    writer.drain().await;
    let mut seqs: Vec<u32> = record.rows.lock().unwrap().iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3], "the record's own seq 1, then 2 and 3");
    let stock = gate.stock(DROP).await.unwrap();
    assert_eq!(
        (stock.issued, stock.remaining),
        (2, 2),
        "seq 1 is kept out, not remaining"
    );
}
