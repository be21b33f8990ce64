//! Service metadata (`meta.*`, `utilities.getIpInfo`, `realms.list`).

pub mod routes;
