//! Proxy documents over the API of the real binary: `proxyPermissionsContainer.*`,
//! `proxyPermissionsProject.*`, `proxyDiscovery.*` and `proxyHooks.*`, with
//! their etags, preconditions, validation and inheritance. Containers are
//! real (created stopped on the runc runtime), so this needs root; each test
//! server has its own bridge `hct12x` and subnet `10.214.12x.0/24`.

mod common;

use std::time::Duration;

use common::{admin_create_user, login, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

fn server(n: u8, extra: &[&str]) -> Server {
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &format!("hct{n}")])
        .stderr(std::process::Stdio::null())
        .status();
    let bridge = format!("hct{n}");
    let subnet = format!("10.214.{n}.0/24");
    let mut args = vec!["--runtime-bridge", &bridge, "--runtime-subnet", &subnet];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

struct Api {
    client: Client,
    srv: Server,
}

struct Tenant {
    token: String,
    project: String,
}

impl Api {
    fn new(srv: Server) -> Api {
        Api {
            client: Client::builder().no_proxy().build().unwrap(),
            srv,
        }
    }

    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        if_match: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = self
            .client
            .request(method, self.srv.url(path))
            .bearer_auth(token)
            .timeout(Duration::from_secs(60));
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, resp.json().await.unwrap_or(Value::Null), etag)
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, b, _) = self.send(token, method, path, None, body).await;
        (s, b)
    }

    async fn tenant(&self, email: &str) -> Tenant {
        admin_create_user(&self.srv.data_dir, email, "Correct-Horse-9!", false);
        let token = login(&self.client, &self.srv, email, "Correct-Horse-9!").await;
        let (s, body) = self
            .call(&token, Method::GET, "/api/v1/projects/", None)
            .await;
        assert_eq!(s, 200, "{body}");
        let project = body["data"]["projects"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["is_default"] == true))
            .and_then(|p| p["id"].as_str())
            .expect("default project")
            .to_string();
        Tenant { token, project }
    }

    /// A stopped busybox container of the tenant's default project.
    async fn container(&self, t: &Tenant, name: &str) -> String {
        let (s, body) = self
            .call(
                &t.token,
                Method::POST,
                &format!("/api/v1/projects/{}/containers", t.project),
                Some(
                    json!({"name": name, "container_image": "busybox", "autostart": false,
                            "server_id": control::servers::model::node_server_id("local")}),
                ),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        body["data"]["id"].as_str().unwrap().to_string()
    }

    async fn document(&self, t: &Tenant, path: &str) -> Value {
        let (s, body) = self.call(&t.token, Method::GET, path, None).await;
        assert_eq!(s, 200, "{body}");
        body["data"].clone()
    }

    async fn events(&self, t: &Tenant, event_type: &str) -> Vec<Value> {
        let (s, body) = self
            .call(
                &t.token,
                Method::GET,
                &format!("/api/v1/events?event_type={event_type}&limit=100"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["data"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn cdoc(id: &str) -> String {
    format!("/api/v1/containers/{id}/proxy/permissions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_document_setters_answer_the_contract_shapes_with_etags() {
    let api = Api::new(server(120, &[]));
    let t = api.tenant("docs@example.com").await;
    let id = api.container(&t, "web").await;
    let doc = cdoc(&id);

    // Before any write: the empty document at version 0.
    let d = api.document(&t, &doc).await;
    assert_eq!(d["project"], t.project.as_str());
    assert_eq!(d["container"], id.as_str());
    assert_eq!(d["groups"], json!({}));
    assert_eq!(d["permissions"], json!({}));
    assert_eq!(d["default"], "deny");
    assert_eq!(d["enable_proxy"], true);
    assert_eq!(d["hooks"], json!({}));
    assert_eq!(d["schema_version"], 1);
    assert_eq!(d["file_version"], 0);
    assert_eq!(d["etag"], "file:v0");

    // A password group: stored as the salted digest, never in plaintext.
    let (s, body, etag) = api
        .send(
            &t.token,
            Method::PUT,
            &format!("{doc}/groups/team/password"),
            Some("file:v0"),
            Some(json!({"username": "alice", "password": "s3cret", "salt": "pepper"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let d = &body["data"];
    assert_eq!(d["etag"], "file:v1");
    assert_eq!(etag.as_deref(), Some("\"file:v1\""));
    assert_eq!(d["groups"]["team"]["type"], "password");
    assert_eq!(d["groups"]["team"]["username"], "alice");
    let stored = d["groups"]["team"]["password"].as_str().unwrap();
    assert_eq!(stored.len(), 64);
    assert_ne!(stored, "s3cret");

    // Each setter moves the version by one.
    let steps: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PUT,
            format!("{doc}/groups/office/ip"),
            Some(json!({"range": "192.168.1.0/24"})),
        ),
        (
            Method::PUT,
            format!("{doc}/groups/apps/jwt"),
            Some(json!({"secret": "k", "algorithm": "HS256",
                        "sources": ["header:Authorization", "cookie:session"],
                        "claims": {"role": "admin", "level": 3}})),
        ),
        (
            Method::PUT,
            format!("{doc}/groups/bots/token"),
            Some(json!({"header": "X-Api-Key", "value": "abc"})),
        ),
        (
            Method::PUT,
            format!("{doc}/permissions/team"),
            Some(json!({"program": "http", "access": [3000, 8080]})),
        ),
        (
            Method::PUT,
            format!("{doc}/permissions/team"),
            Some(json!({"program": "files", "access": true})),
        ),
        (
            Method::PUT,
            format!("{doc}/permissions/office"),
            Some(json!({"program": "terminal", "access": "7000-7010"})),
        ),
        (
            Method::PATCH,
            format!("{doc}/default"),
            Some(json!({"default": "allow"})),
        ),
        (
            Method::PATCH,
            format!("{doc}/state"),
            Some(json!({"enable_proxy": false})),
        ),
    ];
    let mut version = 1;
    for (method, path, body) in steps {
        let (s, resp) = api.call(&t.token, method, &path, body).await;
        version += 1;
        assert_eq!(s, 200, "{path}: {resp}");
        assert_eq!(resp["data"]["etag"], format!("file:v{version}"), "{path}");
        assert_eq!(resp["data"]["project"], t.project.as_str());
        assert_eq!(resp["data"]["container"], id.as_str());
    }
    let d = api.document(&t, &doc).await;
    assert_eq!(d["file_version"], version);
    assert_eq!(
        d["groups"]["office"],
        json!({"type": "ip", "range": "192.168.1.0/24"})
    );
    assert_eq!(d["groups"]["apps"]["algorithm"], "HS256");
    assert_eq!(d["groups"]["apps"]["claims"]["level"], 3);
    assert_eq!(d["groups"]["bots"]["header"], "X-Api-Key");
    assert_eq!(
        d["permissions"]["team"],
        json!({"http": [3000, 8080], "files": true})
    );
    assert_eq!(d["permissions"]["office"]["terminal"], "7000-7010");
    assert_eq!(d["default"], "allow");
    assert_eq!(d["enable_proxy"], false);

    // Settings read and write the same document.
    let (s, body) = api
        .call(
            &t.token,
            Method::GET,
            &format!("/api/v1/containers/{id}/proxy/settings"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"enable_proxy": false, "default": "allow", "file_version": version,
               "etag": format!("file:v{version}")})
    );
    let (s, body) = api
        .call(
            &t.token,
            Method::PUT,
            &format!("/api/v1/containers/{id}/proxy/settings"),
            Some(json!({"enable_proxy": true})),
        )
        .await;
    version += 1;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["enable_proxy"], true);
    assert_eq!(body["data"]["default"], "allow");
    assert_eq!(body["data"]["etag"], format!("file:v{version}"));

    // Groups and services.
    let (s, body) = api
        .call(
            &t.token,
            Method::GET,
            &format!("/api/v1/containers/{id}/proxy/groups"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let groups = body["data"]["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["apps", "bots", "office", "team"]);
    let team = groups.iter().find(|g| g["name"] == "team").unwrap();
    assert_eq!(team["auth_rule_count"], 2);
    assert_eq!(body["data"]["file_version"], version);
    let (s, body) = api
        .call(
            &t.token,
            Method::GET,
            &format!("/api/v1/containers/{id}/proxy/services"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let services = body["data"]["services"].as_array().unwrap();
    for name in ["files", "http", "terminal"] {
        assert!(services.iter().any(|s| s == name), "{name} in {services:?}");
    }

    // Removals, and a 404 for what is not there.
    let (s, body) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("{doc}/permissions/team/files"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["data"]["permissions"]["team"],
        json!({"http": [3000, 8080]})
    );
    let (s, body) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("{doc}/permissions/team/files"),
            None,
        )
        .await;
    assert_eq!(s, 404, "{body}");
    let (s, body) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("{doc}/permissions/office"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["data"]["permissions"].get("office").is_none());
    let (s, body) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("{doc}/groups/bots"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["data"]["groups"].get("bots").is_none());
    let (s, body) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("{doc}/groups/bots"),
            None,
        )
        .await;
    assert_eq!(s, 404, "{body}");
    version += 3;

    // Replace takes the whole document.
    let (s, body) = api
        .call(
            &t.token,
            Method::PUT,
            &doc,
            Some(json!({
                "project": t.project, "container": id,
                "groups": {"ops": {"type": "ip", "range": "10.0.0.0/8"}},
                "permissions": {"ops": {"http": "*", "ssh": 22}},
                "default": "deny",
            })),
        )
        .await;
    version += 1;
    assert_eq!(s, 200, "{body}");
    let d = &body["data"];
    assert_eq!(
        d["groups"],
        json!({"ops": {"type": "ip", "range": "10.0.0.0/8"}})
    );
    assert_eq!(d["permissions"], json!({"ops": {"http": "*", "ssh": 22}}));
    assert_eq!(d["default"], "deny");
    assert_eq!(d["etag"], format!("file:v{version}"));

    // Delete: back to the empty document, and the version keeps counting.
    let (s, body) = api.call(&t.token, Method::DELETE, &doc, None).await;
    version += 1;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["groups"], json!({}));
    assert_eq!(body["data"]["etag"], format!("file:v{version}"));

    // Every write recorded its event.
    assert_eq!(
        api.events(&t, "proxy.permissions.group_added").await.len(),
        4
    );
    assert_eq!(
        api.events(&t, "proxy.permissions.group_removed")
            .await
            .len(),
        1
    );
    let changed = api.events(&t, "proxy.permissions.default_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["resource_type"], "proxy_permissions");
    assert_eq!(changed[0]["resource_id"], id.as_str());
    assert_eq!(changed[0]["container_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_match_is_412_in_header_or_query_and_changes_nothing() {
    let api = Api::new(server(121, &[]));
    let t = api.tenant("etag@example.com").await;
    let id = api.container(&t, "web").await;
    let doc = cdoc(&id);
    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default"),
            None,
            Some(json!({"default": "allow"})),
        )
        .await;
    assert_eq!(s, 200, "without If-Match the write applies: {body}");
    assert_eq!(body["data"]["etag"], "file:v1");

    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default"),
            Some("file:v0"),
            Some(json!({"default": "deny"})),
        )
        .await;
    assert_eq!(s, 412, "{body}");
    assert_eq!(body["code"], "ETAG_MISMATCH");
    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default?ifMatch=file%3Av0"),
            None,
            Some(json!({"default": "deny"})),
        )
        .await;
    assert_eq!(s, 412, "{body}");
    assert_eq!(body["code"], "ETAG_MISMATCH");
    let d = api.document(&t, &doc).await;
    assert_eq!(d["default"], "allow");
    assert_eq!(d["etag"], "file:v1");

    // The current tag, as the ETag header quotes it or as the SDK's query.
    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default"),
            Some("\"file:v1\""),
            Some(json!({"default": "deny"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/state?ifMatch=file:v2"),
            None,
            Some(json!({"enable_proxy": false})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["etag"], "file:v3");

    // A tag read before a delete stays stale after it.
    let (s, body, _) = api
        .send(&t.token, Method::DELETE, &doc, Some("file:v3"), None)
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default"),
            Some("file:v3"),
            Some(json!({"default": "allow"})),
        )
        .await;
    assert_eq!(s, 412, "{body}");
    let (s, body, _) = api
        .send(
            &t.token,
            Method::DELETE,
            &format!("{doc}/groups/nope"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_if_match_are_428_when_the_server_requires_it() {
    let api = Api::new(server(122, &["--require-if-match", "true"]));
    let t = api.tenant("strict@example.com").await;
    let doc = format!("/api/v1/projects/{}/proxy/permissions", t.project);
    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default"),
            None,
            Some(json!({"default": "allow"})),
        )
        .await;
    assert_eq!(s, 428, "{body}");
    assert_eq!(body["code"], "PRECONDITION_REQUIRED");
    assert_eq!(api.document(&t, &doc).await["file_version"], 0);
    let (s, body, _) = api
        .send(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default"),
            Some("file:v0"),
            Some(json!({"default": "allow"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["etag"], "file:v1");
    // Reads never need it.
    assert_eq!(api.document(&t, &doc).await["default"], "allow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setter_rejects_bad_input_naming_the_field_and_leaves_the_document_unchanged() {
    let api = Api::new(server(123, &[]));
    let t = api.tenant("bad@example.com").await;
    let id = api.container(&t, "web").await;
    let doc = cdoc(&id);
    let pdoc = format!("/api/v1/projects/{}/proxy/permissions", t.project);
    let (s, body) = api
        .call(
            &t.token,
            Method::PUT,
            &format!("{doc}/groups/team/password"),
            Some(json!({"username": "u", "password": "p", "salt": "s"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let before = api.document(&t, &doc).await;
    let pbefore = api.document(&t, &pdoc).await;

    let cases: Vec<(String, Value, &str)> = vec![
        (
            format!("{doc}/groups/office/ip"),
            json!({"range": "192.168.1.0/33"}),
            "range",
        ),
        (
            format!("{doc}/groups/office/ip"),
            json!({"range": "10.0.0.1"}),
            "range",
        ),
        (
            format!("{doc}/groups/office/ip"),
            json!({"range": "not-a-cidr"}),
            "range",
        ),
        (
            format!("{doc}/groups/bad%20name/ip"),
            json!({"range": "10.0.0.0/8"}),
            "groupName",
        ),
        (
            format!("{doc}/groups/apps/jwt"),
            json!({"secret": "", "algorithm": "HS256", "sources": ["header:X"]}),
            "secret",
        ),
        (
            format!("{doc}/groups/apps/jwt"),
            json!({"secret": "k", "algorithm": "HS512", "sources": ["header:X"]}),
            "algorithm",
        ),
        (
            format!("{doc}/groups/apps/jwt"),
            json!({"secret": "k", "algorithm": "HS256", "sources": []}),
            "sources",
        ),
        (
            format!("{doc}/groups/apps/jwt"),
            json!({"secret": "k", "algorithm": "HS256", "sources": ["param:token"]}),
            "sources[0]",
        ),
        (
            format!("{doc}/groups/apps/jwt"),
            json!({"secret": "not a pem", "algorithm": "RS256", "sources": ["header:X"]}),
            "secret",
        ),
        (
            format!("{doc}/groups/apps/jwt"),
            json!({"secret": "k", "algorithm": "HS256", "sources": ["header:X"],
                   "claims": {"roles": ["a"]}}),
            "claims.roles",
        ),
        (
            format!("{doc}/groups/team/password"),
            json!({"username": "", "password": "p", "salt": "s"}),
            "username",
        ),
        (
            format!("{doc}/groups/team/password"),
            json!({"username": "u", "password": "p", "salt": "s", "algorithm": "md5"}),
            "algorithm",
        ),
        (
            format!("{doc}/groups/bots/token"),
            json!({"value": "v"}),
            "header",
        ),
        (
            format!("{doc}/groups/bots/token"),
            json!({"header": "X-Key", "cookie": "k", "value": "v"}),
            "header",
        ),
        (
            format!("{doc}/groups/bots/token"),
            json!({"header": "X-Key", "value": ""}),
            "value",
        ),
        (
            format!("{doc}/permissions/team"),
            json!({"program": "files", "access": 3000}),
            "access",
        ),
        (
            format!("{doc}/permissions/team"),
            json!({"program": "http", "access": {"port": 1}}),
            "access",
        ),
        (
            format!("{doc}/permissions/team"),
            json!({"program": "http", "access": "80-"}),
            "access",
        ),
        (
            format!("{doc}/permissions/team"),
            json!({"program": "http", "access": 70000}),
            "access",
        ),
        (
            format!("{doc}/permissions/team"),
            json!({"program": "", "access": true}),
            "program",
        ),
        (
            format!("{doc}/default"),
            json!({"default": "maybe"}),
            "default",
        ),
        (
            format!("{doc}/state"),
            json!({"enable_proxy": "yes"}),
            "enable_proxy",
        ),
        (
            doc.clone(),
            json!({"project": t.project, "container": id,
                   "groups": {"g": {"type": "ip", "range": "1.2.3.4/40"}}, "permissions": {}}),
            "groups.g.range",
        ),
        (
            doc.clone(),
            json!({"project": t.project, "container": id,
                   "groups": {"g": {"type": "radius"}}, "permissions": {}}),
            "groups.g.type",
        ),
        (
            doc.clone(),
            json!({"project": t.project, "container": id,
                   "groups": {}, "permissions": {"g": {"exec": "*"}}}),
            "permissions.g.exec",
        ),
        (
            doc.clone(),
            json!({"project": t.project, "container": "0123456789abcdef01234567",
                   "groups": {}, "permissions": {}}),
            "container",
        ),
        (
            doc.clone(),
            json!({"project": t.project, "container": id, "groups": {}, "permissions": {},
                   "hooks": {"http": [{"match": {}, "script": {"path": "a.wasm"}, "timeout": 0}]}}),
            "hooks.http[0].timeout",
        ),
        (
            pdoc.clone(),
            json!({"project": t.project, "groups": {"g": {"type": "jwt", "secret": "",
                   "algorithm": "HS256", "sources": ["header:X"]}}, "permissions": {}}),
            "groups.g.secret",
        ),
        (
            format!("{pdoc}/groups/office/ip"),
            json!({"range": "300.0.0.0/8"}),
            "range",
        ),
    ];
    for (path, body, field) in cases {
        let method = if path.ends_with("/default") || path.ends_with("/state") {
            Method::PATCH
        } else {
            Method::PUT
        };
        let (s, resp) = api.call(&t.token, method, &path, Some(body.clone())).await;
        assert_eq!(s, 400, "{path} {body}: {resp}");
        assert_eq!(resp["code"], "VALIDATION_ERROR", "{resp}");
        assert!(
            resp["details"].get(field).is_some(),
            "{path} {body}: expected `{field}` in {resp}"
        );
    }
    assert_eq!(api.document(&t, &doc).await, before);
    assert_eq!(api.document(&t, &pdoc).await, pbefore);
}

fn hook(path: &str) -> Value {
    json!({"match": {"method": ["GET", "HEAD"], "path": "/api/**"}, "script": {"path": path}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_lists_keep_first_match_order_limits_and_ulid_ids() {
    let api = Api::new(server(124, &[]));
    let t = api.tenant("hooks@example.com").await;
    let id = api.container(&t, "web").await;
    let base = format!("/api/v1/containers/{id}/proxy/hooks");

    // Append, then insert at the front and in the middle.
    let mut ids = Vec::new();
    for (path, position) in [("a.wasm", None), ("b.wasm", Some(0)), ("c.wasm", Some(1))] {
        let mut body = hook(path);
        if let Some(p) = position {
            body["position"] = json!(p);
        }
        let (s, resp) = api
            .call(
                &t.token,
                Method::POST,
                &format!("{base}/http-3000"),
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "{resp}");
        let h = &resp["data"]["hook"];
        let hid = h["id"].as_str().unwrap().to_string();
        assert_eq!(hid.len(), 26);
        assert!(
            hid.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
            "{hid}"
        );
        assert_eq!(h["script"]["path"], path);
        assert_eq!(h["position"], position.unwrap_or(0));
        ids.push(hid);
    }
    let order = |resp: &Value| -> Vec<String> {
        resp["data"]["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["script"]["path"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, resp) = api
        .call(&t.token, Method::GET, &format!("{base}/http-3000"), None)
        .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["data"]["service"], "http-3000");
    assert_eq!(order(&resp), ["b.wasm", "c.wasm", "a.wasm"]);
    assert_eq!(resp["data"]["hooks"][2]["position"], 2);
    assert_eq!(resp["data"]["etag"], "file:v3");

    // Move the last to the front; a position past the end means last.
    let (s, resp) = api
        .call(
            &t.token,
            Method::PATCH,
            &format!("{base}/http-3000/{}/position", ids[0]),
            Some(json!({"position": 0})),
        )
        .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["data"]["hook"]["position"], 0);
    let (s, resp) = api
        .call(
            &t.token,
            Method::PATCH,
            &format!("{base}/http-3000/{}/position", ids[1]),
            Some(json!({"position": 99})),
        )
        .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["data"]["hook"]["position"], 2);
    let (_, resp) = api
        .call(&t.token, Method::GET, &format!("{base}/http-3000"), None)
        .await;
    assert_eq!(order(&resp), ["a.wasm", "c.wasm", "b.wasm"]);

    // Update keeps the id and takes our extension fields.
    let mut body = hook("c2.wasm");
    body["timeout"] = json!(250);
    body["applies_to"] = json!({"groups": ["team"]});
    body["script"]["config"] = json!("{\"mode\":\"strict\"}");
    body["fresh_instance"] = json!(true);
    body["failure_mode"] = json!("fail-open");
    let (s, resp) = api
        .call(
            &t.token,
            Method::PUT,
            &format!("{base}/http-3000/{}", ids[2]),
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{resp}");
    let h = &resp["data"]["hook"];
    assert_eq!(h["id"], ids[2].as_str());
    assert_eq!(h["position"], 1);
    assert_eq!(h["timeout"], 250);
    assert_eq!(h["applies_to"]["groups"], json!(["team"]));
    assert_eq!(h["script"]["config"], "{\"mode\":\"strict\"}");
    assert_eq!(h["fresh_instance"], true);
    assert_eq!(h["failure_mode"], "fail-open");
    let (s, resp) = api
        .call(
            &t.token,
            Method::GET,
            &format!("{base}/http-3000/{}", ids[2]),
            None,
        )
        .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["data"]["hook"]["script"]["path"], "c2.wasm");

    // The hooks are part of the document.
    let d = api.document(&t, &cdoc(&id)).await;
    assert_eq!(d["hooks"]["http-3000"].as_array().unwrap().len(), 3);

    // Bad hooks and bad services.
    let before = api.document(&t, &cdoc(&id)).await;
    let bad: Vec<(&str, Value, &str)> = vec![
        ("logs", hook("x.wasm"), "service"),
        ("cdp-9222", hook("x.wasm"), "service"),
        ("HTTP", hook("x.wasm"), "service"),
        ("http-0", hook("x.wasm"), "service"),
        (
            "http",
            json!({"match": {}, "script": {"path": "x.wasm"}, "timeout": 0}),
            "timeout",
        ),
        (
            "http",
            json!({"match": {}, "script": {"path": "x.wasm"}, "timeout": 30001}),
            "timeout",
        ),
        (
            "http",
            json!({"match": {}, "script": {"path": ""}}),
            "script.path",
        ),
        (
            "http",
            json!({"match": {"path": "no-slash"}, "script": {"path": "x"}}),
            "match.path",
        ),
        (
            "http",
            json!({"match": {"method": "get"}, "script": {"path": "x"}}),
            "match.method",
        ),
        (
            "http",
            json!({"match": {}, "script": {"path": "x"}, "applies_to": {"groups": ["a b"]}}),
            "applies_to.groups[0]",
        ),
        (
            "http",
            json!({"match": {}, "script": {"path": "x"}, "failure_mode": "explode"}),
            "failure_mode",
        ),
        ("http", json!({"script": {"path": "x"}}), "match"),
    ];
    for (service, body, field) in bad {
        let (s, resp) = api
            .call(
                &t.token,
                Method::POST,
                &format!("{base}/{service}"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{service} {body}: {resp}");
        assert!(
            resp["details"].get(field).is_some(),
            "{service}: `{field}` in {resp}"
        );
    }
    assert_eq!(api.document(&t, &cdoc(&id)).await, before);

    // At most 8 per service.
    for i in 3..8 {
        let (s, resp) = api
            .call(
                &t.token,
                Method::POST,
                &format!("{base}/http-3000"),
                Some(hook(&format!("{i}.wasm"))),
            )
            .await;
        assert_eq!(s, 201, "{resp}");
    }
    let (s, resp) = api
        .call(
            &t.token,
            Method::POST,
            &format!("{base}/http-3000"),
            Some(hook("9.wasm")),
        )
        .await;
    assert_eq!(s, 400, "{resp}");
    assert!(
        resp["details"]["hooks"].as_str().unwrap().contains('8'),
        "{resp}"
    );

    // At most 32 per document.
    for service in ["http", "terminal", "ssh"] {
        for i in 0..8 {
            let (s, resp) = api
                .call(
                    &t.token,
                    Method::POST,
                    &format!("{base}/{service}"),
                    Some(hook(&format!("{i}.wasm"))),
                )
                .await;
            assert_eq!(s, 201, "{service} {i}: {resp}");
        }
    }
    let (s, resp) = api
        .call(
            &t.token,
            Method::POST,
            &format!("{base}/ui"),
            Some(hook("x.wasm")),
        )
        .await;
    assert_eq!(s, 400, "{resp}");
    assert!(
        resp["details"]["hooks"].as_str().unwrap().contains("32"),
        "{resp}"
    );
    let (s, resp) = api.call(&t.token, Method::GET, &base, None).await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["data"]["hooks"].as_object().unwrap().len(), 4);

    // A replace over the limits is refused as a whole.
    let mut doc = api.document(&t, &cdoc(&id)).await;
    let mut list = doc["hooks"]["ssh"].as_array().unwrap().clone();
    let mut extra = list[0].clone();
    extra.as_object_mut().unwrap().remove("id");
    list.push(extra);
    doc["hooks"]["ssh"] = json!(list);
    for k in ["schema_version", "file_version", "etag"] {
        doc.as_object_mut().unwrap().remove(k);
    }
    let (s, resp) = api.call(&t.token, Method::PUT, &cdoc(&id), Some(doc)).await;
    assert_eq!(s, 400, "{resp}");
    assert!(resp["details"].get("hooks.ssh").is_some(), "{resp}");

    // Remove one, clear a service.
    let (s, resp) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("{base}/http-3000/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(s, 200, "{resp}");
    assert!(resp["data"]["etag"].as_str().unwrap().starts_with("file:v"));
    let (s, resp) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("{base}/http-3000/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(s, 404, "{resp}");
    let (s, resp) = api
        .call(&t.token, Method::DELETE, &format!("{base}/terminal"), None)
        .await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["data"]["removed"], 8);
    let (_, resp) = api
        .call(&t.token, Method::GET, &format!("{base}/terminal"), None)
        .await;
    assert_eq!(resp["data"]["hooks"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_documents_are_inherited_and_other_tenants_get_404() {
    let api = Api::new(server(125, &[]));
    let t = api.tenant("proj@example.com").await;
    let other = api.tenant("intruder@example.com").await;
    let id = api.container(&t, "web").await;
    let pdoc = format!("/api/v1/projects/{}/proxy/permissions", t.project);

    let (s, body) = api
        .call(
            &t.token,
            Method::PUT,
            &pdoc,
            Some(json!({
                "project": t.project,
                "groups": {"staff": {"type": "password", "username": "s", "password": "p", "salt": "x"},
                           "office": {"type": "ip", "range": "10.1.0.0/16"}},
                "permissions": {"staff": {"http": true}, "office": {"http": 3000}},
                "default": "allow",
            })),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["project"], t.project.as_str());
    assert!(body["data"].get("container").is_none());
    assert_eq!(body["data"]["etag"], "file:v1");

    // The container's own document overrides one rule and the default.
    let doc = cdoc(&id);
    let (s, body) = api
        .call(
            &t.token,
            Method::PUT,
            &format!("{doc}/permissions/office"),
            Some(json!({"program": "http", "access": [8080]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let view = format!("/api/v1/containers/{id}/proxy/services/http-3000");
    let (s, body) = api.call(&t.token, Method::GET, &view, None).await;
    assert_eq!(s, 200, "{body}");
    let v = &body["data"];
    assert_eq!(v["service"], "http-3000");
    assert_eq!(v["is_reject_listed"], false);
    assert_eq!(
        v["permissions_raw"],
        json!({"staff": true, "office": [8080]})
    );
    assert_eq!(v["effective_default"], "allow");
    assert_eq!(v["etag"], "file:v1");

    let (s, body) = api
        .call(
            &t.token,
            Method::PATCH,
            &format!("{doc}/default"),
            Some(json!({"default": "deny"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (_, body) = api.call(&t.token, Method::GET, &view, None).await;
    assert_eq!(body["data"]["effective_default"], "deny");

    let (s, body) = api
        .call(
            &t.token,
            Method::GET,
            &format!("/api/v1/containers/{id}/proxy/groups"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let groups = body["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert!(groups.iter().all(|g| g["source"] == "project"), "{body}");

    // Hooks of the port's list come before the program-wide list.
    let hooks = format!("/api/v1/containers/{id}/proxy/hooks");
    for (service, path) in [("http", "wide.wasm"), ("http-3000", "port.wasm")] {
        let (s, body) = api
            .call(
                &t.token,
                Method::POST,
                &format!("{hooks}/{service}"),
                Some(hook(path)),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let (_, body) = api.call(&t.token, Method::GET, &view, None).await;
    let listed: Vec<&str> = body["data"]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["script"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["port.wasm", "wide.wasm"]);
    let (_, body) = api
        .call(
            &t.token,
            Method::GET,
            &format!("/api/v1/containers/{id}/proxy/services/logs"),
            None,
        )
        .await;
    assert_eq!(body["data"]["is_reject_listed"], true);

    // Another tenant sees nothing of either document.
    let before = api.document(&t, &doc).await;
    let pbefore = api.document(&t, &pdoc).await;
    let probes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, doc.clone(), None),
        (Method::DELETE, doc.clone(), None),
        (
            Method::PATCH,
            format!("{doc}/default"),
            Some(json!({"default": "allow"})),
        ),
        (
            Method::PUT,
            format!("{doc}/groups/x/ip"),
            Some(json!({"range": "0.0.0.0/0"})),
        ),
        (
            Method::GET,
            format!("/api/v1/containers/{id}/proxy/settings"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/containers/{id}/proxy/groups"),
            None,
        ),
        (Method::GET, view.clone(), None),
        (Method::GET, hooks.clone(), None),
        (
            Method::POST,
            format!("{hooks}/http"),
            Some(hook("evil.wasm")),
        ),
        (Method::GET, pdoc.clone(), None),
        (
            Method::PATCH,
            format!("{pdoc}/state"),
            Some(json!({"enable_proxy": false})),
        ),
        (Method::DELETE, pdoc.clone(), None),
    ];
    for (method, path, body) in probes {
        let (s, resp) = api.call(&other.token, method.clone(), &path, body).await;
        assert_eq!(s, 404, "{method} {path}: {resp}");
    }
    assert_eq!(api.document(&t, &doc).await, before);
    assert_eq!(api.document(&t, &pdoc).await, pbefore);
}

/// Hex of `text`'s bytes, as the backup file writes keys and values.
fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Entries of the `proxy_*` trees (documents, aliases and their indexes)
/// whose key or value mentions `id`, from an online backup of the store.
fn proxy_records_naming(srv: &Server, id: &str) -> Vec<String> {
    let file = srv.data_dir.with_extension(format!("backup-{id}.jsonl"));
    let out = std::process::Command::new(common::binary())
        .args(["admin", "backup", "--data-dir"])
        .arg(&srv.data_dir)
        .arg(&file)
        .output()
        .expect("admin backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("backup file");
    let _ = std::fs::remove_file(&file);
    let needle = hex_of(id);
    text.lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["tree"].as_str().is_some_and(|t| t.starts_with("proxy_")))
        .filter(|e| {
            [&e["key"], &e["value"]]
                .iter()
                .any(|v| v.as_str().is_some_and(|h| h.contains(&needle)))
        })
        .map(|e| e["tree"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// First status line of one request through the embedded proxy.
fn proxy_status(srv: &Server, host: &str) -> String {
    let raw = common::raw_request(
        &format!("127.0.0.1:{}", srv.proxy_port),
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .expect("proxy request");
    raw.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_container_or_project_deletes_its_documents_and_aliases() {
    let api = Api::new(server(126, &[]));
    let t = api.tenant("doomed@example.com").await;
    let (s, body) = api
        .call(
            &t.token,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"alias": "doomed"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let project = body["data"]["id"].as_str().expect("project id").to_string();
    let new_container = |name: &'static str| {
        let (api, t, project) = (&api, &t, project.clone());
        async move {
            let (s, body) = api
                .call(
                    &t.token,
                    Method::POST,
                    &format!("/api/v1/projects/{project}/containers"),
                    Some(json!({"name": name, "container_image": "busybox",
                                "autostart": false,
                                "server_id": control::servers::model::node_server_id("local")})),
                )
                .await;
            assert_eq!(s, 201, "{body}");
            body["data"]["id"].as_str().expect("id").to_string()
        }
    };
    let id = new_container("web").await;
    let pdoc = format!("/api/v1/projects/{project}/proxy/permissions");
    for (path, body) in [
        (
            format!("{}/groups/team/password", cdoc(&id)),
            json!({"username": "alice", "password": "s3cret", "salt": "pepper"}),
        ),
        (
            format!("{pdoc}/groups/ops/password"),
            json!({"username": "ops", "password": "0ps-pass", "salt": "salt"}),
        ),
    ] {
        let (s, b) = api.call(&t.token, Method::PUT, &path, Some(body)).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let alias = json!({"container_id": id, "alias": "doomedweb", "program": "http", "port": 80});
    let (s, body) = api
        .call(&t.token, Method::POST, "/api/v1/proxy/aliases", Some(alias))
        .await;
    assert_eq!(s, 201, "{body}");
    let alias_id = body["data"]["id"].as_str().expect("alias id").to_string();
    let host = "doomedweb.local.localhost";
    // The alias routes (to the access gate's answer: nothing grants an
    // anonymous caller access under the default deny).
    let status = proxy_status(&api.srv, host);
    assert!(status.contains(" 403 "), "{status}");
    let before = proxy_records_naming(&api.srv, &id);
    for tree in [
        "proxy_documents_containers",
        "proxy_aliases",
        "proxy_aliases_by_container",
    ] {
        assert!(before.iter().any(|t| t == tree), "{tree} in {before:?}");
    }
    let of_project = proxy_records_naming(&api.srv, &project);
    for tree in ["proxy_documents_projects", "proxy_aliases"] {
        assert!(
            of_project.iter().any(|t| t == tree),
            "{tree} in {of_project:?}"
        );
    }

    // The container goes, and with it its document and its alias, from
    // the store and from the proxy.
    let (s, body) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("/api/v1/containers/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(proxy_records_naming(&api.srv, &id), Vec::<String>::new());
    let status = proxy_status(&api.srv, host);
    assert!(status.contains(" 404 "), "{status}");
    let (s, _) = api
        .call(
            &t.token,
            Method::GET,
            &format!("/api/v1/proxy/aliases/{alias_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);

    // A container made again under the same name starts with an empty
    // document, and the freed label can be taken again.
    let again = new_container("web").await;
    let doc = api.document(&t, &cdoc(&again)).await;
    assert_eq!(doc["groups"], json!({}), "{doc}");
    assert_eq!(doc["file_version"], 0, "{doc}");
    let alias = json!({"container_id": again, "alias": "doomedweb", "program": "http", "port": 80});
    let (s, body) = api
        .call(&t.token, Method::POST, "/api/v1/proxy/aliases", Some(alias))
        .await;
    assert_eq!(s, 201, "{body}");

    // The project goes with its document and everything of its containers.
    let (s, body) = api
        .call(
            &t.token,
            Method::DELETE,
            &format!("/api/v1/projects/{project}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        proxy_records_naming(&api.srv, &project),
        Vec::<String>::new()
    );
    assert_eq!(proxy_records_naming(&api.srv, &again), Vec::<String>::new());
    let status = proxy_status(&api.srv, host);
    assert!(status.contains(" 404 "), "{status}");

    // A project made again under the same alias inherits nothing.
    let (s, body) = api
        .call(
            &t.token,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"alias": "doomed"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let reborn = body["data"]["id"].as_str().expect("project id").to_string();
    let doc = api
        .document(&t, &format!("/api/v1/projects/{reborn}/proxy/permissions"))
        .await;
    assert_eq!(doc["groups"], json!({}), "{doc}");
    assert_eq!(doc["file_version"], 0, "{doc}");
}
