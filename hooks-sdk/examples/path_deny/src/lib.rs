//! Path deny: the configuration is a comma-separated list of path prefixes (default
//! `/admin`); matching requests get a 403 from the hook, others pass untouched.

use hooks_sdk::{Action, Request};

fn on_request(req: &mut Request) -> Action {
    let config = req.config();
    let prefixes: Vec<&str> = if config.trim().is_empty() {
        vec!["/admin"]
    } else {
        config.split(',').map(str::trim).filter(|p| !p.is_empty()).collect()
    };
    let path = req.path();
    if prefixes.iter().any(|prefix| path.starts_with(prefix)) {
        hooks_sdk::log!("denied {}", path);
        return Action::respond(403, "forbidden by hook\n");
    }
    Action::Continue
}

hooks_sdk::on_request!(on_request);
