//! The one door through which routing configuration leaves the control
//! plane. The config compiler hands every unit change to [`Publisher::publish`];
//! the publisher applies it to the embedded data plane before returning (so an
//! API write is enforced when its response goes out), remembers the unit for
//! snapshots, numbers the change, and fans it out to subscribed remote nodes.
//!
//! Versions here are the control plane's config version: they count published
//! changes and are what remote nodes acknowledge. A subscriber gets a snapshot
//! at version N and then every change numbered N+1, N+2, ... with no gap,
//! because both are taken under the same lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use dataplane::config::{ContainerUnit, Delta, Snapshot};
use dataplane::{ConfigError, DataPlane};
use tokio::sync::broadcast;

/// Changes buffered per slow subscriber before it must resynchronise.
const FEED_CAPACITY: usize = 4096;

/// One numbered change, as sent to remote nodes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Change {
    pub version: u64,
    pub delta: Delta,
}

/// A consistent starting point for a subscriber: the full snapshot at
/// `version` and a receiver yielding every later change in order.
pub struct Subscription {
    pub version: u64,
    pub snapshot: Snapshot,
    pub changes: broadcast::Receiver<Arc<Change>>,
}

pub struct Publisher {
    dataplane: DataPlane,
    state: Mutex<Published>,
    feed: broadcast::Sender<Arc<Change>>,
}

#[derive(Default)]
struct Published {
    version: u64,
    units: BTreeMap<String, ContainerUnit>,
}

impl Publisher {
    pub fn new(dataplane: DataPlane) -> Self {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        Self {
            dataplane,
            state: Mutex::new(Published::default()),
            feed,
        }
    }

    /// Applies `delta` to the embedded data plane and publishes it. When the
    /// data plane refuses the unit nothing is published and nothing changed.
    pub fn publish(&self, delta: Delta) -> Result<u64, ConfigError> {
        let mut state = self.lock();
        self.dataplane.apply(&delta)?;
        match &delta {
            Delta::Upsert { unit } => {
                state.units.insert(unit.id.clone(), unit.clone());
            }
            Delta::Remove { id } => {
                state.units.remove(id);
            }
        }
        state.version += 1;
        let change = Arc::new(Change {
            version: state.version,
            delta,
        });
        // No subscriber is not an error: remote nodes come and go.
        let _ = self.feed.send(change);
        Ok(state.version)
    }

    /// Replaces every unit (start-up compile) with those of `snapshot` the
    /// data plane accepts, each compiled once; returns the version and the
    /// refused units with why. Subscribers see the result as removals of
    /// vanished units followed by upserts, so they need no special case.
    pub fn publish_all(&self, snapshot: Snapshot) -> (u64, Vec<(ContainerUnit, ConfigError)>) {
        let mut state = self.lock();
        let (_, refused) = self.dataplane.routes().replace_all_accepting(&snapshot);
        let mut units: Vec<Option<ContainerUnit>> = snapshot.units.into_iter().map(Some).collect();
        let refused: Vec<(ContainerUnit, ConfigError)> = refused
            .into_iter()
            .filter_map(|(i, e)| Some((units.get_mut(i)?.take()?, e)))
            .collect();
        let incoming: BTreeMap<String, ContainerUnit> = units
            .into_iter()
            .flatten()
            .map(|u| (u.id.clone(), u))
            .collect();
        let gone: Vec<String> = state
            .units
            .keys()
            .filter(|id| !incoming.contains_key(*id))
            .cloned()
            .collect();
        let mut deltas: Vec<Delta> = gone.into_iter().map(|id| Delta::Remove { id }).collect();
        deltas.extend(
            incoming
                .values()
                .filter(|u| state.units.get(&u.id) != Some(*u))
                .map(|u| Delta::Upsert { unit: u.clone() }),
        );
        state.units = incoming;
        for delta in deltas {
            state.version += 1;
            let _ = self.feed.send(Arc::new(Change {
                version: state.version,
                delta,
            }));
        }
        (state.version, refused)
    }

    /// The current snapshot and a feed of every change after it.
    pub fn subscribe(&self) -> Subscription {
        let state = self.lock();
        Subscription {
            version: state.version,
            snapshot: Snapshot {
                units: state.units.values().cloned().collect(),
            },
            changes: self.feed.subscribe(),
        }
    }

    /// The last published config version.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// The unit currently published for `id`, if any.
    pub fn unit(&self, id: &str) -> Option<ContainerUnit> {
        self.lock().units.get(id).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, Published> {
        // A panic while holding the lock cannot leave `Published` half
        // updated (every update is two plain assignments), so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::config::Service;

    fn unit(id: &str, port: u32) -> ContainerUnit {
        ContainerUnit {
            id: id.into(),
            project: None,
            services: vec![Service {
                program: "http".into(),
                index: port,
                upstream: Some(format!("http://127.0.0.1:{port}")),
                hosts: vec![format!("{id}.test")],
            }],
            aliases: Vec::new(),
            proxy: None,
            firewall: Vec::new(),
            modules: Default::default(),
        }
    }

    #[test]
    fn subscriber_gets_the_snapshot_then_every_later_change_in_order() {
        let p = Publisher::new(DataPlane::new(Default::default()));
        p.publish(Delta::Upsert { unit: unit("a", 1) }).unwrap();
        let mut sub = p.subscribe();
        assert_eq!(sub.version, 1);
        assert_eq!(sub.snapshot.units.len(), 1);
        p.publish(Delta::Upsert { unit: unit("b", 2) }).unwrap();
        p.publish(Delta::Remove { id: "a".into() }).unwrap();
        let c = sub.changes.try_recv().unwrap();
        assert_eq!(c.version, 2);
        let c = sub.changes.try_recv().unwrap();
        assert_eq!(c.version, 3);
        assert_eq!(c.delta, Delta::Remove { id: "a".into() });
        assert!(p.unit("a").is_none());
        assert!(p.unit("b").is_some());
    }

    #[test]
    fn a_refused_unit_publishes_nothing() {
        let p = Publisher::new(DataPlane::new(Default::default()));
        let mut bad = unit("a", 1);
        bad.services[0].upstream = Some("not a url at all".into());
        let mut sub = p.subscribe();
        assert!(p.publish(Delta::Upsert { unit: bad }).is_err());
        assert_eq!(p.version(), 0);
        assert!(sub.changes.try_recv().is_err());
    }

    #[test]
    fn publish_all_turns_a_snapshot_into_removals_and_upserts() {
        let p = Publisher::new(DataPlane::new(Default::default()));
        p.publish(Delta::Upsert { unit: unit("a", 1) }).unwrap();
        p.publish(Delta::Upsert { unit: unit("b", 2) }).unwrap();
        let mut sub = p.subscribe();
        let (v, refused) = p.publish_all(Snapshot {
            units: vec![unit("b", 2), unit("c", 3)],
        });
        assert_eq!(v, 4);
        assert!(refused.is_empty());
        let first = sub.changes.try_recv().unwrap();
        assert_eq!(first.delta, Delta::Remove { id: "a".into() });
        let second = sub.changes.try_recv().unwrap();
        assert!(matches!(&second.delta, Delta::Upsert { unit } if unit.id == "c"));
        assert!(sub.changes.try_recv().is_err());
    }

    #[test]
    fn publish_all_leaves_out_refused_units_and_keeps_the_rest() {
        let p = Publisher::new(DataPlane::new(Default::default()));
        let mut bad = unit("bad", 2);
        bad.services[0].upstream = Some("not a url at all".into());
        let mut clash = unit("clash", 3);
        clash.services[0].hosts = vec!["a.test".into()];
        let (v, refused) = p.publish_all(Snapshot {
            units: vec![unit("a", 1), bad, clash, unit("c", 4)],
        });
        let ids: Vec<&str> = refused.iter().map(|(u, _)| u.id.as_str()).collect();
        assert_eq!(ids, ["bad", "clash"]);
        assert_eq!(v, 2, "one upsert per accepted unit");
        assert!(p.unit("a").is_some() && p.unit("c").is_some());
        assert!(p.unit("bad").is_none() && p.unit("clash").is_none());
        assert!(p.dataplane.routes().lookup("c.test").is_some());
        assert_eq!(
            p.dataplane
                .routes()
                .lookup("a.test")
                .map(|r| r.unit.to_string()),
            Some("a".to_string())
        );
    }
}
