//! The data plane: a reverse proxy for container traffic.

pub mod cli;
