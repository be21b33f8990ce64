//! Many containers and parallel lifecycle requests through the API of the
//! real binary: whatever order the requests run in, each answer is a clean
//! success or a stable conflict code, the recorded status matches runc, and
//! once everything is deleted no runc state, mount, cgroup, veth, network
//! namespace or address lease is left. Bridge `hct112`.

mod common;
mod containers_support;

use std::sync::Arc;

use containers_support::*;
use reqwest::Method;
use serde_json::Value;

const N: u8 = 112;
const CONTAINERS: usize = 6;
const OPS: &[&str] = &[
    "start",
    "stop",
    "start",
    "restart",
    "pause",
    "resume",
    "force-stop",
    "start",
    "delete",
    "start",
    "stop",
];

/// Codes a request may meet when another request changed the container first.
const RACE_CODES: &[&str] = &[
    "CONTAINER_ALREADY_RUNNING",
    "CONTAINER_NOT_RUNNING",
    "CONTAINER_PAUSED",
    "CONTAINER_BUSY",
    "NOT_FOUND",
];

fn runc_status(data: &std::path::Path, id: &str) -> Option<String> {
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(data.join("runtime/runc"))
        .args(["state", id])
        .output()
        .expect("runc state");
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("runc state JSON");
    v["status"].as_str().map(str::to_string)
}

/// Host interfaces enslaved to the test bridge.
fn bridge_ports() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &format!("hct{N}")])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_lifecycle_requests_end_consistent_without_leaks() {
    let mut srv = server(N);
    let client = client();
    let owner = Arc::new(tenant(&client, &srv, "racer@example.com").await);
    let data = srv.data_dir.clone();

    let mut ids = Vec::new();
    let mut records = Vec::new();
    for i in 0..CONTAINERS {
        let id = create_stopped(&client, &srv, &owner, &format!("racer-{i}")).await;
        records.push(runtime_record(&data, &id));
        ids.push(id);
    }
    let base = srv.api.clone();

    // Every operation on every container at once.
    let mut tasks = Vec::new();
    for id in &ids {
        for op in OPS {
            let (client, owner, id, base) =
                (client.clone(), owner.clone(), id.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let (method, path) = if *op == "delete" {
                    (Method::DELETE, format!("{base}/api/v1/containers/{id}"))
                } else {
                    (Method::POST, format!("{base}/api/v1/containers/{id}/{op}"))
                };
                let resp = client
                    .request(method, path)
                    .bearer_auth(&owner.token)
                    .timeout(std::time::Duration::from_secs(120))
                    .send()
                    .await
                    .expect("request");
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                (op.to_string(), id, status, body)
            }));
        }
    }
    let mut deleted = std::collections::HashSet::new();
    for t in tasks {
        let (op, id, status, body) = t.await.unwrap();
        match status {
            200 => {
                if op == "delete" {
                    deleted.insert(id);
                }
            }
            404 | 409 => {
                let code = body["code"].as_str().unwrap_or_default();
                assert!(RACE_CODES.contains(&code), "{op} {id}: {status} {body}");
            }
            _ => panic!("{op} {id}: unexpected {status} {body}"),
        }
    }
    assert_eq!(deleted.len(), CONTAINERS, "every delete must succeed once");

    // Gone from the API, from runc, and from the host.
    for (id, record) in ids.iter().zip(&records) {
        let (s, b) = call(
            &client,
            &srv,
            &owner.token,
            Method::GET,
            &format!("/api/v1/containers/{id}"),
            None,
        )
        .await;
        assert_eq!(s, 404, "{id}: {b}");
        assert_eq!(runc_status(&data, id), None, "{id} still known to runc");
        assert_nothing_left(&data, record, id, &cgroup_parent(N)).await;
    }
    assert!(
        bridge_ports().is_empty(),
        "veths left: {:?}",
        bridge_ports()
    );
    let leases = std::fs::read_to_string(data.join("runtime/addresses.json")).unwrap_or_default();
    for id in &ids {
        assert!(
            !leases.contains(id.as_str()),
            "lease of {id} left: {leases}"
        );
    }
    srv.stop();
    cleanup_bridge(N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_leave_statuses_that_match_runc() {
    const M: u8 = 114;
    let mut srv = server(M);
    let client = client();
    let owner = Arc::new(tenant(&client, &srv, "racer2@example.com").await);
    let data = srv.data_dir.clone();

    let mut ids = Vec::new();
    for i in 0..CONTAINERS {
        ids.push(create_stopped(&client, &srv, &owner, &format!("steady-{i}")).await);
    }
    let base = srv.api.clone();
    let mut tasks = Vec::new();
    for id in &ids {
        for op in [
            "start", "pause", "stop", "start", "restart", "resume", "pause",
        ] {
            let (client, owner, id, base) =
                (client.clone(), owner.clone(), id.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let resp = client
                    .post(format!("{base}/api/v1/containers/{id}/{op}"))
                    .bearer_auth(&owner.token)
                    .timeout(std::time::Duration::from_secs(120))
                    .send()
                    .await
                    .expect("request");
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                (op, id, status, body)
            }));
        }
    }
    for t in tasks {
        let (op, id, status, body) = t.await.unwrap();
        let code = body["code"].as_str().unwrap_or_default();
        assert!(
            status == 200 || (status == 409 && RACE_CODES.contains(&code)),
            "{op} {id}: {status} {body}"
        );
    }
    // The API's status is what runc says, and a running one serves.
    for id in &ids {
        let (s, b) = call(
            &client,
            &srv,
            &owner.token,
            Method::GET,
            &format!("/api/v1/containers/{id}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let api_status = b["data"]["status"].as_str().unwrap().to_string();
        let runc = runc_status(&data, id);
        let expected = match runc.as_deref() {
            Some("running") => "running",
            Some("paused") => "paused",
            _ => "stopped",
        };
        assert_eq!(
            api_status, expected,
            "{id}: api {api_status}, runc {runc:?}"
        );
        if api_status == "running" {
            let ip = address(&client, &srv, &owner, id).await;
            container_get(&ip, "/").await;
        }
    }
    for id in &ids {
        delete_clean(&client, &srv, &owner, id, M).await;
    }
    srv.stop();
    cleanup_bridge(M);
}
