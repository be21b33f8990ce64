//! Writes activity records for authenticated requests off the request
//! path: handlers hand records to a channel and one task writes them in
//! batches, one transaction per batch, so a busy API does one sled write
//! per batch rather than per request.

use tokio::sync::mpsc;

use crate::auth::principal::Principal;
use crate::store::Store;
use crate::wire::{new_id, now};

use super::model::{Activity, ACTIVITY, ACTIVITY_BY_USER};

/// Records queued beyond this are dropped (and counted in the log) rather
/// than letting a flood of requests grow memory without bound.
const QUEUE: usize = 65_536;
const BATCH: usize = 512;

#[derive(Clone)]
pub struct ActivityLog {
    tx: mpsc::Sender<Activity>,
}

impl ActivityLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> ActivityLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx));
        ActivityLog { tx }
    }

    /// Queues one record; never blocks.
    pub fn record(
        &self,
        principal: &Principal,
        method: &str,
        path: &str,
        status: u16,
        user_agent: &str,
    ) {
        let activity = Activity {
            id: new_id(),
            user_id: principal.user.id.clone(),
            realm_id: principal.realm_id.clone(),
            method: method.to_string(),
            path: path.to_string(),
            status_code: status,
            ip_address: principal.ip.to_string(),
            user_agent: user_agent.chars().take(512).collect(),
            token_id: principal.token().map(|t| t.id.clone()),
            created_at: now(),
        };
        if self.tx.try_send(activity).is_err() {
            tracing::warn!("activity queue full; record dropped");
        }
    }
}

async fn write_batches(store: Store, mut rx: mpsc::Receiver<Activity>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let records = std::mem::take(&mut batch);
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.tx(|tx| {
                for a in &records {
                    tx.put(&ACTIVITY, &a.id, a)?;
                    tx.add_multi(&ACTIVITY_BY_USER, &a.user_id, &a.id)?;
                }
                Ok(())
            })
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record activity"),
            Err(e) => tracing::warn!(error = %e, "activity writer failed"),
        }
    }
}
