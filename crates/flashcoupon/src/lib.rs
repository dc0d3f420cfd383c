//! flashcoupon: a first-come-first-served coupon platform.
//!
//! A guided tour, in the order a claim travels:

/// The admission core: gate (memory or Redis) and group commit, for any kind of stock.
pub mod admission;
/// `Application::build`: wires everything from `Settings`; `main` and the tests start here.
pub mod app;
/// Token and password handling, and the `AuthUser` / `AdminUser` extractors.
pub mod auth;
/// RabbitMQ: the payment- and trigger-event consumers and the outbox relay (with `--amqp-url`).
pub mod broker;
/// Campaigns cached per instance (their immutable terms), read by claims.
pub mod catalog;
/// Per-campaign claim outcomes per second and latency, for the admin dashboard.
pub mod claim_stats;
/// System time plus a test-only offset.
pub mod clock;
/// Caps on long-lived connections: in all, per address, per user, waiting to sign in.
pub mod connections;
/// The data dir: created private (0700), its files 0600.
pub mod data_dir;
/// Pure types and rules: campaigns, coupons, discounts, accounts.
pub mod domain;
/// Live events, in process and (scale-out) across instances over Redis pub/sub.
pub mod events;
#[cfg(fuzzing)]
pub mod fuzzing;
/// Failed code redemptions per user and per address, reserved before each lookup.
pub mod guess_budget;
/// Routes, extractors, errors, views, OpenAPI.
pub mod http;
/// Issuing coupons: the claim (gate, then group commit, then the answer) and its doors (button, codes, triggers), campaigns as stock.
pub mod issuing;
/// `flashcoupon loadtest`: replay a drop, verify every promise, report.
pub mod loadtest;
/// Every Prometheus metric, with help text.
pub mod metrics;
/// What users and shops are told: sockets, live channels, inbox, scheduler, webhooks.
pub mod notify;
/// Payment events (from the broker or HTTP): an order's holds confirmed or released, its spends refunded, once per event id.
pub mod payments;
/// Points (적립금): earn, spend, adjust, refund, holds for orders, expiry; the ledger is `store::points`.
pub mod points;
/// Per-user claim and write limits, per-address sign-in limits (GCRA), and failed code redemptions.
pub mod rate_limit;
/// One Redis connection type (a server or a cluster), reconnecting by itself.
pub mod redis_conn;
/// Time sales (타임세일): limited product stock sold first come first served, and its orders.
pub mod selling;
/// Flags and `FLASHCOUPON_*` variables.
pub mod settings;
/// Spending coupons: use on an order, preview, cancel a use.
pub mod spending;
/// What handlers share.
pub mod state;
/// Statistics for the admin: cluster-wide claim counts and cached summaries.
pub mod stats;
/// The record: SQLite (embedded) or PostgreSQL (scale-out), one trait.
pub mod store;
/// Background tasks: one shutdown signal, awaited at exit.
pub mod tasks;
/// Logging set-up.
pub mod telemetry;

/// The request a change came from, carried into what it produces.
pub mod trace;
