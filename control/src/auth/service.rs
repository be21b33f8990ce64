//! Account rules: signup, email verification, password reset, login and
//! identity claims. Plain functions over [`AppState`]; the HTTP layer is in
//! `routes.rs`. They block (argon2, sled), so handlers run them on the
//! blocking pool.
//!
//! Answers never tell whether an address has an account: signup of a
//! taken address, `forgotPassword` and `resendVerification` answer alike,
//! and a failed login takes the same time whether or not the user exists.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{key, new_secret, EmailToken, Purpose, EMAIL_TOKENS, EMAIL_TOKEN_TTL_SECS};
use super::password;
use super::session::{self, TokenPair};
use crate::error::ApiError;
use crate::events::model::{record, NewEvent};
use crate::keys::SignedClaim;
use crate::state::AppState;
use crate::store::Tx;
use crate::tokens::model::API_TOKENS_BY_USER;
use crate::users::model::{
    record_security, LoginIp, User, RECENT_LOGIN_IPS, USERS, USERS_BY_EMAIL, USERS_BY_USERNAME,
};
use crate::users::service::{self as users, ProjectRef, ServerRef, UserView};
use crate::wire::{format_time, is_email, is_slug, new_id, now, unix_now, Validator};

/// An email to send once the change that asked for it has committed.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Source channels the contract names; anything else is kept as `unknown`.
const CLIENTS: &[&str] = &["web", "ssh", "webssh", "cli", "sdk", "agent"];

/// Default and longest lifetime of an identity claim.
pub const CLAIM_DEFAULT_TTL_SECS: i64 = 3600;
pub const CLAIM_MAX_TTL_SECS: i64 = 86400;

fn client_channel(client: Option<&str>) -> Option<String> {
    client.map(|c| {
        if CLIENTS.contains(&c) {
            c.to_string()
        } else {
            "unknown".to_string()
        }
    })
}

/// Adds the password rules' complaint, if any, to `v`.
fn password_rules(v: &mut Validator, field: &str, pw: &str) {
    if let Err(ApiError::Validation { details, .. }) = password::check_new(field, pw) {
        for (k, m) in details {
            v.fail(&k, m.as_str().unwrap_or("invalid"));
        }
    }
}

fn check_email(v: &mut Validator, email: &str) {
    v.length("email", email, 1, 255);
    v.check("email", is_email(email), "must be a valid email address");
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link an email carries: `<public_url>/<page>?token=..&email=..`.
pub fn email_link(public_url: &str, page: &str, token: &str, email: &str) -> String {
    format!(
        "{}/{page}?token={token}&email={}",
        public_url.trim_end_matches('/'),
        url_encode(email)
    )
}

/// `authentication.signup` body.
#[derive(Deserialize, Debug, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    pub region: Option<String>,
    pub invite_code: Option<String>,
    pub client: Option<String>,
}

impl SignupRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        check_email(&mut v, &self.email);
        password_rules(&mut v, "password", &self.password);
        if let Some(r) = &self.region {
            v.length("region", r, 1, 50);
            v.check(
                "region",
                r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "may contain only a-z, 0-9 and -",
            );
        }
        if let Some(c) = &self.invite_code {
            v.length("invite_code", c, 1, 128);
        }
        if let Some(c) = &self.client {
            v.length("client", c, 0, 64);
        }
        v.finish()
    }
}

fn sha256_hex(s: &str) -> String {
    key(s)
}

fn verification_mail(state: &AppState, email: &str, secret: &str) -> Mail {
    let link = email_link(&state.settings.public_url, "verify-email", secret, email);
    Mail {
        to: email.to_string(),
        subject: "Verify your email address".into(),
        body: format!(
            "Welcome to hoody.\n\nConfirm your address by opening this link within 24 hours:\n\n{link}\n\nVerification token: {secret}\n\nIf you did not sign up, ignore this email.\n"
        ),
    }
}

fn put_email_token(
    tx: &Tx<'_>,
    secret: &str,
    purpose: Purpose,
    user: &User,
    password_hash: Option<&str>,
) -> crate::store::StoreResult<()> {
    tx.put(
        &EMAIL_TOKENS,
        &key(secret),
        &EmailToken {
            purpose,
            user_id: user.id.clone(),
            email: user.email.to_lowercase(),
            expires_at: unix_now() + EMAIL_TOKEN_TTL_SECS,
            generation: user.session_generation,
            password_hash: password_hash.map(str::to_string),
            created_at: now(),
        },
    )
}

/// `authentication.signup`: creates an unverified account and mails a
/// verification link. For an address that already has an account the
/// answer is the same; an unverified owner gets a new link (carrying the
/// password of this signup), a verified one a notice.
pub fn signup(state: &AppState, req: &SignupRequest) -> Result<Mail, ApiError> {
    req.validate()?;
    // Hash first, whatever happens next, so both paths cost the same.
    let hash = password::hash(&req.password)?;
    let email = req.email.to_lowercase();
    let secret = new_secret();
    let user_id = new_id();
    let invite_hash = req.invite_code.as_deref().map(sha256_hex);
    let client = client_channel(req.client.as_deref());
    enum Outcome {
        New,
        Unverified,
        Verified,
    }
    let outcome = state.store.tx(|tx| {
        if let Some(id) = tx.lookup(&USERS_BY_EMAIL, &email)? {
            if let Some(user) = tx.get(&USERS, &id)? {
                if user.email_verified {
                    return Ok(Outcome::Verified);
                }
                put_email_token(tx, &secret, Purpose::Verify, &user, Some(&hash))?;
                return Ok(Outcome::Unverified);
            }
        }
        let at = now();
        let user = User {
            id: user_id.clone(),
            email: email.clone(),
            username: None,
            alias: None,
            password_hash: hash.clone(),
            email_verified: false,
            is_admin: false,
            is_banned: false,
            session_generation: 0,
            metadata: Default::default(),
            onboarding: Default::default(),
            region: req.region.clone(),
            signup_method: Some(match &client {
                Some(c) => format!("email:{c}"),
                None => "email".to_string(),
            }),
            invite_code_hash: invite_hash.clone(),
            public_key: None,
            avatar_url: None,
            free_tier_unlocked: false,
            free_tier_unlocked_at: None,
            default_project_id: None,
            free_tier_unlock_source: None,
            free_tier_server_id: None,
            recent_login_ips: Vec::new(),
            created_at: at.clone(),
            updated_at: at,
        };
        tx.put(&USERS, &user.id, &user)?;
        tx.set_unique(&USERS_BY_EMAIL, &email, &user.id)?;
        put_email_token(tx, &secret, Purpose::Verify, &user, None)?;
        Ok(Outcome::New)
    })?;
    Ok(match outcome {
        Outcome::New | Outcome::Unverified => verification_mail(state, &email, &secret),
        Outcome::Verified => Mail {
            to: email.clone(),
            subject: "Someone tried to sign up with your address".into(),
            body: format!(
                "Someone tried to create a hoody account with {email}, which already has one.\n\nIf it was you, log in, or reset your password at {}/forgot-password.\nIf not, you can ignore this email.\n",
                state.settings.public_url.trim_end_matches('/')
            ),
        },
    })
}

/// `authentication.verifyEmail` body. `email` is optional: when given it
/// must be the address the link was sent to.
#[derive(Deserialize, Debug, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    pub token: String,
    pub email: Option<String>,
    pub client: Option<String>,
    pub response_mode: Option<String>,
    pub code_challenge: Option<String>,
}

fn check_token_field(v: &mut Validator, token: &str) {
    v.check(
        "token",
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "must be the 64-character token from the email",
    );
}

fn check_response_mode(v: &mut Validator, mode: Option<&str>) -> Result<(), ApiError> {
    match mode {
        None | Some("tokens") => Ok(()),
        Some("intent") => Err(ApiError::bad_request(
            "RESPONSE_MODE_UNSUPPORTED",
            "response_mode \"intent\" (PKCE exchange) is not offered by this server; use \"tokens\"",
        )),
        Some(_) => {
            v.fail("response_mode", "must be \"tokens\" or \"intent\"");
            Ok(())
        }
    }
}

impl VerifyEmailRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        check_token_field(&mut v, &self.token);
        if let Some(e) = &self.email {
            check_email(&mut v, e);
        }
        if let Some(c) = &self.client {
            v.length("client", c, 0, 64);
        }
        if let Some(c) = &self.code_challenge {
            v.length("code_challenge", c, 0, 128);
        }
        v.finish()?;
        check_response_mode(&mut v, self.response_mode.as_deref())?;
        v.finish()
    }
}

fn invalid_email_token() -> ApiError {
    ApiError::bad_request(
        "INVALID_OR_EXPIRED_TOKEN",
        "this link is invalid, expired or already used",
    )
}

/// `authentication.verifyEmail`: spends the token and, in the same
/// transaction, marks the address verified, provisions the account and
/// records `user.created`. Returns the verified user.
pub fn verify_email(
    state: &AppState,
    req: &VerifyEmailRequest,
    ip: IpAddr,
) -> Result<User, ApiError> {
    req.validate()?;
    let token_key = key(&req.token.to_lowercase());
    let node = state.settings.node_name.clone();
    let ip = ip.to_string();
    let client = client_channel(req.client.as_deref());
    let given_email = req.email.as_deref().map(str::to_lowercase);
    Ok(state.store.tx(|tx| {
        let Some(rec) = tx.get(&EMAIL_TOKENS, &token_key)? else {
            return Err(invalid_email_token().into());
        };
        if rec.purpose != Purpose::Verify || rec.expires_at <= unix_now() {
            return Err(invalid_email_token().into());
        }
        if let Some(e) = &given_email {
            if *e != rec.email {
                return Err(
                    ApiError::field("email", "does not match the verification link").into(),
                );
            }
        }
        let Some(mut user) = tx.get(&USERS, &rec.user_id)? else {
            return Err(invalid_email_token().into());
        };
        if user.email_verified || user.email.to_lowercase() != rec.email {
            return Err(invalid_email_token().into());
        }
        tx.remove(&EMAIL_TOKENS, &token_key)?;
        user.email_verified = true;
        if let Some(h) = &rec.password_hash {
            user.password_hash = h.clone();
        }
        let (project, server) = users::provision(tx, &node, &mut user, "signup")?;
        tx.put(&USERS, &user.id, &user)?;
        record(
            tx,
            NewEvent::new("user.created", "user", &user.id, &user.id).payload(json!({
                "email": user.email,
                "username": user.username,
                "default_project_id": project.id,
                "server_id": server.id,
            })),
        )?;
        record_security(tx, &user.id, "email_verified", true, &ip, client.as_deref())?;
        Ok(user)
    })?)
}

/// `authentication.resendVerification` / `forgotPassword` body.
#[derive(Deserialize, Debug, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

impl EmailRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        check_email(&mut v, &self.email);
        v.finish()
    }
}

fn find_by_email(state: &AppState, email: &str) -> Result<Option<User>, ApiError> {
    match state.store.lookup(&USERS_BY_EMAIL, &email.to_lowercase())? {
        Some(id) => Ok(state.store.get(&USERS, &id)?),
        None => Ok(None),
    }
}

/// `authentication.resendVerification`: a new link for an unverified
/// account; nothing otherwise.
pub fn resend_verification(state: &AppState, req: &EmailRequest) -> Result<Option<Mail>, ApiError> {
    req.validate()?;
    let Some(user) = find_by_email(state, &req.email)? else {
        return Ok(None);
    };
    if user.email_verified {
        return Ok(None);
    }
    let secret = new_secret();
    state
        .store
        .tx(|tx| put_email_token(tx, &secret, Purpose::Verify, &user, None))?;
    Ok(Some(verification_mail(state, &user.email, &secret)))
}

/// `authentication.forgotPassword`: a reset link for a verified account;
/// nothing otherwise.
pub fn forgot_password(state: &AppState, req: &EmailRequest) -> Result<Option<Mail>, ApiError> {
    req.validate()?;
    let Some(user) = find_by_email(state, &req.email)? else {
        return Ok(None);
    };
    if !user.email_verified || user.is_banned {
        return Ok(None);
    }
    let secret = new_secret();
    state
        .store
        .tx(|tx| put_email_token(tx, &secret, Purpose::Reset, &user, None))?;
    let link = email_link(
        &state.settings.public_url,
        "reset-password",
        &secret,
        &user.email,
    );
    Ok(Some(Mail {
        to: user.email.clone(),
        subject: "Reset your password".into(),
        body: format!(
            "Someone asked to reset the password of your hoody account.\n\nChoose a new password within 24 hours at:\n\n{link}\n\nReset token: {secret}\n\nIf it was not you, ignore this email: your password stays as it is.\n"
        ),
    }))
}

/// `authentication.resetPassword` body.
#[derive(Deserialize, Debug, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub token: String,
    pub password: String,
}

impl ResetPasswordRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        check_token_field(&mut v, &self.token);
        password_rules(&mut v, "password", &self.password);
        v.finish()
    }
}

/// `authentication.resetPassword`: spends the token, sets the password
/// and ends every session of the account.
pub fn reset_password(
    state: &AppState,
    req: &ResetPasswordRequest,
    ip: IpAddr,
) -> Result<(), ApiError> {
    req.validate()?;
    let hash = password::hash(&req.password)?;
    let token_key = key(&req.token.to_lowercase());
    let ip = ip.to_string();
    let user_id = state.store.tx(|tx| {
        let Some(rec) = tx.get(&EMAIL_TOKENS, &token_key)? else {
            return Err(invalid_email_token().into());
        };
        tx.remove(&EMAIL_TOKENS, &token_key)?;
        if rec.purpose != Purpose::Reset || rec.expires_at <= unix_now() {
            return Ok(Err(invalid_email_token()));
        }
        let Some(mut user) = tx.get(&USERS, &rec.user_id)? else {
            return Ok(Err(invalid_email_token()));
        };
        if user.session_generation != rec.generation {
            return Ok(Err(invalid_email_token()));
        }
        user.password_hash = hash.clone();
        user.updated_at = now();
        tx.put(&USERS, &user.id, &user)?;
        record_security(tx, &user.id, "password_reset", true, &ip, None)?;
        Ok(Ok(user.id))
    })??;
    // Moves the session generation on: every access and refresh token
    // issued before, and every other reset link, stops working.
    session::end_all(state, &user_id)
}

/// `authentication.login` body: by email or by username.
#[derive(Deserialize, Debug, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: String,
    pub response_mode: Option<String>,
    pub client: Option<String>,
    pub code_challenge: Option<String>,
}

impl LoginRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        match (&self.username, &self.email) {
            (None, None) => v.fail("email", "email or username is required"),
            (Some(u), _) => {
                v.length("username", u, 3, 50);
                v.check(
                    "username",
                    is_slug(u, &[]),
                    "may contain only letters, digits, _ and -",
                );
            }
            (None, Some(e)) => check_email(&mut v, e),
        }
        if let (Some(_), Some(e)) = (&self.username, &self.email) {
            check_email(&mut v, e);
        }
        v.length("password", &self.password, 8, 128);
        if let Some(c) = &self.client {
            v.length("client", c, 0, 64);
        }
        if let Some(c) = &self.code_challenge {
            v.length("code_challenge", c, 0, 128);
        }
        v.finish()?;
        check_response_mode(&mut v, self.response_mode.as_deref())?;
        v.finish()
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "INVALID_CREDENTIALS",
        message: "invalid email, username or password".into(),
    }
}

/// `authentication.login`: checks the password (against a decoy hash when
/// there is no such user, so both cost the same), counts failures per IP,
/// then refuses unverified and banned accounts. Returns the user with this
/// login recorded.
pub fn login(state: &AppState, req: &LoginRequest, ip: IpAddr) -> Result<User, ApiError> {
    req.validate()?;
    let budget = format!("login:{ip}");
    state.limits.login_failures.check(&budget)?;
    let id = match (&req.username, &req.email) {
        (Some(u), _) => state.store.lookup(&USERS_BY_USERNAME, &u.to_lowercase())?,
        (None, Some(e)) => state.store.lookup(&USERS_BY_EMAIL, &e.to_lowercase())?,
        (None, None) => None,
    };
    let user = match &id {
        Some(id) => state.store.get(&USERS, id)?,
        None => None,
    };
    let ip_text = ip.to_string();
    let client = client_channel(req.client.as_deref());
    let matches = match &user {
        Some(u) => password::verify(&req.password, &u.password_hash),
        None => {
            password::verify(&req.password, password::decoy_hash());
            false
        }
    };
    let Some(user) = user.filter(|_| matches) else {
        // Past the budget after this failure, the next attempt gets the 429.
        let _ = state.limits.login_failures.hit(&budget);
        if let Some(id) = &id {
            state
                .store
                .tx(|tx| record_security(tx, id, "login", false, &ip_text, client.as_deref()))?;
        }
        return Err(invalid_credentials());
    };
    if !user.email_verified {
        return Err(ApiError::forbidden(
            "EMAIL_NOT_VERIFIED",
            "verify your email address before logging in; a new link can be sent with resend-verification",
        ));
    }
    if user.is_banned {
        return Err(ApiError::forbidden("USER_BANNED", "this account is banned"));
    }
    let user = state.store.tx(|tx| {
        let Some(mut current) = tx.get(&USERS, &user.id)? else {
            return Err(invalid_credentials().into());
        };
        current.recent_login_ips.retain(|l| l.ip != ip_text);
        current.recent_login_ips.insert(
            0,
            LoginIp {
                ip: ip_text.clone(),
                timestamp: now(),
            },
        );
        current.recent_login_ips.truncate(RECENT_LOGIN_IPS);
        tx.put(&USERS, &current.id, &current)?;
        record_security(tx, &current.id, "login", true, &ip_text, client.as_deref())?;
        Ok(current)
    })?;
    Ok(user)
}

/// What login and verification answer: a new session and the account.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct SessionGrant {
    #[serde(flatten)]
    pub tokens: TokenPair,
    pub identity_claim: SignedClaim,
    pub client_ip: String,
    pub recent_login_ips: Vec<LoginIp>,
    pub auth_token_count: u64,
    pub user: UserView,
    pub server: Option<ServerRef>,
    pub project: Option<ProjectRef>,
    #[schema(value_type = Option<Object>)]
    pub container: Option<Value>,
}

/// Starts a session for `user` and gathers what the client needs next.
pub fn grant_session(state: &AppState, user: &User, ip: IpAddr) -> Result<SessionGrant, ApiError> {
    let tokens = session::start(state, user)?;
    let (project, server) = users::setup_of(state, user)?;
    let identity_claim = identity_claim(
        state,
        user,
        &state.settings.public_url,
        CLAIM_DEFAULT_TTL_SECS,
    );
    Ok(SessionGrant {
        tokens,
        identity_claim: identity_claim.0,
        client_ip: ip.to_string(),
        recent_login_ips: user.recent_login_ips.clone(),
        auth_token_count: state.store.ids(&API_TOKENS_BY_USER, &user.id)?.len() as u64,
        user: UserView::from(user),
        server: server.as_ref().map(ServerRef::from),
        project: project.as_ref().map(ProjectRef::from),
        container: None,
    })
}

/// Signs a statement of who `user` is for `audience`, valid `ttl` seconds.
/// Returns the claim and its expiry (unix seconds).
pub fn identity_claim(
    state: &AppState,
    user: &User,
    audience: &str,
    ttl: i64,
) -> (SignedClaim, i64) {
    let iat = unix_now();
    let exp = iat + ttl;
    let payload = json!({
        "typ": "identity",
        "iss": state.settings.public_url,
        "sub": user.id,
        "email": user.email,
        "username": user.username,
        "email_verified": user.email_verified,
        "aud": audience,
        "iat": iat,
        "exp": exp,
        "jti": new_id(),
    });
    (state.keys.sign_claim(&payload), exp)
}

/// `authentication.api_issueIdentityClaim` body.
#[derive(Deserialize, Debug, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityClaimRequest {
    pub audience: String,
    pub expires_in: Option<i64>,
}

impl IdentityClaimRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        v.length("audience", &self.audience, 1, 256);
        v.check(
            "audience",
            self.audience
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"'),
            "must be printable ASCII without spaces or double quotes",
        );
        if let Some(e) = self.expires_in {
            v.check(
                "expires_in",
                (60..=CLAIM_MAX_TTL_SECS).contains(&e),
                "must be between 60 and 86400 seconds",
            );
        }
        v.finish()
    }
}

/// The identity claim a caller asked for, its lifetime capped by what is
/// left of the credential it was asked with (`credential_exp`, unix secs).
pub fn issue_identity_claim(
    state: &AppState,
    user: &User,
    req: &IdentityClaimRequest,
    credential_exp: Option<i64>,
) -> Result<Value, ApiError> {
    req.validate()?;
    let mut ttl = req.expires_in.unwrap_or(CLAIM_DEFAULT_TTL_SECS);
    if let Some(exp) = credential_exp {
        ttl = ttl.min(exp - unix_now());
    }
    let ttl = ttl.max(60);
    let (claim, exp) = identity_claim(state, user, &req.audience, ttl);
    let expires_at = time::OffsetDateTime::from_unix_timestamp(exp)
        .map(format_time)
        .unwrap_or_default();
    Ok(json!({
        "identity_claim": claim,
        "expires_in": ttl,
        "expires_at": expires_at,
        "audience": req.audience,
    }))
}

/// Creates an already-verified user (admin bootstrap) with its default
/// project and server records.
pub fn create_verified_user(
    state: &AppState,
    email: &str,
    password: &str,
    is_admin: bool,
) -> Result<User, ApiError> {
    let mut v = Validator::new();
    check_email(&mut v, email);
    password_rules(&mut v, "password", password);
    v.finish()?;
    let hash = password::hash(password)?;
    let email = email.to_lowercase();
    let id = new_id();
    let node = state.settings.node_name.clone();
    Ok(state.store.tx(|tx| {
        if tx.lookup(&USERS_BY_EMAIL, &email)?.is_some() {
            return Err(
                ApiError::conflict("EMAIL_TAKEN", "an account with this email exists").into(),
            );
        }
        let at = now();
        let mut user = User {
            id: id.clone(),
            email: email.clone(),
            username: None,
            alias: None,
            password_hash: hash.clone(),
            email_verified: true,
            is_admin,
            is_banned: false,
            session_generation: 0,
            metadata: Default::default(),
            onboarding: Default::default(),
            region: None,
            signup_method: Some("admin".into()),
            invite_code_hash: None,
            public_key: None,
            avatar_url: None,
            free_tier_unlocked: false,
            free_tier_unlocked_at: None,
            default_project_id: None,
            free_tier_unlock_source: None,
            free_tier_server_id: None,
            recent_login_ips: Vec::new(),
            created_at: at.clone(),
            updated_at: at,
        };
        tx.set_unique(&USERS_BY_EMAIL, &email, &user.id)?;
        let (project, server) = users::provision(tx, &node, &mut user, "admin")?;
        tx.put(&USERS, &user.id, &user)?;
        record(
            tx,
            NewEvent::new("user.created", "user", &user.id, &user.id).payload(json!({
                "email": user.email,
                "username": user.username,
                "default_project_id": project.id,
                "server_id": server.id,
                "is_admin": is_admin,
            })),
        )?;
        Ok(user)
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> crate::testing::TempState {
        crate::testing::TempState::new("auth")
    }

    fn token_of(mail: &Mail) -> String {
        let start = mail.body.find("token=").unwrap() + 6;
        mail.body[start..start + 64].to_string()
    }

    const PW: &str = "Correct-Horse-9";

    fn signup_req(email: &str) -> SignupRequest {
        SignupRequest {
            email: email.into(),
            password: PW.into(),
            region: None,
            invite_code: None,
            client: None,
        }
    }

    fn verify_req(token: String, email: Option<&str>) -> VerifyEmailRequest {
        VerifyEmailRequest {
            token,
            email: email.map(str::to_string),
            client: None,
            response_mode: None,
            code_challenge: None,
        }
    }

    fn login_req(email: &str, password: &str) -> LoginRequest {
        LoginRequest {
            username: None,
            email: Some(email.into()),
            password: password.into(),
            response_mode: None,
            client: None,
            code_challenge: None,
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn verification_provisions_project_server_and_event_once() {
        let state = state();
        let mail = signup(&state, &signup_req("Ann@Example.com")).unwrap();
        assert!(mail.body.contains("email=ann%40example.com"));
        let token = token_of(&mail);
        let user = verify_email(
            &state,
            &verify_req(token.clone(), Some("ann@example.com")),
            IP,
        )
        .unwrap();
        assert!(user.email_verified && user.free_tier_unlocked);
        assert!(user.username.as_deref() == Some("ann"));
        let (project, server) = users::setup_of(&state, &user).unwrap();
        assert_eq!(project.unwrap().alias, "default");
        assert_eq!(server.unwrap().name, "local");
        let events = state
            .store
            .owned(
                &crate::events::model::EVENTS_BY_USER,
                &user.id,
                &crate::events::model::EVENTS,
            )
            .unwrap();
        assert!(events.iter().any(|e| e.event_type == "user.created"));
        // Single use.
        assert!(matches!(
            verify_email(&state, &verify_req(token, None), IP),
            Err(ApiError::BadRequest { .. })
        ));
    }

    #[tokio::test]
    async fn verification_with_another_email_is_refused_and_keeps_the_token() {
        let state = state();
        let token = token_of(&signup(&state, &signup_req("bob@example.com")).unwrap());
        assert!(matches!(
            verify_email(
                &state,
                &verify_req(token.clone(), Some("eve@example.com")),
                IP
            ),
            Err(ApiError::Validation { .. })
        ));
        assert!(verify_email(&state, &verify_req(token, Some("bob@example.com")), IP).is_ok());
    }

    #[tokio::test]
    async fn login_needs_verification_and_the_right_password() {
        let state = state();
        let token = token_of(&signup(&state, &signup_req("cy@example.com")).unwrap());
        assert!(matches!(
            login(&state, &login_req("cy@example.com", PW), IP),
            Err(ApiError::Forbidden {
                code: "EMAIL_NOT_VERIFIED",
                ..
            })
        ));
        assert!(matches!(
            login(&state, &login_req("cy@example.com", "Wrong-Horse-99"), IP),
            Err(ApiError::Unauthorized {
                code: "INVALID_CREDENTIALS",
                ..
            })
        ));
        assert!(matches!(
            login(&state, &login_req("nobody@example.com", PW), IP),
            Err(ApiError::Unauthorized {
                code: "INVALID_CREDENTIALS",
                ..
            })
        ));
        verify_email(&state, &verify_req(token, None), IP).unwrap();
        let user = login(&state, &login_req("CY@example.com", PW), IP).unwrap();
        assert_eq!(user.recent_login_ips[0].ip, "127.0.0.1");
        let grant = grant_session(&state, &user, IP).unwrap();
        assert!(grant.project.is_some() && grant.server.is_some());
    }

    #[tokio::test]
    async fn a_second_signup_of_an_unverified_address_sets_the_password_it_carries() {
        let state = state();
        signup(&state, &signup_req("dee@example.com")).unwrap();
        let mut second = signup_req("dee@example.com");
        second.password = "Another-Horse-7".into();
        let token = token_of(&signup(&state, &second).unwrap());
        verify_email(&state, &verify_req(token, None), IP).unwrap();
        assert!(login(&state, &login_req("dee@example.com", "Another-Horse-7"), IP).is_ok());
        assert!(login(&state, &login_req("dee@example.com", PW), IP).is_err());
    }

    #[tokio::test]
    async fn reset_sets_the_password_and_retires_older_links() {
        let state = state();
        create_verified_user(&state, "eli@example.com", PW, false).unwrap();
        let req = EmailRequest {
            email: "eli@example.com".into(),
        };
        let first = token_of(&forgot_password(&state, &req).unwrap().unwrap());
        let second = token_of(&forgot_password(&state, &req).unwrap().unwrap());
        reset_password(
            &state,
            &ResetPasswordRequest {
                token: second,
                password: "Brand-New-Pass-1".into(),
            },
            IP,
        )
        .unwrap();
        assert!(login(
            &state,
            &login_req("eli@example.com", "Brand-New-Pass-1"),
            IP
        )
        .is_ok());
        assert!(reset_password(
            &state,
            &ResetPasswordRequest {
                token: first,
                password: "Other-New-Pass-2".into(),
            },
            IP,
        )
        .is_err());
        let unknown = EmailRequest {
            email: "nobody@example.com".into(),
        };
        assert!(forgot_password(&state, &unknown).unwrap().is_none());
    }

    #[test]
    fn signup_validation_names_each_bad_field() {
        let req = SignupRequest {
            email: "not-an-email".into(),
            password: "short".into(),
            region: Some("EU West".into()),
            invite_code: Some(String::new()),
            client: Some("x".repeat(65)),
        };
        match req.validate() {
            Err(ApiError::Validation { details, .. }) => {
                for f in ["email", "password", "region", "invite_code", "client"] {
                    assert!(details.contains_key(f), "{f} not named");
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn links_encode_the_address() {
        assert_eq!(
            email_link("http://h/", "verify-email", "ab", "a+b@c.d"),
            "http://h/verify-email?token=ab&email=a%2Bb%40c.d"
        );
    }
}
