//! Bare axum baseline for `bench/issue-throughput.sh`: the same axum/tokio stack as
//! the server answering `POST /issue` with a coupon-shaped 201 and doing nothing
//! else, so the issue endpoint's throughput can be read as a ratio against it.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

#[derive(Serialize)]
struct Discount {
    r#type: &'static str,
    amount: i64,
}

/// The shape of the server's `CouponView`.
#[derive(Serialize)]
struct Coupon {
    id: Uuid,
    campaign_id: Uuid,
    user_id: Uuid,
    seq: u32,
    status: &'static str,
    issued_at: String,
    valid_from: String,
    valid_until: String,
    discount: Discount,
    min_order_amount: i64,
    used_at: Option<String>,
    order_id: Option<String>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

async fn issue(_body: Option<Json<Value>>) -> (StatusCode, Json<Coupon>) {
    let now = OffsetDateTime::now_utc();
    let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let coupon = Coupon {
        id: Uuid::now_v7(),
        campaign_id: Uuid::nil(),
        user_id: Uuid::now_v7(),
        seq: SEQ.fetch_add(1, Ordering::Relaxed) + 1,
        status: "available",
        issued_at: fmt(now),
        valid_from: fmt(now),
        valid_until: fmt(now + time::Duration::days(30)),
        discount: Discount {
            r#type: "fixed",
            amount: 1000,
        },
        min_order_amount: 0,
        used_at: None,
        order_id: None,
    };
    (StatusCode::CREATED, Json(coupon))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "bare baseline listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, Router::new().route("/issue", post(issue))).await
}
