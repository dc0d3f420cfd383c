//! Structured logs with `tracing`, to stderr (stdout carries only the
//! "listening on" line that scripts read); and, with `--otlp-endpoint`, each
//! request's span exported to an OpenTelemetry collector over OTLP/HTTP, in
//! the caller's W3C trace (see `http::request_id`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::LogFormat;

/// Are spans exported (an OTLP endpoint is set)?
static EXPORTING: AtomicBool = AtomicBool::new(false);
/// One export to the collector gives up after this...
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);
/// ...and a stop waits at most this for the last spans.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(3);

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans still
/// queued before the process exits.
#[must_use = "shut it down at exit, or the last spans are lost"]
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(FLUSH_AT_EXIT)
        {
            eprintln!("flashcoupon: could not send the last spans to the OTLP endpoint: {e}");
        }
    }
}

/// Logs in `format`; spans to `otlp` (a collector's base URL, e.g.
/// `http://127.0.0.1:4318`: they go to its `/v1/traces`) if given. The
/// sampler is the SDK's (`OTEL_TRACES_SAMPLER`; by default a caller's
/// sampled flag decides, and a request with no trace is sampled). A full
/// queue (a collector down for long) drops spans, never a request.
pub fn init(format: LogFormat, otlp: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    let provider = otlp.map(exporter).transpose()?;
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("flashcoupon"))
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init();
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

/// A tracer provider batching spans to the collector at `base` (on a
/// thread of its own: a slow collector never holds up a request).
fn exporter(base: &str) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("--otlp-endpoint")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("flashcoupon")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// When spans are exported: make `span` (a request's) a child of the
/// caller's span (`parent`: trace id, span id, flags, as its `traceparent`
/// named them), and return the trace id and span id it was given, so that
/// the ids the request hands on name the exported span. `None` when
/// nothing is exported.
pub fn link(
    span: &tracing::Span,
    parent: Option<(&str, &str, &str)>,
) -> Option<(String, String, String)> {
    if !EXPORTING.load(Ordering::Relaxed) {
        return None;
    }
    if let Some((trace, parent_span, flags)) = parent {
        let remote = SpanContext::new(
            TraceId::from_hex(trace).ok()?,
            SpanId::from_hex(parent_span).ok()?,
            TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let context = span.context();
    let ours = context.span().span_context().clone();
    ours.is_valid().then(|| {
        (
            ours.trace_id().to_string(),
            ours.span_id().to_string(),
            format!("{:02x}", ours.trace_flags().to_u8()),
        )
    })
}
