//! API tokens (`authTokens.*`).

pub mod model;
pub mod routes;
pub mod secret;
pub mod service;
