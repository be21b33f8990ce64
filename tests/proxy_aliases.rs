//! Aliases and the config compiler end to end: the real binary, a busybox
//! container on runc, requests through the embedded proxy (`--proxy-listen`)
//! with alias and capability hostnames. Needs root, runc, busybox-static,
//! nftables and iproute2; uses bridge `hct130` on `10.214.130.0/24`.

mod common;

use std::time::{Duration, Instant};

use common::{admin_create_user, basic, login, raw_request, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const BRIDGE: u8 = 130;

fn server() -> Server {
    server_on(BRIDGE)
}

/// A server whose containers use bridge `hct<n>` on `10.214.<n>.0/24`; each
/// test of this file takes its own `n` so they can run in parallel.
fn server_on(n: u8) -> Server {
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &format!("hct{n}")])
        .stderr(std::process::Stdio::null())
        .status();
    Server::start_with(&[
        "--runtime-bridge",
        &format!("hct{n}"),
        "--runtime-subnet",
        &format!("10.214.{n}.0/24"),
    ])
}

async fn call(
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
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

struct Tenant {
    token: String,
    project: String,
}

async fn tenant(client: &Client, srv: &Server, email: &str) -> Tenant {
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

async fn container(client: &Client, srv: &Server, t: &Tenant, name: &str, run: bool) -> String {
    let (s, body) = call(
        client,
        srv,
        &t.token,
        Method::POST,
        &format!("/api/v1/projects/{}/containers", t.project),
        Some(json!({
            "name": name, "container_image": "busybox", "autostart": run,
            "server_id": control::servers::model::node_server_id("local"),
        })),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    body["data"]["id"].as_str().expect("id").to_string()
}

/// One request through the proxy: (status, body).
fn through_proxy(srv: &Server, host: &str, path: &str) -> (u16, String) {
    through_proxy_with(srv, host, path, "")
}

/// One request through the proxy with extra header lines (each ending in
/// CRLF): (status, head and body).
fn through_proxy_with(srv: &Server, host: &str, path: &str, headers: &str) -> (u16, String) {
    let raw = raw_request(
        &format!("127.0.0.1:{}", srv.proxy_port),
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"),
    )
    .expect("proxy request");
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The first answer that is not a 502: right after a start the route is in
/// place before httpd inside the container listens.
async fn once_listening(srv: &Server, host: &str, path: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = through_proxy(srv, host, path);
        if status != 502 || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn code_of(body: &str) -> String {
    // Chunked or not, the JSON object is the part between the braces.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => &body[a..=b],
        _ => "",
    };
    serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn metric(client: &Client, srv: &Server, name: &str) -> u64 {
    let text = client
        .get(srv.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_route_to_the_container_while_it_runs() {
    let srv = server();
    let client = Client::builder().no_proxy().build().unwrap();
    let owner = tenant(&client, &srv, "owner@example.com").await;
    let other = tenant(&client, &srv, "other@example.com").await;
    let id = container(&client, &srv, &owner, "web", true).await;
    let version_before = metric(&client, &srv, "hoody_config_version").await;

    // Create: the URL names this node's proxy.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        "/api/v1/proxy/aliases",
        Some(json!({"container_id": id, "alias": "shop", "program": "http", "port": 80})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let alias = body["data"].clone();
    let alias_id = alias["id"].as_str().unwrap().to_string();
    assert_eq!(alias["alias"], "shop");
    assert_eq!(alias["program"], "http");
    assert_eq!(alias["index"], 80);
    assert_eq!(alias["enabled"], true);
    assert_eq!(alias["container_id"], id.as_str());
    assert_eq!(
        alias["url"],
        format!("http://shop.local.localhost:{}", srv.proxy_port)
    );
    assert!(metric(&client, &srv, "hoody_config_version").await > version_before);

    let host = "shop.local.localhost";
    let (status, body) = once_listening(&srv, host, "/cgi-bin/env").await;
    assert_eq!(status, 200, "{body}\n{}", srv.log());
    assert!(body.contains("GATEWAY_INTERFACE=CGI"), "{body}");
    let capability = format!("{}-{id}-http-80.local.localhost", owner.project);
    let (status, _) = through_proxy(&srv, &capability, "/cgi-bin/env");
    assert_eq!(status, 200);

    // The label is taken on this node, whoever asks.
    let theirs = container(&client, &srv, &other, "theirs", false).await;
    let (s, body) = call(
        &client,
        &srv,
        &other.token,
        Method::POST,
        "/api/v1/proxy/aliases",
        Some(json!({"container_id": theirs, "alias": "shop", "program": "http"})),
    )
    .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["code"], "ALIAS_TAKEN");

    // Another tenant cannot see, change or point at the owner's aliases.
    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/v1/proxy/aliases/{alias_id}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/proxy/aliases/{alias_id}"),
            Some(json!({"alias": "stolen"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/proxy/aliases/{alias_id}/state"),
            Some(json!({"enabled": false})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/proxy/aliases/{alias_id}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/proxy/aliases".to_string(),
            Some(json!({"container_id": id, "alias": "mine", "program": "http"})),
        ),
    ] {
        let (s, b) = call(&client, &srv, &other.token, method, &path, body).await;
        assert_eq!(s, 404, "{path}: {b}");
    }
    let (s, body) = call(
        &client,
        &srv,
        &other.token,
        Method::GET,
        "/api/v1/proxy/aliases",
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["count"], 0);
    assert_eq!(through_proxy(&srv, host, "/cgi-bin/env").0, 200);

    // Stopped: the hostnames stay, answering 503 JSON; started: 200 again.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/stop"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (status, body) = through_proxy(&srv, host, "/cgi-bin/env");
    assert_eq!(status, 503, "{body}");
    assert_eq!(code_of(&body), "SERVICE_UNAVAILABLE");
    assert_eq!(through_proxy(&srv, &capability, "/").0, 503);
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/start"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (status, body) = once_listening(&srv, host, "/cgi-bin/env").await;
    assert_eq!(status, 200, "{body}");

    // An ingress rule rejecting us is enforced by the proxy before the
    // API answers; removing it lets us in again.
    let rule = json!({"action": "reject", "protocol": "tcp", "description": "no loopback",
                      "source": "127.0.0.1", "destination_port": "80"});
    let fw = format!("/api/v1/containers/{id}/firewall/ingress");
    let (s, body) = call(&client, &srv, &owner.token, Method::POST, &fw, Some(rule)).await;
    assert!(s.is_success(), "{body}");
    let (status, body) = through_proxy(&srv, host, "/cgi-bin/env");
    assert_eq!(status, 403, "{body}");
    assert_eq!(code_of(&body), "FIREWALL_REJECTED");
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::DELETE,
        &fw,
        Some(json!({"source": "127.0.0.1"})),
    )
    .await;
    assert!(s.is_success(), "{body}");
    assert_eq!(through_proxy(&srv, host, "/cgi-bin/env").0, 200);

    // Disabled aliases answer 404, like unknown hosts.
    let state_path = format!("/api/v1/proxy/aliases/{alias_id}/state");
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &state_path,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["enabled"], false);
    assert_eq!(through_proxy(&srv, host, "/cgi-bin/env").0, 404);
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &state_path,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(through_proxy(&srv, host, "/cgi-bin/env").0, 200);

    // target_path prefixes every path; without override only it is served.
    let alias_path = format!("/api/v1/proxy/aliases/{alias_id}");
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &alias_path,
        Some(json!({"target_path": "cgi-bin"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["target_path"], "/cgi-bin");
    let (status, body) = through_proxy(&srv, host, "/env");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GATEWAY_INTERFACE=CGI"), "{body}");
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &alias_path,
        Some(json!({"target_path": null, "allow_path_override": true})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["target_path"], Value::Null);

    bad_inputs_are_400_naming_the_field(&client, &srv, &owner, &id, &alias_id).await;

    // Expiry: the job disables the alias, which then answers 404.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &alias_path,
        Some(json!({"expires_at": soon})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = call(&client, &srv, &owner.token, Method::GET, &alias_path, None).await;
        if body["data"]["enabled"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "never expired: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(through_proxy(&srv, host, "/cgi-bin/env").0, 404);
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        "/api/v1/proxy/aliases?expired=true",
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["count"], 1);
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &state_path,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body["details"]["enabled"].is_string(), "{body}");

    // Deleted: gone from the API and the proxy.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::DELETE,
        &alias_path,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (status, body) = through_proxy(&srv, host, "/");
    assert_eq!(status, 404);
    assert_eq!(code_of(&body), "ROUTE_NOT_FOUND");
    let (s, _) = call(&client, &srv, &owner.token, Method::GET, &alias_path, None).await;
    assert_eq!(s, 404);

    // A deleted container takes its routes (and aliases) with it.
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        "/api/v1/proxy/aliases",
        Some(json!({"container_id": id, "program": "http-80"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let generated = body["data"]["alias"].as_str().unwrap().to_string();
    assert_eq!(generated.len(), 48);
    let generated_host = format!("{generated}.local.localhost");
    assert_eq!(through_proxy(&srv, &generated_host, "/cgi-bin/env").0, 200);
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::DELETE,
        &format!("/api/v1/containers/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(through_proxy(&srv, &capability, "/").0, 404);
    assert_eq!(through_proxy(&srv, &generated_host, "/").0, 404);
    let (_, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::GET,
        "/api/v1/proxy/aliases",
        None,
    )
    .await;
    assert_eq!(body["data"]["count"], 0, "{body}");
}

/// Every bad input is a 400 naming its field, and changes nothing.
async fn bad_inputs_are_400_naming_the_field(
    client: &Client,
    srv: &Server,
    owner: &Tenant,
    container_id: &str,
    alias_id: &str,
) {
    let past = "2001-01-01T00:00:00Z";
    let creates = [
        (json!({"alias": "ab", "program": "http"}), "alias"),
        (json!({"alias": "a".repeat(62), "program": "http"}), "alias"),
        (json!({"alias": "Bad_Label", "program": "http"}), "alias"),
        (json!({"alias": "-abc", "program": "http"}), "alias"),
        (json!({"alias": "containers", "program": "http"}), "alias"),
        (json!({"alias": "proxy-shop", "program": "http"}), "alias"),
        (json!({"alias": "workspaces", "program": "http"}), "alias"),
        (json!({"alias": 7, "program": "http"}), "alias"),
        (json!({"alias": "fine-one", "program": "gopher"}), "program"),
        (
            json!({"alias": "fine-one", "program": "http-99999"}),
            "program",
        ),
        (json!({"alias": "fine-one"}), "program"),
        (
            json!({"alias": "fine-one", "program": "http", "port": 70000}),
            "port",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "port": "80"}),
            "port",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "index": 0}),
            "index",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "expires_at": "soon"}),
            "expires_at",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "target_path": "/a b"}),
            "target_path",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "target_path": "/a/../b"}),
            "target_path",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "enabled": "yes"}),
            "enabled",
        ),
        (
            json!({"alias": "fine-one", "program": "http", "colour": "red"}),
            "colour",
        ),
    ];
    for (mut body, field) in creates {
        body["container_id"] = json!(container_id);
        let (s, resp) = call(
            client,
            srv,
            &owner.token,
            Method::POST,
            "/api/v1/proxy/aliases",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 400, "{body}: {resp}");
        assert_eq!(resp["code"], "VALIDATION_ERROR", "{body}: {resp}");
        assert!(resp["details"][field].is_string(), "{body}: {resp}");
    }
    let (s, resp) = call(
        client,
        srv,
        &owner.token,
        Method::POST,
        "/api/v1/proxy/aliases",
        Some(json!({"container_id": "nope", "program": "http"})),
    )
    .await;
    assert_eq!(s, 400, "{resp}");
    assert!(resp["details"]["container_id"].is_string(), "{resp}");

    let path = format!("/api/v1/proxy/aliases/{alias_id}");
    let (_, before) = call(client, srv, &owner.token, Method::GET, &path, None).await;
    for (body, field) in [
        (json!({"alias": "x"}), "alias"),
        (json!({"program": "gopher"}), "program"),
        (json!({"port": 0}), "port"),
        (json!({"expires_at": past}), "expires_at"),
        (json!({"expires_at": true}), "expires_at"),
        (json!({"allow_path_override": "no"}), "allow_path_override"),
    ] {
        let (s, resp) = call(
            client,
            srv,
            &owner.token,
            Method::PATCH,
            &path,
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 400, "{body}: {resp}");
        assert!(resp["details"][field].is_string(), "{body}: {resp}");
    }
    let (s, resp) = call(
        client,
        srv,
        &owner.token,
        Method::PATCH,
        &format!("{path}/state"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 400, "{resp}");
    assert!(resp["details"]["enabled"].is_string(), "{resp}");
    let (_, after) = call(client, srv, &owner.token, Method::GET, &path, None).await;
    assert_eq!(
        before["data"], after["data"],
        "a rejected write changed the alias"
    );
    let (_, list) = call(
        client,
        srv,
        &owner.token,
        Method::GET,
        "/api/v1/proxy/aliases",
        None,
    )
    .await;
    assert_eq!(list["data"]["count"], 1, "{list}");
}

#[test]
fn basic_header_encodes_like_rfc_7617() {
    assert_eq!(
        basic("Aladdin", "open sesame"),
        "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
    );
}

/// The main scenario: what a tenant writes through the proxy
/// document API is what the proxy enforces, before the API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_documents_are_enforced_through_the_proxy() {
    let srv = server_on(131);
    let client = Client::builder().no_proxy().build().unwrap();
    let owner = tenant(&client, &srv, "guard@example.com").await;
    let id = container(&client, &srv, &owner, "guarded", true).await;
    let (s, body) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        "/api/v1/proxy/aliases",
        Some(json!({"container_id": id, "alias": "guarded", "program": "http", "port": 80})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let host = "guarded.local.localhost";
    let (status, body) = once_listening(&srv, host, "/cgi-bin/env").await;
    assert_eq!(status, 200, "no document yet: open\n{body}\n{}", srv.log());

    // A password group allowed on http, and everyone else denied.
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
        let (s, b) = call(&client, &srv, &owner.token, method, &path, Some(body)).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let raw = raw_request(
        &format!("127.0.0.1:{}", srv.proxy_port),
        &format!("GET /cgi-bin/env HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .expect("proxy request");
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("www-authenticate: basic"),
        "{raw}"
    );
    let (status, body) = through_proxy_with(&srv, host, "/cgi-bin/env", &basic("alice", "s3cret"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GATEWAY_INTERFACE=CGI"), "{body}");
    let (status, _) = through_proxy_with(&srv, host, "/cgi-bin/env", &basic("alice", "wrong"));
    assert_eq!(status, 401);

    // The owner's container claim passes whatever the groups say, in the
    // header or the cookie; a claim for another container does not.
    let claim_of = |body: &Value| {
        let c = &body["data"]["container_claim"];
        format!(
            "{}.{}",
            c["payload_b64"].as_str().unwrap_or_default(),
            c["signature_hex"].as_str().unwrap_or_default()
        )
    };
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::POST,
        &format!("/api/v1/containers/{id}/authorize"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let claim = claim_of(&b);
    let header = format!("X-Hoody-Container-Claim: {claim}\r\n");
    let (status, body) = through_proxy_with(&srv, host, "/cgi-bin/env", &header);
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_ascii_lowercase().contains("container_claim"),
        "the claim header must not reach the container: {body}"
    );
    let cookie = format!("Cookie: hoody_container_claim={claim}\r\n");
    let (status, _) = through_proxy_with(&srv, host, "/cgi-bin/env", &cookie);
    assert_eq!(status, 200);
    let tampered = format!("X-Hoody-Container-Claim: {claim}00\r\n");
    let (status, _) = through_proxy_with(&srv, host, "/cgi-bin/env", &tampered);
    assert_eq!(status, 401);

    // default: allow opens it to anonymous callers.
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &format!("{doc}/default"),
        Some(json!({"default": "allow"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (status, _) = through_proxy(&srv, host, "/cgi-bin/env");
    assert_eq!(status, 200);

    // Proxy disabled: 503 for everyone, credentials or not.
    let (s, b) = call(
        &client,
        &srv,
        &owner.token,
        Method::PATCH,
        &format!("{doc}/state"),
        Some(json!({"enable_proxy": false})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (status, body) = through_proxy_with(&srv, host, "/cgi-bin/env", &basic("alice", "s3cret"));
    assert_eq!(status, 503, "{body}");

    // A stale If-Match changes nothing: the proxy stays disabled.
    let resp = client
        .patch(srv.url(&format!("{doc}/state")))
        .bearer_auth(&owner.token)
        .header("if-match", "file:v1")
        .json(&json!({"enable_proxy": true}))
        .send()
        .await
        .expect("stale write");
    assert_eq!(resp.status(), 412);
    let (status, _) = through_proxy(&srv, host, "/cgi-bin/env");
    assert_eq!(status, 503);

    // A project-level group reaches the project's other containers.
    let sibling = container(&client, &srv, &owner, "sibling", true).await;
    let pdoc = format!("/api/v1/projects/{}/proxy/permissions", owner.project);
    for (method, path, body) in [
        (
            Method::PUT,
            format!("{pdoc}/groups/ops/password"),
            json!({"username": "ops", "password": "0ps-pass", "salt": "salt"}),
        ),
        (
            Method::PUT,
            format!("{pdoc}/permissions/ops"),
            json!({"program": "http", "access": 80}),
        ),
        (
            Method::PATCH,
            format!("{pdoc}/default"),
            json!({"default": "deny"}),
        ),
    ] {
        let (s, b) = call(&client, &srv, &owner.token, method, &path, Some(body)).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let sibling_host = format!("{}-{sibling}-http-80.local.localhost", owner.project);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (status, _) = through_proxy(&srv, &sibling_host, "/cgi-bin/env");
        if status != 502 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 401, "inherited default deny\n{}", srv.log());
    let (status, body) = through_proxy_with(
        &srv,
        &sibling_host,
        "/cgi-bin/env",
        &basic("ops", "0ps-pass"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GATEWAY_INTERFACE=CGI"), "{body}");
}
