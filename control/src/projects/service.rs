//! Project rules: who sees a project and at which level, alias and colour
//! rules, the container quota, sharing, and deletion with its containers.

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{
    Level, Project, ProjectPermission, PERMISSIONS_BY_PROJECT, PERMISSIONS_BY_USER, PROJECTS,
    PROJECTS_BY_OWNER, PROJECT_PERMISSIONS,
};
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::state::AppState;
use crate::store::Store;
use crate::users::model::USERS;
use crate::wire::{check_id, new_id, now, Validator};

/// A project as one caller reaches it.
#[derive(Debug, Clone)]
pub struct Access {
    pub project: Project,
    /// `None` for the owner, who may do everything.
    pub level: Option<Level>,
}

impl Access {
    pub fn is_owner(&self) -> bool {
        self.level.is_none()
    }

    /// Whether the caller holds at least `needed`.
    pub fn allows(&self, needed: Level) -> bool {
        self.level.is_none_or(|l| l >= needed)
    }

    /// Fails with 403 unless the caller holds `needed`.
    pub fn require(self, needed: Level) -> ApiResult<Access> {
        if self.allows(needed) {
            Ok(self)
        } else {
            Err(ApiError::forbidden(
                "INSUFFICIENT_PROJECT_PERMISSION",
                format!("this action needs {needed:?} access to the project").to_lowercase(),
            ))
        }
    }
}

/// The project `id` as `user_id` reaches it; 404 when they have no access at all,
/// so other tenants' projects stay invisible.
pub fn access(store: &Store, user_id: &str, id: &str) -> ApiResult<Access> {
    check_id("id", id)?;
    let project = store
        .get(&PROJECTS, id)?
        .ok_or(ApiError::NotFound("project"))?;
    if project.user_id == user_id {
        return Ok(Access {
            project,
            level: None,
        });
    }
    let grant = grant_of(store, id, user_id)?.ok_or(ApiError::NotFound("project"))?;
    Ok(Access {
        project,
        level: Some(grant.permission_level),
    })
}

fn grant_of(
    store: &Store,
    project_id: &str,
    user_id: &str,
) -> ApiResult<Option<ProjectPermission>> {
    for pid in store.ids(&PERMISSIONS_BY_PROJECT, project_id)? {
        if let Some(p) = store.get(&PROJECT_PERMISSIONS, &pid)? {
            if p.user_id == user_id {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// Every project the user owns or was granted, with the access they hold.
pub fn reachable(store: &Store, user_id: &str) -> ApiResult<Vec<Access>> {
    let mut out: Vec<Access> = store
        .owned(&PROJECTS_BY_OWNER, user_id, &PROJECTS)?
        .into_iter()
        .map(|project| Access {
            project,
            level: None,
        })
        .collect();
    for grant in store.owned(&PERMISSIONS_BY_USER, user_id, &PROJECT_PERMISSIONS)? {
        if let Some(project) = store.get(&PROJECTS, &grant.project_id)? {
            out.push(Access {
                project,
                level: Some(grant.permission_level),
            });
        }
    }
    Ok(out)
}

/// Whether the caller's chosen realm (if any) admits a resource of `realm_ids`.
pub fn in_realm(caller: &Principal, realm_ids: &[String]) -> bool {
    caller
        .realm_id
        .as_deref()
        .is_none_or(|r| realm_ids.iter().any(|x| x == r))
}

/// `#RGB`/`#RRGGBB` with or without `#`, returned as uppercase with `#`.
pub fn normalize_color(raw: &str) -> Option<String> {
    let hex = raw.strip_prefix('#').unwrap_or(raw);
    let ok = (hex.len() == 3 || hex.len() == 6) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| format!("#{}", hex.to_ascii_uppercase()))
}

pub fn random_color() -> String {
    let mut bytes = [0u8; 3];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    format!("#{}", hex::encode_upper(bytes))
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn merge_realm(caller: &Principal, mut ids: Vec<String>) -> Vec<String> {
    if let Some(r) = &caller.realm_id {
        if !ids.contains(r) {
            ids.push(r.clone());
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

fn check_realm_ids(v: &mut Validator, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        if !crate::wire::is_id(id) {
            v.fail(
                &format!("realm_ids[{i}]"),
                "must be a 24-character lowercase hex id",
            );
        }
    }
}

fn alias_taken(store: &Store, owner: &str, alias: &str, except: Option<&str>) -> ApiResult<bool> {
    Ok(store
        .owned(&PROJECTS_BY_OWNER, owner, &PROJECTS)?
        .iter()
        .any(|p| p.alias.eq_ignore_ascii_case(alias) && Some(p.id.as_str()) != except))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub alias: String,
    pub color: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub max_containers: Option<Option<u32>>,
    pub realm_ids: Option<Vec<String>>,
}

/// `projects.create`
pub fn create(state: &AppState, caller: &Principal, body: CreateProject) -> ApiResult<Project> {
    let mut v = Validator::new();
    let alias = body.alias.trim().to_string();
    v.length("alias", &alias, 1, 100);
    let color = match body.color.as_deref() {
        Some(c) => normalize_color(c).unwrap_or_else(|| {
            v.fail("color", "must be a hex colour like #RGB or #RRGGBB");
            String::new()
        }),
        None => random_color(),
    };
    check_realm_ids(&mut v, body.realm_ids.as_deref().unwrap_or_default());
    v.finish()?;
    let at = now();
    let project = Project {
        id: new_id(),
        user_id: caller.user_id().to_string(),
        alias,
        color,
        max_containers: body.max_containers.flatten(),
        is_default: false,
        realm_ids: merge_realm(caller, body.realm_ids.unwrap_or_default()),
        created_at: at.clone(),
        updated_at: at,
    };
    let store = &state.store;
    // Read outside the transaction: sled deadlocks on plain reads inside one.
    let owned = store.ids(&PROJECTS_BY_OWNER, &project.user_id)?;
    store.tx(|tx| {
        for pid in &owned {
            if let Some(p) = tx.get(&PROJECTS, pid)? {
                if p.alias.eq_ignore_ascii_case(&project.alias) {
                    return Err(ApiError::conflict(
                        "PROJECT_ALIAS_EXISTS",
                        "you already have a project with this alias",
                    )
                    .into());
                }
            }
        }
        tx.put(&PROJECTS, &project.id, &project)?;
        tx.add_multi(&PROJECTS_BY_OWNER, &project.user_id, &project.id)?;
        record(
            tx,
            NewEvent::new("project.created", "project", &project.id, &project.user_id)
                .payload(json!({"project_id": project.id, "alias": project.alias})),
        )?;
        Ok(())
    })?;
    Ok(project)
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    pub alias: String,
    pub color: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub max_containers: Option<Option<u32>>,
    pub realm_ids: Option<Vec<String>>,
}

/// `projects.update`: needs edit access; realm membership only with an
/// unrestricted credential.
pub fn update(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: UpdateProject,
) -> ApiResult<Project> {
    let access = access(&state.store, caller.user_id(), id)?.require(Level::Edit)?;
    let mut v = Validator::new();
    let alias = body.alias.trim().to_string();
    v.length("alias", &alias, 1, 100);
    let color = match body.color.as_deref() {
        Some(c) => match normalize_color(c) {
            Some(c) => Some(c),
            None => {
                v.fail("color", "must be a hex colour like #RGB or #RRGGBB");
                None
            }
        },
        None => None,
    };
    check_realm_ids(&mut v, body.realm_ids.as_deref().unwrap_or_default());
    v.finish()?;
    if body.realm_ids.is_some() && caller.token().is_some_and(|t| !t.realm_ids.is_empty()) {
        return Err(ApiError::forbidden(
            "REALM_RESTRICTED_TOKEN",
            "a realm-restricted token cannot change realm membership",
        ));
    }
    let owner = access.project.user_id.clone();
    if alias_taken(&state.store, &owner, &alias, Some(id))? {
        return Err(ApiError::conflict(
            "PROJECT_ALIAS_EXISTS",
            "you already have a project with this alias",
        ));
    }
    let updated = state.store.tx(|tx| {
        let mut p = tx
            .get(&PROJECTS, id)?
            .ok_or(ApiError::NotFound("project"))?;
        p.alias = alias.clone();
        if let Some(c) = &color {
            p.color = c.clone();
        }
        if let Some(m) = body.max_containers {
            p.max_containers = m;
        }
        if let Some(r) = &body.realm_ids {
            p.realm_ids = merge_realm(caller, r.clone());
        }
        p.updated_at = now();
        tx.put(&PROJECTS, id, &p)?;
        record(
            tx,
            NewEvent::new("project.updated", "project", id, &p.user_id)
                .payload(json!({"project_id": id, "alias": p.alias})),
        )?;
        Ok(p)
    })?;
    Ok(updated)
}

/// What `projects.delete` removed.
pub struct Deleted {
    pub containers: Vec<(String, String)>,
    pub permissions: usize,
}

/// `projects.delete`: stops and removes the project's containers, then the project,
/// its grants and its proxy document in one transaction. The default project stays.
pub async fn delete(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Deleted> {
    let access = access(&state.store, caller.user_id(), id)?.require(Level::Delete)?;
    if access.project.is_default {
        return Err(ApiError::conflict(
            "DEFAULT_PROJECT",
            "the default project cannot be deleted",
        ));
    }
    let mut containers = Vec::new();
    for c in crate::containers::model::in_project(&state.store, id)? {
        crate::containers::service::destroy(state, &c, caller.user_id()).await?;
        containers.push((c.id, c.name));
    }
    crate::containers::shares::on_project_deleted(state, id)?;
    let grants = state.store.ids(&PERMISSIONS_BY_PROJECT, id)?;
    let owner = access.project.user_id.clone();
    state.store.tx(|tx| {
        for gid in &grants {
            if let Some(g) = tx.get(&PROJECT_PERMISSIONS, gid)? {
                tx.remove_multi(&PERMISSIONS_BY_USER, &g.user_id, gid)?;
            }
            tx.remove(&PROJECT_PERMISSIONS, gid)?;
            tx.remove_multi(&PERMISSIONS_BY_PROJECT, id, gid)?;
        }
        crate::proxy::documents::on_project_deleted(tx, id)?;
        tx.remove(&PROJECTS, id)?;
        tx.remove_multi(&PROJECTS_BY_OWNER, &owner, id)?;
        record(
            tx,
            NewEvent::new("project.deleted", "project", id, &owner).payload(json!({
                "project_id": id,
                "containers": containers.len(),
            })),
        )?;
        Ok(())
    })?;
    Ok(Deleted {
        containers,
        permissions: grants.len(),
    })
}

/// A permission row as the API shows it, with the grantee's public names.
pub fn permission_view(store: &Store, p: &ProjectPermission) -> ApiResult<Value> {
    let mut v = serde_json::to_value(p).map_err(ApiError::internal)?;
    if let Some(u) = store.get(&USERS, &p.user_id)? {
        v["user"] = json!({"id": u.id, "username": u.username, "alias": u.alias});
    }
    Ok(v)
}

/// The permission rows of a project (any member may read them).
pub fn permissions(
    state: &AppState,
    caller: &Principal,
    id: &str,
) -> ApiResult<Vec<ProjectPermission>> {
    access(&state.store, caller.user_id(), id)?;
    Ok(state
        .store
        .owned(&PERMISSIONS_BY_PROJECT, id, &PROJECT_PERMISSIONS)?)
}

fn owner_only(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Access> {
    let access = access(&state.store, caller.user_id(), id)?;
    if !access.is_owner() {
        return Err(ApiError::forbidden(
            "PROJECT_OWNER_ONLY",
            "only the project owner manages its permissions",
        ));
    }
    Ok(access)
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPermission {
    pub user_id: String,
    pub permission_level: Level,
}

/// `projects.addPermission`: the owner grants another user a level.
pub fn add_permission(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: AddPermission,
) -> ApiResult<ProjectPermission> {
    check_id("user_id", &body.user_id)?;
    let access = owner_only(state, caller, id)?;
    if body.user_id == access.project.user_id {
        return Err(ApiError::field(
            "user_id",
            "the owner already has full access",
        ));
    }
    if state.store.get(&USERS, &body.user_id)?.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    let at = now();
    let grant = ProjectPermission {
        id: new_id(),
        project_id: id.to_string(),
        user_id: body.user_id.clone(),
        permission_level: body.permission_level,
        created_at: at.clone(),
        updated_at: at,
    };
    let store = &state.store;
    let existing = store.ids(&PERMISSIONS_BY_PROJECT, id)?;
    store.tx(|tx| {
        for gid in &existing {
            if let Some(g) = tx.get(&PROJECT_PERMISSIONS, gid)? {
                if g.user_id == grant.user_id {
                    return Err(ApiError::conflict(
                        "PERMISSION_EXISTS",
                        "this user already has a permission on the project",
                    )
                    .into());
                }
            }
        }
        tx.put(&PROJECT_PERMISSIONS, &grant.id, &grant)?;
        tx.add_multi(&PERMISSIONS_BY_PROJECT, id, &grant.id)?;
        tx.add_multi(&PERMISSIONS_BY_USER, &grant.user_id, &grant.id)?;
        record(
            tx,
            NewEvent::new("project.updated", "project", id, caller.user_id()).payload(json!({
                "project_id": id,
                "permission_added": {"user_id": grant.user_id, "permission_level": grant.permission_level},
            })),
        )?;
        Ok(())
    })?;
    Ok(grant)
}

fn grant_in(state: &AppState, id: &str, permission_id: &str) -> ApiResult<ProjectPermission> {
    check_id("permissionId", permission_id)?;
    state
        .store
        .get(&PROJECT_PERMISSIONS, permission_id)?
        .filter(|g| g.project_id == id)
        .ok_or(ApiError::NotFound("permission"))
}

/// `projects.updatePermission`
pub fn update_permission(
    state: &AppState,
    caller: &Principal,
    id: &str,
    permission_id: &str,
    level: Level,
) -> ApiResult<ProjectPermission> {
    owner_only(state, caller, id)?;
    grant_in(state, id, permission_id)?;
    state
        .store
        .tx(|tx| {
            let mut g = tx
                .get(&PROJECT_PERMISSIONS, permission_id)?
                .ok_or(ApiError::NotFound("permission"))?;
            g.permission_level = level;
            g.updated_at = now();
            tx.put(&PROJECT_PERMISSIONS, permission_id, &g)?;
            record(
                tx,
                NewEvent::new("project.updated", "project", id, caller.user_id()).payload(json!({
                    "project_id": id,
                    "permission_updated": {"user_id": g.user_id, "permission_level": level},
                })),
            )?;
            Ok(g)
        })
        .map_err(Into::into)
}

/// `projects.removePermission`
pub fn remove_permission(
    state: &AppState,
    caller: &Principal,
    id: &str,
    permission_id: &str,
) -> ApiResult<()> {
    owner_only(state, caller, id)?;
    let g = grant_in(state, id, permission_id)?;
    state.store.tx(|tx| {
        tx.remove(&PROJECT_PERMISSIONS, permission_id)?;
        tx.remove_multi(&PERMISSIONS_BY_PROJECT, id, permission_id)?;
        tx.remove_multi(&PERMISSIONS_BY_USER, &g.user_id, permission_id)?;
        record(
            tx,
            NewEvent::new("project.updated", "project", id, caller.user_id()).payload(json!({
                "project_id": id,
                "permission_removed": {"user_id": g.user_id},
            })),
        )?;
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_normalised_to_uppercase_with_hash() {
        assert_eq!(normalize_color("abc").as_deref(), Some("#ABC"));
        assert_eq!(normalize_color("#00ff7f").as_deref(), Some("#00FF7F"));
        assert_eq!(normalize_color("#12345"), None);
        assert_eq!(normalize_color("zzz"), None);
        assert!(normalize_color(&random_color()).is_some());
    }

    #[test]
    fn levels_include_the_lower_ones() {
        let p = Project::default_for(new_id(), "u", "t");
        let edit = Access {
            project: p.clone(),
            level: Some(Level::Edit),
        };
        assert!(edit.allows(Level::Read) && edit.allows(Level::Edit));
        assert!(!edit.allows(Level::Delete));
        let owner = Access {
            project: p,
            level: None,
        };
        assert!(owner.allows(Level::Delete) && owner.is_owner());
    }
}
