//! Entry points for the fuzz targets in `fuzz/` to what is private to the
//! HTTP layer; compiled only by `cargo fuzz` (which sets `cfg(fuzzing)`).

/// A winners-CSV field, as the export writes it.
pub fn csv_field(raw: &str) -> String {
    crate::http::csv::field(raw)
}

/// An `Idempotency-Key` header's bytes, if the server accepts them.
pub fn idempotency_key(raw: &[u8]) -> Option<&str> {
    crate::http::extract::idempotency_key(raw)
}

/// A notification socket's client message: `Some(token)` for an auth
/// message, `None` for a ping or anything refused.
pub fn client_auth_token(text: &str) -> Option<String> {
    match serde_json::from_str(text) {
        Ok(crate::http::socket::ClientMessage::Auth { token }) => Some(token),
        _ => None,
    }
}
