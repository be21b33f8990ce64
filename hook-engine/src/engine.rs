//! [`HookEngine`] owns the wasmtime engine, the linker, the epoch ticker, the instance
//! pool and the shared services; [`HookSession`] runs one request's hook through its
//! request and response phases in one HTTP context of one instance, so per-request guest
//! state survives between the phases. Pooled sessions share their thread's instance
//! (each call takes its lock); others own theirs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use crate::abi::{decimal, LogLevel};
use crate::compile::{CompiledModule, Compiler};
use crate::error::HookError;
use crate::fields::{lend, Fields, Lent};
use crate::head_map::HeadMap;
use crate::headers::HeaderList;
use crate::instance::{CallFailure, HookInstance, Phase};
use crate::module_store::ArtifactCache;
use crate::outcome::{
    Changes, FailureKind, FailurePolicy, HookFailure, HookOutcome, HookSpec, LocalResponse,
    LogRecord, RequestContext, RequestParts, RequestPseudo, ResponseParts, Rewrite,
};
use crate::pool::{InstancePool, PoolKey, SharedInstance};
use crate::sandbox::EpochTicker;
use crate::shared::{Metrics, SharedData};
use crate::state::{CallData, HookLimits, HostState, Services};
use crate::{host, wasi};

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub limits: HookLimits,
    /// Granularity of timeouts: the epoch ticker's period.
    pub epoch_tick: Duration,
    /// Where compiled artifacts are cached by sha256; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Idle instances kept per (container, module, plugin, config).
    pub max_idle_per_pool: usize,
    /// Guest log lines below this level are dropped.
    pub min_log_level: LogLevel,
    /// Largest accepted module (the module store's upload limit).
    pub max_module_bytes: usize,
    /// Instance slots of wasmtime's pooling allocator (default 1024), or `None` to map
    /// memory per instance. Slots make fresh instances several times cheaper (no
    /// `mmap`/`munmap` per request; each slot is address space reserved up front, not
    /// memory) but bound the instances alive at once, pooled and in flight. When they
    /// run out, idle pooled instances are shed and the start is tried once more; past
    /// that a hook fails to start and its policy applies.
    pub allocator_slots: Option<u32>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: HookLimits::default(),
            epoch_tick: Duration::from_millis(1),
            cache_dir: None,
            max_idle_per_pool: 64,
            min_log_level: LogLevel::Trace,
            max_module_bytes: 16 << 20,
            allocator_slots: Some(1024),
        }
    }
}

/// Idle instances dropped when the pooling allocator runs out of slots.
const SHED_ON_EXHAUSTION: usize = 16;

/// Tables a module may define (the store's limits allow as many).
const MAX_TABLES: u32 = 4;

struct EngineInner {
    wasm: Engine,
    linker: Linker<HostState>,
    services: Arc<Services>,
    pool: InstancePool,
    cache: Option<ArtifactCache>,
    config: EngineConfig,
    ticker: EpochTicker,
}

/// The proxy-wasm host. Cheap to clone; all clones share pools, shared data and metrics.
#[derive(Clone)]
pub struct HookEngine {
    inner: Arc<EngineInner>,
}

impl HookEngine {
    pub fn new(config: EngineConfig) -> Result<Self, HookError> {
        let mut wasm_config = Config::new();
        wasm_config.epoch_interruption(true);
        if let Some(slots) = config.allocator_slots {
            let mut pooling = PoolingAllocationConfig::new();
            pooling
                .total_memories(slots)
                .total_tables(slots)
                .total_core_instances(slots)
                .max_tables_per_module(MAX_TABLES)
                .max_memory_size(config.limits.memory_bytes);
            wasm_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        }
        let wasm = Engine::new(&wasm_config).map_err(|e| HookError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&wasm);
        host::add_to_linker(&mut linker).map_err(|e| HookError::Engine(e.to_string()))?;
        wasi::add_to_linker(&mut linker).map_err(|e| HookError::Engine(e.to_string()))?;
        let services = Arc::new(Services {
            shared: SharedData::new(
                config.limits.max_shared_value_bytes,
                config.limits.max_shared_keys_per_container,
            ),
            metrics: Metrics::default(),
            limits: config.limits.clone(),
            min_log_level: config.min_log_level,
        });
        let cache = config
            .cache_dir
            .clone()
            .map(ArtifactCache::new)
            .transpose()?;
        let ticker = EpochTicker::start(wasm.clone(), config.epoch_tick)?;
        Ok(Self {
            inner: Arc::new(EngineInner {
                wasm,
                linker,
                services,
                pool: InstancePool::new(config.max_idle_per_pool),
                cache,
                config,
                ticker,
            }),
        })
    }

    /// Validates and compiles a module (or loads its cached artifact). Rejections carry
    /// the reason the module store returns with its 400.
    pub fn compile(&self, wasm: &[u8]) -> Result<Arc<CompiledModule>, HookError> {
        let compiler = Compiler {
            engine: &self.inner.wasm,
            linker: &self.inner.linker,
            cache: self.inner.cache.as_ref(),
            max_module_bytes: self.inner.config.max_module_bytes,
        };
        compiler.compile(wasm).map(Arc::new)
    }

    /// Compiles a module written in the WebAssembly text format (tests, benches and
    /// `hook run file.wat`); the module store accepts binary modules only.
    pub fn compile_text(&self, wat: &str) -> Result<Arc<CompiledModule>, HookError> {
        self.compile(&crate::compile::wat_to_wasm(wat)?)
    }

    /// Starts the hook of one request. Nothing runs until [`HookSession::on_request`].
    /// Cheap: the spec's identity comes from its cached pool key (no string copies).
    pub fn session(&self, spec: &HookSpec, context: RequestContext) -> HookSession {
        HookSession {
            engine: self.inner.clone(),
            key: PoolKey::of(&context.container_id, spec),
            pooled: !spec.fresh_instance,
            shared: !spec.fresh_instance && spec.shared_instance,
            timeout: spec.timeout,
            policy: spec.policy,
            context,
            lease: Lease::None,
            http_context: None,
            log: Vec::new(),
        }
    }

    /// The request phase alone, for hooks placed only there; the instance goes back to the
    /// pool before this returns. Returns the decision and the hook log.
    pub fn on_request(
        &self,
        spec: &HookSpec,
        parts: &mut RequestParts,
        context: RequestContext,
    ) -> (HookOutcome, Vec<LogRecord>) {
        let mut session = self.session(spec, context);
        let outcome = session.on_request(parts);
        (outcome, session.finish())
    }

    /// The response phase alone (see [`HookEngine::on_request`]).
    pub fn on_response(
        &self,
        spec: &HookSpec,
        parts: &mut ResponseParts,
        context: RequestContext,
    ) -> (HookOutcome, Vec<LogRecord>) {
        let mut session = self.session(spec, context);
        let outcome = session.on_response(parts);
        (outcome, session.finish())
    }

    /// Guest-defined metrics in the Prometheus text format, for `/metrics`.
    pub fn metrics_prometheus(&self) -> String {
        self.inner.services.metrics.prometheus_text()
    }

    /// Calls `proxy_on_tick` on pooled instances (idle, and shared ones not busy) whose
    /// tick period has elapsed, each within `budget`; the proxy calls this from a timer.
    /// Instances that fail are dropped. A shared instance's requests wait for its tick,
    /// so the proxy gives ticks the budget its inline calls have.
    pub fn run_ticks(&self, budget: Duration) {
        let now = Instant::now();
        let deadline = self.inner.ticker.ticks_for(budget);
        for (key, mut instance) in self.inner.pool.drain() {
            if instance.tick_if_due(now, deadline).is_ok() {
                self.inner.pool.give_back(key, instance);
            }
        }
        for (key, shared) in self.inner.pool.shared_instances() {
            // Busy instances tick next time rather than hold up the caller.
            let Some(mut instance) = shared.try_lock() else {
                continue;
            };
            let ticked = instance.tick_if_due(now, deadline);
            drop(instance);
            if ticked.is_err() {
                self.inner.pool.break_shared(&key, &shared);
            }
        }
    }

    /// Pooled instances (idle ones and shared ones), all keys together.
    pub fn idle_instances(&self) -> usize {
        self.inner.pool.idle_count()
    }

    /// Forgets a container's pooled instances (its module was replaced or deleted).
    pub fn evict_container(&self, container_id: &str) {
        self.inner.pool.evict_container(container_id);
    }
}

/// One request's run of one hook. Must be finished (or dropped) so the context ends and
/// a pooled instance returns to its pool.
///
/// Calls are synchronous and bounded by the hook's timeout through the epoch deadline, so
/// a tokio worker is held at most that long; callers with long timeouts can move the
/// session into `spawn_blocking` (it is `Send`).
pub struct HookSession {
    engine: Arc<EngineInner>,
    /// The spec's identity (plugin, root id, configuration, container) and its
    /// compiled module.
    key: PoolKey,
    /// Whether the instance goes back to the pool (not `fresh_instance`).
    pooled: bool,
    /// Whether the pooled instance is this thread's shared one (`shared_instance`).
    shared: bool,
    timeout: Duration,
    policy: FailurePolicy,
    /// Lent to the instance's call data while a phase runs.
    context: RequestContext,
    lease: Lease,
    http_context: Option<i32>,
    log: Vec<LogRecord>,
}

/// The instance a session runs on.
enum Lease {
    /// None yet, or given up.
    None,
    /// This request's alone: fresh, or pooled without sharing.
    Own(HookInstance),
    /// The thread's shared instance, where this request has its context.
    Shared(Arc<SharedInstance>),
}

impl HookSession {
    /// Runs the request phase on `parts`, its headers included. On `Continue` the
    /// parts hold the hook's edits and the returned [`Changes`] describe them. On
    /// any other outcome the parts are as they came.
    pub fn on_request(&mut self, parts: &mut RequestParts) -> HookOutcome {
        self.run_owned(parts)
    }

    /// Runs the request phase on the proxy's head as it is: pseudo-headers and
    /// regular headers lent, no body, no trailers (the hook does not read them).
    /// Edits come back in the outcome's [`Changes`]: header edits to replay, and
    /// rewritten pseudo-headers in [`Changes::rewrite`].
    pub fn on_request_lent(
        &mut self,
        mut pseudo: RequestPseudo<'_>,
        fields: &dyn Fields,
    ) -> HookOutcome {
        self.run_parts(&mut pseudo, fields)
    }

    /// Runs the response phase (see [`HookSession::on_request`]).
    pub fn on_response(&mut self, parts: &mut ResponseParts) -> HookOutcome {
        self.run_owned(parts)
    }

    /// Runs the response phase on the proxy's head as it is (see
    /// [`HookSession::on_request_lent`]): its status and lent fields, no body, no
    /// trailers. A new status comes back in [`Changes::status`].
    pub fn on_response_lent(&mut self, status: u16, fields: &dyn Fields) -> HookOutcome {
        self.run_parts(&mut ResponseStatus(status), fields)
    }

    /// One phase on parts that carry their own headers: they are lent to the call
    /// and, when the guest continued, the edit log is replayed on them.
    fn run_owned<P: OwnedParts>(&mut self, parts: &mut P) -> HookOutcome {
        let headers = std::mem::take(parts.headers_mut());
        let outcome = self.run_parts(parts, &headers);
        *parts.headers_mut() = headers;
        if let HookOutcome::Continue(changes) = &outcome {
            changes.headers.apply_to(parts.headers_mut());
        }
        outcome
    }

    /// One phase over its parts: load them into the call, run the guest, move them
    /// back, and turn the result into the outcome. A failure discards the instance.
    fn run_parts<P: PhaseParts>(&mut self, parts: &mut P, fields: &dyn Fields) -> HookOutcome {
        if let Some(failure) = self.oversized(parts.body()) {
            return failure;
        }
        let ticks = self.engine.ticker.ticks_for(self.timeout);
        self.run_inner(ticks, parts, fields)
            .unwrap_or_else(|failure| {
                self.discard();
                self.failed(failure)
            })
    }

    /// The hook log so far.
    pub fn log(&self) -> &[LogRecord] {
        &self.log
    }

    /// Ends the request's context, returns the instance to its pool, and hands back the
    /// complete hook log.
    pub fn finish(mut self) -> Vec<LogRecord> {
        self.end()
    }

    /// [`HookSession::finish`] in place, for a session kept in a box or a struct
    /// (nothing moved): the session is spent, and dropping it does nothing more.
    pub fn end(&mut self) -> Vec<LogRecord> {
        self.release();
        std::mem::take(&mut self.log)
    }

    fn oversized(&mut self, body: Option<&[u8]>) -> Option<HookOutcome> {
        let limit = self.engine.config.limits.max_body_bytes;
        let len = body.map_or(0, <[u8]>::len);
        (len > limit).then(|| {
            self.failed(CallFailure::new(
                FailureKind::BodyTooLarge,
                format!("body of {len} bytes exceeds the hook limit of {limit}"),
            ))
        })
    }

    /// Loads the parts into the instance's call data, runs the phase's callbacks and
    /// writes the guest's edits into the parts when it continued, all while the
    /// instance is held. Returns the guest's decision (its edits, or its local
    /// response); an error when the instance could not be checked out or the call
    /// failed (the parts untouched either way).
    ///
    /// The call data stays in the store between phases, so its vectors keep their
    /// capacity and nothing of its size is moved per call; it is cleared when the phase
    /// ends, so nothing of a request stays readable in the instance (by a tick, say).
    fn run_inner<P: PhaseParts>(
        &mut self,
        ticks: u64,
        parts: &mut P,
        fields: &dyn Fields,
    ) -> Result<HookOutcome, CallFailure> {
        self.checkout(ticks)?;
        let existing = self.http_context;
        let mut held = match &mut self.lease {
            Lease::Own(instance) => Held::Own(instance),
            Lease::Shared(shared) => Held::Shared(shared.lock().ok_or_else(broken_instance)?),
            Lease::None => return Err(lost_instance()),
        };
        let instance = held.instance();
        instance.set_deadline(ticks);
        let call = &mut instance.store.data_mut().call;
        let (body, trailers) = parts.load(call);
        let context = &self.context;
        let ran = parts.with_pseudo(|pseudo| {
            let headers = pseudo.len() + fields.count();
            lend(
                &Lent {
                    fields,
                    pseudo,
                    context,
                },
                || {
                    match existing {
                        Some(id) => Ok(id),
                        None => instance.new_context(),
                    }
                    .and_then(|id| {
                        instance
                            .run_phase(P::PHASE, id, headers, body, trailers)
                            .map(|()| id)
                    })
                },
            )
        });
        let state = instance.store.data_mut();
        state.drain_log_into(&mut self.log);
        let call = &mut state.call;
        let local = call.local_response.take();
        let changes = parts.restore(call, ran.is_ok() && local.is_none());
        call.end_phase();
        drop(held);
        self.http_context = Some(ran?);
        Ok(match local {
            Some(response) => HookOutcome::LocalResponse(response),
            None => HookOutcome::Continue(changes),
        })
    }

    /// Makes sure the session has an instance: its own, the thread's shared one (started
    /// if the thread has none yet), or a new one.
    fn checkout(&mut self, ticks: u64) -> Result<(), CallFailure> {
        if !matches!(self.lease, Lease::None) {
            return Ok(());
        }
        if self.shared {
            let shared = match self.engine.pool.shared(&self.key) {
                Some(shared) => shared,
                None => {
                    let instance = self.start_instance(ticks)?;
                    self.engine.pool.add_shared(self.key.clone(), instance)
                }
            };
            self.lease = Lease::Shared(shared);
            return Ok(());
        }
        let pooled = if self.pooled {
            self.engine.pool.take(&self.key)
        } else {
            None
        };
        let instance = match pooled {
            Some(instance) => instance,
            None => self.start_instance(ticks)?,
        };
        self.lease = Lease::Own(instance);
        Ok(())
    }

    /// Gives up an instance whose call failed: an own one is dropped, a shared one
    /// leaves the pool (the other requests on it fail their next phase).
    fn discard(&mut self) {
        if let Lease::Shared(shared) = &self.lease {
            self.engine.pool.break_shared(&self.key, shared);
        }
        self.lease = Lease::None;
        self.http_context = None;
    }

    fn start_instance(&mut self, ticks: u64) -> Result<HookInstance, CallFailure> {
        let start = || {
            HookInstance::start(
                &self.engine.wasm,
                self.key.module(),
                self.key.plugin(),
                self.engine.services.clone(),
                ticks,
            )
        };
        // Idle pooled instances hold allocator slots; when they are all taken,
        // shed some and try once more rather than fail the request.
        let started = match start() {
            Err(failure) if failure.slots_exhausted => {
                self.engine.pool.shed(SHED_ON_EXHAUSTION);
                start()
            }
            other => other,
        };
        started.inspect_err(|failure| {
            self.log.push(LogRecord {
                level: LogLevel::Error,
                message: format!("[host] instance failed to start: {}", failure.message),
            });
        })
    }

    fn failed(&mut self, failure: CallFailure) -> HookOutcome {
        let reason = match failure.kind {
            FailureKind::Timeout => format!(
                "hook {} exceeded its timeout of {} ms",
                self.key.plugin_name(),
                self.timeout.as_millis()
            ),
            _ => format!(
                "hook {} failed: {}",
                self.key.plugin_name(),
                failure.message
            ),
        };
        self.log.push(LogRecord {
            level: LogLevel::Error,
            message: format!("[host] {reason}"),
        });
        tracing::warn!(target: "hook", container = %self.context.container_id, "{reason}");
        HookOutcome::Failed(HookFailure {
            kind: failure.kind,
            message: reason.clone(),
            policy: self.policy,
            response: failure_response(failure.kind, &reason),
        })
    }

    /// Ends the HTTP context (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`), then
    /// pools an own instance; fresh or failing instances are dropped.
    fn release(&mut self) {
        let lease = std::mem::replace(&mut self.lease, Lease::None);
        let context = self.http_context.take();
        let ticks = self.engine.ticker.ticks_for(self.timeout);
        match lease {
            Lease::None => {}
            Lease::Shared(shared) => {
                let Some(context) = context else { return };
                // Nothing of the guest runs at the end of a context: no need to
                // wait for the instance.
                if !self.key.module().ends_contexts {
                    return;
                }
                let Some(mut instance) = shared.lock() else {
                    return;
                };
                let ended = end_context(&mut instance, context, ticks, &mut self.log);
                drop(instance);
                if !ended {
                    self.engine.pool.break_shared(&self.key, &shared);
                }
            }
            Lease::Own(mut instance) => {
                if let Some(context) = context {
                    if !end_context(&mut instance, context, ticks, &mut self.log) {
                        return;
                    }
                }
                // Only once: a released session has no instance left to give back.
                if std::mem::take(&mut self.pooled) {
                    self.engine.pool.give_back(self.key.clone(), instance);
                }
            }
        }
    }
}

/// The instance for one call: owned by the session, or the shared one under its lock.
enum Held<'a> {
    Own(&'a mut HookInstance),
    Shared(std::sync::MutexGuard<'a, HookInstance>),
}

impl Held<'_> {
    fn instance(&mut self) -> &mut HookInstance {
        match self {
            Held::Own(instance) => instance,
            Held::Shared(guard) => guard,
        }
    }
}

/// Ends `context` on `instance`, keeping the guest's last log lines; false when the
/// guest failed doing so.
fn end_context(
    instance: &mut HookInstance,
    context: i32,
    ticks: u64,
    log: &mut Vec<LogRecord>,
) -> bool {
    instance.set_deadline(ticks);
    let ended = instance.end_context(context);
    instance.store.data_mut().drain_log_into(log);
    ended.is_ok()
}

impl Drop for HookSession {
    fn drop(&mut self) {
        self.release();
    }
}

fn broken_instance() -> CallFailure {
    CallFailure::new(
        FailureKind::Trap,
        "the instance holding this request failed in another request",
    )
}

fn lost_instance() -> CallFailure {
    CallFailure::new(FailureKind::Trap, "instance unavailable")
}

/// What one phase hands the guest and takes back: the request's parts (owned or
/// the proxy's head) or the response's.
trait PhaseParts {
    const PHASE: Phase;
    fn body(&self) -> Option<&[u8]>;
    /// Starts the (cleared) call data's header map on what the phase lends, copies
    /// in body and trailers; returns the body and trailer counts the phase's
    /// callbacks are given. The parts stay as they are.
    fn load(&self, call: &mut CallData) -> (Option<usize>, usize);
    /// Runs `call` with the parts' pseudo-headers.
    fn with_pseudo<R>(&self, call: impl FnOnce(&[(&str, &[u8])]) -> R) -> R;
    /// Kept (`Continue`): writes the guest's edits of pseudo-headers, body and
    /// trailers into the parts and hands out its header edits. Otherwise the parts
    /// are left as they came.
    fn restore(&mut self, call: &mut CallData, kept: bool) -> Changes;
}

/// Parts that carry their own regular headers (see [`HookSession::on_request`]).
trait OwnedParts: PhaseParts {
    fn headers_mut(&mut self) -> &mut HeaderList;
}

/// The guest's value of a pseudo-header when it differs from `current` and is
/// the first of its name (`seen`).
fn changed_pseudo(seen: &mut bool, value: &[u8], current: &str) -> Option<String> {
    if std::mem::replace(seen, true) || value.is_empty() || value == current.as_bytes() {
        return None;
    }
    String::from_utf8(value.to_vec()).ok()
}

/// The trailers the guest wrote, if it did.
fn restore_trailers(trailers: &mut HeaderList, map: &mut HeadMap) {
    if map.touched {
        *trailers = map.take_regular();
    }
}

/// The request pseudo-headers the guest rewrote, compared with the `current`
/// ones: only the first value of each counts.
fn rewrite_of(head: &mut HeadMap, current: &RequestPseudo<'_>) -> Option<Box<Rewrite>> {
    if !head.pseudo_written {
        return None;
    }
    let mut rewrite = Rewrite::default();
    let mut seen = [false; 3];
    for (name, value) in head.pseudo().iter() {
        let (at, slot, now) = match name {
            b":method" => (0, &mut rewrite.method, current.method),
            b":path" => (1, &mut rewrite.path, current.path),
            b":authority" => (2, &mut rewrite.authority, current.authority),
            _ => continue,
        };
        if let Some(changed) = changed_pseudo(&mut seen[at], value, now) {
            *slot = Some(changed);
        }
    }
    let rewritten =
        rewrite.path.is_some() || rewrite.method.is_some() || rewrite.authority.is_some();
    rewritten.then(|| Box::new(rewrite))
}

/// Owned request parts are their pseudo-headers ([`RequestPseudo`]) plus a body
/// and trailers: each step is the lent head's, then theirs.
impl PhaseParts for RequestParts {
    const PHASE: Phase = Phase::Request;

    fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    fn load(&self, call: &mut CallData) -> (Option<usize>, usize) {
        self.pseudo().load(call);
        if let Some(body) = &self.body {
            call.request_body.extend_from_slice(body);
        }
        call.request_trailers.begin_with(&self.trailers);
        (self.body.as_ref().map(Vec::len), self.trailers.len())
    }

    fn with_pseudo<R>(&self, call: impl FnOnce(&[(&str, &[u8])]) -> R) -> R {
        self.pseudo().with_pseudo(call)
    }

    fn restore(&mut self, call: &mut CallData, kept: bool) -> Changes {
        let mut changes = self.pseudo().restore(call, kept);
        if !kept {
            return changes;
        }
        if let Some(rewrite) = &changes.rewrite {
            for (field, changed) in [
                (&mut self.method, &rewrite.method),
                (&mut self.path, &rewrite.path),
                (&mut self.authority, &rewrite.authority),
            ] {
                if let Some(changed) = changed {
                    field.clone_from(changed);
                }
            }
        }
        restore_trailers(&mut self.trailers, &mut call.request_trailers);
        if call.request_body_replaced {
            self.body = Some(std::mem::take(&mut call.request_body));
            changes.body_replaced = true;
        }
        changes
    }
}

impl OwnedParts for RequestParts {
    fn headers_mut(&mut self) -> &mut HeaderList {
        &mut self.headers
    }
}

impl RequestParts {
    /// The parts' pseudo-headers, as a lent head would give them.
    fn pseudo(&self) -> RequestPseudo<'_> {
        RequestPseudo {
            method: &self.method,
            path: &self.path,
            authority: &self.authority,
            scheme: &self.scheme,
        }
    }
}

impl PhaseParts for RequestPseudo<'_> {
    const PHASE: Phase = Phase::Request;

    fn body(&self) -> Option<&[u8]> {
        None
    }

    fn load(&self, call: &mut CallData) -> (Option<usize>, usize) {
        call.request_headers.begin_lent();
        (None, 0)
    }

    fn with_pseudo<R>(&self, call: impl FnOnce(&[(&str, &[u8])]) -> R) -> R {
        call(&[
            (":method", self.method.as_bytes()),
            (":path", self.path.as_bytes()),
            (":authority", self.authority.as_bytes()),
            (":scheme", self.scheme.as_bytes()),
        ])
    }

    /// Trailers and a body the guest wrote have nowhere to go: the body streams
    /// past the hook.
    fn restore(&mut self, call: &mut CallData, kept: bool) -> Changes {
        if !kept {
            return Changes::default();
        }
        Changes {
            rewrite: rewrite_of(&mut call.request_headers, self),
            headers: std::mem::take(&mut call.request_headers.edits),
            body_replaced: false,
            status: None,
        }
    }
}

impl OwnedParts for ResponseParts {
    fn headers_mut(&mut self) -> &mut HeaderList {
        &mut self.headers
    }
}

/// Owned response parts are their status ([`ResponseStatus`]) plus a body and
/// trailers, as for the request.
impl PhaseParts for ResponseParts {
    const PHASE: Phase = Phase::Response;

    fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    fn load(&self, call: &mut CallData) -> (Option<usize>, usize) {
        ResponseStatus(self.status).load(call);
        if let Some(body) = &self.body {
            call.response_body.extend_from_slice(body);
        }
        call.response_trailers.begin_with(&self.trailers);
        (self.body.as_ref().map(Vec::len), self.trailers.len())
    }

    fn with_pseudo<R>(&self, call: impl FnOnce(&[(&str, &[u8])]) -> R) -> R {
        ResponseStatus(self.status).with_pseudo(call)
    }

    fn restore(&mut self, call: &mut CallData, kept: bool) -> Changes {
        let mut changes = ResponseStatus(self.status).restore(call, kept);
        if !kept {
            return changes;
        }
        if let Some(status) = changes.status {
            self.status = status;
        }
        restore_trailers(&mut self.trailers, &mut call.response_trailers);
        if call.response_body_replaced {
            self.body = Some(std::mem::take(&mut call.response_body));
            changes.body_replaced = true;
        }
        changes
    }
}

/// The `:status` the guest wrote, when it is a valid one other than `current`.
fn status_of(head: &mut HeadMap, current: u16) -> Option<u16> {
    head.pseudo_written
        .then(|| head.pseudo().get(b":status"))
        .flatten()
        .and_then(|value| std::str::from_utf8(value).ok()?.parse::<u16>().ok())
        .filter(|s| *s != current && (100..=599).contains(s))
}

/// A response phase on the proxy's head (see [`HookSession::on_response_lent`]).
struct ResponseStatus(u16);

impl PhaseParts for ResponseStatus {
    const PHASE: Phase = Phase::Response;

    fn body(&self) -> Option<&[u8]> {
        None
    }

    fn load(&self, call: &mut CallData) -> (Option<usize>, usize) {
        call.response_headers.begin_lent();
        (None, 0)
    }

    fn with_pseudo<R>(&self, call: impl FnOnce(&[(&str, &[u8])]) -> R) -> R {
        let mut digits = [0u8; 10];
        call(&[(":status", decimal(u32::from(self.0), &mut digits))])
    }

    /// As for [`RequestPseudo`], trailers and a body the guest wrote are dropped.
    fn restore(&mut self, call: &mut CallData, kept: bool) -> Changes {
        if !kept {
            return Changes::default();
        }
        Changes {
            status: status_of(&mut call.response_headers, self.0),
            headers: std::mem::take(&mut call.response_headers.edits),
            body_replaced: false,
            rewrite: None,
        }
    }
}

fn failure_response(kind: FailureKind, reason: &str) -> LocalResponse {
    let (status, code) = match kind {
        FailureKind::Timeout => (504, "HOOK_TIMEOUT"),
        FailureKind::BodyTooLarge => (413, "HOOK_BODY_TOO_LARGE"),
        FailureKind::Trap | FailureKind::Start => (502, "HOOK_FAILED"),
    };
    let body = format!(
        "{{\"statusCode\":{status},\"message\":\"{}\",\"code\":\"{code}\"}}",
        json_escape(reason)
    );
    LocalResponse {
        status,
        headers: vec![("content-type".to_string(), b"application/json".to_vec())],
        body: body.into_bytes(),
    }
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl FailurePolicy {
    /// Parses the proxy document's `fail-closed` / `fail-open`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fail-closed" => Some(Self::FailClosed),
            "fail-open" => Some(Self::FailOpen),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::MapType;
    use crate::edits::HeaderEdit;
    use crate::fields::{lend_in_test, NoFields};

    fn list(pairs: &[(&str, &str)]) -> HeaderList {
        pairs.iter().copied().collect()
    }

    /// Loads `parts` into `call` and runs `guest` as a guest call would, with the
    /// phase's fields lent; returns the header count the callback would be given.
    fn as_guest<P: PhaseParts>(
        parts: &P,
        call: &mut CallData,
        fields: &dyn Fields,
        guest: impl FnOnce(&mut CallData),
    ) -> usize {
        parts.load(call);
        parts.with_pseudo(|pseudo| {
            lend_in_test(fields, pseudo, || guest(call));
            pseudo.len() + fields.count()
        })
    }

    #[test]
    fn edited_pseudo_headers_come_out_and_unchanged_ones_are_ignored() {
        let mut parts = RequestParts::new("GET", "/old", "x");
        let mut call = CallData::default();
        let count = as_guest(&parts, &mut call, &list(&[("a", "1")]), |call| {
            // The guest rewrites :path, empties :authority, adds a second :path and a header.
            let map = call.map(MapType::RequestHeaders);
            map.replace(b":path", b"/new");
            map.replace(b":authority", b"");
            map.add(b":path", b"/second");
            map.add(b"b", b"2");
        });
        assert_eq!(count, 5);
        let changes = parts.restore(&mut call, true);
        assert_eq!(changes.path(), Some("/new"));
        assert_eq!((changes.method(), changes.authority()), (None, None));
        assert_eq!(
            (parts.path.as_str(), parts.authority.as_str()),
            ("/new", "x")
        );
        assert_eq!(
            changes.headers.iter().collect::<Vec<_>>(),
            [HeaderEdit::Add(b"b", b"2")]
        );
        // Nothing of the phase is left in the maps once it ends.
        call.end_phase();
        assert!(call.request_headers.pseudo().is_empty() && call.request_headers.edits.is_empty());
    }

    #[test]
    fn edits_come_back_without_the_pseudo_headers() {
        let mut parts = RequestParts::new("GET", "/p", "x");
        let mut call = CallData::default();
        as_guest(&parts, &mut call, &NoFields, |call| {
            let map = call.map(MapType::RequestHeaders);
            map.replace(b"a", b"new");
            map.remove(b"b");
            map.add(b"c", b"4");
            assert!(map.touched && !map.pseudo_written);
        });
        let changes = parts.restore(&mut call, true);
        let mut replayed = list(&[("a", "1"), ("b", "2"), ("a", "3")]);
        changes.headers.apply_to(&mut replayed);
        assert_eq!(replayed, list(&[("a", "new"), ("c", "4")]));
        assert_eq!((changes.path(), parts.path.as_str()), (None, "/p"));
        let mut response = ResponseParts {
            status: 200,
            ..ResponseParts::default()
        };
        call.end_phase();
        let count = as_guest(&response, &mut call, &list(&[("server", "up")]), |call| {
            call.map(MapType::ResponseHeaders).add(b"x-hook", b"1");
        });
        assert_eq!(count, 2);
        let changes = response.restore(&mut call, true);
        assert_eq!(
            changes.headers.iter().collect::<Vec<_>>(),
            [HeaderEdit::Add(b"x-hook", b"1")]
        );
        assert_eq!((changes.status, response.status), (None, 200));
    }

    #[test]
    fn a_failed_phase_gives_the_parts_back_unedited() {
        let mut parts = ResponseParts {
            status: 200,
            trailers: list(&[("grpc-status", "0")]),
            ..ResponseParts::default()
        };
        let mut call = CallData::default();
        for _ in 0..2 {
            call.end_phase();
            as_guest(&parts, &mut call, &NoFields, |call| {
                let map = call.map(MapType::ResponseHeaders);
                assert_eq!(map.values(b":status").next(), Some(b"200".as_slice()));
                map.remove(b"server");
                map.replace(b":status", b"503");
                call.map(MapType::ResponseTrailers).remove(b"grpc-status");
            });
            let changes = parts.restore(&mut call, false);
            assert_eq!(changes, Changes::default());
            assert_eq!(parts.status, 200);
            assert_eq!(parts.trailers, list(&[("grpc-status", "0")]));
        }
        // Kept, the trailers come back as the guest left them.
        parts.restore(&mut call, true);
        assert!(parts.trailers.is_empty());
    }

    #[test]
    fn an_edited_status_comes_out() {
        let mut parts = ResponseParts {
            status: 200,
            ..ResponseParts::default()
        };
        let mut call = CallData::default();
        as_guest(&parts, &mut call, &NoFields, |call| {
            call.map(MapType::ResponseHeaders)
                .replace(b":status", b"418");
        });
        let changes = parts.restore(&mut call, true);
        assert_eq!((changes.status, parts.status), (Some(418), 418));
        let mut digits = [0u8; 10];
        assert_eq!(decimal(7, &mut digits), b"7");
        assert_eq!(decimal(599, &mut digits), b"599");
        assert_eq!(decimal(u32::MAX, &mut digits), b"4294967295");
    }

    #[test]
    fn lent_heads_report_rewrites_and_status_in_the_changes() {
        let mut pseudo = RequestPseudo {
            method: "GET",
            path: "/p?q=1",
            authority: "a.test",
            scheme: "http",
        };
        let mut call = CallData::default();
        let count = as_guest(&pseudo, &mut call, &list(&[("h", "1")]), |call| {
            let map = call.map(MapType::RequestHeaders);
            assert_eq!(map.values(b":path").next(), Some(b"/p?q=1".as_slice()));
            assert_eq!(map.values(b":scheme").next(), Some(b"http".as_slice()));
            map.replace(b":method", b"POST");
            map.replace(b":authority", b"a.test");
            map.add(b"x", b"1");
            // Trailers and a body have nowhere to go on a lent head.
            call.map(MapType::RequestTrailers).add(b"t", b"1");
            call.request_body_replaced = true;
        });
        assert_eq!(count, 5);
        let changes = pseudo.restore(&mut call, true);
        assert_eq!(
            (changes.method(), changes.path(), changes.authority()),
            (Some("POST"), None, None)
        );
        assert!(!changes.body_replaced);
        assert_eq!(
            changes.headers.iter().collect::<Vec<_>>(),
            [HeaderEdit::Add(b"x", b"1")]
        );
        // The phase's end clears every map it touched, the trailers it was not
        // lent included, so the next phase starts on clear maps.
        call.end_phase();
        for map in [
            MapType::RequestHeaders,
            MapType::RequestTrailers,
            MapType::ResponseHeaders,
            MapType::ResponseTrailers,
        ] {
            assert!(call.map(map).is_clear(), "{map:?}");
        }
        // Not kept: nothing comes back.
        as_guest(&pseudo, &mut call, &NoFields, |call| {
            call.map(MapType::RequestHeaders).replace(b":path", b"/x");
        });
        assert_eq!(pseudo.restore(&mut call, false), Changes::default());
        call.end_phase();

        let mut status = ResponseStatus(200);
        for (written, expected) in [("404", Some(404)), ("200", None), ("99", None), ("x", None)] {
            let count = as_guest(&status, &mut call, &list(&[("server", "up")]), |call| {
                let map = call.map(MapType::ResponseHeaders);
                assert_eq!(map.values(b":status").next(), Some(b"200".as_slice()));
                map.replace(b":status", written.as_bytes());
            });
            assert_eq!(count, 2);
            assert_eq!(
                status.restore(&mut call, true).status,
                expected,
                "{written}"
            );
            call.end_phase();
        }
    }

    #[test]
    fn failure_responses_are_json_envelopes() {
        let response = failure_response(FailureKind::Timeout, "hook \"x\" slow");
        assert_eq!(response.status, 504);
        let body = String::from_utf8(response.body).unwrap_or_default();
        assert!(body.contains("\"code\":\"HOOK_TIMEOUT\""));
        assert!(body.contains("hook \\\"x\\\" slow"));
    }
}
