//! The activity log: one record per authenticated request.

use serde::{Deserialize, Serialize};

use crate::store::Table;

/// Grouped by user id (`Store::put_in_group`): a user's log is one prefix
/// scan, and recording a request is one write. Ids sort by time, so each
/// group is in time order.
pub const ACTIVITY: Table<Activity> = Table::new("activity");

#[derive(Serialize, Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct Activity {
    pub id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_id: Option<String>,
    pub method: String,
    pub path: String,
    pub status_code: u16,
    pub ip_address: String,
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    pub created_at: String,
}
