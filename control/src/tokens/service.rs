//! API token rules: authentication of a presented token, and the
//! management operations (`authTokens.*`) with their delegation limits.
//!
//! Delegation: a session holds every non-admin permission of its account;
//! an API token can only create or manage tokens no more powerful than
//! itself (permission leaves, vault and event access, realms, lifetime), so
//! no chain of tokens can widen what the first one was given.

use std::net::IpAddr;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::auth::principal::{Credential, Principal};
use crate::error::ApiError;
use crate::events::model::{self as events, NewEvent};
use crate::state::AppState;
use crate::users::model::{User, USERS};
use crate::wire::{check_id, format_time, is_id, new_id, now, parse_time, Validator};

use super::input::{
    self, CopyTokenRequest, CreateTokenRequest, PublicProfileRequest, RealmRequest,
    UpdateTokenRequest,
};
use super::model::{
    ApiToken, API_TOKENS, API_TOKENS_BY_HASH, API_TOKENS_BY_PUBLIC_KEY, API_TOKENS_BY_USER,
};
use super::view::{CreatedToken, CurrentToken, PublicProfile, Restrictions, TokenView};
use super::{expiry, secret, templates};

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
    let stale = token
        .last_used_at
        .as_deref()
        .and_then(parse_time)
        .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds() >= 60)
        .unwrap_or(true);
    let moved = token.last_used_ip.as_deref().map(str::parse::<IpAddr>) != Some(Ok(ip));
    if stale || moved {
        let ip = ip.to_string();
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

/// Deepest chain of tokens creating tokens.
pub const MAX_DELEGATION_DEPTH: u32 = 8;
/// Most tokens one account may hold.
pub const MAX_TOKENS_PER_USER: usize = 1000;
/// Lifetime forced on `deny_reauthorization` tokens created without one.
const LOCKED_DEFAULT_LIFETIME_DAYS: i64 = 30;

fn not_found() -> ApiError {
    ApiError::NotFound("token")
}

fn insufficient(message: impl Into<String>) -> ApiError {
    ApiError::forbidden("INSUFFICIENT_PERMISSIONS", message)
}

/// Who grants: the caller's account, and the token it used, if any.
#[derive(Clone, Copy)]
pub struct Grantor<'a> {
    pub user: &'a User,
    pub token: Option<&'a ApiToken>,
}

impl<'a> Grantor<'a> {
    pub fn of(principal: &'a Principal) -> Self {
        Grantor {
            user: &principal.user,
            token: principal.token(),
        }
    }
}

/// What a token may do: the part of a token that delegation compares.
struct Reach<'a> {
    permissions: &'a Value,
    vault_access: bool,
    event_access: bool,
    expires_at: Option<OffsetDateTime>,
    realm_ids: &'a [String],
    allow_no_realm: bool,
}

impl<'a> Reach<'a> {
    fn of(t: &'a ApiToken) -> Self {
        Reach {
            permissions: &t.permissions,
            vault_access: t.vault_access,
            event_access: t.event_access,
            expires_at: t.expires_at.as_deref().and_then(parse_time),
            realm_ids: &t.realm_ids,
            allow_no_realm: t.allow_no_realm,
        }
    }
}

/// Refuses a token state the grantor could not hold itself.
fn check_reach(grantor: Grantor<'_>, reach: &Reach<'_>) -> Result<(), ApiError> {
    if templates::grants_admin(reach.permissions) && !grantor.user.is_admin {
        return Err(insufficient(
            "only administrators can grant admin permissions",
        ));
    }
    let Some(parent) = grantor.token else {
        return Ok(());
    };
    let over = templates::exceeding(reach.permissions, &parent.permissions);
    if !over.is_empty() {
        return Err(insufficient(format!(
            "this token cannot grant permissions it does not hold: {}",
            over.join(", ")
        )));
    }
    if reach.vault_access && !parent.vault_access {
        return Err(insufficient("this token cannot grant vault access"));
    }
    if reach.event_access && !parent.event_access {
        return Err(insufficient("this token cannot grant event access"));
    }
    if let Some(limit) = parent.expires_at.as_deref().and_then(parse_time) {
        if reach.expires_at.is_none_or(|t| t > limit) {
            return Err(insufficient(
                "a token cannot grant a lifetime beyond its own expiry",
            ));
        }
    }
    if !parent.realm_ids.is_empty()
        && (reach.realm_ids.is_empty()
            || reach
                .realm_ids
                .iter()
                .any(|r| !parent.realm_ids.contains(r)))
    {
        return Err(insufficient(
            "this token cannot grant realms outside its own",
        ));
    }
    if reach.allow_no_realm && !parent.allow_no_realm {
        return Err(insufficient("this token cannot grant use outside a realm"));
    }
    Ok(())
}

/// A token caller may manage only tokens no more powerful than itself.
fn check_manage(grantor: Grantor<'_>, target: &ApiToken) -> Result<(), ApiError> {
    match grantor.token {
        Some(t) if t.id == target.id => Ok(()),
        Some(_) => check_reach(grantor, &Reach::of(target)).map_err(|_| {
            insufficient("this token cannot manage a token more powerful than itself")
        }),
        None => Ok(()),
    }
}

fn future_expiry(
    v: &mut Validator,
    field: &str,
    value: &Value,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    match expiry::parse(value, now) {
        Ok(Some(t)) if t <= now => {
            v.fail(field, "must be in the future");
            None
        }
        Ok(t) => t,
        Err(message) => {
            v.fail(field, message);
            None
        }
    }
}

/// Applies `deny_reauthorization`: no re-delegation, no vault, bounded life.
fn lock_down(token: &mut ApiToken, now: OffsetDateTime) {
    templates::revoke(&mut token.permissions, &["resources", "create_tokens"]);
    templates::revoke(&mut token.permissions, &["resources", "vault"]);
    token.vault_access = false;
    if token.expires_at.is_none() {
        token.expires_at = Some(expiry::to_wire(
            now + time::Duration::days(LOCKED_DEFAULT_LIFETIME_DAYS),
        ));
    }
    token.deny_reauthorization = true;
}

fn explicitly_grants_reauthorization(
    permissions: Option<&Value>,
    vault_access: Option<bool>,
) -> bool {
    let tree = permissions.cloned().unwrap_or(Value::Null);
    vault_access == Some(true)
        || templates::grants(&tree, &["resources", "create_tokens"])
        || templates::grants(&tree, &["resources", "vault"])
}

/// Writes a new token with its indexes and `auth.token.created` event.
fn insert(state: &AppState, token: &ApiToken, payload: Value) -> Result<(), ApiError> {
    if state.store.ids(&API_TOKENS_BY_USER, &token.user_id)?.len() >= MAX_TOKENS_PER_USER {
        return Err(ApiError::conflict(
            "TOKEN_LIMIT_REACHED",
            format!("an account may hold at most {MAX_TOKENS_PER_USER} API tokens"),
        ));
    }
    state.store.tx(|tx| {
        if let Some(key) = &token.public_key {
            if tx.lookup(&API_TOKENS_BY_PUBLIC_KEY, key)?.is_some() {
                return Err(public_key_taken().into());
            }
            tx.set_unique(&API_TOKENS_BY_PUBLIC_KEY, key, &token.id)?;
        }
        tx.put(&API_TOKENS, &token.id, token)?;
        tx.set_unique(&API_TOKENS_BY_HASH, &token.token_hash, &token.id)?;
        tx.add_multi(&API_TOKENS_BY_USER, &token.user_id, &token.id)?;
        events::record(
            tx,
            NewEvent::new(
                "auth.token.created",
                "auth_token",
                &token.id,
                &token.user_id,
            )
            .payload(payload.clone()),
        )
    })?;
    Ok(())
}

fn public_key_taken() -> ApiError {
    ApiError::conflict(
        "PUBLIC_KEY_IN_USE",
        "this public key is already attached to another token",
    )
}

fn new_record(
    grantor: Grantor<'_>,
    alias: String,
    now: OffsetDateTime,
) -> Result<(ApiToken, String), ApiError> {
    let (created_by_token_id, delegation_depth) = match grantor.token {
        Some(t) if t.delegation_depth >= MAX_DELEGATION_DEPTH => {
            return Err(ApiError::forbidden(
                "DELEGATION_DEPTH_EXCEEDED",
                format!("tokens may be delegated at most {MAX_DELEGATION_DEPTH} levels deep"),
            ))
        }
        Some(t) => (Some(t.id.clone()), t.delegation_depth + 1),
        None => (None, 0),
    };
    let (secret, token_hash, prefix) = secret::generate();
    let stamp = format_time(now);
    let token = ApiToken {
        id: new_id(),
        user_id: grantor.user.id.clone(),
        alias,
        prefix,
        token_hash,
        public_key: None,
        public_storage: None,
        ip_whitelist: vec!["*".into()],
        realm_ids: Vec::new(),
        allow_no_realm: true,
        permissions: Value::Object(Default::default()),
        expires_at: None,
        is_enabled: true,
        vault_access: false,
        event_access: true,
        created_by_token_id,
        delegation_depth,
        deny_reauthorization: false,
        last_used_at: None,
        last_used_ip: None,
        created_at: stamp.clone(),
        updated_at: stamp,
    };
    Ok((token, secret))
}

/// `authTokens.create`.
pub fn create(
    state: &AppState,
    grantor: Grantor<'_>,
    req: CreateTokenRequest,
) -> Result<CreatedToken, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut v = Validator::new();
    if let Some(alias) = &req.alias {
        input::check_alias(&mut v, "alias", alias);
    }
    input::check_otp(&mut v, req.otp_code.as_deref());
    let public_key = req
        .public_key
        .as_deref()
        .and_then(|k| input::public_key(&mut v, k));
    let public_storage = req
        .public_storage
        .as_ref()
        .and_then(|s| input::public_storage(&mut v, s));
    let ip_whitelist = match &req.ip_whitelist {
        Some(value) => input::ip_whitelist(&mut v, value),
        None => vec!["*".to_string()],
    };
    let permissions = match (&req.permission_template, &req.permissions) {
        (Some(name), _) => match templates::template(name) {
            Some(tree) => tree,
            None => {
                v.fail(
                    "permission_template",
                    format!("must be one of {}", templates::NAMES.join(", ")),
                );
                Value::Null
            }
        },
        (None, Some(tree)) => {
            templates::validate(tree, "permissions", &mut v);
            templates::normalize(tree)
        }
        // Without a choice, the token gets everything its creator may hand on.
        (None, None) => match grantor.token {
            Some(parent) => templates::normalize(&parent.permissions),
            None => templates::template("full_access").unwrap_or_default(),
        },
    };
    let realm_ids = match &req.realm_ids {
        Some(ids) => input::realm_ids(&mut v, ids),
        None => grantor
            .token
            .map(|t| t.realm_ids.clone())
            .unwrap_or_default(),
    };
    let expires_at = match &req.expires_at {
        Some(value) => future_expiry(&mut v, "expires_at", value, now),
        None => grantor
            .token
            .and_then(|t| t.expires_at.as_deref())
            .and_then(parse_time),
    };
    let deny_reauthorization = req.deny_reauthorization.unwrap_or(false);
    if deny_reauthorization
        && explicitly_grants_reauthorization(
            if req.permission_template.is_some() {
                None
            } else {
                req.permissions.as_ref()
            },
            req.vault_access,
        )
    {
        v.fail(
            "deny_reauthorization",
            "cannot be combined with a grant of create_tokens, vault or vault_access",
        );
    }
    v.finish()?;

    let alias = req.alias.clone().unwrap_or_else(input::random_alias);
    let (mut token, secret) = new_record(grantor, alias, now)?;
    token.public_key = public_key;
    token.public_storage = public_storage;
    token.ip_whitelist = ip_whitelist;
    token.permissions = permissions;
    token.realm_ids = realm_ids;
    token.allow_no_realm = req
        .allow_no_realm
        .unwrap_or_else(|| grantor.token.is_none_or(|t| t.allow_no_realm));
    token.vault_access = req.vault_access.unwrap_or(false);
    token.event_access = req
        .event_access
        .unwrap_or_else(|| grantor.token.is_none_or(|t| t.event_access));
    token.expires_at = expires_at.map(expiry::to_wire);
    if deny_reauthorization {
        lock_down(&mut token, now);
    }
    check_reach(grantor, &Reach::of(&token))?;
    let payload = json!({
        "alias": token.alias,
        "prefix": token.prefix,
        "permission_template": req.permission_template,
        "created_by_token_id": token.created_by_token_id,
        "delegation_depth": token.delegation_depth,
    });
    insert(state, &token, payload)?;
    Ok(CreatedToken {
        token: secret,
        view: TokenView::from(&token),
    })
}

/// The caller's token `id`; another account's token is "not found".
pub fn owned(state: &AppState, user_id: &str, id: &str) -> Result<ApiToken, ApiError> {
    check_id("id", id)?;
    match state.store.get(&API_TOKENS, id)? {
        Some(t) if t.user_id == user_id => Ok(t),
        _ => Err(not_found()),
    }
}

/// `authTokens.list`: newest first, at most [`MAX_TOKENS_PER_USER`].
pub fn list(state: &AppState, user_id: &str) -> Result<Vec<TokenView>, ApiError> {
    let mut tokens = state
        .store
        .owned(&API_TOKENS_BY_USER, user_id, &API_TOKENS)?;
    tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(tokens
        .iter()
        .take(MAX_TOKENS_PER_USER)
        .map(TokenView::from)
        .collect())
}

/// Validated changes of an update, ready to apply inside the transaction.
#[derive(Default, Clone)]
struct Patch {
    alias: Option<String>,
    public_key: Option<Option<String>>,
    public_storage: Option<Option<Value>>,
    ip_whitelist: Option<Vec<String>>,
    permissions: Option<Value>,
    realm_ids: Option<Vec<String>>,
    allow_no_realm: Option<bool>,
    vault_access: Option<bool>,
    event_access: Option<bool>,
    expires_at: Option<Option<OffsetDateTime>>,
    is_enabled: Option<bool>,
    add_realm: Option<String>,
    remove_realm: Option<String>,
}

fn public_key_patch(v: &mut Validator, value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => input::public_key(v, s),
        _ => {
            v.fail("public_key", "must be a string or null");
            None
        }
    }
}

impl Patch {
    /// Applies the patch; returns the names of the fields that changed.
    fn apply(&self, t: &mut ApiToken) -> Vec<&'static str> {
        let mut changed = Vec::new();
        macro_rules! set {
            ($field:ident, $value:expr) => {
                let value = $value;
                if t.$field != value {
                    t.$field = value;
                    changed.push(stringify!($field));
                }
            };
        }
        if let Some(alias) = &self.alias {
            set!(alias, alias.clone());
        }
        if let Some(key) = &self.public_key {
            set!(public_key, key.clone());
        }
        if let Some(storage) = &self.public_storage {
            set!(public_storage, storage.clone());
        }
        if let Some(list) = &self.ip_whitelist {
            set!(ip_whitelist, list.clone());
        }
        if let Some(tree) = &self.permissions {
            set!(permissions, tree.clone());
        }
        if let Some(ids) = &self.realm_ids {
            set!(realm_ids, ids.clone());
        }
        if let Some(realm) = &self.add_realm {
            if !t.realm_ids.contains(realm) {
                t.realm_ids.push(realm.clone());
                changed.push("realm_ids");
            }
        }
        if let Some(realm) = &self.remove_realm {
            if t.realm_ids.contains(realm) {
                t.realm_ids.retain(|r| r != realm);
                changed.push("realm_ids");
            }
        }
        if let Some(b) = self.allow_no_realm {
            set!(allow_no_realm, b);
        }
        if let Some(b) = self.vault_access {
            set!(vault_access, b);
        }
        if let Some(b) = self.event_access {
            set!(event_access, b);
        }
        if let Some(exp) = self.expires_at {
            set!(expires_at, exp.map(expiry::to_wire));
        }
        if let Some(b) = self.is_enabled {
            set!(is_enabled, b);
        }
        changed
    }
}

/// Applies `patch` to the caller's token `id` in one transaction, with the
/// delegation checks and the events it implies.
fn modify(
    state: &AppState,
    grantor: Grantor<'_>,
    id: &str,
    patch: &Patch,
) -> Result<TokenView, ApiError> {
    check_id("id", id)?;
    let token = state.store.tx(|tx| {
        let mut token = match tx.get(&API_TOKENS, id)? {
            Some(t) if t.user_id == grantor.user.id => t,
            _ => return Err(not_found().into()),
        };
        check_manage(grantor, &token)?;
        let old_key = token.public_key.clone();
        let was_enabled = token.is_enabled;
        let changed = patch.apply(&mut token);
        if changed.is_empty() {
            return Ok(token);
        }
        if token.deny_reauthorization
            && (token.vault_access
                || token.expires_at.is_none()
                || templates::grants(&token.permissions, &["resources", "create_tokens"])
                || templates::grants(&token.permissions, &["resources", "vault"]))
        {
            return Err(ApiError::forbidden(
                "REAUTHORIZATION_DENIED",
                "this token was created without re-delegation, vault access or a permanent lifetime",
            )
            .into());
        }
        check_reach(grantor, &Reach::of(&token))?;
        if old_key != token.public_key {
            if let Some(old) = &old_key {
                tx.remove_unique(&API_TOKENS_BY_PUBLIC_KEY, old)?;
            }
            if let Some(new) = &token.public_key {
                if tx.lookup(&API_TOKENS_BY_PUBLIC_KEY, new)?.is_some() {
                    return Err(public_key_taken().into());
                }
                tx.set_unique(&API_TOKENS_BY_PUBLIC_KEY, new, &token.id)?;
            }
        }
        token.updated_at = now();
        tx.put(&API_TOKENS, &token.id, &token)?;
        if was_enabled != token.is_enabled {
            let kind = if token.is_enabled {
                "auth.token.enabled"
            } else {
                "auth.token.disabled"
            };
            events::record(
                tx,
                NewEvent::new(kind, "auth_token", &token.id, &token.user_id)
                    .payload(json!({"alias": token.alias})),
            )?;
        }
        let others: Vec<&str> = changed
            .iter()
            .copied()
            .filter(|f| *f != "is_enabled")
            .collect();
        if !others.is_empty() {
            events::record(
                tx,
                NewEvent::new("auth.token.updated", "auth_token", &token.id, &token.user_id)
                    .payload(json!({"alias": token.alias, "changed": others})),
            )?;
        }
        Ok(token)
    })?;
    Ok(TokenView::from(&token))
}

/// `authTokens.update`.
pub fn update(
    state: &AppState,
    grantor: Grantor<'_>,
    id: &str,
    req: UpdateTokenRequest,
) -> Result<TokenView, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut v = Validator::new();
    if let Some(alias) = &req.alias {
        input::check_alias(&mut v, "alias", alias);
    }
    input::check_otp(&mut v, req.otp_code.as_deref());
    let mut patch = Patch {
        alias: req.alias.clone(),
        public_key: req.public_key.as_ref().map(|k| public_key_patch(&mut v, k)),
        public_storage: req
            .public_storage
            .as_ref()
            .map(|s| input::public_storage(&mut v, s)),
        ip_whitelist: req
            .ip_whitelist
            .as_ref()
            .map(|w| input::ip_whitelist(&mut v, w)),
        realm_ids: req
            .realm_ids
            .as_ref()
            .map(|ids| input::realm_ids(&mut v, ids)),
        allow_no_realm: req.allow_no_realm,
        vault_access: req.vault_access,
        event_access: req.event_access,
        expires_at: req
            .expires_at
            .as_ref()
            .map(|e| future_expiry(&mut v, "expires_at", e, now)),
        is_enabled: req.is_enabled,
        ..Patch::default()
    };
    if let Some(tree) = &req.permissions {
        templates::validate(tree, "permissions", &mut v);
        patch.permissions = Some(templates::normalize(tree));
    }
    v.finish()?;
    modify(state, grantor, id, &patch)
}

/// `authTokens.addRealm` / `authTokens.removeRealm`.
pub fn change_realm(
    state: &AppState,
    grantor: Grantor<'_>,
    id: &str,
    req: RealmRequest,
    add: bool,
) -> Result<TokenView, ApiError> {
    let mut v = Validator::new();
    v.check(
        "realm_id",
        is_id(&req.realm_id),
        "must be a 24-character lowercase hex id",
    );
    input::check_otp(&mut v, req.otp_code.as_deref());
    v.finish()?;
    if add {
        let current = owned(state, &grantor.user.id, id)?;
        if !current.realm_ids.contains(&req.realm_id) && current.realm_ids.len() >= input::MAX_LIST
        {
            return Err(ApiError::field(
                "realm_id",
                format!("a token may hold at most {} realms", input::MAX_LIST),
            ));
        }
    }
    let patch = if add {
        Patch {
            add_realm: Some(req.realm_id),
            ..Patch::default()
        }
    } else {
        Patch {
            remove_realm: Some(req.realm_id),
            ..Patch::default()
        }
    };
    modify(state, grantor, id, &patch)
}

/// `authTokens.delete`.
pub fn delete(state: &AppState, grantor: Grantor<'_>, id: &str) -> Result<(), ApiError> {
    check_id("id", id)?;
    state.store.tx(|tx| {
        let token = match tx.get(&API_TOKENS, id)? {
            Some(t) if t.user_id == grantor.user.id => t,
            _ => return Err(not_found().into()),
        };
        check_manage(grantor, &token)?;
        tx.remove(&API_TOKENS, id)?;
        tx.remove_unique(&API_TOKENS_BY_HASH, &token.token_hash)?;
        tx.remove_multi(&API_TOKENS_BY_USER, &token.user_id, id)?;
        if let Some(key) = &token.public_key {
            tx.remove_unique(&API_TOKENS_BY_PUBLIC_KEY, key)?;
        }
        events::record(
            tx,
            NewEvent::new("auth.token.deleted", "auth_token", id, &token.user_id)
                .payload(json!({"alias": token.alias, "prefix": token.prefix})),
        )
    })?;
    Ok(())
}

/// `authTokens.copy`: a new secret with the source's settings. The public
/// key and its profile stay with the source: a key names one token.
pub fn copy(
    state: &AppState,
    grantor: Grantor<'_>,
    id: &str,
    req: CopyTokenRequest,
) -> Result<CreatedToken, ApiError> {
    let now = OffsetDateTime::now_utc();
    let source = owned(state, &grantor.user.id, id)?;
    let mut v = Validator::new();
    if let Some(alias) = &req.alias {
        input::check_alias(&mut v, "alias", alias);
    }
    input::check_otp(&mut v, req.otp_code.as_deref());
    let expires_at = match &req.expires_at {
        Some(value) => future_expiry(&mut v, "expires_at", value, now),
        None => source
            .expires_at
            .as_deref()
            .and_then(parse_time)
            .filter(|t| *t > now),
    };
    v.finish()?;
    let alias = req.alias.clone().unwrap_or_else(|| {
        let mut alias: String = source.alias.chars().take(254 - 5).collect();
        alias.push_str(" copy");
        alias
    });
    let (mut token, secret) = new_record(grantor, alias, now)?;
    token.ip_whitelist = source.ip_whitelist.clone();
    token.realm_ids = source.realm_ids.clone();
    token.allow_no_realm = source.allow_no_realm;
    token.permissions = source.permissions.clone();
    token.vault_access = source.vault_access;
    token.event_access = source.event_access;
    token.is_enabled = source.is_enabled;
    token.expires_at = expires_at.map(expiry::to_wire);
    if source.deny_reauthorization {
        lock_down(&mut token, now);
    }
    check_reach(grantor, &Reach::of(&token))?;
    let payload = json!({
        "alias": token.alias,
        "prefix": token.prefix,
        "copied_from": source.id,
        "created_by_token_id": token.created_by_token_id,
        "delegation_depth": token.delegation_depth,
    });
    insert(state, &token, payload)?;
    Ok(CreatedToken {
        token: secret,
        view: TokenView::from(&token),
    })
}

fn calling_token(principal: &Principal) -> Result<&ApiToken, ApiError> {
    principal.token().ok_or_else(|| {
        ApiError::forbidden(
            "API_TOKEN_REQUIRED",
            "this call describes the API token used to make it; call it with an API token",
        )
    })
}

/// `authTokens.getCurrent`.
pub fn current(state: &AppState, principal: &Principal) -> Result<CurrentToken, ApiError> {
    let token = calling_token(principal)?;
    let token = state
        .store
        .get(&API_TOKENS, &token.id)?
        .ok_or_else(invalid)?;
    Ok(CurrentToken {
        restrictions: Restrictions {
            has_realm_restrictions: !token.realm_ids.is_empty(),
            requires_realm_scope: !token.allow_no_realm,
            allowed_realm_ids: token.realm_ids.clone(),
            allow_no_realm: token.allow_no_realm,
            active_realm_id: principal.realm_id.clone(),
        },
        token: TokenView::from(&token),
    })
}

/// `authTokens.updatePublicProfile`: the calling token's key and profile.
pub fn update_public_profile(
    state: &AppState,
    principal: &Principal,
    req: PublicProfileRequest,
) -> Result<TokenView, ApiError> {
    let token = calling_token(principal)?;
    let mut v = Validator::new();
    let patch = Patch {
        public_key: req.public_key.as_ref().map(|k| public_key_patch(&mut v, k)),
        public_storage: req
            .public_storage
            .as_ref()
            .map(|s| input::public_storage(&mut v, s)),
        ..Patch::default()
    };
    v.finish()?;
    modify(state, Grantor::of(principal), &token.id, &patch)
}

/// `authTokens.getPublicProfile`: what a usable token publishes under its key.
pub fn public_profile(state: &AppState, public_key: &str) -> Result<PublicProfile, ApiError> {
    let missing = || ApiError::NotFound("public profile");
    if public_key.is_empty() || public_key.len() > 1024 {
        return Err(missing());
    }
    let id = state
        .store
        .lookup(&API_TOKENS_BY_PUBLIC_KEY, public_key)?
        .ok_or_else(missing)?;
    let token = state.store.get(&API_TOKENS, &id)?.ok_or_else(missing)?;
    let expired = token
        .expires_at
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|t| t <= OffsetDateTime::now_utc());
    if !token.is_enabled || expired {
        return Err(missing());
    }
    Ok(PublicProfile {
        public_key: public_key.to_string(),
        public_storage: token.public_storage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{EVENTS, EVENTS_BY_USER};

    fn state() -> crate::testing::TempState {
        crate::testing::TempState::new("tokens")
    }

    fn user(id: &str) -> User {
        serde_json::from_value(json!({
            "id": id, "email": format!("{id}@example.com"), "password_hash": "x",
            "email_verified": true, "is_admin": false, "is_banned": false,
            "session_generation": 0, "free_tier_unlocked": false,
            "created_at": now(), "updated_at": now(),
        }))
        .unwrap()
    }

    fn session(u: &User) -> Grantor<'_> {
        Grantor {
            user: u,
            token: None,
        }
    }

    fn body(v: Value) -> CreateTokenRequest {
        serde_json::from_value(v).unwrap()
    }

    const ALICE: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const BOB: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    #[tokio::test]
    async fn create_stores_only_the_hash_and_authenticates_the_secret() {
        let s = state();
        let alice = user(ALICE);
        s.store.put(&USERS, ALICE, &alice).unwrap();
        let created = create(&s, session(&alice), body(json!({"alias": "a"}))).unwrap();
        let stored = s.store.get(&API_TOKENS, &created.view.id).unwrap().unwrap();
        assert_eq!(stored.token_hash, secret::hash(&created.token));
        assert!(!serde_json::to_string(&stored)
            .unwrap()
            .contains(&created.token));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (who, _) = authenticate(&s, &created.token, ip, None).unwrap();
        assert_eq!(who.id, ALICE);
        let events = s.store.owned(&EVENTS_BY_USER, ALICE, &EVENTS).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "auth.token.created");
    }

    #[tokio::test]
    async fn a_token_cannot_delegate_beyond_itself() {
        let s = state();
        let alice = user(ALICE);
        let parent = create(
            &s,
            session(&alice),
            body(json!({"permissions": {"resources": {"create_tokens": true, "events": true}}})),
        )
        .unwrap();
        let parent = s.store.get(&API_TOKENS, &parent.view.id).unwrap().unwrap();
        let grantor = Grantor {
            user: &alice,
            token: Some(&parent),
        };
        let err = create(
            &s,
            grantor,
            body(json!({"permission_template": "full_access"})),
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), "INSUFFICIENT_PERMISSIONS");
        let err = create(&s, grantor, body(json!({"vault_access": true})))
            .err()
            .unwrap();
        assert_eq!(err.code(), "INSUFFICIENT_PERMISSIONS");
        let child = create(&s, grantor, body(json!({}))).unwrap();
        assert_eq!(child.view.delegation_depth, 1);
        assert_eq!(
            child.view.created_by_token_id.as_deref(),
            Some(parent.id.as_str())
        );
        assert_eq!(child.view.permissions, parent.permissions);
    }

    #[tokio::test]
    async fn another_users_token_is_not_found_and_delete_clears_indexes() {
        let s = state();
        let (alice, bob) = (user(ALICE), user(BOB));
        let created = create(&s, session(&alice), body(json!({}))).unwrap();
        let id = created.view.id.clone();
        assert!(matches!(owned(&s, BOB, &id), Err(ApiError::NotFound(_))));
        assert!(matches!(
            delete(&s, session(&bob), &id),
            Err(ApiError::NotFound(_))
        ));
        let patch = UpdateTokenRequest {
            alias: Some("x".into()),
            ..UpdateTokenRequest::default()
        };
        assert!(matches!(
            update(&s, session(&bob), &id, patch),
            Err(ApiError::NotFound(_))
        ));
        delete(&s, session(&alice), &id).unwrap();
        assert!(s
            .store
            .lookup(&API_TOKENS_BY_HASH, &secret::hash(&created.token))
            .unwrap()
            .is_none());
        assert!(s.store.ids(&API_TOKENS_BY_USER, ALICE).unwrap().is_empty());
    }

    #[tokio::test]
    async fn disabling_records_its_own_event_and_locked_tokens_stay_locked() {
        let s = state();
        let alice = user(ALICE);
        let created = create(
            &s,
            session(&alice),
            body(json!({"deny_reauthorization": true})),
        )
        .unwrap();
        assert!(created.view.expires_at.is_some());
        let id = created.view.id.clone();
        let off = UpdateTokenRequest {
            is_enabled: Some(false),
            ..UpdateTokenRequest::default()
        };
        assert!(!update(&s, session(&alice), &id, off).unwrap().is_enabled);
        let kinds: Vec<String> = s
            .store
            .owned(&EVENTS_BY_USER, ALICE, &EVENTS)
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(kinds, ["auth.token.created", "auth.token.disabled"]);
        let widen = UpdateTokenRequest {
            vault_access: Some(true),
            ..UpdateTokenRequest::default()
        };
        let err = update(&s, session(&alice), &id, widen).err().unwrap();
        assert_eq!(err.code(), "REAUTHORIZATION_DENIED");
    }

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
