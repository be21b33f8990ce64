//! The project record and where it is stored. Shaped like the contract's
//! project (`projects.get`) so the projects API can serve it as is.

use serde::{Deserialize, Serialize};

use crate::store::{Index, Table};

pub const PROJECTS: Table<Project> = Table::new("projects");
/// owner (user id) -> project ids.
pub const PROJECTS_BY_OWNER: Index = Index::new("projects_by_owner");

/// The alias every user's first project gets.
pub const DEFAULT_ALIAS: &str = "default";
/// The colour a project gets when none is chosen.
pub const DEFAULT_COLOR: &str = "#6366f1";

#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct Project {
    pub id: String,
    /// The owner.
    pub user_id: String,
    pub alias: String,
    pub color: String,
    #[serde(default)]
    pub max_containers: Option<u32>,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub realm_ids: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Project {
    /// A user's default project.
    pub fn default_for(id: String, user_id: &str, now: &str) -> Project {
        Project {
            id,
            user_id: user_id.to_string(),
            alias: DEFAULT_ALIAS.to_string(),
            color: DEFAULT_COLOR.to_string(),
            max_containers: None,
            is_default: true,
            realm_ids: Vec::new(),
            created_at: now.to_string(),
            updated_at: now.to_string(),
        }
    }
}

/// Grants on shared projects: one row per (project, grantee).
pub const PROJECT_PERMISSIONS: Table<ProjectPermission> = Table::new("project_permissions");
/// project id -> permission ids.
pub const PERMISSIONS_BY_PROJECT: Index = Index::new("project_permissions_by_project");
/// grantee user id -> permission ids.
pub const PERMISSIONS_BY_USER: Index = Index::new("project_permissions_by_user");

/// What a grantee may do on a shared project; each level includes the ones before it.
#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Read,
    Edit,
    Delete,
}

#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct ProjectPermission {
    pub id: String,
    pub project_id: String,
    /// The grantee.
    pub user_id: String,
    pub permission_level: Level,
    pub created_at: String,
    pub updated_at: String,
}
