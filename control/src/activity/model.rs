//! The activity log: one record per authenticated request.

use serde::{Deserialize, Serialize};

use crate::store::Table;

/// Chunks of one user's records, oldest first, grouped by user id
/// (`Store::put_in_group`) under the id of the chunk's newest record. The
/// writer stores each user's share of a batch as one chunk, so a busy API
/// does one store write per user per batch rather than one per request; a
/// user's log is one prefix scan; ids sort by time, so pruning a chunk by
/// its key drops only records past retention.
pub const ACTIVITY: Table<Vec<Activity>> = Table::new("activity");

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
