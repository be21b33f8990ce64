//! Events (`events.*`): the record of every mutation.

pub mod model;
pub mod routes;
pub mod service;
