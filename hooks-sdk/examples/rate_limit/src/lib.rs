//! Rate-limit counter: counts requests per client address in shared data (visible to all
//! instances of the container's hooks, updated with compare-and-swap) and answers 429
//! once a client passes the limit given as configuration (default 3). A real limiter
//! would reset the window with time; the counter shows the shared-data mechanics.

use hooks_sdk::{shared, Action, Request};

fn on_request(req: &mut Request) -> Action {
    let limit: i64 = req.config().trim().parse().unwrap_or(3);
    let client = req.property_text("source.address").unwrap_or_default();
    let client = client.rsplit_once(':').map_or(client.as_str(), |(ip, _)| ip).to_string();
    let count = match shared::increment(&format!("ratelimit:{}", client), 1) {
        Ok(count) => count,
        Err(_) => return Action::json(503, "{\"error\":\"counter unavailable\"}"),
    };
    let _ = req.set_header("x-ratelimit-count", &count.to_string());
    if count > limit {
        return Action::Respond(
            hooks_sdk::Reply::new(429)
                .header("retry-after", "60")
                .body("too many requests\n"),
        );
    }
    Action::Continue
}

hooks_sdk::on_request!(on_request);
