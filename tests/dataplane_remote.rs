//! Remote data-plane nodes end to end: one `hoody-api serve` feeds two
//! `hoody-api dataplane --control` processes over the config stream.
//! Changes are made through a tenant's proxy document API on a real
//! busybox container (runc, bridge `hct140` on `10.214.140.0/24`, so this
//! needs root), and with `hoody-api admin set-static-routes`, which
//! publishes through the same `Publisher` as every routing change.
//!
//! Waits poll for an outcome with a generous deadline; nothing asserts on
//! how long an outcome took.

mod common;
mod containers_support;
mod dataplane_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{admin_create_user, basic, binary, login, Server, TempDir};
use containers_support as cs;
use dataplane_support::{get, wait_for_port, Backend};
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-9-battery";

/// Runs `hoody-api admin ARGS --data-dir DIR` and returns its JSON output.
fn admin(data_dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(binary())
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("HOODY_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run admin");
    assert!(
        out.status.success(),
        "admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("admin prints JSON")
}

fn create_node_token(data_dir: &Path, name: &str) -> String {
    let made = admin(data_dir, &["create-node-token", "--name", name]);
    assert_eq!(made["name"], name);
    made["token"].as_str().expect("token printed").to_string()
}

/// Replaces the static routes: `host -> backend` pairs.
fn set_routes(data_dir: &Path, scratch: &Path, routes: Value) -> Value {
    let file = scratch.join("routes.json");
    std::fs::write(&file, routes.to_string()).expect("write routes");
    admin(
        data_dir,
        &["set-static-routes", file.to_str().expect("path")],
    )
}

fn route(host: &str, backend: &Backend) -> Value {
    json!({"host": host, "upstream": backend.url()})
}

/// A `hoody-api dataplane --control` process, killed when dropped.
struct Node {
    child: Option<Child>,
    addr: SocketAddr,
    state_dir: PathBuf,
    control: String,
    token: String,
}

impl Node {
    fn start(control: &str, token: &str, state_dir: PathBuf) -> Node {
        let port = dataplane_support::free_port();
        let mut node = Node {
            child: None,
            addr: format!("127.0.0.1:{port}").parse().expect("addr"),
            state_dir,
            control: control.to_string(),
            token: token.to_string(),
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let child = Command::new(binary())
            .arg("dataplane")
            .args(["--control", &self.control, "--token", &self.token])
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--workers", "1", "--access-log", "off"])
            .args(["--keepalive-ms", "500"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        self.child = Some(child);
        wait_for_port(self.addr);
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (status, whole response) for `GET path` on `host` with extra header
    /// lines (each ending in CRLF).
    fn request(&self, host: &str, path: &str, headers: &str) -> (u16, String) {
        get(self.addr, host, path, headers)
    }

    /// (status, backend name or "") for `host`.
    fn fetch(&self, host: &str) -> (u16, String) {
        let (status, text) = get(self.addr, host, "/", "");
        let backend = text
            .split("\"backend\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
            .to_string();
        (status, backend)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls until `check` holds; panics with `what` after 30 s.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

fn wait_served(node: &Node, host: &str, backend: &str) {
    wait_until(
        &format!("{} serves {host} from {backend}", node.addr),
        || node.fetch(host) == (200, backend.to_string()),
    );
}

fn metrics(server: &Server) -> String {
    common::raw_get(&format!("127.0.0.1:{}", server.api_port), "/metrics").unwrap_or_default()
}

/// The value of `series{node="name",...}` on the control plane's /metrics.
fn node_metric(text: &str, series: &str, node: &str) -> Option<f64> {
    let prefix = format!("{series}{{node=\"{node}\"");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn published_version(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("hoody_config_published_version "))
        .and_then(|v| v.parse().ok())
}

#[test]
fn an_admin_write_is_on_disk_when_it_answers() {
    let mut server = Server::start();
    let names = ["edge-a", "edge-b", "edge-c"];
    for name in names {
        create_node_token(&server.data_dir, name);
    }
    // Killed right away, within the store's own flush interval.
    server.kill9();
    server.spawn();
    let listed = admin(&server.data_dir, &["list-node-tokens"]);
    let mut kept: Vec<&str> = listed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    kept.sort_unstable();
    assert_eq!(kept, names, "{listed}");
}

#[test]
fn two_nodes_follow_the_control_plane_and_outlive_it() {
    let scratch = TempDir::new("remote");
    let a = Backend::start("A");
    let b = Backend::start("B");
    let mut server = Server::start();
    let token1 = create_node_token(&server.data_dir, "edge-1");
    let token2 = create_node_token(&server.data_dir, "edge-2");
    let control = server.api.clone();
    let mut n1 = Node::start(&control, &token1, scratch.path().join("n1"));
    let n2 = Node::start(&control, &token2, scratch.path().join("n2"));

    // A change published on the control plane reaches both nodes.
    set_routes(
        &server.data_dir,
        scratch.path(),
        json!({"routes": [route("app.test", &a)]}),
    );
    wait_served(&n1, "app.test", "A");
    wait_served(&n2, "app.test", "A");
    let out = set_routes(
        &server.data_dir,
        scratch.path(),
        json!({"routes": [route("app.test", &b), route("docs.test", &a)]}),
    );
    wait_served(&n1, "app.test", "B");
    wait_served(&n2, "app.test", "B");
    wait_served(&n2, "docs.test", "A");

    // Policy travels too: a proxy document with default deny is enforced.
    let mut locked = route("app.test", &b);
    locked["proxy"] = json!({"default": "deny"});
    let out2 = set_routes(
        &server.data_dir,
        scratch.path(),
        json!({"routes": [locked, route("docs.test", &a)]}),
    );
    assert!(out2["version"].as_u64() > out["version"].as_u64());
    for n in [&n1, &n2] {
        wait_until("the deny policy reaches the node", || {
            n.fetch("app.test").0 == 403
        });
    }

    // Both nodes acknowledge the published version (and so wrote it to disk).
    wait_until("both nodes acknowledge the published version", || {
        let text = metrics(&server);
        let published = published_version(&text);
        published.is_some()
            && ["edge-1", "edge-2"].iter().all(|n| {
                node_metric(&text, "hoody_node_acked_version", n) == published
                    && node_metric(&text, "hoody_node_connected", n) == Some(1.0)
            })
    });
    let listed = admin(&server.data_dir, &["list-node-tokens"]);
    let nodes = listed["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        assert_eq!(
            n["status"]["acked_version"], listed["published_version"],
            "{listed}"
        );
        assert!(n.get("token").is_none() && n.get("token_hash").is_none());
    }

    // The control plane dies: both nodes keep serving the last snapshot.
    let held = server.kill9_keeping_ports();
    for n in [&n1, &n2] {
        assert_eq!(n.fetch("app.test").0, 403);
        assert_eq!(n.fetch("docs.test"), (200, "A".to_string()));
    }

    // A node restarted while the control plane is down serves from disk.
    n1.kill9();
    n1.spawn();
    assert_eq!(n1.fetch("app.test").0, 403);
    assert_eq!(n1.fetch("docs.test"), (200, "A".to_string()));

    // A change made while the control plane is down (offline admin on its
    // store) reaches both nodes once it is back.
    set_routes(
        &server.data_dir,
        scratch.path(),
        json!({"routes": [route("app.test", &a), route("new.test", &b)]}),
    );
    assert_eq!(
        n2.fetch("app.test").0,
        403,
        "nothing changes before the restart"
    );
    server.restart_on(held);
    for n in [&n1, &n2] {
        wait_served(n, "app.test", "A");
        wait_served(n, "new.test", "B");
        wait_until("the removed route is gone", || {
            n.fetch("docs.test").0 == 404
        });
    }
}

/// Bridge of the container test below (`hct140`, `10.214.140.0/24`).
const BRIDGE: u8 = 140;

/// A tenant's API call on the (current) control plane; the tenant's JWT
/// outlives a control-plane restart (same data directory, same keys).
async fn tenant_call(
    client: &reqwest::Client,
    server: &Server,
    t: &cs::Tenant,
    method: Method,
    path: &str,
    body: Value,
) -> Value {
    let (s, b) = cs::call(client, server, &t.token, method, path, Some(body)).await;
    assert_eq!(s, 200, "{path}: {b}");
    b
}

/// Every node answers `GET /cgi-bin/env` on `host` with `status` (and, for
/// 200, with the container's CGI environment) for the given header lines.
fn wait_enforced(nodes: &[&Node], host: &str, headers: &str, status: u16, what: &str) {
    for n in nodes {
        wait_until(&format!("{}: {what}", n.addr), || {
            let (got, text) = n.request(host, "/cgi-bin/env", headers);
            got == status && (status != 200 || text.contains("GATEWAY_INTERFACE=CGI"))
        });
    }
}

/// The scenario through the tenant API: a password group and
/// `default: deny` written with `proxyPermissionsContainer.*` reach two
/// remote nodes, which keep enforcing the last snapshot while the control
/// plane is dead (and across a node restart) and catch up with a change
/// made after it comes back. The owner's container claim passes on both
/// nodes with the key the snapshot brought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_document_writes_reach_two_nodes_and_outlive_the_control_plane() {
    let scratch = TempDir::new("remote-doc");
    let mut server = cs::server(BRIDGE);
    let client = cs::client();
    let owner = cs::tenant(&client, &server, "edge-owner@example.com").await;
    let (s, body) = cs::create(
        &client,
        &server,
        &owner,
        json!({"name": "web", "container_image": "busybox", "autostart": true}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let id = body["data"]["id"].as_str().expect("id").to_string();
    let (s, body) = cs::call(
        &client,
        &server,
        &owner.token,
        Method::POST,
        "/api/v1/proxy/aliases",
        Some(json!({"container_id": id, "alias": "edgeweb", "program": "http", "port": 80})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let host = "edgeweb.local.localhost";

    let token1 = create_node_token(&server.data_dir, "doc-edge-1");
    let token2 = create_node_token(&server.data_dir, "doc-edge-2");
    let control = server.api.clone();
    let mut n1 = Node::start(&control, &token1, scratch.path().join("n1"));
    let n2 = Node::start(&control, &token2, scratch.path().join("n2"));

    // No document yet: both nodes route the alias to the container (the
    // nodes run on this host, so the bridge address is reachable).
    wait_enforced(&[&n1, &n2], host, "", 200, "open before any document");

    // A password group allowed on http, everyone else denied.
    let doc = format!("/api/v1/containers/{id}/proxy/permissions");
    for (method, path, body) in [
        (
            Method::PUT,
            format!("{doc}/groups/team/password"),
            json!({"username": "alice", "password": "s3cret", "salt": "pepper"}),
        ),
        (
            Method::PUT,
            format!("{doc}/permissions/team"),
            json!({"program": "http", "access": true}),
        ),
        (
            Method::PATCH,
            format!("{doc}/default"),
            json!({"default": "deny"}),
        ),
    ] {
        tenant_call(&client, &server, &owner, method, &path, body).await;
    }
    let alice = basic("alice", "s3cret");
    wait_enforced(&[&n1, &n2], host, "", 401, "default deny reaches the node");
    for n in [&n1, &n2] {
        let (status, text) = n.request(host, "/cgi-bin/env", "");
        assert_eq!(status, 401, "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{text}"
        );
        let (status, text) = n.request(host, "/cgi-bin/env", &alice);
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("GATEWAY_INTERFACE=CGI"), "{text}");
        let (status, _) = n.request(host, "/cgi-bin/env", &basic("alice", "wrong"));
        assert_eq!(status, 401);
    }

    // The owner's claim (`containers.authorize`) passes on both nodes, in
    // the header or the cookie: the key came with the snapshot, no flag.
    let (s, body) = cs::call(
        &client,
        &server,
        &owner.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/authorize"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let c = &body["data"]["container_claim"];
    let claim = format!(
        "{}.{}",
        c["payload_b64"].as_str().expect("payload"),
        c["signature_hex"].as_str().expect("signature")
    );
    let claim_header = format!("X-Hoody-Container-Claim: {claim}\r\n");
    for n in [&n1, &n2] {
        let (status, text) = n.request(host, "/cgi-bin/env", &claim_header);
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("GATEWAY_INTERFACE=CGI"), "{text}");
        let cookie = format!("Cookie: hoody_container_claim={claim}\r\n");
        assert_eq!(n.request(host, "/cgi-bin/env", &cookie).0, 200);
        let tampered = format!("X-Hoody-Container-Claim: {claim}00\r\n");
        assert_eq!(n.request(host, "/cgi-bin/env", &tampered).0, 401);
    }

    // The control plane dies: both nodes keep enforcing the last snapshot.
    let held = server.kill9_keeping_ports();
    for n in [&n1, &n2] {
        assert_eq!(n.request(host, "/cgi-bin/env", "").0, 401);
        let (status, text) = n.request(host, "/cgi-bin/env", &alice);
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("GATEWAY_INTERFACE=CGI"), "{text}");
    }
    // ... and so does a node restarted meanwhile, from its state directory.
    n1.kill9();
    n1.spawn();
    assert_eq!(n1.request(host, "/cgi-bin/env", "").0, 401);
    assert_eq!(n1.request(host, "/cgi-bin/env", &alice).0, 200);
    // The claim key was saved with the snapshot.
    assert_eq!(n1.request(host, "/cgi-bin/env", &claim_header).0, 200);

    // Back on the same address: a new write reaches both nodes.
    server.restart_on(held);
    tenant_call(
        &client,
        &server,
        &owner,
        Method::PATCH,
        &format!("{doc}/default"),
        json!({"default": "allow"}),
    )
    .await;
    wait_enforced(
        &[&n1, &n2],
        host,
        "",
        200,
        "default allow after the restart",
    );

    // And one more, so the catch-up is not a lucky snapshot: the proxy
    // disabled is a 503 even with the right credentials.
    tenant_call(
        &client,
        &server,
        &owner,
        Method::PATCH,
        &format!("{doc}/state"),
        json!({"enable_proxy": false}),
    )
    .await;
    wait_enforced(&[&n1, &n2], host, &alice, 503, "proxy disabled");

    // Deleting the container removes its routes from both nodes.
    let (s, body) = cs::call(
        &client,
        &server,
        &owner.token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    for n in [&n1, &n2] {
        wait_until("the deleted container's alias is gone", || {
            n.request(host, "/", "").0 == 404
        });
    }
}

fn stream_url(server: &Server) -> String {
    server.url("/api/v1/nodes/config/stream")
}

async fn assert_refused(resp: reqwest::Response) {
    assert_eq!(resp.status(), 401);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json")));
    let body: Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["statusCode"], 401);
    assert_eq!(body["code"], "INVALID_NODE_TOKEN");
}

#[tokio::test]
async fn only_a_node_token_opens_the_node_endpoints() {
    let mut server = Server::start();
    server.stop();
    admin_create_user(&server.data_dir, "alice@example.com", PASSWORD, false);
    server.spawn();
    let client = reqwest::Client::new();
    let jwt = login(&client, &server, "alice@example.com", PASSWORD).await;
    let resp = client
        .post(server.url("/api/v1/auth/tokens"))
        .bearer_auth(&jwt)
        .json(&json!({"alias": "ci"}))
        .send()
        .await
        .expect("create API token");
    assert_eq!(resp.status(), 201);
    let api_token = resp.json::<Value>().await.expect("JSON")["data"]["token"]
        .as_str()
        .expect("token")
        .to_string();

    // No credential, a wrong node token, a user's JWT, a user's API token.
    assert_refused(client.get(stream_url(&server)).send().await.expect("req")).await;
    let wrong = format!("hdyn_{}", "0".repeat(64));
    for bad in [wrong.as_str(), &jwt, &api_token] {
        let resp = client
            .get(stream_url(&server))
            .bearer_auth(bad)
            .send()
            .await
            .expect("req");
        assert_refused(resp).await;
        let resp = client
            .post(server.url("/api/v1/nodes/ack"))
            .bearer_auth(bad)
            .json(&json!({"version": 1}))
            .send()
            .await
            .expect("req");
        assert_refused(resp).await;
    }

    // A node token opens the stream: the first line is a snapshot.
    let token = create_node_token(&server.data_dir, "edge-9");
    let mut resp = client
        .get(stream_url(&server))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    let mut line = Vec::new();
    while !line.contains(&b'\n') {
        let chunk = resp.chunk().await.expect("read").expect("stream open");
        line.extend_from_slice(&chunk);
    }
    let end = line.iter().position(|&b| b == b'\n').expect("newline");
    let first: Value = serde_json::from_slice(&line[..end]).expect("JSON frame");
    assert_eq!(first["type"], "snapshot", "{first}");
    assert!(first["snapshot"]["units"].is_array());
    drop(resp);

    // The user pipeline's budget does not apply to nodes.
    let resp = client
        .post(server.url("/api/v1/nodes/ack"))
        .bearer_auth(&token)
        .json(&json!({"version": 0}))
        .send()
        .await
        .expect("ack");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-ratelimit-limit").is_none());

    // Revoked: refused from then on.
    let listed = admin(&server.data_dir, &["list-node-tokens"]);
    let id = listed["nodes"][0]["id"].as_str().expect("id").to_string();
    admin(&server.data_dir, &["revoke-node-token", &id]);
    let resp = client
        .get(stream_url(&server))
        .bearer_auth(&token)
        .send()
        .await
        .expect("req");
    assert_refused(resp).await;
}

#[tokio::test]
async fn bad_stream_and_module_requests_are_400_and_404() {
    let server = Server::start();
    let token = create_node_token(&server.data_dir, "edge-3");
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}?keepalive_ms=5", stream_url(&server)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("JSON");
    assert!(body["details"]["keepalive_ms"].is_string(), "{body}");

    let resp = client
        .get(server.url("/api/v1/nodes/modules/NOT-A-HASH"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("JSON");
    assert!(body["details"]["sha256"].is_string(), "{body}");

    let missing = "a".repeat(64);
    let resp = client
        .get(server.url(&format!("/api/v1/nodes/modules/{missing}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 404);
}

#[test]
fn a_bad_static_routes_file_changes_nothing() {
    let scratch = TempDir::new("remote-bad");
    let a = Backend::start("A");
    let server = Server::start();
    set_routes(
        &server.data_dir,
        scratch.path(),
        json!({"routes": [route("ok.test", &a)]}),
    );
    let before = published_version(&metrics(&server));
    let file = scratch.path().join("bad.json");
    std::fs::write(
        &file,
        json!({"routes": [{"host": "x.test", "upstream": "not a url at all"}]}).to_string(),
    )
    .expect("write");
    let out = Command::new(binary())
        .args(["admin", "set-static-routes"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .output()
        .expect("admin");
    assert!(!out.status.success());
    assert_eq!(published_version(&metrics(&server)), before);
    let (status, _) = get(
        format!("127.0.0.1:{}", server.proxy_port)
            .parse()
            .expect("addr"),
        "ok.test",
        "/",
        "",
    );
    assert_eq!(status, 200);
}
