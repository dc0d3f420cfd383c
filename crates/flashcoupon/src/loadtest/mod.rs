//! `flashcoupon loadtest`: reproduce a drop against running servers (one URL
//! or several), then verify every promise from the outside and report.
//!
//! 1. set-up through the API: an admin log-in, shoppers from the bulk
//!    endpoint, a campaign opening a few seconds ahead;
//! 2. the storm, open loop: every claim is sent at its planned instant and
//!    its latency counts from that instant, so queueing is not hidden;
//! 3. verification: every user's wallet is read back and checked against
//!    what the client saw ([`verify`]);
//! 4. the report: JSON and a self-contained HTML page ([`report`]).

mod args;
mod plan;
mod report;
mod run;
mod svg;
mod verify;

pub use args::{ArrivalKind, LoadtestArgs, Scenario};
pub use plan::{Arrival, Plan, PlannedClaim};
pub use report::{Percentiles, Report};
pub use run::run;
pub use verify::{Evidence, Held, Observed, Violation, verify};
