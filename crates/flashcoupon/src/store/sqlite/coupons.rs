//! The group-commit writer on SQLite: multi-row INSERTs in one transaction.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use sqlx::{Connection, SqliteConnection};

use crate::domain::ids::CouponId;
use crate::events::{EventKind, Payload};
use crate::store::coupons::issued_outbox;
use crate::store::write_turn::WriteTurn;
use crate::store::{CouponWriter, NewCouponRow, StoreError};

/// The writer's dedicated connection, and the store's write turn, which it
/// takes ahead of every other write (see `WriteTurn`).
#[derive(Debug)]
pub(super) struct SqliteWriter {
    pub conn: SqliteConnection,
    pub turn: Arc<WriteTurn>,
    /// Also write each coupon's `coupon.issued` to the outbox.
    pub outbound: bool,
}

const INSERT_COLUMNS: usize = 10;
/// Multi-row INSERTs come in power-of-two sizes only: a batch is written in
/// at most seven statements (each a hand-off to SQLite's thread), and the
/// statement cache holds seven prepared statements, not one per batch length.
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// The `coupon.issued` inbox rows of a chunk (see `Store::writes_issued_inbox`).
fn inbox_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|&n| {
                format!(
                    "INSERT INTO notifications (id, user_id, kind, campaign_id, payload, created_at) VALUES {}",
                    vec![format!("(?, ?, '{}', ?, ?, ?)", EventKind::CouponIssued); n].join(", ")
                )
            })
            .collect()
    });
    let at = CHUNKS
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(CHUNKS.len() - 1);
    &all[at]
}

fn insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|&n| {
                let one = format!("({})", ["?"; INSERT_COLUMNS].join(", "));
                format!(
                    "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, idempotency_key, \
                     issued_at, valid_from, valid_until, code) VALUES {}",
                    vec![one; n].join(", ")
                )
            })
            .collect()
    });
    let at = CHUNKS
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(CHUNKS.len() - 1);
    &all[at]
}

#[async_trait]
impl CouponWriter for SqliteWriter {
    /// Write one group-commit batch in one transaction: all rows or none.
    async fn insert(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError> {
        let _turn = self.turn.urgent().await;
        let mut tx = self.conn.begin().await?;
        let mut rest = rows;
        while !rest.is_empty() {
            let n = CHUNKS.into_iter().find(|&n| n <= rest.len()).unwrap_or(1);
            let (chunk, tail) = rest.split_at(n);
            let mut q = sqlx::query(insert_sql(n));
            for r in chunk {
                q = q
                    .bind(r.id.to_string())
                    .bind(r.campaign_id.to_string())
                    .bind(r.user_id.to_string())
                    .bind(r.seq as i64)
                    .bind(r.user_seq as i64)
                    .bind(r.idempotency_key.as_deref())
                    .bind(r.issued_at.0)
                    .bind(r.valid_from.0)
                    .bind(r.valid_until.0)
                    .bind(r.code.as_deref());
            }
            q.execute(&mut *tx).await?;
            let mut inbox = sqlx::query(inbox_sql(n));
            for r in chunk {
                inbox = inbox
                    .bind(r.id.to_string())
                    .bind(r.user_id.to_string())
                    .bind(r.campaign_id.to_string())
                    .bind(
                        Payload::CouponIssued {
                            coupon_id: r.id,
                            seq: r.seq,
                            valid_until: r.valid_until,
                        }
                        .data_json(),
                    )
                    .bind(r.issued_at.0);
            }
            inbox.execute(&mut *tx).await?;
            if self.outbound {
                let rows: Vec<_> = chunk.iter().map(|r| issued_outbox(r)).collect();
                crate::store::outbox::insert_outbox!(sqlx::Sqlite, &rows)
                    .build()
                    .execute(&mut *tx)
                    .await?;
            }
            rest = tail;
        }
        tx.commit().await?;
        Ok(rows.iter().map(|r| r.id).collect())
    }

    async fn existing(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError> {
        let mut found = HashSet::new();
        for id in rows.iter().map(|r| &r.id) {
            let row = sqlx::query("SELECT 1 FROM coupons WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut self.conn)
                .await?;
            if row.is_some() {
                found.insert(*id);
            }
        }
        Ok(found)
    }
}
