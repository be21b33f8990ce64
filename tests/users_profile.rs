//! End to end through the real binary: the account a user sees and
//! changes (`users.*`, `realms.list`, `meta.*`, `utilities.getIpInfo`).

mod common;

use common::Server;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-9-battery";

struct Caller {
    client: Client,
    token: String,
    id: String,
}

impl Caller {
    async fn new(server: &Server, email: &str) -> Caller {
        let out = common::admin_create_user(&server.data_dir, email, PASSWORD, false);
        let client = Client::new();
        let token = common::login(&client, server, email, PASSWORD).await;
        Caller {
            client,
            token,
            id: out["id"].as_str().expect("id").to_string(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.bearer_auth(&self.token).send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, server: &Server, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(server.url(path))).await
    }

    async fn post(&self, server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(server.url(path)).json(&body))
            .await
    }

    async fn put(&self, server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.put(server.url(path)).json(&body))
            .await
    }
}

#[tokio::test]
async fn users_update_changes_own_profile_fields() {
    let server = Server::start();
    let me = Caller::new(&server, "pat@example.com").await;
    let key = "ab".repeat(32);
    let (status, body) = me
        .put(
            &server,
            &format!("/api/v1/users/{}", me.id),
            json!({"alias": "Pat", "public_key": key, "metadata": {"theme": {"dark": true}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["alias"], "Pat");
    assert_eq!(body["data"]["public_key"], key);
    assert_eq!(body["data"]["metadata"]["theme"]["dark"], true);
    let (_, body) = me.get(&server, "/api/v1/users/auth/me").await;
    assert_eq!(body["data"]["alias"], "Pat");
}

#[tokio::test]
async fn password_change_needs_the_current_password() {
    let server = Server::start();
    let me = Caller::new(&server, "quin@example.com").await;
    let path = format!("/api/v1/users/{}", me.id);
    let (status, body) = me
        .put(&server, &path, json!({"password": "New-Password-123"}))
        .await;
    assert_eq!(status, 400);
    assert!(body["details"]["current_password"].is_string(), "{body}");
    let (status, _) = me
        .put(
            &server,
            &path,
            json!({"password": "New-Password-123", "current_password": "Wrong-Password-1"}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = me
        .put(
            &server,
            &path,
            json!({"password": "New-Password-123", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200);
    common::login(&me.client, &server, "quin@example.com", "New-Password-123").await;
}

#[tokio::test]
async fn users_cannot_make_themselves_admin_or_touch_others() {
    let server = Server::start();
    let me = Caller::new(&server, "ray@example.com").await;
    let other = Caller::new(&server, "sam@example.com").await;
    let (status, _) = me
        .put(
            &server,
            &format!("/api/v1/users/{}", me.id),
            json!({"is_admin": true}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = me
        .put(
            &server,
            &format!("/api/v1/users/{}", other.id),
            json!({"alias": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = me
        .put(
            &server,
            &format!("/api/v1/users/{}", me.id),
            json!({"alias": ""}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["details"]["alias"].is_string());
    let (status, body) = me
        .put(
            &server,
            &format!("/api/v1/users/{}", me.id),
            json!({"nickname": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["details"]["nickname"].is_string());
}

#[tokio::test]
async fn onboarding_milestones_are_recorded_once() {
    let server = Server::start();
    let me = Caller::new(&server, "tia@example.com").await;
    let (status, body) = me
        .post(
            &server,
            "/api/v1/users/me/onboarding",
            json!({"milestone": "hub_tour_v1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = body["data"]["onboarding"]["hub_tour_v1"].clone();
    assert!(first.is_string());
    let (_, body) = me
        .post(
            &server,
            "/api/v1/users/me/onboarding",
            json!({"milestone": "hub_tour_v1"}),
        )
        .await;
    assert_eq!(body["data"]["onboarding"]["hub_tour_v1"], first);
    let (status, body) = me
        .post(
            &server,
            "/api/v1/users/me/onboarding",
            json!({"milestone": "Nope"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["details"]["milestone"].is_string());
}

#[tokio::test]
async fn free_tier_setup_and_security_history() {
    let server = Server::start();
    let me = Caller::new(&server, "uma@example.com").await;
    let (status, body) = me.get(&server, "/api/v1/users/me/free-tier-status").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["unlocked"], true);
    assert_eq!(body["data"]["has_free_server"], true);
    let (status, body) = me
        .post(&server, "/api/v1/users/me/retry-setup", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["project"]["alias"], "default");
    assert_eq!(body["data"]["server"]["name"], "local");
    assert!(body["data"]["blocked_reason"].is_null());

    let bad = Client::new()
        .post(server.url("/api/v1/users/auth/login"))
        .json(&json!({"email": "uma@example.com", "password": "Wrong-Password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let (status, body) = me
        .get(&server, "/api/v1/users/me/security-history?limit=10")
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["data"].as_array().expect("a list");
    assert!(items
        .iter()
        .any(|e| e["event"] == "login" && e["outcome"] == "failed"));
    assert!(items
        .iter()
        .any(|e| e["event"] == "login" && e["outcome"] == "success"));
    assert_eq!(body["metadata"]["limit"], 10);
    let (_, body) = me
        .get(
            &server,
            "/api/v1/users/me/security-history?include_failed=false",
        )
        .await;
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["outcome"] == "success"));
    let (status, body) = me
        .get(&server, "/api/v1/users/me/security-history?limit=0")
        .await;
    assert_eq!(status, 400);
    assert!(body["details"]["limit"].is_string());
}

#[tokio::test]
async fn realms_ip_and_meta_answer_in_the_contract_shape() {
    let server = Server::start();
    let me = Caller::new(&server, "val@example.com").await;
    let (status, body) = me.get(&server, "/api/v1/realms/?include_usage=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total"], 0);
    assert!(body["data"]["realm_ids"].as_array().unwrap().is_empty());
    assert!(body["data"]["usage"].is_object());
    let (status, _) = me.get(&server, "/api/v1/realms").await;
    assert_eq!(status, 200);

    let anon = Client::new();
    let resp = anon
        .get(server.url("/api/v1/ip"))
        .header("user-agent", "probe/1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["ip"], "127.0.0.1");
    assert_eq!(body["data"]["user_agent"], "probe/1");
    assert_eq!(body["data"]["is_logged"], false);
    let (_, body) = me.get(&server, "/api/v1/ip").await;
    assert_eq!(body["data"]["is_logged"], true);
    assert!(body["data"]["headers"].get("authorization").is_none());

    let body: Value = anon
        .get(server.url("/api/v1/meta/social-stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["data"]["github"].is_null());
    let body: Value = anon
        .get(server.url("/api/v1/auth/available-regions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["regions"][0]["available"], true);
    let status = anon
        .get(server.url("/api/v1/auth/config"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}
