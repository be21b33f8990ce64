//! JWT-claim routing: reads the `tier` claim of the bearer token (verified earlier by the
//! proxy's jwt group; this hook does not check signatures), rewrites the path to
//! `/<tier><path>` and exposes the subject as `x-user`. No token: 401.

use hooks_sdk::{json_field, jwt_claims, Action, Request};

fn on_request(req: &mut Request) -> Action {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_string));
    let claims = match token.as_deref().and_then(jwt_claims) {
        Some(claims) => claims,
        None => return Action::json(401, "{\"error\":\"bearer token required\"}"),
    };
    let tier = json_field(&claims, "tier").unwrap_or_else(|| String::from("free"));
    if !tier.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Action::json(400, "{\"error\":\"bad tier claim\"}");
    }
    if let Some(subject) = json_field(&claims, "sub") {
        let _ = req.set_header("x-user", &subject);
    }
    let path = req.path();
    let _ = req.set_path(&format!("/{}{}", tier, path));
    Action::Continue
}

hooks_sdk::on_request!(on_request);
