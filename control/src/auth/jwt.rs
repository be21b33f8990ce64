//! Access tokens: HS256 JWTs signed with the data directory's secret.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Lifetime of an access token.
pub const ACCESS_TTL_SECS: i64 = 24 * 3600;

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AccessClaims {
    pub sub: String,
    /// The user's session generation at issue time.
    pub gen: u64,
    /// The refresh-token family this session belongs to.
    pub fam: String,
    pub iat: i64,
    pub exp: i64,
    pub typ: String,
}

pub fn issue(
    secret: &[u8],
    user_id: &str,
    generation: u64,
    family: &str,
    now: i64,
) -> Result<String, ApiError> {
    let claims = AccessClaims {
        sub: user_id.to_string(),
        gen: generation,
        fam: family.to_string(),
        iat: now,
        exp: now + ACCESS_TTL_SECS,
        typ: "access".into(),
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(ApiError::internal)
}

/// Checks signature, expiry and type; the caller checks the generation.
pub fn verify(secret: &[u8], token: &str) -> Result<AccessClaims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let data = decode::<AccessClaims>(token, &DecodingKey::from_secret(secret), &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::Unauthorized {
                code: "TOKEN_EXPIRED",
                message: "access token expired".into(),
            },
            _ => ApiError::Unauthorized {
                code: "INVALID_TOKEN",
                message: "invalid access token".into(),
            },
        })?;
    if data.claims.typ != "access" {
        return Err(ApiError::Unauthorized {
            code: "INVALID_TOKEN",
            message: "not an access token".into(),
        });
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let now = crate::wire::unix_now();
        let t = issue(secret, "u", 3, "f", now).unwrap();
        let c = verify(secret, &t).unwrap();
        assert_eq!((c.sub.as_str(), c.gen), ("u", 3));
        assert!(verify(b"another-secret-another-secret-xx", &t).is_err());
        let expired = issue(secret, "u", 3, "f", now - 2 * ACCESS_TTL_SECS).unwrap();
        assert!(matches!(
            verify(secret, &expired),
            Err(ApiError::Unauthorized {
                code: "TOKEN_EXPIRED",
                ..
            })
        ));
    }
}
