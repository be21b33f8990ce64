//! Writes activity records for authenticated requests off the request
//! path: handlers queue cheap drafts and one task writes them in batches,
//! each user's share of a batch as one chunk under one key
//! (`Store::put_in_group`). One key per chunk needs no transaction: sled
//! transactions take a store-wide lock that stalls every reader (token and
//! user lookups) while they commit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::principal::Principal;
use crate::store::{Store, StoreResult};
use crate::wire::{format_time, new_id};

use super::model::{Activity, ACTIVITY};

/// Records queued beyond this are dropped (and counted in the log) rather
/// than letting a flood of requests grow memory without bound.
const QUEUE: usize = 65_536;
/// A batch this large is written at once; smaller ones wait for the tick.
const BATCH: usize = 512;
/// How long a record may wait in the queue. Waking the writer on a timer
/// rather than per request keeps the request path free of cross-thread
/// wake-ups, which cost more than the record itself.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Records per stored chunk at most, so one value stays small.
const CHUNK: usize = 512;

/// What the request path hands over: the cheap parts only. Ids and
/// timestamps are formatted by the writer.
struct Draft {
    user_id: String,
    realm_id: Option<String>,
    method: axum::http::Method,
    path: String,
    status: u16,
    ip: IpAddr,
    user_agent: String,
    token_id: Option<String>,
    at: time::OffsetDateTime,
}

#[derive(Clone)]
pub struct ActivityLog {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Vec<Draft>>,
    full: Notify,
}

impl ActivityLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> ActivityLog {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::with_capacity(BATCH)),
            full: Notify::new(),
        });
        tokio::spawn(write_batches(store, shared.clone()));
        ActivityLog { shared }
    }

    /// Queues one record; never blocks on I/O.
    pub fn record(
        &self,
        principal: &Principal,
        method: &axum::http::Method,
        path: &str,
        status: u16,
        user_agent: &str,
    ) {
        let draft = Draft {
            user_id: principal.user.id.clone(),
            realm_id: principal.realm_id.clone(),
            method: method.clone(),
            path: path.to_owned(),
            status,
            ip: principal.ip,
            user_agent: truncate(user_agent, 512).to_owned(),
            token_id: principal.token().map(|t| t.id.clone()),
            at: time::OffsetDateTime::now_utc(),
        };
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= QUEUE {
            drop(queue);
            tracing::warn!("activity queue full; record dropped");
            return;
        }
        queue.push(draft);
        let wake = queue.len() == BATCH;
        drop(queue);
        if wake {
            self.shared.full.notify_one();
        }
    }
}

/// The longest prefix of `s` of at most `max` characters.
fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn finish(d: Draft) -> Activity {
    Activity {
        id: new_id(),
        user_id: d.user_id,
        realm_id: d.realm_id,
        method: d.method.as_str().to_owned(),
        path: d.path,
        status_code: d.status,
        ip_address: d.ip.to_string(),
        user_agent: d.user_agent,
        token_id: d.token_id,
        created_at: format_time(d.at),
    }
}

/// Stores a batch as chunks: per user, in queue (so time) order.
fn write(store: &Store, drafts: Vec<Draft>) -> StoreResult<()> {
    let mut by_user: HashMap<String, Vec<Vec<Activity>>> = HashMap::new();
    for record in drafts.into_iter().map(finish) {
        let chunks = by_user.entry(record.user_id.clone()).or_default();
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(record),
            _ => chunks.push(vec![record]),
        }
    }
    for (user_id, chunks) in &by_user {
        for chunk in chunks {
            if let Some(newest) = chunk.last() {
                store.put_in_group(&ACTIVITY, user_id, &newest.id, chunk)?;
            }
        }
    }
    Ok(())
}

async fn write_batches(store: Store, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.full.notified() => {}
        }
        let drafts = {
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *queue, Vec::with_capacity(BATCH))
        };
        if drafts.is_empty() {
            continue;
        }
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || write(&store, drafts)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record activity"),
            Err(e) => tracing::warn!(error = %e, "activity writer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(user: &str, path: &str) -> Draft {
        Draft {
            user_id: user.into(),
            realm_id: None,
            method: axum::http::Method::GET,
            path: path.into(),
            status: 200,
            ip: IpAddr::from([127, 0, 0, 1]),
            user_agent: String::new(),
            token_id: None,
            at: time::OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn a_batch_is_stored_as_one_chunk_per_user_in_order() {
        let store = Store::temporary().unwrap();
        let mut drafts: Vec<Draft> = (0..CHUNK + 2)
            .map(|i| draft("u1", &format!("/{i}")))
            .collect();
        drafts.insert(1, draft("u2", "/only"));
        write(&store, drafts).unwrap();

        let u1 = store.group(&ACTIVITY, "u1").unwrap();
        assert_eq!(u1.iter().map(Vec::len).collect::<Vec<_>>(), [CHUNK, 2]);
        let paths: Vec<&str> = u1.iter().flatten().map(|a| a.path.as_str()).collect();
        let expected: Vec<String> = (0..CHUNK + 2).map(|i| format!("/{i}")).collect();
        assert_eq!(paths, expected);
        // Each chunk sits under the id of its newest record.
        let ids: Vec<&str> = u1.iter().flatten().map(|a| a.id.as_str()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let u2 = store.group(&ACTIVITY, "u2").unwrap();
        assert_eq!(u2.len(), 1);
        assert_eq!(u2[0][0].path, "/only");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
