//! Persistent state: sled behind a small typed API.
//!
//! * A [`Table<V>`] is a sled tree of JSON records keyed by their id.
//! * An [`Index`] is a sled tree mapping a lookup key to an id. Unique indexes
//!   store `key -> id`; multi indexes (by owner) store `key \0 id -> ""` and are
//!   read with a prefix scan.
//! * Every change that touches more than one record goes through
//!   [`Store::tx`], one sled transaction over all trees, so a crash leaves
//!   either the whole change or none of it.
//!
//! What this module must never do: know about HTTP or business rules. Each
//! resource module declares its own tables and indexes in its `store.rs`.

mod backup;
mod migrate;

use std::cell::Cell;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;

use crate::error::ApiError;

pub use backup::{export_to_file, import_from_file};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot encode record: {0}")]
    Encode(serde_json::Error),
    #[error("unknown tree {0}")]
    UnknownTree(&'static str),
    #[error("store schema version {found} is newer than this binary supports ({supported})")]
    SchemaTooNew { found: u64, supported: u64 },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Another transaction touched the same keys; sled retries the closure.
    #[error("transaction conflict")]
    TxConflict,
    /// A business-rule failure raised inside a transaction, carried out unchanged.
    #[error("{0}")]
    Api(Box<ApiError>),
}

impl From<ApiError> for StoreError {
    fn from(err: ApiError) -> Self {
        StoreError::Api(Box::new(err))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A tree of JSON records of type `V`, keyed by id.
pub struct Table<V> {
    pub name: &'static str,
    _value: PhantomData<fn() -> V>,
}

impl<V> Table<V> {
    pub const fn new(name: &'static str) -> Self {
        Table {
            name,
            _value: PhantomData,
        }
    }
}

/// A secondary index: lookup key -> record id.
pub struct Index {
    pub name: &'static str,
}

impl Index {
    pub const fn new(name: &'static str) -> Self {
        Index { name }
    }
}

/// Every tree the store opens. A transaction spans all of them, so a
/// resource module adds its trees here.
pub const TREES: &[&str] = &[
    "meta",
    "users",
    "users_by_email",
    "users_by_username",
    "email_tokens",
    "refresh_tokens",
    "refresh_families",
    "api_tokens",
    "api_tokens_by_hash",
    "api_tokens_by_user",
    "api_tokens_by_public_key",
    "events",
    "events_by_user",
    // Grouped by user (`Store::put_in_group`).
    "activity",
    // Empty since schema 2; kept so backups made before restore.
    "activity_by_user",
    "projects",
    "projects_by_owner",
    "project_permissions",
    "project_permissions_by_project",
    "project_permissions_by_user",
    "containers",
    "containers_by_project",
    "container_status_logs",
    "container_status_logs_by_container",
    "storage_shares",
    "storage_shares_by_source",
    "storage_shares_by_target",
    "proxy_modules",
    "proxy_modules_by_container",
    "servers",
    "security_events",
    "security_events_by_user",
    "node_tokens",
    "node_tokens_by_hash",
    "proxy_aliases",
    "proxy_aliases_by_label",
    "proxy_aliases_by_container",
    "proxy_documents_containers",
    "proxy_documents_projects",
];

// Transactions note the trees they write in a 64-bit mask.
const _: () = assert!(TREES.len() <= 64);

fn tree_index(name: &'static str) -> StoreResult<usize> {
    TREES
        .iter()
        .position(|t| *t == name)
        .ok_or(StoreError::UnknownTree(name))
}

fn multi_key(key: &str, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1 + id.len());
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(id.as_bytes());
    out
}

fn multi_prefix(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out
}

fn decode<V: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<V> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

fn encode<V: Serialize>(value: &V) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(StoreError::Encode)
}

/// The handle every service holds. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    trees: std::sync::Arc<Vec<sled::Tree>>,
    /// One write counter per tree, bumped after every write to it has
    /// landed: caches of decoded records compare it to know they are stale.
    versions: std::sync::Arc<Vec<AtomicU64>>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and runs pending migrations.
    pub fn open(dir: &Path) -> StoreResult<Store> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(200))
            .open()?;
        Self::from_db(db)
    }

    /// A throwaway in-memory store for unit tests.
    pub fn temporary() -> StoreResult<Store> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> StoreResult<Store> {
        let trees = TREES
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Store {
            db,
            trees: std::sync::Arc::new(trees),
            versions: std::sync::Arc::new(TREES.iter().map(|_| AtomicU64::new(0)).collect()),
        };
        migrate::run(&store)?;
        Ok(store)
    }

    fn tree(&self, name: &'static str) -> StoreResult<&sled::Tree> {
        Ok(&self.trees[tree_index(name)?])
    }

    /// How many writes tree `name` has seen since the store was opened.
    /// Read it before reading records: a cache entry built from those
    /// records is current while the number has not moved. Writes bump it
    /// only after they are visible, so a reader never pairs a new number
    /// with old records.
    pub fn version(&self, name: &'static str) -> u64 {
        tree_index(name)
            .map(|i| self.versions[i].load(Ordering::Acquire))
            .unwrap_or(0)
    }

    fn bump(&self, mask: u64) {
        for (i, v) in self.versions.iter().enumerate() {
            if mask & (1 << i) != 0 {
                v.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn bump_tree(&self, name: &'static str) {
        if let Ok(i) = tree_index(name) {
            self.bump(1 << i);
        }
    }

    /// After a write that bypassed the typed API (backup import).
    pub(crate) fn bump_all(&self) {
        self.bump(u64::MAX);
    }

    pub fn get<V: DeserializeOwned>(&self, table: &Table<V>, id: &str) -> StoreResult<Option<V>> {
        match self.tree(table.name)?.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode(table.name, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes one record outside a transaction: for single-record updates
    /// that touch no index (timestamps, counters).
    pub fn put<V: Serialize>(&self, table: &Table<V>, id: &str, value: &V) -> StoreResult<()> {
        let result = self.tree(table.name)?.insert(id.as_bytes(), encode(value)?);
        self.bump_tree(table.name);
        result?;
        Ok(())
    }

    /// All records of a table, in key order.
    pub fn scan<V: DeserializeOwned>(&self, table: &Table<V>) -> StoreResult<Vec<V>> {
        self.tree(table.name)?
            .iter()
            .map(|item| {
                let (_, bytes) = item?;
                decode(table.name, &bytes)
            })
            .collect()
    }

    pub fn count<V>(&self, table: &Table<V>) -> StoreResult<usize> {
        Ok(self.tree(table.name)?.len())
    }

    /// Writes one record of a grouped table under `owner`: key `owner \0 id`.
    /// A single-key write is atomic by itself and, unlike [`Store::tx`],
    /// takes no store-wide lock, so readers never wait on it. For tables
    /// read only per owner (a log), this replaces a record plus an index.
    pub fn put_in_group<V: Serialize>(
        &self,
        table: &Table<V>,
        owner: &str,
        id: &str,
        value: &V,
    ) -> StoreResult<()> {
        let result = self
            .tree(table.name)?
            .insert(multi_key(owner, id), encode(value)?);
        self.bump_tree(table.name);
        result?;
        Ok(())
    }

    /// Every record of a grouped table under `owner`, in id order.
    pub fn group<V: DeserializeOwned>(&self, table: &Table<V>, owner: &str) -> StoreResult<Vec<V>> {
        self.tree(table.name)?
            .scan_prefix(multi_prefix(owner))
            .values()
            .map(|v| decode(table.name, &v?))
            .collect()
    }

    /// Removes, in every group of a grouped table, the records whose id
    /// sorts before `bound`; returns how many went. Seeks owner by owner,
    /// so it reads only what it removes plus one key per owner.
    pub fn remove_in_groups_before<V>(&self, table: &Table<V>, bound: &str) -> StoreResult<u64> {
        /// Keys removed per pass over one owner's range.
        const CHUNK: usize = 1000;
        let tree = self.tree(table.name)?;
        let mut removed = 0;
        let mut from: Vec<u8> = Vec::new();
        while let Some(item) = tree.range(from.as_slice()..).next() {
            let (key, _) = item?;
            let Some(sep) = key.iter().position(|b| *b == 0) else {
                // Not a grouped key: step over it.
                from = key.to_vec();
                from.push(0);
                continue;
            };
            let owner = &key[..sep];
            let mut end = owner.to_vec();
            end.push(0);
            end.extend_from_slice(bound.as_bytes());
            loop {
                let keys = tree
                    .range(&key[..=sep]..end.as_slice())
                    .keys()
                    .take(CHUNK)
                    .collect::<Result<Vec<_>, _>>()?;
                for k in &keys {
                    tree.remove(k)?;
                }
                removed += keys.len() as u64;
                if keys.len() < CHUNK {
                    break;
                }
            }
            // `owner \1` sorts after every `owner \0 …` and before the next owner.
            from = owner.to_vec();
            from.push(1);
        }
        if removed > 0 {
            self.bump_tree(table.name);
        }
        Ok(removed)
    }

    /// The id a unique index maps `key` to.
    pub fn lookup(&self, index: &Index, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .tree(index.name)?
            .get(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The ids a multi index holds under `key`, in id order.
    pub fn ids(&self, index: &Index, key: &str) -> StoreResult<Vec<String>> {
        let prefix = multi_prefix(key);
        self.tree(index.name)?
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    /// The records a multi index holds under `key`.
    pub fn owned<V: DeserializeOwned>(
        &self,
        index: &Index,
        key: &str,
        table: &Table<V>,
    ) -> StoreResult<Vec<V>> {
        let mut out = Vec::new();
        for id in self.ids(index, key)? {
            if let Some(v) = self.get(table, &id)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Runs `f` as one atomic transaction over every tree. `f` may run more
    /// than once on conflict, so it must not have side effects outside `tx`.
    pub fn tx<R>(&self, f: impl Fn(&Tx<'_>) -> StoreResult<R>) -> StoreResult<R> {
        let written = Cell::new(0u64);
        let result = self.trees.as_slice().transaction(|trees| {
            let tx = Tx {
                trees,
                written: &written,
            };
            f(&tx).map_err(|e| match e {
                StoreError::Sled(err) => ConflictableTransactionError::Storage(err),
                StoreError::TxConflict => ConflictableTransactionError::Conflict,
                other => ConflictableTransactionError::Abort(other),
            })
        });
        // Also after an abort: a needless bump only costs a cache refill.
        self.bump(written.get());
        match result {
            Ok(r) => Ok(r),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }

    pub fn meta_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.tree("meta")?.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn meta_set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.tree("meta")?.insert(key.as_bytes(), value)?;
        self.bump_tree("meta");
        Ok(())
    }

    /// Flushes every pending write to disk.
    pub fn flush(&self) -> StoreResult<()> {
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }
}

/// The view of the store inside [`Store::tx`].
pub struct Tx<'a> {
    trees: &'a [TransactionalTree],
    /// Bit i set: tree i was written; [`Store::tx`] bumps their versions.
    written: &'a Cell<u64>,
}

fn unabortable(e: UnabortableTransactionError) -> StoreError {
    match e {
        UnabortableTransactionError::Storage(err) => StoreError::Sled(err),
        // Carried back to `Store::tx`, which hands it to sled to retry.
        UnabortableTransactionError::Conflict => StoreError::TxConflict,
    }
}

impl Tx<'_> {
    fn tree(&self, name: &'static str) -> StoreResult<&TransactionalTree> {
        Ok(&self.trees[tree_index(name)?])
    }

    /// The tree `name`, noted as written.
    fn tree_mut(&self, name: &'static str) -> StoreResult<&TransactionalTree> {
        let i = tree_index(name)?;
        self.written.set(self.written.get() | (1 << i));
        Ok(&self.trees[i])
    }

    pub fn get<V: DeserializeOwned>(&self, table: &Table<V>, id: &str) -> StoreResult<Option<V>> {
        match self
            .tree(table.name)?
            .get(id.as_bytes())
            .map_err(unabortable)?
        {
            Some(bytes) => Ok(Some(decode(table.name, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn put<V: Serialize>(&self, table: &Table<V>, id: &str, value: &V) -> StoreResult<()> {
        self.tree_mut(table.name)?
            .insert(id.as_bytes(), encode(value)?)
            .map_err(unabortable)?;
        Ok(())
    }

    pub fn remove<V>(&self, table: &Table<V>, id: &str) -> StoreResult<()> {
        self.tree_mut(table.name)?
            .remove(id.as_bytes())
            .map_err(unabortable)?;
        Ok(())
    }

    pub fn lookup(&self, index: &Index, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .tree(index.name)?
            .get(key.as_bytes())
            .map_err(unabortable)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Points a unique index entry at `id`.
    pub fn set_unique(&self, index: &Index, key: &str, id: &str) -> StoreResult<()> {
        self.tree_mut(index.name)?
            .insert(key.as_bytes(), id.as_bytes())
            .map_err(unabortable)?;
        Ok(())
    }

    pub fn remove_unique(&self, index: &Index, key: &str) -> StoreResult<()> {
        self.tree_mut(index.name)?
            .remove(key.as_bytes())
            .map_err(unabortable)?;
        Ok(())
    }

    /// Adds `id` under `key` in a multi index.
    pub fn add_multi(&self, index: &Index, key: &str, id: &str) -> StoreResult<()> {
        self.tree_mut(index.name)?
            .insert(multi_key(key, id), &[] as &[u8])
            .map_err(unabortable)?;
        Ok(())
    }

    pub fn remove_multi(&self, index: &Index, key: &str, id: &str) -> StoreResult<()> {
        self.tree_mut(index.name)?
            .remove(multi_key(key, id))
            .map_err(unabortable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Rec {
        id: String,
        owner: String,
    }

    const RECS: Table<Rec> = Table::new("projects");
    const BY_OWNER: Index = Index::new("projects_by_owner");

    #[test]
    fn transaction_writes_record_and_index_together() {
        let store = Store::temporary().unwrap();
        store
            .tx(|tx| {
                let rec = Rec {
                    id: "a".into(),
                    owner: "u1".into(),
                };
                tx.put(&RECS, "a", &rec)?;
                tx.add_multi(&BY_OWNER, "u1", "a")
            })
            .unwrap();
        assert_eq!(store.ids(&BY_OWNER, "u1").unwrap(), vec!["a".to_string()]);
        assert_eq!(store.owned(&BY_OWNER, "u1", &RECS).unwrap().len(), 1);
        assert!(store.ids(&BY_OWNER, "u").unwrap().is_empty());
    }

    #[test]
    fn aborted_transaction_leaves_nothing() {
        let store = Store::temporary().unwrap();
        let result: StoreResult<()> = store.tx(|tx| {
            tx.put(
                &RECS,
                "b",
                &Rec {
                    id: "b".into(),
                    owner: "u2".into(),
                },
            )?;
            tx.add_multi(&BY_OWNER, "u2", "b")?;
            Err(ApiError::conflict("CONFLICT", "no").into())
        });
        assert!(matches!(result, Err(StoreError::Api(_))));
        assert!(store.get(&RECS, "b").unwrap().is_none());
        assert!(store.ids(&BY_OWNER, "u2").unwrap().is_empty());
    }
}
