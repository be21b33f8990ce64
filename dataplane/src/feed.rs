//! The wire format of the config feed between a control plane and its
//! remote data-plane nodes (see docs/dataplane.md, "Remote nodes").
//!
//! The control plane answers `GET /api/v1/nodes/config/stream` with one
//! JSON [`Frame`] per line (NDJSON over a chunked response): first a full
//! snapshot, then every published change with its version, and keep-alives
//! in between. The node acknowledges what it applied with an [`Ack`].
//!
//! This module holds only serde types and paths shared by both ends; the
//! server lives in `control::nodes`, the client in [`crate::remote`].

use serde::{Deserialize, Serialize};

use crate::config::{Delta, Snapshot};

/// The config stream; query `keepalive_ms` asks for the keep-alive period.
pub const STREAM_PATH: &str = "/api/v1/nodes/config/stream";
/// Where a node posts its [`Ack`].
pub const ACK_PATH: &str = "/api/v1/nodes/ack";
/// Module bytes by content address: `{MODULES_PATH}/{sha256}`.
pub const MODULES_PATH: &str = "/api/v1/nodes/modules";
/// Node tokens start with this, so they never look like a user credential.
pub const NODE_TOKEN_PREFIX: &str = "hdyn_";

/// One line of the stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// The whole routing state at `version`. Replaces whatever the node had:
    /// sent first on every connection and again whenever the node fell too
    /// far behind to be sent the changes it missed.
    Snapshot {
        /// Identifies one run of the control plane. Versions restart when
        /// it restarts, so a version is only comparable within one epoch.
        epoch: String,
        version: u64,
        /// Node-wide settings that come with every snapshot.
        #[serde(default)]
        settings: NodeSettings,
        snapshot: Snapshot,
    },
    /// One published change; `version` is always the previous one plus one.
    Change { version: u64, delta: Delta },
    /// Nothing changed; the connection is alive. Sent every keep-alive
    /// period, so a node that hears nothing for a few periods reconnects.
    Keepalive { version: u64 },
}

/// Settings of the control plane a node needs to judge requests the way
/// the embedded proxy does. They travel with every snapshot (a node
/// applies them together with it, and saves them with it), not as
/// changes: they only change when the control plane restarts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct NodeSettings {
    /// The public key (64 hex digits) that verifies owners' container
    /// claims (`containers.authorize`), so a claim passes on every node.
    /// Absent: the node keeps the key it had (`--owner-claim-key`, or one
    /// saved from an earlier snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_claim_key: Option<String>,
}

/// What a node reports after applying frames (`POST ACK_PATH`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Ack {
    /// The last version the node applied (and wrote to disk).
    pub version: u64,
    /// The epoch that version belongs to.
    #[serde(default)]
    pub epoch: String,
    /// Why the node could not apply a change, when it could not (a NACK);
    /// the node keeps serving what it had for that unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_carry_settings_and_older_ones_without_them_still_parse() {
        let old: Frame = serde_json::from_str(
            r#"{"type":"snapshot","epoch":"e","version":1,"snapshot":{"units":[]}}"#,
        )
        .unwrap();
        assert!(
            matches!(old, Frame::Snapshot { settings, .. } if settings == NodeSettings::default())
        );
        let f = Frame::Snapshot {
            epoch: "e".into(),
            version: 2,
            settings: NodeSettings {
                owner_claim_key: Some("ab".repeat(32)),
            },
            snapshot: Snapshot::default(),
        };
        let back: Frame = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn frames_are_tagged_by_type() {
        let f = Frame::Keepalive { version: 7 };
        let j = serde_json::to_string(&f).unwrap();
        assert_eq!(j, r#"{"type":"keepalive","version":7}"#);
        let c: Frame = serde_json::from_str(
            r#"{"type":"change","version":3,"delta":{"op":"remove","id":"a"}}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            Frame::Change {
                version: 3,
                delta: Delta::Remove { id: "a".into() }
            }
        );
    }
}
