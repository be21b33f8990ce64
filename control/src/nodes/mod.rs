//! Remote data-plane nodes: their tokens, the config stream they follow,
//! their acknowledgements and the module bytes they fetch.
//!
//! A node authenticates with a node token (`hdyn_…`, made by
//! `hoody-api admin create-node-token`), never with a user credential, so
//! its routes sit outside the user pipeline (no user auth, no user rate
//! limit). The stream speaks the wire format of `dataplane::feed`.

pub mod model;
pub mod registry;
pub mod routes;
pub mod service;
