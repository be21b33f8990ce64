//! API token secrets: `hdy_` + 256 random bits in hex, stored only as sha256.

use rand::RngCore;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "hdy_";

/// A new token, its hash for the index, and its display prefix.
pub fn generate() -> (String, String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = hash(&token);
    let prefix = token[..PREFIX.len() + 8].to_string();
    (token, hash, prefix)
}

/// The index key of a presented token. Lookup by a hash of a 256-bit secret
/// leaks nothing through timing: an attacker cannot steer the hash prefix.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
