//! flashcoupon: a first-come-first-served coupon platform.
//!
//! A guided tour, in the order a claim travels:

/// `Application::build`: wires everything from `Settings`; `main` and the tests start here.
pub mod app;
/// Token and password handling, and the `AuthUser` / `AdminUser` extractors.
pub mod auth;
/// Campaigns cached per instance (their immutable terms), read by claims.
pub mod catalog;
/// The hot path: gate decision, then group commit, then the answer.
pub mod claim;
/// Per-campaign claim outcomes per second and latency, for the admin dashboard.
pub mod claim_stats;
/// System time plus a test-only offset.
pub mod clock;
/// Pure types and rules: campaigns, coupons, discounts, accounts.
pub mod domain;
/// Live events, in process and (scale-out) across instances over Redis pub/sub.
pub mod events;
/// The admission gate: in memory (embedded) or a Redis Lua script (scale-out).
pub mod gate;
/// Batches admitted claims into one durable transaction each.
pub mod group_commit;
/// Routes, extractors, errors, views, OpenAPI.
pub mod http;
/// `flashcoupon loadtest`: replay a drop, verify every promise, report.
pub mod loadtest;
/// Every Prometheus metric, with help text.
pub mod metrics;
/// What users and shops are told: sockets, live channels, inbox, scheduler, webhooks.
pub mod notify;
/// Flags and `FLASHCOUPON_*` variables.
pub mod settings;
/// What handlers share.
pub mod state;
/// The record: SQLite (embedded) or PostgreSQL (scale-out), one trait.
pub mod store;
/// Logging set-up.
pub mod telemetry;
