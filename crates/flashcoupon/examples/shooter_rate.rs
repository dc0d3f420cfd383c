//! The loadtest generator's own ceiling (issue 17): the storm client of
//! `flashcoupon loadtest` (`loadtest::client::Shooter`, the very code that
//! sends a drop's claims) firing `POST` at one URL as fast as it can, with
//! `--connections` requests in flight, for `--duration`. Pointed at the bare
//! axum baseline, its rate reads against wrk's in the same run
//! (`bench/generator.sh`).
//!
//! ```sh
//! cargo run --release --example shooter_rate -- http://127.0.0.1:3000/issue --connections 64 --duration 10s
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use flashcoupon::loadtest::client::{Aim, Shooter};

#[derive(Parser, Debug)]
struct Args {
    /// Where to POST.
    url: String,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to fire for.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of warm-up before the measured run.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same request shape as a claim: a bearer token and a key, no body.
    let aim = Aim::post(&args.url, "x".repeat(200).as_str())?.key("shooter-rate")?;
    let shooter = Shooter::new(args.connections);
    let permits = Arc::new(Semaphore::new(args.connections));
    fire_for(&shooter, &aim, &permits, args.connections, args.warmup).await;
    let (answered, failed, secs) =
        fire_for(&shooter, &aim, &permits, args.connections, args.seconds).await;
    println!(
        "shooter: {answered} answered, {failed} without an answer or not 2xx, in {secs:.2} s: {:.0} req/s",
        answered as f64 / secs
    );
    println!("shooter_rps={:.0}", answered as f64 / secs);
    Ok(())
}

/// `connections` loops, each sending the next request as soon as the last
/// is answered, for `seconds`: (2xx answers, the rest, seconds taken).
async fn fire_for(
    shooter: &Shooter,
    aim: &Aim,
    permits: &Arc<Semaphore>,
    connections: usize,
    seconds: u64,
) -> (u64, u64, f64) {
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let opening = Instant::now();
    let until = opening + Duration::from_secs(seconds);
    let loops: Vec<_> = (0..connections)
        .map(|_| {
            let (shooter, aim, permits, ok, bad) = (
                shooter.clone(),
                aim.clone(),
                permits.clone(),
                ok.clone(),
                bad.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < until {
                    let shot = shooter.fire(&aim, Instant::now(), opening, &permits).await;
                    match shot.status {
                        Some(s) if (200..300).contains(&s) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => bad.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for l in loops {
        let _ = l.await;
    }
    (
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        opening.elapsed().as_secs_f64(),
    )
}
