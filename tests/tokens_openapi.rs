//! End to end through the real binary: the OpenAPI document and the
//! reference page, served without touching the internet.

mod common;

use common::Server;
use serde_json::Value;

#[tokio::test]
async fn openapi_document_is_json_with_the_token_routes() {
    let server = Server::start();
    let resp = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.expect("document parses as JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/tokens",
        "/api/v1/auth/tokens/{id}",
        "/api/v1/auth/tokens/me",
        "/api/v1/auth/tokens/{id}/copy",
        "/api/v1/events",
        "/api/v1/users/auth/activity",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert_eq!(
        doc["paths"]["/api/v1/auth/tokens"]["post"]["operationId"],
        "authTokens.create"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn docs_page_uses_the_vendored_script_only() {
    let server = Server::start();
    let resp = reqwest::get(server.url("/docs")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"src="/docs/scalar.js""#), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "page references the internet"
    );
    let js = reqwest::get(server.url("/docs/scalar.js")).await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(js.text().await.unwrap().contains("createApiReference"));
}
