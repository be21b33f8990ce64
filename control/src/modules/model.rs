//! Module records and their sled trees.

use serde::{Deserialize, Serialize};

use crate::store::{Index, Table};

/// `{container_id}/{name}` → record.
pub const MODULES: Table<ModuleRecord> = Table::new("proxy_modules");
/// container id → record keys.
pub const MODULES_BY_CONTAINER: Index = Index::new("proxy_modules_by_container");

/// One module of a container's store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModuleRecord {
    pub container_id: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
    pub imports: Vec<ModuleImport>,
    /// The proxy-wasm ABI the module declares (`0.2.1`), if any.
    pub abi_version: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An import and how the host answers it (`implemented`, `no-op`,
/// `unimplemented`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModuleImport {
    pub module: String,
    pub name: String,
    pub provision: String,
}

pub fn key(container_id: &str, name: &str) -> String {
    format!("{container_id}/{name}")
}
