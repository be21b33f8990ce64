//! User rules: the public view of a user, provisioning of the default
//! project and free-tier server, profile updates, onboarding milestones and
//! the security history.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::model::{
    record_security, SecurityEvent, User, SECURITY_EVENTS, SECURITY_EVENTS_BY_USER, USERS,
    USERS_BY_USERNAME,
};
use crate::auth::password;
use crate::auth::permission::{AdminUsers, Permission};
use crate::auth::principal::Principal;
use crate::error::ApiError;
use crate::events::model::{record, NewEvent};
use crate::projects::model::{Project, PROJECTS, PROJECTS_BY_OWNER};
use crate::servers::model::{node_server_id, Server, SERVERS};
use crate::state::AppState;
use crate::store::{StoreResult, Tx};
use crate::tokens::model::ApiToken;
use crate::wire::{is_slug, new_id, now, PageRequest, Validator};

/// A user as the API shows it: never the password hash or internal state.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub is_admin: bool,
    pub is_banned: bool,
    pub email_verified: bool,
    pub avatar_url: Option<String>,
    pub signup_method: Option<String>,
    pub free_tier_unlocked: bool,
    pub free_tier_unlocked_at: Option<String>,
    pub free_tier_unlock_source: Option<String>,
    #[schema(value_type = Object)]
    pub onboarding: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            alias: u.alias.clone(),
            public_key: u.public_key.clone(),
            metadata: u.metadata.clone(),
            is_admin: u.is_admin,
            is_banned: u.is_banned,
            email_verified: u.email_verified,
            avatar_url: u.avatar_url.clone(),
            signup_method: u.signup_method.clone(),
            free_tier_unlocked: u.free_tier_unlocked,
            free_tier_unlocked_at: u.free_tier_unlocked_at.clone(),
            free_tier_unlock_source: u.free_tier_unlock_source.clone(),
            onboarding: u.onboarding.clone(),
            created_at: u.created_at.clone(),
            updated_at: u.updated_at.clone(),
        }
    }
}

/// `{id, alias}` of a project, as login and verification return it.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct ProjectRef {
    pub id: String,
    pub alias: String,
}

impl From<&Project> for ProjectRef {
    fn from(p: &Project) -> Self {
        ProjectRef {
            id: p.id.clone(),
            alias: p.alias.clone(),
        }
    }
}

/// A server as login and verification return it.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct ServerRef {
    pub id: String,
    pub name: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub datacenter: Option<String>,
    pub is_ready: bool,
}

impl From<&Server> for ServerRef {
    fn from(s: &Server) -> Self {
        ServerRef {
            id: s.id.clone(),
            name: s.name.clone(),
            country: s.country.clone(),
            region: s.region.clone(),
            city: s.city.clone(),
            datacenter: s.datacenter.clone(),
            is_ready: s.is_ready,
        }
    }
}

/// Gives `user` a unique username derived from the email's local part,
/// unless it has one.
pub fn assign_username(tx: &Tx<'_>, user: &mut User) -> StoreResult<()> {
    if user.username.is_some() {
        return Ok(());
    }
    let local = user.email.split('@').next().unwrap_or("");
    let mut base: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(40)
        .collect::<String>()
        .to_lowercase();
    if base.len() < 3 {
        base = format!("user{base}");
    }
    let mut candidate = base.clone();
    for attempt in 0..32u32 {
        if attempt > 0 {
            let mut suffix = [0u8; 3];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut suffix);
            candidate = format!("{base}-{}", hex::encode(suffix));
        }
        if tx.lookup(&USERS_BY_USERNAME, &candidate)?.is_none() {
            tx.set_unique(&USERS_BY_USERNAME, &candidate, &user.id)?;
            user.username = Some(candidate);
            return Ok(());
        }
    }
    // Leaving the username unset is harmless: login by email still works.
    Ok(())
}

/// Gives a verified user everything an account starts with, inside the
/// verification's transaction: a username, the default project (with its
/// `project.created` event) and the local node as free-tier server. Safe
/// to run again: what exists is kept.
pub fn provision(
    tx: &Tx<'_>,
    node_name: &str,
    user: &mut User,
    source: &str,
) -> StoreResult<(Project, Server)> {
    let at = now();
    assign_username(tx, user)?;
    let server_id = node_server_id(node_name);
    let server = match tx.get(&SERVERS, &server_id)? {
        Some(s) => s,
        None => {
            let s = Server::local(node_name, &at);
            tx.put(&SERVERS, &s.id, &s)?;
            s
        }
    };
    let existing = match user.default_project_id.as_deref() {
        Some(id) => tx.get(&PROJECTS, id)?,
        None => None,
    };
    let project = match existing {
        Some(p) => p,
        None => {
            let p = Project::default_for(new_id(), &user.id, &at);
            tx.put(&PROJECTS, &p.id, &p)?;
            tx.add_multi(&PROJECTS_BY_OWNER, &user.id, &p.id)?;
            record(
                tx,
                NewEvent::new("project.created", "project", &p.id, &user.id)
                    .payload(json!({"project_id": p.id, "alias": p.alias, "is_default": true})),
            )?;
            user.default_project_id = Some(p.id.clone());
            p
        }
    };
    if !user.free_tier_unlocked {
        user.free_tier_unlocked = true;
        user.free_tier_unlocked_at = Some(at.clone());
        user.free_tier_unlock_source = Some(source.to_string());
    }
    user.free_tier_server_id = Some(server.id.clone());
    user.updated_at = at;
    Ok((project, server))
}

/// The user's default project and free-tier server, if provisioned.
pub fn setup_of(
    state: &AppState,
    user: &User,
) -> Result<(Option<Project>, Option<Server>), ApiError> {
    let project = match user.default_project_id.as_deref() {
        Some(id) => state.store.get(&PROJECTS, id)?,
        None => None,
    };
    let server = match user.free_tier_server_id.as_deref() {
        Some(id) => state.store.get(&SERVERS, id)?,
        None => None,
    };
    Ok((project, server))
}

/// Finds the user `id` as `caller` may see it: themselves, or anyone for
/// an admin. Everyone else's account does not exist for them.
pub fn visible_user(state: &AppState, caller: &Principal, id: &str) -> Result<User, ApiError> {
    if id == caller.user.id || id == "me" {
        return Ok(caller.user.clone());
    }
    crate::wire::check_id("id", id)?;
    if !caller.may(AdminUsers::PATH) {
        return Err(ApiError::NotFound("user"));
    }
    state
        .store
        .get(&USERS, id)?
        .ok_or(ApiError::NotFound("user"))
}

/// The body of `users.update`.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub alias: Option<String>,
    pub public_key: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub password: Option<String>,
    pub current_password: Option<String>,
    pub is_admin: Option<bool>,
    pub is_banned: Option<bool>,
}

/// Largest `metadata` object a user may store, serialised.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// A changed password: 12–128 characters using at least three of
/// upper case, lower case, digits and other characters.
pub fn check_changed_password(v: &mut Validator, field: &str, pw: &str) {
    let n = pw.chars().count();
    if !(12..=128).contains(&n) {
        v.fail(field, "must be 12 to 128 characters");
        return;
    }
    let classes = [
        pw.chars().any(|c| c.is_uppercase()),
        pw.chars().any(|c| c.is_lowercase()),
        pw.chars().any(|c| c.is_ascii_digit()),
        pw.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|x| **x).count() < 3 {
        v.fail(
            field,
            "must use at least three of: uppercase, lowercase, digits, other characters",
        );
    }
}

impl UpdateUserRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Validator::new();
        if let Some(a) = &self.alias {
            v.length("alias", a, 1, 100);
            v.check(
                "alias",
                !a.chars().any(char::is_control),
                "must not contain control characters",
            );
        }
        if let Some(k) = &self.public_key {
            v.check(
                "public_key",
                k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()),
                "must be 64 hexadecimal characters",
            );
        }
        if let Some(m) = &self.metadata {
            let size = serde_json::to_vec(m).map(|b| b.len()).unwrap_or(usize::MAX);
            v.check(
                "metadata",
                size <= MAX_METADATA_BYTES,
                "must be at most 16 KiB as JSON",
            );
        }
        if let Some(p) = &self.password {
            check_changed_password(&mut v, "password", p);
            match &self.current_password {
                None => v.fail("current_password", "is required to change the password"),
                Some(c) => {
                    v.length("current_password", c, 8, 128);
                }
            }
        } else if let Some(c) = &self.current_password {
            v.length("current_password", c, 8, 128);
        }
        v.finish()
    }
}

/// `users.update`: the caller changes their own profile; an admin may also
/// ban or unban another user. `is_admin` is read-only here.
pub fn update(
    state: &AppState,
    caller: &Principal,
    id: &str,
    req: UpdateUserRequest,
) -> Result<User, ApiError> {
    req.validate()?;
    let target = visible_user(state, caller, id)?;
    let is_self = target.id == caller.user.id;
    let caller_is_admin = caller.may(AdminUsers::PATH);
    if let Some(flag) = req.is_admin {
        if flag != target.is_admin {
            return Err(ApiError::forbidden(
                "FORBIDDEN",
                "is_admin cannot be changed through the API",
            ));
        }
    }
    let ban_change = req.is_banned.filter(|b| *b != target.is_banned);
    if ban_change.is_some() && (!caller_is_admin || is_self) {
        return Err(ApiError::forbidden(
            "FORBIDDEN",
            "only an administrator can ban or unban another user",
        ));
    }
    let profile_change = req.alias.is_some()
        || req.public_key.is_some()
        || req.metadata.is_some()
        || req.password.is_some();
    if profile_change && !is_self {
        return Err(ApiError::forbidden(
            "FORBIDDEN",
            "only the user can change their own profile",
        ));
    }
    let new_hash = match (&req.password, &req.current_password) {
        (Some(new), Some(current)) => {
            if !password::verify(current, &target.password_hash) {
                return Err(ApiError::Unauthorized {
                    code: "INVALID_CREDENTIALS",
                    message: "current password is incorrect".into(),
                });
            }
            Some(password::hash(new)?)
        }
        _ => None,
    };
    let ip = caller.ip.to_string();
    let caller_id = caller.user.id.clone();
    let user = state.store.tx(|tx| {
        let Some(mut user) = tx.get(&USERS, &target.id)? else {
            return Err(ApiError::NotFound("user").into());
        };
        if let Some(a) = &req.alias {
            user.alias = Some(a.clone());
        }
        if let Some(k) = &req.public_key {
            user.public_key = Some(k.to_lowercase());
        }
        if let Some(m) = &req.metadata {
            user.metadata = m.clone();
        }
        if let Some(h) = &new_hash {
            user.password_hash = h.clone();
            record_security(tx, &user.id, "password_changed", true, &ip, None)?;
        }
        if let Some(banned) = ban_change {
            user.is_banned = banned;
            let kind = if banned {
                "user.banned"
            } else {
                "user.unbanned"
            };
            record(
                tx,
                NewEvent::new(kind, "user", &user.id, &user.id).payload(json!({"by": caller_id})),
            )?;
        }
        user.updated_at = now();
        tx.put(&USERS, &user.id, &user)?;
        Ok(user)
    })?;
    Ok(user)
}

/// Whether `m` is a milestone key the service accepts.
pub fn is_milestone(m: &str) -> bool {
    fn tail_ok(rest: &str) -> bool {
        (1..=30).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }
    if let Some(rest) = m.strip_prefix("hub_tour_v") {
        return (1..=3).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_digit());
    }
    if let Some(rest) = m.strip_prefix("dashboard_") {
        return tail_ok(rest);
    }
    if let Some(rest) = m.strip_prefix("onboarding_") {
        return tail_ok(rest);
    }
    false
}

/// `users.markOnboardingMilestone`: records when a milestone was reached
/// (the first time only) and returns every milestone.
pub fn mark_milestone(
    state: &AppState,
    user_id: &str,
    milestone: &str,
) -> Result<Map<String, Value>, ApiError> {
    if !is_milestone(milestone) {
        return Err(ApiError::field(
            "milestone",
            "must look like hub_tour_v1, dashboard_<name> or onboarding_<name>",
        ));
    }
    Ok(state.store.tx(|tx| {
        let Some(mut user) = tx.get(&USERS, user_id)? else {
            return Err(ApiError::NotFound("user").into());
        };
        if !user.onboarding.contains_key(milestone) {
            user.onboarding
                .insert(milestone.to_string(), Value::String(now()));
            user.updated_at = now();
            tx.put(&USERS, user_id, &user)?;
        }
        Ok(user.onboarding)
    })?)
}

/// `users.retrySetup` and `users.redeemInviteCode`: provisions whatever
/// the account is missing and returns it.
pub fn ensure_setup(
    state: &AppState,
    user_id: &str,
    source: &str,
) -> Result<(Project, Server), ApiError> {
    let node = state.settings.node_name.clone();
    Ok(state.store.tx(|tx| {
        let Some(mut user) = tx.get(&USERS, user_id)? else {
            return Err(ApiError::NotFound("user").into());
        };
        let out = provision(tx, &node, &mut user, source)?;
        tx.put(&USERS, user_id, &user)?;
        Ok(out)
    })?)
}

/// `users.getFreeTierStatus`. The free tier is not gated on this service:
/// every verified account gets the local node.
pub fn free_tier_status(user: &User) -> Value {
    let has_server = user.free_tier_server_id.is_some();
    json!({
        "gate_enabled": false,
        "unlocked": user.free_tier_unlocked,
        "has_free_server": has_server,
        "can_claim": !has_server,
        "claim_blocked_reason": if has_server { "already_claimed" } else { "none" },
        "signup_code_failed": false,
    })
}

/// `users.getSecurityHistory`: newest first, filtered and paginated.
pub fn security_history(
    state: &AppState,
    user_id: &str,
    page: PageRequest,
    include_failed: bool,
    include_security: bool,
) -> Result<(Vec<SecurityEvent>, u64), ApiError> {
    let mut entries = state
        .store
        .owned(&SECURITY_EVENTS_BY_USER, user_id, &SECURITY_EVENTS)?;
    entries.reverse();
    entries.retain(|e| {
        (include_failed || e.outcome == "success") && (include_security || e.is_login())
    });
    let total = entries.len() as u64;
    Ok((page.slice(entries), total))
}

/// The API token a request came with, as `getCurrentUser` shows it.
/// Borrowed, so answering `/me` copies no record field.
#[derive(Serialize)]
pub struct TokenView<'a> {
    token: TokenFields<'a>,
    restrictions: TokenRestrictions<'a>,
}

#[derive(Serialize)]
struct TokenFields<'a> {
    id: &'a str,
    alias: &'a str,
    prefix: &'a str,
    public_key: &'a Option<String>,
    public_storage: &'a Option<Value>,
    ip_whitelist: &'a [String],
    realm_ids: &'a [String],
    allow_no_realm: bool,
    permissions: &'a Value,
    expires_at: &'a Option<String>,
    is_enabled: bool,
    vault_access: bool,
    event_access: bool,
    created_by_token_id: &'a Option<String>,
    delegation_depth: u32,
    last_used_at: &'a Option<String>,
    last_used_ip: &'a Option<String>,
    created_at: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize)]
struct TokenRestrictions<'a> {
    has_realm_restrictions: bool,
    requires_realm_scope: bool,
    allowed_realm_ids: &'a [String],
    allow_no_realm: bool,
    active_realm_id: Option<&'a str>,
}

pub fn token_view<'a>(token: &'a ApiToken, active_realm: Option<&'a str>) -> TokenView<'a> {
    TokenView {
        token: TokenFields {
            id: &token.id,
            alias: &token.alias,
            prefix: &token.prefix,
            public_key: &token.public_key,
            public_storage: &token.public_storage,
            ip_whitelist: &token.ip_whitelist,
            realm_ids: &token.realm_ids,
            allow_no_realm: token.allow_no_realm,
            permissions: &token.permissions,
            expires_at: &token.expires_at,
            is_enabled: token.is_enabled,
            vault_access: token.vault_access,
            event_access: token.event_access,
            created_by_token_id: &token.created_by_token_id,
            delegation_depth: token.delegation_depth,
            last_used_at: &token.last_used_at,
            last_used_ip: &token.last_used_ip,
            created_at: &token.created_at,
            updated_at: &token.updated_at,
        },
        restrictions: TokenRestrictions {
            has_realm_restrictions: !token.realm_ids.is_empty(),
            requires_realm_scope: !token.allow_no_realm,
            allowed_realm_ids: &token.realm_ids,
            allow_no_realm: token.allow_no_realm,
            active_realm_id: active_realm,
        },
    }
}

/// `authentication.getCurrentUser`: the user, plus the API token when the
/// caller used one.
#[derive(Serialize)]
pub struct MeView<'a> {
    #[serde(flatten)]
    user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_token: Option<TokenView<'a>>,
    pending_pool_invitations: u32,
}

pub fn me(caller: &Principal) -> MeView<'_> {
    MeView {
        user: UserView::from(&caller.user),
        auth_token: caller
            .token()
            .map(|t| token_view(t, caller.realm_id.as_deref())),
        pending_pool_invitations: 0,
    }
}

/// A username as login accepts it.
pub fn is_username(s: &str) -> bool {
    (3..=50).contains(&s.len()) && is_slug(s, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_follow_the_three_families() {
        assert!(is_milestone("hub_tour_v1"));
        assert!(is_milestone("hub_tour_v123"));
        assert!(!is_milestone("hub_tour_v1234"));
        assert!(is_milestone("dashboard_first_container"));
        assert!(is_milestone("onboarding_done"));
        assert!(!is_milestone("onboarding_"));
        assert!(!is_milestone("onboarding_Done"));
        assert!(!is_milestone("anything_else"));
    }

    #[test]
    fn changed_passwords_need_three_classes() {
        let mut v = Validator::new();
        check_changed_password(&mut v, "password", "lowercase-and-1");
        assert!(v.finish().is_ok());
        check_changed_password(&mut v, "password", "onlylowercaseletters");
        assert!(v.finish().is_err());
        check_changed_password(&mut v, "password", "Short-1");
        assert!(v.finish().is_err());
    }

    #[test]
    fn update_requires_current_password_and_checks_fields() {
        let req = UpdateUserRequest {
            password: Some("Another-Passw0rd".into()),
            ..Default::default()
        };
        match req.validate() {
            Err(ApiError::Validation { details, .. }) => {
                assert!(details.contains_key("current_password"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let req = UpdateUserRequest {
            public_key: Some("xyz".into()),
            alias: Some(String::new()),
            ..Default::default()
        };
        match req.validate() {
            Err(ApiError::Validation { details, .. }) => {
                assert!(details.contains_key("public_key") && details.contains_key("alias"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
