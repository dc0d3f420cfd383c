//! Rate, errors and duration of every HTTP route (the RED metrics): one
//! count per answer by method, route template and status, and one timing by
//! method and route. The route is the matched path template
//! (`/api/v1/campaigns/{id}/issue`), never the raw path, so the labels stay
//! few whatever clients send; what no route matched is `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let m = &state.metrics;
    m.http_duration
        .with_label_values(&[method.as_str(), &route])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[method.as_str(), &route, res.status().as_str()])
        .inc();
    res
}
