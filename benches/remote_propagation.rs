//! Write → enforced on a remote node: starts `hoody-api serve` (its runtime
//! on bridge `hct141`, `10.214.141.0/24`) and one `hoody-api dataplane
//! --control` node; a tenant creates a (stopped) busybox container and an
//! alias to it, then makes 100 changes through the REST API, flipping the
//! alias with `proxyAliases.setState`, and after each requests the alias
//! through the node until it answers with the new state (enabled: 503,
//! the container is not running; disabled: 404). Prints p50 / p90 / p99 /
//! max of write start → first answer of the node showing the new state.
//!
//! `cargo bench --bench remote_propagation` (needs root, runc and
//! busybox-static, like the container tests). Not criterion: each sample is
//! a whole round trip across three processes, and what matters is the tail
//! over a fixed number of changes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHANGES: usize = 100;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One admin operation over the server's admin socket.
fn admin(data_dir: &Path, op: &serde_json::Value) {
    let mut s = UnixStream::connect(data_dir.join("admin.sock")).expect("admin socket");
    let body = op.to_string();
    let req = format!(
        "POST /admin HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("admin write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "admin failed: {out}");
}

/// The status the node answers for `host`, or 0 when it cannot be reached.
fn through_node(node: SocketAddr, host: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(node) else {
        return 0;
    };
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// One API call; panics unless it answers `want`. Returns the `data` field.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: serde_json::Value,
    want: u16,
) -> serde_json::Value {
    let mut req = client.request(method, &url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("API request");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(status, want, "{url}: {body}");
    body["data"].clone()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that excludes us skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| a != "--bench" && !"remote_propagation".contains(&a))
    {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_hoody-api");
    let dir: PathBuf =
        std::env::temp_dir().join(format!("hoody-bench-remote-{}", std::process::id()));
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let _ = Command::new("ip")
        .args(["link", "del", "hct141"])
        .stderr(Stdio::null())
        .status();
    let server = Killed(
        Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(&data_dir)
            .args(["--api-listen", &api.to_string()])
            .args([
                "--runtime-bridge",
                "hct141",
                "--runtime-subnet",
                "10.214.141.0/24",
            ])
            .args(["--proxy-listen", &format!("127.0.0.1:{}", free_port())])
            .env("HOODY_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve"),
    );
    wait_for(api);
    let token = Command::new(bin)
        .args([
            "admin",
            "create-node-token",
            "--name",
            "bench",
            "--data-dir",
        ])
        .arg(&data_dir)
        .output()
        .expect("create-node-token");
    let token: serde_json::Value = serde_json::from_slice(&token.stdout).expect("token JSON");
    let node: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let node_process = Killed(
        Command::new(bin)
            .args(["dataplane", "--control", &format!("http://{api}")])
            .args(["--token", token["token"].as_str().expect("token")])
            .args([
                "--listen",
                &node.to_string(),
                "--workers",
                "1",
                "--access-log",
                "off",
            ])
            .arg("--state-dir")
            .arg(dir.join("node"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node"),
    );
    wait_for(node);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let samples = rt.block_on(flip_alias(&data_dir, api, node));
    let mut samples = samples;
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "remote_propagation: {CHANGES} proxyAliases.setState writes -> enforced on a remote node: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.90).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
    drop(node_process);
    drop(server);
    let _ = Command::new("ip")
        .args(["link", "del", "hct141"])
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tenant, a stopped container and an alias; then `CHANGES` alias flips,
/// each timed until the node answers with the new state.
async fn flip_alias(data_dir: &Path, api: SocketAddr, node: SocketAddr) -> Vec<Duration> {
    use reqwest::Method;
    let (email, password) = ("bench@example.test", "Correct-Horse-9!");
    admin(
        data_dir,
        &serde_json::json!({"op": "create-user", "email": email, "password": password, "admin": false}),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let base = format!("http://{api}/api/v1");
    let login = call(
        &client,
        Method::POST,
        format!("{base}/users/auth/login"),
        None,
        serde_json::json!({"email": email, "password": password}),
        200,
    )
    .await;
    let jwt = login["token"].as_str().expect("token").to_string();
    let token = Some(jwt.as_str());
    let projects = client
        .get(format!("{base}/projects/"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("projects")
        .json::<serde_json::Value>()
        .await
        .expect("projects JSON");
    let project = projects["data"]["projects"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["is_default"] == true))
        .and_then(|p| p["id"].as_str())
        .expect("default project")
        .to_string();
    let container = call(
        &client,
        Method::POST,
        format!("{base}/projects/{project}/containers"),
        token,
        serde_json::json!({"name": "bench", "container_image": "busybox", "autostart": false,
                           "server_id": control::servers::model::node_server_id("local")}),
        201,
    )
    .await;
    let alias = call(
        &client,
        Method::POST,
        format!("{base}/proxy/aliases"),
        token,
        serde_json::json!({"container_id": container["id"], "alias": "bench", "program": "http", "port": 80}),
        201,
    )
    .await;
    let state_url = format!(
        "{base}/proxy/aliases/{}/state",
        alias["id"].as_str().expect("alias id")
    );
    let host = "bench.local.localhost";
    while through_node(node, host) != 503 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut samples = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let enabled = i % 2 == 1;
        let want = if enabled { 503 } else { 404 };
        let started = Instant::now();
        call(
            &client,
            Method::PATCH,
            state_url.clone(),
            token,
            serde_json::json!({"enabled": enabled}),
            200,
        )
        .await;
        while through_node(node, host) != want {}
        samples.push(started.elapsed());
    }
    // Leave no container behind on the host.
    call(
        &client,
        Method::DELETE,
        format!(
            "{base}/containers/{}",
            container["id"].as_str().expect("id")
        ),
        token,
        serde_json::json!({}),
        200,
    )
    .await;
    samples
}
