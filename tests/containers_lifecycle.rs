//! Containers over the API of the real binary, on real runc containers
//! (needs root, runc, busybox-static, nftables, iproute2). Each test server
//! gets its own bridge, subnet and cgroup parent so tests run in parallel.

mod common;
mod containers_support;

use std::time::Duration;

use containers_support::*;
use reqwest::{Client, Method};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_container_lives_through_the_whole_lifecycle() {
    let mut srv = server(101);
    let client = Client::builder().no_proxy().build().unwrap();
    let owner = tenant(&client, &srv, "owner@example.com").await;
    let other = tenant(&client, &srv, "other@example.com").await;
    let data = srv.data_dir.clone();

    let (s, body) = create(
        &client,
        &srv,
        &owner,
        json!({"name": "web", "container_image": "busybox", "autostart": false,
               "environment_vars": {"GREETING": "hello"}}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let c = &body["data"];
    assert_eq!(c["status"], "stopped");
    assert_eq!(c["container_image"], "busybox");
    let id = c["id"].as_str().unwrap().to_string();

    // Env set while stopped applies at the start.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PUT,
        &format!("/api/v1/containers/{id}/env/COLOR"),
        Some(json!({"value": "blue"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["environment_vars"]["COLOR"], "blue");

    write_file(&data, &id, "www/marker.txt", "v1");
    let (s, body) = manage(&client, &srv, &owner, &id, "start").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["status"], "running");
    assert_eq!(body["data"]["operation"], "start");

    let (s, body) = manage(&client, &srv, &owner, &id, "start").await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["code"], "CONTAINER_ALREADY_RUNNING");

    let ip = address(&client, &srv, &owner, &id).await;
    assert!(ip.starts_with("10.214.101."), "{ip}");
    let env = container_get(&ip, "/cgi-bin/env").await;
    assert!(env.contains("GREETING=hello"), "{env}");
    assert!(env.contains("COLOR=blue"), "{env}");

    // Another tenant sees nothing.
    for (method, path) in [
        (Method::GET, format!("/api/v1/containers/{id}")),
        (Method::POST, format!("/api/v1/containers/{id}/stop")),
        (Method::DELETE, format!("/api/v1/containers/{id}")),
        (Method::GET, format!("/api/v1/containers/{id}/env")),
    ] {
        let (s, body) = call(&client, &srv, &other.token, method, &path, None).await;
        assert_eq!(s, 404, "{path}: {body}");
    }

    // Pause freezes the server; resume thaws it.
    let (s, body) = manage(&client, &srv, &owner, &id, "pause").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["status"], "paused");
    let quick = Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    assert!(quick
        .get(format!("http://{ip}/cgi-bin/env"))
        .send()
        .await
        .is_err());
    let (s, body) = manage(&client, &srv, &owner, &id, "resume").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["status"], "running");
    assert_eq!(container_get(&ip, "/marker.txt").await, "v1");

    // Snapshot, change the file, restore: the file is back.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/snapshots"),
        Some(json!({"alias": "before", "expiry": 7})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let snap = body["data"]["snapshot"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(body["data"]["snapshot"]["alias"], "before");
    assert!(body["data"]["snapshot"]["expires_at"].is_string());

    let (s, _) = manage(&client, &srv, &owner, &id, "stop").await;
    assert_eq!(s, 200);
    write_file(&data, &id, "www/marker.txt", "v2");
    let (s, _) = manage(&client, &srv, &owner, &id, "start").await;
    assert_eq!(s, 200);
    assert_eq!(container_get(&ip, "/marker.txt").await, "v2");

    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PUT,
        &format!("/api/v1/containers/{id}/snapshots/{snap}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["success"], true);
    assert_eq!(container_get(&ip, "/marker.txt").await, "v1");

    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        &format!("/api/v1/containers/{id}/snapshots"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["snapshot_count"], 1);
    assert!(body["data"]["snapshots"][0]["last_used_at"].is_string());

    // A copy serves the same files and environment.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/copy"),
        Some(json!({"target_project_id": owner.project, "name": "web-copy"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["source_container_id"], id.as_str());
    assert_eq!(body["data"]["status"], "stopped");
    let copy = body["data"]["id"].as_str().unwrap().to_string();
    let (s, body) = manage(&client, &srv, &owner, &copy, "start").await;
    assert_eq!(s, 200, "{body}");
    let copy_ip = address(&client, &srv, &owner, &copy).await;
    assert_ne!(copy_ip, ip);
    assert_eq!(container_get(&copy_ip, "/marker.txt").await, "v1");
    assert!(container_get(&copy_ip, "/cgi-bin/env")
        .await
        .contains("GREETING=hello"));

    // The status log tells the story.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        &format!("/api/v1/containers/{id}/status-logs?limit=100&sort_order=asc"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let seen: Vec<&str> = body["data"]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        &seen[..4],
        &["creating", "stopped", "running", "paused"],
        "{seen:?}"
    );

    // Stop and delete leave nothing behind.
    for c in [&id, &copy] {
        let record = runtime_record(&data, c);
        let (s, body) = manage(&client, &srv, &owner, c, "stop").await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["data"]["status"], "stopped");
        let (s, body) = call(
            &client,
            &srv,
            &owner.token,
            Method::DELETE,
            &format!("/api/v1/containers/{c}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{body}");
        assert_nothing_left(&data, &record, c, "hoody-hct101").await;
        let (s, _) = call(
            &client,
            &srv,
            &owner.token,
            Method::GET,
            &format!("/api/v1/containers/{c}"),
            None,
        )
        .await;
        assert_eq!(s, 404);
    }
    srv.stop();
    cleanup_bridge(101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_bad_container_input_with_named_fields() {
    let mut srv = server(102);
    let client = Client::builder().no_proxy().build().unwrap();
    let t = tenant(&client, &srv, "bad@example.com").await;

    let (s, body) = create(&client, &srv, &t, json!({"container_image": "windows-95"})).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["details"]["container_image"].is_string(), "{body}");

    let (s, body) = create(&client, &srv, &t, json!({"name": "a!"})).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["details"]["name"].is_string(), "{body}");

    let (s, body) = create(
        &client,
        &srv,
        &t,
        json!({"environment_vars": {"1BAD": "x", "PATH": "/x"}}),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["details"]["environment_vars.1BAD"].is_string(),
        "{body}"
    );
    assert!(
        body["details"]["environment_vars.PATH"].is_string(),
        "{body}"
    );

    let (s, body) = create(&client, &srv, &t, json!({"color": "#12"})).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["details"]["color"].is_string());

    let (s, body) = create(&client, &srv, &t, json!({"prespawn": true})).await;
    assert_eq!(s, 403, "{body}");

    // Nothing was left behind by the refused creations.
    let (s, body) = call(
        &client,
        &srv,
        &t.token,
        Method::GET,
        "/api/v1/containers/",
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["pagination"]["total"], 0, "{body}");

    let (s, body) = create(
        &client,
        &srv,
        &t,
        json!({"name": "box1", "autostart": false}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_string();

    let (s, body) = create(
        &client,
        &srv,
        &t,
        json!({"name": "box1", "autostart": false}),
    )
    .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["code"], "CONTAINER_NAME_EXISTS");

    let (s, body) = manage(&client, &srv, &t, &id, "explode").await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = manage(&client, &srv, &t, &id, "stop").await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["code"], "CONTAINER_NOT_RUNNING");

    let (s, body) = call(
        &client,
        &srv,
        &t.token,
        Method::PUT,
        &format!("/api/v1/containers/{id}/env/HOODY_SECRET"),
        Some(json!({"value": "x"})),
    )
    .await;
    assert_eq!(s, 400, "{body}");

    // KVM: this node is a free-tier server (or has no /dev/kvm).
    let (s, body) = call(
        &client,
        &srv,
        &t.token,
        Method::PUT,
        &format!("/api/v1/containers/{id}/kvm"),
        Some(json!({"kvm": true})),
    )
    .await;
    assert!(s == 403 || s == 503, "{s} {body}");
    assert!(
        body["code"] == "KVM_NOT_ALLOWED" || body["code"] == "KVM_UNAVAILABLE",
        "{body}"
    );

    // The claim is signed and names the container.
    let (s, body) = call(
        &client,
        &srv,
        &t.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/authorize"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["container_id"], id.as_str());
    assert_eq!(body["data"]["expires_in"], 3600);
    assert_eq!(
        body["data"]["container_claim"]["signature_hex"]
            .as_str()
            .unwrap()
            .len(),
        128
    );

    // A project quota is enforced at creation.
    let (s, body) = call(
        &client,
        &srv,
        &t.token,
        Method::POST,
        "/api/v1/projects/",
        Some(json!({"alias": "tiny", "max_containers": 0})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let tiny = Tenant {
        token: t.token.clone(),
        project: body["data"]["id"].as_str().unwrap().to_string(),
    };
    let (s, body) = create(&client, &srv, &tiny, json!({"autostart": false})).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["code"], "PROJECT_CONTAINER_LIMIT");

    let (s, body) = call(
        &client,
        &srv,
        &t.token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    srv.stop();
    cleanup_bridge(102);
}
