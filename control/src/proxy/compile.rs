//! The config compiler: records → data-plane units.

use crate::error::ApiResult;
use crate::state::AppState;

/// Rebuilds the unit of one container from its records and publishes it
/// (removes it when the container is gone).
pub async fn recompile(_state: &AppState, _container_id: &str) -> ApiResult<()> {
    Ok(())
}
