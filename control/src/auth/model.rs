//! Single-use email tokens (verification and password reset), stored by
//! the sha256 of the secret: the secret only ever exists in the email.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::Table;

/// sha256(token) in hex -> record.
pub const EMAIL_TOKENS: Table<EmailToken> = Table::new("email_tokens");

/// How long an emailed link stays usable.
pub const EMAIL_TOKEN_TTL_SECS: i64 = 24 * 3600;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Verify,
    Reset,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct EmailToken {
    pub purpose: Purpose,
    pub user_id: String,
    /// The address the link was sent to, lower-cased.
    pub email: String,
    pub expires_at: i64,
    /// The user's session generation when issued: a password reset moves
    /// it on, which retires every reset link sent before.
    pub generation: u64,
    /// For a signup's verification link: the password chosen at that
    /// signup, so whoever proves the address also chose the password.
    #[serde(default)]
    pub password_hash: Option<String>,
    pub created_at: String,
}

/// A new token secret: 256 random bits as 64 hex characters.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    hex::encode(bytes)
}

/// The storage key of a presented secret. Looking a 256-bit secret up by
/// its hash leaks nothing through timing.
pub fn key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
