//! Container features over the API of the real binary, checked from inside
//! real runc containers: firewall egress rules and the `block` network mode
//! (nftables in the container's netns), proxy and DNS settings, bulk
//! environment changes, `containers.sync`, and copies made from snapshots.
//! Bridges `hct111` and `hct113`.

mod common;
mod containers_support;

use std::net::Ipv4Addr;

use containers_support::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A listener on the bridge address that answers `pong` to any request.
async fn pong_listener(ip: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request first: closing with unread data would send a RST.
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\npong")
                    .await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// Whether the container reaches `url` (busybox wget under `timeout`).
fn can_reach(data: &std::path::Path, id: &str, url: &str) -> bool {
    let out = exec(data, id, &format!("timeout 3 wget -q -O - {url}"));
    out.code == 0 && out.stdout.contains("pong")
}

async fn api(
    client: &Client,
    srv: &common::Server,
    t: &Tenant,
    method: Method,
    path: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call(client, srv, &t.token, method, &path, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_network_and_env_take_effect_in_the_container() {
    const N: u8 = 111;
    let mut srv = server(N);
    let client = client();
    let owner = tenant(&client, &srv, "fw@example.com").await;
    let other = tenant(&client, &srv, "fw-other@example.com").await;
    let data = srv.data_dir.clone();
    let gateway = Ipv4Addr::new(10, 214, N, 1);
    let port = pong_listener(gateway).await;
    let url = format!("http://{gateway}:{port}/");

    let id = create_stopped(&client, &srv, &owner, "guarded").await;
    manage_ok(&client, &srv, &owner, &id, "start", "running").await;
    let ip = address(&client, &srv, &owner, &id).await;
    assert!(can_reach(&data, &id, &url), "baseline egress failed");
    let fw = |p: &str| format!("/api/v1/containers/{id}/firewall/{p}");

    // Rejected rules name their field and change nothing.
    let good = json!({"action": "reject", "protocol": "tcp", "description": "no host",
                      "destination": format!("{gateway}/32"), "destination_port": port.to_string()});
    for (patch, field) in [
        (json!({"protocol": "sctp"}), "protocol"),
        (json!({"action": "maybe"}), "action"),
        (json!({"destination_port": null}), "destination_port"),
        (json!({"destination_port": "70000"}), "destination_port"),
        (json!({"destination": "10.0.0.0/33"}), "destination"),
        (json!({"source": "1.2.3.4"}), "source"),
    ] {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let (s, b) = api(
            &client,
            &srv,
            &owner,
            Method::POST,
            fw("egress"),
            Some(body),
        )
        .await;
        assert_eq!(s, 400, "{field}: {b}");
        assert!(b["details"][field].is_string(), "{field}: {b}");
    }
    let (s, b) = api(&client, &srv, &owner, Method::GET, fw("rules"), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["rule_count"], 0, "{b}");
    assert!(can_reach(&data, &id, &url));

    // Egress deny blocks at once; a duplicate is reported, not added.
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        fw("egress"),
        Some(good.clone()),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["egress"].as_array().unwrap().len(), 1, "{b}");
    assert!(!can_reach(&data, &id, &url), "deny rule did not block");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        fw("egress"),
        Some(good.clone()),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["duplicate"], true, "{b}");

    // Toggled off, traffic flows; on again, it is blocked.
    let sel = json!({"destination_port": port.to_string(), "protocol": "tcp"});
    let mut off = sel.clone();
    off["state"] = json!("disabled");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PATCH,
        fw("egress"),
        Some(off),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["updated"]["state"], "disabled", "{b}");
    assert!(can_reach(&data, &id, &url), "disabled rule still blocks");
    let mut on = sel.clone();
    on["state"] = json!("enabled");
    let (s, b) = api(&client, &srv, &owner, Method::PATCH, fw("egress"), Some(on)).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        !can_reach(&data, &id, &url),
        "re-enabled rule does not block"
    );
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PATCH,
        fw("egress"),
        Some(json!({"state": "sleeping"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["details"]["state"].is_string(), "{b}");

    // Ingress rules are stored for the data plane; the container is still served.
    let ingress = json!({"action": "allow", "protocol": "tcp", "description": "office",
                         "source": "192.0.2.0/24", "destination_port": "80"});
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        fw("ingress"),
        Some(ingress),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["ingress"][0]["source"], "192.0.2.0/24", "{b}");
    let (s, b) = api(&client, &srv, &owner, Method::GET, fw("rules"), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["rule_count"], 2, "{b}");
    assert_eq!(b["data"]["egress"][0]["direction"], "egress", "{b}");
    assert_eq!(b["data"]["ingress"][0]["direction"], "ingress", "{b}");

    // Another tenant sees none of it.
    for (m, p) in [(Method::GET, fw("rules")), (Method::POST, fw("reset"))] {
        let (s, b) = api(&client, &srv, &other, m, p, None).await;
        assert_eq!(s, 404, "{b}");
    }
    let (s, _) = api(
        &client,
        &srv,
        &other,
        Method::POST,
        fw("egress"),
        Some(good.clone()),
    )
    .await;
    assert_eq!(s, 404);

    // Removing the egress rule lifts the block; removing nothing is a 404.
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::DELETE,
        fw("egress"),
        Some(sel.clone()),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["removed_count"], 1, "{b}");
    assert!(can_reach(&data, &id, &url), "removed rule still blocks");
    let (s, _) = api(
        &client,
        &srv,
        &owner,
        Method::DELETE,
        fw("egress"),
        Some(sel.clone()),
    )
    .await;
    assert_eq!(s, 404);

    // Reset clears both directions and unblocks.
    let (s, _) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        fw("egress"),
        Some(good.clone()),
    )
    .await;
    assert_eq!(s, 200);
    assert!(!can_reach(&data, &id, &url));
    let (s, b) = api(&client, &srv, &owner, Method::POST, fw("reset"), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["rules"]["egress"], json!([]), "{b}");
    assert_eq!(b["data"]["rules"]["ingress"], json!([]), "{b}");
    assert!(can_reach(&data, &id, &url), "reset rules still block");

    // Network mode `block`: stored, enforced only while the network is started.
    let net = format!("/api/v1/containers/{id}/network");
    let (s, b) = api(&client, &srv, &owner, Method::GET, net.clone(), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["configured"], false, "{b}");
    for (body, field) in [
        (json!({"type": "tor"}), "type"),
        (json!({"type": "socks5"}), "proxy"),
        (json!({"type": "http", "proxy": "socks5://x:1"}), "proxy"),
        (
            json!({"type": "block", "dns_servers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9"]}),
            "dns_servers",
        ),
        (
            json!({"type": "block", "dns_servers": ["dns.example"]}),
            "dns_servers[0]",
        ),
    ] {
        let (s, b) = api(&client, &srv, &owner, Method::PUT, net.clone(), Some(body)).await;
        assert_eq!(s, 400, "{field}: {b}");
        assert!(b["details"][field].is_string(), "{field}: {b}");
    }
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("{net}/start"),
        None,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "NETWORK_NOT_CONFIGURED");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        net.clone(),
        Some(json!({"type": "block", "comment": "quarantine"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["type"], "block");
    assert_eq!(b["data"]["status"], "stopped");
    assert!(can_reach(&data, &id, &url), "block applied before start");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("{net}/start"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["is_running"], true);
    assert!(!can_reach(&data, &id, &url), "block mode let traffic out");
    // Inbound (the proxy's way in) still works.
    assert!(container_get(&ip, "/cgi-bin/env").await.contains("PATH="));
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("{net}/stop"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["status"], "stopped");
    assert!(
        can_reach(&data, &id, &url),
        "stopped block mode still blocks"
    );

    // Proxy mode: variables and DNS servers at the next start; credentials kept, never shown.
    let proxy = format!("http://user:secret@{gateway}:3128");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        net.clone(),
        Some(json!({"type": "http", "proxy": proxy, "dns_servers": ["9.9.9.9"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["proxy"], format!("http://{gateway}:3128"));
    assert_eq!(b["data"]["credentials_configured"], true);
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        net.clone(),
        Some(json!({"type": "http", "proxy": format!("http://{gateway}:3128"), "dns_servers": ["9.9.9.9"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["credentials_configured"], true, "{b}");
    let (s, _) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("{net}/start"),
        None,
    )
    .await;
    assert_eq!(s, 200);

    // Bulk environment: all or nothing, applied at the next start.
    let env = format!("/api/v1/containers/{id}/env");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        env.clone(),
        Some(json!({"GOOD": "1", "1BAD": "x", "HOODY_X": "y"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["details"]["environment_vars.1BAD"].is_string(), "{b}");
    assert!(b["details"]["environment_vars.HOODY_X"].is_string(), "{b}");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        env.clone(),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        env.clone(),
        Some(json!({"BIG": "x".repeat(32769)})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api(&client, &srv, &owner, Method::GET, env.clone(), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["environment_vars"],
        json!({}),
        "rejected bulk set left {b}"
    );
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        env.clone(),
        Some(json!({"ALPHA": "one", "FLAG": true, "COUNT": 5})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["synced"], false, "{b}");
    assert_eq!(b["data"]["environment_vars"]["FLAG"], "true");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::PUT,
        env.clone(),
        Some(json!({"ALPHA": "uno", "BETA": "two"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["environment_vars"]["COUNT"], "5",
        "bulk set dropped others: {b}"
    );
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::DELETE,
        format!("{env}/BETA"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = api(
        &client,
        &srv,
        &owner,
        Method::DELETE,
        format!("{env}/BETA"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = api(
        &client,
        &srv,
        &other,
        Method::PUT,
        env.clone(),
        Some(json!({"X": "1"})),
    )
    .await;
    assert_eq!(s, 404);

    manage_ok(&client, &srv, &owner, &id, "restart", "running").await;
    let seen = container_get(&ip, "/cgi-bin/env").await;
    for want in [
        "ALPHA=uno".to_string(),
        "FLAG=true".to_string(),
        "COUNT=5".to_string(),
        format!("HTTP_PROXY=http://user:secret@{gateway}:3128"),
        format!("https_proxy=http://user:secret@{gateway}:3128"),
    ] {
        assert!(seen.contains(&want), "{want} missing in {seen}");
    }
    assert!(!seen.contains("BETA="), "{seen}");
    let resolv = exec(&data, &id, "cat /etc/resolv.conf");
    assert!(resolv.stdout.contains("nameserver 9.9.9.9"), "{resolv:?}");

    // Removing the configuration: open network and default DNS at the next start.
    let (s, b) = api(&client, &srv, &owner, Method::DELETE, net.clone(), None).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = api(&client, &srv, &owner, Method::DELETE, net.clone(), None).await;
    assert_eq!(s, 404);
    manage_ok(&client, &srv, &owner, &id, "restart", "running").await;
    let seen = container_get(&ip, "/cgi-bin/env").await;
    assert!(!seen.contains("HTTP_PROXY="), "{seen}");
    let resolv = exec(&data, &id, "cat /etc/resolv.conf");
    assert!(!resolv.stdout.contains("9.9.9.9"), "{resolv:?}");

    let events = event_types(&client, &srv, &owner, "resource_type=firewall").await;
    for e in [
        "firewall.rule.added",
        "firewall.rule.disabled",
        "firewall.rule.enabled",
        "firewall.rule.removed",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} missing in {events:?}");
    }

    delete_clean(&client, &srv, &owner, &id, N).await;
    srv.stop();
    cleanup_bridge(N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_copies_from_snapshots_carry_the_right_files() {
    const N: u8 = 113;
    let mut srv = server(N);
    let client = client();
    let owner = tenant(&client, &srv, "copier@example.com").await;
    let other = tenant(&client, &srv, "copier-other@example.com").await;
    let data = srv.data_dir.clone();

    let src = create_stopped(&client, &srv, &owner, "origin").await;
    write_file(&data, &src, "www/v.txt", "one");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("/api/v1/containers/{src}/snapshots"),
        Some(json!({"alias": "first"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let snap = b["data"]["snapshot"]["name"].as_str().unwrap().to_string();
    write_file(&data, &src, "www/v.txt", "two");

    let copy = |name: &str, snapshot: Option<&str>| {
        let mut body = json!({"target_project_id": owner.project, "name": name});
        if let Some(s) = snapshot {
            body["source_snapshot"] = json!(s);
        }
        api(
            &client,
            &srv,
            &owner,
            Method::POST,
            format!("/api/v1/containers/{src}/copy"),
            Some(body),
        )
    };

    // Bad and unknown snapshots leave no container behind.
    let (s, b) = copy("nope-1", Some("no such")).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["details"]["source_snapshot"].is_string(), "{b}");
    let (s, b) = copy("nope-2", Some("missing")).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::GET,
        format!("/api/v1/projects/{}/containers", owner.project),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["pagination"]["total"], 1, "{b}");

    // From the snapshot, by name and by alias: the old file.
    let (s, b) = copy("from-name", Some(&snap)).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["data"]["source_container_id"], src.as_str());
    assert_eq!(b["data"]["status"], "stopped");
    let by_name = b["data"]["id"].as_str().unwrap().to_string();
    let (s, b) = copy("from-alias", Some("first")).await;
    assert_eq!(s, 201, "{b}");
    let by_alias = b["data"]["id"].as_str().unwrap().to_string();
    // Without a snapshot: the current state.
    let (s, b) = copy("latest", None).await;
    assert_eq!(s, 201, "{b}");
    let latest = b["data"]["id"].as_str().unwrap().to_string();

    for (id, want) in [(&by_name, "one"), (&by_alias, "one"), (&latest, "two")] {
        manage_ok(&client, &srv, &owner, id, "start", "running").await;
        let ip = address(&client, &srv, &owner, id).await;
        assert_eq!(container_get(&ip, "/v.txt").await, want, "copy {id}");
    }

    // Sync copies the source's current state over a running copy.
    write_file(&data, &src, "www/v.txt", "three");
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("/api/v1/containers/{by_name}/sync"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["container_id"], by_name.as_str());
    assert_eq!(b["data"]["source_container_id"], src.as_str());
    assert_eq!(b["data"]["status"], "running");
    let ip = address(&client, &srv, &owner, &by_name).await;
    assert_eq!(container_get(&ip, "/v.txt").await, "three");

    // Only copies sync; strangers get 404.
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("/api/v1/containers/{src}/sync"),
        None,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "NOT_A_COPY");
    let (s, _) = api(
        &client,
        &srv,
        &other,
        Method::POST,
        format!("/api/v1/containers/{latest}/sync"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = api(
        &client,
        &srv,
        &other,
        Method::POST,
        format!("/api/v1/containers/{src}/copy"),
        Some(json!({"target_project_id": other.project, "source_snapshot": snap})),
    )
    .await;
    assert_eq!(s, 404);

    // A copy whose source is gone cannot sync.
    delete_clean(&client, &srv, &owner, &src, N).await;
    let (s, b) = api(
        &client,
        &srv,
        &owner,
        Method::POST,
        format!("/api/v1/containers/{latest}/sync"),
        None,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "SOURCE_UNAVAILABLE");

    for id in [&by_name, &by_alias, &latest] {
        delete_clean(&client, &srv, &owner, id, N).await;
    }
    srv.stop();
    cleanup_bridge(N);
}
