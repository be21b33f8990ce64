//! Resolved API-token callers, kept for up to a second so a busy token does
//! not cost two store reads and two JSON decodes on every request.
//!
//! Correctness does not rest on the timeout: each entry remembers the write
//! counters ([`Store::version`]) of the trees it was built from, read before
//! the records were, and is used only while none of them has moved. Any
//! write to a user or token (disable, delete, permission change, ban,
//! password change, …) bumps them once it has landed, so the next request
//! authenticates from the store again. The timeout bounds the rest: the
//! wall clock (expiry), and how late the once-a-minute `last_used_at`
//! bookkeeping may run.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::principal::Principal;
use crate::store::Store;
use crate::tokens::model::{API_TOKENS, API_TOKENS_BY_HASH};
use crate::users::model::USERS;

/// How long an entry may serve without a store read.
const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; past it, stale ones go first, then all of them.
const CAPACITY: usize = 10_000;

/// The key of a presented token: its sha256, so no secret sits in memory.
pub type TokenKey = [u8; 32];

pub fn token_key(raw: &str) -> TokenKey {
    Sha256::digest(raw.as_bytes()).into()
}

/// The sum of the write counters of every tree a principal is read from.
/// Counters only grow, so the sum moves whenever one of them does.
pub fn versions(store: &Store) -> u64 {
    [USERS.name, API_TOKENS.name, API_TOKENS_BY_HASH.name]
        .iter()
        .fold(0u64, |sum, tree| sum.wrapping_add(store.version(tree)))
}

struct Entry {
    principal: Arc<Principal>,
    versions: u64,
    /// The earlier of fetch time + [`TTL`] and the token's expiry.
    until: Instant,
}

#[derive(Default)]
pub struct PrincipalCache {
    entries: RwLock<HashMap<TokenKey, Entry>>,
}

impl PrincipalCache {
    /// The cached caller for this token, when it was resolved for the same
    /// address and realm, is younger than [`TTL`], and its records have not
    /// been written since.
    pub fn get(
        &self,
        key: &TokenKey,
        ip: IpAddr,
        realm: Option<&str>,
        versions: u64,
    ) -> Option<Arc<Principal>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(key)?;
        let fresh = entry.versions == versions
            && Instant::now() < entry.until
            && entry.principal.ip == ip
            && entry.principal.realm_id.as_deref() == realm;
        fresh.then(|| entry.principal.clone())
    }

    /// Keeps `principal`, read from the store when its trees were at
    /// `versions`. `expires_at` is the token's expiry, if it has one.
    pub fn put(
        &self,
        key: TokenKey,
        principal: Arc<Principal>,
        versions: u64,
        expires_at: Option<time::OffsetDateTime>,
    ) {
        let now = Instant::now();
        let mut until = now + TTL;
        if let Some(exp) = expires_at {
            let left = exp - time::OffsetDateTime::now_utc();
            if left < TTL {
                // Expired (or about to): not worth keeping.
                let Ok(left) = Duration::try_from(left) else {
                    return;
                };
                until = now + left;
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                principal,
                versions,
                until,
            },
        );
    }
}
