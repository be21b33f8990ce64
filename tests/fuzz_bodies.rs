//! Property test against the real binary: 10,000 generated request bodies
//! (random JSON, wrong types for known fields, huge strings, deep nesting,
//! invalid UTF-8, truncated JSON) sent to the account and token routes.
//! Whatever arrives, the server never answers 5xx, and every error is a
//! JSON body with a `code`.

mod common;

use std::sync::Arc;

use common::{admin_create_user, login, Server};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::{Client, Method};
use serde_json::{json, Map, Value};

const BODIES: usize = 10_000;
const WORKERS: usize = 8;
const PASSWORD: &str = "Correct-Horse-9-battery";

/// Field names the routes know, so generated objects reach the validators
/// rather than stopping at "unknown field".
const KEYS: &[&str] = &[
    "email",
    "password",
    "token",
    "refresh_token",
    "refreshToken",
    "new_password",
    "alias",
    "ip_whitelist",
    "permissions",
    "permission_template",
    "realm_ids",
    "realm_id",
    "allow_no_realm",
    "vault_access",
    "event_access",
    "deny_reauthorization",
    "expires_at",
    "public_key",
    "public_storage",
    "is_enabled",
    "otp_code",
    "containers",
    "resources",
    "create_tokens",
];

const STRINGS: &[&str] = &[
    "",
    "*",
    "today",
    "tomorrow",
    "10.0.0.0/8",
    "::1/200",
    "full_access",
    "read_only",
    "aaaaaaaaaaaaaaaaaaaaaaaa",
    "alice@example.com",
    "2030-01-01T00:00:00Z",
    "-1",
    "1e309",
    "\u{0000}",
    "💥",
    "hdy_00",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,48}".prop_map(Value::String),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One request body, as raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Objects of known fields with values of any type.
        40 => prop::collection::btree_map(key(), json_value(), 0..6)
            .prop_map(|m| serde_json::to_vec(&m).unwrap_or_default()),
        // Any JSON value at all.
        20 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        // Truncated JSON.
        8 => json_value().prop_flat_map(|v| {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            let len = bytes.len();
            (Just(bytes), 0..=len)
        })
        .prop_map(|(bytes, cut)| bytes[..cut].to_vec()),
        // Invalid UTF-8 and binary noise.
        8 => prop::collection::vec(any::<u8>(), 0..256),
        8 => (prop::sample::select(KEYS), prop::collection::vec(0x80u8..=0xff, 1..16)).prop_map(
            |(k, bad)| {
                let mut out = format!("{{\"{k}\":\"").into_bytes();
                out.extend(bad);
                out.extend(b"\"}");
                out
            }
        ),
        // Deep nesting, past any recursion limit.
        4 => (1usize..5000, any::<bool>()).prop_map(|(depth, arrays)| {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
            let mut s = open.repeat(depth);
            s.push('1');
            s.push_str(&close.repeat(depth));
            s.into_bytes()
        }),
        // Huge strings, some over the body limit.
        1 => (prop::sample::select(KEYS), 10_000usize..1_500_000).prop_map(|(k, n)| {
            format!("{{\"{k}\":\"{}\"}}", "x".repeat(n)).into_bytes()
        }),
    ]
}

struct Target {
    method: Method,
    path: String,
    auth: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_bodies_never_cause_a_server_error() {
    let mut server = Server::start_with(&[
        "--rate-per-ip",
        "1000000",
        "--rate-per-token",
        "1000000",
        "--rate-signup-per-hour",
        "1000000",
        "--rate-login-failures",
        "1000000",
        "--rate-refresh",
        "1000000",
    ]);
    server.stop();
    admin_create_user(&server.data_dir, "fuzz@example.com", PASSWORD, false);
    server.spawn();
    let client = Client::new();
    let jwt = format!(
        "Bearer {}",
        login(&client, &server, "fuzz@example.com", PASSWORD).await
    );
    let created: Value = client
        .post(server.url("/api/v1/auth/tokens"))
        .header("authorization", &jwt)
        .json(&json!({"alias": "fuzz target"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["data"]["id"]
        .as_str()
        .expect("token id")
        .to_string();

    let mut targets = Vec::new();
    for path in [
        "/api/v1/auth/signup",
        "/api/v1/users/auth/login",
        "/api/v1/users/auth/refresh",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/forgot-password",
        "/api/v1/auth/reset-password",
    ] {
        targets.push(Target {
            method: Method::POST,
            path: path.to_string(),
            auth: None,
        });
    }
    for (method, path) in [
        (Method::POST, "/api/v1/auth/tokens".to_string()),
        (Method::PUT, format!("/api/v1/auth/tokens/{id}")),
        (Method::POST, format!("/api/v1/auth/tokens/{id}/copy")),
        (Method::POST, format!("/api/v1/auth/tokens/{id}/add-realm")),
    ] {
        targets.push(Target {
            method,
            path,
            auth: Some(jwt.clone()),
        });
    }

    let mut runner = TestRunner::deterministic();
    let strategy = body();
    let bodies: Vec<Vec<u8>> = (0..BODIES)
        .map(|_| strategy.new_tree(&mut runner).expect("generate").current())
        .collect();

    let targets = Arc::new(targets);
    let bodies = Arc::new(bodies);
    let server = Arc::new(server);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, targets, bodies, server) = (
            client.clone(),
            targets.clone(),
            bodies.clone(),
            server.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in (w..bodies.len()).step_by(WORKERS) {
                let target = &targets[i % targets.len()];
                let request = |client: &Client| {
                    let req = client
                        .request(target.method.clone(), server.url(&target.path))
                        .header("content-type", "application/json")
                        .body(bodies[i].clone());
                    match &target.auth {
                        Some(auth) => req.header("authorization", auth),
                        None => req,
                    }
                };
                // A server may answer a bad request early and close the
                // connection while the client is still sending (or reuse a
                // pooled connection the server just closed): the client then
                // sees a transport error without a response. Only a request
                // that also fails alone on a fresh connection counts.
                let resp = match request(&client).send().await {
                    Ok(r) => r,
                    Err(_) => {
                        let fresh = Client::builder()
                            .pool_max_idle_per_host(0)
                            .build()
                            .expect("client");
                        match request(&fresh).send().await {
                            Ok(r) => r,
                            Err(e) => {
                                failures.push(format!(
                                    "{} {}: transport error {e}",
                                    target.method, target.path
                                ));
                                continue;
                            }
                        }
                    }
                };
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let sample =
                    || String::from_utf8_lossy(&bodies[i][..bodies[i].len().min(200)]).into_owned();
                if status.is_server_error() {
                    failures.push(format!(
                        "{} {} -> {status} for {}: {text}",
                        target.method,
                        target.path,
                        sample()
                    ));
                } else if status.is_client_error() {
                    let code = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["code"].as_str().map(str::to_string));
                    if code.is_none() {
                        failures.push(format!(
                            "{} {} -> {status} without a JSON code: {text}",
                            target.method, target.path
                        ));
                    }
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.expect("worker"));
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
