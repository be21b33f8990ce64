//! What the control plane knows about its remote nodes right now: open
//! streams, the last version each acknowledged, when it was last heard
//! from. Kept in memory (it describes connections, which do not survive a
//! restart); shown by `hoody-api admin list-node-tokens` and on `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::watch;

use dataplane::feed::Ack;

use super::model::NodeToken;

/// One node's live status.
#[derive(Serialize, Clone, Debug, Default)]
pub struct NodeStatus {
    pub id: String,
    pub name: String,
    /// Config streams the node holds open (normally 0 or 1).
    pub streams: u32,
    /// The last version the node acknowledged in this control plane's
    /// epoch; `None` until it acknowledges one.
    pub acked_version: Option<u64>,
    /// Why the node refused its last change, if it did.
    pub last_error: Option<String>,
    /// When the node last connected or acknowledged (RFC 3339).
    pub last_seen: Option<String>,
    /// The address its last stream came from.
    pub address: Option<String>,
    #[serde(skip)]
    last_seen_at: Option<Instant>,
}

pub struct NodeRegistry {
    /// Names this run of the control plane; versions restart with it.
    epoch: String,
    nodes: Mutex<BTreeMap<String, NodeStatus>>,
    stopping: watch::Sender<bool>,
}

impl Default for NodeRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeRegistry {
    pub fn new() -> Self {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        Self {
            epoch: hex::encode(bytes),
            nodes: Mutex::new(BTreeMap::new()),
            stopping: watch::channel(false).0,
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, NodeStatus>> {
        // Every update is a handful of plain assignments: a panic cannot
        // leave an entry half written.
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch<'a>(
        nodes: &'a mut BTreeMap<String, NodeStatus>,
        node: &NodeToken,
    ) -> &'a mut NodeStatus {
        let status = nodes.entry(node.id.clone()).or_insert_with(|| NodeStatus {
            id: node.id.clone(),
            name: node.name.clone(),
            ..NodeStatus::default()
        });
        status.last_seen = Some(crate::wire::now());
        status.last_seen_at = Some(Instant::now());
        status
    }

    /// Records an open stream; the guard records its end when dropped.
    pub fn connected(&self, node: &NodeToken, address: Option<String>) -> StreamGuard<'_> {
        let mut nodes = self.lock();
        let status = Self::touch(&mut nodes, node);
        status.streams += 1;
        status.address = address;
        StreamGuard {
            registry: self,
            id: node.id.clone(),
        }
    }

    /// Records an acknowledgement. One from an older epoch (sent just
    /// before this control plane restarted) says nothing about this run's
    /// versions, so only the sighting counts.
    pub fn acked(&self, node: &NodeToken, ack: &Ack) {
        let mut nodes = self.lock();
        let status = Self::touch(&mut nodes, node);
        if ack.epoch == self.epoch {
            status.acked_version = Some(ack.version);
            status.last_error = ack.error.clone();
        }
    }

    /// Forgets a node whose token was revoked.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn status(&self, id: &str) -> Option<NodeStatus> {
        self.lock().get(id).cloned()
    }

    /// Tells every open stream to end (server shutdown), so graceful
    /// shutdown does not wait on responses that never finish.
    pub fn close_all(&self) {
        self.stopping.send_replace(true);
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Prometheus series per node, labelled by name and token id.
    pub fn render_metrics(&self, published: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP hoody_config_published_version Config version the control plane has published.\n");
        out.push_str("# TYPE hoody_config_published_version gauge\n");
        out.push_str(&format!("hoody_config_published_version {published}\n"));
        let nodes = self.lock();
        let series: [Series; 4] = [
            (
                "hoody_node_connected",
                "Whether the node holds a config stream open.",
                |s, _| Some(f64::from(u8::from(s.streams > 0))),
            ),
            (
                "hoody_node_acked_version",
                "Last config version the node acknowledged.",
                |s, _| s.acked_version.map(|v| v as f64),
            ),
            (
                "hoody_node_lag_versions",
                "Published versions the node has not acknowledged.",
                |s, p| s.acked_version.map(|v| p.saturating_sub(v) as f64),
            ),
            (
                "hoody_node_last_seen_seconds",
                "Seconds since the node last connected or acknowledged.",
                |s, _| s.last_seen_at.map(|t| t.elapsed().as_secs_f64()),
            ),
        ];
        for (name, help, value) in series {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for s in nodes.values() {
                if let Some(v) = value(s, published) {
                    out.push_str(&format!(
                        "{name}{{node=\"{}\",id=\"{}\"}} {v}\n",
                        s.name, s.id
                    ));
                }
            }
        }
        out
    }
}

/// An open config stream; dropping it records that the stream ended.
pub struct StreamGuard<'a> {
    registry: &'a NodeRegistry,
    id: String,
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.registry.lock().get_mut(&self.id) {
            s.streams = s.streams.saturating_sub(1);
        }
    }
}

/// A per-node metric: name, help text, and its value given the node and
/// the published version.
type Series = (
    &'static str,
    &'static str,
    fn(&NodeStatus, u64) -> Option<f64>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str) -> NodeToken {
        NodeToken {
            id: id.into(),
            name: format!("n-{id}"),
            prefix: String::new(),
            token_hash: String::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn tracks_streams_and_acks_of_this_epoch_only() {
        let r = NodeRegistry::new();
        let n = token("a");
        {
            let _g = r.connected(&n, None);
            assert_eq!(r.status("a").unwrap().streams, 1);
            r.acked(
                &n,
                &Ack {
                    version: 3,
                    epoch: "old".into(),
                    error: None,
                },
            );
            assert_eq!(r.status("a").unwrap().acked_version, None);
            r.acked(
                &n,
                &Ack {
                    version: 3,
                    epoch: r.epoch().into(),
                    error: None,
                },
            );
        }
        let s = r.status("a").unwrap();
        assert_eq!((s.streams, s.acked_version), (0, Some(3)));
        let text = r.render_metrics(5);
        assert!(text.contains("hoody_node_acked_version{node=\"n-a\",id=\"a\"} 3"));
        assert!(text.contains("hoody_node_lag_versions{node=\"n-a\",id=\"a\"} 2"));
        assert!(text.contains("hoody_node_connected{node=\"n-a\",id=\"a\"} 0"));
    }
}
