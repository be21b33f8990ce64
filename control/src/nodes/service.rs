//! Node token rules: create (the secret is shown once), list, revoke, and
//! authenticate a presented token.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use dataplane::feed::NODE_TOKEN_PREFIX;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire;

use super::model::{NodeToken, NODE_TOKENS, NODE_TOKENS_BY_HASH};

/// A freshly created token: the only time its secret exists in the clear.
#[derive(Serialize, Debug)]
pub struct CreatedNodeToken {
    pub id: String,
    pub name: String,
    pub token: String,
    pub created_at: String,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Node names label metrics and logs: keep them short and plain.
fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "name",
            "must be 1-63 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

/// Makes a new node token; `name` defaults to `node-<id prefix>`.
pub fn create(state: &AppState, name: Option<String>) -> ApiResult<CreatedNodeToken> {
    let id = wire::new_id();
    let name = name.unwrap_or_else(|| format!("node-{}", &id[id.len() - 8..]));
    check_name(&name)?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("{NODE_TOKEN_PREFIX}{}", hex::encode(bytes));
    let record = NodeToken {
        id: id.clone(),
        name,
        prefix: token[..NODE_TOKEN_PREFIX.len() + 8].to_string(),
        token_hash: hash(&token),
        created_at: wire::now(),
    };
    state.store.tx(|tx| {
        tx.put(&NODE_TOKENS, &record.id, &record)?;
        tx.set_unique(&NODE_TOKENS_BY_HASH, &record.token_hash, &record.id)
    })?;
    Ok(CreatedNodeToken {
        id,
        name: record.name,
        token,
        created_at: record.created_at,
    })
}

pub fn list(state: &AppState) -> ApiResult<Vec<NodeToken>> {
    Ok(state.store.scan(&NODE_TOKENS)?)
}

/// Deletes the token; a node using it is refused from its next request on,
/// and its open stream closes at its next keep-alive.
pub fn revoke(state: &AppState, id: &str) -> ApiResult<NodeToken> {
    let record = state.store.tx(|tx| {
        let record = tx
            .get(&NODE_TOKENS, id)?
            .ok_or(ApiError::NotFound("node token"))?;
        tx.remove(&NODE_TOKENS, id)?;
        tx.remove_unique(&NODE_TOKENS_BY_HASH, &record.token_hash)?;
        Ok(record)
    })?;
    state.nodes.forget(&record.id);
    Ok(record)
}

fn rejected() -> ApiError {
    ApiError::Unauthorized {
        code: "INVALID_NODE_TOKEN",
        message: "a valid node token is required".into(),
    }
}

/// The node presenting `Authorization: Bearer hdyn_…`. User credentials
/// (JWTs, `hdy_` API tokens) are refused like any wrong token.
pub fn authenticate(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<NodeToken> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(NODE_TOKEN_PREFIX))
        .ok_or_else(rejected)?;
    let presented = hash(token);
    let id = state
        .store
        .lookup(&NODE_TOKENS_BY_HASH, &presented)?
        .ok_or_else(rejected)?;
    let record = state.store.get(&NODE_TOKENS, &id)?.ok_or_else(rejected)?;
    // The index lookup already matched; comparing the stored hash in
    // constant time keeps a corrupted or racing index from letting a
    // different token through.
    if bool::from(record.token_hash.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(record)
    } else {
        Err(rejected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn state() -> crate::testing::TempState {
        crate::testing::TempState::new("nodes")
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn created_token_authenticates_until_revoked() {
        let state = state();
        let made = create(&state, Some("edge-1".into())).unwrap();
        assert!(made.token.starts_with(NODE_TOKEN_PREFIX));
        let listed = list(&state).unwrap();
        assert_eq!(listed.len(), 1);
        assert_ne!(listed[0].token_hash, made.token);
        assert_eq!(
            authenticate(&state, &bearer(&made.token)).unwrap().name,
            "edge-1"
        );
        revoke(&state, &made.id).unwrap();
        assert!(authenticate(&state, &bearer(&made.token)).is_err());
    }

    #[tokio::test]
    async fn refuses_bad_names_and_foreign_credentials() {
        let state = state();
        assert!(matches!(
            create(&state, Some("bad name".into())),
            Err(ApiError::Validation { .. })
        ));
        assert!(list(&state).unwrap().is_empty());
        for t in ["hdy_abc", "eyJhbGciOiJIUzI1NiJ9.e30.x", "hdyn_0000"] {
            let err = authenticate(&state, &bearer(t)).unwrap_err();
            assert_eq!(err.code(), "INVALID_NODE_TOKEN");
        }
    }
}
