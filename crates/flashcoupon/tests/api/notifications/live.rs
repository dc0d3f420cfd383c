//! The live channel over SSE.

use super::*;

#[tokio::test]
async fn the_live_channel_streams_coalesced_stock_until_sold_out() {
    let mut app = spawn_app().await;
    let c = app.create_campaign(json!({"total_quantity": 200})).await;
    let id = c["id"].as_str().unwrap();
    let users = app.bulk_users("live", 200).await;
    let r = app.get(&format!("/api/v1/campaigns/{id}/live"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = Sse::new(r);
    let mut snapshots: Vec<Value> = Vec::new();
    let mut claims = None;
    loop {
        let (event, snapshot) = stream.next().await;
        assert_eq!(event, "stock", "{snapshot}");
        snapshots.push(snapshot);
        if snapshots.len() == 1 && claims.is_none() {
            assert_eq!(snapshots[0]["remaining_quantity"], 200);
            assert_eq!(snapshots[0]["status"], "open");
            // Now 200 claims, as fast as they go.
            let client = app.client.clone();
            let base = app.base.clone();
            let id = id.to_owned();
            let tokens: Vec<String> = users.iter().map(|u| u.1.clone()).collect();
            claims = Some(tokio::spawn(async move {
                let all = tokens.into_iter().map(|t| {
                    let client = client.clone();
                    let url = format!("{base}/api/v1/campaigns/{id}/issue");
                    async move {
                        client
                            .post(url)
                            .bearer_auth(t)
                            .send()
                            .await
                            .unwrap()
                            .status()
                    }
                });
                futures::future::join_all(all).await
            }));
        }
        // In scale-out mode the gate can say sold out while the last claims
        // are still being committed (`issued_count` counts durable coupons),
        // so the stream is read on until it shows the final state.
        if snapshots
            .last()
            .is_some_and(|s| s["status"] == "sold_out" && s["issued_count"] == 200)
        {
            break;
        }
    }
    let statuses = claims.unwrap().await.unwrap();
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED));
    let last = snapshots.last().unwrap();
    assert_eq!(
        (
            last["remaining_quantity"].as_u64(),
            last["issued_count"].as_u64()
        ),
        (Some(0), Some(200))
    );
    // Coalesced: far fewer snapshots than claims, remaining never going up.
    assert!(
        snapshots.len() < 100,
        "{} snapshots for 200 claims",
        snapshots.len()
    );
    let remaining: Vec<u64> = snapshots
        .iter()
        .map(|s| s["remaining_quantity"].as_u64().unwrap())
        .collect();
    assert!(remaining.windows(2).all(|w| w[0] >= w[1]), "{remaining:?}");
    let issued: Vec<u64> = snapshots
        .iter()
        .map(|s| s["issued_count"].as_u64().unwrap())
        .collect();
    assert!(issued.windows(2).all(|w| w[0] <= w[1]), "{issued:?}");

    assert_error(
        app.get(
            &format!("/api/v1/campaigns/{}/live", uuid::Uuid::now_v7()),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // An open live stream does not hold up a graceful shutdown: it ends.
    app.stop().await;
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.response.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream ends at shutdown");
    assert!(end.is_ok(), "{end:?}");
}
