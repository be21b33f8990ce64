//! Runtime benchmark (plain timing harness): create+start latency of a busybox container,
//! and a fleet of containers running at once. Needs root, runc and busybox-static; prints
//! a note and exits 0 elsewhere.
//!
//! cargo bench --bench runtime_start                # latency, 20 rounds
//! cargo bench --bench runtime_start -- fleet 50    # 50 containers at once

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use runtime::{ContainerSpec, NetworkConfig, RuncRuntime, Runtime, RuntimeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config() -> RuntimeConfig {
    let mut config = RuntimeConfig::new(std::env::temp_dir().join("hoody-bench-runtime"));
    config.network = NetworkConfig {
        bridge: "hrtbench".into(),
        subnet: "10.213.200.0/24".parse().expect("subnet"),
        masquerade: false,
    };
    config.cgroup_parent = "hoody-bench".into();
    config.stop_grace = Duration::from_secs(2);
    config
}

fn spec(id: &str) -> ContainerSpec {
    ContainerSpec {
        id: id.into(),
        image: Some("busybox".into()),
        ..Default::default()
    }
}

async fn answers_http(ip: Ipv4Addr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((ip, 80)).await?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await?;
        std::io::Result::Ok(body.starts_with(b"HTTP/1"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

async fn wait_http(ip: Ipv4Addr) -> bool {
    for _ in 0..200 {
        if answers_http(ip).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn latency(rt: &RuncRuntime, rounds: usize) {
    let mut to_running = Vec::new();
    let mut to_http = Vec::new();
    for i in 0..rounds {
        let id = format!("lat{i}");
        let begin = Instant::now();
        rt.create(spec(&id)).await.expect("create");
        let info = rt.start(&id).await.expect("start");
        to_running.push(begin.elapsed());
        assert!(wait_http(info.address).await, "{id} never answered");
        to_http.push(begin.elapsed());
        rt.delete(&id).await.expect("delete");
    }
    to_running.sort();
    to_http.sort();
    println!(
        "create+start (runc running), {rounds} rounds: p50 {:?} p90 {:?} max {:?}",
        percentile(&to_running, 0.5),
        percentile(&to_running, 0.9),
        percentile(&to_running, 1.0)
    );
    println!(
        "create+start until HTTP answers:           p50 {:?} p90 {:?} max {:?}",
        percentile(&to_http, 0.5),
        percentile(&to_http, 0.9),
        percentile(&to_http, 1.0)
    );
}

async fn fleet(rt: &RuncRuntime, count: usize) {
    let rss_before = rss_kib();
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("fleet{i}");
            rt.create(spec(&id)).await.expect("create");
            rt.start(&id).await.expect("start")
        }));
    }
    let mut infos = Vec::new();
    for task in tasks {
        infos.push(task.await.expect("task"));
    }
    let started = begin.elapsed();
    let mut answering = 0;
    for info in &infos {
        if wait_http(info.address).await {
            answering += 1;
        }
    }
    let mut memory = 0;
    for info in &infos {
        memory += rt.stats(&info.id).await.expect("stats").memory.usage;
    }
    println!(
        "fleet: {count} containers created+started concurrently in {started:?}; {answering}/{count} answer HTTP"
    );
    println!(
        "fleet: container memory (cgroups) {} MiB total; harness RSS {} MiB -> {} MiB",
        memory >> 20,
        rss_before >> 10,
        rss_kib() >> 10
    );
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for info in infos {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move { rt.delete(&info.id).await }));
    }
    for task in tasks {
        task.await.expect("task").expect("delete");
    }
    println!("fleet: {count} containers deleted in {:?}", begin.elapsed());
}

#[tokio::main]
async fn main() {
    if nix_is_root() && runtime::check_host().is_ok() {
        let rt = RuncRuntime::open(config()).await.expect("open runtime");
        for leftover in rt.list().await.unwrap_or_default() {
            let _ = rt.delete(&leftover.id).await;
        }
        let args: Vec<String> = std::env::args().collect();
        match args.iter().position(|a| a == "fleet") {
            Some(at) => {
                let count = args.get(at + 1).and_then(|n| n.parse().ok()).unwrap_or(50);
                fleet(&rt, count).await;
            }
            None => latency(&rt, 20).await,
        }
        remove_host_objects(&config()).await;
    } else {
        println!(
            "runtime_start: skipped (needs root and `{}`)",
            runtime::INSTALL_HINT
        );
    }
}

/// Leaves the host as it was: the bridge and the (now empty) cgroup parent go.
async fn remove_host_objects(config: &RuntimeConfig) {
    let _ = tokio::process::Command::new("ip")
        .args(["link", "del", &config.network.bridge])
        .status()
        .await;
    let parent = format!("/{}", config.cgroup_parent);
    for dir in runtime::inspect::cgroup_dirs(&parent) {
        let _ = std::fs::remove_dir(dir);
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
