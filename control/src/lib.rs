//! The control plane: the REST API under `/api/v1`, its store and services.
//!
//! Layout: one module per resource group (`auth`, `users`, `tokens`,
//! `events`, `activity`, `meta`), each with `routes.rs` (HTTP), rules in
//! `service.rs` and records in `model.rs`; cross-cutting pieces are
//! `store` (sled), `wire` (envelope, extractors, validation), `error`
//! (the one mapping of failures to HTTP), `app` (router and middleware),
//! `server` (listeners and shutdown) and `admin` (the admin socket).

pub mod activity;
pub mod admin;
pub mod aliases;
pub mod app;
pub mod auth;
pub mod cli;
pub mod containers;
pub mod error;
pub mod events;
pub mod keys;
pub mod mail;
pub mod meta;
pub mod modules;
pub mod nodes;
pub mod openapi;
pub mod projects;
pub mod proxy;
pub mod publish;
pub mod ratelimit;
pub mod server;
pub mod servers;
pub mod settings;
pub mod state;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tokens;
pub mod users;
pub mod wire;
