//! Hooks in the proxy: where they are placed and how a request runs through one.
//!
//! Placement comes from the unit's proxy document (`hooks`: service key → list) and its
//! module store (`modules`: name → sha256). When a unit is applied, every hook is compiled
//! into a [`CompiledHook`] (matcher parsed, module loaded from the module directory and
//! compiled, or its artifact loaded from the cache) and each route receives the list for
//! its service: the port-specific key (`http-3000`) first, then the program-wide key
//! (`http`). Per request the first hook of that list whose `match` and `applies_to`
//! accept the request runs, in the request phase and again in the response phase, in one
//! HTTP context so guest state carries across. Inline hooks share one instance per worker
//! (a context per request in flight); hooks on the blocking pool get one per request.
//!
//! Time: a hook call is synchronous and bounded by its timeout (the engine's epoch
//! deadline interrupts the guest). Hooks whose timeout fits the inline budget
//! (`Settings.hooks.inline_timeout_ms`) run on the worker itself, which then waits at most
//! that long; longer budgets run on tokio's blocking pool so one slow guest cannot stall
//! the other connections of its worker.
//!
//! This module is the only place that translates between hyper's types and the engine's;
//! `hook-engine` knows nothing of HTTP libraries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hook_engine::{
    Callbacks, CompiledModule, EngineConfig, FailureKind, FailurePolicy, HookEngine, HookLimits,
    HookOutcome, HookSession, HookSpec, LocalResponse, LogLevel, LogRecord, RequestContext,
    RequestParts, ResponseParts,
};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt;

use crate::config::{ContainerUnit, FailureMode, Hook, HookSettings, ModuleRef, OneOrMany};
use crate::fields::RawFields;
use crate::metrics::{HookResult, WorkerMetrics};

/// The data plane's hook runtime: the engine (started on first use, so a proxy without
/// hooks runs no epoch ticker and no tick thread), the module directory and the compiled
/// modules by sha256.
pub struct HookHost {
    settings: HookSettings,
    module_dir: Option<PathBuf>,
    engine: OnceLock<Result<HookEngine, String>>,
    modules: Mutex<HashMap<String, Arc<CompiledModule>>>,
    /// Stops the thread delivering `proxy_on_tick` (see [`GUEST_TICK`]).
    stop_ticks: Arc<AtomicBool>,
}

/// How often the engine's pooled instances are offered `proxy_on_tick`: a guest's tick
/// period is honoured to this granularity.
const GUEST_TICK: Duration = Duration::from_millis(100);

/// Calls the guests' `proxy_on_tick` every [`GUEST_TICK`] on a thread of its own, until
/// `stop` is set. Each tick gets `budget`, the inline budget: requests on a worker's
/// shared instance wait for a tick running on it as they would for a request.
fn deliver_ticks(
    engine: HookEngine,
    budget: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("hook-ticks".to_string())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(GUEST_TICK);
                engine.run_ticks(budget);
            }
        })
        .map(drop)
}

impl Drop for HookHost {
    fn drop(&mut self) {
        self.stop_ticks.store(true, Ordering::Relaxed);
    }
}

impl HookHost {
    pub fn new(settings: HookSettings, module_dir: Option<PathBuf>) -> Self {
        Self {
            settings,
            module_dir,
            engine: OnceLock::new(),
            modules: Mutex::default(),
            stop_ticks: Arc::default(),
        }
    }

    /// The engine, started on first use.
    pub fn engine(&self) -> Result<&HookEngine, String> {
        self.engine
            .get_or_init(|| {
                // Guest lines below warn are only ever reported at debug level
                // (see `report`): unless that is on, they are not even recorded.
                let min_log_level = if tracing::enabled!(target: "hook", tracing::Level::DEBUG) {
                    LogLevel::Trace
                } else {
                    LogLevel::Warn
                };
                HookEngine::new(EngineConfig {
                    min_log_level,
                    limits: HookLimits {
                        memory_bytes: self.settings.memory_bytes,
                        max_body_bytes: self.settings.max_body_bytes,
                        ..HookLimits::default()
                    },
                    cache_dir: self.module_dir.clone(),
                    allocator_slots: Some(self.settings.instance_slots).filter(|n| *n > 0),
                    ..EngineConfig::default()
                })
                .map_err(|e| e.to_string())
                .and_then(|engine| {
                    let budget = Duration::from_millis(self.settings.inline_timeout_ms);
                    deliver_ticks(engine.clone(), budget, self.stop_ticks.clone())
                        .map_err(|e| format!("cannot start the hook tick thread: {e}"))?;
                    Ok(engine)
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Guest-defined metrics, empty while no hook ever ran.
    pub fn metrics_text(&self) -> String {
        match self.engine.get() {
            Some(Ok(engine)) => engine.metrics_prometheus(),
            _ => String::new(),
        }
    }

    /// Compiles module bytes and keeps the result by sha256 (standalone routes files hand
    /// their modules over this way; the control plane writes them into the module
    /// directory instead).
    pub fn register(&self, wasm: &[u8]) -> Result<ModuleRef, String> {
        let module = self.engine()?.compile(wasm).map_err(|e| e.to_string())?;
        let reference = ModuleRef {
            sha256: module.sha256().to_string(),
            size: module.size() as u64,
        };
        self.lock_modules().insert(reference.sha256.clone(), module);
        Ok(reference)
    }

    /// The compiled module with this sha256: from memory, else from
    /// `<module_dir>/<sha256>.wasm` (its compiled artifact comes from the cache when
    /// present, so this is cheap after the upload compiled it once).
    pub fn module(&self, reference: &ModuleRef) -> Result<Arc<CompiledModule>, String> {
        if let Some(module) = self.lock_modules().get(&reference.sha256) {
            return Ok(module.clone());
        }
        if !is_sha256(&reference.sha256) {
            return Err(format!("bad module sha256 `{}`", reference.sha256));
        }
        let dir = self
            .module_dir
            .as_deref()
            .ok_or("no module directory is configured")?;
        let path = module_path(dir, &reference.sha256);
        let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let module = self.engine()?.compile(&bytes).map_err(|e| e.to_string())?;
        if module.sha256() != reference.sha256 {
            return Err(format!("{} does not hash to its name", path.display()));
        }
        self.lock_modules()
            .insert(reference.sha256.clone(), module.clone());
        Ok(module)
    }

    /// Compiles the hooks of a unit, by service key. A hook whose module cannot be loaded
    /// still compiles: it fails every request it matches, following its failure mode, so
    /// one missing module never blocks the rest of the unit's routing change.
    pub fn compile_unit(&self, unit: &ContainerUnit) -> Result<UnitHooks, String> {
        let Some(document) = &unit.proxy else {
            return Ok(UnitHooks::default());
        };
        let mut by_service = HashMap::new();
        for (service, hooks) in &document.hooks {
            let compiled = hooks
                .iter()
                .map(|hook| self.compile_hook(unit, hook).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("hooks of `{service}`: {e}"))?;
            if !compiled.is_empty() {
                by_service.insert(service.clone(), compiled);
            }
        }
        Ok(UnitHooks { by_service })
    }

    fn compile_hook(&self, unit: &ContainerUnit, hook: &Hook) -> Result<CompiledHook, String> {
        let matcher = Matcher::compile(hook).map_err(|e| format!("hook {}: {e}", hook.id))?;
        let timeout = Duration::from_millis(u64::from(
            hook.timeout.unwrap_or(self.settings.default_timeout_ms),
        ));
        if timeout.is_zero() || timeout > Duration::from_secs(30) {
            return Err(format!("hook {}: timeout must be 1-30000 ms", hook.id));
        }
        let inline = timeout <= Duration::from_millis(self.settings.inline_timeout_ms);
        let module = unit
            .modules
            .get(&hook.script.path)
            .ok_or_else(|| format!("`{}` is not in the unit's module store", hook.script.path))
            .and_then(|reference| self.module(reference));
        let runnable = match module {
            Ok(module) => {
                let mut spec = HookSpec::new(hook.script.path.clone(), module);
                spec.root_id = hook.id.clone();
                spec.config = hook.script.config.clone().unwrap_or_default().into_bytes();
                spec.timeout = timeout;
                spec.fresh_instance = hook.fresh_instance;
                // Inline calls take turns on the worker anyway, so they can share one
                // instance per worker; calls on the blocking pool each need their own.
                spec.shared_instance = inline;
                spec.policy = match hook.failure_mode {
                    FailureMode::FailClosed => FailurePolicy::FailClosed,
                    FailureMode::FailOpen => FailurePolicy::FailOpen,
                };
                Ok(spec)
            }
            Err(reason) => {
                tracing::warn!(target: "hook", unit = %unit.id, hook = %hook.id, "hook cannot run: {reason}");
                Err(reason)
            }
        };
        Ok(CompiledHook {
            id: hook.id.clone(),
            unit: unit.id.clone(),
            matcher,
            groups: hook
                .applies_to
                .as_ref()
                .map(|a| a.groups.clone())
                .unwrap_or_default(),
            fail_open: hook.failure_mode == FailureMode::FailOpen,
            inline,
            runnable,
        })
    }

    /// Largest body a hook is handed.
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    fn lock_modules(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CompiledModule>>> {
        self.modules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where the module store keeps the bytes of a module: `<dir>/<sha256>.wasm`.
pub fn module_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(format!("{sha256}.wasm"))
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A unit's compiled hooks by service key.
#[derive(Default)]
pub struct UnitHooks {
    by_service: HashMap<String, Vec<Arc<CompiledHook>>>,
}

impl UnitHooks {
    /// The hooks a route of `program` at `port` runs: the port-specific list
    /// (`http-3000`) first, then the program-wide one (`http`).
    pub fn for_service(&self, program: &str, port: u32) -> Option<Arc<RouteHooks>> {
        let specific = self.by_service.get(&format!("{program}-{port}"));
        let general = self.by_service.get(program);
        let hooks: Vec<Arc<CompiledHook>> = specific
            .into_iter()
            .chain(general)
            .flatten()
            .cloned()
            .collect();
        (!hooks.is_empty()).then(|| Arc::new(RouteHooks { hooks }))
    }

    /// The program-wide list alone (`http`), for ports no key names.
    pub fn for_program(&self, program: &str) -> Option<Arc<RouteHooks>> {
        let hooks = self.by_service.get(program)?.clone();
        (!hooks.is_empty()).then(|| Arc::new(RouteHooks { hooks }))
    }
}

/// The ordered hooks of one route.
pub struct RouteHooks {
    hooks: Vec<Arc<CompiledHook>>,
}

impl RouteHooks {
    /// The first hook that accepts the request (method, path, headers, group).
    pub fn select<B>(&self, req: &Request<B>, group: Option<&str>) -> Option<&Arc<CompiledHook>> {
        self.hooks.iter().find(|h| h.accepts(req, group))
    }
}

/// One placed hook, ready to run.
pub struct CompiledHook {
    pub id: String,
    unit: String,
    matcher: Matcher,
    groups: Vec<String>,
    fail_open: bool,
    inline: bool,
    /// The engine's spec, or why the hook cannot run (module missing or invalid).
    runnable: Result<HookSpec, String>,
}

impl CompiledHook {
    fn accepts<B>(&self, req: &Request<B>, group: Option<&str>) -> bool {
        let group_ok = self.groups.is_empty()
            || group.is_some_and(|g| self.groups.iter().any(|allowed| allowed == g));
        group_ok && self.matcher.matches(req)
    }

    /// Whether both phases can run without awaiting: inline on the worker, with no
    /// body to buffer first ([`request_phase_now`], [`HookRun::response_phase_now`]).
    pub fn runs_now(&self) -> bool {
        let callbacks = self.callbacks();
        self.inline && !callbacks.request_body && !callbacks.response_body
    }

    fn callbacks(&self) -> Callbacks {
        self.runnable
            .as_ref()
            .map(|spec| spec.module.callbacks())
            .unwrap_or_default()
    }
}

/// `match`: every present criterion must hold.
struct Matcher {
    methods: Option<Vec<Method>>,
    path: Option<Vec<GlobPart>>,
    headers: Vec<(HeaderName, Option<Vec<u8>>)>,
}

impl Matcher {
    fn compile(hook: &Hook) -> Result<Self, String> {
        let methods = hook
            .matcher
            .method
            .as_ref()
            .map(|m| {
                let names: Vec<&String> = match m {
                    OneOrMany::One(one) => vec![one],
                    OneOrMany::Many(many) => many.iter().collect(),
                };
                names
                    .into_iter()
                    .map(|n| {
                        Method::from_bytes(n.to_ascii_uppercase().as_bytes())
                            .map_err(|_| format!("bad method `{n}`"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let path = hook.matcher.path.as_deref().map(compile_glob);
        let headers = hook
            .matcher
            .headers
            .iter()
            .map(|(name, want)| {
                let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("bad header name `{name}`"))?;
                let want = match want {
                    serde_json::Value::Bool(true) => None,
                    serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
                    other => {
                        return Err(format!(
                            "header `{name}`: expected a string or true, got {other}"
                        ))
                    }
                };
                Ok((name, want))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            methods,
            path,
            headers,
        })
    }

    fn matches<B>(&self, req: &Request<B>) -> bool {
        if let Some(methods) = &self.methods {
            if !methods.contains(req.method()) {
                return false;
            }
        }
        if let Some(glob) = &self.path {
            if !glob_matches(glob, req.uri().path().as_bytes()) {
                return false;
            }
        }
        self.headers.iter().all(|(name, want)| {
            let mut values = req.headers().get_all(name).iter();
            match want {
                None => values.next().is_some(),
                Some(want) => values.any(|v| v.as_bytes() == want.as_slice()),
            }
        })
    }
}

/// A path glob: `*` matches within one segment, `**` across segments.
#[derive(Debug, Clone, PartialEq)]
enum GlobPart {
    Literal(Vec<u8>),
    Star,
    DoubleStar,
}

fn compile_glob(pattern: &str) -> Vec<GlobPart> {
    let mut parts = Vec::new();
    let mut literal = Vec::new();
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            if !literal.is_empty() {
                parts.push(GlobPart::Literal(std::mem::take(&mut literal)));
            }
            if bytes.get(i + 1) == Some(&b'*') {
                parts.push(GlobPart::DoubleStar);
                i += 2;
            } else {
                parts.push(GlobPart::Star);
                i += 1;
            }
        } else {
            literal.push(bytes[i]);
            i += 1;
        }
    }
    if !literal.is_empty() {
        parts.push(GlobPart::Literal(literal));
    }
    parts
}

fn glob_matches(glob: &[GlobPart], path: &[u8]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((GlobPart::Literal(lit), rest)) => {
            path.starts_with(lit) && glob_matches(rest, &path[lit.len()..])
        }
        Some((GlobPart::Star, rest)) => {
            let segment_end = path.iter().position(|b| *b == b'/').unwrap_or(path.len());
            (0..=segment_end).any(|n| glob_matches(rest, &path[n..]))
        }
        Some((GlobPart::DoubleStar, rest)) => {
            (0..=path.len()).any(|n| glob_matches(rest, &path[n..]))
        }
    }
}

/// Who is asking, for the hook's properties.
pub struct Caller<'a> {
    pub client: std::net::SocketAddr,
    pub group: Option<&'a str>,
}

/// A hook that ran its request phase and may run its response phase.
pub struct HookRun {
    session: HookSession,
    hook: Arc<CompiledHook>,
    metrics: Arc<WorkerMetrics>,
}

/// The response phase's decision.
pub enum ResponseStep<B> {
    /// Send this response (possibly edited), with the upstream's raw fields when they
    /// are still to be written from the bytes (see [`HookRun::response_phase`]).
    Send(Response<B>, Option<RawFields>),
    /// Send this instead: the guest's local response or the failure response.
    Answer(Response<Bytes>),
}

/// The request phase's decision.
pub enum RequestStep<B> {
    /// Forward the (possibly edited) request; the run continues in the response phase
    /// (boxed: a session is large, and most requests carry no run).
    Forward(Request<B>, Option<Box<HookRun>>),
    /// Answer the client with this instead.
    Answer(Response<Bytes>),
}

/// Runs the request phase of `hook`, buffering the client body (bounded) when the guest
/// reads bodies; `rebuild` makes the forwarded body from the buffered bytes. A hook that
/// needs neither the body nor the blocking pool can run through
/// [`request_phase_now`] instead, without a future.
pub async fn request_phase<B>(
    host: &HookHost,
    hook: &Arc<CompiledHook>,
    metrics: &Arc<WorkerMetrics>,
    caller: Caller<'_>,
    req: Request<B>,
    rebuild: impl FnOnce(Bytes) -> B,
) -> RequestStep<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (mut session, head, body, mut parts) = match open(host, hook, metrics, &caller, req) {
        Ok(opened) => opened,
        Err(skipped) => return *skipped,
    };
    let body = if hook.callbacks().request_body && !body.is_end_stream() {
        match collect_bounded(body, host.max_body_bytes()).await {
            Ok(bytes) => {
                parts.body = Some(bytes.to_vec());
                Err(bytes)
            }
            Err(Collect::TooLarge) => {
                metrics.hook(HookResult::Failed(FailureKind::BodyTooLarge));
                return RequestStep::Answer(json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "HOOK_BODY_TOO_LARGE",
                    "The request body exceeds what a hook may buffer",
                    true,
                ));
            }
            Err(Collect::Failed) => {
                return RequestStep::Answer(json_error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "The request body could not be read",
                    true,
                ));
            }
        }
    } else {
        Ok(body)
    };
    let outcome;
    (session, parts, outcome) = run(hook.inline, session, parts, |s, p| s.on_request(p)).await;
    HookRun::new(session, hook, metrics).request_step(head, parts, body, outcome, rebuild)
}

/// The request phase of a hook that [`CompiledHook::runs_now`]: on the worker, with the
/// body left streaming, so nothing is awaited and no future holds the session.
pub fn request_phase_now<B>(
    host: &HookHost,
    hook: &Arc<CompiledHook>,
    metrics: &Arc<WorkerMetrics>,
    caller: Caller<'_>,
    req: Request<B>,
    rebuild: impl FnOnce(Bytes) -> B,
) -> RequestStep<B> {
    let (mut session, head, body, mut parts) = match open(host, hook, metrics, &caller, req) {
        Ok(opened) => opened,
        Err(skipped) => return *skipped,
    };
    let outcome = session.on_request(&mut parts);
    HookRun::new(session, hook, metrics).request_step(head, parts, Ok(body), outcome, rebuild)
}

/// A request phase ready to run (see [`open`]).
type Opened<B> = (HookSession, http::request::Parts, B, RequestParts);

/// Opens the request phase of `hook` on `req` (both ways of running it start here):
/// the session, nothing run yet, the request's head and body, and the parts the
/// guest will see. When the hook cannot run (module missing or invalid, engine
/// down): the step its policy gives, its failure answer or the request forwarded
/// untouched (boxed: the rare way).
fn open<B>(
    host: &HookHost,
    hook: &CompiledHook,
    metrics: &WorkerMetrics,
    caller: &Caller<'_>,
    req: Request<B>,
) -> Result<Opened<B>, Box<RequestStep<B>>> {
    let engine = match &hook.runnable {
        Ok(spec) => host.engine().map(|engine| (spec, engine)),
        Err(reason) => Err(format!("hook {} cannot run: {reason}", hook.id)),
    };
    let (spec, engine) = match engine {
        Ok(runnable) => runnable,
        Err(reason) => {
            return Err(Box::new(match unrunnable(hook, metrics, &reason) {
                Some(answer) => RequestStep::Answer(answer),
                None => RequestStep::Forward(req, None),
            }))
        }
    };
    let (head, body) = req.into_parts();
    let parts = request_parts(&head);
    let session = engine.session(spec, request_context(hook, caller, &head));
    Ok((session, head, body, parts))
}

/// What the guest learns about the request beyond its head.
fn request_context(
    hook: &CompiledHook,
    caller: &Caller<'_>,
    head: &http::request::Parts,
) -> RequestContext {
    RequestContext {
        container_id: hook.unit.clone(),
        source: Some(caller.client),
        destination: None,
        matched_group: caller.group.map(str::to_string),
        request_id: head
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

impl HookRun {
    fn new(session: HookSession, hook: &Arc<CompiledHook>, metrics: &Arc<WorkerMetrics>) -> Self {
        Self {
            session,
            hook: hook.clone(),
            metrics: metrics.clone(),
        }
    }

    /// Turns the request phase's outcome into the step the proxy takes: the edited
    /// request (with this run kept for the response phase when the guest has one),
    /// or the answer.
    fn request_step<B>(
        self,
        mut head: http::request::Parts,
        mut parts: RequestParts,
        body: Result<B, Bytes>,
        outcome: HookOutcome,
        rebuild: impl FnOnce(Bytes) -> B,
    ) -> RequestStep<B> {
        let (hook, metrics) = (&self.hook, &self.metrics);
        match outcome {
            HookOutcome::Continue(changes) => {
                metrics.hook(HookResult::Continue);
                if !changes.is_empty() {
                    apply_request(&mut head, &parts, &changes);
                }
                let replaced = parts.body.take().filter(|_| changes.body_replaced);
                let body = match body {
                    Ok(stream) => stream,
                    Err(original) => rebuild(replaced.map(Bytes::from).unwrap_or(original)),
                };
                if changes.body_replaced {
                    head.headers.remove(header::CONTENT_LENGTH);
                }
                let keep = if hook.callbacks().response_phase() {
                    Some(Box::new(self))
                } else {
                    self.finish();
                    None
                };
                RequestStep::Forward(Request::from_parts(head, body), keep)
            }
            HookOutcome::LocalResponse(local) => {
                metrics.hook(HookResult::Respond);
                self.finish();
                RequestStep::Answer(local_response(local))
            }
            HookOutcome::Failed(failure) => {
                metrics.hook(HookResult::Failed(failure.kind));
                let fail_open = failure.policy == FailurePolicy::FailOpen;
                if fail_open {
                    metrics.hook_fail_open();
                }
                self.finish();
                if fail_open {
                    let body = match body {
                        Ok(stream) => stream,
                        Err(original) => rebuild(original),
                    };
                    return RequestStep::Forward(Request::from_parts(head, body), None);
                }
                RequestStep::Answer(local_response(failure.response))
            }
        }
    }

    /// Runs the response phase on the upstream's response head (and body, bounded, when
    /// the guest reads it). `raw` are the upstream's fields not yet in the head's map
    /// (the guest sees them first, as the client would).
    ///
    /// Returns the response to send: edited, replaced by the guest's local response, or
    /// by the failure response (fail-closed). An edited response comes with `raw` back
    /// when the guest removed none of its fields and the body still streams: its
    /// additions are in the map, written after the raw fields, and building a map of
    /// the upstream's fields (a name parse, hash and insert each) is saved. Otherwise
    /// the fields are in the map.
    pub async fn response_phase<B>(
        mut self: Box<Self>,
        host: &HookHost,
        resp: Response<B>,
        raw: Option<RawFields>,
        rebuild: impl FnOnce(Bytes) -> B,
    ) -> ResponseStep<B>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let (head, body) = resp.into_parts();
        let mut parts = response_parts(&head, raw.as_ref());
        let body = if self.hook.callbacks().response_body && !body.is_end_stream() {
            match collect_bounded(body, host.max_body_bytes()).await {
                Ok(bytes) => {
                    parts.body = Some(bytes.to_vec());
                    Err(bytes)
                }
                Err(_) => {
                    self.metrics
                        .hook(HookResult::Failed(FailureKind::BodyTooLarge));
                    self.finish();
                    return ResponseStep::Answer(json_error(
                        StatusCode::BAD_GATEWAY,
                        "HOOK_BODY_TOO_LARGE",
                        "The upstream response exceeds what a hook may buffer",
                        false,
                    ));
                }
            }
        } else {
            Ok(body)
        };
        let inline = self.hook.inline;
        let session = self.session;
        let (session, parts, outcome) = run(inline, session, parts, |s, p| s.on_response(p)).await;
        self.session = session;
        self.response_step(head, raw, parts, body, outcome, rebuild)
    }

    /// The response phase of a hook that [`CompiledHook::runs_now`] (see
    /// [`request_phase_now`]); answers as [`HookRun::response_phase`].
    pub fn response_phase_now<B>(
        mut self: Box<Self>,
        resp: Response<B>,
        raw: Option<RawFields>,
        rebuild: impl FnOnce(Bytes) -> B,
    ) -> ResponseStep<B> {
        let (head, body) = resp.into_parts();
        let mut parts = response_parts(&head, raw.as_ref());
        let outcome = self.session.on_response(&mut parts);
        self.response_step(head, raw, parts, Ok(body), outcome, rebuild)
    }

    /// Applies the response phase's outcome (see [`HookRun::response_phase`]) and ends
    /// the run.
    fn response_step<B>(
        self: Box<Self>,
        mut head: http::response::Parts,
        mut raw: Option<RawFields>,
        parts: ResponseParts,
        body: Result<B, Bytes>,
        outcome: HookOutcome,
        rebuild: impl FnOnce(Bytes) -> B,
    ) -> ResponseStep<B> {
        let result = match outcome {
            HookOutcome::Continue(mut changes) => {
                self.metrics.hook(HookResult::Continue);
                if let Some(status) = changes.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                    head.status = status;
                }
                if !changes.removed_headers.is_empty() || body.is_err() {
                    materialize(&mut head.headers, raw.take());
                }
                match raw.as_mut() {
                    // Additions alone: written after the upstream's raw fields, no map.
                    Some(raw) => raw.add(std::mem::take(&mut changes.added_headers)),
                    None => edit_headers(&mut head.headers, &changes),
                }
                let body = match body {
                    Ok(stream) => stream,
                    Err(original) => {
                        let bytes = parts
                            .body
                            .filter(|_| changes.body_replaced)
                            .map(Bytes::from)
                            .unwrap_or(original);
                        if changes.body_replaced {
                            head.headers.remove(header::CONTENT_LENGTH);
                        }
                        rebuild(bytes)
                    }
                };
                ResponseStep::Send(Response::from_parts(head, body), raw)
            }
            HookOutcome::LocalResponse(local) => {
                self.metrics.hook(HookResult::Respond);
                ResponseStep::Answer(local_response(local))
            }
            HookOutcome::Failed(failure) => {
                self.metrics.hook(HookResult::Failed(failure.kind));
                if failure.policy == FailurePolicy::FailOpen {
                    self.metrics.hook_fail_open();
                    let body = match body {
                        Ok(stream) => stream,
                        Err(original) => {
                            materialize(&mut head.headers, raw.take());
                            rebuild(original)
                        }
                    };
                    ResponseStep::Send(Response::from_parts(head, body), raw)
                } else {
                    ResponseStep::Answer(local_response(failure.response))
                }
            }
        };
        self.finish();
        result
    }

    /// Whether the response phase can run without awaiting ([`CompiledHook::runs_now`]).
    pub fn runs_now(&self) -> bool {
        self.hook.runs_now()
    }

    /// Ends the request's context and returns a pooled instance to its pool.
    pub fn finish(self) {
        let log = self.session.finish();
        report(&self.hook, &log);
    }
}

/// Runs one phase inline or on the blocking pool (see the module docs).
async fn run<P: Send + 'static>(
    inline: bool,
    mut session: HookSession,
    mut parts: P,
    phase: fn(&mut HookSession, &mut P) -> HookOutcome,
) -> (HookSession, P, HookOutcome) {
    if inline {
        let outcome = phase(&mut session, &mut parts);
        return (session, parts, outcome);
    }
    let task = tokio::task::spawn_blocking(move || {
        let outcome = phase(&mut session, &mut parts);
        (session, parts, outcome)
    });
    match task.await {
        Ok(done) => done,
        // The blocking task panicked: nothing to salvage, the request fails closed.
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// A hook that cannot run fails like a trapped one, following its failure mode.
fn unrunnable(
    hook: &CompiledHook,
    metrics: &WorkerMetrics,
    reason: &str,
) -> Option<Response<Bytes>> {
    tracing::warn!(target: "hook", unit = %hook.unit, hook = %hook.id, "{reason}");
    metrics.hook(HookResult::Failed(FailureKind::Start));
    if hook.fail_open {
        metrics.hook_fail_open();
        return None;
    }
    Some(json_error(
        StatusCode::BAD_GATEWAY,
        "HOOK_FAILED",
        "The hook for this request cannot run",
        false,
    ))
}

/// The hook log goes to the `hook` tracing target: guest lines at debug, the host's
/// failure reasons (timeouts, traps) at warn (the engine logs those itself).
fn report(hook: &CompiledHook, log: &[LogRecord]) {
    for record in log {
        if record.level >= LogLevel::Warn {
            tracing::info!(target: "hook", unit = %hook.unit, hook = %hook.id, level = record.level.as_str(), "{}", record.message);
        } else {
            tracing::debug!(target: "hook", unit = %hook.unit, hook = %hook.id, level = record.level.as_str(), "{}", record.message);
        }
    }
}

fn request_parts(head: &http::request::Parts) -> RequestParts {
    let authority = head
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| head.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    RequestParts {
        method: head.method.as_str().to_string(),
        path: head
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        authority: authority.to_string(),
        scheme: "http".to_string(),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| header_entry(name.as_str().as_bytes(), value.as_bytes()))
            .collect(),
        body: None,
        trailers: Vec::new(),
    }
}

/// The response as the guest sees it: the upstream's raw fields (those not in the
/// map yet) first, then the map's.
fn response_parts(head: &http::response::Parts, raw: Option<&RawFields>) -> ResponseParts {
    let raw_fields = raw.into_iter().flat_map(RawFields::end_to_end);
    let map_fields = head
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
    ResponseParts {
        status: head.status.as_u16(),
        headers: raw_fields
            .chain(map_fields)
            .map(|(name, value)| header_entry(name, value))
            .collect(),
        body: None,
        trailers: Vec::new(),
    }
}

/// A header in the engine's form: lowercase name. Parsed names are tokens (ASCII);
/// anything else would be replaced.
fn header_entry(name: &[u8], value: &[u8]) -> (String, Vec<u8>) {
    let mut name = match std::str::from_utf8(name) {
        Ok(text) => text.to_string(),
        Err(_) => String::from_utf8_lossy(name).into_owned(),
    };
    name.make_ascii_lowercase();
    (name, value.to_vec())
}

/// Moves raw fields into the map (a guest edit needs them there).
fn materialize(map: &mut HeaderMap, raw: Option<RawFields>) {
    if let Some(raw) = raw {
        raw.append_end_to_end_to(map);
    }
}

/// Builds a header map from the engine's list; the engine already refused names and
/// values that are not valid HTTP, so nothing valid is lost here.
fn header_map(list: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(list.len());
    for (name, value) in list {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Applies the guest's header edits to the map in place: each removed
/// (name, value) pair goes (one occurrence per pair), each added one is
/// appended. Cheaper than rebuilding the map from the guest's list, which
/// would re-parse every header name.
fn edit_headers(map: &mut HeaderMap, changes: &hook_engine::Changes) {
    for (name, value) in &changes.removed_headers {
        let Some(name) = header_name(name) else {
            continue;
        };
        let mut dropped = false;
        let kept: Vec<HeaderValue> = map
            .get_all(&name)
            .iter()
            .filter(|v| {
                let drop = !dropped && v.as_bytes() == value.as_slice();
                dropped |= drop;
                !drop
            })
            .cloned()
            .collect();
        if dropped {
            map.remove(&name);
            for v in kept {
                map.append(name.clone(), v);
            }
        }
    }
    for (name, value) in &changes.added_headers {
        if let (Some(name), Ok(value)) = (header_name(name), HeaderValue::from_bytes(value)) {
            map.append(name, value);
        }
    }
}

/// Names of headers guests wrote lately, parsed once per worker: a hook tends to
/// write the same few names on every request, and parsing a name that is not one
/// of the standard ones allocates.
const REMEMBERED_NAMES: usize = 32;

thread_local! {
    static NAMES: std::cell::RefCell<Vec<HeaderName>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `name` (lowercase, as the engine gives it) as a `HeaderName`.
fn header_name(name: &str) -> Option<HeaderName> {
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(known) = names.iter().find(|n| n.as_str() == name) {
            return Some(known.clone());
        }
        let parsed = HeaderName::from_bytes(name.as_bytes()).ok()?;
        if names.len() == REMEMBERED_NAMES {
            names.remove(0);
        }
        names.push(parsed.clone());
        Some(parsed)
    })
}

/// Writes the guest's edits into the request head.
fn apply_request(
    head: &mut http::request::Parts,
    parts: &RequestParts,
    changes: &hook_engine::Changes,
) {
    edit_headers(&mut head.headers, changes);
    if changes.path.is_some() {
        if let Ok(uri) = Uri::try_from(parts.path.as_str()) {
            head.uri = uri;
        }
    }
    if changes.method.is_some() {
        if let Ok(method) = Method::from_bytes(parts.method.as_bytes()) {
            head.method = method;
        }
    }
    if changes.authority.is_some() {
        if let Ok(host) = HeaderValue::from_str(&parts.authority) {
            head.headers.insert(header::HOST, host);
        }
    }
}

fn local_response(local: LocalResponse) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(local.body));
    *resp.status_mut() = StatusCode::from_u16(local.status).unwrap_or(StatusCode::BAD_GATEWAY);
    *resp.headers_mut() = header_map(&local.headers);
    resp
}

/// A JSON error in the API's error shape.
fn json_error(status: StatusCode, code: &str, message: &str, close: bool) -> Response<Bytes> {
    let body = format!(
        "{{\"statusCode\":{},\"message\":\"{message}\",\"code\":\"{code}\"}}",
        status.as_u16()
    );
    let mut resp = Response::new(Bytes::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if close {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

enum Collect {
    TooLarge,
    Failed,
}

/// Reads a whole body, refusing more than `limit` bytes (checked against the declared
/// length first, so an oversized upload is refused before it is read).
async fn collect_bounded<B>(mut body: B, limit: usize) -> Result<Bytes, Collect>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(Collect::TooLarge);
    }
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::debug!(err = %e, "body read for a hook failed");
            Collect::Failed
        })?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(Collect::TooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, path: &str) -> bool {
        glob_matches(&compile_glob(p), path.as_bytes())
    }

    #[test]
    fn header_edits_remove_one_occurrence_per_pair_and_append_additions() {
        let mut map = HeaderMap::new();
        map.append("x-tag", HeaderValue::from_static("a"));
        map.append("x-tag", HeaderValue::from_static("b"));
        map.append("x-tag", HeaderValue::from_static("a"));
        map.insert("accept", HeaderValue::from_static("*/*"));
        let changes = hook_engine::Changes {
            removed_headers: vec![
                ("x-tag".to_string(), b"a".to_vec()),
                ("accept".to_string(), b"*/*".to_vec()),
                ("absent".to_string(), b"z".to_vec()),
            ],
            added_headers: vec![("x-hook".to_string(), b"blue".to_vec())],
            ..Default::default()
        };
        edit_headers(&mut map, &changes);
        let tags: Vec<&[u8]> = map.get_all("x-tag").iter().map(|v| v.as_bytes()).collect();
        assert_eq!(tags, [b"b".as_slice(), b"a".as_slice()]);
        assert!(map.get("accept").is_none());
        assert_eq!(
            map.get("x-hook").map(|v| v.as_bytes()),
            Some(b"blue".as_slice())
        );
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn parts_hold_this_requests_values_with_lowercase_names() {
        let head = |uri: &str, headers: &[(&str, &str)]| {
            let mut req = Request::builder().method("POST").uri(uri);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.body(()).expect("request").into_parts().0
        };
        let first = request_parts(&head(
            "http://first.test/a/long/path?x=1",
            &[("X-One", "1"), ("x-two", "22"), ("x-three", "333")],
        ));
        assert_eq!(first.authority, "first.test");
        let second = request_parts(&head("/b", &[("Host", "b.test"), ("X-Cased", "v")]));
        assert_eq!(
            (second.method.as_str(), second.path.as_str()),
            ("POST", "/b")
        );
        assert_eq!(
            (second.authority.as_str(), second.scheme.as_str()),
            ("b.test", "http")
        );
        assert_eq!(
            second.headers,
            vec![
                ("host".to_string(), b"b.test".to_vec()),
                ("x-cased".to_string(), b"v".to_vec())
            ]
        );
        assert_eq!(second.body, None);
        // Raw response names are lowercased for the engine, as the map's are.
        let mut raw_head = [httparse::EMPTY_HEADER; 4];
        let mut parsed = httparse::Response::new(&mut raw_head);
        let bytes = Bytes::from_static(b"HTTP/1.1 200 OK\r\nX-Up: 1\r\nConnection: close\r\n\r\n");
        assert!(parsed.parse(&bytes).expect("parse").is_complete());
        let raw = RawFields::new(
            bytes.clone(),
            parsed.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        );
        let (resp_head, ()) = Response::new(()).into_parts();
        let parts = response_parts(&resp_head, Some(&raw));
        assert_eq!(parts.headers, vec![("x-up".to_string(), b"1".to_vec())]);
    }

    #[test]
    fn single_star_stays_within_a_segment() {
        assert!(glob("/api/*", "/api/items"));
        assert!(!glob("/api/*", "/api/items/1"));
        assert!(glob("/api/*/edit", "/api/7/edit"));
        assert!(glob("*.json", "data.json"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(glob("/api/**", "/api/items/1"));
        assert!(glob("/api/**", "/api/"));
        assert!(!glob("/api/**", "/other"));
        assert!(glob("/**/edit", "/a/b/edit"));
        assert!(glob("/exact", "/exact"));
        assert!(!glob("/exact", "/exact/more"));
    }

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn matcher_checks_method_path_and_headers() {
        let m = Matcher::compile(&hook(serde_json::json!({
            "id": "h1", "script": {"path": "m"},
            "match": {"method": ["get", "POST"], "path": "/api/**",
                      "headers": {"x-flag": true, "x-env": "prod"}}
        })))
        .unwrap();
        let req = |method: &str, path: &str, headers: &[(&str, &str)]| {
            let mut b = Request::builder().method(method).uri(path);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let ok = [("x-flag", ""), ("x-env", "prod")];
        assert!(m.matches(&req("GET", "/api/x", &ok)));
        assert!(!m.matches(&req("DELETE", "/api/x", &ok)));
        assert!(!m.matches(&req("GET", "/web", &ok)));
        assert!(!m.matches(&req("GET", "/api/x", &[("x-env", "prod")])));
        assert!(!m.matches(&req("GET", "/api/x", &[("x-flag", "1"), ("x-env", "dev")])));
    }

    #[test]
    fn applies_to_needs_one_of_the_groups() {
        let h = CompiledHook {
            id: "h".into(),
            unit: "u".into(),
            matcher: Matcher::compile(&hook(serde_json::json!({"id":"h","script":{"path":"m"}})))
                .unwrap(),
            groups: vec!["admins".into()],
            fail_open: false,
            inline: true,
            runnable: Err("test".into()),
        };
        let req = Request::new(());
        assert!(h.accepts(&req, Some("admins")));
        assert!(!h.accepts(&req, Some("users")));
        assert!(!h.accepts(&req, None));
    }
}
