//! HTTP routes of `users.*` and `/users/me`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::service::{self, UpdateUserRequest, UserView};
use crate::auth::permission::ReadAccount;
use crate::auth::principal::Authed;
use crate::auth::routes::blocking;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::users::service::{ProjectRef, ServerRef};
use crate::wire::{lenient, ok, ApiJson, ApiQuery, Envelope, PageRequest, Validator};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/me", get(crate::auth::routes::me))
        .route("/users/me/free-tier-status", get(free_tier_status))
        .route("/users/me/onboarding", post(mark_onboarding))
        .route("/users/me/redeem-invite", post(redeem_invite))
        .route("/users/me/retry-setup", post(retry_setup))
        .route("/users/me/security-history", get(security_history))
        .route("/users/{id}", get(get_user).put(update_user))
}

/// users.get
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", operation_id = "users.get",
    params(("id" = String, Path, description = "User id (24 hex)")),
    responses((status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user visible to the caller")),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Authed<ReadAccount>,
    Path(id): Path<String>,
) -> ApiResult<Envelope> {
    let user = service::visible_user(&state, &caller, &id)?;
    Ok(ok("User", UserView::from(&user)))
}

/// users.update
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "users", operation_id = "users.update",
    params(("id" = String, Path, description = "User id (24 hex)")),
    request_body = UpdateUserRequest,
    responses((status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Invalid field"),
        (status = 401, description = "Wrong current password"),
        (status = 403, description = "Field the caller may not change"),
        (status = 404, description = "No such user visible to the caller")),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Authed<ReadAccount>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Envelope> {
    req.validate()?;
    let principal = caller.principal.clone();
    let user = blocking(&state, move |s| service::update(s, &principal, &id, req)).await?;
    Ok(ok("User updated", UserView::from(&user)))
}

/// users.getFreeTierStatus
#[utoipa::path(get, path = "/api/v1/users/me/free-tier-status", tag = "users",
    operation_id = "users.getFreeTierStatus",
    responses((status = 200, description = "Whether the caller has their free server", body = Value)),
    security(("bearer" = [])))]
pub async fn free_tier_status(caller: Authed<ReadAccount>) -> Envelope {
    ok("Free tier status", service::free_tier_status(&caller.user))
}

/// users.markOnboardingMilestone body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestoneRequest {
    pub milestone: String,
}

/// users.markOnboardingMilestone
#[utoipa::path(post, path = "/api/v1/users/me/onboarding", tag = "users",
    operation_id = "users.markOnboardingMilestone", request_body = MilestoneRequest,
    responses((status = 200, description = "Every milestone reached so far", body = Value)),
    security(("bearer" = [])))]
pub async fn mark_onboarding(
    State(state): State<AppState>,
    caller: Authed<ReadAccount>,
    ApiJson(req): ApiJson<MilestoneRequest>,
) -> ApiResult<Envelope> {
    let user_id = caller.user.id.clone();
    let onboarding = blocking(&state, move |s| {
        service::mark_milestone(s, &user_id, &req.milestone)
    })
    .await?;
    Ok(ok(
        "Milestone recorded",
        json!({ "onboarding": onboarding }),
    ))
}

/// users.redeemInviteCode body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemInviteRequest {
    pub code: String,
}

/// users.redeemInviteCode. The free tier is not gated here, so a code only
/// makes sure the account has its free server and project.
#[utoipa::path(post, path = "/api/v1/users/me/redeem-invite", tag = "users",
    operation_id = "users.redeemInviteCode", request_body = RedeemInviteRequest,
    responses((status = 200, description = "The free tier, unlocked", body = Value)),
    security(("bearer" = [])))]
pub async fn redeem_invite(
    State(state): State<AppState>,
    caller: Authed<ReadAccount>,
    ApiJson(req): ApiJson<RedeemInviteRequest>,
) -> ApiResult<Envelope> {
    let mut v = Validator::new();
    v.length("code", &req.code, 1, 64);
    v.finish()?;
    let user_id = caller.user.id.clone();
    let (project, server) = blocking(&state, move |s| {
        service::ensure_setup(s, &user_id, "invite")
    })
    .await?;
    Ok(ok(
        "Invite code redeemed",
        json!({
            "unlocked": true,
            "required": false,
            "claim_blocked_reason": "none",
            "server": ServerRef::from(&server),
            "project": ProjectRef::from(&project),
            "container": Value::Null,
        }),
    ))
}

/// users.retrySetup body.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySetupRequest {
    pub region: Option<String>,
}

/// users.retrySetup: provisions whatever part of the account setup is
/// missing (default project, free server).
#[utoipa::path(post, path = "/api/v1/users/me/retry-setup", tag = "users",
    operation_id = "users.retrySetup", request_body = RetrySetupRequest,
    responses((status = 200, description = "The account's setup", body = Value)),
    security(("bearer" = [])))]
pub async fn retry_setup(
    State(state): State<AppState>,
    caller: Authed<ReadAccount>,
    ApiJson(req): ApiJson<RetrySetupRequest>,
) -> ApiResult<Envelope> {
    if let Some(r) = &req.region {
        let mut v = Validator::new();
        v.length("region", r, 1, 50);
        v.check(
            "region",
            r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "may contain only a-z, 0-9 and -",
        );
        v.finish()?;
    }
    let user_id = caller.user.id.clone();
    let (project, server) = blocking(&state, move |s| {
        service::ensure_setup(s, &user_id, "signup")
    })
    .await?;
    Ok(ok(
        "Setup complete",
        json!({
            "server": ServerRef::from(&server),
            "project": ProjectRef::from(&project),
            "container": Value::Null,
            "blocked_reason": Value::Null,
        }),
    ))
}

/// users.getSecurityHistory query.
#[derive(Deserialize, Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub page: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub include_failed: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub include_security: Option<bool>,
    /// Accepted on every route; realms do not filter this log.
    #[serde(default)]
    pub realm_id: Option<String>,
}

/// users.getSecurityHistory. The list is `data` itself, with paging in a
/// top-level `metadata`, as the contract shows.
#[utoipa::path(get, path = "/api/v1/users/me/security-history", tag = "users",
    operation_id = "users.getSecurityHistory", params(HistoryQuery),
    responses((status = 200, description = "Logins and account changes, newest first", body = Value)),
    security(("bearer" = [])))]
pub async fn security_history(
    State(state): State<AppState>,
    caller: Authed<ReadAccount>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Response> {
    let page = PageRequest::from_query(q.page, q.limit, 20)?;
    let user_id = caller.user.id.clone();
    let (items, total) = blocking(&state, move |s| {
        service::security_history(
            s,
            &user_id,
            page,
            q.include_failed.unwrap_or(true),
            q.include_security.unwrap_or(true),
        )
    })
    .await?;
    let body = json!({
        "statusCode": 200,
        "message": "Security history",
        "data": items,
        "metadata": {
            "total": total,
            "page": page.page,
            "limit": page.limit,
            "pages": total.div_ceil(page.limit),
        }
    });
    Ok(axum::Json(body).into_response())
}
