//! Users (`users.*`, `/users/me`).

pub mod model;
pub mod routes;
pub mod service;
