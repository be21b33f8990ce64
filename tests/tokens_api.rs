//! End to end through the real binary: API tokens (`authTokens.*`) and how
//! a token is checked on every call.

mod common;

use std::time::{Duration, Instant};

use common::{admin_create_user, login, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-9-battery";
const REALM_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
const REALM_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

/// A server with one user (`alice@example.com`) created before start.
fn server_with_users(emails: &[&str]) -> Server {
    let mut server = Server::start();
    server.stop();
    for email in emails {
        admin_create_user(&server.data_dir, email, PASSWORD, false);
    }
    server.spawn();
    server
}

async fn call(
    client: &Client,
    server: &Server,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client.request(method, server.url(path));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Creates a token as `auth` and returns the response data (with `token`).
async fn create_token(client: &Client, server: &Server, auth: &str, body: Value) -> Value {
    let (status, resp) = call(
        client,
        server,
        Method::POST,
        "/api/v1/auth/tokens",
        Some(auth),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    resp["data"].clone()
}

struct Ctx {
    client: Client,
    server: Server,
    jwt: String,
}

async fn setup() -> Ctx {
    let server = server_with_users(&["alice@example.com"]);
    let client = Client::new();
    let jwt = bearer(&login(&client, &server, "alice@example.com", PASSWORD).await);
    Ctx {
        client,
        server,
        jwt,
    }
}

impl Ctx {
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.client, &self.server, method, path, auth, body).await
    }

    async fn token(&self, body: Value) -> (String, String) {
        let data = create_token(&self.client, &self.server, &self.jwt, body).await;
        (
            data["token"].as_str().expect("secret").to_string(),
            data["id"].as_str().expect("id").to_string(),
        )
    }
}

#[tokio::test]
async fn created_token_is_shown_once_and_never_listed() {
    let ctx = setup().await;
    let data = create_token(
        &ctx.client,
        &ctx.server,
        &ctx.jwt,
        json!({"alias": "ci deploy"}),
    )
    .await;
    let secret = data["token"].as_str().unwrap();
    assert!(
        secret.starts_with("hdy_") && secret.len() == 4 + 64,
        "{secret}"
    );
    assert_eq!(data["alias"], "ci deploy");
    assert_eq!(data["ip_whitelist"], json!(["*"]));
    assert_eq!(data["allow_no_realm"], true);
    assert_eq!(data["vault_access"], false);
    assert_eq!(data["event_access"], true);
    assert_eq!(data["is_enabled"], true);

    let (status, list) = ctx
        .call(Method::GET, "/api/v1/auth/tokens", Some(&ctx.jwt), None)
        .await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(!text.contains(secret), "list leaks the secret: {text}");
    let items = list["data"].as_array().expect("data is an array");
    assert_eq!(items.len(), 1);
    assert!(items[0].get("token").is_none());
    assert!(items[0].get("token_hash").is_none());
    let (_, one) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/auth/tokens/{}", data["id"].as_str().unwrap()),
            Some(&ctx.jwt),
            None,
        )
        .await;
    assert!(!one.to_string().contains(secret));
}

#[tokio::test]
async fn alias_is_generated_when_omitted() {
    let ctx = setup().await;
    let data = create_token(&ctx.client, &ctx.server, &ctx.jwt, json!({})).await;
    let alias = data["alias"].as_str().unwrap();
    assert!(alias.contains('-') && !alias.is_empty(), "{alias}");
}

#[tokio::test]
async fn token_authenticates_with_bearer_and_bare_header() {
    let ctx = setup().await;
    let (secret, id) = ctx.token(json!({"alias": "both-forms"})).await;
    for auth in [bearer(&secret), secret.clone()] {
        let (status, me) = ctx
            .call(Method::GET, "/api/v1/users/auth/me", Some(&auth), None)
            .await;
        assert_eq!(status, 200, "{auth}: {me}");
        let (status, cur) = ctx
            .call(Method::GET, "/api/v1/auth/tokens/me", Some(&auth), None)
            .await;
        assert_eq!(status, 200, "{cur}");
        assert_eq!(cur["data"]["token"]["id"], id);
        assert_eq!(cur["data"]["restrictions"]["has_realm_restrictions"], false);
        assert_eq!(cur["data"]["restrictions"]["active_realm_id"], Value::Null);
    }
}

#[tokio::test]
async fn ip_whitelist_outside_the_caller_answers_403_ip_not_allowed() {
    let ctx = setup().await;
    let (secret, _) = ctx.token(json!({"ip_whitelist": ["10.0.0.0/8"]})).await;
    let (status, body) = ctx
        .call(
            Method::GET,
            "/api/v1/auth/tokens/me",
            Some(&bearer(&secret)),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "IP_NOT_ALLOWED");

    let (secret, _) = ctx
        .token(json!({"ip_whitelist": "10.0.0.0/8, 127.0.0.1"}))
        .await;
    let (status, _) = ctx
        .call(
            Method::GET,
            "/api/v1/auth/tokens/me",
            Some(&bearer(&secret)),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn realm_restricted_token_works_only_in_its_realms() {
    let ctx = setup().await;
    let (secret, _) = ctx
        .token(json!({"realm_ids": [REALM_A], "allow_no_realm": false}))
        .await;
    let auth = bearer(&secret);
    let (status, body) = ctx
        .call(Method::GET, "/api/v1/auth/tokens/me", Some(&auth), None)
        .await;
    assert_eq!(status, 403, "no realm: {body}");
    assert_eq!(body["code"], "REALM_NOT_ALLOWED");
    let (status, _) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/auth/tokens/me?realm_id={REALM_B}"),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/auth/tokens/me?realm_id={REALM_A}"),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["restrictions"]["active_realm_id"], REALM_A);
    assert_eq!(body["data"]["restrictions"]["requires_realm_scope"], true);
}

#[tokio::test]
async fn permission_tree_denial_answers_403_insufficient_permissions() {
    let ctx = setup().await;
    let (secret, _) = ctx.token(json!({"permission_template": "read_only"})).await;
    let (status, body) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&bearer(&secret)),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");

    let (secret, _) = ctx
        .token(json!({"permissions": {"containers": {"read": true}}}))
        .await;
    let (status, body) = ctx
        .call(Method::GET, "/api/v1/events", Some(&bearer(&secret)), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
}

#[tokio::test]
async fn token_cannot_grant_more_than_it_holds() {
    let ctx = setup().await;
    let (parent, parent_id) = ctx
        .token(json!({"permissions": {"resources": {"create_tokens": true, "read_account": true}}}))
        .await;
    let auth = bearer(&parent);
    let (status, body) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&auth),
            Some(json!({"permissions": {"containers": {"delete": true}}})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");

    let child = create_token(
        &ctx.client,
        &ctx.server,
        &auth,
        json!({"permissions": {"resources": {"read_account": true}}}),
    )
    .await;
    assert_eq!(child["created_by_token_id"], parent_id);
    assert_eq!(child["delegation_depth"], 1);
    assert_eq!(child["permissions"]["resources"]["create_tokens"], false);

    // A limited token cannot widen itself either.
    let (status, body) = ctx
        .call(
            Method::PUT,
            &format!("/api/v1/auth/tokens/{parent_id}"),
            Some(&auth),
            Some(json!({"permissions": {"containers": {"create": true}, "resources": {"create_tokens": true}}})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn deny_reauthorization_makes_a_locked_down_expiring_leaf() {
    let ctx = setup().await;
    let data = create_token(
        &ctx.client,
        &ctx.server,
        &ctx.jwt,
        json!({"permission_template": "full_access", "deny_reauthorization": true}),
    )
    .await;
    assert_eq!(data["permissions"]["resources"]["create_tokens"], false);
    assert_eq!(data["permissions"]["resources"]["vault"], false);
    assert_eq!(data["vault_access"], false);
    assert!(data["expires_at"].is_string(), "{data}");

    let (status, body) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&ctx.jwt),
            Some(json!({"deny_reauthorization": true, "vault_access": true})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["details"]["deny_reauthorization"].is_string());
}

#[tokio::test]
async fn expired_token_answers_401() {
    let ctx = setup().await;
    let (status, body) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&ctx.jwt),
            Some(json!({"expires_at": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 400, "a past expiry is refused: {body}");
    assert!(body["details"]["expires_at"].is_string());

    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let (secret, _) = ctx.token(json!({"expires_at": soon})).await;
    let auth = bearer(&secret);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = ctx
            .call(Method::GET, "/api/v1/auth/tokens/me", Some(&auth), None)
            .await;
        if status == 401 || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(body["code"], "TOKEN_EXPIRED", "{body}");
}

#[tokio::test]
async fn disabled_token_answers_401_until_enabled_again() {
    let ctx = setup().await;
    let (secret, id) = ctx.token(json!({})).await;
    let auth = bearer(&secret);
    let path = format!("/api/v1/auth/tokens/{id}");
    let (status, body) = ctx
        .call(
            Method::PUT,
            &path,
            Some(&ctx.jwt),
            Some(json!({"is_enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["is_enabled"], false);
    let (status, body) = ctx
        .call(Method::GET, "/api/v1/auth/tokens/me", Some(&auth), None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "TOKEN_DISABLED");
    let (status, _) = ctx
        .call(
            Method::PUT,
            &path,
            Some(&ctx.jwt),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = ctx
        .call(Method::GET, "/api/v1/auth/tokens/me", Some(&auth), None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn deleted_token_answers_401() {
    let ctx = setup().await;
    let (secret, id) = ctx.token(json!({})).await;
    let (status, body) = ctx
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/tokens/{id}"),
            Some(&ctx.jwt),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], Value::Null);
    let (status, body) = ctx
        .call(
            Method::GET,
            "/api/v1/auth/tokens/me",
            Some(&bearer(&secret)),
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/auth/tokens/{id}"),
            Some(&ctx.jwt),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn another_users_token_is_not_found() {
    let server = server_with_users(&["alice@example.com", "bob@example.com"]);
    let client = Client::new();
    let alice = bearer(&login(&client, &server, "alice@example.com", PASSWORD).await);
    let bob = bearer(&login(&client, &server, "bob@example.com", PASSWORD).await);
    let data = create_token(&client, &server, &alice, json!({})).await;
    let id = data["id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/auth/tokens/{id}"), None),
        (
            Method::PUT,
            format!("/api/v1/auth/tokens/{id}"),
            Some(json!({"alias": "mine"})),
        ),
        (Method::DELETE, format!("/api/v1/auth/tokens/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/auth/tokens/{id}/copy"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/auth/tokens/{id}/add-realm"),
            Some(json!({"realm_id": REALM_A})),
        ),
    ] {
        let (status, resp) = call(&client, &server, method.clone(), &path, Some(&bob), body).await;
        assert_eq!(status, 404, "{method} {path}: {resp}");
        assert_eq!(resp["code"], "NOT_FOUND");
    }
    let (_, list) = call(
        &client,
        &server,
        Method::GET,
        "/api/v1/auth/tokens",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = call(
        &client,
        &server,
        Method::GET,
        &format!("/api/v1/auth/tokens/{id}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 200, "the owner still sees it");
}

#[tokio::test]
async fn bad_fields_answer_400_naming_each_field() {
    let ctx = setup().await;
    let cases = [
        (
            json!({"ip_whitelist": ["10.0.0.0/8", "nope"]}),
            "ip_whitelist[1]",
        ),
        (
            json!({"permissions": {"containers": {"fly": true}}}),
            "permissions.containers.fly",
        ),
        (
            json!({"permissions": {"projects": {"read": "yes"}}}),
            "permissions.projects.read",
        ),
        (json!({"alias": "semi;colon"}), "alias"),
        (json!({"alias": ""}), "alias"),
        (json!({"realm_ids": ["XYZ"]}), "realm_ids[0]"),
        (
            json!({"permission_template": "god_mode"}),
            "permission_template",
        ),
        (json!({"expires_at": "someday"}), "expires_at"),
        (json!({"public_key": "not-a-key"}), "public_key"),
        (json!({"surprise": 1}), "surprise"),
        (json!({"vault_access": "yes"}), "vault_access"),
    ];
    for (body, field) in cases {
        let (status, resp) = ctx
            .call(
                Method::POST,
                "/api/v1/auth/tokens",
                Some(&ctx.jwt),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["code"], "VALIDATION_ERROR");
        assert!(resp["details"][field].is_string(), "{body}: {resp}");
    }
    let (status, resp) = ctx
        .call(
            Method::GET,
            "/api/v1/auth/tokens/not-an-id",
            Some(&ctx.jwt),
            None,
        )
        .await;
    assert_eq!(status, 400, "{resp}");
}

#[tokio::test]
async fn copy_issues_a_new_secret_with_the_same_settings() {
    let ctx = setup().await;
    let source = create_token(
        &ctx.client,
        &ctx.server,
        &ctx.jwt,
        json!({"alias": "origin", "permission_template": "dev_team", "ip_whitelist": "127.0.0.1", "realm_ids": [REALM_A]}),
    )
    .await;
    let (status, copy) = ctx
        .call(
            Method::POST,
            &format!(
                "/api/v1/auth/tokens/{}/copy",
                source["id"].as_str().unwrap()
            ),
            Some(&ctx.jwt),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{copy}");
    let copy = &copy["data"];
    assert_ne!(copy["token"], source["token"]);
    assert_ne!(copy["id"], source["id"]);
    assert_eq!(copy["alias"], "origin copy");
    for field in [
        "permissions",
        "ip_whitelist",
        "realm_ids",
        "allow_no_realm",
        "vault_access",
        "event_access",
    ] {
        assert_eq!(copy[field], source[field], "{field}");
    }
}

#[tokio::test]
async fn realms_can_be_added_and_removed() {
    let ctx = setup().await;
    let (_, id) = ctx.token(json!({})).await;
    let (status, body) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/auth/tokens/{id}/add-realm"),
            Some(&ctx.jwt),
            Some(json!({"realm_id": REALM_A})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["realm_ids"], json!([REALM_A]));
    let (status, body) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/auth/tokens/{id}/remove-realm"),
            Some(&ctx.jwt),
            Some(json!({"realm_id": REALM_A})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["realm_ids"], json!([]));
    let (status, body) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/auth/tokens/{id}/add-realm"),
            Some(&ctx.jwt),
            Some(json!({"realm_id": "ABC"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["details"]["realm_id"].is_string());
}

#[tokio::test]
async fn templates_are_listed_with_their_trees() {
    let ctx = setup().await;
    let (status, body) = ctx
        .call(
            Method::GET,
            "/api/v1/auth/tokens/templates",
            Some(&ctx.jwt),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "full_access",
            "external_customer",
            "dev_team",
            "finance_team",
            "read_only"
        ]
    );
    assert_eq!(
        body["data"][4]["permissions"]["containers"]["delete"],
        false
    );
}

#[tokio::test]
async fn public_profile_is_published_under_the_tokens_key() {
    let ctx = setup().await;
    let (secret, _) = ctx.token(json!({})).await;
    let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let (status, body) = ctx
        .call(
            Method::PUT,
            "/api/v1/auth/tokens/me/public-profile",
            Some(&bearer(&secret)),
            Some(json!({"public_key": key, "public_storage": {"name": "bot"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["public_key"], key);
    let (status, body) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/auth/tokens/public-profiles/{key}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"public_key": key, "public_storage": {"name": "bot"}})
    );
    let (status, _) = ctx
        .call(
            Method::GET,
            "/api/v1/auth/tokens/public-profiles/unknown",
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(&ctx.jwt),
            Some(json!({"public_key": key})),
        )
        .await;
    assert_eq!(status, 409, "a key names one token: {body}");
}

/// The server keeps recently resolved tokens for a moment; every change to
/// the token or its user must still hold from the very next request.
#[tokio::test]
async fn changes_to_a_token_in_use_hold_from_the_next_request() {
    let ctx = &setup().await;
    let (secret, id) = ctx.token(json!({"alias": "hot"})).await;
    let auth = bearer(&secret);
    let path = format!("/api/v1/auth/tokens/{id}");
    let me = |auth: String| async move {
        ctx.call(Method::GET, "/api/v1/users/auth/me", Some(&auth), None)
            .await
    };
    // Warm: several quick calls, so the last ones are served from memory.
    for _ in 0..3 {
        let (status, body) = me(auth.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    let update = |body: Value| {
        let path = path.clone();
        async move {
            let (status, resp) = ctx
                .call(Method::PUT, &path, Some(&ctx.jwt), Some(body))
                .await;
            assert_eq!(status, 200, "{resp}");
        }
    };

    update(json!({"alias": "renamed"})).await;
    let (_, body) = me(auth.clone()).await;
    assert_eq!(
        body["data"]["auth_token"]["token"]["alias"], "renamed",
        "{body}"
    );

    update(json!({"permissions": {"containers": {"read": true}}})).await;
    let (status, body) = me(auth.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
    update(json!({"permissions": {"resources": {"read_account": true}}})).await;
    assert_eq!(me(auth.clone()).await.0, 200);

    update(json!({"ip_whitelist": ["10.9.8.7"]})).await;
    let (status, body) = me(auth.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "IP_NOT_ALLOWED");
    update(json!({"ip_whitelist": "*"})).await;
    assert_eq!(me(auth.clone()).await.0, 200);

    update(json!({"is_enabled": false})).await;
    let (status, body) = me(auth.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "TOKEN_DISABLED");
    update(json!({"is_enabled": true})).await;
    assert_eq!(me(auth.clone()).await.0, 200);

    // A change to the user shows through the token at once.
    let (status, body) = me(ctx.jwt.clone()).await;
    assert_eq!(status, 200, "{body}");
    let user_id = body["data"]["id"].as_str().expect("user id").to_string();
    let (status, body) = ctx
        .call(
            Method::PUT,
            &format!("/api/v1/users/{user_id}"),
            Some(&ctx.jwt),
            Some(json!({"alias": "Pat"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = me(auth.clone()).await;
    assert_eq!(body["data"]["alias"], "Pat", "{body}");

    let (status, _) = ctx.call(Method::DELETE, &path, Some(&ctx.jwt), None).await;
    assert_eq!(status, 200);
    let (status, body) = me(auth.clone()).await;
    assert_eq!(status, 401, "{body}");
}
