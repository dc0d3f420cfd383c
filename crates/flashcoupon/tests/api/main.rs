//! The API contract (../shared/API.md) end to end: every test starts a real
//! server on port 0 over storage of its own with `spawn_app()` — SQLite, or
//! PostgreSQL and Redis with FLASHCOUPON_TEST_MODE=scale-out — plus the
//! scale-out failure tests in `scaleout`.

// Tests fail loudly on anything unexpected.
#![allow(clippy::unwrap_used)]

mod accounts;
mod bad_input;
mod broker;
mod campaigns;
mod codes;
mod concurrency;
mod console;
mod crash;
mod document;
mod helpers;
mod issuing;
mod loadtest;
mod notifications;
mod operations;
mod payments;
mod points;
mod record;
mod request_ids;
mod reservations;
mod sale_checkout;
mod sales;
mod scaleout;
mod service_keys;
mod spending;
mod summaries;
mod triggers;
mod wallet;
