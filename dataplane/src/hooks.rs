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
    Callbacks, CompiledModule, EngineConfig, FailureKind, FailurePolicy, Fields, HeaderEdit,
    HeaderEdits, HeaderList, HookEngine, HookLimits, HookOutcome, HookSession, HookSpec,
    LocalResponse, LogLevel, LogRecord, RequestContext, RequestParts, RequestPseudo, ResponseParts,
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
            unit: unit.id.as_str().into(),
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
    unit: Arc<str>,
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

/// The request phase's decision. The request itself was edited in place.
pub enum RequestStep {
    /// Forward the request.
    Forward {
        /// The run, continued in the response phase (boxed: a session is large, and
        /// most requests carry no run).
        run: Option<Box<HookRun>>,
        /// Headers the guest added, when adding was all it did to the head's fields
        /// and none of them is one the proxy manages (see [`raw_addable`]): written
        /// after the head's fields instead of going through its map.
        added: Option<HeaderList>,
    },
    /// Answer the client with this instead.
    Answer(Response<Bytes>),
}

impl RequestStep {
    const UNTOUCHED: Self = RequestStep::Forward {
        run: None,
        added: None,
    };
}

/// The response phase's decision.
pub enum ResponseStep {
    /// Send the response, edited in place; the upstream's raw fields, when still
    /// there, are to be written from the bytes with the guest's additions after them.
    Send,
    /// Send this instead: the guest's local response or the failure response.
    Answer(Response<Bytes>),
}

/// Runs the request phase of `hook` on `req`, buffering the client body (bounded)
/// first when the guest reads bodies: `rebuild` makes a body of buffered bytes. A
/// hook that needs neither the body nor the blocking pool can run through
/// [`request_phase_now`] instead, without a future.
pub async fn request_phase<B>(
    host: &HookHost,
    hook: &Arc<CompiledHook>,
    metrics: &Arc<WorkerMetrics>,
    caller: Caller<'_>,
    req: &mut Request<B>,
    rebuild: impl Fn(Bytes) -> B,
) -> RequestStep
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut hook_run = match open(host, hook, metrics, &caller) {
        Ok(hook_run) => hook_run,
        Err(skipped) => return *skipped,
    };
    let mut parts = RequestParts::default();
    fill_request_parts(&mut parts, req);
    let buffered = hook.callbacks().request_body && !req.body().is_end_stream();
    if buffered {
        let body = std::mem::replace(req.body_mut(), rebuild(Bytes::new()));
        match collect_bounded(body, host.max_body_bytes()).await {
            Ok(bytes) => {
                parts.body = Some(bytes.to_vec());
                *req.body_mut() = rebuild(bytes);
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
    }
    let outcome;
    (hook_run, parts, outcome) = run(hook_run, parts, |s, p| s.on_request(p)).await;
    let rebuild: Option<&dyn Fn(Bytes) -> B> = if buffered { Some(&rebuild) } else { None };
    hook_run.request_step(req, parts.body, outcome, rebuild)
}

/// The request phase of a hook that [`CompiledHook::runs_now`]: on the worker, with the
/// body left streaming, so nothing is awaited and no future holds the session.
pub fn request_phase_now<B>(
    host: &HookHost,
    hook: &Arc<CompiledHook>,
    metrics: &Arc<WorkerMetrics>,
    caller: Caller<'_>,
    req: &mut Request<B>,
) -> RequestStep {
    let mut hook_run = match open(host, hook, metrics, &caller) {
        Ok(hook_run) => hook_run,
        Err(skipped) => return *skipped,
    };
    let outcome = hook_run
        .session
        .on_request_lent(request_pseudo(req), &MapFields(req.headers()));
    hook_run.request_step(req, None, outcome, None)
}

/// Opens the session of `hook` for a request (both ways of running it start here),
/// nothing run yet, in the box it keeps to the end (a run that goes on to the
/// response phase is carried in it, so the session is never moved). When the hook
/// cannot run (module missing or invalid, engine
/// down): the step its policy gives, its failure answer or the request forwarded
/// untouched (boxed: the rare way).
fn open(
    host: &HookHost,
    hook: &Arc<CompiledHook>,
    metrics: &Arc<WorkerMetrics>,
    caller: &Caller<'_>,
) -> Result<Box<HookRun>, Box<RequestStep>> {
    let engine = match &hook.runnable {
        Ok(spec) => host.engine().map(|engine| (spec, engine)),
        Err(reason) => Err(format!("hook {} cannot run: {reason}", hook.id)),
    };
    let (spec, engine) = match engine {
        Ok(runnable) => runnable,
        Err(reason) => {
            return Err(Box::new(match unrunnable(hook, metrics, &reason) {
                Some(answer) => RequestStep::Answer(answer),
                None => RequestStep::UNTOUCHED,
            }))
        }
    };
    Ok(Box::new(HookRun {
        session: engine.session(spec, request_context(hook, caller)),
        hook: hook.clone(),
        metrics: metrics.clone(),
    }))
}

/// What the guest learns about the request beyond its head (`request.id` is the
/// request's `x-request-id`, which the engine reads from the headers itself).
fn request_context(hook: &CompiledHook, caller: &Caller<'_>) -> RequestContext {
    RequestContext {
        container_id: hook.unit.clone(),
        source: Some(caller.client),
        destination: None,
        matched_group: caller.group.map(str::to_string),
        request_id: None,
    }
}

impl HookRun {
    /// Turns the request phase's outcome into the step the proxy takes: the guest's
    /// edits written into `req` (with this run kept for the response phase when the
    /// guest has one), or the answer. `rebuild` is there when the body was buffered
    /// (and so may be replaced by `body`, the parts' body after the phase).
    fn request_step<B>(
        self: Box<Self>,
        req: &mut Request<B>,
        body: Option<Vec<u8>>,
        outcome: HookOutcome,
        rebuild: Option<&dyn Fn(Bytes) -> B>,
    ) -> RequestStep {
        let (hook, metrics) = (&self.hook, &self.metrics);
        let step = match outcome {
            HookOutcome::Continue(mut changes) => {
                metrics.hook(HookResult::Continue);
                let added = if changes.is_empty() {
                    None
                } else {
                    apply_request(req, &mut changes)
                };
                let replaced = body.filter(|_| changes.body_replaced);
                if let (Some(rebuild), Some(body)) = (rebuild, replaced) {
                    *req.body_mut() = rebuild(Bytes::from(body));
                    req.headers_mut().remove(header::CONTENT_LENGTH);
                }
                let run = if hook.callbacks().response_phase() {
                    Some(self)
                } else {
                    self.finish();
                    None
                };
                RequestStep::Forward { run, added }
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
                    RequestStep::UNTOUCHED
                } else {
                    RequestStep::Answer(local_response(failure.response))
                }
            }
        };
        step
    }

    /// Runs the response phase on the upstream's response (its body buffered, bounded,
    /// first when the guest reads it; `rebuild` makes a body of buffered bytes). `raw`
    /// are the upstream's fields not yet in the head's map (the guest sees them first,
    /// as the client would).
    ///
    /// The response is edited in place unless the step is an answer (the guest's
    /// local response, or the failure response when failing closed). When the guest
    /// removed none of the upstream's fields and the body still streams, `raw` stays:
    /// the guest's additions go after its fields, and building a map of the
    /// upstream's fields (a name parse, hash and insert each) is saved. Otherwise the
    /// fields move into the map.
    pub async fn response_phase<B>(
        self: Box<Self>,
        host: &HookHost,
        resp: &mut Response<B>,
        raw: &mut Option<RawFields>,
        rebuild: impl Fn(Bytes) -> B,
    ) -> ResponseStep
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut parts = ResponseParts::default();
        fill_response_parts(&mut parts, resp, raw.as_ref());
        let buffered = self.hook.callbacks().response_body && !resp.body().is_end_stream();
        if buffered {
            let body = std::mem::replace(resp.body_mut(), rebuild(Bytes::new()));
            match collect_bounded(body, host.max_body_bytes()).await {
                Ok(bytes) => {
                    parts.body = Some(bytes.to_vec());
                    *resp.body_mut() = rebuild(bytes);
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
        }
        let (this, parts, outcome) = run(self, parts, |s, p| s.on_response(p)).await;
        let rebuild: Option<&dyn Fn(Bytes) -> B> = if buffered { Some(&rebuild) } else { None };
        this.response_step(resp, raw, parts.body, outcome, rebuild)
    }

    /// The response phase of a hook that [`CompiledHook::runs_now`] (see
    /// [`request_phase_now`]); answers as [`HookRun::response_phase`].
    pub fn response_phase_now<B>(
        mut self: Box<Self>,
        resp: &mut Response<B>,
        raw: &mut Option<RawFields>,
    ) -> ResponseStep {
        let fields = ResponseFields::of(resp, raw.as_ref());
        let outcome = self
            .session
            .on_response_lent(resp.status().as_u16(), &fields);
        self.response_step(resp, raw, None, outcome, None)
    }

    /// Applies the response phase's outcome (see [`HookRun::response_phase`]) and ends
    /// the run. `rebuild` is there when the body was buffered (and so may be
    /// replaced by `body`, the parts' body after the phase).
    fn response_step<B>(
        self: Box<Self>,
        resp: &mut Response<B>,
        raw: &mut Option<RawFields>,
        body: Option<Vec<u8>>,
        outcome: HookOutcome,
        rebuild: Option<&dyn Fn(Bytes) -> B>,
    ) -> ResponseStep {
        let step = match outcome {
            HookOutcome::Continue(mut changes) => {
                self.metrics.hook(HookResult::Continue);
                if let Some(status) = changes.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                    *resp.status_mut() = status;
                }
                // Additions alone, with the body still the upstream's: written after
                // its raw fields, no map. Otherwise the raw fields go into the map
                // and the edits are replayed there.
                let appended = rebuild.is_none()
                    && raw.as_ref().is_some_and(|raw| {
                        changes
                            .headers
                            .only_append(|name| present(resp.headers(), name) || raw.contains(name))
                    });
                match raw.as_mut() {
                    Some(raw) if appended => {
                        raw.add(std::mem::take(&mut changes.headers).into_fields())
                    }
                    _ => {
                        materialize(resp.headers_mut(), raw.take());
                        apply_edits(resp.headers_mut(), &changes.headers);
                    }
                }
                let replaced = body.filter(|_| changes.body_replaced);
                if let (Some(rebuild), Some(body)) = (rebuild, replaced) {
                    *resp.body_mut() = rebuild(Bytes::from(body));
                    resp.headers_mut().remove(header::CONTENT_LENGTH);
                }
                ResponseStep::Send
            }
            HookOutcome::LocalResponse(local) => {
                self.metrics.hook(HookResult::Respond);
                ResponseStep::Answer(local_response(local))
            }
            HookOutcome::Failed(failure) => {
                self.metrics.hook(HookResult::Failed(failure.kind));
                if failure.policy == FailurePolicy::FailOpen {
                    self.metrics.hook_fail_open();
                    if rebuild.is_some() {
                        materialize(resp.headers_mut(), raw.take());
                    }
                    ResponseStep::Send
                } else {
                    ResponseStep::Answer(local_response(failure.response))
                }
            }
        };
        self.finish();
        step
    }

    /// Whether the response phase can run without awaiting ([`CompiledHook::runs_now`]).
    pub fn runs_now(&self) -> bool {
        self.hook.runs_now()
    }

    /// Ends the request's context and returns a pooled instance to its pool.
    pub fn finish(mut self: Box<Self>) {
        let log = self.session.end();
        report(&self.hook, &log);
    }
}

/// Runs one phase of `hook_run` inline or on the blocking pool (see the module
/// docs), as its hook says.
async fn run<P: Send + 'static>(
    mut hook_run: Box<HookRun>,
    mut parts: P,
    phase: fn(&mut HookSession, &mut P) -> HookOutcome,
) -> (Box<HookRun>, P, HookOutcome) {
    if hook_run.hook.inline {
        let outcome = phase(&mut hook_run.session, &mut parts);
        return (hook_run, parts, outcome);
    }
    let task = tokio::task::spawn_blocking(move || {
        let outcome = phase(&mut hook_run.session, &mut parts);
        (hook_run, parts, outcome)
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

/// Fills `parts` with a copy of the request's head, for a phase that may run on
/// another thread (the synchronous one borrows the head instead).
fn fill_request_parts<B>(parts: &mut RequestParts, req: &Request<B>) {
    let pseudo = request_pseudo(req);
    parts.reset(pseudo.method, pseudo.path, pseudo.authority, pseudo.scheme);
    MapFields(req.headers()).fill(&mut parts.headers);
}

/// Fills `parts` with a copy of the response's head (see [`fill_request_parts`]).
fn fill_response_parts<B>(parts: &mut ResponseParts, resp: &Response<B>, raw: Option<&RawFields>) {
    parts.reset(resp.status().as_u16());
    ResponseFields::of(resp, raw).fill(&mut parts.headers);
}

/// The request's pseudo-headers as a guest sees them, borrowed from its head.
fn request_pseudo<B>(req: &Request<B>) -> RequestPseudo<'_> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    RequestPseudo {
        method: req.method().as_str(),
        path: req.uri().path_and_query().map_or("/", |p| p.as_str()),
        authority,
        scheme: "http",
    }
}

/// A head's map as the guest sees it (the map's names are lowercase): the
/// request's headers, and the part of a response's already in its map.
struct MapFields<'a>(&'a HeaderMap);

impl Fields for MapFields<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn size(&self) -> usize {
        map_size(self.0)
    }

    fn fill(&self, into: &mut HeaderList) {
        for (name, value) in self.0 {
            into.push(name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

/// The response's headers as the guest sees them: the upstream's raw fields (those
/// not in the map yet, names lowercased) first, then the map's.
struct ResponseFields<'a> {
    raw: Option<&'a RawFields>,
    map: &'a HeaderMap,
}

impl<'a> ResponseFields<'a> {
    fn of<B>(resp: &'a Response<B>, raw: Option<&'a RawFields>) -> Self {
        Self {
            raw,
            map: resp.headers(),
        }
    }

    fn raw(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.raw.into_iter().flat_map(RawFields::end_to_end)
    }
}

impl Fields for ResponseFields<'_> {
    fn count(&self) -> usize {
        self.raw.map_or(0, RawFields::end_to_end_len) + self.map.len()
    }

    fn size(&self) -> usize {
        self.raw.map_or(0, RawFields::size_bound) + map_size(self.map)
    }

    fn fill(&self, into: &mut HeaderList) {
        for (name, value) in self.raw() {
            into.push_lowercase(name, value);
        }
        MapFields(self.map).fill(into);
    }
}

/// Bytes of a map's names and values.
fn map_size(map: &HeaderMap) -> usize {
    map.iter().map(|(n, v)| n.as_str().len() + v.len()).sum()
}

/// Whether the map has a field named `name` (lowercase). A scan of its few names
/// is cheaper than the parse and hash of a lookup.
fn present(map: &HeaderMap, name: &[u8]) -> bool {
    map.keys().any(|key| key.as_str().as_bytes() == name)
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

/// Replays the guest's header edits on the map, in order. Cheaper than rebuilding
/// the map from the guest's list, which would re-parse every header name.
fn apply_edits(map: &mut HeaderMap, edits: &HeaderEdits) {
    for edit in edits.iter() {
        match edit {
            HeaderEdit::Add(name, value) => {
                if let Some((name, value)) = field(name, value) {
                    map.append(name, value);
                }
            }
            HeaderEdit::Replace(name, value) => {
                if let Some((name, value)) = field(name, value) {
                    map.insert(name, value);
                }
            }
            HeaderEdit::Remove(name) => {
                if let Some(name) = header_name(name) {
                    map.remove(name);
                }
            }
            HeaderEdit::Clear => map.clear(),
        }
    }
}

/// A field the engine checked, as the map's types.
fn field(name: &[u8], value: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    Some((header_name(name)?, HeaderValue::from_bytes(value).ok()?))
}

/// Names of headers guests wrote lately, parsed once per worker: a hook tends to
/// write the same few names on every request, and parsing a name that is not one
/// of the standard ones allocates.
const REMEMBERED_NAMES: usize = 32;

thread_local! {
    static NAMES: std::cell::RefCell<Vec<HeaderName>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `name` (lowercase, as the engine gives it) as a `HeaderName`.
fn header_name(name: &[u8]) -> Option<HeaderName> {
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(known) = names.iter().find(|n| n.as_str().as_bytes() == name) {
            return Some(known.clone());
        }
        let parsed = HeaderName::from_bytes(name).ok()?;
        if names.len() == REMEMBERED_NAMES {
            names.remove(0);
        }
        names.push(parsed.clone());
        Some(parsed)
    })
}

/// Writes the guest's edits into the request head, except added headers that can go
/// out as raw fields after the head's (returned; see [`RequestStep::Forward`]).
fn apply_request<B>(
    req: &mut Request<B>,
    changes: &mut hook_engine::Changes,
) -> Option<HeaderList> {
    let edits = &changes.headers;
    let raw = !edits.is_empty()
        && edits.only_append(|name| present(req.headers(), name))
        && edits
            .iter()
            .all(|edit| matches!(edit, HeaderEdit::Add(name, _) | HeaderEdit::Replace(name, _) if raw_addable(name)));
    let added = if raw {
        Some(std::mem::take(&mut changes.headers).into_fields())
    } else {
        apply_edits(req.headers_mut(), edits);
        None
    };
    if let Some(path) = changes.path() {
        if let Ok(uri) = Uri::try_from(path) {
            *req.uri_mut() = uri;
        }
    }
    if let Some(method) = changes.method() {
        if let Ok(method) = Method::from_bytes(method.as_bytes()) {
            *req.method_mut() = method;
        }
    }
    if let Some(authority) = changes.authority() {
        if let Ok(host) = HeaderValue::from_str(authority) {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    added
}

/// Whether an added request header may bypass the map: not one the proxy removes,
/// rewrites or frames by (hop-by-hop fields, framing, `Host`, the forwarding
/// fields, the owner claim), which only the map path handles.
fn raw_addable(name: &[u8]) -> bool {
    !crate::fields::is_hop_by_hop(name)
        && !crate::upstream::h1::written_by_this_hop(name)
        && name != header::HOST.as_str().as_bytes()
        && name != crate::gate::OWNER_CLAIM_HEADER.as_bytes()
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

    fn edits(list: &[HeaderEdit<'_>]) -> HeaderEdits {
        let mut edits = HeaderEdits::new();
        for edit in list {
            edits.push(*edit);
        }
        edits
    }

    #[test]
    fn header_edits_replay_in_order_on_the_map() {
        let mut map = HeaderMap::new();
        map.append("x-tag", HeaderValue::from_static("a"));
        map.append("x-tag", HeaderValue::from_static("b"));
        map.insert("accept", HeaderValue::from_static("*/*"));
        map.insert("x-old", HeaderValue::from_static("1"));
        apply_edits(
            &mut map,
            &edits(&[
                HeaderEdit::Replace(b"x-tag", b"c"),
                HeaderEdit::Remove(b"accept"),
                HeaderEdit::Remove(b"absent"),
                HeaderEdit::Add(b"x-hook", b"blue"),
                HeaderEdit::Add(b"x-hook", b"green"),
                HeaderEdit::Replace(b"x-new", b"n"),
            ]),
        );
        let values =
            |name: &str| -> Vec<&[u8]> { map.get_all(name).iter().map(|v| v.as_bytes()).collect() };
        assert_eq!(values("x-tag"), [b"c".as_slice()]);
        assert_eq!(values("x-hook"), [b"blue".as_slice(), b"green".as_slice()]);
        assert_eq!(values("x-new"), [b"n".as_slice()]);
        assert!(map.get("accept").is_none());
        assert_eq!(map.len(), 5);
        apply_edits(
            &mut map,
            &edits(&[HeaderEdit::Clear, HeaderEdit::Add(b"only", b"1")]),
        );
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn added_request_headers_bypass_the_map_unless_the_proxy_manages_them() {
        let head = || {
            let req = Request::builder().uri("/a").header("accept", "*/*");
            req.body(()).expect("request")
        };
        let changes = |list: &[HeaderEdit<'_>]| hook_engine::Changes {
            headers: edits(list),
            ..Default::default()
        };
        // Plain additions come back to be written raw; the map is untouched. A
        // replace of a name the request lacks is an addition.
        let mut plain = head();
        let raw = apply_request(
            &mut plain,
            &mut changes(&[
                HeaderEdit::Add(b"x-a", b"1"),
                HeaderEdit::Replace(b"x-b", b"2"),
            ]),
        );
        assert_eq!(
            raw,
            Some([("x-a", "1"), ("x-b", "2")].into_iter().collect())
        );
        assert_eq!(plain.headers().len(), 1);
        // One managed name sends them all through the map, where the proxy's own
        // rules (hop-by-hop removal, framing, forwarding fields) apply to them.
        for managed in [
            "connection",
            "content-length",
            "host",
            "x-forwarded-for",
            "te",
        ] {
            let mut mapped = head();
            let raw = apply_request(
                &mut mapped,
                &mut changes(&[
                    HeaderEdit::Add(b"x-a", b"1"),
                    HeaderEdit::Add(managed.as_bytes(), b"v"),
                ]),
            );
            assert_eq!(raw, None, "{managed}");
            let headers = mapped.headers();
            assert!(headers.contains_key(managed) && headers.contains_key("x-a"));
        }
        // Replacing a header the request has, or removing one, goes through the map.
        for edit in [
            HeaderEdit::Replace(b"accept", b"text/html"),
            HeaderEdit::Remove(b"accept"),
        ] {
            let mut edited = head();
            let mut edits = changes(&[HeaderEdit::Add(b"x-a", b"1"), edit]);
            assert_eq!(apply_request(&mut edited, &mut edits), None);
            let headers = edited.headers();
            assert!(headers.contains_key("x-a"));
            assert_ne!(
                headers.get("accept").map(|v| v.as_bytes()),
                Some(b"*/*".as_slice())
            );
        }
    }

    #[test]
    fn parts_and_fields_hold_this_requests_values_with_lowercase_names() {
        let head = |uri: &str, headers: &[(&str, &str)]| {
            let mut req = Request::builder().method("POST").uri(uri);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.body(()).expect("request")
        };
        let first_head = head(
            "http://first.test/a/long/path?x=1",
            &[("X-One", "1"), ("x-two", "22"), ("x-three", "333")],
        );
        let first = request_pseudo(&first_head);
        assert_eq!(
            (first.authority, first.path),
            ("first.test", "/a/long/path?x=1")
        );
        // Without an authority in the target, the Host field is the authority.
        let second_head = head("/b", &[("Host", "b.test"), ("X-Cased", "v")]);
        let second = request_pseudo(&second_head);
        assert_eq!((second.method, second.path), ("POST", "/b"));
        assert_eq!((second.authority, second.scheme), ("b.test", "http"));
        // Parts filled for a phase that may leave the worker hold the same values.
        let mut parts = RequestParts::new("GET", "/old", "old.test");
        parts.trailers.push(b"x-trailer", b"1");
        fill_request_parts(&mut parts, &second_head);
        assert_eq!((parts.method.as_str(), parts.path.as_str()), ("POST", "/b"));
        assert_eq!(
            (parts.authority.as_str(), parts.scheme.as_str()),
            ("b.test", "http")
        );
        assert_eq!(parts.trailers.len(), 0);
        let fields = MapFields(second_head.headers());
        let mut lent = HeaderList::new();
        fields.fill(&mut lent);
        assert_eq!(
            lent,
            [("host", "b.test"), ("x-cased", "v")].into_iter().collect()
        );
        assert_eq!((fields.count(), fields.size()), (2, lent.size()));
        // Raw response names are lowercased for the engine, as the map's are, and
        // hop-by-hop fields are not the guest's.
        let mut raw_head = [httparse::EMPTY_HEADER; 4];
        let mut parsed = httparse::Response::new(&mut raw_head);
        let bytes = Bytes::from_static(b"HTTP/1.1 200 OK\r\nX-Up: 1\r\nConnection: close\r\n\r\n");
        assert!(parsed.parse(&bytes).expect("parse").is_complete());
        let raw = RawFields::new(
            bytes.clone(),
            parsed.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        );
        let mut resp_head = Response::new(());
        resp_head
            .headers_mut()
            .insert("x-map", HeaderValue::from_static("m"));
        let fields = ResponseFields::of(&resp_head, Some(&raw));
        let mut lent = HeaderList::new();
        fields.fill(&mut lent);
        assert_eq!(lent, [("x-up", "1"), ("x-map", "m")].into_iter().collect());
        // The raw fields' size is bounded by their head's length, not counted.
        assert_eq!(fields.count(), 2);
        assert!(fields.size() >= lent.size() && fields.size() <= bytes.len() + 6);
        assert!(raw.contains(b"x-up") && !raw.contains(b"x-map"));
        assert!(present(resp_head.headers(), b"x-map"));
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
