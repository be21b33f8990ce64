//! Helpers the services' unit tests share.

use std::path::PathBuf;

use crate::settings::Settings;
use crate::state::AppState;
use crate::store::Store;

/// An application state over a temporary store, with a data directory of its own
/// that goes when the state is dropped.
pub(crate) struct TempState {
    state: AppState,
    dir: PathBuf,
}

impl TempState {
    /// A state whose data directory is `hoody-<prefix>-<id>` under the temp dir.
    pub(crate) fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hoody-{prefix}-{}", crate::wire::new_id()));
        let store = Store::temporary().expect("temporary store");
        let state = AppState::with_store(Settings::for_data_dir(&dir), store).expect("state");
        Self { state, dir }
    }
}

impl std::ops::Deref for TempState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.state
    }
}

impl Drop for TempState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
