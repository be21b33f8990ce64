//! Projects: the unit that groups a user's containers, shared with other
//! users at a permission level (read, edit, delete).

pub mod model;
pub mod routes;
pub mod service;
