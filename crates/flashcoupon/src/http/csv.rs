//! CSV downloads (the winners, a campaign's codes): a header, then pages of
//! lines read from the record one at a time, so a million rows never sit in
//! memory; and the quoting a field of free text needs.

use std::future::Future;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Answer `filename` as a streamed CSV: `head`, then the lines of
/// `page(cursor)` for each cursor the previous page handed on (`None`: it
/// was the last). The first page is read before answering, so a record that
/// cannot be read is a clear error, not a 200 cut short; a later page that
/// fails cuts the transfer (the client sees it broken, not a short file
/// that looks whole).
pub(super) async fn streamed<K, F, Fut>(
    filename: String,
    head: &str,
    first: K,
    page: F,
) -> Result<Response, ApiError>
where
    K: Send + 'static,
    F: Fn(K) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(String, Option<K>), ApiError>> + Send,
{
    let (lines, after) = page(first).await?;
    let start = format!("{head}\n{lines}");
    let rest = futures_util::stream::try_unfold(after, move |after| {
        let page = page.clone();
        async move {
            match after {
                None => Ok::<_, ApiError>(None),
                Some(after) => Ok(Some(page(after).await?)),
            }
        }
    });
    let body =
        futures_util::StreamExt::chain(futures_util::stream::once(async move { Ok(start) }), rest);
    let body = futures_util::TryStreamExt::map_err(body, move |e: ApiError| {
        tracing::warn!(error = %e, "CSV download cut short");
        std::io::Error::other(e.to_string())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// RFC 4180 quoting, and a leading `'` on text a spreadsheet would run as a
/// formula (order ids are free text).
pub(crate) fn field(raw: &str) -> String {
    let guarded = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("-1,2"), "\"'-1,2\"");
    }
}
