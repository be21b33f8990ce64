//! Proxy configuration of containers and projects: proxy documents (groups,
//! permissions, default, hooks), settings, discovery, and the compiler that
//! turns records into data-plane units published through
//! [`crate::publish::Publisher`].

pub mod compile;
pub mod documents;
pub mod hooks;
pub mod routes;
pub mod service;
pub mod static_routes;
pub mod validate;
