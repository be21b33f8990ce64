//! `projects.*` over the API of the real binary: CRUD, sharing at a level,
//! and deletion with the project's containers.

mod common;

use std::time::Duration;

use common::{admin_create_user, login, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

fn server(n: u8) -> Server {
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
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn user(client: &Client, srv: &Server, email: &str) -> (String, String) {
    let created = admin_create_user(&srv.data_dir, email, "Correct-Horse-9!", false);
    let token = login(client, srv, email, "Correct-Horse-9!").await;
    (token, created["id"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_are_created_listed_updated_and_kept_unique() {
    let mut srv = server(103);
    let client = Client::builder().no_proxy().build().unwrap();
    let (token, _) = user(&client, &srv, "p1@example.com").await;

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::POST,
        "/api/v1/projects/",
        Some(json!({"alias": "Production", "color": "a1b2c3", "max_containers": 5})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let p = &body["data"];
    assert_eq!(p["color"], "#A1B2C3");
    assert_eq!(p["max_containers"], 5);
    assert_eq!(p["is_default"], false);
    let id = p["id"].as_str().unwrap().to_string();

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"alias": "production"})),
    )
    .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["code"], "PROJECT_ALIAS_EXISTS");

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"alias": "", "color": "#12345"})),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body["details"]["alias"].is_string() && body["details"]["color"].is_string());

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::PUT,
        &format!("/api/v1/projects/{id}"),
        Some(json!({"alias": "Prod", "max_containers": null})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["alias"], "Prod");
    assert!(body["data"]["max_containers"].is_null());
    assert_eq!(body["data"]["color"], "#A1B2C3");

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        "/api/v1/projects/?sort_by=alias&sort_order=asc&limit=1",
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["pagination"]["total"], 2);
    assert_eq!(body["data"]["pagination"]["totalPages"], 2);
    assert_eq!(body["data"]["projects"][0]["alias"], "default");

    let (s, _) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        "/api/v1/projects/?sort_by=color",
        None,
    )
    .await;
    assert_eq!(s, 400);

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::DELETE,
        &format!("/api/v1/projects/{id}?include_deleted_items=true"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["deleted"]["containers"], 0);
    assert!(body["data"]["deleted_items"]["containers"].is_array());
    let (s, _) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        &format!("/api/v1/projects/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grantees_are_held_to_their_level_and_strangers_see_nothing() {
    let mut srv = server(104);
    let client = Client::builder().no_proxy().build().unwrap();
    let (owner, _) = user(&client, &srv, "owner@example.com").await;
    let (guest, guest_id) = user(&client, &srv, "guest@example.com").await;
    let (stranger, _) = user(&client, &srv, "stranger@example.com").await;

    let (_, body) = call(
        &client,
        &srv,
        &owner,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"alias": "shared"})),
    )
    .await;
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/projects/{id}");

    let (s, body) = call(
        &client,
        &srv,
        &owner,
        Method::POST,
        &format!("{path}/permissions"),
        Some(json!({"user_id": guest_id, "permission_level": "read"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["user"]["id"], guest_id.as_str());
    let grant = body["data"]["id"].as_str().unwrap().to_string();

    // Read: visible, listed, not editable, cannot manage grants.
    let (s, _) = call(&client, &srv, &guest, Method::GET, &path, None).await;
    assert_eq!(s, 200);
    let (_, body) = call(&client, &srv, &guest, Method::GET, "/api/v1/projects", None).await;
    assert!(body["data"]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == id.as_str()));
    let (s, body) = call(
        &client,
        &srv,
        &guest,
        Method::PUT,
        &path,
        Some(json!({"alias": "mine"})),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, _) = call(
        &client,
        &srv,
        &guest,
        Method::POST,
        &format!("{path}/permissions"),
        Some(json!({"user_id": guest_id, "permission_level": "delete"})),
    )
    .await;
    assert_eq!(s, 403);

    // Edit: may update, still may not delete.
    let (s, body) = call(
        &client,
        &srv,
        &owner,
        Method::PUT,
        &format!("{path}/permissions/{grant}"),
        Some(json!({"permission_level": "edit"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["permission_level"], "edit");
    let (s, _) = call(
        &client,
        &srv,
        &guest,
        Method::PUT,
        &path,
        Some(json!({"alias": "renamed"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&client, &srv, &guest, Method::DELETE, &path, None).await;
    assert_eq!(s, 403);

    // Strangers get 404 everywhere.
    for (m, p) in [
        (Method::GET, path.clone()),
        (Method::GET, format!("{path}/permissions")),
        (Method::DELETE, path.clone()),
        (Method::GET, format!("{path}/containers")),
    ] {
        let (s, _) = call(&client, &srv, &stranger, m, &p, None).await;
        assert_eq!(s, 404, "{p}");
    }

    let (s, body) = call(
        &client,
        &srv,
        &owner,
        Method::GET,
        &format!("{path}?include_permissions=true"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["permissions"].as_array().unwrap().len(), 1);

    let (s, _) = call(
        &client,
        &srv,
        &owner,
        Method::DELETE,
        &format!("{path}/permissions/{grant}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&client, &srv, &guest, Method::GET, &path, None).await;
    assert_eq!(s, 404);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_project_removes_its_containers_and_keeps_the_default() {
    let mut srv = server(105);
    let client = Client::builder().no_proxy().build().unwrap();
    let (token, _) = user(&client, &srv, "del@example.com").await;
    let (_, body) = call(&client, &srv, &token, Method::GET, "/api/v1/projects", None).await;
    let default = body["data"]["projects"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::DELETE,
        &format!("/api/v1/projects/{default}"),
        None,
    )
    .await;
    assert_eq!(s, 409, "{body}");

    let (_, body) = call(
        &client,
        &srv,
        &token,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"alias": "doomed"})),
    )
    .await;
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::POST,
        &format!("/api/v1/projects/{id}/containers"),
        Some(json!({"server_id": control::servers::model::node_server_id("local"), "name": "doomed-box"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["status"], "running");
    let cid = body["data"]["id"].as_str().unwrap().to_string();

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        &format!("/api/v1/projects/{id}/stats"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["summary"]["container_count"], 1);
    assert_eq!(body["data"]["stats"][0]["status"], "running");

    let (s, body) = call(
        &client,
        &srv,
        &token,
        Method::DELETE,
        &format!("/api/v1/projects/{id}?include_deleted_items=true"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["deleted"]["containers"], 1);
    assert_eq!(
        body["data"]["deleted_items"]["containers"][0]["id"],
        cid.as_str()
    );
    assert!(!srv.data_dir.join("runtime/containers").join(&cid).exists());
    let (s, _) = call(
        &client,
        &srv,
        &token,
        Method::GET,
        &format!("/api/v1/containers/{cid}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    srv.stop();
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "hct105"])
        .status();
}
