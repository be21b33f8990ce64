//! JSON responder: answers `GET /hook/info` itself with a JSON document describing the
//! request; every other request continues to the container.

use hooks_sdk::{json_escape, Action, Request};

fn on_request(req: &mut Request) -> Action {
    if req.path() != "/hook/info" {
        return Action::Continue;
    }
    let group = req.property_text("hoody.matched_group").unwrap_or_default();
    let body = format!(
        "{{\"method\":\"{}\",\"host\":\"{}\",\"user_agent\":\"{}\",\"group\":\"{}\",\"now_ns\":{}}}",
        json_escape(&req.method()),
        json_escape(&req.host()),
        json_escape(&req.header("user-agent").unwrap_or_default()),
        json_escape(&group),
        hooks_sdk::host::now_nanos()
    );
    Action::json(200, &body)
}

hooks_sdk::on_request!(on_request);
