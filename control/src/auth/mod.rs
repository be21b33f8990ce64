//! Accounts and sessions: signup, email verification, password reset,
//! login, refresh, logout, identity claims (`authentication.*`).

pub mod cache;
pub mod jwt;
pub mod model;
pub mod password;
pub mod permission;
pub mod principal;
pub mod routes;
pub mod service;
pub mod session;
