//! Request bodies of `authTokens.*` and the checks on each field.

use std::net::IpAddr;

use base64::Engine;
use rand::seq::SliceRandom;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::wire::{is_id, is_slug, Validator};

/// Most entries an IP whitelist or realm list may hold.
pub const MAX_LIST: usize = 100;
/// Largest `public_storage`, serialised.
pub const MAX_PUBLIC_STORAGE_BYTES: usize = 64 * 1024;
const MAX_ALIAS_CHARS: usize = 254;
const MAX_OTP_CHARS: usize = 12;

/// A field that may be absent, `null`, or a value: absent is `None`, `null`
/// is `Some(Value::Null)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `authTokens.create` body.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// 1–254 characters of letters, digits, space, `_` and `-`; a random
    /// `adjective-animal` name when omitted.
    pub alias: Option<String>,
    /// An Ed25519 public key (hex, base64 or PEM) identifying the client.
    pub public_key: Option<String>,
    /// A public JSON object (at most 64 KiB) published with `public_key`.
    #[schema(value_type = Option<Object>)]
    pub public_storage: Option<Value>,
    /// Addresses and CIDRs allowed to use the token: an array, a
    /// comma-separated string, or `*` (the default).
    #[schema(value_type = Option<Vec<String>>)]
    pub ip_whitelist: Option<Value>,
    /// `full_access`, `external_customer`, `dev_team`, `finance_team` or
    /// `read_only`; wins over `permissions`.
    pub permission_template: Option<String>,
    /// The permission tree; a missing leaf denies.
    #[schema(value_type = Option<Object>)]
    pub permissions: Option<Value>,
    /// Realms (24-hex ids) the token is limited to; empty means any realm.
    pub realm_ids: Option<Vec<String>>,
    /// Whether the token works without a realm (default true).
    pub allow_no_realm: Option<bool>,
    /// Vault access (default false).
    pub vault_access: Option<bool>,
    /// Event history and streams (default true).
    pub event_access: Option<bool>,
    /// Make a leaf token that can never create tokens or reach the vault,
    /// and always expires.
    pub deny_reauthorization: Option<bool>,
    /// RFC 3339 time, date, Unix timestamp, `today` or `tomorrow`; never
    /// expires when omitted.
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Value>,
    /// Second factor (accepted for compatibility; at most 12 characters).
    pub otp_code: Option<String>,
}

/// `authTokens.update` body: every field optional; `null` clears
/// `public_key`, `public_storage` and `expires_at`.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTokenRequest {
    pub alias: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub public_key: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub public_storage: Option<Value>,
    #[schema(value_type = Option<Vec<String>>)]
    pub ip_whitelist: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub permissions: Option<Value>,
    pub realm_ids: Option<Vec<String>>,
    pub allow_no_realm: Option<bool>,
    pub vault_access: Option<bool>,
    pub event_access: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Value>,
    #[serde(alias = "enabled")]
    pub is_enabled: Option<bool>,
    pub otp_code: Option<String>,
}

/// `authTokens.copy` body.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyTokenRequest {
    pub alias: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Value>,
    pub otp_code: Option<String>,
}

/// `authTokens.addRealm` / `authTokens.removeRealm` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RealmRequest {
    /// A 24-hex realm id.
    pub realm_id: String,
    pub otp_code: Option<String>,
}

/// `authTokens.updatePublicProfile` body.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicProfileRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub public_key: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub public_storage: Option<Value>,
}

pub fn check_alias(v: &mut Validator, field: &str, alias: &str) {
    v.length(field, alias, 1, MAX_ALIAS_CHARS);
    v.check(
        field,
        is_slug(alias, b" "),
        "may contain only letters, digits, spaces, '_' and '-'",
    );
}

pub fn check_otp(v: &mut Validator, otp: Option<&str>) {
    if let Some(otp) = otp {
        v.length("otp_code", otp, 0, MAX_OTP_CHARS);
    }
}

/// A whitelist in any accepted form, as a list of entries; `*` anywhere
/// makes it `["*"]`.
pub fn ip_whitelist(v: &mut Validator, value: &Value) -> Vec<String> {
    const FIELD: &str = "ip_whitelist";
    let entries: Vec<String> = match value {
        Value::String(s) => s
            .split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => out.push(s.trim().to_string()),
                    None => v.fail(&format!("{FIELD}[{i}]"), "must be a string"),
                }
            }
            out
        }
        _ => {
            v.fail(
                FIELD,
                "must be an array of addresses or CIDRs, a comma-separated string, or \"*\"",
            );
            return Vec::new();
        }
    };
    if entries.is_empty() {
        v.fail(FIELD, "must name at least one address or CIDR, or \"*\"");
        return entries;
    }
    if entries.len() > MAX_LIST {
        v.fail(FIELD, format!("may hold at most {MAX_LIST} entries"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        if entry == "*" {
            return vec!["*".to_string()];
        }
        let valid = entry.len() <= 64
            && (entry.parse::<ipnet::IpNet>().is_ok() || entry.parse::<IpAddr>().is_ok());
        if !valid {
            v.fail(&format!("{FIELD}[{i}]"), "is not an IP address or CIDR");
        } else if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// Realm ids: 24-hex each, no duplicates, at most [`MAX_LIST`].
pub fn realm_ids(v: &mut Validator, ids: &[String]) -> Vec<String> {
    if ids.len() > MAX_LIST {
        v.fail("realm_ids", format!("may hold at most {MAX_LIST} entries"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if !is_id(id) {
            v.fail(
                &format!("realm_ids[{i}]"),
                "must be a 24-character lowercase hex id",
            );
        } else if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// A JSON object of at most 64 KiB, or `null`.
pub fn public_storage(v: &mut Validator, value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(_) => {
            let size = serde_json::to_vec(value)
                .map(|b| b.len())
                .unwrap_or(usize::MAX);
            if size > MAX_PUBLIC_STORAGE_BYTES {
                v.fail("public_storage", "must be at most 64 KiB of JSON");
            }
            Some(value.clone())
        }
        _ => {
            v.fail("public_storage", "must be an object or null");
            None
        }
    }
}

/// An Ed25519 public key as hex, base64 (standard or URL-safe, padded or
/// not) or an SPKI PEM block. Stored as given, trimmed.
pub fn public_key(v: &mut Validator, key: &str) -> Option<String> {
    let key = key.trim();
    if key.is_empty() || key.len() > 1024 || !is_ed25519_public_key(key) {
        v.fail(
            "public_key",
            "must be an Ed25519 public key (hex, base64 or PEM)",
        );
        return None;
    }
    Some(key.to_string())
}

fn is_ed25519_public_key(key: &str) -> bool {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use ed25519_dalek::pkcs8::DecodePublicKey;
    if key.starts_with("-----BEGIN") {
        return ed25519_dalek::VerifyingKey::from_public_key_pem(key).is_ok();
    }
    let decoded = hex::decode(key).ok().or_else(|| {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(key).ok())
    });
    decoded
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .map(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_ok())
        .unwrap_or(false)
}

/// A friendly default alias such as `clever-dolphin`.
pub fn random_alias() -> String {
    const ADJECTIVES: &[&str] = &[
        "agile", "bold", "brave", "bright", "calm", "clever", "cosmic", "daring", "eager",
        "fearless", "gentle", "happy", "keen", "lively", "lucky", "mighty", "nimble", "proud",
        "quick", "quiet", "rapid", "shiny", "silent", "steady", "swift", "tidy", "vivid", "wise",
    ];
    const ANIMALS: &[&str] = &[
        "badger", "beaver", "bison", "cheetah", "dolphin", "eagle", "falcon", "fox", "gecko",
        "heron", "ibex", "jaguar", "koala", "lemur", "lynx", "marten", "narwhal", "otter", "panda",
        "puffin", "raven", "salmon", "tiger", "turtle", "walrus", "wolf", "yak", "zebra",
    ];
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}",
        ADJECTIVES.choose(&mut rng).unwrap_or(&"swift"),
        ANIMALS.choose(&mut rng).unwrap_or(&"fox")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whitelist(value: Value) -> Result<Vec<String>, Vec<String>> {
        let mut v = Validator::new();
        let out = ip_whitelist(&mut v, &value);
        match v.finish() {
            Ok(()) => Ok(out),
            Err(crate::error::ApiError::Validation { details, .. }) => {
                Err(details.keys().cloned().collect())
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn whitelist_accepts_arrays_comma_strings_and_star() {
        assert_eq!(
            whitelist(json!(["10.0.0.0/8", "::1"])),
            Ok(vec!["10.0.0.0/8".into(), "::1".into()])
        );
        assert_eq!(
            whitelist(json!("1.2.3.4, 10.0.0.0/8")),
            Ok(vec!["1.2.3.4".into(), "10.0.0.0/8".into()])
        );
        assert_eq!(whitelist(json!("*")), Ok(vec!["*".into()]));
        assert_eq!(whitelist(json!(["1.2.3.4", "*"])), Ok(vec!["*".into()]));
    }

    #[test]
    fn whitelist_names_each_bad_entry() {
        assert_eq!(
            whitelist(json!(["1.2.3.4", "nope", 5])),
            Err(vec!["ip_whitelist[1]".into(), "ip_whitelist[2]".into()])
        );
        assert_eq!(whitelist(json!([])), Err(vec!["ip_whitelist".into()]));
        assert_eq!(whitelist(json!(12)), Err(vec!["ip_whitelist".into()]));
        assert_eq!(
            whitelist(json!("10.0.0.0/99")),
            Err(vec!["ip_whitelist[0]".into()])
        );
    }

    #[test]
    fn public_keys_must_be_ed25519() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let hex_key = hex::encode(key.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        for good in [hex_key.as_str(), b64.as_str()] {
            let mut v = Validator::new();
            assert_eq!(public_key(&mut v, good).as_deref(), Some(good));
            assert!(v.finish().is_ok());
        }
        let mut v = Validator::new();
        assert!(public_key(&mut v, "not a key").is_none());
        assert!(v.finish().is_err());
    }

    #[test]
    fn random_aliases_pass_the_alias_rules() {
        let alias = random_alias();
        let mut v = Validator::new();
        check_alias(&mut v, "alias", &alias);
        assert!(v.finish().is_ok());
        assert!(alias.contains('-'));
    }
}
