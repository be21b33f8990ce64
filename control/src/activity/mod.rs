//! The activity log (`activity.*`).

pub mod model;
pub mod recorder;
pub mod routes;
pub mod service;
