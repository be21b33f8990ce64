//! A hook written against the official `proxy-wasm` Rust SDK 0.2.1, unchanged from what
//! would run in Envoy: it tags every request with `x-proxy-wasm: <config>` and answers
//! `403` itself for paths under `/official-deny`.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(TagRoot { tag: String::from("official") })
    });
}}

struct TagRoot {
    tag: String,
}

impl Context for TagRoot {}

impl RootContext for TagRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Some(config) = self.get_plugin_configuration() {
            if let Ok(tag) = String::from_utf8(config) {
                if !tag.is_empty() {
                    self.tag = tag;
                }
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TagRequest {
            tag: self.tag.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct TagRequest {
    tag: String,
}

impl Context for TagRequest {}

impl HttpContext for TagRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if path.starts_with("/official-deny") {
            log::warn!("denied {}", path);
            self.send_http_response(403, vec![("x-denied-by", "proxy-wasm")], Some(b"denied\n"));
            return Action::Pause;
        }
        self.add_http_request_header("x-proxy-wasm", &self.tag);
        log::info!("tagged {}", path);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-proxy-wasm-response", Some(&self.tag));
        Action::Continue
    }
}
