//! Failures mid-storm: `kill -9` of an instance, Redis restarting empty,
//! PostgreSQL stopping; and a Redis Cluster.

use redis::AsyncCommands;

use super::*;

/// The real binary as one scale-out instance.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn start(postgres: &str, redis: &str, prefix: &str) -> Self {
        Self::start_with(postgres, redis, prefix, &[])
    }

    fn start_with(postgres: &str, redis: &str, prefix: &str, env: &[(&str, &str)]) -> Self {
        let (child, base) = start_binary(
            Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .env("FLASHCOUPON_POSTGRES_URL", postgres)
                .env("FLASHCOUPON_REDIS_URL", redis)
                .env("FLASHCOUPON_REDIS_PREFIX", prefix)
                .env("FLASHCOUPON_JWT_SECRET", JWT_SECRET)
                .env("FLASHCOUPON_ADMIN_EMAIL", ADMIN_EMAIL)
                .env("FLASHCOUPON_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("FLASHCOUPON_CLAIM_RATE_PER_USER", "0")
                .env("FLASHCOUPON_RECONCILE_AFTER_MS", "1500")
                .env("RUST_LOG", "error")
                .envs(env.iter().copied()),
        );
        Instance { child, base }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_of_one_instance_mid_storm_loses_and_leaks_nothing() {
    const STOCK: usize = 1_000;
    let postgres = fresh_postgres().await;
    let prefix = prefix();
    let mut doomed = Instance::start(&postgres, &redis_url(), &prefix);
    let others = [
        Instance::start(&postgres, &redis_url(), &prefix),
        Instance::start(&postgres, &redis_url(), &prefix),
    ];
    let targets: Vec<String> = std::iter::once(doomed.base.clone())
        .chain(others.iter().map(|i| i.base.clone()))
        .collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[1]).await;
    let users = bulk_users(&client, &targets[1], &admin, "kill", 3_000).await;
    let campaign = create_campaign(&client, &targets[1], &admin, STOCK).await;

    // Once 300 coupons are out, freeze the first instance (SIGSTOP) and look
    // in Redis for claims it holds in flight: seqs still pending 300 ms later
    // are its own (the survivors settle theirs in milliseconds, the
    // reconciler waits 1.5 s). None yet: let it run on (SIGCONT) and look
    // again 50 coupons later. Some: SIGKILL it. Its users' claims fail over
    // (same key) to the survivors, and its claims in flight must be settled
    // by a survivor's reconciler. Without the look, a kill could land with
    // nothing in flight and the reconciler would have nothing to prove.
    let pid = doomed.child.id().to_string();
    let out = Arc::new(AtomicUsize::new(0));
    let counter = out.clone();
    let pend = format!("{prefix}:{{c:{campaign}}}:pend");
    let killer = tokio::spawn(async move {
        let redis = redis::Client::open(redis_url()).unwrap();
        let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
        let signal = |sig: &str| {
            let status = Command::new("kill").args([sig, &pid]).status().unwrap();
            assert!(status.success(), "kill {sig}");
        };
        let mut at = 300;
        while at < STOCK - 100 {
            if out.load(Ordering::SeqCst) < at {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            signal("-STOP");
            let before: Vec<u32> = conn.zrange(&pend, 0, -1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after: Vec<u32> = conn.zrange(&pend, 0, -1).await.unwrap();
            let stuck: Vec<u32> = before.into_iter().filter(|s| after.contains(s)).collect();
            if stuck.is_empty() {
                signal("-CONT");
                at += 50;
                continue;
            }
            signal("-KILL");
            return Some((stuck, conn, pend));
        }
        None
    });
    let issued = storm(&client, &targets, &campaign, &users, "kill", move |n| {
        counter.store(n, Ordering::SeqCst);
    })
    .await;
    let (stuck, mut conn, pend) = killer
        .await
        .unwrap()
        .expect("the instance was killed mid-storm with claims in flight");
    let _ = doomed.child.wait();

    let survivors: Vec<String> = targets[1..].to_vec();
    let late = finish_the_drop(&client, &survivors, &admin, &campaign, STOCK).await;
    let rows = record(&postgres, &campaign).await;
    let all: Vec<Issued> = issued.into_iter().chain(late).collect();
    check_promises(&rows, &all, STOCK);
    assert_eq!(rows.len(), STOCK, "sold out exactly: nothing leaked");
    // The dead instance's claims in flight are settled by a survivor's
    // reconciler once they are old enough; the drop can sell out before
    // that (claims that did commit fill the stock), so poll, bounded.
    let mut left = stuck.clone();
    for _ in 0..150 {
        let pending: Vec<u32> = conn.zrange(&pend, 0, -1).await.unwrap();
        left.retain(|s| pending.contains(s));
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "the dead instance's claims in flight {stuck:?} were settled; still pending: {left:?}"
    );
    let mut reconciled = 0.0;
    for base in &survivors {
        for outcome in ["committed", "written_off", "superseded"] {
            let line = format!("flashcoupon_gate_reconciled_total{{outcome=\"{outcome}\"}} ");
            reconciled += crate::helpers::metric_at(&client, base, &line).await;
        }
    }
    assert!(
        reconciled >= 1.0,
        "a survivor's reconciler settled them ({reconciled})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarting_empty_mid_storm_is_rebuilt_from_the_record() {
    const STOCK: usize = 600;
    let mut redis = RedisServer::start();
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &redis.url(), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "redis", 1_500).await;
    let campaign = create_campaign(&client, &targets[0], &admin, STOCK).await;

    let storm_task = storm_in_background(&client, &targets, &campaign, users, "redis", 200).await;
    redis.kill();
    // Fail closed while Redis is gone: no claim succeeds, /readyz says so.
    let (_, token) = apps[0].signup("while-down@example.com").await;
    let r = apps[0].issue(&campaign, &token, None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        apps[0].get("/readyz", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart();
    let issued = storm_task.await.unwrap();

    let late = finish_the_drop(&client, &targets, &admin, &campaign, STOCK).await;
    assert_eq!(apps[0].get("/readyz", None).await.status(), StatusCode::OK);
    let rows = record(&postgres, &campaign).await;
    let all: Vec<Issued> = issued.into_iter().chain(late).collect();
    check_promises(&rows, &all, STOCK);
    assert_eq!(rows.len(), STOCK);
    let rebuilds = apps
        .iter()
        .map(|a| a.state.metrics.gate_rebuilds.get())
        .sum::<u64>();
    assert!(
        rebuilds >= 2,
        "created once, rebuilt after the restart ({rebuilds})"
    );
}

/// The group commit's own PostgreSQL connection, idle while PostgreSQL
/// restarted, is found dead before a batch is given to it: the first claim
/// after the restart is a 201, not a 503 for a batch nothing of which was
/// sent (seen as a flake of the storm test below).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_writer_connection_outlives_a_postgres_restart() {
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let postgres = private_database(&pg).await;
    let mut settings = shared_settings(&postgres, &redis_url(), &prefix());
    // One writer: the claim after the restart meets the connection the
    // claim before it opened.
    settings.commit_writers = Some(1);
    let apps = instances(&settings, 1).await;
    let client = test_client();
    let admin = admin_token(&client, &apps[0].base).await;
    let campaign = create_campaign(&client, &apps[0].base, &admin, 10).await;
    let (_, before) = apps[0].signup("before@example.com").await;
    let (_, after) = apps[0].signup("after@example.com").await;
    // The writer's connection is open and has written.
    assert_eq!(
        apps[0].issue(&campaign, &before, None).await.status(),
        StatusCode::CREATED
    );
    // (Kept: dropping the server stops it.)
    let _pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg.restart();
        pg
    })
    .await
    .unwrap();
    // The pool's connections are tested when taken: wait until the
    // instance reads the record again, and past the writer's idle check.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = apps[0].get("/readyz", None).await;
        if r.status() == StatusCode::OK {
            break;
        }
        let why = body(r).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready again: {why}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = apps[0].issue(&campaign, &after, None).await;
    let status = r.status();
    assert_eq!(status, StatusCode::CREATED, "{}", body(r).await);
    assert_eq!(record(&postgres, &campaign).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopping_mid_storm_fails_closed_and_recovers() {
    const STOCK: usize = 600;
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let postgres = private_database(&pg).await;
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "pg", 1_500).await;
    let (_, token) = apps[0].signup("while-down@example.com").await;
    let campaign = create_campaign(&client, &targets[0], &admin, STOCK).await;
    // A second drop, to probe while the storm may already have sold out the first.
    let probe = create_campaign(&client, &targets[0], &admin, 10).await;

    let storm_task = storm_in_background(&client, &targets, &campaign, users, "pg", 200).await;
    eprintln!("stopping PostgreSQL mid-storm");
    let pg = Arc::new(pg);
    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.stop()
    })
    .await
    .unwrap();
    let r = apps[0].issue(&probe, &token, Some("probe")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "fails closed");
    assert_eq!(
        apps[0].get("/readyz", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("starting PostgreSQL again");
    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.restart()
    })
    .await
    .unwrap();
    let issued = storm_task.await.unwrap();
    eprintln!("storm over; finishing the drop");

    let late = finish_the_drop(&client, &targets, &admin, &campaign, STOCK).await;
    assert_eq!(apps[0].get("/readyz", None).await.status(), StatusCode::OK);
    let rows = record(&postgres, &campaign).await;
    let all: Vec<Issued> = issued.into_iter().chain(late).collect();
    check_promises(&rows, &all, STOCK);
    assert_eq!(rows.len(), STOCK);

    // The probe's claim was answered 503: it is not in the record, its stock
    // came back (at once, or via the reconciler if its outcome was unknown),
    // and retrying its key now issues exactly one coupon.
    assert!(record(&postgres, &probe).await.is_empty());
    let mut back = false;
    for _ in 0..40 {
        let view = campaign_view(&client, &targets[1], &probe).await;
        if view["remaining_quantity"] == 10 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(back, "the probe's stock returned to the pool");
    let r = apps[1].issue(&probe, &token, Some("probe")).await;
    let r_status = r.status();
    let r = body(r).await;
    assert_eq!(r_status, StatusCode::CREATED, "{r}");
    let again = apps[0].issue(&probe, &token, Some("probe")).await;
    assert_eq!(body(again).await["id"], r["id"]);
    assert_eq!(record(&postgres, &probe).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_cluster_keeps_every_promise() {
    const STOCK: usize = 500;
    let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
    create_cluster(&nodes);
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &urls.join(","), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "cluster", 1_000).await;
    // Several campaigns, so their hash tags land on different masters.
    let mut campaigns = Vec::new();
    for _ in 0..3 {
        campaigns.push(create_campaign(&client, &targets[1], &admin, STOCK).await);
    }
    for campaign in &campaigns {
        let issued = storm(&client, &targets, campaign, &users, campaign, |_| {}).await;
        let rows = record(&postgres, campaign).await;
        check_promises(&rows, &issued, STOCK);
        assert_eq!(rows.len(), STOCK);
        assert_eq!(issued.len(), STOCK);
    }
}

/// Fault injection: this test's PostgreSQL backends (its instances' pool
/// and group-commit connections, found by application name) are terminated
/// every 25 ms while two instances are stormed, so batches die before,
/// during and after their COMMIT. Every 201 must be in the record, nothing
/// over-issued or duplicated, and the drop must still finish exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_backends_killed_mid_batch_lose_and_leak_nothing() {
    use sqlx::Connection;
    const STOCK: usize = 300;
    let name = format!("fc-fault-{}", uuid::Uuid::now_v7().simple());
    let postgres = format!("{}&application_name={name}", fresh_postgres().await);
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "fault", 400).await;
    let campaign = create_campaign(&client, &targets[0], &admin, STOCK).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = tokio::spawn({
        let (stop, name) = (stop.clone(), name.clone());
        async move {
            let mut conn = sqlx::PgConnection::connect(&crate::helpers::postgres_base())
                .await
                .unwrap();
            let mut killed = 0_i64;
            while !stop.load(Ordering::SeqCst) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = $1",
                )
                .bind(&name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
                killed += n;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            killed
        }
    });
    let mut issued = storm(&client, &targets, &campaign, &users, "fault", |_| {}).await;
    stop.store(true, Ordering::SeqCst);
    let killed = killer.await.unwrap();
    assert!(killed > 10, "backends were killed mid-storm ({killed})");
    issued.extend(finish_the_drop(&client, &targets, &admin, &campaign, STOCK).await);
    let rows = record(&postgres, &campaign).await;
    assert_eq!(rows.len(), STOCK, "the drop finished exactly");
    check_promises(&rows, &issued, STOCK);
}

/// Fault injection: every group-commit writer's PostgreSQL backend is
/// frozen (SIGSTOP, while idle between batches) for longer than the
/// reconciler's age, mid-storm, then thawed. The reconciler, on other
/// connections, settles the stalled claims from the record and writes off
/// the ones that had not landed; the thawed writers must then skip those.
/// Oracle: every 201 is in the record, no 503 was answered for a coupon that
/// exists (checked on the users who send no Idempotency-Key: each of their
/// coupons in the record was answered 201), nothing over-issued, and the
/// drop finishes exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_stalled_past_the_reconcilers_age_lose_nothing_and_answer_no_false_503() {
    use sqlx::Connection;
    // Long enough that the storm is still on when the writers freeze.
    const STOCK: usize = 2_000;
    let name = format!("fc-stall-{}", uuid::Uuid::now_v7().simple());
    let postgres = format!("{}&application_name={name}", fresh_postgres().await);
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "stall", 3_000).await;
    let campaign = create_campaign(&client, &targets[0], &admin, STOCK).await;

    let storm_task =
        storm_in_background(&client, &targets, &campaign, users.clone(), "stall", 50).await;
    let mut conn = sqlx::PgConnection::connect(&crate::helpers::postgres_base())
        .await
        .unwrap();
    let signal = |sig: &str, pid: i32| {
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut frozen: HashSet<i32> = HashSet::new();
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(800) {
        let idle: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'",
        )
        .bind(format!("{name}/writer"))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for pid in idle {
            if !frozen.contains(&pid) && signal("-STOP", pid) {
                frozen.insert(pid);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Past the reconciler's age (1.5 s) and a few of its rounds.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let storm_was_on = !storm_task.is_finished();
    for &pid in &frozen {
        signal("-CONT", pid);
    }
    assert!(!frozen.is_empty(), "no writer backend was frozen");
    assert!(
        storm_was_on,
        "the storm ended before the writers thawed: no stall to see"
    );
    let mut issued = storm_task.await.unwrap();
    issued.extend(finish_the_drop(&client, &targets, &admin, &campaign, STOCK).await);
    let rows = record(&postgres, &campaign).await;
    assert_eq!(rows.len(), STOCK, "the drop finished exactly");
    check_promises(&rows, &issued, STOCK);
    // The storm gives even-numbered users a key: odd ones never retry a
    // claim as the same claim, so a coupon of theirs that was not answered
    // 201 is one a 503 (or a lost answer) denied.
    let reconciled: u64 = apps
        .iter()
        .flat_map(|a| {
            ["committed", "written_off", "superseded"]
                .map(|o| a.state.metrics.reconciled.with_label_values(&[o]).get())
        })
        .sum();
    let refused: u64 = apps
        .iter()
        .map(|a| {
            a.state
                .metrics
                .issue_outcomes
                .with_label_values(&["unavailable"])
                .get()
        })
        .sum();
    eprintln!(
        "stall: {} backends frozen, {reconciled} claims reconciled, {refused} answered 503",
        frozen.len()
    );
    // Claims that outlived the age are failed by their writer (max_age) or
    // settled by the reconciler; either way some must have.
    assert!(
        reconciled + refused > 0,
        "the stall never outlasted the claims' age"
    );
    let keyless: HashSet<&str> = users
        .iter()
        .skip(1)
        .step_by(2)
        .map(|u| u.0.as_str())
        .collect();
    let answered: HashSet<&str> = issued.iter().map(|i| i.coupon.as_str()).collect();
    for row in rows.iter().filter(|r| keyless.contains(r.user_id.as_str())) {
        assert!(
            answered.contains(row.id.as_str()),
            "coupon {} is in the record but its claim was not answered 201",
            row.id
        );
    }
}

/// libfaketime (Debian's `faketime`, installed by `scripts/services.sh`):
/// the process's real-time clock moved by `offset`, its monotonic clock left
/// alone so timers and timeouts behave.
fn skewed(offset: &'static str) -> [(&'static str, &'static str); 4] {
    const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        std::path::Path::new(LIB).exists(),
        "libfaketime is missing: scripts/services.sh installs it"
    );
    [
        ("LD_PRELOAD", LIB),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        // Reconcile passes every 200 ms: many during the storm.
        ("FLASHCOUPON_RECONCILE_AFTER_MS", "800"),
    ]
}

/// Fault injection: two instances whose system clocks are an hour ahead and
/// an hour behind. The drop's window and the ageing of claims in flight
/// read Redis's clock, so the fast instance refuses before the opening, the
/// slow one admits after it, and neither reconciler takes the other's
/// claims in flight for abandoned ones (which would write them off and
/// answer 503 for claims that were about to land); holds live on the
/// record's clock; a revocation compares no clock at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_with_skewed_clocks_agree_on_window_ageing_and_revocation() {
    const STOCK: usize = 2_500;
    let postgres = fresh_postgres().await;
    let prefix = prefix();
    let fast = Instance::start_with(&postgres, &redis_url(), &prefix, &skewed("+3600s"));
    let slow = Instance::start_with(&postgres, &redis_url(), &prefix, &skewed("-3600s"));
    let targets = [fast.base.clone(), slow.base.clone()];
    let client = test_client();
    let admin = admin_token(&client, &fast.base).await;
    let users = bulk_users(&client, &slow.base, &admin, "skew", 3_000).await;

    // Opens 4 s from now by this (the test's, the true) clock.
    let opens = flashcoupon::clock::Clock::default()
        .now()
        .plus_millis(4_000);
    let r = client
        .post(format!("{}/api/v1/campaigns", slow.base))
        .bearer_auth(&admin)
        .json(&json!({
            "name": "skewed clocks", "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": STOCK, "per_user_limit": LIMIT,
            "issue_starts_at": crate::helpers::rfc3339(opens),
            "issue_ends_at": "2099-01-01T00:00:00Z", "valid_days": 30
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let timed = body(r).await["id"].as_str().unwrap().to_owned();
    let issue = |base: &str, token: &str| {
        client
            .post(format!("{base}/api/v1/campaigns/{timed}/issue"))
            .bearer_auth(token)
            .send()
    };
    let r = issue(&fast.base, &users[0].1).await.unwrap();
    assert!(
        flashcoupon::clock::Clock::default().now() < opens,
        "the early claim was sent before the opening"
    );
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "an hour-fast clock opened early"
    );
    assert_eq!(body(r).await["error"]["code"], "not_open");

    // After the opening the hour-slow instance admits at once.
    let mut waited = 0;
    let timed_coupon = loop {
        let r = issue(&slow.base, &users[0].1).await.unwrap();
        if r.status() == StatusCode::CREATED {
            assert!(flashcoupon::clock::Clock::default().now() >= opens);
            break body(r).await["id"].as_str().unwrap().to_owned();
        }
        assert_eq!(body(r).await["error"]["code"], "not_open");
        waited += 1;
        assert!(waited < 100, "an hour-slow instance never opened the drop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A storm through both on a drop open since 2020 (so the old per-host
    // clocks would have admitted on both): claims in flight are aged by one
    // clock, so nothing is reconciled while both instances live.
    let campaign = create_campaign(&client, &fast.base, &admin, STOCK).await;
    let mut issued = storm(&client, &targets, &campaign, &users[1..], "skew", |_| {}).await;
    issued.extend(finish_the_drop(&client, &targets, &admin, &campaign, STOCK).await);
    let rows = record(&postgres, &campaign).await;
    assert_eq!(rows.len(), STOCK, "the drop finished exactly");
    check_promises(&rows, &issued, STOCK);
    for base in &targets {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let count = |metric: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(metric))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        assert_eq!(
            count("flashcoupon_issue_outcomes_total{result=\"unavailable\"} "),
            0.0,
            "{base} answered 503: a live claim was written off as abandoned"
        );
        for outcome in ["committed", "written_off", "superseded"] {
            assert_eq!(
                count(&format!(
                    "flashcoupon_gate_reconciled_total{{outcome=\"{outcome}\"}} "
                )),
                0.0,
                "{base} settled live claims of the other instance ({outcome})"
            );
        }
    }

    // Holds run on the record's clock: a 10-minute hold made on the slow
    // instance is not expired by the fast one's rounds, and confirms there.
    let r = client
        .post(format!("{}/api/v1/admin/api-keys", fast.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "skewed shop"}))
        .send()
        .await
        .unwrap();
    let key = body(r).await["key"].as_str().unwrap().to_owned();
    let r = client
        .post(format!(
            "{}/api/v1/coupons/{timed_coupon}/reserve",
            slow.base
        ))
        .bearer_auth(&users[0].1)
        .json(&json!({"order_id": "skew-order", "order_amount": 50_000, "ttl_secs": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_500)).await; // expiry rounds on both
    let r = client
        .post(format!(
            "{}/api/v1/coupons/{timed_coupon}/confirm",
            fast.base
        ))
        .bearer_auth(&key)
        .json(&json!({"order_id": "skew-order"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the fast instance expired a live hold"
    );
    assert_eq!(body(r).await["status"], "used");

    // Revocation takes no clock either: a token the slow instance issues
    // right after `admin create` works on the fast one, and the one before
    // it is refused on both.
    let login = |base: String, password: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"email": "skew-1@bulk.invalid", "password": password}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            body(r).await["token"].as_str().unwrap().to_owned()
        }
    };
    let before = login(slow.base.clone(), "password-123").await;
    let promoted = Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
        .args(["admin", "create", "--email", "skew-1@bulk.invalid"])
        .args([
            "--password",
            "another-password-1",
            "--postgres-url",
            &postgres,
        ])
        .env("RUST_LOG", "error")
        .status()
        .unwrap();
    assert!(promoted.success());
    let after = login(slow.base.clone(), "another-password-1").await;
    let me = |base: &str, token: &str| {
        client
            .get(format!("{base}/api/v1/me/coupons"))
            .bearer_auth(token)
            .send()
    };
    for base in &targets {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while me(base, &before).await.unwrap().status() != StatusCode::UNAUTHORIZED {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{base} kept a revoked token"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            me(base, &after).await.unwrap().status(),
            StatusCode::OK,
            "{base} refused a token issued after the revocation"
        );
    }
}
