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
    /// A time sale: 10,000 users (unless --users), 100 units, limit 1,
    /// arrivals over 1 s; buyers pay at once except --never-pay-share, whose
    /// units come back after --payment-ttl to buyers who retry.
    #[value(name = "time-sale")]
    TimeSale,
}

#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// A flashcoupon base URL; repeat for several instances (users are spread
    /// across them; set-up and verification use the first).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// A preset. seed-000 replaces users, stock, limit, claims, retries and
    /// arrival; time-sale runs a sale instead of a drop (its own defaults:
    /// 10,000 users arriving over 1 s; flags given win).
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    /// Shoppers taking part (time-sale: 10,000).
    #[arg(
        long,
        default_value_t = 1_000,
        default_value_if("scenario", "time-sale", "10000")
    )]
    pub users: usize,
    /// Coupons in the drop (time-sale: units of the product).
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
    /// How users arrive (time-sale: spread).
    #[arg(
        long,
        value_enum,
        default_value = "burst",
        default_value_if("scenario", "time-sale", "spread")
    )]
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
    #[command(flatten)]
    pub sale: SaleArgs,
}

/// What only `--scenario time-sale` reads.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct SaleArgs {
    /// Share (0..=1) of buyers who never pay the order they get: its unit
    /// comes back to the stock when its payment time runs out.
    #[arg(long, default_value_t = 0.3)]
    pub never_pay_share: f64,
    /// The sale's payment time (whole seconds).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub payment_ttl: Duration,
    /// How many times a buyer who found no unit tries again.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// How long a buyer waits before trying again, plus a random part up to
    /// --over so retries spread like arrivals (default: the payment time,
    /// so each retry wave meets the units the previous one left unpaid).
    #[arg(long, value_parser = parse_duration)]
    pub retry_after: Option<Duration>,
    /// Share (0..=1) of buyers who pay part of the price with points
    /// (earned for them at set-up).
    #[arg(long, default_value_t = 0.1)]
    pub points_share: f64,
    /// Share (0..=1) of buyers who use a coupon (issued to them at set-up).
    #[arg(long, default_value_t = 0.1)]
    pub coupon_share: f64,
    /// How often the sale's stock is read during the run.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub poll_every: Duration,
}

impl Default for SaleArgs {
    fn default() -> Self {
        Self {
            never_pay_share: 0.3,
            payment_ttl: Duration::from_secs(3),
            retries: 3,
            retry_after: None,
            points_share: 0.1,
            coupon_share: 0.1,
            poll_every: Duration::from_millis(50),
        }
    }
}

impl SaleArgs {
    pub fn retry_after(&self) -> Duration {
        self.retry_after.unwrap_or(self.payment_ttl)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, share) in [
            ("--never-pay-share", self.never_pay_share),
            ("--points-share", self.points_share),
            ("--coupon-share", self.coupon_share),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&share),
                "{flag} must be between 0 and 1"
            );
        }
        let ttl = self.payment_ttl;
        anyhow::ensure!(
            ttl.subsec_nanos() == 0 && (1..=86_400).contains(&ttl.as_secs()),
            "--payment-ttl must be whole seconds, 1s to 86400s"
        );
        anyhow::ensure!(
            self.poll_every >= Duration::from_millis(1),
            "--poll-every must be at least 1ms"
        );
        Ok(())
    }
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
        if let Some(Scenario::TimeSale) = self.scenario {
            // One order per attempt; retries are the sale's own.
            self.claims_per_user = 1;
            self.retry_share = 0.0;
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
        if self.scenario == Some(Scenario::TimeSale) {
            self.sale.check()?;
        }
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

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn parse(line: &str) -> LoadtestArgs {
        use clap::Parser;
        let words = ["loadtest", "--target", "http://x", "--admin-email", "a@b.c"]
            .into_iter()
            .chain(["--admin-password", "pw"])
            .chain(line.split_whitespace());
        Cli::parse_from(words).args.resolved()
    }

    #[test]
    fn the_time_sale_has_its_own_defaults_and_flags_given_win() {
        let a = parse("--scenario time-sale");
        assert_eq!(a.sale, SaleArgs::default(), "Default is the command line's");
        assert_eq!((a.users, a.stock, a.limit), (10_000, 100, 1));
        assert_eq!(a.arrival(), Arrival::Spread(Duration::from_secs(1)));
        assert_eq!(a.sale.payment_ttl, Duration::from_secs(3));
        assert_eq!(a.sale.retry_after(), Duration::from_secs(3));
        assert!((a.sale.never_pay_share - 0.3).abs() < f64::EPSILON);
        a.check().unwrap();
        let a =
            parse("--scenario time-sale --users 300 --stock 20 --payment-ttl 1s --arrival burst");
        assert_eq!((a.users, a.stock, a.arrival), (300, 20, ArrivalKind::Burst));
        assert_eq!(a.sale.retry_after(), Duration::from_secs(1));
        let a = parse("--scenario time-sale --payment-ttl 1500ms");
        assert!(a.check().is_err(), "whole seconds only");
        let a = parse("--scenario time-sale --never-pay-share 1.5");
        assert!(a.check().is_err());
        // The drop keeps its defaults.
        let a = parse("");
        assert_eq!((a.users, a.arrival), (1_000, ArrivalKind::Burst));
    }
}
