//! HTTP routes of this resource group.

use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}

/// Deletes activity older than the retention setting.
pub fn prune(_state: &AppState) {}
