//! The command line of `flashcoupon loadtest`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::plan::Arrival;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArrivalKind {
    /// Everyone at the opening instant.
    Burst,
    /// Arrivals uniform over `--over`.
    Spread,
    /// `--rate` users per second for `--duration`.
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Seed 000: 10,000 users, 1,000 coupons, limit 3, two claims each
    /// (a quarter of second claims are double-clicks), arrivals over 1 s.
    #[value(name = "seed-000")]
    Seed000,
}

#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// A flashcoupon base URL; repeat for several instances (users are spread
    /// across them; set-up and verification use the first).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// A preset; it replaces users, stock, limit, claims, retries and arrival.
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    /// Shoppers taking part.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Coupons in the drop.
    #[arg(long, default_value_t = 100)]
    pub stock: u32,
    /// Per-user limit.
    #[arg(long, default_value_t = 1)]
    pub limit: u32,
    /// Claims each user sends at once when they arrive.
    #[arg(long, default_value_t = 1)]
    pub claims_per_user: u32,
    /// Share (0..=1) of a user's later claims that retry the previous one with
    /// the same Idempotency-Key.
    #[arg(long, default_value_t = 0.1)]
    pub retry_share: f64,
    /// How users arrive.
    #[arg(long, value_enum, default_value = "burst")]
    pub arrival: ArrivalKind,
    /// The window of `--arrival spread`, e.g. 1s or 500ms.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub over: Duration,
    /// Users per second for `--arrival rate`.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// How long `--arrival rate` lasts (users = rate × duration).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Requests in flight at most (HTTP connections).
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// How far ahead the campaign opens, so every user is ready at the opening.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub open_in: Duration,
    #[arg(long, env = "FLASHCOUPON_ADMIN_EMAIL")]
    pub admin_email: String,
    #[arg(long, env = "FLASHCOUPON_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: String,
    /// Write report.json and report.html (and the charts as SVG) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for arrivals and retries.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bars (for scripts and tests).
    #[arg(long)]
    pub quiet: bool,
}

impl LoadtestArgs {
    /// Apply the preset, if any.
    pub fn resolved(mut self) -> Self {
        if let Some(Scenario::Seed000) = self.scenario {
            self.users = 10_000;
            self.stock = 1_000;
            self.limit = 3;
            self.claims_per_user = 2;
            self.retry_share = 0.25;
            self.arrival = ArrivalKind::Spread;
            self.over = Duration::from_secs(1);
        }
        if self.arrival == ArrivalKind::Rate {
            self.users = (self.rate as f64 * self.duration.as_secs_f64()).round() as usize;
        }
        self
    }

    pub fn arrival(&self) -> Arrival {
        match self.arrival {
            ArrivalKind::Burst => Arrival::Burst,
            ArrivalKind::Spread => Arrival::Spread(self.over),
            ArrivalKind::Rate => Arrival::Rate { per_sec: self.rate },
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.users >= 1, "--users must be at least 1");
        anyhow::ensure!(self.stock >= 1, "--stock must be at least 1");
        anyhow::ensure!(
            (1..=1_000).contains(&self.limit),
            "--limit must be 1..=1000"
        );
        anyhow::ensure!(
            self.claims_per_user >= 1,
            "--claims-per-user must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.retry_share),
            "--retry-share must be between 0 and 1"
        );
        anyhow::ensure!(self.connections >= 1, "--connections must be at least 1");
        Ok(())
    }
}

/// `500ms`, `3s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 500ms, 3s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1_000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
