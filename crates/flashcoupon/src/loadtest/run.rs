//! Running a loadtest: set-up, the storm, verification.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::args::LoadtestArgs;
use super::plan::Plan;
use super::report::{Report, Sample};
use super::verify::{Evidence, Held, Observed, verify};
use crate::domain::timestamp::Timestamp;

/// Users per bulk call (the endpoint's maximum is 10,000).
const BULK_BATCH: usize = 2_000;

fn bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_prefix(what.to_owned());
    b
}

async fn expect_json(r: reqwest::Response, want: u16, what: &str) -> anyhow::Result<Value> {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    if status != want {
        bail!("{what}: expected {want}, got {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON"))
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Run the whole loadtest and return its report (written to `--out` if given).
pub async fn run(args: LoadtestArgs) -> anyhow::Result<Report> {
    let args = args.resolved();
    args.check()?;
    let targets: Vec<String> = args
        .targets
        .iter()
        .map(|t| t.trim_end_matches('/').to_owned())
        .collect();
    let base = &targets[0];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(30))
        .build()?;

    // Set-up.
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": args.admin_email, "password": args.admin_password}))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let admin = expect_json(login, 200, "admin log-in").await?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let run_id = format!("{:08x}", rand::random::<u32>());
    let provisioning = bar(args.quiet, args.users as u64, "users");
    let mut tokens = Vec::with_capacity(args.users);
    for (n, start) in (0..args.users).step_by(BULK_BATCH).enumerate() {
        let count = BULK_BATCH.min(args.users - start);
        let r = client
            .post(format!("{base}/api/v1/admin/users/bulk"))
            .bearer_auth(&admin)
            .json(&json!({"count": count, "email_prefix": format!("lt-{run_id}-{n}"), "password": format!("lt-{run_id}-pw")}))
            .send()
            .await?;
        let users = expect_json(r, 201, "bulk users").await?;
        for u in users["users"].as_array().into_iter().flatten() {
            tokens.push(u["token"].as_str().unwrap_or_default().to_owned());
        }
        provisioning.inc(count as u64);
    }
    provisioning.finish_and_clear();
    anyhow::ensure!(
        tokens.len() == args.users,
        "provisioned {} of {} users",
        tokens.len(),
        args.users
    );

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
    let tokens = Arc::new(tokens);
    let mut tasks = Vec::with_capacity(plan.claims.len());
    for claim in plan.claims.iter().cloned() {
        let (client, permits, tokens, counts, storm_bar) = (
            client.clone(),
            permits.clone(),
            tokens.clone(),
            counts.clone(),
            storm_bar.clone(),
        );
        let url = format!(
            "{}/api/v1/campaigns/{campaign}/issue",
            targets[claim.user % targets.len()]
        );
        tasks.push(tokio::spawn(async move {
            let due = opening + claim.at;
            tokio::time::sleep_until(due).await;
            let _permit = permits.acquire().await;
            let sent = tokio::time::Instant::now();
            let answer = client
                .post(&url)
                .bearer_auth(&tokens[claim.user])
                .header("Idempotency-Key", &claim.key)
                .send()
                .await;
            let (status, body) = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (Some(status), r.json::<Value>().await.unwrap_or(Value::Null))
                }
                Err(_) => (None, Value::Null),
            };
            let done = tokio::time::Instant::now();
            let slot = match status {
                Some(201) => 0,
                Some(409) => 1,
                _ => 2,
            };
            counts[slot].fetch_add(1, Ordering::Relaxed);
            storm_bar.inc(1);
            Sample {
                observed: Observed {
                    user: claim.user,
                    key: claim.key,
                    status,
                    coupon: match (
                        body.get("id").and_then(Value::as_str),
                        body.get("seq").and_then(Value::as_u64),
                    ) {
                        (Some(id), Some(seq)) if status == Some(201) => {
                            Some((id.to_owned(), seq as u32))
                        }
                        _ => None,
                    },
                },
                code: body
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                sent_ms: sent.saturating_duration_since(opening).as_secs_f64() * 1e3,
                done_ms: done.saturating_duration_since(opening).as_secs_f64() * 1e3,
                latency_us: done.saturating_duration_since(due).as_micros() as u64,
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
    let checking = bar(args.quiet, args.users as u64, "verifying");
    let mut reads = Vec::with_capacity(args.users);
    for token in tokens.iter() {
        let (client, permits, checking) = (client.clone(), permits.clone(), checking.clone());
        let url = format!("{base}/api/v1/campaigns/{campaign}/me");
        let token = token.clone();
        reads.push(tokio::spawn(async move {
            let _permit = permits.acquire().await;
            let r = client.get(url).bearer_auth(token).send().await?;
            let mine = expect_json(r, 200, "wallet").await?;
            checking.inc(1);
            anyhow::Ok(
                mine["coupons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| Held {
                        id: c["id"].as_str().unwrap_or_default().to_owned(),
                        seq: c["seq"].as_u64().unwrap_or(0) as u32,
                    })
                    .collect::<Vec<_>>(),
            )
        }));
    }
    let mut wallets = Vec::with_capacity(args.users);
    for r in reads {
        wallets.push(r.await??);
    }
    checking.finish_and_clear();
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
