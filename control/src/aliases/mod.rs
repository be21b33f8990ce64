//! `proxyAliases.*`: extra hostnames `{alias}.{node}.{base_domain}` that
//! point at one program/port of a container. Records in `model`, rules in
//! `service`, HTTP in `routes`; the config compiler
//! (`crate::proxy::compile`) puts them into the container's unit.

pub mod model;
pub mod routes;
pub mod service;
