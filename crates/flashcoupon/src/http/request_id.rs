//! Following one request: every request gets an id — the client's
//! `X-Request-Id` if it is sane, else the trace id of a valid W3C
//! `traceparent`, else a fresh one — and a trace id (the `traceparent`'s,
//! so a shop's trace goes on through us, else the request id). Both are
//! fields of the request's log span (so of every line it logs), and the
//! answer carries `X-Request-Id` and a `traceparent` naming this hop. With
//! `--otlp-endpoint` the span is exported (`crate::telemetry`), and this
//! hop is its span id.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::trace::{self, Trace, random_hex, sane_id, traceparent_parts};

/// A request's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    /// As the client sent it, or derived (see the module).
    pub id: String,
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// The `traceparent` naming this hop: the same trace, a span of our
    /// own, the caller's flags (`01`: sampled). The answer carries it, and
    /// so does whatever the request produces (see `crate::trace`).
    traceparent: String,
}

impl RequestId {
    /// The ids of a request with these headers (no span exported).
    #[cfg(test)]
    fn of(headers: &HeaderMap) -> Self {
        Self::named(headers, &tracing::Span::none())
    }

    /// The ids of a request with these headers whose span is `span`: when
    /// spans are exported, the trace and hop are the exported span's (the
    /// caller's trace, else one the exporter began).
    fn named(headers: &HeaderMap, span: &tracing::Span) -> Self {
        let parent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(traceparent_parts);
        let client = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| sane_id(id));
        let (trace_id, traceparent) = match crate::telemetry::link(span, parent) {
            Some((trace, span_id, flags)) => {
                let hop = format!("00-{trace}-{span_id}-{flags}");
                (trace, hop)
            }
            None => {
                let (trace, flags) = match parent {
                    Some((trace, _, flags)) => (trace.to_owned(), flags.to_owned()),
                    None => (random_hex(16), "00".to_owned()),
                };
                let hop = trace::hop(&trace, &flags);
                (trace, hop)
            }
        };
        Self {
            id: client.map_or_else(|| trace_id.clone(), str::to_owned),
            trace_id,
            traceparent,
        }
    }

    /// What the request's changes carry.
    fn trace(&self) -> Trace {
        Trace {
            request_id: self.id.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}

/// The middleware: open the request's span (its ids are fields of it, so
/// of every line logged inside), make its trace that of everything it does,
/// answer with its ids. The span is at the error level so that no filter
/// drops it: a span is context, not a line, and a filter below its level
/// would strip the ids from the warnings and errors logged inside it, the
/// very lines one follows a request for.
pub async fn layer(req: Request, next: Next) -> Response {
    let span = tracing::error_span!(
        "request",
        method = %req.method(),
        uri = %req.uri().path(),
        request_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let ids = RequestId::named(req.headers(), &span);
    span.record("request_id", ids.id.as_str());
    span.record("trace_id", ids.trace_id.as_str());
    let current = Arc::new(ids.trace());
    let mut res = trace::scope(Some(current), next.run(req))
        .instrument(span)
        .await;
    let headers = res.headers_mut();
    // Both are made of sane characters only: they always make a header.
    if let Ok(v) = HeaderValue::from_str(&ids.id) {
        headers.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.traceparent) {
        headers.insert("traceparent", v);
    }
    res
}

/// The `TraceLayer`'s span: the one [`layer`] opened (its start and end
/// lines, at debug, then carry the ids).
pub fn span(_: &Request) -> tracing::Span {
    tracing::Span::current()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_sane_client_id_is_kept_and_a_traceparent_continues_its_trace() {
        let ids = RequestId::of(&headers(&[
            ("x-request-id", "shop-77.a:1"),
            ("traceparent", PARENT),
        ]));
        assert_eq!(ids.id, "shop-77.a:1");
        assert_eq!(ids.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let next = ids.traceparent.clone();
        assert!(
            next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{next}"
        );
        assert!(
            next.ends_with("-01") && !next.contains("00f067aa0ba902b7"),
            "{next}"
        );
        // No client id: the trace id names the request.
        let ids = RequestId::of(&headers(&[("traceparent", PARENT)]));
        assert_eq!(ids.id, ids.trace_id);
    }

    #[test]
    fn insane_ids_and_malformed_traceparents_are_replaced() {
        for bad in [
            "",
            "has space",
            "new\tline",
            &"x".repeat(129),
            "quote\"d",
            "ünï",
        ] {
            let Ok(v) = HeaderValue::from_str(bad) else {
                continue;
            };
            let mut h = HeaderMap::new();
            h.insert("x-request-id", v);
            let ids = RequestId::of(&h);
            assert_ne!(ids.id, bad);
            assert_eq!(ids.id.len(), 32, "a fresh one: {}", ids.id);
        }
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let ids = RequestId::of(&headers(&[("traceparent", bad)]));
            assert_ne!(ids.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert_eq!(ids.trace_id.len(), 32);
        }
    }
}
