//! The user record and where it is stored.

use serde::{Deserialize, Serialize};

use crate::store::{Index, StoreResult, Table, Tx};
use crate::wire::{new_id, now};

pub const USERS: Table<User> = Table::new("users");
/// Lower-cased email -> user id.
pub const USERS_BY_EMAIL: Index = Index::new("users_by_email");
/// Lower-cased username -> user id.
pub const USERS_BY_USERNAME: Index = Index::new("users_by_username");
/// Account security log: logins, password changes, logouts.
pub const SECURITY_EVENTS: Table<SecurityEvent> = Table::new("security_events");
/// user id -> security event ids (ids sort by time).
pub const SECURITY_EVENTS_BY_USER: Index = Index::new("security_events_by_user");

/// How many recent login addresses a user record keeps.
pub const RECENT_LOGIN_IPS: usize = 10;

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub alias: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    pub email_verified: bool,
    pub is_admin: bool,
    pub is_banned: bool,
    /// Bumped by logout and password reset: JWTs and refresh tokens carry the
    /// generation they were issued under and die when it moves on.
    pub session_generation: u64,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub onboarding: serde_json::Map<String, serde_json::Value>,
    pub region: Option<String>,
    pub signup_method: Option<String>,
    /// sha256 of the invite code given at signup; applied after verification.
    pub invite_code_hash: Option<String>,
    pub public_key: Option<String>,
    pub avatar_url: Option<String>,
    pub free_tier_unlocked: bool,
    pub free_tier_unlocked_at: Option<String>,
    pub default_project_id: Option<String>,
    /// How the free tier was unlocked (`signup`, `admin`, `invite`).
    #[serde(default)]
    pub free_tier_unlock_source: Option<String>,
    /// The server the free tier runs on: the local node.
    #[serde(default)]
    pub free_tier_server_id: Option<String>,
    #[serde(default)]
    pub recent_login_ips: Vec<LoginIp>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct LoginIp {
    pub ip: String,
    pub timestamp: String,
}

/// One entry of the account security log (`users.getSecurityHistory`).
#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct SecurityEvent {
    pub id: String,
    /// Not part of the response; records are reached through the user's index.
    #[serde(skip_serializing, default)]
    pub user_id: String,
    /// `login`, `logout`, `email_verified`, `password_changed`, `password_reset`.
    pub event: String,
    /// `success` or `failed`.
    pub outcome: String,
    pub ip_address: String,
    pub country: Option<String>,
    pub client: Option<String>,
    pub created_at: String,
}

impl SecurityEvent {
    pub fn is_login(&self) -> bool {
        self.event == "login"
    }
}

/// Appends an entry to the user's security log inside a transaction.
pub fn record_security(
    tx: &Tx<'_>,
    user_id: &str,
    event: &str,
    success: bool,
    ip: &str,
    client: Option<&str>,
) -> StoreResult<()> {
    let entry = SecurityEvent {
        id: new_id(),
        user_id: user_id.to_string(),
        event: event.to_string(),
        outcome: if success { "success" } else { "failed" }.to_string(),
        ip_address: ip.to_string(),
        country: None,
        client: client.map(str::to_string),
        created_at: now(),
    };
    tx.put(&SECURITY_EVENTS, &entry.id, &entry)?;
    tx.add_multi(&SECURITY_EVENTS_BY_USER, user_id, &entry.id)
}
