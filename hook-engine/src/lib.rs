//! The proxy-wasm host that runs tenants' hooks.

pub mod cli;
