//! Write hoody-api hooks in Rust: a small, dependency-free SDK for the proxy-wasm ABI
//! v0.2.1 guest side, so the same module also runs in Envoy.
//!
//! ```ignore
//! use hooks_sdk::{Action, Request};
//!
//! fn on_request(req: &mut Request) -> Action {
//!     if req.path().starts_with("/admin") {
//!         return Action::respond(403, "forbidden\n");
//!     }
//!     req.set_header("x-hello", "world");
//!     Action::Continue
//! }
//!
//! hooks_sdk::on_request!(on_request);
//! ```
//!
//! Build with `cargo build --target wasm32-wasi --release` (or `wasm32-unknown-unknown`)
//! and a `cdylib` crate type. For state across requests implement [`Hook`] and register
//! it with [`register_hook!`]. Builds with rustc 1.63.

mod codec;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod dispatch;
mod ffi;
mod heap;
pub mod host;

pub use heap::SizeClasses;

/// The guest's allocator (see [`SizeClasses`]); turn the default features off to
/// bring another.
#[cfg(all(target_arch = "wasm32", feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: SizeClasses = SizeClasses::new();

pub use codec::{base64url_decode, json_escape, json_field, jwt_claims};
pub use host::{HostError, Level};

/// What the hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward the request (or response), with any edits made.
    Continue,
    /// Answer the client directly.
    Respond(Reply),
}

impl Action {
    /// A plain-text local response.
    pub fn respond(status: u16, body: &str) -> Action {
        Action::Respond(
            Reply::new(status)
                .header("content-type", "text/plain")
                .body(body),
        )
    }

    /// A JSON local response; `json` must already be JSON.
    pub fn json(status: u16, json: &str) -> Action {
        Action::Respond(
            Reply::new(status)
                .header("content-type", "application/json")
                .body(json),
        )
    }
}

/// A local response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.as_bytes().to_vec();
        self
    }
}

/// The request being filtered. Reads and edits go straight to the host.
#[derive(Debug, Default)]
pub struct Request {
    _private: (),
}

impl Request {
    #[doc(hidden)]
    pub fn new() -> Request {
        Request { _private: () }
    }

    pub fn method(&self) -> String {
        self.header(":method").unwrap_or_default()
    }

    /// Path and query.
    pub fn path(&self) -> String {
        self.header(":path").unwrap_or_default()
    }

    pub fn host(&self) -> String {
        self.header(":authority").unwrap_or_default()
    }

    /// A header as text (lossy), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        host::header(host::Map::RequestHeaders, &name.to_ascii_lowercase()).map(text)
    }

    /// All headers, pseudo-headers (`:path`...) included.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        host::headers(host::Map::RequestHeaders)
    }

    /// Sets a header, replacing existing values.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        host::set_header(host::Map::RequestHeaders, name, value.as_bytes())
    }

    /// Adds a header value, keeping existing ones.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        host::add_header(host::Map::RequestHeaders, name, value.as_bytes())
    }

    pub fn remove_header(&mut self, name: &str) -> Result<(), HostError> {
        host::remove_header(host::Map::RequestHeaders, name)
    }

    /// Rewrites the path (and query) forwarded upstream.
    pub fn set_path(&mut self, path: &str) -> Result<(), HostError> {
        host::set_header(host::Map::RequestHeaders, ":path", path.as_bytes())
    }

    /// A property by Envoy attribute name (`source.address`, `hoody.matched_group`...).
    pub fn property(&self, path: &str) -> Option<Vec<u8>> {
        host::property(path)
    }

    /// A property as text (lossy), e.g. `property_text("source.address")`.
    pub fn property_text(&self, path: &str) -> Option<String> {
        host::property(path).map(text)
    }

    /// The hook's configuration (`script.config`).
    pub fn config(&self) -> String {
        config()
    }
}

/// The upstream response being filtered.
#[derive(Debug, Default)]
pub struct Response {
    _private: (),
}

impl Response {
    #[doc(hidden)]
    pub fn new() -> Response {
        Response { _private: () }
    }

    pub fn status(&self) -> u16 {
        self.header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        host::header(host::Map::ResponseHeaders, &name.to_ascii_lowercase()).map(text)
    }

    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        host::set_header(host::Map::ResponseHeaders, name, value.as_bytes())
    }

    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        host::add_header(host::Map::ResponseHeaders, name, value.as_bytes())
    }

    pub fn remove_header(&mut self, name: &str) -> Result<(), HostError> {
        host::remove_header(host::Map::ResponseHeaders, name)
    }
}

/// A hook with state that lives as long as its instance (across requests).
pub trait Hook {
    /// Called once with `script.config`; returning false refuses the configuration.
    fn on_configure(&mut self, _config: &str) -> bool {
        true
    }

    fn on_request(&mut self, _req: &mut Request) -> Action {
        Action::Continue
    }

    fn on_response(&mut self, _resp: &mut Response) -> Action {
        Action::Continue
    }
}

/// The configuration the instance was started with.
pub fn config() -> String {
    text(host::plugin_config())
}

/// Bytes from the host as text: moved into the string when they are UTF-8, as
/// they nearly always are (no copy); with replacement characters otherwise.
fn text(bytes: Vec<u8>) -> String {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8. (Checking ASCII first is a fraction of the cost
        // of full validation on the short values hooks read.)
        return unsafe { String::from_utf8_unchecked(bytes) };
    }
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

/// Logs at info level to the hook log (nothing when the host drops info lines).
pub fn log(message: &str) {
    if log_enabled(Level::Info) {
        host::log(Level::Info, message)
    }
}

/// The host's log level, asked once per instance when it is configured: hosts keep
/// it for the life of a plugin, and asking on every line would cost a host call.
static LOG_LEVEL: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Whether the host keeps lines of `level`; [`log!`] checks it before formatting.
pub fn log_enabled(level: Level) -> bool {
    level as u32 >= LOG_LEVEL.load(core::sync::atomic::Ordering::Relaxed)
}

/// Asks the host for its log level again (done at `proxy_on_configure`).
pub fn refresh_log_level() {
    LOG_LEVEL.store(
        host::log_level() as u32,
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// `log!("tagged {}", path)`: formats and logs at info level, only when the host
/// keeps info lines, so a hook pays nothing for logging the host would drop.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        if $crate::log_enabled($crate::Level::Info) {
            $crate::host::log($crate::Level::Info, &format!($($arg)*));
        }
    };
}

/// Shared data across all instances of the container's hooks.
pub mod shared {
    pub use crate::host::{shared_get as get, shared_set as set};

    /// Adds `delta` to a decimal counter stored under `key`, retrying on CAS conflicts,
    /// and returns the new value.
    pub fn increment(key: &str, delta: i64) -> Result<i64, crate::HostError> {
        for _ in 0..16 {
            let (current, cas) = match get(key) {
                Some((bytes, cas)) => (parse_counter(&bytes), Some(cas)),
                None => (0, None),
            };
            let next = current.saturating_add(delta);
            match set(key, next.to_string().as_bytes(), cas) {
                Ok(()) => return Ok(next),
                Err(crate::HostError::CasMismatch) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(crate::HostError::CasMismatch)
    }

    fn parse_counter(bytes: &[u8]) -> i64 {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Registers a [`Hook`] value (an expression evaluated once per instance).
#[macro_export]
macro_rules! register_hook {
    ($hook:expr) => {
        #[no_mangle]
        pub fn __hooks_sdk_create_hook() -> ::std::boxed::Box<dyn $crate::Hook> {
            ::std::boxed::Box::new($hook)
        }
    };
}

/// Registers a plain `fn(&mut Request) -> Action` as the whole hook.
#[macro_export]
macro_rules! on_request {
    ($handler:path) => {
        struct __HooksSdkRequestFn;
        impl $crate::Hook for __HooksSdkRequestFn {
            fn on_request(&mut self, req: &mut $crate::Request) -> $crate::Action {
                $handler(req)
            }
        }
        $crate::register_hook!(__HooksSdkRequestFn);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_paths_are_nul_separated() {
        assert_eq!(
            crate::host::property_path("source.address"),
            b"source\0address\0"
        );
        let deep = "a.".repeat(40);
        let encoded = crate::host::property_path(&deep);
        assert_eq!(encoded.len(), deep.len() + 1);
        assert!(encoded.iter().all(|b| *b == b'a' || *b == 0));
    }

    #[test]
    fn actions_build_replies() {
        let action = Action::json(200, "{}");
        match action {
            Action::Respond(reply) => {
                assert_eq!(reply.status, 200);
                assert_eq!(reply.headers[0].1, "application/json");
                assert_eq!(reply.body, b"{}".to_vec());
            }
            Action::Continue => panic!("expected a reply"),
        }
    }

    #[test]
    fn host_bytes_become_text_even_when_not_utf8() {
        assert_eq!(text(b"127.0.0.1:80".to_vec()), "127.0.0.1:80");
        assert_eq!(text(vec![b'a', 0xff, b'b']), "a\u{fffd}b");
        assert_eq!(text("é:1".as_bytes().to_vec()), "é:1");
    }

    #[test]
    fn host_calls_fail_softly_off_wasm() {
        let req = Request::new();
        assert_eq!(req.path(), "");
        assert!(shared::get("k").is_none());
    }
}
