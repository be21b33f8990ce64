//! The server as a process: health, request ids, JSON for unknown routes
//! and methods, trailing slashes, rate limits, graceful shutdown, restarts,
//! crash safety, and the admin commands with and without a running server.

mod common;

use common::{admin_create_user, raw_request, Server};
use serde_json::{json, Value};

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let value = resp.json().await.unwrap_or(Value::Null);
    (status, value)
}

#[tokio::test]
async fn health_answers_and_request_ids_are_echoed() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let resp = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(generated.len() >= 16);
    let resp = client
        .get(server.url("/health"))
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "my-trace-42");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let (status, v) = body(
        client
            .get(server.url("/api/v1/no-such-thing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(v["code"], "NOT_FOUND");
    assert_eq!(v["statusCode"], 404);
    let (status, v) = body(client.delete(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, 405);
    assert_eq!(v["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn trailing_slash_paths_route_like_their_bare_form() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let with = client.get(server.url("/health/")).send().await.unwrap();
    assert_eq!(with.status(), 200);
    let (status, v) = body(
        client
            .get(server.url("/api/v1/users/auth/me/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "auth required, not a routing miss: {v}");
}

#[tokio::test]
async fn invalid_authorization_is_401_with_code() {
    let server = Server::start();
    let client = reqwest::Client::new();
    for header in ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer hdy_0000"] {
        let (status, v) = body(
            client
                .get(server.url("/api/v1/users/auth/me"))
                .header("authorization", header)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{header}: {v}");
        assert!(v["code"].is_string());
    }
}

#[tokio::test]
async fn general_ip_budget_trips_with_retry_after_and_recovers() {
    let server = Server::start_with(&["--rate-per-ip", "3", "--rate-window-secs", "2"]);
    let client = reqwest::Client::new();
    let url = server.url("/api/v1/no-such-thing");
    for expected_remaining in [2, 1, 0] {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            resp.headers()["x-ratelimit-remaining"],
            expected_remaining.to_string().as_str()
        );
    }
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "RATE_LIMITED");
    tokio::time::sleep(std::time::Duration::from_secs(retry + 1)).await;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 404);
}

#[test]
fn sigterm_lets_an_inflight_request_finish_and_exits_cleanly() {
    let mut server = Server::start();
    let addr = format!("127.0.0.1:{}", server.api_port);
    // A request whose body is still arriving when SIGTERM lands.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"POST /api/v1/users/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 60\r\nConnection: close\r\n\r\n{\"email\":\"a@b.test\",")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = server.child.as_ref().unwrap().id() as i32;
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    s.write_all(b"\"password\":\"Wrong-password-1!\"}                 ")
        .unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 "),
        "in-flight request got an answer: {out:?}"
    );
    let status = server.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
}

#[tokio::test]
async fn users_survive_a_restart_and_admin_works_through_the_running_server() {
    let mut server = Server::start();
    // While serving, the admin command must go through the admin socket.
    let created = admin_create_user(
        &server.data_dir,
        "keeper@example.test",
        "Keeper-pass-123!",
        false,
    );
    assert!(
        created["id"]
            .as_str()
            .map(|id| id.len() == 24)
            .unwrap_or(false),
        "{created}"
    );
    let client = reqwest::Client::new();
    let token = common::login(&client, &server, "keeper@example.test", "Keeper-pass-123!").await;
    assert!(!token.is_empty());

    let backup = server.data_dir.with_extension("backup.jsonl");
    let out = std::process::Command::new(common::binary())
        .args(["admin", "backup", "--data-dir"])
        .arg(&server.data_dir)
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(text.lines().count() > 3, "backup has records");
    assert!(text.contains(&hex_of("keeper@example.test")));

    // The backup restores into an empty data directory with every index.
    let restored = common::TempDir::new("restore");
    let out = std::process::Command::new(common::binary())
        .args(["admin", "restore", "--data-dir"])
        .arg(restored.path())
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = control::store::Store::open(&restored.path().join("db")).unwrap();
    let id = store
        .lookup(
            &control::users::model::USERS_BY_EMAIL,
            "keeper@example.test",
        )
        .unwrap()
        .expect("email index restored");
    assert!(store
        .get(&control::users::model::USERS, &id)
        .unwrap()
        .is_some());

    assert!(server.stop().success());
    server.spawn();
    let again = common::login(&client, &server, "keeper@example.test", "Keeper-pass-123!").await;
    assert!(!again.is_empty());
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn kill_dash_nine_during_signups_leaves_no_half_written_user() {
    let mut server = Server::start_with(&[
        "--rate-signup-per-hour",
        "100000",
        "--rate-per-ip",
        "100000",
    ]);
    let client = reqwest::Client::new();
    let url = server.url("/api/v1/auth/signup");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let _ = client
                .post(&url)
                .json(&json!({"email": format!("burst{i}@example.test"), "password": "Burst-password-1!"}))
                .send()
                .await;
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let store = control::store::Store::open(&server.data_dir.join("db"))
        .expect("store reopens after kill -9");
    let users = store.scan(&control::users::model::USERS).unwrap();
    for user in &users {
        let by_email = store
            .lookup(
                &control::users::model::USERS_BY_EMAIL,
                &user.email.to_lowercase(),
            )
            .unwrap();
        assert_eq!(
            by_email.as_deref(),
            Some(user.id.as_str()),
            "user {} has its email index",
            user.email
        );
    }
    // And no index entry points at a missing user.
    for i in 0..200 {
        let email = format!("burst{i}@example.test");
        if let Some(id) = store
            .lookup(&control::users::model::USERS_BY_EMAIL, &email)
            .unwrap()
        {
            assert!(
                store
                    .get(&control::users::model::USERS, &id)
                    .unwrap()
                    .is_some(),
                "{email} index points at a user"
            );
        }
    }
}

#[test]
fn oversized_body_is_413_json() {
    let server = Server::start();
    let addr = format!("127.0.0.1:{}", server.api_port);
    let big = "x".repeat(2 * 1024 * 1024);
    let req = format!(
        "POST /api/v1/users/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
        big.len()
    );
    let out = raw_request(&addr, &req).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 413"),
        "{}",
        &out[..out.len().min(200)]
    );
    assert!(out.contains("PAYLOAD_TOO_LARGE"));
}

/// The harness's guard against port clashes: it tells whose socket listens on a port,
/// so a server that lost its port to another test is never mistaken for ours.
#[test]
fn the_harness_tells_whose_socket_listens_on_a_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    assert_eq!(
        common::listener_owned_by(std::process::id(), port),
        Some(true)
    );
    let mut other = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .expect("sleep");
    assert_eq!(common::listener_owned_by(other.id(), port), Some(false));
    let _ = other.kill();
    let _ = other.wait();
    // (Once the listener is dropped, a parallel test may take the port at once, so
    // what /proc says about it then is not asserted.)
    drop(listener);
}
