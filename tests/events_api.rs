//! End to end through the real binary: the event history (`events.*`).

mod common;

use common::{admin_create_user, login, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-9-battery";

async fn call(
    client: &Client,
    server: &Server,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client
        .request(method, server.url(path))
        .header("authorization", auth);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

struct Ctx {
    client: Client,
    server: Server,
    alice: String,
    bob: String,
}

async fn setup() -> Ctx {
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
    Ctx {
        client,
        server,
        alice,
        bob,
    }
}

impl Ctx {
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.client, &self.server, method, path, auth, body).await
    }

    /// Creates, disables and deletes a token as Alice: four events.
    async fn token_lifecycle(&self) -> String {
        let (status, created) = self
            .call(
                Method::POST,
                "/api/v1/auth/tokens",
                &self.alice,
                Some(json!({"alias": "evt"})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["data"]["id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/auth/tokens/{id}");
        let (status, _) = self
            .call(
                Method::PUT,
                &path,
                &self.alice,
                Some(json!({"alias": "renamed", "is_enabled": false})),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = self.call(Method::DELETE, &path, &self.alice, None).await;
        assert_eq!(status, 200);
        id
    }
}

fn types(list: &Value) -> Vec<String> {
    list["data"]["events"]
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn token_mutations_are_recorded_as_events() {
    let ctx = setup().await;
    let id = ctx.token_lifecycle().await;
    let (status, list) = ctx
        .call(
            Method::GET,
            "/api/v1/events?resource_type=auth_token&sort_order=asc",
            &ctx.alice,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let mut got = types(&list);
    got.sort();
    assert_eq!(
        got,
        [
            "auth.token.created",
            "auth.token.deleted",
            "auth.token.disabled",
            "auth.token.updated"
        ]
    );
    let first = &list["data"]["events"][0];
    assert_eq!(first["resource_id"], id);
    assert_eq!(first["resource_type"], "auth_token");
    assert!(first["payload"].is_object());
    assert!(first["realm_ids"].is_array());
    assert_eq!(list["data"]["pagination"]["total"], 4);
    assert_eq!(list["data"]["pagination"]["has_more"], false);
}

#[tokio::test]
async fn list_pages_with_limit_offset_and_has_more() {
    let ctx = setup().await;
    ctx.token_lifecycle().await;
    let (_, page) = ctx
        .call(
            Method::GET,
            "/api/v1/events?resource_type=auth_token&limit=3&offset=0",
            &ctx.alice,
            None,
        )
        .await;
    assert_eq!(page["data"]["events"].as_array().unwrap().len(), 3);
    assert_eq!(
        page["data"]["pagination"],
        json!({"total": 4, "limit": 3, "offset": 0, "has_more": true})
    );
    let (_, rest) = ctx
        .call(
            Method::GET,
            "/api/v1/events?resource_type=auth_token&limit=3&offset=3",
            &ctx.alice,
            None,
        )
        .await;
    assert_eq!(rest["data"]["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"]["pagination"]["has_more"], false);
    let (status, bad) = ctx
        .call(
            Method::GET,
            "/api/v1/events?event_type=nope",
            &ctx.alice,
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert!(bad["details"]["event_type"].is_string());
}

#[tokio::test]
async fn another_users_events_are_not_found() {
    let ctx = setup().await;
    ctx.token_lifecycle().await;
    let (_, list) = ctx
        .call(Method::GET, "/api/v1/events", &ctx.alice, None)
        .await;
    let event_id = list["data"]["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/events/{event_id}");
    let (status, body) = ctx.call(Method::GET, &path, &ctx.bob, None).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = ctx.call(Method::DELETE, &path, &ctx.bob, None).await;
    assert_eq!(status, 404);
    let (_, bobs) = ctx
        .call(
            Method::GET,
            "/api/v1/events?resource_type=auth_token",
            &ctx.bob,
            None,
        )
        .await;
    assert_eq!(bobs["data"]["pagination"]["total"], 0, "{bobs}");
    let (status, _) = ctx.call(Method::GET, &path, &ctx.alice, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn stats_delete_bulk_delete_and_cleanup() {
    let ctx = setup().await;
    ctx.token_lifecycle().await;
    let (status, stats) = ctx
        .call(Method::GET, "/api/v1/events/stats", &ctx.alice, None)
        .await;
    assert_eq!(status, 200, "{stats}");
    assert!(
        stats["data"]["total_events"].as_u64().unwrap() >= 4,
        "{stats}"
    );
    assert_eq!(stats["data"]["by_type"]["auth.token.created"], 1);
    assert_eq!(stats["data"]["by_resource"]["auth_token"], 4);
    assert!(stats["data"]["oldest_event"].is_string());

    let (_, list) = ctx
        .call(
            Method::GET,
            "/api/v1/events?event_type=auth.token.created",
            &ctx.alice,
            None,
        )
        .await;
    let id = list["data"]["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = ctx
        .call(
            Method::DELETE,
            &format!("/api/v1/events/{id}"),
            &ctx.alice,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], Value::Null);

    let (status, body) = ctx
        .call(
            Method::DELETE,
            "/api/v1/events",
            &ctx.alice,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status, 400,
        "an empty filter never wipes everything: {body}"
    );
    let (status, body) = ctx
        .call(
            Method::DELETE,
            "/api/v1/events",
            &ctx.alice,
            Some(json!({"event_type": "auth.token.deleted"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["deleted_count"], 1);

    let (status, body) = ctx
        .call(
            Method::POST,
            "/api/v1/events/cleanup",
            &ctx.alice,
            Some(json!({"retention_days": 30})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["deleted_count"], 0);
    assert_eq!(body["data"]["retention_days"], 30);
    assert!(body["data"]["cutoff_date"].is_string());
    let (status, body) = ctx
        .call(
            Method::POST,
            "/api/v1/events/cleanup",
            &ctx.alice,
            Some(json!({"retention_days": 0})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["details"]["retention_days"].is_string());
}

#[tokio::test]
async fn token_without_event_access_is_refused() {
    let ctx = setup().await;
    let (_, created) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            &ctx.alice,
            Some(json!({"permission_template": "read_only", "event_access": false})),
        )
        .await;
    let secret = created["data"]["token"].as_str().unwrap();
    let (status, body) = ctx.call(Method::GET, "/api/v1/events", secret, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "EVENT_ACCESS_DENIED");

    let (_, created) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            &ctx.alice,
            Some(json!({"permission_template": "read_only"})),
        )
        .await;
    let secret = created["data"]["token"].as_str().unwrap();
    let (status, body) = ctx.call(Method::GET, "/api/v1/events", secret, None).await;
    assert_eq!(status, 200, "{body}");
}
