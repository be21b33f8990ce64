//! One lifecycle change at a time per container in the control plane. The
//! runtime already serializes its calls per container, but the status is
//! recorded after the call returns: without this lock two requests could
//! record their outcomes in the opposite order of the calls, leaving a
//! status that contradicts runc.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct ContainerLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ContainerLocks {
    /// Waits for, then holds, container `id`'s lock.
    pub async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Drops the lock of a deleted container.
    pub fn forget(&self, id: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}
