//! The user record and where it is stored.

use serde::{Deserialize, Serialize};

use crate::store::{Index, Table};

pub const USERS: Table<User> = Table::new("users");
/// Lower-cased email -> user id.
pub const USERS_BY_EMAIL: Index = Index::new("users_by_email");
/// Lower-cased username -> user id.
pub const USERS_BY_USERNAME: Index = Index::new("users_by_username");

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
    #[serde(default)]
    pub recent_login_ips: Vec<LoginIp>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LoginIp {
    pub ip: String,
    pub timestamp: String,
}
