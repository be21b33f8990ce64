//! Header injection: tags each request with `x-hook: <config or "hooks-sdk">` and the
//! client address, and each response with `x-hook-response`.

use hooks_sdk::{Action, Hook, Request, Response};

struct AddHeader {
    tag: String,
}

impl Hook for AddHeader {
    fn on_configure(&mut self, config: &str) -> bool {
        if !config.is_empty() {
            self.tag = config.to_string();
        }
        true
    }

    fn on_request(&mut self, req: &mut Request) -> Action {
        let _ = req.set_header("x-hook", &self.tag);
        if let Some(source) = req.property_text("source.address") {
            let _ = req.set_header("x-client", &source);
        }
        hooks_sdk::log!("tagged {} {}", req.method(), req.path());
        Action::Continue
    }

    fn on_response(&mut self, resp: &mut Response) -> Action {
        let _ = resp.set_header("x-hook-response", &self.tag);
        Action::Continue
    }
}

hooks_sdk::register_hook!(AddHeader {
    tag: String::from("hooks-sdk"),
});
