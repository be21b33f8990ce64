//! The module store over the API of the real binary (`proxyModules.*`): upload, list,
//! read, delete, and what is refused. Containers are created stopped on real runc (needs
//! root, runc, busybox-static); this file's server uses bridge `hct161`.

mod common;
mod containers_support;

use common::{raw_request, Server};
use containers_support::{call, create_stopped, tenant, upload_module as upload};
use reqwest::{Client, Method};
use serde_json::{json, Value};

fn server() -> Server {
    containers_support::server(161)
}

/// Declares a module one byte over 16 MiB and sends none of it: the answer
/// must come from the declaration alone (a client sending the whole body
/// would see the connection closed under it once the server has answered).
fn declared_too_large(srv: &Server, token: &str, id: &str) -> (u16, Value) {
    let text = raw_request(
        &format!("127.0.0.1:{}", srv.api_port),
        &format!(
            "PUT /api/v1/containers/{id}/proxy/modules/big HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/wasm\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            (16 << 20) + 1
        ),
    )
    .expect("request");
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

/// A tenant's token and a stopped container of theirs.
async fn tenant_with_container(client: &Client, srv: &Server, email: &str) -> (String, String) {
    let t = tenant(client, srv, email).await;
    let id = create_stopped(client, srv, &t, "web").await;
    (t.token, id)
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
