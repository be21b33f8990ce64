//! The control plane: the REST API under `/api/v1`, its store and services.

pub mod cli;
