//! API tokens (`authTokens.*`).

pub mod expiry;
pub mod input;
pub mod model;
pub mod routes;
pub mod secret;
pub mod service;
pub mod templates;
pub mod view;
