//! The record's own ceiling (issue 17): the embedded group-commit writer's
//! batches written from one thread with no HTTP, no gate and no queue,
//! on the server's schema (its migrations), its pragmas and durability,
//! with the store's own upkeep (its 500 ms checkpoints, and the restart of
//! a long log it asks the writer for). The same rows as a
//! claim storm: UUIDv7 coupon ids, distinct users in random order (a
//! coupon is its own inbox entry). `bench/issue-throughput.sh`
//! runs it next to the server so the claim path reads as a share of it.
//!
//! ```sh
//! cargo run --release --example record_ceiling -- --coupons 90000 --batch 32
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::seq::SliceRandom;

use flashcoupon::domain::account::Email;
use flashcoupon::domain::campaign::NewCampaign;
use flashcoupon::domain::ids::{CampaignId, CouponId, UserId};
use flashcoupon::domain::timestamp::Timestamp;
use flashcoupon::settings::Durability;
use flashcoupon::store::{
    AccountStore, Batches, CampaignStore, LogLength, NewCouponRow, SqliteStore, Store,
};

#[derive(Parser, Debug)]
struct Args {
    /// Coupons to write.
    #[arg(long, default_value_t = 90_000)]
    coupons: usize,
    /// Coupons per transaction (the claim benchmark's mean batch is ~32).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Distinct users the coupons go to, in random order.
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    #[arg(long, value_enum, default_value = "full")]
    sync: Durability,
    /// Also write each coupon's `coupon.issued` to the outbox (a broker).
    #[arg(long)]
    outbound: bool,
    /// Parent of the temporary data dir (default: the system's).
    #[arg(long)]
    tmpdir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = match &args.tmpdir {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let data = dir.path().join("data");
    let (campaign, users) = tokio::runtime::Runtime::new()?.block_on(prepare(&data, &args))?;
    let db = data.join("flashcoupon.db");

    let now = Timestamp::from_offset(time::OffsetDateTime::now_utc());
    let mut order = users.clone();
    order.shuffle(&mut rand::thread_rng());
    let mut per_user = std::collections::HashMap::new();
    let rows: Vec<NewCouponRow> = (0..args.coupons)
        .map(|i| {
            let user = order[i % order.len()];
            let user_seq = per_user.entry(user).and_modify(|n| *n += 1).or_insert(1);
            NewCouponRow {
                id: CouponId::generate(),
                campaign_id: campaign,
                user_id: user,
                seq: i as u32 + 1,
                user_seq: *user_seq,
                idempotency_key: None,
                issued_at: now,
                valid_from: now,
                valid_until: Timestamp(now.0 + 7 * 86_400_000),
                gate_epoch: 0,
                code: None,
                trace: None,
            }
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (checkpoints, log) = checkpointer(&data, args.sync, stop.clone())?;
    let mut writer = Batches::open(&db, args.sync, args.outbound, log)?;
    let written_before = write_bytes()?;
    let mut batch_ms = Vec::with_capacity(args.coupons / args.batch.max(1) + 1);
    let started = Instant::now();
    for chunk in rows.chunks(args.batch.max(1)) {
        let t = Instant::now();
        writer.insert(chunk)?;
        batch_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = write_bytes()? - written_before;
    stop.store(true, Ordering::Release);
    let _ = checkpoints.join();

    batch_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| batch_ms[((batch_ms.len() - 1) as f64 * p) as usize];
    let rate = args.coupons as f64 / elapsed;
    println!(
        "record ceiling: {} coupons to {} users in batches of {} ({:?} sync{}): {:.2} s",
        args.coupons,
        args.users,
        args.batch,
        args.sync,
        if args.outbound { ", outbox" } else { "" },
        elapsed
    );
    println!(
        "  {rate:.0} coupons/s; per batch p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  written to disk by this process: {:.1} KiB per coupon",
        written as f64 / args.coupons as f64 / 1024.0
    );
    println!("ceiling_coupons_per_sec={rate:.0}");
    Ok(())
}

/// Migrate a fresh database and create the users and one open campaign
/// through the store, as the server would.
async fn prepare(data: &Path, args: &Args) -> anyhow::Result<(CampaignId, Vec<UserId>)> {
    let store = SqliteStore::open(data, args.sync).await?;
    let now = Timestamp::from_offset(time::OffsetDateTime::now_utc());
    let users: Vec<UserId> = (0..args.users).map(|_| UserId::generate()).collect();
    for (n, chunk) in users.chunks(10_000).enumerate() {
        let rows: Vec<(UserId, Email)> = chunk
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let email = Email::parse(&format!("u{}-{i}@ceiling.test", n))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                Ok((id, email))
            })
            .collect::<anyhow::Result<_>>()?;
        store.insert_users(&rows, "unused", now).await?;
    }
    // As the API builds one: the create body, checked by the same rules.
    let campaign = serde_json::from_value::<NewCampaign>(serde_json::json!({
        "name": "ceiling",
        "discount": {"type": "fixed", "amount": 1000},
        "total_quantity": 1_000_000_000,
        "per_user_limit": 1000,
        "issue_starts_at": Timestamp(now.0 - 3_600_000).to_string(),
        "issue_ends_at": "2999-01-01T00:00:00Z",
        "valid_days": 7,
    }))?
    .parse(CampaignId::generate(), now)
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    store.insert_campaign(&campaign, now).await?;
    // Start from an empty log, as a server that has been idle would.
    store.close().await;
    Ok((campaign.id, users))
}

/// The server's upkeep, off the writer's thread: the store's checkpoint
/// every 500 ms (which asks the writer to start a long log over: the
/// log it shares with the writer is the second half of the answer).
fn checkpointer(
    data: &Path,
    sync: Durability,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(std::thread::JoinHandle<()>, Arc<LogLength>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime.block_on(SqliteStore::open(data, sync))?;
    let log = store.log();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async {
            while !stop.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = store.checkpoint().await;
            }
            store.close().await;
        })
    });
    Ok((thread, log))
}

/// Bytes this process caused to be written to storage (`/proc/self/io`).
fn write_bytes() -> anyhow::Result<u64> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no write_bytes in /proc/self/io"))
}
