//! flashcoupon: a first-come-first-served coupon platform.
//!
//! A guided tour, in the order a claim travels:

/// `Application::build`: wires everything from `Settings`; `main` and the tests start here.
pub mod app;
/// Token and password handling, and the `AuthUser` / `AdminUser` extractors.
pub mod auth;
/// The hot path: gate decision, then group commit, then the answer.
pub mod claim;
/// System time plus a test-only offset.
pub mod clock;
/// Pure types and rules: campaigns, coupons, discounts, accounts.
pub mod domain;
/// The in-memory admission gate: O(1) decisions, rebuilt from the record.
pub mod gate;
/// Batches admitted claims into one durable transaction each.
pub mod group_commit;
/// Routes, extractors, errors, views, OpenAPI.
pub mod http;
/// `flashcoupon loadtest`: replay a drop, verify every promise, report.
pub mod loadtest;
/// Every Prometheus metric, with help text.
pub mod metrics;
/// Flags and `FLASHCOUPON_*` variables.
pub mod settings;
/// What handlers share.
pub mod state;
/// SQLite: schema, queries, the group-commit insert.
pub mod store;
/// Logging set-up.
pub mod telemetry;
