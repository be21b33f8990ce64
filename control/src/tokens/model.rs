//! The API token record and where it is stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{Index, Table};

pub const API_TOKENS: Table<ApiToken> = Table::new("api_tokens");
/// sha256(token) in hex -> token id. The token itself is never stored.
pub const API_TOKENS_BY_HASH: Index = Index::new("api_tokens_by_hash");
/// user id -> token ids.
pub const API_TOKENS_BY_USER: Index = Index::new("api_tokens_by_user");
/// public key -> token id.
pub const API_TOKENS_BY_PUBLIC_KEY: Index = Index::new("api_tokens_by_public_key");

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub alias: String,
    /// The first characters of the token, shown in lists to tell tokens apart.
    pub prefix: String,
    /// sha256 of the full token, hex.
    pub token_hash: String,
    pub public_key: Option<String>,
    pub public_storage: Option<Value>,
    /// CIDRs, bare addresses, or `*`.
    pub ip_whitelist: Vec<String>,
    pub realm_ids: Vec<String>,
    pub allow_no_realm: bool,
    /// The contract's permission tree; a missing leaf denies.
    pub permissions: Value,
    pub expires_at: Option<String>,
    pub is_enabled: bool,
    pub vault_access: bool,
    pub event_access: bool,
    pub created_by_token_id: Option<String>,
    pub delegation_depth: u32,
    /// Created as a locked-down leaf: it can never gain `create_tokens`,
    /// vault access, or a permanent expiry.
    #[serde(default)]
    pub deny_reauthorization: bool,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}
