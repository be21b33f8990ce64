//! Storage shares between containers. Not implemented yet beyond the hook
//! the container teardown calls.

use crate::error::ApiResult;
use crate::state::AppState;

/// Called when a container is deleted, so shares from or to it go away.
pub fn on_container_deleted(_state: &AppState, _container_id: &str) -> ApiResult<()> {
    Ok(())
}
