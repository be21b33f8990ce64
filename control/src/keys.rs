//! Key material the control plane creates on first start and keeps in the
//! data directory: the HMAC secret that signs access tokens, and the Ed25519
//! key that signs identity and container claims (published by
//! `meta.getPublicKey`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {0} is not a valid key")]
    Invalid(String),
}

pub struct Keys {
    pub jwt_secret: Vec<u8>,
    signing: SigningKey,
    /// Short identifier of the signing key, carried in every claim.
    pub kid: String,
}

/// A payload signed with the control plane's Ed25519 key, as the contract's
/// `identity_claim` / `container_claim` objects carry it.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct SignedClaim {
    pub kid: String,
    pub payload_b64: String,
    pub signature_hex: String,
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

impl Keys {
    /// Loads the keys from `dir`, creating them on first start.
    pub fn load_or_create(dir: &Path) -> Result<Keys, KeyError> {
        let jwt_path = dir.join("jwt.secret");
        let jwt_secret = match read(&jwt_path)? {
            Some(b) if b.len() >= 32 => b,
            Some(_) => return Err(KeyError::Invalid(jwt_path.display().to_string())),
            None => {
                let mut secret = vec![0u8; 64];
                rand::thread_rng().fill_bytes(&mut secret);
                write_private(&jwt_path, &secret)?;
                secret
            }
        };
        let sign_path = dir.join("signing.pem");
        let signing = match read(&sign_path)? {
            Some(pem) => {
                let text = String::from_utf8(pem)
                    .map_err(|_| KeyError::Invalid(sign_path.display().to_string()))?;
                SigningKey::from_pkcs8_pem(&text)
                    .map_err(|_| KeyError::Invalid(sign_path.display().to_string()))?
            }
            None => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                let pem = key
                    .to_pkcs8_pem(Default::default())
                    .map_err(|_| KeyError::Invalid(sign_path.display().to_string()))?;
                write_private(&sign_path, pem.as_bytes())?;
                key
            }
        };
        let kid = hex::encode(&Sha256::digest(signing.verifying_key().as_bytes())[..8]);
        Ok(Keys {
            jwt_secret,
            signing,
            kid,
        })
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().as_bytes())
    }

    pub fn public_key_pem(&self) -> String {
        self.signing
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap_or_default()
    }

    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.signing.verifying_key()
    }

    /// Signs a JSON payload: the signature covers the base64 text itself so
    /// verifiers never re-serialise.
    pub fn sign_claim(&self, payload: &serde_json::Value) -> SignedClaim {
        let payload_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(payload).unwrap_or_default());
        let signature = self.signing.sign(payload_b64.as_bytes());
        SignedClaim {
            kid: self.kid.clone(),
            payload_b64,
            signature_hex: hex::encode(signature.to_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn keys_survive_a_restart_and_claims_verify() {
        let dir = std::env::temp_dir().join(format!("hoody-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let a = Keys::load_or_create(&dir).unwrap();
        let b = Keys::load_or_create(&dir).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        assert_eq!(a.jwt_secret, b.jwt_secret);
        let claim = a.sign_claim(&serde_json::json!({"sub": "x"}));
        let sig = ed25519_dalek::Signature::from_slice(&hex::decode(&claim.signature_hex).unwrap())
            .unwrap();
        assert!(b
            .verifying_key()
            .verify(claim.payload_b64.as_bytes(), &sig)
            .is_ok());
    }
}
