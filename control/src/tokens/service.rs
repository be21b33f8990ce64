//! API token rules: authentication of a presented token. CRUD lives beside
//! it (see `routes.rs`).

use std::net::IpAddr;

use crate::auth::principal::Credential;
use crate::error::ApiError;
use crate::state::AppState;
use crate::users::model::{User, USERS};
use crate::wire::{now, parse_time};

use super::model::{ApiToken, API_TOKENS, API_TOKENS_BY_HASH};
use super::secret;

fn invalid() -> ApiError {
    ApiError::Unauthorized {
        code: "INVALID_TOKEN",
        message: "invalid API token".into(),
    }
}

/// Whether `ip` is allowed by a whitelist of CIDRs, bare addresses or `*`.
pub fn ip_allowed(whitelist: &[String], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    whitelist.iter().any(|entry| {
        let entry = entry.trim();
        entry == "*"
            || entry
                .parse::<ipnet::IpNet>()
                .map(|n| n.contains(&ip))
                .unwrap_or(false)
            || entry.parse::<IpAddr>().map(|a| a == ip).unwrap_or(false)
    })
}

/// Checks a token's realm restriction against the realm the request chose.
pub fn realm_allowed(token: &ApiToken, realm: Option<&str>) -> bool {
    match realm {
        None => token.allow_no_realm,
        Some(r) => token.realm_ids.is_empty() || token.realm_ids.iter().any(|id| id == r),
    }
}

/// Authenticates a presented `hdy_` token for a request from `ip`.
pub fn authenticate(
    state: &AppState,
    raw: &str,
    ip: IpAddr,
    realm: Option<&str>,
) -> Result<(User, Credential), ApiError> {
    let id = state
        .store
        .lookup(&API_TOKENS_BY_HASH, &secret::hash(raw))?
        .ok_or_else(invalid)?;
    let mut token = state.store.get(&API_TOKENS, &id)?.ok_or_else(invalid)?;
    if !token.is_enabled {
        return Err(ApiError::Unauthorized {
            code: "TOKEN_DISABLED",
            message: "this API token is disabled".into(),
        });
    }
    if let Some(exp) = token.expires_at.as_deref().and_then(parse_time) {
        if exp <= time::OffsetDateTime::now_utc() {
            return Err(ApiError::Unauthorized {
                code: "TOKEN_EXPIRED",
                message: "this API token has expired".into(),
            });
        }
    }
    if !ip_allowed(&token.ip_whitelist, ip) {
        return Err(ApiError::forbidden(
            "IP_NOT_ALLOWED",
            format!("this API token may not be used from {ip}"),
        ));
    }
    if !realm_allowed(&token, realm) {
        return Err(ApiError::forbidden(
            "REALM_NOT_ALLOWED",
            "this API token may not be used in this realm",
        ));
    }
    let user = state
        .store
        .get(&USERS, &token.user_id)?
        .ok_or_else(invalid)?;
    if user.is_banned {
        return Err(ApiError::forbidden("USER_BANNED", "this account is banned"));
    }
    touch(state, &mut token, ip);
    Ok((user, Credential::ApiToken(Box::new(token))))
}

/// Records last use at most once a minute per token, so a busy token does
/// not turn every read into a write.
fn touch(state: &AppState, token: &mut ApiToken, ip: IpAddr) {
    let ip = ip.to_string();
    let stale = token
        .last_used_at
        .as_deref()
        .and_then(parse_time)
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds() >= 60)
        .unwrap_or(true);
    if stale || token.last_used_ip.as_deref() != Some(ip.as_str()) {
        let used_at = now();
        token.last_used_at = Some(used_at.clone());
        token.last_used_ip = Some(ip.clone());
        // Read-modify-write in a transaction so a concurrent update of the
        // token (disable, delete) is never overwritten by this bookkeeping.
        let result = state.store.tx(|tx| {
            if let Some(mut current) = tx.get(&API_TOKENS, &token.id)? {
                current.last_used_at = Some(used_at.clone());
                current.last_used_ip = Some(ip.clone());
                tx.put(&API_TOKENS, &token.id, &current)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record token use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_matches_cidrs_addresses_and_star() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(ip_allowed(&["10.0.0.0/8".into()], ip));
        assert!(ip_allowed(&["10.1.2.3".into()], ip));
        assert!(ip_allowed(&["*".into()], ip));
        assert!(!ip_allowed(&["192.168.0.0/16".into()], ip));
        assert!(!ip_allowed(&[], ip));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(ip_allowed(&["10.0.0.0/8".into()], mapped));
    }
}
