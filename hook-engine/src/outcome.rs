//! The types the proxy exchanges with the engine per request: independent of hyper so the
//! engine builds and tests without the data plane.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::abi::{Header, LogLevel};
use crate::compile::CompiledModule;
use crate::edits::HeaderEdits;
use crate::headers::HeaderList;

/// One hook as the proxy document places it (issue 5): which module, its configuration,
/// its timeout and what to do when it fails.
#[derive(Clone)]
pub struct HookSpec {
    /// Reported to the guest as `plugin_name`, and used in metrics and logs.
    pub name: String,
    /// Reported as `plugin_root_id`.
    pub root_id: String,
    pub module: Arc<CompiledModule>,
    /// `script.config`, handed to `proxy_on_configure`.
    pub config: Vec<u8>,
    /// Budget for each phase (request or response), instance start-up included.
    pub timeout: Duration,
    /// A new instance per request instead of a pooled one.
    pub fresh_instance: bool,
    /// Pooled requests share one instance per thread, each in its own HTTP context
    /// (Envoy's model: the instance count follows the threads, not the requests in
    /// flight). Only for calls that never block their thread for long: requests on
    /// one instance take turns. Off, each request in flight has an instance to itself
    /// (for hooks run on a blocking pool).
    pub shared_instance: bool,
    pub policy: FailurePolicy,
    /// The pool key of the last container this spec ran for, shared by clones
    /// (checked against the fields on every use: a clone edited later, or another
    /// container, gets a key of its own).
    pub(crate) pool_key: Arc<std::sync::OnceLock<crate::pool::PoolKey>>,
}

impl HookSpec {
    /// A spec with the defaults of the proxy document: 1 s timeout, pooled in
    /// shared instances, fail-closed.
    pub fn new(name: impl Into<String>, module: Arc<CompiledModule>) -> Self {
        let name = name.into();
        Self {
            root_id: name.clone(),
            name,
            module,
            config: Vec::new(),
            timeout: Duration::from_secs(1),
            fresh_instance: false,
            shared_instance: true,
            policy: FailurePolicy::FailClosed,
            pool_key: Arc::default(),
        }
    }
}

/// What happens to the request when a hook fails (trap, timeout, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Answer with an error response (504 on timeout, 502 otherwise).
    #[default]
    FailClosed,
    /// Forward the request as if no hook had run.
    FailOpen,
}

/// Who asks: facts about the connection and the route that the request headers do not
/// carry, exposed to guests as properties.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Namespaces pools, shared data and metrics so tenants never see each other's.
    /// Shared, as the proxy hands the same one to every request of the container.
    pub container_id: Arc<str>,
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    /// The access group that let the request in (`hoody.matched_group`).
    pub matched_group: Option<String>,
    /// `request.id`; when `None`, the request's `x-request-id` header answers.
    pub request_id: Option<String>,
}

/// The request as the hook sees and edits it. Header names are lowercase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestParts {
    pub method: String,
    /// Path and query, as in `:path`.
    pub path: String,
    pub authority: String,
    pub scheme: String,
    /// Regular headers (pseudo-headers come from the fields above).
    pub headers: HeaderList,
    /// A buffered body, when the proxy buffered one (bounded by the engine's limit).
    pub body: Option<Vec<u8>>,
    pub trailers: HeaderList,
}

impl RequestParts {
    /// A bodiless request, e.g. `RequestParts::new("GET", "/", "example.test")`.
    pub fn new(method: &str, path: &str, authority: &str) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_string(),
            authority: authority.to_string(),
            scheme: "http".to_string(),
            ..Self::default()
        }
    }

    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name.as_bytes())
    }

    /// Replaces every field with this request's, keeping the allocations (a proxy
    /// that reuses one `RequestParts` per worker allocates nothing per request).
    pub fn reset(&mut self, method: &str, path: &str, authority: &str, scheme: &str) {
        for (field, value) in [
            (&mut self.method, method),
            (&mut self.path, path),
            (&mut self.authority, authority),
            (&mut self.scheme, scheme),
        ] {
            field.clear();
            field.push_str(value);
        }
        self.headers.clear();
        self.body = None;
        self.trailers.clear();
    }
}

/// A request's pseudo-headers borrowed from the proxy's own head: what
/// [`HookSession::on_request_lent`](crate::HookSession::on_request_lent) runs on
/// when the body streams past the hook, so nothing of the head is copied. The
/// guest's rewrites come back in [`Changes::rewrite`].
#[derive(Debug, Clone, Copy)]
pub struct RequestPseudo<'a> {
    pub method: &'a str,
    /// Path and query, as in `:path`.
    pub path: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
}

/// The upstream response as the hook sees and edits it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseParts {
    pub status: u16,
    /// Regular headers (`:status` comes from the field above).
    pub headers: HeaderList,
    pub body: Option<Vec<u8>>,
    pub trailers: HeaderList,
}

impl ResponseParts {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name.as_bytes())
    }

    /// Empties the parts for the response with this status, keeping the allocations.
    pub fn reset(&mut self, status: u16) {
        self.status = status;
        self.headers.clear();
        self.body = None;
        self.trailers.clear();
    }
}

/// A response produced by the hook (`send_local_response`) or by a fail-closed failure.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// What the hook changed. The parts' pseudo-headers, body and trailers are
/// already updated; their headers too when the phase ran on them rather than on
/// lent fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// The guest's writes to the regular headers, in order.
    pub headers: HeaderEdits,
    /// The request pseudo-headers the guest rewrote (request phase). Boxed: most
    /// phases rewrite none, and an outcome is moved several times on its way to
    /// the proxy.
    pub rewrite: Option<Box<Rewrite>>,
    /// The new `:status` (response phase) when the hook changed it.
    pub status: Option<u16>,
    pub body_replaced: bool,
}

/// Request pseudo-headers a guest rewrote; `None` for those it left alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewrite {
    pub path: Option<String>,
    pub method: Option<String>,
    pub authority: Option<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
            && self.rewrite.is_none()
            && self.status.is_none()
            && !self.body_replaced
    }

    /// The new `:path` when the hook rewrote it.
    pub fn path(&self) -> Option<&str> {
        self.rewrite.as_ref()?.path.as_deref()
    }

    pub fn method(&self) -> Option<&str> {
        self.rewrite.as_ref()?.method.as_deref()
    }

    pub fn authority(&self) -> Option<&str> {
        self.rewrite.as_ref()?.authority.as_deref()
    }
}

/// Why a hook failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The epoch deadline fired: the hook ran past its timeout.
    Timeout,
    /// The guest trapped (unreachable, out of bounds, stack overflow, out of memory...).
    Trap,
    /// The instance could not start (instantiation, `_start`, `proxy_on_vm_start` or
    /// `proxy_on_configure` refusing).
    Start,
    /// The buffered body exceeds the engine's limit.
    BodyTooLarge,
}

/// A failed hook: the reason, and the response fail-closed answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct HookFailure {
    pub kind: FailureKind,
    pub message: String,
    pub policy: FailurePolicy,
    /// 504 JSON on timeout, 502 JSON otherwise (413 for oversized bodies).
    pub response: LocalResponse,
}

/// The decision of one phase.
#[derive(Debug, Clone, PartialEq)]
pub enum HookOutcome {
    /// Forward the (possibly edited) request or response.
    Continue(Changes),
    /// Answer the client with this response instead of forwarding.
    LocalResponse(LocalResponse),
    /// The hook failed; with [`FailurePolicy::FailOpen`] forward the untouched parts,
    /// with [`FailurePolicy::FailClosed`] answer `failure.response`.
    Failed(HookFailure),
}

/// A line of the hook log: what the guest logged and what the host says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
}
