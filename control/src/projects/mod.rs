//! Projects: the unit that groups a user's containers. This issue only
//! creates each user's default project; the projects API extends it.

pub mod model;
