//! HTTP routes of `authentication.*`: accounts under `/auth`, sessions
//! under `/users/auth`. Each handler extracts, runs the rule from
//! `service.rs` on the blocking pool (argon2 and sled block), and wraps the
//! result in the envelope.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::permission::{AnyCaller, ReadAccount};
use super::principal::{bearer, Authed, ClientIp};
use super::service::{
    self, EmailRequest, IdentityClaimRequest, LoginRequest, Mail, ResetPasswordRequest,
    SignupRequest, VerifyEmailRequest,
};
use super::session;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::{ok, ApiJson, Envelope, Validator};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/verify-email", post(verify_email))
        .route("/auth/resend-verification", post(resend_verification))
        .route("/auth/forgot-password", post(forgot_password))
        .route("/auth/reset-password", post(reset_password))
        .route("/auth/available-regions", get(available_regions))
        .route("/auth/config", get(oauth_config))
        .route("/users/auth/login", post(login))
        .route("/users/auth/refresh", post(refresh))
        .route("/users/auth/logout", post(logout))
        .route("/users/auth/me", get(me))
        .route("/users/auth/identity-claim", post(identity_claim))
}

/// Runs a blocking service call off the async workers.
pub async fn blocking<T, F>(state: &AppState, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(ApiError::internal)?
}

/// Sends a mail the service asked for. A failure is logged, not answered:
/// the response must not differ between addresses with and without an
/// account.
pub async fn deliver(state: &AppState, mail: Option<Mail>) {
    if let Some(m) = mail {
        if let Err(e) = state.mailer.send(&m.to, &m.subject, &m.body).await {
            tracing::warn!(error = %e, "cannot send email");
        }
    }
}

/// authentication.signup
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "authentication",
    operation_id = "authentication.signup", request_body = SignupRequest,
    responses((status = 200, description = "Verification email sent (also when the address has an account)", body = Value),
        (status = 400, description = "Invalid field"), (status = 429, description = "Too many signups from this address")),
    security(()))]
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<Envelope> {
    state.limits.signup.hit(&format!("signup:{ip}"))?;
    req.validate()?;
    let email = req.email.to_lowercase();
    let mail = blocking(&state, move |s| service::signup(s, &req)).await?;
    deliver(&state, Some(mail)).await;
    Ok(ok(
        "Signup successful. Check your email to verify your account.",
        json!({ "email": email }),
    ))
}

/// authentication.verifyEmail
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "authentication",
    operation_id = "authentication.verifyEmail", request_body = VerifyEmailRequest,
    responses((status = 200, description = "Address verified; a new session", body = service::SessionGrant),
        (status = 400, description = "Invalid, expired or spent token, or another email")),
    security(()))]
pub async fn verify_email(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<VerifyEmailRequest>,
) -> ApiResult<Envelope> {
    let grant = blocking(&state, move |s| {
        let user = service::verify_email(s, &req, ip)?;
        service::grant_session(s, &user, ip)
    })
    .await?;
    Ok(ok("Email verified", grant))
}

/// authentication.resendVerification
#[utoipa::path(post, path = "/api/v1/auth/resend-verification", tag = "authentication",
    operation_id = "authentication.resendVerification", request_body = EmailRequest,
    responses((status = 200, description = "Sent if the address has an unverified account")),
    security(()))]
pub async fn resend_verification(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EmailRequest>,
) -> ApiResult<Envelope> {
    let mail = blocking(&state, move |s| service::resend_verification(s, &req)).await?;
    deliver(&state, mail).await;
    Ok(ok(
        "If this address has an unverified account, a new verification email is on its way.",
        Value::Null,
    ))
}

/// authentication.forgotPassword
#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "authentication",
    operation_id = "authentication.forgotPassword", request_body = EmailRequest,
    responses((status = 200, description = "Sent if the address has an account")),
    security(()))]
pub async fn forgot_password(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EmailRequest>,
) -> ApiResult<Envelope> {
    let mail = blocking(&state, move |s| service::forgot_password(s, &req)).await?;
    deliver(&state, mail).await;
    Ok(ok(
        "If this address has an account, a password reset email is on its way.",
        Value::Null,
    ))
}

/// authentication.resetPassword
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "authentication",
    operation_id = "authentication.resetPassword", request_body = ResetPasswordRequest,
    responses((status = 200, description = "Password changed; every session ended"),
        (status = 400, description = "Invalid, expired or spent token, or a weak password")),
    security(()))]
pub async fn reset_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> ApiResult<Envelope> {
    blocking(&state, move |s| service::reset_password(s, &req, ip)).await?;
    Ok(ok(
        "Password reset. Log in with your new password.",
        Value::Null,
    ))
}

/// authentication.getAvailableRegions
#[utoipa::path(get, path = "/api/v1/auth/available-regions", tag = "authentication",
    operation_id = "authentication.getAvailableRegions",
    responses((status = 200, description = "Regions a new account can be placed in", body = Value)),
    security(()))]
pub async fn available_regions(State(state): State<AppState>) -> Envelope {
    ok(
        "Available regions",
        json!({
            "regions": [{
                "region": state.settings.node_name,
                "country": Value::Null,
                "city": Value::Null,
                "available": true,
            }]
        }),
    )
}

/// authentication.getOAuthConfig
#[utoipa::path(get, path = "/api/v1/auth/config", tag = "authentication",
    operation_id = "authentication.getOAuthConfig",
    responses((status = 200, description = "Which sign-in methods are configured", body = Value)),
    security(()))]
pub async fn oauth_config() -> Envelope {
    ok(
        "Authentication configuration",
        json!({
            "providers": [],
            "github": {"enabled": false},
            "google": {"enabled": false},
            "device_flow": false,
            "password": true,
        }),
    )
}

/// authentication.login
#[utoipa::path(post, path = "/api/v1/users/auth/login", tag = "authentication",
    operation_id = "authentication.login", request_body = LoginRequest,
    responses((status = 200, description = "A new session", body = service::SessionGrant),
        (status = 401, description = "INVALID_CREDENTIALS"),
        (status = 403, description = "EMAIL_NOT_VERIFIED or USER_BANNED"),
        (status = 429, description = "Too many failed logins from this address")),
    security(()))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Envelope> {
    let grant = blocking(&state, move |s| {
        let user = service::login(s, &req, ip)?;
        service::grant_session(s, &user, ip)
    })
    .await?;
    Ok(ok("Login successful", grant))
}

/// authentication.refreshToken body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[serde(rename = "refreshToken")]
    pub refresh_token: String,
}

/// authentication.refreshToken. Reads `Authorization` itself: the SDK may
/// send the refresh token there too, and then it must be the same one.
#[utoipa::path(post, path = "/api/v1/users/auth/refresh", tag = "authentication",
    operation_id = "authentication.refreshToken", request_body = RefreshRequest,
    responses((status = 200, description = "A new token pair; the presented refresh token is spent", body = session::TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token"),
        (status = 429, description = "Too many refreshes from this address")),
    security(()))]
pub async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Envelope> {
    let mut v = Validator::new();
    v.length("refreshToken", &req.refresh_token, 1, 512);
    v.finish()?;
    if let Some(presented) = bearer(&headers) {
        if presented.starts_with("rt_") && presented != req.refresh_token {
            return Err(ApiError::Unauthorized {
                code: "INVALID_REFRESH_TOKEN",
                message: "the Authorization header holds a different refresh token".into(),
            });
        }
    }
    state.limits.refresh.hit(&format!("refresh:{ip}"))?;
    let pair = blocking(&state, move |s| session::refresh(s, &req.refresh_token)).await?;
    Ok(ok("Token refreshed", pair))
}

/// authentication.logout
#[utoipa::path(post, path = "/api/v1/users/auth/logout", tag = "authentication",
    operation_id = "authentication.logout",
    responses((status = 200, description = "Every access and refresh token issued so far is revoked")),
    security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Authed<AnyCaller>,
) -> ApiResult<Envelope> {
    let user_id = caller.user.id.clone();
    let ip = caller.ip.to_string();
    blocking(&state, move |s| {
        session::end_all(s, &user_id)?;
        s.store.tx(|tx| {
            crate::users::model::record_security(tx, &user_id, "logout", true, &ip, None)
        })?;
        Ok(())
    })
    .await?;
    Ok(ok("Logged out", Value::Null))
}

/// authentication.getCurrentUser (also served at `/users/me`).
#[utoipa::path(get, path = "/api/v1/users/auth/me", tag = "authentication",
    operation_id = "authentication.getCurrentUser",
    responses((status = 200, description = "The caller, and the API token used if any", body = Value),
        (status = 401, description = "Not authenticated")),
    security(("bearer" = [])))]
pub async fn me(caller: Authed<ReadAccount>) -> Envelope {
    let data = caller
        .me_json
        .get_or_init(|| crate::wire::raw(&crate::users::service::me(&caller)));
    crate::wire::ok_raw("Current user", data.clone())
}

/// authentication.api_issueIdentityClaim
#[utoipa::path(post, path = "/api/v1/users/auth/identity-claim", tag = "authentication",
    operation_id = "authentication.api_issueIdentityClaim", request_body = IdentityClaimRequest,
    responses((status = 200, description = "A claim signed with the key of meta.getPublicKey", body = Value)),
    security(("bearer" = [])))]
pub async fn identity_claim(
    State(state): State<AppState>,
    caller: Authed<ReadAccount>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<IdentityClaimRequest>,
) -> ApiResult<Envelope> {
    let credential_exp = credential_expiry(&state, &caller, &headers);
    let user = caller.user.clone();
    let data = service::issue_identity_claim(&state, &user, &req, credential_exp)?;
    Ok(ok("Identity claim issued", data))
}

/// When the caller's credential stops working, if it has an end.
fn credential_expiry(
    state: &AppState,
    caller: &Authed<ReadAccount>,
    headers: &HeaderMap,
) -> Option<i64> {
    match caller.token() {
        Some(t) => t
            .expires_at
            .as_deref()
            .and_then(crate::wire::parse_time)
            .map(|t| t.unix_timestamp()),
        None => bearer(headers)
            .and_then(|raw| super::jwt::verify(&state.keys.jwt_secret, raw).ok())
            .map(|c| c.exp),
    }
}
