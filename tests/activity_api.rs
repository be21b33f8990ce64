//! End to end through the real binary: the activity log (`activity.*`).

mod common;

use std::time::{Duration, Instant};

use common::{admin_create_user, login, Server};
use reqwest::{Client, StatusCode};
use serde_json::Value;

const PASSWORD: &str = "Correct-Horse-9-battery";

async fn get(client: &Client, server: &Server, path: &str, auth: &str) -> (StatusCode, Value) {
    let resp = client
        .get(server.url(path))
        .header("authorization", auth)
        .header("user-agent", "activity-test/1")
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls the list until `want` records are there: records are written off
/// the request path, a moment after the response.
async fn wait_for(client: &Client, server: &Server, path: &str, auth: &str, want: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(client, server, path, auth).await;
        assert_eq!(status, 200, "{body}");
        if body["metadata"]["total"].as_u64().unwrap_or(0) >= want || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn lists_the_callers_requests_with_metadata_and_filters() {
    let mut server = Server::start();
    server.stop();
    admin_create_user(&server.data_dir, "alice@example.com", PASSWORD, false);
    admin_create_user(&server.data_dir, "bob@example.com", PASSWORD, false);
    server.spawn();
    let client = Client::new();
    let alice = format!(
        "Bearer {}",
        login(&client, &server, "alice@example.com", PASSWORD).await
    );
    let bob = format!(
        "Bearer {}",
        login(&client, &server, "bob@example.com", PASSWORD).await
    );

    let (status, _) = get(
        &client,
        &server,
        "/api/v1/events/ffffffffffffffffffffffff",
        &alice,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&client, &server, "/api/v1/auth/tokens", &alice).await;
    assert_eq!(status, 200);

    let body = wait_for(
        &client,
        &server,
        "/api/v1/users/auth/activity?limit=1",
        &alice,
        2,
    )
    .await;
    let meta = &body["metadata"];
    assert!(meta["total"].as_u64().unwrap() >= 2, "{body}");
    assert_eq!(meta["page"], 1);
    assert_eq!(meta["limit"], 1);
    assert_eq!(meta["pages"], meta["total"]);
    let record = &body["data"][0];
    for field in [
        "id",
        "user_id",
        "method",
        "path",
        "status_code",
        "ip_address",
        "user_agent",
        "created_at",
    ] {
        assert!(!record[field].is_null(), "{field} missing in {record}");
    }

    let (_, errors) = get(
        &client,
        &server,
        "/api/v1/users/auth/activity?errors_only=true",
        &alice,
    )
    .await;
    let errors = errors["data"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(errors
        .iter()
        .all(|r| r["status_code"].as_u64().unwrap() >= 400));
    assert!(errors
        .iter()
        .any(|r| r["path"] == "/api/v1/events/ffffffffffffffffffffffff"));

    let (_, bobs) = get(&client, &server, "/api/v1/users/auth/activity", &bob).await;
    assert!(
        bobs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["path"] != "/api/v1/events/ffffffffffffffffffffffff"),
        "{bobs}"
    );

    let (status, stats) = get(
        &client,
        &server,
        "/api/v1/users/auth/activity/stats",
        &alice,
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert!(stats["data"]["total_records"].as_u64().unwrap() >= 2);
    assert!(stats["data"]["total_size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["data"]["retention_days"], 90);

    let (status, bad) = get(
        &client,
        &server,
        "/api/v1/users/auth/activity?method=TRACE",
        &alice,
    )
    .await;
    assert_eq!(status, 400);
    assert!(bad["details"]["method"].is_string());
}
