//! The API contract (../shared/API.md) end to end: every test starts a real
//! server on port 0 over its own SQLite data dir with `spawn_app()`.

// Tests fail loudly on anything unexpected.
#![allow(clippy::unwrap_used)]

mod accounts;
mod bad_input;
mod campaigns;
mod concurrency;
mod crash;
mod helpers;
mod issuing;
mod loadtest;
mod operations;
mod record;
mod spending;
mod wallet;
