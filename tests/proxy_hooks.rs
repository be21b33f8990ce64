//! Hooks end to end through `serve`: a module uploaded to a container's module
//! store, a hook placed on its `http` service through `proxyHooks.*`, and
//! requests to a real busybox container through the embedded proxy and
//! through a remote data-plane node that fetched the module by its sha256.
//! Bridge `hct150`.

mod common;
mod containers_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, free_port, raw_request, Server};
use containers_support::*;
use reqwest::{Client, Method};
use serde_json::{json, Value};

const BRIDGE: u8 = 150;
const HOST: &str = "hooked.local.localhost";

/// One GET through a proxy at `addr`: (status, head and body).
fn get_via(addr: &str, path: &str) -> (u16, String) {
    try_get(addr, path).expect("proxy request")
}

/// `get_via`, or the connection error (a node still starting).
fn try_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    try_get_host(addr, HOST, path)
}

fn try_get_host(addr: &str, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let raw = raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    Ok((status, raw))
}

/// Polls `addr` until `check` holds for the answer to `path`; panics after 30 s.
async fn until(addr: &str, path: &str, what: &str, check: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = try_get(addr, path).unwrap_or_else(|e| (0, e.to_string()));
        if check(status, &text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer {status}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn header_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A proxy document that lets everyone in (a document, once it exists, is
/// enforced, and a new one denies by default).
async fn open_document(client: &Client, srv: &Server, token: &str, id: &str) {
    let (s, body) = call(
        client,
        srv,
        token,
        Method::PATCH,
        &format!("/api/v1/containers/{id}/proxy/permissions/default"),
        Some(json!({"default": "allow"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

/// A running busybox container named `name`, reachable through the proxy
/// at [`HOST`] and open to everyone: (its id, the proxy's address).
async fn served_container(
    client: &Client,
    srv: &Server,
    owner: &Tenant,
    name: &str,
) -> (String, String) {
    let (s, body) = create(
        client,
        srv,
        owner,
        json!({"name": name, "container_image": "busybox", "autostart": true}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let id = body["data"]["id"].as_str().expect("id").to_string();
    let (s, body) = call(
        client,
        srv,
        &owner.token,
        Method::POST,
        "/api/v1/proxy/aliases",
        Some(json!({"container_id": id, "alias": "hooked", "program": "http", "port": 80})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let local = format!("127.0.0.1:{}", srv.proxy_port);
    until(&local, "/cgi-bin/env", "container answers", |s, _| s == 200).await;
    open_document(client, srv, &owner.token, &id).await;
    (id, local)
}

/// `hoody-api dataplane --control` on a free port, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(srv: &Server, state_dir: &Path) -> Node {
        let out = Command::new(binary())
            .args([
                "admin",
                "create-node-token",
                "--name",
                "hooks-node",
                "--data-dir",
            ])
            .arg(&srv.data_dir)
            .env("HOODY_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("admin create-node-token");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let made: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let token = made["token"].as_str().expect("token");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(binary())
            .arg("dataplane")
            .args(["--control", &srv.api, "--token", token])
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--workers", "1", "--access-log", "off"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        Node { child, addr }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_placed_through_the_api_runs_in_the_proxy_and_on_remote_nodes() {
    let srv = server(BRIDGE);
    let client = client();
    let owner = tenant(&client, &srv, "hooks@example.com").await;
    let (id, local) = served_container(&client, &srv, &owner, "hooked").await;

    // The module store, then a hook on `http` for the CGI paths only.
    let wasm = std::fs::read(common::hook_example("add_header")).expect("example");
    let (s, body) = upload_module(
        &client,
        &srv,
        &owner.token,
        &id,
        "tagger",
        "application/wasm",
        wasm,
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/proxy/hooks/http"),
        Some(json!({
            "match": {"path": "/cgi-bin/**"},
            "script": {"path": "tagger", "config": "from-api"},
            "timeout": 200,
        })),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let hook_id = body["data"]["hook"]["id"]
        .as_str()
        .expect("hook id")
        .to_string();

    // Applied before the API answered: the very next request is hooked. The
    // container's CGI sees the request header; the client sees the response one.
    let (status, text) = get_via(&local, "/cgi-bin/env");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("HTTP_X_HOOK=from-api"), "{text}");
    assert_eq!(
        header_value(&text, "x-hook-response"),
        Some("from-api"),
        "{text}"
    );
    // Outside the hook's path glob nothing is added.
    let (_, text) = get_via(&local, "/");
    assert_eq!(header_value(&text, "x-hook-response"), None, "{text}");

    // Every port of the container answers on its capability hostname, not
    // only the ports its unit lists, and runs the program-wide hooks too.
    let started = exec(
        &srv.data_dir,
        &id,
        "mkdir -p /tmp/p3000 && echo port-3000 > /tmp/p3000/index.html && httpd -p 3000 -h /tmp/p3000",
    );
    assert_eq!(started.code, 0, "{}", started.stderr);
    let port_host = format!("{}-{id}-http-3000.local.localhost", owner.project);
    let (status, text) = try_get_host(&local, &port_host, "/index.html").expect("proxy");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("port-3000"), "{text}");
    let (_, text) = try_get_host(&local, &port_host, "/cgi-bin/none").expect("proxy");
    assert_eq!(
        header_value(&text, "x-hook-response"),
        Some("from-api"),
        "{text}"
    );
    let unknown = format!(
        "{}-{}-http-3000.local.localhost",
        owner.project,
        "0".repeat(24)
    );
    let (status, _) = try_get_host(&local, &unknown, "/").expect("proxy");
    assert_eq!(status, 404);

    // A module a hook runs cannot be deleted.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}/proxy/modules/tagger"),
        None,
    )
    .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["code"], "MODULE_IN_USE");

    // A remote node gets the unit and fetches the module by content.
    let state = common::TempDir::new("hooks-node");
    let node = Node::start(&srv, state.0.as_path());
    let remote = node.addr.to_string();
    let text = until(
        &remote,
        "/cgi-bin/env",
        "remote node runs the hook",
        |s, t| s == 200 && t.contains("HTTP_X_HOOK=from-api"),
    )
    .await;
    assert_eq!(
        header_value(&text, "x-hook-response"),
        Some("from-api"),
        "{text}"
    );
    let fetched = std::fs::read_dir(state.0.as_path().join("modules"))
        .expect("module cache")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wasm"))
        .count();
    assert_eq!(fetched, 1);

    // Removing the hook stops it on both; then the module can go.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}/proxy/hooks/http/{hook_id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (_, text) = get_via(&local, "/cgi-bin/env");
    assert!(!text.contains("HTTP_X_HOOK"), "{text}");
    until(
        &remote,
        "/cgi-bin/env",
        "remote node drops the hook",
        |s, t| s == 200 && !t.contains("HTTP_X_HOOK"),
    )
    .await;
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}/proxy/modules/tagger"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    drop(node);
    delete_clean(&client, &srv, &owner, &id, BRIDGE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_stuck_in_a_loop_answers_504_and_fail_open_forwards() {
    let srv = server(BRIDGE + 1);
    let client = client();
    let owner = tenant(&client, &srv, "loops@example.com").await;
    let (id, local) = served_container(&client, &srv, &owner, "looping").await;

    // A guest that never returns from its request-headers callback.
    let spin = hook_engine::wat_to_wasm(
        r#"(module
          (memory (export "memory") 1)
          (func (export "proxy_abi_version_0_2_1"))
          (func (export "malloc") (param i32) (result i32) (i32.const 1024))
          (func (export "proxy_on_context_create") (param i32 i32))
          (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
            (loop $forever (br $forever))
            (i32.const 0)))"#,
    )
    .expect("wat");
    let (s, body) = upload_module(
        &client,
        &srv,
        &owner.token,
        &id,
        "spin",
        "application/wasm",
        spin,
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let hooks = format!("/api/v1/containers/{id}/proxy/hooks/http");
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        &hooks,
        Some(json!({"match": {"path": "/cgi-bin/**"}, "script": {"path": "spin"}, "timeout": 100})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let hook_id = body["data"]["hook"]["id"]
        .as_str()
        .expect("hook id")
        .to_string();
    let (status, text) = get_via(&local, "/cgi-bin/env");
    assert_eq!(status, 504, "fail-closed by default\n{text}");
    assert!(text.contains("HOOK_TIMEOUT"), "{text}");
    // Requests the hook does not match keep flowing meanwhile.
    let (status, _) = get_via(&local, "/");
    assert_ne!(status, 504);

    // The same hook, fail-open: the request reaches the container.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PUT,
        &format!("{hooks}/{hook_id}"),
        Some(json!({
            "match": {"path": "/cgi-bin/**"}, "script": {"path": "spin"},
            "timeout": 100, "failure_mode": "fail-open",
        })),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (status, text) = get_via(&local, "/cgi-bin/env");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("GATEWAY_INTERFACE=CGI"), "{text}");
    delete_clean(&client, &srv, &owner, &id, BRIDGE + 1).await;
}
