//! Following one request: every request gets an id — the client's
//! `X-Request-Id` if it is sane, else the trace id of a valid W3C
//! `traceparent`, else a fresh one — and a trace id (the `traceparent`'s,
//! so a shop's trace goes on through us, else the request id). Both are
//! fields of the request's log span (so of every line it logs), and the
//! answer carries `X-Request-Id` and a `traceparent` naming this hop.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;

/// The longest client request id taken as it is.
const MAX_LEN: usize = 128;

/// A request's ids, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    /// As the client sent it, or derived (see the module).
    pub id: String,
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// The W3C trace flags (`01`: sampled), as the caller sent them.
    flags: String,
}

impl RequestId {
    /// The ids of a request with these headers.
    pub fn of(headers: &HeaderMap) -> Self {
        let parent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(traceparent);
        let client = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| sane(id));
        let (trace_id, flags) = match parent {
            Some((trace, flags)) => (trace.to_owned(), flags.to_owned()),
            None => (hex(16), "00".to_owned()),
        };
        Self {
            id: client.map_or_else(|| trace_id.clone(), str::to_owned),
            trace_id,
            flags,
        }
    }

    /// The `traceparent` of this hop: the same trace, a span of our own.
    fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, hex(8), self.flags)
    }
}

/// A request id worth repeating in logs and headers: 1 to 128 of
/// `A-Z a-z 0-9 . _ : -` (anything else could forge log fields or headers).
fn sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The trace id and flags of a valid version-00 `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`, lower case, ids not all zeros).
fn traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex_of = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = parts.next().is_none()
        && version == "00"
        && hex_of(trace, 32)
        && hex_of(parent, 16)
        && hex_of(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then_some((trace, flags))
}

/// `bytes` random bytes as lower-case hex.
fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The middleware: name the request before anything logs, answer with its
/// ids.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let ids = RequestId::of(req.headers());
    req.extensions_mut().insert(ids.clone());
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    // Both are made of sane characters only: they always make a header.
    if let Ok(v) = HeaderValue::from_str(&ids.id) {
        headers.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.traceparent()) {
        headers.insert("traceparent", v);
    }
    res
}

/// The request's log span: method, path, and its ids. At the error level
/// so that no filter drops it: a span is context, not a line, and a filter
/// below its level would strip the ids from the warnings and errors logged
/// inside it, the very lines one follows a request for.
pub fn span(req: &Request) -> tracing::Span {
    let ids = req.extensions().get::<RequestId>();
    tracing::error_span!(
        "request",
        method = %req.method(),
        uri = %req.uri().path(),
        request_id = ids.map_or("", |i| i.id.as_str()),
        trace_id = ids.map_or("", |i| i.trace_id.as_str()),
    )
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
        let next = ids.traceparent();
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
