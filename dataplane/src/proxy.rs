//! The life of a proxied request, phase by phase, in one place:
//!
//! 0. (HTTP/1) the head was parsed and its framing judged by our server
//!    (`downstream`); a refused head is answered by [`refused`]
//! 1. `check_request`  — framing and Host sanity (400 before anything else)
//! 2. route            — host → `Arc<Route>` (404 / 503)
//! 3. `gate`           — firewall → enable_proxy → authn → authz
//! 4. `rewrite_path`   — alias `target_path` / `allow_path_override`
//! 5. hooks, request phase — the first matching hook of the service (see
//!    `hooks`): edit, answer locally, or fail (fail-closed / fail-open)
//! 6. `upstream_request` — hop-by-hop headers out, forwarding headers in
//! 7. `forward`        — pooled connection, one retry on a fresh one when a
//!    stale pooled connection refused the request or (safe bodiless
//!    requests) died before answering, 502/504 on failure
//! 8. `upstream_response` — hop-by-hop headers out, streamed body, upgrades
//! 9. hooks, response phase — the same hook instance sees the response
//! 10. `finish`        — metrics and access log
//!
//! Errors are static JSON bodies in the API's error shape: nothing on this
//! path formats strings unless a header must be combined with a client value.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};

use crate::access_log::{AccessLogger, Entry};
use crate::config::Timeouts;
use crate::downstream::h1::Refusal;
use crate::fields::RawFields;
use crate::gate::{Decision, RequestFacts};
use crate::hooks::{self, HookHost, RequestStep, ResponseStep};
use crate::metrics::{UpstreamError, WorkerMetrics};
use crate::prefixed::Prefixed;
use crate::router::{LocalRoute, LocalRoutes, PathRule, Route};
use crate::sweep::Sweep;
use crate::upstream::h1::ResponseHead;
use crate::upstream::{self as up, BodyError, Pool, Progress, ReqBody, Return, UpstreamBody};

/// Per-worker state shared by all its connections.
pub struct Worker {
    pub routes: LocalRoutes,
    pub pool: Rc<Pool>,
    pub metrics: Arc<WorkerMetrics>,
    pub log: AccessLogger,
    pub timeouts: Timeouts,
    /// The worker's coarse clock and the deadlines it enforces.
    pub sweep: Sweep,
    pub hooks: Arc<HookHost>,
}

/// Per-connection state: the client address and header values derived from
/// it, computed once per connection instead of once per request.
pub struct ConnInfo {
    pub client: SocketAddr,
    xff: HeaderValue,
    forwarded: RefCell<Option<(Arc<Route>, HeaderValue)>>,
}

impl ConnInfo {
    pub fn new(client: SocketAddr) -> Self {
        let ip = client.ip().to_canonical();
        let xff = HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self {
            client,
            xff,
            forwarded: RefCell::new(None),
        }
    }

    /// `Forwarded: for=..;host=..;proto=http`, cached for the last route
    /// this connection used (keep-alive clients mostly hit one host).
    fn forwarded(&self, route: &Arc<Route>) -> HeaderValue {
        if let Some((r, v)) = &*self.forwarded.borrow() {
            if Arc::ptr_eq(r, route) {
                return v.clone();
            }
        }
        let ip = self.client.ip().to_canonical();
        let host = route.host_header.to_str().unwrap_or("");
        let text = if ip.is_ipv6() {
            format!("for=\"[{ip}]\";host={host};proto=http")
        } else {
            format!("for={ip};host={host};proto=http")
        };
        let value = HeaderValue::from_str(&text)
            .unwrap_or_else(|_| HeaderValue::from_static("for=unknown"));
        *self.forwarded.borrow_mut() = Some((route.clone(), value.clone()));
        value
    }
}

/// The answer that closes the connection without a response (firewall
/// `drop`).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by firewall")]
pub struct Dropped;

/// The response body: streamed from upstream, a local JSON answer, or (with
/// a `101`) the upstream socket the client's connection is to be spliced to.
pub enum ProxyBody {
    /// `fields`: the response's header fields as the upstream sent them, until
    /// something needs them in the response's map ([`materialize_headers`]);
    /// our HTTP/1 server writes them out as they are.
    Upstream {
        body: UpstreamBody,
        fields: Option<RawFields>,
    },
    Local(Option<Bytes>),
    Tunnel(Option<Prefixed>),
}

impl ProxyBody {
    /// The upstream's header fields not yet in the response's map.
    pub fn raw_fields(&self) -> Option<&RawFields> {
        match self {
            ProxyBody::Upstream { fields, .. } => fields.as_ref(),
            _ => None,
        }
    }

    /// The upstream side of the tunnel a `101` opens, once.
    pub fn take_tunnel(&mut self) -> Option<Prefixed> {
        match self {
            ProxyBody::Tunnel(t) => t.take(),
            _ => None,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
            ProxyBody::Local(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Tunnel(_) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Local(b) => b.is_none(),
            ProxyBody::Tunnel(_) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Local(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Tunnel(_) => SizeHint::with_exact(0),
        }
    }
}

/// A local answer with a static JSON body.
struct Local {
    status: StatusCode,
    body: &'static [u8],
    /// Close the connection after answering (framing may be unsafe).
    close: bool,
    basic: bool,
    error: &'static str,
}

macro_rules! err_body {
    ($status:literal, $code:literal, $msg:literal) => {
        concat!(
            "{\"statusCode\":",
            $status,
            ",\"message\":\"",
            $msg,
            "\",\"code\":\"",
            $code,
            "\"}"
        )
        .as_bytes()
    };
}

const fn local(status: StatusCode, body: &'static [u8], error: &'static str) -> Local {
    Local {
        status,
        body,
        close: false,
        basic: false,
        error,
    }
}

const BAD_REQUEST_FRAMING: Local = Local {
    close: true,
    ..local(
        StatusCode::BAD_REQUEST,
        err_body!(
            "400",
            "BAD_REQUEST",
            "Conflicting or invalid message framing"
        ),
        "framing",
    )
};
const BAD_REQUEST_HOST: Local = Local {
    close: true,
    ..local(
        StatusCode::BAD_REQUEST,
        err_body!(
            "400",
            "BAD_REQUEST",
            "Missing, duplicate or conflicting Host"
        ),
        "host",
    )
};
const URI_TOO_LONG: Local = Local {
    close: true,
    ..local(
        StatusCode::URI_TOO_LONG,
        err_body!("414", "URI_TOO_LONG", "The request line is too long"),
        "uri too long",
    )
};
const HEAD_TOO_LARGE: Local = Local {
    close: true,
    ..local(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        err_body!(
            "431",
            "HEADERS_TOO_LARGE",
            "The request headers are too large"
        ),
        "headers too large",
    )
};
const CONNECT_REFUSED: Local = Local {
    close: true,
    ..local(
        StatusCode::METHOD_NOT_ALLOWED,
        err_body!(
            "405",
            "METHOD_NOT_ALLOWED",
            "CONNECT is not served: this is a reverse proxy"
        ),
        "connect",
    )
};
const BAD_REQUEST_BODY: Local = Local {
    close: true,
    ..local(
        StatusCode::BAD_REQUEST,
        err_body!("400", "BAD_REQUEST", "The request body could not be read"),
        "client body",
    )
};
const NO_ROUTE: Local = local(
    StatusCode::NOT_FOUND,
    err_body!(
        "404",
        "ROUTE_NOT_FOUND",
        "No container is served at this host"
    ),
    "no route",
);
const PATH_NOT_ALLOWED: Local = local(
    StatusCode::NOT_FOUND,
    err_body!(
        "404",
        "PATH_NOT_ALLOWED",
        "This alias only serves its target path"
    ),
    "alias path",
);
const NOT_RUNNING: Local = local(
    StatusCode::SERVICE_UNAVAILABLE,
    err_body!(
        "503",
        "SERVICE_UNAVAILABLE",
        "The container service is not running"
    ),
    "not running",
);
const PROXY_DISABLED: Local = local(
    StatusCode::SERVICE_UNAVAILABLE,
    err_body!(
        "503",
        "PROXY_DISABLED",
        "The proxy is disabled for this container"
    ),
    "proxy disabled",
);
const UNAUTHORIZED: Local = local(
    StatusCode::UNAUTHORIZED,
    err_body!("401", "UNAUTHORIZED", "Credentials are required"),
    "unauthorized",
);
const FORBIDDEN: Local = local(
    StatusCode::FORBIDDEN,
    err_body!("403", "FORBIDDEN", "Access denied"),
    "forbidden",
);
const FIREWALL: Local = local(
    StatusCode::FORBIDDEN,
    err_body!(
        "403",
        "FIREWALL_REJECTED",
        "Rejected by the ingress firewall"
    ),
    "firewall",
);
const BAD_GATEWAY: Local = local(
    StatusCode::BAD_GATEWAY,
    err_body!("502", "BAD_GATEWAY", "The upstream could not be reached"),
    "upstream unreachable",
);
const GATEWAY_TIMEOUT: Local = local(
    StatusCode::GATEWAY_TIMEOUT,
    err_body!(
        "504",
        "GATEWAY_TIMEOUT",
        "The upstream did not answer in time"
    ),
    "upstream timeout",
);

/// What the log and metrics need about a request.
#[derive(Default)]
struct Outcome {
    route: Option<LocalRoute>,
    error: Option<&'static str>,
}

/// Entry point: one request on a worker.
pub async fn handle(
    w: Rc<Worker>,
    conn: Rc<ConnInfo>,
    req: Request<ReqBody>,
) -> Result<Response<ProxyBody>, Dropped> {
    let start = Instant::now();
    let logged = w.log.enabled().then(|| {
        (
            req.method().clone(),
            req.uri().clone(),
            req.version(),
            req.headers().get(header::HOST).cloned(),
        )
    });
    let mut outcome = Outcome::default();
    let result = proxy(&w, &conn, req, &mut outcome).await;
    let status = result.as_ref().map_or(0, |r| r.status().as_u16());
    finish(&w, &conn, &outcome, status, start, logged);
    result
}

async fn proxy(
    w: &Rc<Worker>,
    conn: &ConnInfo,
    mut req: Request<ReqBody>,
    outcome: &mut Outcome,
) -> Result<Response<ProxyBody>, Dropped> {
    // 1. framing and Host
    if let Err(l) = check_request(&req) {
        return Ok(answer(l, outcome));
    }
    // 2. route
    let route = match request_host(&req).map(|h| w.routes.lookup(h)) {
        Ok(Some(route)) => route,
        Ok(None) => return Ok(answer_after_body(NO_ROUTE, &req, outcome)),
        Err(l) => return Ok(answer(l, outcome)),
    };
    outcome.route = Some(route.clone());
    if route.kind == crate::router::RouteKind::Alias && !alias_active(&route) {
        return Ok(answer_after_body(NO_ROUTE, &req, outcome));
    }
    // 3. gate
    let mut group = None;
    if !route.gate.is_open() {
        match gate(&route, conn, &req)? {
            Ok(admitted_by) => group = admitted_by,
            Err(l) => return Ok(answer_after_body(l, &req, outcome)),
        }
    }
    let Some(addr) = route.upstream.as_ref().map(|u| u.addr) else {
        return Ok(answer_after_body(NOT_RUNNING, &req, outcome));
    };
    // 4. alias path
    if let Some(rule) = &route.path {
        if let Err(l) = rewrite_path(&mut req, rule) {
            return Ok(answer_after_body(l, &req, outcome));
        }
    }
    // 5. hooks, request phase
    let (mut hook_run, mut hook_added) = (None, None);
    if let Some(hook) = route.hooks.as_ref().and_then(|h| h.select(&req, group)) {
        let unread = req.version() <= Version::HTTP_11 && !req.body().is_end_stream();
        let caller = hooks::Caller {
            client: conn.client,
            group,
        };
        let step = if hook.runs_now() {
            hooks::request_phase_now(&w.hooks, hook, &w.metrics, caller, &mut req)
        } else {
            // Boxed: a hook phase that awaits keeps a whole session in its state, and
            // inline it would grow the future of every request, hooked or not.
            let buffered = |b| ReqBody::Buffered(Some(b));
            Box::pin(hooks::request_phase(
                &w.hooks, hook, &w.metrics, caller, &mut req, buffered,
            ))
            .await
        };
        match step {
            RequestStep::Forward { run, added } => (hook_run, hook_added) = (run, added),
            RequestStep::Answer(resp) => return Ok(hook_answer(resp, unread, outcome)),
        }
    }
    // 6. upstream request
    let client_upgrade = is_upgrade(&req);
    let hop = upstream_request(&mut req, conn, &route, client_upgrade);
    let fwd = up::h1::Forwarding {
        host: hop.host.as_ref(),
        client: &conn.xff,
        forwarded_host: &route.host_header,
        forwarded: &hop.forwarded,
        upgrade: hop.upgrade.as_ref(),
        added: hook_added.as_ref(),
    };
    // 7. forward
    let (head, up) = match forward(w, addr, req, &fwd).await {
        Ok(ok) => ok,
        Err(l) => return Ok(answer(l, outcome)),
    };
    // 8. response
    let resp = match upstream_response(w, addr, head, up, client_upgrade) {
        Ok(resp) => resp,
        Err(l) => return Ok(answer(l, outcome)),
    };
    // 9. hooks, response phase
    match hook_run {
        Some(run) if resp.status() != StatusCode::SWITCHING_PROTOCOLS => {
            let mut resp = resp;
            let mut raw = take_raw_fields(&mut resp);
            let step = if run.runs_now() {
                run.response_phase_now(&mut resp, &mut raw)
            } else {
                let buffered = |b| ProxyBody::Local(Some(b));
                Box::pin(run.response_phase(&w.hooks, &mut resp, &mut raw, buffered)).await
            };
            match step {
                ResponseStep::Send => {
                    restore_raw_fields(&mut resp, raw);
                    Ok(resp)
                }
                ResponseStep::Answer(local) => Ok(hook_answer(local, false, outcome)),
            }
        }
        _ => Ok(resp),
    }
}

/// A response a hook produced (its local response or a failure).
fn hook_answer(
    resp: Response<Bytes>,
    unread_body: bool,
    outcome: &mut Outcome,
) -> Response<ProxyBody> {
    outcome.error = Some("hook");
    let (mut parts, body) = resp.into_parts();
    if unread_body {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Response::from_parts(parts, ProxyBody::Local(Some(body)))
}

/// Phase 0: the answer to an HTTP/1 head our server refused (it closes the
/// connection after it), counted and logged like any request.
pub fn refused(w: &Worker, conn: &ConnInfo, refusal: Refusal) -> Response<ProxyBody> {
    let start = Instant::now();
    let local = match refusal {
        Refusal::Framing => BAD_REQUEST_FRAMING,
        Refusal::UriTooLong => URI_TOO_LONG,
        Refusal::HeadTooLarge => HEAD_TOO_LARGE,
    };
    let mut outcome = Outcome::default();
    let resp = answer(local, &mut outcome);
    finish(w, conn, &outcome, resp.status().as_u16(), start, None);
    if w.log.enabled() {
        w.log.log(&Entry {
            client: conn.client,
            method: "-",
            host: "",
            path: "-",
            version: Version::HTTP_11,
            status: resp.status().as_u16(),
            route_kind: "none",
            unit: "",
            duration: start.elapsed(),
            error: outcome.error,
        });
    }
    resp
}

/// Phase 1: framing. On HTTP/1 our server has already judged the head
/// (`downstream::h1`). Belt and braces: a request must not carry both
/// framings after any parser (HTTP/2 forbids Transfer-Encoding entirely).
fn check_request(req: &Request<ReqBody>) -> Result<(), Local> {
    if req.method() == Method::CONNECT {
        return Err(CONNECT_REFUSED);
    }
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING)
        && (h.contains_key(header::CONTENT_LENGTH) || req.version() >= Version::HTTP_2)
    {
        return Err(BAD_REQUEST_FRAMING);
    }
    Ok(())
}

/// The request's host: `:authority` (HTTP/2, absolute-form) or the single
/// `Host` header; both present must agree.
fn request_host(req: &Request<ReqBody>) -> Result<&str, Local> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(BAD_REQUEST_HOST);
    }
    let host = host
        .map(|h| h.to_str().map_err(|_| BAD_REQUEST_HOST))
        .transpose()?;
    match (req.uri().authority(), host) {
        (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(h) => Err(BAD_REQUEST_HOST),
        (Some(a), _) => Ok(a.as_str()),
        (None, Some(h)) if !h.is_empty() => Ok(h),
        _ => Err(BAD_REQUEST_HOST),
    }
}

fn alias_active(route: &Route) -> bool {
    route.enabled
        && route.expires_at.is_none_or(|t| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(true, |now| (now.as_secs() as i64) < t)
        })
}

/// Phase 3: admitted (by the named group, if one) or answered.
#[allow(clippy::type_complexity)]
fn gate<'r>(
    route: &'r Route,
    conn: &ConnInfo,
    req: &Request<ReqBody>,
) -> Result<Result<Option<&'r str>, Local>, Dropped> {
    let facts = RequestFacts {
        client: conn.client,
        headers: req.headers(),
        query: req.uri().query(),
    };
    let (decision, group) = route
        .gate
        .decide_with_group(&facts, &route.program, route.port);
    Ok(match decision {
        Decision::Allow => Ok(group),
        Decision::Unauthorized { basic } => Err(Local {
            basic,
            ..UNAUTHORIZED
        }),
        Decision::Forbidden => Err(FORBIDDEN),
        Decision::Disabled => Err(PROXY_DISABLED),
        Decision::FirewallReject => Err(FIREWALL),
        Decision::FirewallDrop => return Err(Dropped),
    })
}

/// Phase 4: `/x` → `{target_path}/x`; without override only `/` and the
/// target path itself are served.
fn rewrite_path(req: &mut Request<ReqBody>, rule: &PathRule) -> Result<(), Local> {
    let path = req.uri().path();
    if !rule.allow_override && path != "/" && path != rule.prefix {
        return Err(PATH_NOT_ALLOWED);
    }
    if rule.prefix.is_empty() {
        return Ok(());
    }
    let new_path = if path == "/" || path == rule.prefix {
        rule.prefix.clone()
    } else if path.starts_with(&rule.prefix)
        && path.as_bytes().get(rule.prefix.len()) == Some(&b'/')
    {
        path.to_string()
    } else {
        format!("{}{}", rule.prefix, path)
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    *req.uri_mut() = Uri::try_from(pq).map_err(|_| PATH_NOT_ALLOWED)?;
    Ok(())
}

/// Removes the hop-by-hop fields (`fields::is_hop_by_hop`) and those the
/// `Connection` field names.
fn remove_hop_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| crate::fields::connection_named(v.as_bytes()))
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| crate::fields::is_hop_by_hop(n.as_str().as_bytes()))
        .cloned()
        .collect();
    for n in hop {
        headers.remove(n);
    }
}

/// An upgrade to tunnel once the upstream agrees. `h2c` is never tunnelled:
/// the listener switches eligible h2c upgrade requests to HTTP/2 itself
/// (`h2c`); the others are answered in HTTP/1.1 (RFC 9110 §7.8).
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"h2c"))
        && req
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// What phase 6 leaves for the request head's encoder: this hop's values of
/// the forwarding fields (`upstream::h1::Forwarding`).
struct Hop {
    host: Option<HeaderValue>,
    forwarded: HeaderValue,
    upgrade: Option<HeaderValue>,
}

/// Phase 6: an origin-form HTTP/1.1 request without the fields that belong
/// to the client's connection or to the proxy (the owner's claim is a
/// credential for the proxy, not for the app); the forwarding fields are
/// written by the encoder ([`Hop`]).
fn upstream_request<B>(
    req: &mut Request<B>,
    conn: &ConnInfo,
    route: &Arc<Route>,
    upgrade: bool,
) -> Hop {
    let upgrade = if upgrade {
        req.headers().get(header::UPGRADE).cloned()
    } else {
        None
    };
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    let (mut hop, mut claim, mut host) = (false, false, false);
    for name in headers.keys() {
        hop |= crate::fields::is_hop_by_hop(name.as_str().as_bytes());
        claim |= name.as_str() == crate::gate::OWNER_CLAIM_HEADER;
        host |= *name == header::HOST;
    }
    if hop {
        remove_hop_headers(headers);
    }
    if claim {
        headers.remove(crate::gate::OWNER_CLAIM_HEADER);
    }
    Hop {
        host: (!host).then(|| route.host_header.clone()),
        forwarded: conn.forwarded(route),
        upgrade,
    }
}

/// Phase 7: send on a pooled connection, retrying once on a fresh one when
/// the pooled connection turns out to be dead before a single response
/// byte arrived (the upstream closed an idle keep-alive connection as we
/// reused it), for bodiless requests that are
/// - safe (GET, HEAD, OPTIONS): resending cannot duplicate an effect;
/// - or idempotent, when writing the request already failed (the upstream
///   was gone before it could act on it).
///
/// The retry resends the head already serialized for the first attempt.
async fn forward(
    w: &Worker,
    addr: SocketAddr,
    req: Request<ReqBody>,
    fwd: &up::h1::Forwarding<'_>,
) -> Result<(ResponseHead, up::Boxed), Local> {
    let mut conn = w.pool.checkout(addr).await.map_err(|err| {
        tracing::debug!(%err, "upstream connect failed");
        connect_error(&err)
    })?;
    let (parts, mut body) = req.into_parts();
    let had_length = parts.headers.contains_key(header::CONTENT_LENGTH);
    let framing = up::request_framing(&parts.method, &body, had_length);
    conn.up.encode_head(&parts, framing, fwd);
    let head_request = parts.method == Method::HEAD;
    let bodiless = body.is_end_stream();
    let deadline = w.timeouts.upstream_response_header();
    let mut progress = Progress::default();
    let exchange = conn
        .up
        .exchange(&mut body, framing, head_request, &mut progress);
    let err = match w.sweep.within(deadline, exchange).await {
        Ok(Ok(head)) => return Ok((head, conn.up)),
        Ok(Err(up::ExchangeError::ClientBody(err))) => {
            // The client's fault (a body cut short or malformed), not the upstream's.
            tracing::debug!(%err, "request body failed");
            return Err(BAD_REQUEST_BODY);
        }
        Ok(Err(err)) => err,
        Err(_) => {
            w.metrics.upstream_error(UpstreamError::Timeout);
            return Err(GATEWAY_TIMEOUT);
        }
    };
    let retry = conn.reused
        && bodiless
        && !progress.answered
        && (is_safe(&parts.method) || (progress.write_failed && is_idempotent(&parts.method)));
    if !retry {
        w.metrics.upstream_error(UpstreamError::Protocol);
        tracing::debug!(%err, "upstream request failed");
        return Err(BAD_GATEWAY);
    }
    tracing::debug!(%err, "pooled upstream connection died unanswered; retrying");
    let mut fresh = w.pool.connect(addr).await.map_err(|e| connect_error(&e))?;
    fresh.adopt_head(&mut conn.up);
    let mut progress = Progress::default();
    let mut empty = ReqBody::Empty;
    let exchange = fresh.exchange(&mut empty, framing, head_request, &mut progress);
    match w.sweep.within(deadline, exchange).await {
        Ok(Ok(head)) => Ok((head, fresh)),
        Ok(Err(err)) => {
            w.metrics.upstream_error(UpstreamError::Protocol);
            tracing::debug!(%err, "upstream retry failed");
            Err(BAD_GATEWAY)
        }
        Err(_) => {
            w.metrics.upstream_error(UpstreamError::Timeout);
            Err(GATEWAY_TIMEOUT)
        }
    }
}

/// GET, HEAD and OPTIONS: safe to send twice.
fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn connect_error(err: &crate::upstream::ConnectError) -> Local {
    match err {
        crate::upstream::ConnectError::Timeout(_) => GATEWAY_TIMEOUT,
        _ => BAD_GATEWAY,
    }
}

/// Phase 8: stream the response back; a 101 hands the upstream socket to
/// the client connection's server, which splices both.
fn upstream_response(
    w: &Rc<Worker>,
    addr: SocketAddr,
    head: ResponseHead,
    up: up::Boxed,
    client_upgrade: bool,
) -> Result<Response<ProxyBody>, Local> {
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        // We only ever ask for an upgrade the client asked for.
        if !client_upgrade {
            w.metrics.upstream_error(UpstreamError::Protocol);
            return Err(BAD_GATEWAY);
        }
        let mut resp = Response::new(ProxyBody::Tunnel(Some((*up).into_tunnel())));
        *resp.status_mut() = head.status;
        // A 101 keeps its Connection and Upgrade: they say what it switches to.
        head.fields.append_to(resp.headers_mut(), |_, _| false);
        return Ok(resp);
    }
    let ret = Return {
        pool: w.pool.clone(),
        addr,
    };
    let body = UpstreamBody::new(up, &head, Some(ret));
    let mut resp = Response::new(ProxyBody::Upstream {
        body,
        fields: Some(head.fields),
    });
    // The client's protocol, not the upstream's, frames this response; the
    // hop-by-hop fields are left out when the fields are written or mapped.
    *resp.status_mut() = head.status;
    Ok(resp)
}

/// Moves the upstream's raw fields into the response's map, without the
/// hop-by-hop ones and those its `Connection` names: for what reads the map
/// (a hook's response phase, hyper's HTTP/2 server).
pub fn materialize_headers(resp: &mut Response<ProxyBody>) {
    if let Some(fields) = take_raw_fields(resp) {
        fields.append_end_to_end_to(resp.headers_mut());
    }
}

/// Takes the upstream's raw fields out of the response (see [`ProxyBody::Upstream`]).
fn take_raw_fields(resp: &mut Response<ProxyBody>) -> Option<RawFields> {
    match resp.body_mut() {
        ProxyBody::Upstream { fields, .. } => fields.take(),
        _ => None,
    }
}

/// Gives the response back raw fields [`take_raw_fields`] took (a hook that left
/// them alone); any other body has none to hold.
fn restore_raw_fields(resp: &mut Response<ProxyBody>, raw: Option<RawFields>) {
    if let ProxyBody::Upstream { fields, .. } = resp.body_mut() {
        *fields = raw;
    }
}

fn answer(l: Local, outcome: &mut Outcome) -> Response<ProxyBody> {
    outcome.error = Some(l.error);
    let mut resp = Response::new(ProxyBody::Local(Some(Bytes::from_static(l.body))));
    *resp.status_mut() = l.status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if l.basic {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"hoody\", charset=\"UTF-8\""),
        );
    }
    if l.close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// An early answer while the request body may still be unread: on HTTP/1
/// the connection is closed so unread body bytes can never be parsed as the
/// next request.
fn answer_after_body(
    l: Local,
    req: &Request<ReqBody>,
    outcome: &mut Outcome,
) -> Response<ProxyBody> {
    let close = req.version() <= Version::HTTP_11 && !req.body().is_end_stream();
    answer(
        Local {
            close: l.close || close,
            ..l
        },
        outcome,
    )
}

/// Phase 10.
fn finish(
    w: &Worker,
    conn: &ConnInfo,
    outcome: &Outcome,
    status: u16,
    start: Instant,
    logged: Option<(Method, Uri, Version, Option<HeaderValue>)>,
) {
    let elapsed = start.elapsed();
    let kind = outcome.route.as_ref().map(|r| r.kind);
    w.metrics
        .request(kind, if status == 0 { 499 } else { status }, elapsed);
    let Some((method, uri, version, host)) = logged else {
        return;
    };
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| host.as_ref().and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    w.log.log(&Entry {
        client: conn.client,
        method: method.as_str(),
        host,
        path: uri.path_and_query().map_or("/", |p| p.as_str()),
        version,
        status,
        route_kind: kind.map_or("none", |k| k.as_str()),
        unit: outcome.route.as_ref().map_or("", |r| &r.unit),
        duration: elapsed,
        error: outcome.error,
    });
}
