//! Sessions: a JWT access token (1 day) plus a single-use refresh token
//! (7 days). Each refresh spends the presented refresh token and returns a
//! new pair in the same family; presenting a spent token means it was
//! stolen or replayed, so the whole family is revoked. Logout bumps the
//! user's session generation, which every earlier token carries.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::jwt;
use super::principal::Credential;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{StoreResult, Table, Tx};
use crate::users::model::{User, USERS};
use crate::wire::{format_time, new_id, unix_now};

pub const REFRESH_TTL_SECS: i64 = 7 * 24 * 3600;

/// sha256(refresh token) -> record.
pub const REFRESH_TOKENS: Table<RefreshToken> = Table::new("refresh_tokens");
/// family id -> family.
pub const REFRESH_FAMILIES: Table<RefreshFamily> = Table::new("refresh_families");

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RefreshToken {
    pub family: String,
    pub user_id: String,
    pub generation: u64,
    pub expires_at: i64,
    pub spent: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RefreshFamily {
    pub user_id: String,
    pub revoked: bool,
    pub created_at: i64,
}

/// What login and refresh hand back.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct TokenPair {
    pub token: String,
    #[serde(rename = "refreshToken")]
    pub refresh_token: String,
    pub expires_at: String,
    pub expires_in: i64,
    pub refresh_expires_at: String,
    pub refresh_expires_in: i64,
}

fn hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

fn new_refresh_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    format!("rt_{}", hex::encode(bytes))
}

fn at(secs: i64) -> String {
    format_time(
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// Writes a new refresh token of `family` inside `tx` and signs the access
/// token; returns the pair.
fn issue_in(
    tx: &Tx<'_>,
    secret: &[u8],
    user: &User,
    family: &str,
    now: i64,
) -> StoreResult<TokenPair> {
    let refresh = new_refresh_secret();
    tx.put(
        &REFRESH_TOKENS,
        &hash(&refresh),
        &RefreshToken {
            family: family.to_string(),
            user_id: user.id.clone(),
            generation: user.session_generation,
            expires_at: now + REFRESH_TTL_SECS,
            spent: false,
        },
    )?;
    let token = jwt::issue(secret, &user.id, user.session_generation, family, now)?;
    Ok(TokenPair {
        token,
        refresh_token: refresh,
        expires_at: at(now + jwt::ACCESS_TTL_SECS),
        expires_in: jwt::ACCESS_TTL_SECS,
        refresh_expires_at: at(now + REFRESH_TTL_SECS),
        refresh_expires_in: REFRESH_TTL_SECS,
    })
}

/// Starts a new session (a new token family) for `user`.
pub fn start(state: &AppState, user: &User) -> Result<TokenPair, ApiError> {
    let now = unix_now();
    let family = new_id();
    let secret = state.keys.jwt_secret.clone();
    Ok(state.store.tx(|tx| {
        tx.put(
            &REFRESH_FAMILIES,
            &family,
            &RefreshFamily {
                user_id: user.id.clone(),
                revoked: false,
                created_at: now,
            },
        )?;
        issue_in(tx, &secret, user, &family, now)
    })?)
}

fn invalid_refresh() -> ApiError {
    ApiError::Unauthorized {
        code: "INVALID_REFRESH_TOKEN",
        message: "refresh token is invalid, expired or revoked".into(),
    }
}

/// Spends `raw` and returns a new pair of the same family.
pub fn refresh(state: &AppState, raw: &str) -> Result<TokenPair, ApiError> {
    let now = unix_now();
    let key = hash(raw);
    let secret = state.keys.jwt_secret.clone();
    // A reuse is detected inside the transaction but the revocation must
    // commit, so the closure reports it as a value instead of an error.
    let outcome = state.store.tx(|tx| {
        let Some(mut record) = tx.get(&REFRESH_TOKENS, &key)? else {
            return Ok(Err(invalid_refresh()));
        };
        let Some(mut family) = tx.get(&REFRESH_FAMILIES, &record.family)? else {
            return Ok(Err(invalid_refresh()));
        };
        if record.spent {
            family.revoked = true;
            tx.put(&REFRESH_FAMILIES, &record.family, &family)?;
            return Ok(Err(ApiError::Unauthorized {
                code: "REFRESH_TOKEN_REUSED",
                message: "refresh token was already used; every session of this login is revoked"
                    .into(),
            }));
        }
        if family.revoked || record.expires_at <= now {
            return Ok(Err(invalid_refresh()));
        }
        let Some(user) = tx.get(&USERS, &record.user_id)? else {
            return Ok(Err(invalid_refresh()));
        };
        if user.session_generation != record.generation || user.is_banned {
            return Ok(Err(invalid_refresh()));
        }
        record.spent = true;
        tx.put(&REFRESH_TOKENS, &key, &record)?;
        issue_in(tx, &secret, &user, &record.family, now).map(Ok)
    })?;
    if outcome.is_err() {
        tracing::warn!("refresh token rejected");
    }
    outcome
}

/// Ends every session of the user: tokens issued before now stop working.
pub fn end_all(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    state.store.tx(|tx| {
        let Some(mut user) = tx.get(&USERS, user_id)? else {
            return Err(ApiError::NotFound("user").into());
        };
        user.session_generation += 1;
        user.updated_at = crate::wire::now();
        tx.put(&USERS, user_id, &user)
    })?;
    Ok(())
}

/// Authenticates a JWT access token.
pub fn authenticate(state: &AppState, token: &str) -> Result<(User, Credential), ApiError> {
    let claims = jwt::verify(&state.keys.jwt_secret, token)?;
    let revoked = || ApiError::Unauthorized {
        code: "SESSION_REVOKED",
        message: "this session has ended; log in again".into(),
    };
    let user = state.store.get(&USERS, &claims.sub)?.ok_or_else(revoked)?;
    if user.session_generation != claims.gen {
        return Err(revoked());
    }
    match state.store.get(&REFRESH_FAMILIES, &claims.fam)? {
        Some(f) if !f.revoked => {}
        _ => return Err(revoked()),
    }
    if user.is_banned {
        return Err(ApiError::forbidden("USER_BANNED", "this account is banned"));
    }
    Ok((user, Credential::Session { family: claims.fam }))
}
