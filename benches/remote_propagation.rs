//! Write → enforced on a remote node: starts `hoody-api serve` and one
//! `hoody-api dataplane --control` node, then makes 100 routing changes
//! (flipping `bench.test` between two upstreams with the admin
//! `set-static-routes` operation on the server's admin socket) and, after
//! each, requests `bench.test` through the node until it answers from the
//! new upstream. Prints p50 / p90 / p99 / max of write start → first
//! request the node answers from the new upstream.
//!
//! `cargo bench --bench remote_propagation` (needs root, like `serve`).
//! Not criterion: each sample is a whole round trip across three processes,
//! and what matters is the tail over a fixed number of changes.

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

/// An upstream answering every request with `name`.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    while let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..i + 4);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                            name.len()
                        );
                        if s.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
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

/// The body the node answers for `bench.test`, or "" when it does not route it.
fn through_node(node: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(node) else {
        return String::new();
    };
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    if !out.starts_with("HTTP/1.1 200") {
        return String::new();
    }
    out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

fn routes(upstream: SocketAddr) -> serde_json::Value {
    serde_json::json!({"op": "set-static-routes", "routes": {"routes": [
        {"host": "bench.test", "upstream": format!("http://{upstream}")}
    ]}})
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
    let _server = Killed(
        Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(&data_dir)
            .args(["--api-listen", &api.to_string()])
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
    let _node = Killed(
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
    let upstreams = [(backend("A"), "A"), (backend("B"), "B")];
    admin(&data_dir, &routes(upstreams[1].0));
    while through_node(node) != "B" {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut samples = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let (upstream, name) = upstreams[i % 2];
        let started = Instant::now();
        admin(&data_dir, &routes(upstream));
        while through_node(node) != name {}
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "remote_propagation: {CHANGES} changes, write -> enforced on a remote node: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.90).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
