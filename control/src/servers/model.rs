//! The server (node) record and where it is stored.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::Table;

pub const SERVERS: Table<Server> = Table::new("servers");

#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct Server {
    pub id: String,
    /// The node name, the second label of container hostnames.
    pub name: String,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub datacenter: Option<String>,
    #[serde(default)]
    pub is_ready: bool,
    #[serde(default)]
    pub is_free_tier: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// The id of the server record of node `name`. Derived from the name so
/// that every process finds the same record without an extra index, and
/// concurrent first registrations write the same key.
pub fn node_server_id(name: &str) -> String {
    let digest = Sha256::digest(format!("server:{name}").as_bytes());
    hex::encode(&digest[..12])
}

impl Server {
    /// The record of the node this process runs on.
    pub fn local(name: &str, now: &str) -> Server {
        Server {
            id: node_server_id(name),
            name: name.to_string(),
            country: None,
            region: Some(name.to_string()),
            city: None,
            datacenter: Some(name.to_string()),
            is_ready: true,
            is_free_tier: true,
            created_at: now.to_string(),
            updated_at: now.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_valid_ids() {
        let a = node_server_id("local");
        assert!(crate::wire::is_id(&a));
        assert_eq!(a, node_server_id("local"));
        assert_ne!(a, node_server_id("edge"));
    }
}
