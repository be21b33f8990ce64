//! HTTP routes of `authTokens.*`. Reading one's own tokens needs only an
//! authenticated caller; creating and managing them needs
//! `resources.create_tokens`, and the service keeps a token from handing on
//! more than it holds.

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::Router;

use crate::auth::permission as perm;
use crate::auth::principal::{Authed, MaybeAuthed};
use crate::error::ApiResult;
use crate::openapi::{ApiEnvelope, ErrorBody};
use crate::state::AppState;
use crate::wire::{created, ok, ApiJson, Envelope};

use super::input::{
    CopyTokenRequest, CreateTokenRequest, PublicProfileRequest, RealmRequest, UpdateTokenRequest,
};
use super::service::{self, Grantor};
use super::templates::{self, Template};
use super::view::{CreatedToken, CurrentToken, PublicProfile, TokenView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/tokens", get(list).post(create))
        .route("/auth/tokens/me", get(get_current))
        .route("/auth/tokens/me/public-profile", put(update_public_profile))
        .route(
            "/auth/tokens/public-profiles/{public_key}",
            get(get_public_profile),
        )
        .route("/auth/tokens/templates", get(list_templates))
        .route("/auth/tokens/{id}", get(get_one).put(update).delete(delete))
        .route("/auth/tokens/{id}/copy", post(copy))
        .route("/auth/tokens/{id}/add-realm", post(add_realm))
        .route("/auth/tokens/{id}/remove-realm", post(remove_realm))
}

/// `authTokens.list`: the caller's tokens, newest first, never their secrets.
#[utoipa::path(
    get, path = "/api/v1/auth/tokens", tag = "authTokens", operation_id = "authTokens.list",
    responses(
        (status = 200, description = "The caller's tokens; `truncated` is true when the list was cut", body = ApiEnvelope<Vec<TokenView>>),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Authed<perm::AnyCaller>,
) -> ApiResult<Envelope> {
    let tokens = service::list(&state, caller.user_id())?;
    let total = state
        .store
        .ids(&super::model::API_TOKENS_BY_USER, caller.user_id())?
        .len();
    let truncated = total > tokens.len();
    Ok(ok("API tokens", tokens).with("truncated", truncated))
}

/// `authTokens.create`: the secret is in the response, and only there.
#[utoipa::path(
    post, path = "/api/v1/auth/tokens", tag = "authTokens", operation_id = "authTokens.create",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "The new token with its secret", body = ApiEnvelope<CreatedToken>),
        (status = 400, body = ErrorBody),
        (status = 403, description = "The calling token cannot grant this", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Authed<perm::CreateTokens>,
    ApiJson(body): ApiJson<CreateTokenRequest>,
) -> ApiResult<Envelope> {
    let token = service::create(&state, Grantor::of(&caller), body)?;
    Ok(created("API token created", token))
}

/// `authTokens.getCurrent`: the token this call was made with.
#[utoipa::path(
    get, path = "/api/v1/auth/tokens/me", tag = "authTokens", operation_id = "authTokens.getCurrent",
    responses(
        (status = 200, body = ApiEnvelope<CurrentToken>),
        (status = 403, description = "Called with a session instead of an API token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_current(
    State(state): State<AppState>,
    caller: Authed<perm::AnyCaller>,
) -> ApiResult<Envelope> {
    Ok(ok("Current API token", service::current(&state, &caller)?))
}

/// `authTokens.updatePublicProfile`: the calling token's public key and profile.
#[utoipa::path(
    put, path = "/api/v1/auth/tokens/me/public-profile", tag = "authTokens",
    operation_id = "authTokens.updatePublicProfile",
    request_body = PublicProfileRequest,
    responses(
        (status = 200, body = ApiEnvelope<TokenView>),
        (status = 400, body = ErrorBody),
        (status = 409, description = "The key belongs to another token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_public_profile(
    State(state): State<AppState>,
    caller: Authed<perm::TokenPublicProfile>,
    ApiJson(body): ApiJson<PublicProfileRequest>,
) -> ApiResult<Envelope> {
    let token = service::update_public_profile(&state, &caller, body)?;
    Ok(ok("Public profile updated", token))
}

/// `authTokens.getPublicProfile`: public, by key.
#[utoipa::path(
    get, path = "/api/v1/auth/tokens/public-profiles/{public_key}", tag = "authTokens",
    operation_id = "authTokens.getPublicProfile",
    params(("public_key" = String, Path, description = "The token's Ed25519 public key")),
    responses(
        (status = 200, body = ApiEnvelope<PublicProfile>),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn get_public_profile(
    State(state): State<AppState>,
    _caller: MaybeAuthed,
    Path(public_key): Path<String>,
) -> ApiResult<Envelope> {
    Ok(ok(
        "Public profile",
        service::public_profile(&state, &public_key)?,
    ))
}

/// `authTokens.listAuthTokenPermissionTemplates`.
#[utoipa::path(
    get, path = "/api/v1/auth/tokens/templates", tag = "authTokens",
    operation_id = "authTokens.listAuthTokenPermissionTemplates",
    responses((status = 200, body = ApiEnvelope<Vec<Template>>)),
    security(("bearer" = []))
)]
pub async fn list_templates(_caller: Authed<perm::AnyCaller>) -> Envelope {
    ok("Permission templates", templates::all())
}

/// `authTokens.get`.
#[utoipa::path(
    get, path = "/api/v1/auth/tokens/{id}", tag = "authTokens", operation_id = "authTokens.get",
    params(("id" = String, Path, description = "Token id (24 hex)")),
    responses(
        (status = 200, body = ApiEnvelope<TokenView>),
        (status = 404, description = "No such token for this account", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Authed<perm::AnyCaller>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    let token = service::owned(&state, caller.user_id(), &id)?;
    Ok(ok("API token", TokenView::from(&token)))
}

/// `authTokens.update`.
#[utoipa::path(
    put, path = "/api/v1/auth/tokens/{id}", tag = "authTokens", operation_id = "authTokens.update",
    params(("id" = String, Path, description = "Token id (24 hex)")),
    request_body = UpdateTokenRequest,
    responses(
        (status = 200, body = ApiEnvelope<TokenView>),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Authed<perm::CreateTokens>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateTokenRequest>,
) -> ApiResult<Envelope> {
    let token = service::update(&state, Grantor::of(&caller), &id, body)?;
    Ok(ok("API token updated", token))
}

/// `authTokens.delete`: the token stops working at once.
#[utoipa::path(
    delete, path = "/api/v1/auth/tokens/{id}", tag = "authTokens", operation_id = "authTokens.delete",
    params(("id" = String, Path, description = "Token id (24 hex)")),
    responses(
        (status = 200, body = ApiEnvelope<Option<String>>),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Authed<perm::CreateTokens>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    service::delete(&state, Grantor::of(&caller), &id)?;
    Ok(ok("API token deleted", ()))
}

/// `authTokens.copy`: a new secret with the same settings.
#[utoipa::path(
    post, path = "/api/v1/auth/tokens/{id}/copy", tag = "authTokens", operation_id = "authTokens.copy",
    params(("id" = String, Path, description = "Token id (24 hex)")),
    request_body = CopyTokenRequest,
    responses(
        (status = 201, body = ApiEnvelope<CreatedToken>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn copy(
    State(state): State<AppState>,
    caller: Authed<perm::CreateTokens>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CopyTokenRequest>,
) -> ApiResult<Envelope> {
    let token = service::copy(&state, Grantor::of(&caller), &id, body)?;
    Ok(created("API token copied", token))
}

/// `authTokens.addRealm`.
#[utoipa::path(
    post, path = "/api/v1/auth/tokens/{id}/add-realm", tag = "authTokens",
    operation_id = "authTokens.addRealm",
    params(("id" = String, Path, description = "Token id (24 hex)")),
    request_body = RealmRequest,
    responses(
        (status = 200, body = ApiEnvelope<TokenView>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add_realm(
    State(state): State<AppState>,
    caller: Authed<perm::CreateTokens>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RealmRequest>,
) -> ApiResult<Envelope> {
    let token = service::change_realm(&state, Grantor::of(&caller), &id, body, true)?;
    Ok(ok("Realm added", token))
}

/// `authTokens.removeRealm`.
#[utoipa::path(
    post, path = "/api/v1/auth/tokens/{id}/remove-realm", tag = "authTokens",
    operation_id = "authTokens.removeRealm",
    params(("id" = String, Path, description = "Token id (24 hex)")),
    request_body = RealmRequest,
    responses(
        (status = 200, body = ApiEnvelope<TokenView>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove_realm(
    State(state): State<AppState>,
    caller: Authed<perm::CreateTokens>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RealmRequest>,
) -> ApiResult<Envelope> {
    let token = service::change_realm(&state, Grantor::of(&caller), &id, body, false)?;
    Ok(ok("Realm removed", token))
}
