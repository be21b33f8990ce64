//! Stored proxy documents of containers and projects: the record, the
//! optimistic-concurrency tag (`file:v<N>`), the one write path every
//! setter goes through, and the merge the data plane enforces.
//!
//! A project's document sits under each of its containers' documents: groups
//! and per-program rules of the container win over same-named ones of the
//! project, and `default` / `enable_proxy` come from the container when it
//! set them, else from the project.

use std::collections::BTreeMap;

use dataplane::config::{Access, DefaultAccess, Group, Hook, ProxyDocument};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::containers::model::{self as containers, Container};
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::Project;
use crate::state::AppState;
use crate::store::{Store, StoreResult, Table, Tx};

/// Container id → its document.
pub const CONTAINER_DOCUMENTS: Table<ProxyFile> = Table::new("proxy_documents_containers");
/// Project id → its document.
pub const PROJECT_DOCUMENTS: Table<ProxyFile> = Table::new("proxy_documents_projects");

/// Version of the document's shape, reported as `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// One stored document. `default` and `enable_proxy` stay unset until a
/// write sets them, so a container document only overrides its project's
/// values it actually chose.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ProxyFile {
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
    #[serde(default)]
    pub permissions: BTreeMap<String, BTreeMap<String, Access>>,
    #[serde(default)]
    pub default: Option<DefaultAccess>,
    #[serde(default)]
    pub enable_proxy: Option<bool>,
    #[serde(default)]
    pub hooks: BTreeMap<String, Vec<Hook>>,
    /// Counts every write, deletions included, so an etag read before a
    /// delete never matches the document recreated after it.
    pub file_version: u64,
    /// False when the document was deleted (or never written): it then
    /// takes no part in the merge.
    pub active: bool,
}

impl ProxyFile {
    pub fn etag(&self) -> String {
        etag(self.file_version)
    }

    pub fn effective_default(&self) -> DefaultAccess {
        self.default.unwrap_or_default()
    }

    pub fn hook_count(&self) -> usize {
        self.hooks.values().map(Vec::len).sum()
    }
}

pub fn etag(version: u64) -> String {
    format!("file:v{version}")
}

/// Whose document a write changes.
#[derive(Clone, Copy)]
pub enum Owner<'a> {
    Container(&'a Container),
    Project(&'a Project),
}

impl Owner<'_> {
    fn table(&self) -> &'static Table<ProxyFile> {
        match self {
            Owner::Container(_) => &CONTAINER_DOCUMENTS,
            Owner::Project(_) => &PROJECT_DOCUMENTS,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Owner::Container(c) => &c.id,
            Owner::Project(p) => &p.id,
        }
    }

    fn project_id(&self) -> &str {
        match self {
            Owner::Container(c) => &c.project_id,
            Owner::Project(p) => &p.id,
        }
    }

    fn user_id(&self) -> &str {
        match self {
            Owner::Container(c) => &c.user_id,
            Owner::Project(p) => &p.user_id,
        }
    }
}

/// The stored document, or the empty one at version 0.
pub fn load(store: &Store, owner: Owner<'_>) -> ApiResult<ProxyFile> {
    Ok(store.get(owner.table(), owner.id())?.unwrap_or_default())
}

/// Removes a deleted container's document inside its deletion
/// transaction: nothing of it may outlive the container in the store.
pub fn on_container_deleted(tx: &Tx<'_>, container_id: &str) -> StoreResult<()> {
    tx.remove(&CONTAINER_DOCUMENTS, container_id)
}

/// Removes a deleted project's document inside its deletion transaction.
pub fn on_project_deleted(tx: &Tx<'_>, project_id: &str) -> StoreResult<()> {
    tx.remove(&PROJECT_DOCUMENTS, project_id)
}

/// The client's `If-Match` (header or `ifMatch` query), checked against the
/// stored version inside the write's transaction.
#[derive(Debug, Clone, Default)]
pub struct Precondition {
    pub if_match: Option<String>,
    /// The server's `require_if_match`: a write without `If-Match` is 428.
    pub required: bool,
}

impl Precondition {
    fn check(&self, current: &ProxyFile) -> ApiResult<()> {
        let Some(given) = self.if_match.as_deref().map(str::trim) else {
            return if self.required {
                Err(ApiError::PreconditionRequired {
                    message: "this server requires If-Match on proxy document writes".into(),
                })
            } else {
                Ok(())
            };
        };
        let want = current.etag();
        // Accept the tag bare or quoted, weak or strong, alone or in a list.
        let matches = given.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
            tag == "*" || tag == want
        });
        if matches {
            Ok(())
        } else {
            Err(ApiError::PreconditionFailed {
                code: "ETAG_MISMATCH",
                message: format!("the document changed: it is now at {want}"),
            })
        }
    }
}

/// What a write reports as its event.
pub struct Change<T> {
    pub event_type: &'static str,
    pub payload: Value,
    pub out: T,
}

impl<T> Change<T> {
    pub fn new(event_type: &'static str, out: T) -> Self {
        Change {
            event_type,
            payload: json!({}),
            out,
        }
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.payload[key] = json!(value);
        self
    }
}

/// The one write path: in one transaction, checks the precondition, applies
/// `edit` to a copy, validates the whole result, bumps the version, stores
/// it and records the event; then recompiles every affected container so
/// the change is enforced before the caller gets the answer. A rejected
/// edit leaves the stored document untouched.
pub async fn write<T>(
    state: &AppState,
    owner: Owner<'_>,
    pre: &Precondition,
    edit: impl Fn(&mut ProxyFile) -> ApiResult<Change<T>>,
) -> ApiResult<(ProxyFile, T)> {
    let (file, out) = state.store.tx(|tx| {
        let current = tx.get(owner.table(), owner.id())?.unwrap_or_default();
        pre.check(&current)?;
        let mut next = current.clone();
        next.active = true;
        let change = edit(&mut next)?;
        super::validate::whole(&next)?;
        next.file_version = current.file_version + 1;
        tx.put(owner.table(), owner.id(), &next)?;
        let mut payload = change.payload;
        payload["project_id"] = json!(owner.project_id());
        if let Owner::Container(c) = owner {
            payload["container_id"] = json!(c.id);
        }
        payload["file_version"] = json!(next.file_version);
        record(
            tx,
            NewEvent::new(
                change.event_type,
                "proxy_permissions",
                owner.id(),
                owner.user_id(),
            )
            .payload(payload),
        )?;
        Ok((next, change.out))
    })?;
    recompile_affected(state, owner).await?;
    Ok((file, out))
}

async fn recompile_affected(state: &AppState, owner: Owner<'_>) -> ApiResult<()> {
    match owner {
        Owner::Container(c) => super::compile::recompile(state, &c.id).await,
        Owner::Project(p) => {
            for c in containers::in_project(&state.store, &p.id)? {
                super::compile::recompile(state, &c.id).await?;
            }
            Ok(())
        }
    }
}

/// The contract's view of a stored document.
pub fn view(owner: Owner<'_>, file: &ProxyFile) -> Value {
    let mut v = json!({
        "project": owner.project_id(),
        "groups": file.groups,
        "permissions": file.permissions,
        "default": file.effective_default(),
        "enable_proxy": file.enable_proxy.unwrap_or(true),
        "hooks": file.hooks,
        "schema_version": SCHEMA_VERSION,
        "file_version": file.file_version,
        "etag": file.etag(),
    });
    if let Owner::Container(c) = owner {
        v["container"] = json!(c.id);
    }
    v
}

/// The document the data plane enforces for `container`: its project's
/// document with the container's own merged over it; `None` when neither
/// exists.
pub fn merged_for_container(
    store: &Store,
    container: &Container,
) -> ApiResult<Option<ProxyDocument>> {
    let project = store.get(&PROJECT_DOCUMENTS, &container.project_id)?;
    let own = store.get(&CONTAINER_DOCUMENTS, &container.id)?;
    Ok(merge(project.as_ref(), own.as_ref()))
}

/// `container` over `project`; inactive documents take no part.
pub fn merge(project: Option<&ProxyFile>, container: Option<&ProxyFile>) -> Option<ProxyDocument> {
    let layers: Vec<&ProxyFile> = [project, container]
        .into_iter()
        .flatten()
        .filter(|f| f.active)
        .collect();
    if layers.is_empty() {
        return None;
    }
    let mut doc = ProxyDocument::default();
    let mut default = None;
    let mut enable_proxy = None;
    for layer in layers {
        doc.groups
            .extend(layer.groups.iter().map(|(k, g)| (k.clone(), g.clone())));
        for (group, rules) in &layer.permissions {
            doc.permissions
                .entry(group.clone())
                .or_default()
                .extend(rules.iter().map(|(p, a)| (p.clone(), a.clone())));
        }
        // A service's hook list is one first-match sequence: the nearer
        // document's list replaces the farther one's whole.
        doc.hooks
            .extend(layer.hooks.iter().map(|(k, h)| (k.clone(), h.clone())));
        default = layer.default.or(default);
        enable_proxy = layer.enable_proxy.or(enable_proxy);
    }
    doc.default = default.unwrap_or_default();
    doc.enable_proxy = enable_proxy.unwrap_or(true);
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::config::IpGroup;

    fn file(active: bool) -> ProxyFile {
        ProxyFile {
            active,
            ..ProxyFile::default()
        }
    }

    #[test]
    fn nothing_active_means_no_document() {
        assert!(merge(None, None).is_none());
        assert!(merge(Some(&file(false)), Some(&file(false))).is_none());
    }

    #[test]
    fn container_rules_win_and_unset_values_inherit() {
        let mut project = file(true);
        project.default = Some(DefaultAccess::Allow);
        project.groups.insert(
            "office".into(),
            Group::Ip(IpGroup {
                range: "10.0.0.0/8".into(),
            }),
        );
        project
            .permissions
            .entry("office".into())
            .or_default()
            .insert("http".into(), Access::Flag(true));
        let mut own = file(true);
        own.enable_proxy = Some(false);
        own.permissions
            .entry("office".into())
            .or_default()
            .insert("http".into(), Access::Port(3000));
        let doc = merge(Some(&project), Some(&own)).unwrap();
        assert_eq!(doc.default, DefaultAccess::Allow);
        assert!(!doc.enable_proxy);
        assert!(doc.groups.contains_key("office"));
        assert_eq!(doc.permissions["office"]["http"], Access::Port(3000));
    }

    #[test]
    fn precondition_accepts_quoted_weak_and_star() {
        let mut f = file(true);
        f.file_version = 3;
        for tag in [
            "file:v3",
            "\"file:v3\"",
            "W/\"file:v3\"",
            "*",
            "file:v1, file:v3",
        ] {
            let p = Precondition {
                if_match: Some(tag.into()),
                required: false,
            };
            assert!(p.check(&f).is_ok(), "{tag}");
        }
        let stale = Precondition {
            if_match: Some("file:v2".into()),
            required: false,
        };
        assert!(matches!(
            stale.check(&f),
            Err(ApiError::PreconditionFailed { .. })
        ));
        let missing = Precondition {
            if_match: None,
            required: true,
        };
        assert!(matches!(
            missing.check(&f),
            Err(ApiError::PreconditionRequired { .. })
        ));
    }
}
