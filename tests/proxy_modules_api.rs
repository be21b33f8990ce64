//! The module store over the API of the real binary (`proxyModules.*`): upload, list,
//! read, delete, and what is refused. Containers are created stopped on real runc (needs
//! root, runc, busybox-static); this file's server uses bridge `hct161`.

mod common;

use std::time::Duration;

use common::{admin_create_user, login, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

fn server() -> Server {
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "hct161"])
        .stderr(std::process::Stdio::null())
        .status();
    Server::start_with(&[
        "--runtime-bridge",
        "hct161",
        "--runtime-subnet",
        "10.214.161.0/24",
    ])
}

async fn call(
    client: &Client,
    srv: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client
        .request(method, srv.url(path))
        .bearer_auth(token)
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn upload(
    client: &Client,
    srv: &Server,
    token: &str,
    id: &str,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let resp = client
        .put(srv.url(&format!("/api/v1/containers/{id}/proxy/modules/{name}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Declares a module one byte over 16 MiB and sends none of it: the answer
/// must come from the declaration alone (a client sending the whole body
/// would see the connection closed under it once the server has answered).
fn declared_too_large(srv: &Server, token: &str, id: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", srv.api_port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "PUT /api/v1/containers/{id}/proxy/modules/big HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/wasm\r\n\
         Content-Length: {}\r\n\r\n",
        (16 << 20) + 1
    );
    sock.write_all(head.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !body_complete(&answer) {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// True once the bytes hold a head and the whole body its Content-Length names.
fn body_complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

/// A tenant's token and a stopped container of theirs.
async fn tenant_with_container(client: &Client, srv: &Server, email: &str) -> (String, String) {
    admin_create_user(&srv.data_dir, email, "Correct-Horse-9!", false);
    let token = login(client, srv, email, "Correct-Horse-9!").await;
    let (s, body) = call(client, srv, &token, Method::GET, "/api/v1/projects/", None).await;
    assert_eq!(s, 200, "{body}");
    let project = body["data"]["projects"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["is_default"] == true))
        .and_then(|p| p["id"].as_str())
        .expect("default project")
        .to_string();
    let (s, body) = call(
        client,
        srv,
        &token,
        Method::POST,
        &format!("/api/v1/projects/{project}/containers"),
        Some(
            json!({"name": "web", "container_image": "busybox", "autostart": false,
                    "server_id": control::servers::model::node_server_id("local")}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    (token, body["data"]["id"].as_str().unwrap().to_string())
}

/// A minimal proxy-wasm guest that adds a header.
const GUEST: &str = r#"(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 3)))
    (i32.const 0))
  (data (i32.const 16) "x-mod")
  (data (i32.const 32) "yes"))"#;

fn wasm(text: &str) -> Vec<u8> {
    hook_engine::wat_to_wasm(text).expect("valid wat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_are_stored_listed_read_and_deleted() {
    let srv = server();
    let client = Client::builder().no_proxy().build().unwrap();
    let (token, id) = tenant_with_container(&client, &srv, "mods@example.com").await;
    let bytes = wasm(GUEST);
    let sha = hook_engine::sha256_hex(&bytes);

    let (s, body) = upload(
        &client,
        &srv,
        &token,
        &id,
        "tag.wasm",
        "application/wasm",
        bytes.clone(),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["sha256"], sha);
    assert_eq!(body["data"]["size"], bytes.len());
    assert_eq!(body["data"]["abi_version"], "0.2.1");
    let imports = body["data"]["imports"].as_array().unwrap();
    assert_eq!(imports[0]["name"], "proxy_add_header_map_value");
    assert_eq!(imports[0]["provision"], "implemented");
    let created_at = body["data"]["created_at"].clone();
    // The bytes sit in the module directory, by content.
    let stored = srv.data_dir.join("modules").join(format!("{sha}.wasm"));
    assert_eq!(std::fs::read(&stored).unwrap(), bytes);

    // Same name again: replaced, created_at kept.
    let (s, body) = upload(
        &client,
        &srv,
        &token,
        &id,
        "tag.wasm",
        "application/wasm",
        bytes.clone(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["created_at"], created_at);

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        &format!("/api/v1/containers/{id}/proxy/modules"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let list = body["data"]["modules"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "tag.wasm");

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        &format!("/api/v1/containers/{id}/proxy/modules/tag.wasm"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["sha256"], sha);

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}/proxy/modules/tag.wasm"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(!stored.exists(), "unused bytes are removed");
    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        &format!("/api/v1/containers/{id}/proxy/modules/tag.wasm"),
        None,
    )
    .await;
    assert_eq!(s, 404, "{body}");
    let (s, _) = call(
        &client,
        &srv,
        &token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}/proxy/modules/tag.wasm"),
        None,
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_modules_are_refused_and_nothing_is_stored() {
    let srv = server();
    let client = Client::builder().no_proxy().build().unwrap();
    let (token, id) = tenant_with_container(&client, &srv, "badmods@example.com").await;
    let (other, _) = tenant_with_container(&client, &srv, "othermods@example.com").await;

    let (s, body) = upload(
        &client,
        &srv,
        &token,
        &id,
        "x",
        "application/wasm",
        b"not wasm".to_vec(),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert!(
        body["details"]["body"]
            .as_str()
            .unwrap()
            .contains("invalid WebAssembly"),
        "{body}"
    );

    let unknown = wasm(
        r#"(module
      (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "malloc") (param i32) (result i32) (i32.const 0)))"#,
    );
    let (s, body) = upload(&client, &srv, &token, &id, "x", "application/wasm", unknown).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["details"]["body"]
            .as_str()
            .unwrap()
            .contains("path_open"),
        "{body}"
    );

    let (s, body) = declared_too_large(&srv, &token, &id);
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");

    let (s, body) = upload(
        &client,
        &srv,
        &token,
        &id,
        ".hidden",
        "application/wasm",
        wasm(GUEST),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body["details"]["name"].is_string(), "{body}");

    let (s, body) = upload(
        &client,
        &srv,
        &token,
        &id,
        "x",
        "application/octet-stream",
        wasm(GUEST),
    )
    .await;
    assert_eq!(s, 415, "{body}");

    // Another tenant cannot see or write this container's store.
    let (s, _) = upload(
        &client,
        &srv,
        &other,
        &id,
        "x",
        "application/wasm",
        wasm(GUEST),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &client,
        &srv,
        &other,
        Method::GET,
        &format!("/api/v1/containers/{id}/proxy/modules"),
        None,
    )
    .await;
    assert_eq!(s, 404);

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        &format!("/api/v1/containers/{id}/proxy/modules"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["modules"], json!([]));
    let leftovers = std::fs::read_dir(srv.data_dir.join("modules"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leftovers, 0);
}
