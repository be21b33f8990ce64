//! End to end through the real binary: accounts and sessions
//! (`authentication.*`).

mod common;

use common::{link_param, Server};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-9-battery";

async fn post(client: &Client, server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(client: &Client, server: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    let mut req = client.get(server.url(path));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Signs up and returns (token, email) from the verification link.
async fn signup(client: &Client, server: &Server, email: &str) -> (String, String) {
    let (status, body) = post(
        client,
        server,
        "/api/v1/auth/signup",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mail = server.last_email_to(email).expect("verification email");
    let token = link_param(&mail, "token").expect("token in link");
    let addr = link_param(&mail, "email").expect("email in link");
    (token, addr)
}

/// Signs up, verifies and returns the verification response's data.
async fn verified(client: &Client, server: &Server, email: &str) -> Value {
    let (token, addr) = signup(client, server, email).await;
    let (status, body) = post(
        client,
        server,
        "/api/v1/auth/verify-email",
        json!({"token": token, "email": addr}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn login(
    client: &Client,
    server: &Server,
    email: &str,
    password: &str,
) -> (StatusCode, Value) {
    post(
        client,
        server,
        "/api/v1/users/auth/login",
        json!({"email": email, "password": password}),
    )
    .await
}

async fn refresh(client: &Client, server: &Server, refresh_token: &str) -> (StatusCode, Value) {
    post(
        client,
        server,
        "/api/v1/users/auth/refresh",
        json!({"refreshToken": refresh_token}),
    )
    .await
}

#[tokio::test]
async fn whole_cycle_signup_verify_login_me_refresh_reuse_logout() {
    let server = Server::start();
    let client = Client::new();
    let email = "Ada.Lovelace+test@example.com";

    let (token, addr) = signup(&client, &server, email).await;
    assert_eq!(addr, email.to_lowercase(), "the link carries the address");
    assert_eq!(token.len(), 64);

    let (status, body) = login(&client, &server, email, PASSWORD).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "EMAIL_NOT_VERIFIED");

    let (status, body) = post(
        &client,
        &server,
        "/api/v1/auth/verify-email",
        json!({"token": token, "email": addr}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["token"].is_string());
    assert_eq!(body["data"]["project"]["alias"], "default");

    let (status, body) = login(&client, &server, email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    for field in [
        "token",
        "refreshToken",
        "expires_at",
        "refresh_expires_at",
        "client_ip",
    ] {
        assert!(data[field].is_string(), "{field} missing: {data}");
    }
    assert_eq!(data["expires_in"], 86400);
    assert_eq!(data["refresh_expires_in"], 7 * 86400);
    assert_eq!(data["client_ip"], "127.0.0.1");
    assert_eq!(data["recent_login_ips"][0]["ip"], "127.0.0.1");
    assert_eq!(data["auth_token_count"], 0);
    assert_eq!(data["user"]["email"], email.to_lowercase());
    assert_eq!(data["user"]["email_verified"], true);
    assert!(data["user"].get("password_hash").is_none());
    assert_eq!(data["project"]["alias"], "default");
    assert_eq!(data["server"]["name"], "local");
    assert!(data["identity_claim"]["signature_hex"].is_string());
    let access = data["token"].as_str().unwrap().to_string();
    let refresh1 = data["refreshToken"].as_str().unwrap().to_string();

    let (status, me) = get(&client, &server, "/api/v1/users/auth/me", &access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["id"], data["user"]["id"]);
    let (status, alias) = get(&client, &server, "/api/v1/users/me", &access).await;
    assert_eq!(status, 200);
    assert_eq!(alias["data"]["id"], data["user"]["id"]);

    // Rotation: a new pair, and the presented refresh token is spent.
    let (status, body) = refresh(&client, &server, &refresh1).await;
    assert_eq!(status, 200, "{body}");
    let access2 = body["data"]["token"].as_str().unwrap().to_string();
    let refresh2 = body["data"]["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh1);
    assert_eq!(
        get(&client, &server, "/api/v1/users/auth/me", &access2)
            .await
            .0,
        200
    );

    // Replaying the spent token revokes the whole family.
    let (status, body) = refresh(&client, &server, &refresh1).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(refresh(&client, &server, &refresh2).await.0, 401);
    assert_eq!(
        get(&client, &server, "/api/v1/users/auth/me", &access2)
            .await
            .0,
        401
    );

    // Logout ends every session issued before it.
    let (_, body) = login(&client, &server, email, PASSWORD).await;
    let access3 = body["data"]["token"].as_str().unwrap().to_string();
    let refresh3 = body["data"]["refreshToken"].as_str().unwrap().to_string();
    let (_, body) = login(&client, &server, email, PASSWORD).await;
    let access4 = body["data"]["token"].as_str().unwrap().to_string();
    let resp = client
        .post(server.url("/api/v1/users/auth/logout"))
        .bearer_auth(&access4)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        get(&client, &server, "/api/v1/users/auth/me", &access3)
            .await
            .0,
        401
    );
    assert_eq!(
        get(&client, &server, "/api/v1/users/auth/me", &access4)
            .await
            .0,
        401
    );
    assert_eq!(refresh(&client, &server, &refresh3).await.0, 401);
    // Logging in again works.
    assert_eq!(login(&client, &server, email, PASSWORD).await.0, 200);
}

#[tokio::test]
async fn verification_with_a_mismatching_email_is_refused() {
    let server = Server::start();
    let client = Client::new();
    let (token, _) = signup(&client, &server, "bob@example.com").await;
    let (status, body) = post(
        &client,
        &server,
        "/api/v1/auth/verify-email",
        json!({"token": token, "email": "mallory@example.com"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["details"]["email"].is_string(), "{body}");
    // The token alone still works, once.
    let body = json!({"token": token});
    assert_eq!(
        post(&client, &server, "/api/v1/auth/verify-email", body.clone())
            .await
            .0,
        200
    );
    let (status, again) = post(&client, &server, "/api/v1/auth/verify-email", body).await;
    assert_eq!(status, 400);
    assert_eq!(again["code"], "INVALID_OR_EXPIRED_TOKEN");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() {
    let server = Server::start();
    let client = Client::new();
    verified(&client, &server, "cy@example.com").await;
    let (s1, b1) = login(&client, &server, "cy@example.com", "Wrong-Password-1").await;
    let (s2, b2) = login(&client, &server, "nobody@example.com", "Wrong-Password-1").await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(b1, b2);
    assert_eq!(b1["code"], "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn login_by_username_works() {
    let server = Server::start();
    let client = Client::new();
    let data = verified(&client, &server, "dora@example.com").await;
    let username = data["user"]["username"]
        .as_str()
        .expect("username")
        .to_string();
    let (status, body) = post(
        &client,
        &server,
        "/api/v1/users/auth/login",
        json!({"username": username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn signup_of_an_existing_address_answers_like_a_new_one() {
    let server = Server::start();
    let client = Client::new();
    verified(&client, &server, "eve@example.com").await;
    let (s_new, b_new) = post(
        &client,
        &server,
        "/api/v1/auth/signup",
        json!({"email": "fred@example.com", "password": PASSWORD}),
    )
    .await;
    let (s_old, b_old) = post(
        &client,
        &server,
        "/api/v1/auth/signup",
        json!({"email": "eve@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s_new, s_old);
    assert_eq!(b_new["message"], b_old["message"]);
    assert_eq!(b_old["data"]["email"], "eve@example.com");
    assert_eq!(b_new["data"]["email"], "fred@example.com");
    // The existing account keeps its password.
    assert_eq!(
        login(&client, &server, "eve@example.com", PASSWORD).await.0,
        200
    );
}

#[tokio::test]
async fn forgot_password_for_an_unknown_address_answers_like_a_known_one() {
    let server = Server::start();
    let client = Client::new();
    verified(&client, &server, "gus@example.com").await;
    let known = post(
        &client,
        &server,
        "/api/v1/auth/forgot-password",
        json!({"email": "gus@example.com"}),
    )
    .await;
    let unknown = post(
        &client,
        &server,
        "/api/v1/auth/forgot-password",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(known, unknown);
    assert_eq!(known.0, 200);
    assert!(known.1["data"].is_null());
    let resend_known = post(
        &client,
        &server,
        "/api/v1/auth/resend-verification",
        json!({"email": "gus@example.com"}),
    )
    .await;
    let resend_unknown = post(
        &client,
        &server,
        "/api/v1/auth/resend-verification",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(resend_known, resend_unknown);
    assert!(server.last_email_to("nobody@example.com").is_none());
}

#[tokio::test]
async fn reset_password_sets_the_new_password_and_ends_sessions() {
    let server = Server::start();
    let client = Client::new();
    verified(&client, &server, "hal@example.com").await;
    let (_, body) = login(&client, &server, "hal@example.com", PASSWORD).await;
    let old_access = body["data"]["token"].as_str().unwrap().to_string();
    let old_refresh = body["data"]["refreshToken"].as_str().unwrap().to_string();

    post(
        &client,
        &server,
        "/api/v1/auth/forgot-password",
        json!({"email": "hal@example.com"}),
    )
    .await;
    let mail = server.last_email_to("hal@example.com").unwrap();
    assert!(mail.contains("reset-password?token="), "{mail}");
    let token = link_param(&mail, "token").unwrap();
    assert_eq!(link_param(&mail, "email").unwrap(), "hal@example.com");

    let new_password = "Brand-New-Secret-42";
    let (status, body) = post(
        &client,
        &server,
        "/api/v1/auth/reset-password",
        json!({"token": token, "password": new_password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(&client, &server, "/api/v1/users/auth/me", &old_access)
            .await
            .0,
        401
    );
    assert_eq!(refresh(&client, &server, &old_refresh).await.0, 401);
    assert_eq!(
        login(&client, &server, "hal@example.com", PASSWORD).await.0,
        401
    );
    assert_eq!(
        login(&client, &server, "hal@example.com", new_password)
            .await
            .0,
        200
    );
    // The link was single-use.
    let (status, _) = post(
        &client,
        &server,
        "/api/v1/auth/reset-password",
        json!({"token": token, "password": "Yet-Another-Secret-7"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn refresh_with_a_different_token_in_the_header_is_rejected() {
    let server = Server::start();
    let client = Client::new();
    verified(&client, &server, "ivy@example.com").await;
    let (_, a) = login(&client, &server, "ivy@example.com", PASSWORD).await;
    let (_, b) = login(&client, &server, "ivy@example.com", PASSWORD).await;
    let ra = a["data"]["refreshToken"].as_str().unwrap();
    let rb = b["data"]["refreshToken"].as_str().unwrap();
    let resp = client
        .post(server.url("/api/v1/users/auth/refresh"))
        .bearer_auth(rb)
        .json(&json!({"refreshToken": ra}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The same token in both places is fine.
    let resp = client
        .post(server.url("/api/v1/users/auth/refresh"))
        .bearer_auth(ra)
        .json(&json!({"refreshToken": ra}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn another_users_account_is_not_found() {
    let server = Server::start();
    let client = Client::new();
    let a = verified(&client, &server, "jan@example.com").await;
    let b = verified(&client, &server, "kim@example.com").await;
    let a_token = a["token"].as_str().unwrap();
    let b_id = b["user"]["id"].as_str().unwrap();
    let (status, body) = get(&client, &server, &format!("/api/v1/users/{b_id}"), a_token).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "NOT_FOUND");
    let a_id = a["user"]["id"].as_str().unwrap();
    let (status, body) = get(&client, &server, &format!("/api/v1/users/{a_id}"), a_token).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["email"], "jan@example.com");
    let (status, body) = get(&client, &server, "/api/v1/users/not-an-id", a_token).await;
    assert_eq!(status, 400);
    assert!(body["details"]["id"].is_string(), "{body}");
}

#[tokio::test]
async fn admins_can_read_any_user() {
    let server = Server::start();
    let client = Client::new();
    let b = verified(&client, &server, "lee@example.com").await;
    common::admin_create_user(&server.data_dir, "root@example.com", PASSWORD, true);
    let admin = common::login(&client, &server, "root@example.com", PASSWORD).await;
    let b_id = b["user"]["id"].as_str().unwrap();
    let (status, body) = get(&client, &server, &format!("/api/v1/users/{b_id}"), &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["email"], "lee@example.com");
}

async fn expect_field(client: &Client, server: &Server, path: &str, raw: &str, field: &str) {
    let resp = client
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(raw.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 400, "{path} {raw}: {body}");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert!(
        body["details"][field].is_string(),
        "{path} {raw}: {field} not named in {body}"
    );
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let server = Server::start();
    let client = Client::new();
    let signup = "/api/v1/auth/signup";
    expect_field(&client, &server, signup, "{\"email\": ", "body").await;
    expect_field(
        &client,
        &server,
        signup,
        &json!({"email": 5, "password": PASSWORD}).to_string(),
        "email",
    )
    .await;
    expect_field(
        &client,
        &server,
        signup,
        &json!({"password": PASSWORD}).to_string(),
        "email",
    )
    .await;
    expect_field(
        &client,
        &server,
        signup,
        &json!({"email": "a@example.com", "password": PASSWORD, "admin": true}).to_string(),
        "admin",
    )
    .await;
    let long = format!("{}@example.com", "a".repeat(250));
    expect_field(
        &client,
        &server,
        signup,
        &json!({"email": long, "password": PASSWORD}).to_string(),
        "email",
    )
    .await;
    expect_field(
        &client,
        &server,
        signup,
        &json!({"email": "a@example.com", "password": "weak"}).to_string(),
        "password",
    )
    .await;
    expect_field(
        &client,
        &server,
        signup,
        &json!({"email": "a@example.com", "password": PASSWORD, "region": "EU_West"}).to_string(),
        "region",
    )
    .await;
    expect_field(
        &client,
        &server,
        "/api/v1/auth/verify-email",
        &json!({"token": "short"}).to_string(),
        "token",
    )
    .await;
    expect_field(
        &client,
        &server,
        "/api/v1/users/auth/login",
        &json!({"password": PASSWORD}).to_string(),
        "email",
    )
    .await;
    expect_field(
        &client,
        &server,
        "/api/v1/users/auth/login",
        &json!({"username": "x y", "password": PASSWORD}).to_string(),
        "username",
    )
    .await;
    expect_field(
        &client,
        &server,
        "/api/v1/users/auth/refresh",
        &json!({"refreshToken": ""}).to_string(),
        "refreshToken",
    )
    .await;
    expect_field(
        &client,
        &server,
        "/api/v1/auth/reset-password",
        &json!({"token": "a".repeat(64), "password": "weak"}).to_string(),
        "password",
    )
    .await;
}

#[tokio::test]
async fn signup_rate_limit_trips_with_retry_after() {
    let server = Server::start_with(&["--rate-signup-per-hour", "3"]);
    let client = Client::new();
    for i in 0..3 {
        let (status, body) = post(
            &client,
            &server,
            "/api/v1/auth/signup",
            json!({"email": format!("r{i}@example.com"), "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = client
        .post(server.url("/api/v1/auth/signup"))
        .json(&json!({"email": "r4@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(resp.headers().contains_key(h), "{h} missing");
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    assert!(server.last_email_to("r4@example.com").is_none());
}

#[tokio::test]
async fn identity_claims_verify_against_the_published_key() {
    let server = Server::start();
    let client = Client::new();
    let data = verified(&client, &server, "max@example.com").await;
    let token = data["token"].as_str().unwrap();
    let resp = client
        .post(server.url("/api/v1/users/auth/identity-claim"))
        .bearer_auth(token)
        .json(&json!({"audience": "app.example.com", "expires_in": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["audience"], "app.example.com");
    assert_eq!(body["data"]["expires_in"], 600);
    let (status, key) = get(&client, &server, "/api/v1/meta/public-key", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        key["data"]["active_kid"],
        body["data"]["identity_claim"]["kid"]
    );
    assert_eq!(key["data"]["keys"][0]["algorithm"], "ed25519");
    let resp = client
        .post(server.url("/api/v1/users/auth/identity-claim"))
        .bearer_auth(token)
        .json(&json!({"audience": "has space", "expires_in": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["details"]["audience"].is_string() && body["details"]["expires_in"].is_string());
}
