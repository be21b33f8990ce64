//! The OpenAPI document at `/api/v1/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` annotations, and the reference page at
//! `/docs`. The page uses Scalar's standalone bundle, vendored under
//! `control/assets/` and served from this binary: it loads nothing from the
//! internet.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::state::AppState;

/// The success envelope every operation answers with.
#[derive(Serialize, ToSchema)]
pub struct ApiEnvelope<T> {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    pub message: String,
    pub data: T,
}

/// The error body: `code` is stable; `details` names each bad field.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    pub message: String,
    pub code: String,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A JWT access token from login/refresh, or an `hdy_` API token \
                         (also accepted without the `Bearer` prefix).",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hoody-api",
        description = "Control plane API. Every response is `{statusCode, message, data}`; \
                       errors are `{statusCode, message, code, details?}`."
    ),
    paths(
        crate::auth::routes::signup,
        crate::auth::routes::verify_email,
        crate::auth::routes::resend_verification,
        crate::auth::routes::forgot_password,
        crate::auth::routes::reset_password,
        crate::auth::routes::available_regions,
        crate::auth::routes::oauth_config,
        crate::auth::routes::login,
        crate::auth::routes::refresh,
        crate::auth::routes::logout,
        crate::auth::routes::me,
        crate::auth::routes::identity_claim,
        crate::users::routes::get_user,
        crate::users::routes::update_user,
        crate::users::routes::free_tier_status,
        crate::users::routes::mark_onboarding,
        crate::users::routes::redeem_invite,
        crate::users::routes::retry_setup,
        crate::users::routes::security_history,
        crate::meta::routes::ip_info,
        crate::meta::routes::public_key,
        crate::meta::routes::social_stats,
        crate::meta::routes::list_realms,
        crate::tokens::routes::list,
        crate::tokens::routes::create,
        crate::tokens::routes::get_current,
        crate::tokens::routes::update_public_profile,
        crate::tokens::routes::get_public_profile,
        crate::tokens::routes::list_templates,
        crate::tokens::routes::get_one,
        crate::tokens::routes::update,
        crate::tokens::routes::delete,
        crate::tokens::routes::copy,
        crate::tokens::routes::add_realm,
        crate::tokens::routes::remove_realm,
        crate::events::routes::list,
        crate::events::routes::stats,
        crate::events::routes::get_one,
        crate::events::routes::delete,
        crate::events::routes::bulk_delete,
        crate::events::routes::cleanup,
        crate::activity::routes::list,
        crate::activity::routes::stats,
        crate::projects::routes::list,
        crate::projects::routes::create,
        crate::projects::routes::get_one,
        crate::projects::routes::update,
        crate::projects::routes::delete,
        crate::projects::routes::list_permissions,
        crate::projects::routes::add_permission,
        crate::projects::routes::update_permission,
        crate::projects::routes::remove_permission,
        crate::projects::routes::stats,
        crate::containers::routes::list,
        crate::containers::routes::list_by_project,
        crate::containers::routes::create,
        crate::containers::routes::get_one,
        crate::containers::routes::update,
        crate::containers::routes::delete,
        crate::containers::routes::manage,
        crate::containers::routes::authorize,
        crate::containers::routes::copy,
        crate::containers::routes::sync,
        crate::containers::routes::set_kvm,
        crate::containers::routes::get_stats,
        crate::containers::routes::status_logs,
        crate::modules::routes::list,
        crate::modules::routes::get_one,
        crate::modules::routes::put,
        crate::modules::routes::delete,
        crate::containers::routes::env_list,
        crate::containers::routes::env_bulk_set,
        crate::containers::routes::env_set,
        crate::containers::routes::env_delete,
        crate::containers::routes::firewall_list,
        crate::containers::routes::firewall_reset,
        crate::containers::routes::add_ingress,
        crate::containers::routes::add_egress,
        crate::containers::routes::toggle_ingress,
        crate::containers::routes::toggle_egress,
        crate::containers::routes::remove_ingress,
        crate::containers::routes::remove_egress,
        crate::containers::routes::network_get,
        crate::containers::routes::network_update,
        crate::containers::routes::network_remove,
        crate::containers::routes::network_start,
        crate::containers::routes::network_stop,
        crate::containers::routes::snapshots_list,
        crate::containers::routes::snapshots_create,
        crate::containers::routes::snapshots_restore,
        crate::containers::routes::snapshots_delete,
        crate::containers::routes::snapshots_alias,
        crate::containers::share_routes::list_incoming,
        crate::containers::share_routes::toggle_incoming_mount,
        crate::containers::share_routes::list,
        crate::containers::share_routes::create,
        crate::containers::share_routes::get_one,
        crate::containers::share_routes::update,
        crate::containers::share_routes::remove,
        crate::containers::share_routes::list_global,
        crate::containers::share_routes::list_incoming_global,
        crate::aliases::routes::list,
        crate::aliases::routes::create,
        crate::aliases::routes::get_one,
        crate::aliases::routes::update,
        crate::aliases::routes::set_state,
        crate::aliases::routes::delete,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "authentication", description = "Accounts and sessions"),
        (name = "users", description = "User profiles"),
        (name = "meta", description = "Service metadata"),
        (name = "authTokens", description = "Long-lived API tokens"),
        (name = "events", description = "The record of every change"),
        (name = "activity", description = "The caller's request log"),
        (name = "projects", description = "Projects and their sharing"),
        (name = "containers", description = "Containers, their network and snapshots"),
        (name = "storage", description = "Storage shares between containers"),
        (name = "env", description = "Container environment variables"),
        (name = "firewall", description = "Container ingress and egress rules"),
        (name = "proxyAliases", description = "Alias hostnames of container programs"),
    )
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::proxy::routes::ProxyApi::openapi());
    doc
}

const SCALAR_JS: &[u8] = include_bytes!("../assets/scalar-standalone.js");

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>hoody-api reference</title>
</head>
<body>
  <div id="app"></div>
  <script src="/docs/scalar.js"></script>
  <script>
    Scalar.createApiReference('#app', {
      url: '/api/v1/openapi.json',
      withDefaultFonts: false,
      hideClientButton: true,
      telemetry: false
    });
  </script>
</body>
</html>
"#;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .route("/docs/scalar.js", get(scalar_js))
}

async fn openapi_json() -> impl IntoResponse {
    axum::Json(document())
}

async fn docs() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

async fn scalar_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        SCALAR_JS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_token_routes_with_bearer_security() {
        let doc = serde_json::to_value(document()).unwrap();
        assert!(doc["paths"]["/api/v1/auth/tokens"]["post"].is_object());
        assert!(doc["paths"]["/api/v1/auth/tokens/{id}/copy"]["post"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
