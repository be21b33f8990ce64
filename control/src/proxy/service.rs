//! Rules of `proxyPermissionsContainer.*`, `proxyPermissionsProject.*` and
//! `proxyDiscovery.*`: each setter is one edit of the stored document through
//! [`documents::write`], so precondition, validation, version, event and
//! recompilation are the same for all of them.

use std::collections::{BTreeMap, BTreeSet};

use dataplane::config::{
    Access, DefaultAccess, Group, IpGroup, JwtAlgorithm, JwtGroup, PasswordGroup, TokenGroup,
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::documents::{self, Change, Owner, Precondition, ProxyFile};
use super::hooks::{self, HookInput};
use super::validate::{self, at};
use crate::containers::model::Container;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::wire::{check_id, Validator};

/// `proxyPermissionsContainer.replace` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerDocumentInput {
    /// The container's project (24 hex).
    pub project: String,
    /// The container itself (24 hex); must be the one in the path.
    pub container: String,
    /// Group name → `{"type": "jwt"|"password"|"ip"|"token", ...}` with the
    /// fields of the matching setter.
    #[schema(value_type = Object)]
    pub groups: BTreeMap<String, Value>,
    /// Group name → program → access rule.
    #[schema(value_type = Object)]
    pub permissions: BTreeMap<String, Value>,
    /// `allow` or `deny`. Left out, the project's value applies (deny when
    /// the project has none).
    #[schema(value_type = Option<String>)]
    pub default: Option<DefaultAccess>,
    pub enable_proxy: Option<bool>,
    /// Service key → first-match hook list (see `proxyHooks.*`). Left out,
    /// the stored hooks are kept.
    #[schema(value_type = Option<Object>)]
    pub hooks: Option<BTreeMap<String, Vec<Value>>>,
}

/// `proxyPermissionsProject.replace` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectDocumentInput {
    /// The project (24 hex); must be the one in the path.
    pub project: String,
    #[schema(value_type = Object)]
    pub groups: BTreeMap<String, Value>,
    #[schema(value_type = Object)]
    pub permissions: BTreeMap<String, Value>,
    #[schema(value_type = Option<String>)]
    pub default: Option<DefaultAccess>,
    pub enable_proxy: Option<bool>,
}

/// `setIpGroup` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpGroupInput {
    /// IPv4 CIDR, `a.b.c.d/n`.
    pub range: String,
}

/// `setJwtGroup` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtGroupInput {
    /// HS256: the shared secret; RS256/ES256: a PEM public key.
    pub secret: String,
    /// `HS256`, `RS256` or `ES256`.
    #[schema(value_type = String)]
    pub algorithm: JwtAlgorithm,
    /// `header:Name` or `cookie:Name`, tried in order.
    pub sources: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub claims: Option<BTreeMap<String, Value>>,
}

/// `setPasswordGroup` body. A plaintext password is stored as
/// sha256(salt + password); 64 hex digits are taken as that digest already.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordGroupInput {
    pub username: String,
    pub password: String,
    /// Only `sha256`.
    pub algorithm: Option<String>,
    pub salt: String,
}

/// `setTokenGroup` body: exactly one of `header`, `cookie`, `param`.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenGroupInput {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub param: Option<String>,
    pub value: String,
}

/// `setGroup` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramAccessInput {
    pub program: String,
    /// `true`/`false`, a port, a list of ports, `"8000-8100"` or `"*"`.
    #[schema(value_type = Object)]
    pub access: Value,
}

/// `updateDefault` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultInput {
    #[schema(value_type = String)]
    pub default: DefaultAccess,
}

/// `updateState` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateInput {
    pub enable_proxy: bool,
}

/// `proxyDiscovery.updateContainerProxySettings` body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    pub enable_proxy: Option<bool>,
    #[schema(value_type = Option<String>)]
    pub default: Option<DefaultAccess>,
}

/// A document write and the view it answers with.
pub type Written = (ProxyFile, Value);

/// `proxyPermissions*.get`
pub fn get(state: &AppState, owner: Owner<'_>) -> ApiResult<Value> {
    let file = documents::load(&state.store, owner)?;
    Ok(documents::view(owner, &file))
}

async fn edit(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    f: impl Fn(&mut ProxyFile) -> ApiResult<Change<()>>,
) -> ApiResult<Written> {
    let (file, ()) = documents::write(state, owner, pre, f).await?;
    let view = documents::view(owner, &file);
    Ok((file, view))
}

/// `proxyPermissionsContainer.replace`
pub async fn replace_container(
    state: &AppState,
    c: &Container,
    pre: &Precondition,
    body: ContainerDocumentInput,
) -> ApiResult<Written> {
    let mut v = Validator::new();
    check_id("project", &body.project)?;
    check_id("container", &body.container)?;
    v.check(
        "project",
        body.project == c.project_id,
        "must be the container's project",
    );
    v.check(
        "container",
        body.container == c.id,
        "must be the container in the path",
    );
    v.finish()?;
    let groups = parse_groups(&body.groups)?;
    let permissions = parse_permissions(&body.permissions)?;
    let hooks = body.hooks.as_ref().map(parse_hook_lists).transpose()?;
    edit(state, Owner::Container(c), pre, |f| {
        f.groups = groups.clone();
        f.permissions = permissions.clone();
        f.default = body.default;
        f.enable_proxy = body.enable_proxy;
        if let Some(h) = &hooks {
            f.hooks = h.clone();
        }
        Ok(Change::new("proxy.permissions.updated", ()).with("operation", "replace"))
    })
    .await
}

/// `proxyPermissionsProject.replace`
pub async fn replace_project(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    body: ProjectDocumentInput,
) -> ApiResult<Written> {
    check_id("project", &body.project)?;
    if body.project != owner.id() {
        return Err(ApiError::field(
            "project",
            "must be the project in the path",
        ));
    }
    let groups = parse_groups(&body.groups)?;
    let permissions = parse_permissions(&body.permissions)?;
    edit(state, owner, pre, |f| {
        f.groups = groups.clone();
        f.permissions = permissions.clone();
        f.default = body.default;
        f.enable_proxy = body.enable_proxy;
        Ok(Change::new("proxy.permissions.updated", ()).with("operation", "replace"))
    })
    .await
}

/// `proxyPermissions*.delete`: the document goes; its version keeps
/// counting so tags read before stay stale.
pub async fn delete(state: &AppState, owner: Owner<'_>, pre: &Precondition) -> ApiResult<Written> {
    edit(state, owner, pre, |f| {
        let version = f.file_version;
        *f = ProxyFile {
            file_version: version,
            active: false,
            ..ProxyFile::default()
        };
        Ok(Change::new("proxy.permissions.updated", ()).with("operation", "delete"))
    })
    .await
}

/// `proxyPermissions*.updateDefault`
pub async fn set_default(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    value: DefaultAccess,
) -> ApiResult<Written> {
    edit(state, owner, pre, |f| {
        f.default = Some(value);
        Ok(Change::new("proxy.permissions.default_changed", ()).with("default", value))
    })
    .await
}

/// `proxyPermissions*.updateState`
pub async fn set_state(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    enabled: bool,
) -> ApiResult<Written> {
    edit(state, owner, pre, |f| {
        f.enable_proxy = Some(enabled);
        Ok(Change::new("proxy.permissions.updated", ()).with("enable_proxy", enabled))
    })
    .await
}

/// `proxyDiscovery.updateContainerProxySettings`
pub async fn update_settings(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    body: SettingsInput,
) -> ApiResult<Value> {
    let (file, _) = edit(state, owner, pre, |f| {
        if let Some(e) = body.enable_proxy {
            f.enable_proxy = Some(e);
        }
        let event = match body.default {
            Some(d) if Some(d) != f.default => {
                f.default = Some(d);
                "proxy.permissions.default_changed"
            }
            _ => "proxy.permissions.updated",
        };
        Ok(Change::new(event, ()).with("operation", "settings"))
    })
    .await?;
    Ok(settings_view(&file))
}

/// `proxyDiscovery.getContainerProxySettings`
pub fn settings(state: &AppState, owner: Owner<'_>) -> ApiResult<Value> {
    Ok(settings_view(&documents::load(&state.store, owner)?))
}

fn settings_view(file: &ProxyFile) -> Value {
    json!({
        "enable_proxy": file.enable_proxy.unwrap_or(true),
        "default": file.effective_default(),
        "file_version": file.file_version,
        "etag": file.etag(),
    })
}

/// The group setters: `setIpGroup`, `setJwtGroup`, `setPasswordGroup`,
/// `setTokenGroup`. The group is validated on its own first, so the error
/// names the body's field (`range`), not the document path.
pub async fn set_group(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    name: &str,
    group: Group,
) -> ApiResult<Written> {
    let mut v = Validator::new();
    validate::group_name(&mut v, "groupName", name);
    validate::group(&mut v, "", &group);
    v.finish()?;
    let group = store_form(group);
    edit(state, owner, pre, |f| {
        let event = match f.groups.insert(name.to_string(), group.clone()) {
            Some(_) => "proxy.permissions.group_updated",
            None => "proxy.permissions.group_added",
        };
        Ok(Change::new(event, ()).with("group", name))
    })
    .await
}

/// Passwords are kept as their salted digest, never as given.
fn store_form(group: Group) -> Group {
    match group {
        Group::Password(mut p) if !is_digest(&p.password) => {
            let mut h = Sha256::new();
            h.update(p.salt.as_bytes());
            h.update(p.password.as_bytes());
            p.password = hex::encode(h.finalize());
            p.algorithm = Some("sha256".into());
            Group::Password(p)
        }
        other => other,
    }
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl From<IpGroupInput> for Group {
    fn from(i: IpGroupInput) -> Group {
        Group::Ip(IpGroup { range: i.range })
    }
}

impl From<JwtGroupInput> for Group {
    fn from(i: JwtGroupInput) -> Group {
        Group::Jwt(JwtGroup {
            secret: i.secret,
            algorithm: i.algorithm,
            sources: i.sources,
            claims: i.claims.unwrap_or_default(),
        })
    }
}

impl From<PasswordGroupInput> for Group {
    fn from(i: PasswordGroupInput) -> Group {
        Group::Password(PasswordGroup {
            username: i.username,
            password: i.password,
            algorithm: i.algorithm,
            salt: i.salt,
        })
    }
}

impl From<TokenGroupInput> for Group {
    fn from(i: TokenGroupInput) -> Group {
        Group::Token(TokenGroup {
            header: i.header,
            cookie: i.cookie,
            param: i.param,
            value: i.value,
        })
    }
}

/// `removeAuthGroup`: the group's permissions stay (a project document may
/// define the same name).
pub async fn remove_group(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    name: &str,
) -> ApiResult<Written> {
    exists(state, owner, |f| f.groups.contains_key(name), "group")?;
    edit(state, owner, pre, |f| {
        f.groups.remove(name).ok_or(ApiError::NotFound("group"))?;
        Ok(Change::new("proxy.permissions.group_removed", ()).with("group", name))
    })
    .await
}

/// `setGroup`: one program's access rule for a group.
pub async fn set_program(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    name: &str,
    body: ProgramAccessInput,
) -> ApiResult<Written> {
    let mut v = Validator::new();
    validate::group_name(&mut v, "groupName", name);
    validate::program_name(&mut v, "program", &body.program);
    v.finish()?;
    let rule = validate::parse_access("access", &body.access)?;
    validate::access(&mut v, "access", &body.program, &rule);
    v.finish()?;
    edit(state, owner, pre, |f| {
        f.permissions
            .entry(name.to_string())
            .or_default()
            .insert(body.program.clone(), rule.clone());
        Ok(Change::new("proxy.permissions.updated", ())
            .with("group", name)
            .with("program", &body.program))
    })
    .await
}

/// `removeGroup`: every program rule of a group.
pub async fn remove_permissions(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    name: &str,
) -> ApiResult<Written> {
    exists(state, owner, |f| f.permissions.contains_key(name), "group")?;
    edit(state, owner, pre, |f| {
        f.permissions
            .remove(name)
            .ok_or(ApiError::NotFound("group"))?;
        Ok(Change::new("proxy.permissions.updated", ()).with("group", name))
    })
    .await
}

/// `removeProgram`: one program rule of a group.
pub async fn remove_program(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    name: &str,
    program: &str,
) -> ApiResult<Written> {
    let has = |f: &ProxyFile| {
        f.permissions
            .get(name)
            .is_some_and(|r| r.contains_key(program))
    };
    exists(state, owner, has, "program rule")?;
    edit(state, owner, pre, |f| {
        let rules = f
            .permissions
            .get_mut(name)
            .ok_or(ApiError::NotFound("program rule"))?;
        rules
            .remove(program)
            .ok_or(ApiError::NotFound("program rule"))?;
        if rules.is_empty() {
            f.permissions.remove(name);
        }
        Ok(Change::new("proxy.permissions.updated", ())
            .with("group", name)
            .with("program", program))
    })
    .await
}

/// A removal of something absent is a 404 before any precondition check,
/// and never bumps the version.
fn exists(
    state: &AppState,
    owner: Owner<'_>,
    present: impl Fn(&ProxyFile) -> bool,
    what: &'static str,
) -> ApiResult<()> {
    let file = documents::load(&state.store, owner)?;
    if file.active && present(&file) {
        Ok(())
    } else {
        Err(ApiError::NotFound(what))
    }
}

/// Parses a JSON value as `T`, naming the failing field under `prefix`.
pub fn parse_at<T: DeserializeOwned>(prefix: &str, value: &Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value.clone()).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let field = if path == "." {
            // Missing and unknown fields are reported at the parent.
            match backticked(&message) {
                Some(name) if message.starts_with("missing field") => at(prefix, &name),
                Some(name) if message.starts_with("unknown field") => at(prefix, &name),
                _ if message.contains("variant") => at(prefix, "type"),
                _ => prefix.to_string(),
            }
        } else {
            at(prefix, &path)
        };
        ApiError::field(&field, message)
    })
}

fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

fn parse_groups(raw: &BTreeMap<String, Value>) -> ApiResult<BTreeMap<String, Group>> {
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let prefix = format!("groups.{name}");
        let mut v = Validator::new();
        validate::group_name(&mut v, &prefix, name);
        v.finish()?;
        let group: Group = parse_at(&prefix, value)?;
        validate::group(&mut v, &prefix, &group);
        v.finish()?;
        out.insert(name.clone(), store_form(group));
    }
    Ok(out)
}

fn parse_permissions(
    raw: &BTreeMap<String, Value>,
) -> ApiResult<BTreeMap<String, BTreeMap<String, Access>>> {
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let prefix = format!("permissions.{name}");
        let Value::Object(rules) = value else {
            return Err(ApiError::field(
                &prefix,
                "must be an object of program → access rule",
            ));
        };
        let mut parsed = BTreeMap::new();
        for (program, rule) in rules {
            let field = at(&prefix, program);
            let rule = validate::parse_access(&field, rule)?;
            let mut v = Validator::new();
            validate::group_name(&mut v, &prefix, name);
            validate::program_name(&mut v, &field, program);
            validate::access(&mut v, &field, program, &rule);
            v.finish()?;
            parsed.insert(program.clone(), rule);
        }
        out.insert(name.clone(), parsed);
    }
    Ok(out)
}

fn parse_hook_lists(
    raw: &BTreeMap<String, Vec<Value>>,
) -> ApiResult<BTreeMap<String, Vec<dataplane::config::Hook>>> {
    let mut out = BTreeMap::new();
    for (key, list) in raw {
        let mut hooks = Vec::with_capacity(list.len());
        for (i, value) in list.iter().enumerate() {
            let prefix = format!("hooks.{key}[{i}]");
            let input: HookInput = parse_at(&prefix, value)?;
            hooks.push(hooks::from_input(&prefix, input, None)?);
        }
        out.insert(key.clone(), hooks);
    }
    Ok(out)
}

/// `proxyDiscovery.listContainerProxyGroups`: the groups enforced for the
/// container (its own and its project's), with how many program rules each
/// carries and where it is defined.
pub fn groups(state: &AppState, c: &Container) -> ApiResult<Value> {
    let own = documents::load(&state.store, Owner::Container(c))?;
    let merged = documents::merged_for_container(&state.store, c)?.unwrap_or_default();
    let groups: Vec<Value> = merged
        .groups
        .keys()
        .map(|name| {
            let source = if own.active && own.groups.contains_key(name) {
                "container"
            } else {
                "project"
            };
            json!({
                "name": name,
                "auth_rule_count": merged.permissions.get(name).map_or(0, BTreeMap::len),
                "source": source,
            })
        })
        .collect();
    Ok(json!({"groups": groups, "file_version": own.file_version, "etag": own.etag()}))
}

/// `proxyDiscovery.listContainerProxyServices`: every service the proxy
/// knows for the container: the programs it publishes and every program or
/// service key the documents mention.
pub fn services(state: &AppState, c: &Container) -> ApiResult<Value> {
    let own = documents::load(&state.store, Owner::Container(c))?;
    let merged = documents::merged_for_container(&state.store, c)?.unwrap_or_default();
    let mut names = BTreeSet::new();
    if let Some(unit) = state.publisher.unit(&c.id) {
        for s in unit.services {
            names.insert(format!("{}-{}", s.program, s.index));
            names.insert(s.program);
        }
    }
    for rules in merged.permissions.values() {
        names.extend(rules.keys().cloned());
    }
    names.extend(merged.hooks.keys().cloned());
    Ok(json!({"services": names, "file_version": own.file_version, "etag": own.etag()}))
}

/// `proxyDiscovery.getContainerProxyService`: the merged view of one
/// service: each group's rule for its program, the hooks that run for it
/// (the port's own list first, then the program-wide list) and the default.
pub fn service_view(state: &AppState, c: &Container, service: &str) -> ApiResult<Value> {
    let mut v = Validator::new();
    validate::service_key(&mut v, "service", service);
    let reject_listed = validate::is_reject_listed(service);
    if !reject_listed {
        v.finish()?;
    }
    let own = documents::load(&state.store, Owner::Container(c))?;
    let merged = documents::merged_for_container(&state.store, c)?.unwrap_or_default();
    let (program, port) = validate::split_service(service);
    let permissions_raw: BTreeMap<&String, &Access> = merged
        .permissions
        .iter()
        .filter_map(|(group, rules)| rules.get(program).map(|r| (group, r)))
        .collect();
    let mut keys = vec![service.to_string()];
    if port.is_some() {
        keys.push(program.to_string());
    }
    let hooks: Vec<Value> = keys
        .iter()
        .flat_map(|k| {
            merged
                .hooks
                .get(k)
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(i, h)| {
                    let mut view = hooks::view(h, i);
                    view["service"] = json!(k);
                    view
                })
        })
        .collect();
    Ok(json!({
        "service": service,
        "is_reject_listed": reject_listed,
        "permissions_raw": permissions_raw,
        "hooks": hooks,
        "effective_default": merged.default,
        "enable_proxy": merged.enable_proxy,
        "file_version": own.file_version,
        "etag": own.etag(),
    }))
}
