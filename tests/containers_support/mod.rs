//! Helpers for the container end-to-end tests (`tests/containers_*.rs`):
//! a server on its own bridge, tenants, API calls, and checks on the host
//! resources the runtime leaves behind. Each test file picks bridge numbers
//! of its own (`hct<n>`, subnet `10.214.<n>.0/24`, cgroup parent
//! `hoody-hct<n>`) so files and tests run in parallel.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{admin_create_user, login, Server};

/// A server whose runtime uses bridge `hct<n>` on `10.214.<n>.0/24`.
pub fn server(n: u8) -> Server {
    cleanup_bridge(n);
    Server::start_with(&[
        "--runtime-bridge",
        &format!("hct{n}"),
        "--runtime-subnet",
        &format!("10.214.{n}.0/24"),
    ])
}

pub fn cleanup_bridge(n: u8) {
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &format!("hct{n}")])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The cgroup parent of the runtime of `server(n)`.
pub fn cgroup_parent(n: u8) -> String {
    format!("hoody-hct{n}")
}

pub fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

pub async fn call(
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
        .timeout(Duration::from_secs(120));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub struct Tenant {
    pub token: String,
    pub project: String,
}

pub async fn tenant(client: &Client, srv: &Server, email: &str) -> Tenant {
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
    Tenant { token, project }
}

pub fn server_id() -> String {
    control::servers::model::node_server_id("local")
}

pub async fn create(client: &Client, srv: &Server, t: &Tenant, body: Value) -> (StatusCode, Value) {
    let mut body = body;
    body["server_id"] = json!(server_id());
    call(
        client,
        srv,
        &t.token,
        Method::POST,
        &format!("/api/v1/projects/{}/containers", t.project),
        Some(body),
    )
    .await
}

/// Creates a stopped busybox container named `name` and returns its id.
pub async fn create_stopped(client: &Client, srv: &Server, t: &Tenant, name: &str) -> String {
    let (s, body) = create(
        client,
        srv,
        t,
        json!({"name": name, "container_image": "busybox", "autostart": false}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

pub async fn manage(
    client: &Client,
    srv: &Server,
    t: &Tenant,
    id: &str,
    op: &str,
) -> (StatusCode, Value) {
    call(
        client,
        srv,
        &t.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/{op}"),
        None,
    )
    .await
}

/// Runs `op` and expects the container to end up in `status`.
pub async fn manage_ok(
    client: &Client,
    srv: &Server,
    t: &Tenant,
    id: &str,
    op: &str,
    status: &str,
) {
    let (s, body) = manage(client, srv, t, id, op).await;
    assert_eq!(s, 200, "{op}: {body}");
    assert_eq!(body["data"]["status"], status, "{op}: {body}");
}

pub async fn address(client: &Client, srv: &Server, t: &Tenant, id: &str) -> String {
    let (s, body) = call(
        client,
        srv,
        &t.token,
        Method::GET,
        &format!("/api/v1/containers/{id}/stats"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["data"]["network"][0]["addresses"][0]["address"]
        .as_str()
        .expect("address in stats")
        .to_string()
}

/// GET `http://<ip><path>` once the container's httpd answers.
pub async fn container_get(ip: &str, path: &str) -> String {
    let client = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.get(format!("http://{ip}{path}")).send().await {
            Ok(r) if r.status().is_success() => return r.text().await.unwrap(),
            other if Instant::now() > deadline => panic!("{ip}{path}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What a command run inside a container printed, and how it ended.
#[derive(Debug)]
pub struct Exec {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sh -c script` inside a running container with the server's runc,
/// so it sees exactly the container's mounts and network.
pub fn exec(data: &Path, id: &str, script: &str) -> Exec {
    let root = data.join("runtime/runc");
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["exec", id, "sh", "-c", script])
        .output()
        .expect("runc exec");
    Exec {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The runtime's record of a container: names every host resource.
pub fn runtime_record(data: &Path, id: &str) -> Value {
    let path = data
        .join("runtime/containers")
        .join(id)
        .join("container.json");
    serde_json::from_slice(&std::fs::read(&path).expect("container.json")).expect("record JSON")
}

pub fn upper(data: &Path, id: &str) -> PathBuf {
    data.join("runtime/containers").join(id).join("upper")
}

/// Writes a file into the stopped container's writable layer.
pub fn write_file(data: &Path, id: &str, rel: &str, text: &str) {
    let path = upper(data, id).join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Event types recorded for the caller (the latest 100).
pub async fn event_types(client: &Client, srv: &Server, t: &Tenant, query: &str) -> Vec<String> {
    let (s, body) = call(
        client,
        srv,
        &t.token,
        Method::GET,
        &format!("/api/v1/events?limit=100&{query}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["data"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Asserts that a deleted container left no runc state, mounts, container
/// directory, cgroups, veth or network namespace.
pub async fn assert_nothing_left(data: &Path, record: &Value, id: &str, cgroup_parent: &str) {
    assert!(
        !data.join("runtime/runc").join(id).exists(),
        "runc state left"
    );
    let dir = data.join("runtime/containers").join(id);
    assert!(
        runtime::inspect::mounts_under(&dir).unwrap().is_empty(),
        "mounts left"
    );
    assert!(!dir.exists(), "container directory left");
    let cgroup = runtime::inspect::cgroup_path(cgroup_parent, id);
    assert!(
        runtime::inspect::cgroup_dirs(&cgroup).is_empty(),
        "cgroups left"
    );
    let veth = record["network"]["host_veth"].as_str().unwrap();
    assert!(
        !runtime::inspect::interface_exists(veth).await.unwrap(),
        "veth {veth} left"
    );
    let netns = record["network"]["netns"].as_str().unwrap();
    assert!(!Path::new("/run/netns").join(netns).exists(), "netns left");
}

/// Stops (if needed) and deletes a container through the API, then checks
/// that it left nothing behind on the host.
pub async fn delete_clean(client: &Client, srv: &Server, t: &Tenant, id: &str, n: u8) {
    let record = runtime_record(&srv.data_dir, id);
    let (s, body) = call(
        client,
        srv,
        &t.token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_nothing_left(&srv.data_dir, &record, id, &cgroup_parent(n)).await;
}

/// `PUT /api/v1/containers/{id}/proxy/modules/{name}` with `bytes` as
/// `content_type` (the module store wants `application/wasm`).
pub async fn upload_module(
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
        .expect("upload");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}
