//! The alias record and its sled trees.

use serde::{Deserialize, Serialize};

use crate::store::{Index, Store, StoreResult, Table, Tx};

pub const ALIASES: Table<Alias> = Table::new("proxy_aliases");
/// `{server_id}/{label}` -> alias id: a label is unique per node, across
/// every tenant, because the hostname `{label}.{node}.{base}` is.
pub const ALIASES_BY_LABEL: Index = Index::new("proxy_aliases_by_label");
/// container id -> alias ids (the compiler reads a container's aliases).
pub const ALIASES_BY_CONTAINER: Index = Index::new("proxy_aliases_by_container");

/// One alias hostname. `program` and `index` hold the resolved target: for
/// `http`/`https` the index is the port inside the container, whichever of
/// `port`, `http-<port>` or `index` named it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Alias {
    pub id: String,
    /// The project owner.
    pub user_id: String,
    pub project_id: String,
    pub container_id: String,
    pub server_id: String,
    pub alias: String,
    pub program: String,
    pub index: u32,
    pub target_path: Option<String>,
    pub allow_path_override: bool,
    /// RFC 3339.
    pub expires_at: Option<String>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// The unique-index key of a label on a server.
pub fn label_key(server_id: &str, label: &str) -> String {
    format!("{server_id}/{label}")
}

/// The aliases of a container.
pub fn of_container(store: &Store, container_id: &str) -> StoreResult<Vec<Alias>> {
    store.owned(&ALIASES_BY_CONTAINER, container_id, &ALIASES)
}

/// Writes an alias with its index entries (a renamed alias drops its old
/// label first).
pub fn put(tx: &Tx<'_>, a: &Alias, previous: Option<&Alias>) -> StoreResult<()> {
    if let Some(old) = previous {
        if old.alias != a.alias {
            tx.remove_unique(&ALIASES_BY_LABEL, &label_key(&old.server_id, &old.alias))?;
        }
    }
    tx.put(&ALIASES, &a.id, a)?;
    tx.set_unique(&ALIASES_BY_LABEL, &label_key(&a.server_id, &a.alias), &a.id)?;
    tx.add_multi(&ALIASES_BY_CONTAINER, &a.container_id, &a.id)
}

/// Removes an alias and its index entries.
pub fn remove(tx: &Tx<'_>, a: &Alias) -> StoreResult<()> {
    tx.remove(&ALIASES, &a.id)?;
    tx.remove_unique(&ALIASES_BY_LABEL, &label_key(&a.server_id, &a.alias))?;
    tx.remove_multi(&ALIASES_BY_CONTAINER, &a.container_id, &a.id)
}
