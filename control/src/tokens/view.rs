//! What clients see of a token. The secret is never part of it, except in
//! [`CreatedToken`], returned once by create and copy.

use serde::Serialize;
use serde_json::Value;

use super::model::ApiToken;

#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub alias: String,
    pub prefix: String,
    pub public_key: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub public_storage: Option<Value>,
    pub ip_whitelist: Vec<String>,
    pub realm_ids: Vec<String>,
    pub allow_no_realm: bool,
    /// The permission tree; every leaf is present.
    #[schema(value_type = Object)]
    pub permissions: Value,
    pub expires_at: Option<String>,
    pub is_enabled: bool,
    pub vault_access: bool,
    pub event_access: bool,
    pub created_by_token_id: Option<String>,
    pub delegation_depth: u32,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        TokenView {
            id: t.id.clone(),
            alias: t.alias.clone(),
            prefix: t.prefix.clone(),
            public_key: t.public_key.clone(),
            public_storage: t.public_storage.clone(),
            ip_whitelist: t.ip_whitelist.clone(),
            realm_ids: t.realm_ids.clone(),
            allow_no_realm: t.allow_no_realm,
            permissions: t.permissions.clone(),
            expires_at: t.expires_at.clone(),
            is_enabled: t.is_enabled,
            vault_access: t.vault_access,
            event_access: t.event_access,
            created_by_token_id: t.created_by_token_id.clone(),
            delegation_depth: t.delegation_depth,
            last_used_at: t.last_used_at.clone(),
            last_used_ip: t.last_used_ip.clone(),
            created_at: t.created_at.clone(),
            updated_at: t.updated_at.clone(),
        }
    }
}

/// A new token with its secret: the only time the secret leaves the server.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The full `hdy_…` secret. Store it now; it cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

/// `authTokens.getCurrent`: the calling token and how it is restricted.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct CurrentToken {
    pub token: TokenView,
    pub restrictions: Restrictions,
}

#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct Restrictions {
    pub has_realm_restrictions: bool,
    pub requires_realm_scope: bool,
    pub allowed_realm_ids: Vec<String>,
    pub allow_no_realm: bool,
    pub active_realm_id: Option<String>,
}

/// `authTokens.getPublicProfile`.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct PublicProfile {
    pub public_key: String,
    #[schema(value_type = Option<Object>)]
    pub public_storage: Option<Value>,
}
