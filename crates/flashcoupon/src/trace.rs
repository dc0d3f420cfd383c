//! Following one request past its answer: the id and W3C trace of the
//! request that caused a change ride with what the change produces — its
//! events, its outbox rows (published with the headers `x-request-id` and
//! `traceparent`) and its webhook deliveries (sent with the same headers) —
//! so one claim can be followed across instances and into a shop's systems.
//!
//! The HTTP layer (`http::request_id`) sets it for the request's task; work
//! a request moves to another task takes it along with [`carry`]; the
//! broker's consumer sets it from a message's own headers. Work nobody
//! asked for (an expiry, a reminder) has none.

use std::future::Future;
use std::sync::Arc;

/// The request a change came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The request's id (the client's `X-Request-Id`, or one we made).
    pub request_id: String,
    /// The W3C `traceparent` of the request's hop (the one its answer
    /// carries): the parent of whatever the change causes downstream.
    pub traceparent: String,
}

tokio::task_local! {
    static CURRENT: Option<Arc<Trace>>;
}

/// The trace of the request this task is serving, if any.
pub fn current() -> Option<Arc<Trace>> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Run `work` as part of `trace`.
pub fn scope<F: Future>(trace: Option<Arc<Trace>>, work: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(trace, work)
}

/// Run the synchronous `work` as part of `trace`.
pub fn sync_scope<R>(trace: Option<Arc<Trace>>, work: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(trace, work)
}

/// Run `work` as part of this task's trace: for work spawned on another
/// task, which would otherwise lose it.
pub fn carry<F: Future>(work: F) -> impl Future<Output = F::Output> {
    scope(current(), work)
}

impl Trace {
    /// A trace read back from the record, if its values are still sane
    /// (they become headers: a bad one would fail every send).
    pub fn stored(request_id: String, traceparent: String) -> Option<Self> {
        (sane_id(&request_id) && parse_traceparent(&traceparent).is_some()).then_some(Self {
            request_id,
            traceparent,
        })
    }

    /// The trace of a message with these (optional) header values: a sane
    /// request id and a valid `traceparent` are kept, anything else dropped
    /// (it would end up in our logs and in headers we send).
    pub fn from_headers(request_id: Option<&str>, traceparent: Option<&str>) -> Option<Self> {
        let request_id = request_id.filter(|id| sane_id(id));
        let parent = traceparent.and_then(parse_traceparent);
        if request_id.is_none() && parent.is_none() {
            return None;
        }
        // As over HTTP: no trace, a new one; no id, the trace names it.
        let (trace, flags) = parent.map_or_else(
            || (random_hex(16), "00".to_owned()),
            |(t, f)| (t.to_owned(), f.to_owned()),
        );
        Some(Self {
            request_id: request_id.map_or_else(|| trace.clone(), str::to_owned),
            traceparent: hop(&trace, &flags),
        })
    }
}

/// The `traceparent` of a new hop (span) of trace `trace`.
pub fn hop(trace: &str, flags: &str) -> String {
    format!("00-{trace}-{}-{flags}", random_hex(8))
}

/// `bytes` random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The longest request id taken as it is.
const MAX_ID: usize = 128;

/// A request id worth repeating in logs and headers: 1 to 128 of
/// `A-Z a-z 0-9 . _ : -` (anything else could forge log fields or headers).
pub fn sane_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The trace id and flags of a valid version-00 `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`, lower case, ids not all zeros).
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    traceparent_parts(value).map(|(trace, _, flags)| (trace, flags))
}

/// The trace id, parent span id and flags of a valid `traceparent` (see
/// [`parse_traceparent`]).
pub fn traceparent_parts(value: &str) -> Option<(&str, &str, &str)> {
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
    valid.then_some((trace, parent, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[tokio::test]
    async fn a_trace_is_current_in_its_scope_and_carried_to_a_spawned_task() {
        assert_eq!(current(), None);
        let t = Arc::new(Trace {
            request_id: "r-1".into(),
            traceparent: PARENT.into(),
        });
        let seen = scope(Some(t.clone()), async {
            let here = current();
            let there = tokio::spawn(carry(async { current() })).await.unwrap();
            let lost = tokio::spawn(async { current() }).await.unwrap();
            (here, there, lost)
        })
        .await;
        assert_eq!(seen, (Some(t.clone()), Some(t), None));
        assert_eq!(current(), None);
    }

    #[test]
    fn message_headers_make_a_trace_only_of_sane_values() {
        assert_eq!(Trace::from_headers(None, None), None);
        assert_eq!(Trace::from_headers(Some("bad id"), Some("garbage")), None);
        let t = Trace::from_headers(Some("pay-9"), Some(PARENT)).unwrap();
        assert_eq!(t.request_id, "pay-9");
        let (trace, flags) = parse_traceparent(&t.traceparent).unwrap();
        assert_eq!((trace, flags), ("4bf92f3577b34da6a3ce929d0e0e4736", "01"));
        assert_ne!(t.traceparent, PARENT, "a hop of our own");
        let t = Trace::from_headers(None, Some(PARENT)).unwrap();
        assert_eq!(t.request_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let t = Trace::from_headers(Some("pay-9"), Some("00-zz")).unwrap();
        assert_eq!(t.request_id, "pay-9");
        let (trace, _) = parse_traceparent(&t.traceparent).expect("a fresh trace");
        assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
