//! Servers: the nodes that run containers. This issue only registers the
//! local node, every verified user's free-tier server.

pub mod model;
