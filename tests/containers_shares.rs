//! `storageShares.*` over the API of the real binary, on real runc
//! containers: files written through one container's share are read in
//! another, read-only shares refuse writes, and every rule of the API
//! (validation, tenants, targets' answers, expiry, events) holds.
//! Bridges `hct110` and `hct115`.

mod common;
mod containers_support;

use containers_support::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const N: u8 = 110;

async fn share(
    client: &Client,
    srv: &common::Server,
    t: &Tenant,
    source: &str,
    body: Value,
) -> (StatusCode, Value) {
    call(
        client,
        srv,
        &t.token,
        Method::POST,
        &format!("/api/v1/containers/{source}/storage/shares"),
        Some(body),
    )
    .await
}

async fn list(
    client: &Client,
    srv: &common::Server,
    t: &Tenant,
    source: &str,
    query: &str,
) -> Vec<Value> {
    let (s, body) = call(
        client,
        srv,
        &t.token,
        Method::GET,
        &format!("/api/v1/containers/{source}/storage/shares{query}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["data"].as_array().expect("array").clone()
}

async fn incoming(client: &Client, srv: &common::Server, t: &Tenant, id: &str) -> Vec<Value> {
    let (s, body) = call(
        client,
        srv,
        &t.token,
        Method::GET,
        &format!("/api/v1/containers/{id}/storage/incoming"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["data"].as_array().expect("array").clone()
}

fn id_of(body: &Value) -> String {
    body["data"]["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_mount_between_running_containers() {
    let mut srv = server(N);
    let client = client();
    let owner = tenant(&client, &srv, "sharer@example.com").await;
    let other = tenant(&client, &srv, "stranger@example.com").await;
    let data = srv.data_dir.clone();

    let src = create_stopped(&client, &srv, &owner, "source").await;
    let rw = create_stopped(&client, &srv, &owner, "writer").await;
    let ro = create_stopped(&client, &srv, &owner, "reader").await;
    let foreign = create_stopped(&client, &srv, &other, "foreign").await;

    // Bad input names the field and stores nothing.
    for (body, field) in [
        (
            json!({"source_path": "/proc/self", "target_container_id": rw, "mode": "readwrite"}),
            "source_path",
        ),
        (
            json!({"source_path": "/data/../etc", "target_container_id": rw, "mode": "readwrite"}),
            "source_path",
        ),
        (
            json!({"source_path": "relative", "target_container_id": rw, "mode": "readwrite"}),
            "source_path",
        ),
        (
            json!({"source_path": "/data", "mode": "readwrite"}),
            "target_container_id",
        ),
        (
            json!({"source_path": "/data", "target_container_id": rw,
                   "target_project_id": owner.project, "mode": "readwrite"}),
            "target_container_id",
        ),
        (
            json!({"source_path": "/data", "target_container_id": rw, "mode": "rw"}),
            "mode",
        ),
        (
            json!({"source_path": "/data", "target_container_id": rw, "mode": "readonly",
                   "alias": "A!"}),
            "alias",
        ),
        (
            json!({"source_path": "/data", "target_container_id": rw, "mode": "readonly",
                   "label": "x"}),
            "label",
        ),
        (
            json!({"source_path": "/data", "target_container_id": rw, "mode": "readonly",
                   "expires_at": -5}),
            "expires_at",
        ),
        (
            json!({"source_path": "/data", "target_container_id": src, "mode": "readonly"}),
            "target_container_id",
        ),
    ] {
        let (s, b) = share(&client, &srv, &owner, &src, body.clone()).await;
        assert_eq!(s, 400, "{body} -> {b}");
        assert!(b["details"][field].is_string(), "{body} -> {b}");
    }
    let (s, b) = share(&client, &srv, &owner, &src, json!({"source_path": "/data"})).await;
    assert_eq!(s, 400, "{b}");
    // Another tenant's container is no target, and theirs no source.
    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/data", "target_container_id": foreign, "mode": "readonly"}),
    )
    .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = share(
        &client,
        &srv,
        &other,
        &src,
        json!({"source_path": "/data", "target_container_id": foreign, "mode": "readonly"}),
    )
    .await;
    assert_eq!(s, 404, "{b}");
    assert!(list(&client, &srv, &owner, &src, "?include_expired=true")
        .await
        .is_empty());

    // One path, shared read-write with one container and read-only with another.
    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/data/", "target_container_id": rw, "mode": "readwrite",
               "alias": "team-data", "label": "team", "description": "shared work"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let rw_share = id_of(&b);
    let d = &b["data"];
    assert_eq!(d["source_path"], "/data");
    assert_eq!(d["target_type"], "container");
    assert_eq!(d["mode"], "readwrite");
    assert_eq!(d["enabled"], true);
    assert_eq!(d["status"], "active");
    assert_eq!(d["alias"], "team-data");
    assert_eq!(d["source_container_id"], src.as_str());
    assert!(d["created_by"].is_string() && d["created_at"].is_string());
    let rw_mount = d["mount_path"].as_str().unwrap().to_string();

    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/data", "target_container_id": rw, "mode": "readonly"}),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["code"], "STORAGE_SHARE_EXISTS");

    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/data", "target_container_id": ro, "mode": "readonly"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let ro_share = id_of(&b);
    let ro_mount = b["data"]["mount_path"].as_str().unwrap().to_string();

    for id in [&src, &rw, &ro] {
        manage_ok(&client, &srv, &owner, id, "start", "running").await;
    }

    // Written by the read-write target, read by the source and the read-only target.
    let w = exec(
        &data,
        &rw,
        &format!("echo from-writer > {rw_mount}/note.txt"),
    );
    assert_eq!(w.code, 0, "{w:?}");
    let r = exec(&data, &src, "cat /data/note.txt");
    assert_eq!(r.stdout.trim(), "from-writer", "{r:?}");
    let r = exec(&data, &ro, &format!("cat {ro_mount}/note.txt"));
    assert_eq!(r.stdout.trim(), "from-writer", "{r:?}");
    let w = exec(&data, &src, "echo from-source > /data/second.txt");
    assert_eq!(w.code, 0, "{w:?}");
    let r = exec(&data, &rw, &format!("cat {rw_mount}/second.txt"));
    assert_eq!(r.stdout.trim(), "from-source", "{r:?}");
    // The read-only target cannot write.
    let w = exec(&data, &ro, &format!("echo nope > {ro_mount}/evil.txt"));
    assert_ne!(w.code, 0, "{w:?}");
    assert!(w.stderr.contains("Read-only"), "{w:?}");
    assert_ne!(exec(&data, &src, "cat /data/evil.txt").code, 0);

    // The target sees what it receives; strangers see nothing.
    let inc = incoming(&client, &srv, &owner, &ro).await;
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0]["id"], ro_share.as_str());
    assert_eq!(inc[0]["mode"], "readonly");
    for (method, path) in [
        (
            Method::GET,
            format!("/api/v1/containers/{src}/storage/shares"),
        ),
        (
            Method::GET,
            format!("/api/v1/containers/{src}/storage/shares/{rw_share}"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/containers/{src}/storage/shares/{rw_share}"),
        ),
        (
            Method::GET,
            format!("/api/v1/containers/{ro}/storage/incoming"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/containers/{ro}/storage/incoming/{ro_share}/mount"),
        ),
        (Method::DELETE, format!("/api/v1/storage/shares/{rw_share}")),
    ] {
        let body = match method {
            Method::PATCH if path.ends_with("/mount") => Some(json!({"mount": false})),
            Method::PATCH => Some(json!({"enabled": false})),
            _ => None,
        };
        let (s, b) = call(&client, &srv, &other.token, method, &path, body).await;
        assert_eq!(s, 404, "{path}: {b}");
    }
    let (s, b) = call(
        &client,
        &srv,
        &other.token,
        Method::GET,
        "/api/v1/storage/shares",
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"].as_array().unwrap().len(), 0, "{b}");

    // Global lists of the owner.
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        "/api/v1/storage/shares",
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"].as_array().unwrap().len(), 2, "{b}");
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        "/api/v1/storage/incoming/",
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"].as_array().unwrap().len(), 2, "{b}");

    // Filters.
    assert_eq!(
        list(&client, &srv, &owner, &src, "?label=team").await.len(),
        1
    );
    assert_eq!(
        list(&client, &srv, &owner, &src, "?enabled=false")
            .await
            .len(),
        0
    );
    assert_eq!(
        list(&client, &srv, &owner, &src, "?target_type=project")
            .await
            .len(),
        0
    );
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        &format!("/api/v1/containers/{src}/storage/shares?enabled=maybe"),
        None,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["details"]["enabled"].is_string(), "{b}");

    // The read-only target refuses the share: gone after its restart.
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &format!("/api/v1/containers/{ro}/storage/incoming/{ro_share}/mount"),
        Some(json!({"mount": false})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["override"]["mount"], false);
    assert_eq!(b["data"]["override"]["container_id"], ro.as_str());
    assert_eq!(b["data"]["share"]["id"], ro_share.as_str());
    // Only targets answer: the source is not one.
    let (s, _) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &format!("/api/v1/containers/{src}/storage/incoming/{ro_share}/mount"),
        Some(json!({"mount": false})),
    )
    .await;
    assert_eq!(s, 404);
    manage_ok(&client, &srv, &owner, &ro, "restart", "running").await;
    let r = exec(&data, &ro, &format!("test -e {ro_mount}/note.txt"));
    assert_ne!(r.code, 0, "refused share still mounted: {r:?}");

    // Turned read-only, the first share refuses writes after a restart.
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &format!("/api/v1/containers/{src}/storage/shares/{rw_share}"),
        Some(json!({"mode": "readonly", "alias": null, "description": null})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["mode"], "readonly");
    assert_eq!(b["data"]["alias"], Value::Null);
    assert_eq!(b["data"]["label"], "team");
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &format!("/api/v1/containers/{src}/storage/shares/{rw_share}"),
        Some(json!({"mode": "all"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["details"]["mode"].is_string());
    manage_ok(&client, &srv, &owner, &rw, "restart", "running").await;
    let w = exec(&data, &rw, &format!("echo again > {rw_mount}/note.txt"));
    assert_ne!(w.code, 0, "{w:?}");
    let r = exec(&data, &rw, &format!("cat {rw_mount}/note.txt"));
    assert_eq!(r.stdout.trim(), "from-writer", "{r:?}");

    // Disabled: no longer mounted at the next start.
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &format!("/api/v1/containers/{src}/storage/shares/{rw_share}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    manage_ok(&client, &srv, &owner, &rw, "restart", "running").await;
    assert_ne!(
        exec(&data, &rw, &format!("test -e {rw_mount}/note.txt")).code,
        0
    );

    // A project-wide share reaches containers created later too.
    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/pub", "target_project_id": owner.project, "mode": "readonly"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["data"]["target_type"], "project");
    let pub_mount = b["data"]["mount_path"].as_str().unwrap().to_string();
    manage_ok(&client, &srv, &owner, &src, "restart", "running").await;
    assert_eq!(exec(&data, &src, "echo hi > /pub/hello.txt").code, 0);
    let late = create_stopped(&client, &srv, &owner, "latecomer").await;
    manage_ok(&client, &srv, &owner, &late, "start", "running").await;
    let r = exec(&data, &late, &format!("cat {pub_mount}/hello.txt"));
    assert_eq!(r.stdout.trim(), "hi", "{r:?}");
    assert_eq!(incoming(&client, &srv, &owner, &late).await.len(), 1);

    // An expired share is hidden unless asked for, and never mounted.
    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/old", "target_container_id": late, "mode": "readonly",
               "expires_at": 1}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let old = id_of(&b);
    let visible: Vec<String> = list(&client, &srv, &owner, &src, "")
        .await
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!visible.contains(&old), "{visible:?}");
    assert_eq!(
        list(&client, &srv, &owner, &src, "?include_expired=true")
            .await
            .len(),
        visible.len() + 1
    );

    // Delete: through the global path only by someone who may edit the source.
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::DELETE,
        &format!("/api/v1/storage/shares/{old}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"], Value::Null);
    let (s, _) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        &format!("/api/v1/containers/{src}/storage/shares/{old}"),
        None,
    )
    .await;
    assert_eq!(s, 404);

    let events = event_types(&client, &srv, &owner, "resource_type=storage_share").await;
    for e in [
        "storage.share.created",
        "storage.share.updated",
        "storage.share.disabled",
        "storage.share.mount_changed",
        "storage.share.deleted",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} missing in {events:?}");
    }

    // Deleting the source takes its shares away from every target.
    delete_clean(&client, &srv, &owner, &src, N).await;
    assert!(incoming(&client, &srv, &owner, &ro).await.is_empty());
    assert!(incoming(&client, &srv, &owner, &late).await.is_empty());
    let (s, _) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        "/api/v1/storage/shares",
        None,
    )
    .await;
    assert_eq!(s, 200);
    // Targets still restart cleanly without the source's directory.
    manage_ok(&client, &srv, &owner, &late, "restart", "running").await;
    for id in [&rw, &ro, &late] {
        delete_clean(&client, &srv, &owner, id, N).await;
    }
    delete_clean(&client, &srv, &other, &foreign, N).await;
    srv.stop();
    cleanup_bridge(N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_job_warns_then_expires_shares() {
    const M: u8 = 115;
    let mut srv = server(M);
    let client = client();
    let owner = tenant(&client, &srv, "expiry@example.com").await;
    let src = create_stopped(&client, &srv, &owner, "lender").await;
    let dst = create_stopped(&client, &srv, &owner, "borrower").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/soon", "target_container_id": dst, "mode": "readonly",
               "expires_at": now + 3600}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let soon = id_of(&b);
    assert_eq!(b["data"]["expiry_notified"], false);
    let (s, b) = share(
        &client,
        &srv,
        &owner,
        &src,
        json!({"source_path": "/gone", "target_container_id": dst, "mode": "readonly",
               "expires_at": now - 10}),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // The job runs when the server starts, then every minute.
    srv.stop();
    srv.spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let events = event_types(&client, &srv, &owner, "resource_type=storage_share").await;
        let done = events.iter().any(|e| e == "storage.share.expired")
            && events.iter().any(|e| e == "storage.share.expiring_soon");
        if done || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        events.iter().any(|e| e == "storage.share.expiring_soon"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e == "storage.share.expired"),
        "{events:?}"
    );
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        &format!("/api/v1/containers/{src}/storage/shares/{soon}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["expiry_notified"], true, "{b}");
    // Only the share that has not expired is listed or mounted.
    assert_eq!(list(&client, &srv, &owner, &src, "").await.len(), 1);
    assert_eq!(incoming(&client, &srv, &owner, &dst).await.len(), 1);

    for id in [&dst, &src] {
        delete_clean(&client, &srv, &owner, id, M).await;
    }
    srv.stop();
    cleanup_bridge(M);
}
