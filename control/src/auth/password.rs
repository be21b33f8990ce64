//! Password hashing with argon2id (19 MiB, t=2, p=1) and the contract's
//! password rules.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::ApiError;

fn argon2() -> Argon2<'static> {
    // 19 MiB, 2 passes, 1 lane: OWASP's argon2id baseline.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

/// Constant-time verification (argon2's comparison is constant-time).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the account does not
/// exist so that a login takes the same time either way.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy-password-never-matches-0A!").unwrap_or_default())
}

/// Signup rules: 12–128 characters with upper, lower, digit and special.
pub fn check_new(field: &str, password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if !(12..=128).contains(&n) {
        return Err(ApiError::field(field, "must be 12 to 128 characters"));
    }
    let upper = password.chars().any(|c| c.is_uppercase());
    let lower = password.chars().any(|c| c.is_lowercase());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let special = password.chars().any(|c| !c.is_alphanumeric());
    if !(upper && lower && digit && special) {
        return Err(ApiError::field(
            field,
            "must include an uppercase letter, a lowercase letter, a number and a special character",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_rules_hold() {
        let h = hash("Correct-Horse-9").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("Correct-Horse-9", &h));
        assert!(!verify("correct-horse-9", &h));
        assert!(check_new("password", "Correct-Horse-9").is_ok());
        assert!(check_new("password", "short-A1!").is_err());
        assert!(check_new("password", "alllowercase-123").is_err());
        assert!(check_new("password", "NoSpecialChar123").is_err());
    }
}
