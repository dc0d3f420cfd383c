//! `flashcoupon loadtest`: reproduce a drop (or, with `--scenario
//! time-sale`, a time sale: [`time_sale`]) against running servers (one URL
//! or several), then verify every promise from the outside and report.
//!
//! 1. set-up through the API: an admin log-in, shoppers from the bulk
//!    endpoint, a campaign opening a few seconds ahead;
//! 2. the storm, open loop: every claim is sent at its planned instant and
//!    its latency counts from that instant, so queueing is not hidden;
//! 3. verification: every user's wallet is read back and checked against
//!    what the client saw ([`verify`]);
//! 4. the report: JSON and a self-contained HTML page ([`report`], on the
//!    page and charts every scenario shares: [`page`], [`svg`], [`stats`]).
//!
//! Talking to the servers (log-in, shoppers, open-loop sends, reading back)
//! is shared too: [`client`].

mod args;
pub mod client;
mod page;
mod plan;
mod report;
mod run;
mod stats;
mod svg;
pub mod time_sale;
mod verify;

pub use args::{ArrivalKind, LoadtestArgs, SaleArgs, Scenario};
pub use plan::{Arrival, Plan, PlannedClaim};
pub use report::Report;
pub use stats::{Criterion, Percentiles};
pub use time_sale::SaleReport;
pub use verify::{Evidence, Held, Observed, Violation, verify};

/// The report of whichever scenario ran.
#[derive(Debug)]
pub enum Finished {
    Drop(Box<Report>),
    TimeSale(Box<SaleReport>),
}

impl Finished {
    /// The text printed at the end of a run.
    pub fn summary(&self) -> String {
        match self {
            Finished::Drop(r) => r.summary(),
            Finished::TimeSale(r) => r.summary(),
        }
    }

    /// Every broken promise, described.
    pub fn violations(&self) -> &[String] {
        match self {
            Finished::Drop(r) => &r.violations,
            Finished::TimeSale(r) => &r.violations,
        }
    }
}

/// Run the loadtest the arguments describe and return its report (written
/// to `--out` if given).
pub async fn run(args: LoadtestArgs) -> anyhow::Result<Finished> {
    let args = args.resolved();
    args.check()?;
    Ok(match args.scenario {
        Some(Scenario::TimeSale) => Finished::TimeSale(Box::new(time_sale::run(args).await?)),
        _ => Finished::Drop(Box::new(run::run(args).await?)),
    })
}
