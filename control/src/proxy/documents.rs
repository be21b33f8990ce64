//! Stored proxy documents of containers and projects.

use dataplane::config::ProxyDocument;

use crate::containers::model::Container;
use crate::error::ApiResult;
use crate::store::Store;

/// The document the data plane enforces for `container`: its project's
/// document with the container's own merged over it; `None` when neither
/// exists.
pub fn merged_for_container(
    _store: &Store,
    _container: &Container,
) -> ApiResult<Option<ProxyDocument>> {
    Ok(None)
}
