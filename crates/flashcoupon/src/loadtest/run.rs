//! Running a drop: set-up, the storm, verification.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::args::LoadtestArgs;
use super::client::{
    Aim, Shooter, admin_token, bar, bases, expect_json, http_client, provision, read_all,
    system_now_ms,
};
use super::plan::Plan;
use super::report::{Report, Sample};
use super::verify::{Evidence, Held, Observed, verify};
use crate::domain::timestamp::Timestamp;

/// Run a drop (arguments resolved and checked) and return its report
/// (written to `--out` if given).
pub async fn run(args: LoadtestArgs) -> anyhow::Result<Report> {
    let targets = bases(&args.targets);
    let base = &targets[0];
    let client = http_client(args.connections)?;

    // Set-up.
    let admin = admin_token(&client, base, &args.admin_email, &args.admin_password).await?;
    let run_id = format!("{:08x}", rand::random::<u32>());
    let tokens: Vec<String> = provision(&client, base, &admin, args.users, &run_id, args.quiet)
        .await?
        .into_iter()
        .map(|s| s.token)
        .collect();

    let opens = Timestamp(system_now_ms()).plus_millis(args.open_in.as_millis() as i64);
    let r = client
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(&admin)
        .json(&json!({
            "name": format!("loadtest {run_id}"),
            "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": args.stock,
            "per_user_limit": args.limit,
            "issue_starts_at": opens.to_string(),
            "issue_ends_at": opens.plus_millis(3_600_000).to_string(),
            "valid_days": 30,
        }))
        .send()
        .await?;
    let campaign = expect_json(r, 201, "campaign")
        .await?
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    // The storm.
    let plan = Plan::new(
        args.users,
        args.claims_per_user,
        args.retry_share,
        args.arrival(),
        &run_id,
        args.seed,
    );
    // The campaign opens at a wall-clock instant; map it onto the monotonic clock once.
    let until_open = Duration::from_millis((opens.0 - system_now_ms()).max(0) as u64);
    let opening = tokio::time::Instant::now() + until_open;
    let storm_bar = bar(args.quiet, plan.claims.len() as u64, "claims");
    let permits = Arc::new(Semaphore::new(args.connections));
    let counts: Arc<[AtomicU64; 3]> =
        Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let shooter = Shooter::new(args.connections);
    // Every request is made before the storm: none is built on its instant.
    let aims: Vec<Aim> = plan
        .claims
        .iter()
        .map(|claim| {
            let url = format!(
                "{}/api/v1/campaigns/{campaign}/issue",
                targets[claim.user % targets.len()]
            );
            Aim::post(&url, &tokens[claim.user])?.key(&claim.key)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut tasks = Vec::with_capacity(plan.claims.len());
    for (claim, aim) in plan.claims.iter().cloned().zip(aims) {
        let (shooter, permits, counts, storm_bar) = (
            shooter.clone(),
            permits.clone(),
            counts.clone(),
            storm_bar.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let shot = shooter
                .fire(&aim, opening + claim.at, opening, &permits)
                .await;
            let slot = match shot.status {
                Some(201) => 0,
                Some(409) => 1,
                _ => 2,
            };
            counts[slot].fetch_add(1, Ordering::Relaxed);
            storm_bar.inc(1);
            Sample {
                code: shot.code(),
                observed: Observed {
                    user: claim.user,
                    key: claim.key,
                    status: shot.status,
                    coupon: shot.created(201),
                },
                sent_ms: shot.sent_ms,
                done_ms: shot.done_ms,
                latency_us: shot.latency_us,
            }
        }));
    }
    let ticker = tokio::spawn({
        let (counts, storm_bar) = (counts.clone(), storm_bar.clone());
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                storm_bar.set_message(format!(
                    "201: {} · 409: {} · errors: {}",
                    counts[0].load(Ordering::Relaxed),
                    counts[1].load(Ordering::Relaxed),
                    counts[2].load(Ordering::Relaxed)
                ));
            }
        }
    });
    let started = Instant::now();
    let mut samples = Vec::with_capacity(tasks.len());
    for t in tasks {
        samples.push(t.await?);
    }
    ticker.abort();
    storm_bar.finish_and_clear();
    let storm_wall = started.elapsed();

    // Verification, through the API.
    let reads = tokens
        .iter()
        .map(|t| (format!("{base}/api/v1/campaigns/{campaign}/me"), t.clone()))
        .collect();
    let wallets: Vec<Vec<Held>> = read_all(&client, &permits, reads, args.quiet, "wallet")
        .await?
        .iter()
        .map(|mine| {
            mine["coupons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Held {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    seq: c["seq"].as_u64().unwrap_or(0) as u32,
                })
                .collect()
        })
        .collect();
    let r = client
        .get(format!("{base}/api/v1/campaigns/{campaign}"))
        .send()
        .await?;
    let campaign_issued = expect_json(r, 200, "campaign").await?["issued_count"]
        .as_u64()
        .unwrap_or(0);

    let observed: Vec<Observed> = samples.iter().map(|s| s.observed.clone()).collect();
    let violations = verify(&Evidence {
        stock: args.stock as u64,
        limit: args.limit,
        expected_issued: plan.legal_issue_count(args.stock as u64, args.limit),
        campaign_issued,
        observed: &observed,
        wallets: &wallets,
    });
    let report = Report::build(
        &args, &targets, &campaign, &samples, &wallets, storm_wall, violations,
    );
    if let Some(dir) = &args.out {
        report.write(dir)?;
    }
    Ok(report)
}
