//! Containers: records in the store, run by the `runtime` crate. Projects
//! scope them; `service` holds the lifecycle, the other modules one feature
//! each (`env`, `firewall`, `network`, `snapshots`, `stats`, `shares`).
//! HTTP handlers live in `routes` (`share_routes` for storage shares).

pub mod env;
pub mod firewall;
pub mod locks;
pub mod model;
pub mod network;
pub mod routes;
pub mod service;
pub mod share_routes;
pub mod shares;
pub mod snapshots;
pub mod stats;
