//! Every metric flashcoupon exports, declared in one place with its help text.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::ids::CampaignId;

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Claims answered, by `result` (issued, replayed, sold_out, limit_reached, …).
    pub issue_outcomes: IntCounterVec,
    /// Time from a claim's arrival to its answer.
    pub issue_latency: Histogram,
    /// Coupons written per group-commit transaction.
    pub commit_batch_size: Histogram,
    /// Time to write and commit one group-commit batch.
    pub commit_latency: Histogram,
    stock_remaining: IntGaugeVec,
    /// Scripts and commands sent to Redis by the gate (scale-out).
    pub redis_round_trips: IntCounter,
    /// Campaign gates rebuilt from the record (Redis lost its data, or a new campaign).
    pub gate_rebuilds: IntCounter,
    /// Claims left in flight that the reconciler settled from the record,
    /// by outcome (`committed`, `written_off`, `superseded`).
    pub reconciled: IntCounterVec,
    /// Notification sockets open on this instance.
    pub ws_connections: IntGauge,
    /// Live stock streams (Server-Sent Events) open on this instance, set
    /// from the connection caps' own count at each scrape.
    pub sse_connections: IntGauge,
    /// Events queued to notification sockets.
    pub notifications_pushed: IntCounter,
    /// Sockets closed because their client read too slowly.
    pub ws_cut_off: IntCounter,
    /// Payment events taken in, by `source` (amqp, http) and `result`
    /// (applied, repeat, dead_lettered, retried).
    pub payment_events: IntCounterVec,
    /// Code redemptions answered, by `result` (issued, replayed, not_found,
    /// code_used, rate_limited, and the claim refusals): a rise in not_found
    /// is somebody guessing codes.
    pub code_redemptions: IntCounterVec,
    /// Points ledger entries written, by `kind`.
    pub point_entries: IntCounterVec,
    /// HTTP requests answered, by `method`, `route` (the matched path
    /// template, `unmatched` otherwise) and `status`: rate and errors.
    pub http_requests: IntCounterVec,
    /// Time to answer an HTTP request, by `method` and `route`: duration.
    pub http_duration: HistogramVec,
    /// Codes written by code jobs.
    pub codes_generated: IntCounter,
    /// Password hashes not run: their caller hung up while they queued.
    pub hashes_abandoned: IntCounter,
    /// Messages from `flashcoupon.triggers`, by `result` (applied, repeat,
    /// dead_lettered, retried).
    pub trigger_messages: IntCounterVec,
    /// Trigger events done, by `source` (signup, http, amqp).
    pub trigger_events: IntCounterVec,
    /// What trigger claims answered, by `result` (issued, issued_before,
    /// sold_out, ended, …).
    pub trigger_issues: IntCounterVec,
    /// Outbound events the broker confirmed.
    pub outbox_published: IntCounter,
    /// Messages waiting in a consumed queue and in its dead letters, by
    /// `queue`: the consumers' lag (`broker::consumer` polls it).
    pub queue_messages: IntGaugeVec,
    /// Time from an outbound event's commit to the broker's confirm.
    pub outbox_lag: Histogram,
    /// Outbound events not published yet, and the age of the oldest, read
    /// from the record at each scrape: a relay that cannot publish at all
    /// observes no lag, but its backlog grows.
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_age: prometheus::Gauge,
    /// Embedded mode: the write-ahead log started over by a writer during
    /// a storm (read from the store at each scrape).
    pub sqlite_log_restarts: IntCounter,
    /// Time-sale orders answered, by result.
    pub order_outcomes: IntCounterVec,
    /// Time from an order's arrival to its answer.
    pub order_latency: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let issue_outcomes = IntCounterVec::new(
            Opts::new(
                "flashcoupon_issue_outcomes_total",
                "Claims answered by the issue endpoint, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let issue_latency = Histogram::with_opts(
            HistogramOpts::new(
                "flashcoupon_issue_latency_seconds",
                "Time from a claim's arrival to its answer (including the group commit for issued coupons).",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("valid metric");
        let order_outcomes = IntCounterVec::new(
            Opts::new(
                "flashcoupon_order_outcomes_total",
                "Time-sale orders answered, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let order_latency = Histogram::with_opts(
            HistogramOpts::new(
                "flashcoupon_order_latency_seconds",
                "Time from an order's arrival to its answer (including the group commit for placed orders).",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("valid metric");
        let commit_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "flashcoupon_group_commit_batch_size",
                "Coupons written per group-commit transaction.",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        )
        .expect("valid metric");
        let commit_latency = Histogram::with_opts(
            HistogramOpts::new(
                "flashcoupon_group_commit_seconds",
                "Time to write and durably commit one group-commit batch.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        let stock_remaining = IntGaugeVec::new(
            Opts::new(
                "flashcoupon_campaign_stock_remaining",
                "Coupons of a campaign not yet taken by an issued or in-flight claim.",
            ),
            &["campaign_id"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let redis_round_trips = counter(
            "flashcoupon_gate_redis_round_trips_total",
            "Scripts and commands the gate sent to Redis (scale-out mode).",
        );
        let gate_rebuilds = counter(
            "flashcoupon_gate_rebuilds_total",
            "Campaign gates written from the record: new campaigns, and rebuilds after Redis lost its data.",
        );
        let reconciled = IntCounterVec::new(
            Opts::new(
                "flashcoupon_gate_reconciled_total",
                "Claims left in flight (their instance died or lost Redis) that the reconciler settled from the record, by outcome: committed (the record had it), written_off (it never landed; its unit went back) or superseded (the record holds its seq for another claim; the seq is retired).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        // Exported from the start, so a rule on write-offs reads 0, not nothing.
        for outcome in ["committed", "written_off", "superseded"] {
            reconciled.with_label_values(&[outcome]);
        }
        let ws_connections = IntGauge::new(
            "flashcoupon_ws_connections",
            "Notification WebSockets open on this instance.",
        )
        .expect("valid metric");
        let sse_connections = IntGauge::new(
            "flashcoupon_sse_connections",
            "Live stock streams (Server-Sent Events) open on this instance.",
        )
        .expect("valid metric");
        let notifications_pushed = counter(
            "flashcoupon_notifications_pushed_total",
            "Events queued to notification WebSockets on this instance.",
        );
        let ws_cut_off = counter(
            "flashcoupon_ws_cut_off_total",
            "Notification WebSockets closed because the client read too slowly.",
        );
        let code_redemptions = IntCounterVec::new(
            Opts::new(
                "flashcoupon_code_redemptions_total",
                "Code redemptions answered, by result (not_found and code_used are failed guesses).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let point_entries = IntCounterVec::new(
            Opts::new(
                "flashcoupon_point_entries_total",
                "Points ledger entries written by this instance, by kind.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "flashcoupon_http_requests_total",
                "HTTP requests answered, by method, route template and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "flashcoupon_http_request_duration_seconds",
                "Time to answer an HTTP request (to its headers), by method and route template.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "flashcoupon_build_info",
                "Always 1; the labels say which build this instance runs.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let codes_generated = IntCounter::new(
            "flashcoupon_codes_generated_total",
            "Unique codes written by code jobs.",
        )
        .expect("valid metric");
        let hashes_abandoned = IntCounter::new(
            "flashcoupon_password_hashes_abandoned_total",
            "Password hashes (sign-ins, sign-ups) not run because the client hung up while they queued: a flood of sign-ins that disconnect shows here.",
        )
        .expect("valid metric");
        let trigger_messages = IntCounterVec::new(
            Opts::new(
                "flashcoupon_trigger_messages_total",
                "Messages taken from the trigger events queue, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let trigger_events = IntCounterVec::new(
            Opts::new(
                "flashcoupon_trigger_events_total",
                "Trigger events worked to the end, by source.",
            ),
            &["source"],
        )
        .expect("valid metric");
        let trigger_issues = IntCounterVec::new(
            Opts::new(
                "flashcoupon_trigger_issues_total",
                "Coupons claimed by trigger events, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let payment_events = IntCounterVec::new(
            Opts::new(
                "flashcoupon_payment_events_total",
                "Payment events taken in, by source (amqp, http) and result (applied, repeat, dead_lettered, retried).",
            ),
            &["source", "result"],
        )
        .expect("valid metric");
        let outbox_published = counter(
            "flashcoupon_outbox_published_total",
            "Outbound events published to the broker and confirmed by it.",
        );
        // Read by each instance that consumes the queue, so every instance
        // reports the same broker-wide number: take the max, not the sum.
        let queue_messages = IntGaugeVec::new(
            Opts::new(
                "flashcoupon_broker_queue_messages",
                "Messages ready in a consumed RabbitMQ queue (and its .dead letters), not yet delivered to a consumer; read every 5 s.",
            ),
            &["queue"],
        )
        .expect("valid metric");
        let outbox_backlog = IntGauge::new(
            "flashcoupon_outbox_backlog",
            "Outbound events in the record's outbox not yet confirmed by the broker (all instances' rows; read at each scrape).",
        )
        .expect("valid metric");
        let sqlite_log_restarts = IntCounter::new(
            "flashcoupon_sqlite_log_restarts_total",
            "Embedded mode: times a group-commit batch started the SQLite write-ahead log over because it had grown too long (read at each scrape).",
        )
        .expect("valid metric");
        let outbox_oldest_age = prometheus::Gauge::new(
            "flashcoupon_outbox_oldest_age_seconds",
            "Age of the oldest outbound event not yet confirmed by the broker; 0 when the outbox is empty.",
        )
        .expect("valid metric");
        let outbox_lag = Histogram::with_opts(
            HistogramOpts::new(
                "flashcoupon_outbox_lag_seconds",
                "Time from an outbound event's commit to the broker's confirm of its publication.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
            ]),
        )
        .expect("valid metric");
        for m in [
            Box::new(payment_events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(code_redemptions.clone()),
            Box::new(point_entries.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(build_info),
            Box::new(codes_generated.clone()),
            Box::new(hashes_abandoned.clone()),
            Box::new(trigger_messages.clone()),
            Box::new(trigger_events.clone()),
            Box::new(trigger_issues.clone()),
            Box::new(outbox_published.clone()),
            Box::new(outbox_lag.clone()),
            Box::new(outbox_backlog.clone()),
            Box::new(outbox_oldest_age.clone()),
            Box::new(sqlite_log_restarts.clone()),
            Box::new(queue_messages.clone()),
            Box::new(issue_outcomes.clone()),
            Box::new(issue_latency.clone()),
            Box::new(order_outcomes.clone()),
            Box::new(order_latency.clone()),
            Box::new(commit_batch_size.clone()),
            Box::new(commit_latency.clone()),
            Box::new(stock_remaining.clone()),
            Box::new(redis_round_trips.clone()),
            Box::new(gate_rebuilds.clone()),
            Box::new(reconciled.clone()),
            Box::new(ws_connections.clone()),
            Box::new(sse_connections.clone()),
            Box::new(notifications_pushed.clone()),
            Box::new(ws_cut_off.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Self {
            registry,
            issue_outcomes,
            issue_latency,
            commit_batch_size,
            commit_latency,
            stock_remaining,
            redis_round_trips,
            gate_rebuilds,
            reconciled,
            ws_connections,
            sse_connections,
            notifications_pushed,
            ws_cut_off,
            payment_events,
            code_redemptions,
            point_entries,
            http_requests,
            http_duration,
            codes_generated,
            hashes_abandoned,
            trigger_messages,
            trigger_events,
            trigger_issues,
            outbox_published,
            outbox_lag,
            outbox_backlog,
            outbox_oldest_age,
            sqlite_log_restarts,
            queue_messages,
            order_outcomes,
            order_latency,
        }
    }

    /// The Prometheus text exposition, with the given stock per campaign
    /// (read off the gate by the caller just now).
    pub fn render(&self, stock: &[(CampaignId, u32)]) -> String {
        self.stock_remaining.reset();
        for (id, remaining) in stock {
            self.stock_remaining
                .with_label_values(&[&id.to_string()])
                .set(*remaining as i64);
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
