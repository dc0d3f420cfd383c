//! Statistics for the admin (API.md "Statistics"): claim answers counted
//! cluster-wide ([`tally`]), and summaries read from the record through a
//! short-lived cache ([`recent`]) so a dashboard refreshing during a drop
//! costs the record one read per campaign per second, not one per request.

pub mod recent;
pub mod tally;
