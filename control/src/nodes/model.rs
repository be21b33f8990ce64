//! The node token record and where it is stored.

use serde::{Deserialize, Serialize};

use crate::store::{Index, Table};

pub const NODE_TOKENS: Table<NodeToken> = Table::new("node_tokens");
/// sha256(token) in hex -> node token id. The token itself is never stored.
pub const NODE_TOKENS_BY_HASH: Index = Index::new("node_tokens_by_hash");

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct NodeToken {
    pub id: String,
    /// The node's name, shown in lists and metrics.
    pub name: String,
    /// The first characters of the token, to tell tokens apart.
    pub prefix: String,
    /// sha256 of the full token, hex.
    pub token_hash: String,
    pub created_at: String,
}
