//! [`HookEngine`] owns the wasmtime engine, the linker, the epoch ticker, the instance
//! pool and the shared services; [`HookSession`] runs one request's hook through its
//! request and response phases on one instance, so per-request guest state survives
//! between the phases.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use crate::abi::{Header, LogLevel};
use crate::compile::{CompiledModule, Compiler};
use crate::error::HookError;
use crate::instance::{CallFailure, HookInstance, Phase};
use crate::module_store::ArtifactCache;
use crate::outcome::{
    Changes, FailureKind, FailurePolicy, HookFailure, HookOutcome, HookSpec, LocalResponse,
    LogRecord, RequestContext, RequestParts, ResponseParts,
};
use crate::pool::{InstancePool, PoolKey};
use crate::sandbox::EpochTicker;
use crate::shared::{Metrics, SharedData};
use crate::state::{HookLimits, HostState, PluginInfo, Services};
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
    /// Instance slots of wasmtime's pooling allocator, or `None` to map memory per
    /// instance. Slots make fresh instances cheaper (no `mmap`/`munmap` per request) but
    /// bound the instances alive at once, pooled and in flight: past it a hook fails to
    /// start and its policy applies.
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
            allocator_slots: None,
        }
    }
}

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
    pub fn session(&self, spec: &HookSpec, context: RequestContext) -> HookSession {
        HookSession {
            engine: self.inner.clone(),
            key: (!spec.fresh_instance).then(|| PoolKey::of(&context.container_id, spec)),
            spec: spec.clone(),
            context,
            instance: None,
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

    /// Calls `proxy_on_tick` on idle pooled instances whose tick period has elapsed;
    /// the proxy calls this from a timer. Instances that fail are dropped.
    pub fn run_ticks(&self) {
        let now = Instant::now();
        for (key, mut instance) in self.inner.pool.drain() {
            let due = instance
                .store
                .data()
                .tick_period
                .is_some_and(|p| now.duration_since(instance.last_tick) >= p);
            if due {
                instance.last_tick = now;
                instance.set_deadline(self.inner.ticker.ticks_for(Duration::from_secs(1)));
                if instance.tick().is_err() {
                    continue;
                }
                instance.store.data_mut().take_log();
            }
            self.inner.pool.give_back(key, instance);
        }
    }

    /// Idle pooled instances, all keys together.
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
    spec: HookSpec,
    key: Option<PoolKey>,
    context: RequestContext,
    instance: Option<HookInstance>,
    http_context: Option<i32>,
    log: Vec<LogRecord>,
}

impl HookSession {
    /// Runs the request phase. On `Continue` the parts hold the hook's edits; on any other
    /// outcome they are unchanged.
    pub fn on_request(&mut self, parts: &mut RequestParts) -> HookOutcome {
        if let Some(failure) = self.oversized(parts.body.as_deref()) {
            return failure;
        }
        let result = self.run(Phase::Request, |call| {
            call.request_headers = request_map(parts);
            call.request_body = parts.body.clone().unwrap_or_default();
            call.request_trailers = parts.trailers.clone();
            (
                parts.headers.len(),
                parts.body.as_ref().map(Vec::len),
                parts.trailers.len(),
            )
        });
        match result {
            Ok(mut state) => match state.call.local_response.take() {
                Some(response) => HookOutcome::LocalResponse(response),
                None => HookOutcome::Continue(apply_request(parts, state)),
            },
            Err(failure) => self.failed(failure),
        }
    }

    /// Runs the response phase (see [`HookSession::on_request`]).
    pub fn on_response(&mut self, parts: &mut ResponseParts) -> HookOutcome {
        if let Some(failure) = self.oversized(parts.body.as_deref()) {
            return failure;
        }
        let result = self.run(Phase::Response, |call| {
            call.response_headers = response_map(parts);
            call.response_body = parts.body.clone().unwrap_or_default();
            call.response_trailers = parts.trailers.clone();
            (
                parts.headers.len(),
                parts.body.as_ref().map(Vec::len),
                parts.trailers.len(),
            )
        });
        match result {
            Ok(mut state) => match state.call.local_response.take() {
                Some(response) => HookOutcome::LocalResponse(response),
                None => HookOutcome::Continue(apply_response(parts, state)),
            },
            Err(failure) => self.failed(failure),
        }
    }

    /// The hook log so far.
    pub fn log(&self) -> &[LogRecord] {
        &self.log
    }

    /// Ends the request's context, returns the instance to its pool, and hands back the
    /// complete hook log.
    pub fn finish(mut self) -> Vec<LogRecord> {
        self.release();
        std::mem::take(&mut self.log)
    }

    fn oversized(&mut self, body: Option<&[u8]>) -> Option<HookOutcome> {
        let limit = self.engine.config.limits.max_body_bytes;
        let len = body.map_or(0, <[u8]>::len);
        (len > limit).then(|| {
            self.failed(CallFailure {
                kind: FailureKind::BodyTooLarge,
                message: format!("body of {len} bytes exceeds the hook limit of {limit}"),
            })
        })
    }

    /// Prepares the call data, runs the phase's callbacks, and returns the resulting call
    /// data. A failure discards the instance.
    fn run(
        &mut self,
        phase: Phase,
        load: impl FnOnce(&mut crate::state::CallData) -> (usize, Option<usize>, usize),
    ) -> Result<PhaseResult, CallFailure> {
        let ticks = self.engine.ticker.ticks_for(self.spec.timeout);
        let result = self.run_inner(phase, ticks, load);
        if let Some(instance) = self.instance.as_mut() {
            self.log.extend(instance.store.data_mut().take_log());
        }
        if result.is_err() {
            self.instance = None;
            self.http_context = None;
        }
        result
    }

    fn run_inner(
        &mut self,
        phase: Phase,
        ticks: u64,
        load: impl FnOnce(&mut crate::state::CallData) -> (usize, Option<usize>, usize),
    ) -> Result<PhaseResult, CallFailure> {
        let request_context = self.context.clone();
        let existing = self.http_context;
        let instance = self.checkout(ticks)?;
        instance.set_deadline(ticks);
        let call = &mut instance.store.data_mut().call;
        call.local_response = None;
        call.context = request_context;
        let (headers, body, trailers) = load(call);
        let context = match existing {
            Some(id) => id,
            None => instance.new_context()?,
        };
        instance.run_phase(phase, context, headers, body, trailers)?;
        let call = std::mem::take(&mut instance.store.data_mut().call);
        self.http_context = Some(context);
        Ok(PhaseResult { call })
    }

    /// The session's instance: already checked out, idle in the pool, or a new one.
    fn checkout(&mut self, ticks: u64) -> Result<&mut HookInstance, CallFailure> {
        if self.instance.is_none() {
            let pooled = self.key.as_ref().and_then(|k| self.engine.pool.take(k));
            let instance = match pooled {
                Some(instance) => instance,
                None => self.start_instance(ticks)?,
            };
            self.instance = Some(instance);
        }
        self.instance.as_mut().ok_or_else(lost_instance)
    }

    fn start_instance(&mut self, ticks: u64) -> Result<HookInstance, CallFailure> {
        let plugin = PluginInfo {
            name: self.spec.name.clone(),
            root_id: self.spec.root_id.clone(),
            container_id: self.context.container_id.clone(),
            config: self.spec.config.clone(),
        };
        HookInstance::start(
            &self.engine.wasm,
            &self.spec.module,
            plugin,
            self.engine.services.clone(),
            ticks,
        )
        .inspect_err(|failure| {
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
                self.spec.name,
                self.spec.timeout.as_millis()
            ),
            _ => format!("hook {} failed: {}", self.spec.name, failure.message),
        };
        self.log.push(LogRecord {
            level: LogLevel::Error,
            message: format!("[host] {reason}"),
        });
        tracing::warn!(target: "hook", container = %self.context.container_id, "{reason}");
        HookOutcome::Failed(HookFailure {
            kind: failure.kind,
            message: reason.clone(),
            policy: self.spec.policy,
            response: failure_response(failure.kind, &reason),
        })
    }

    /// Ends the HTTP context (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`), then
    /// pools the instance; fresh or failing instances are dropped.
    fn release(&mut self) {
        let Some(mut instance) = self.instance.take() else {
            return;
        };
        if let Some(context) = self.http_context.take() {
            instance.set_deadline(self.engine.ticker.ticks_for(self.spec.timeout));
            let ended = instance.end_context(context);
            self.log.extend(instance.store.data_mut().take_log());
            if ended.is_err() {
                return;
            }
        }
        let Some(key) = self.key.take() else {
            return;
        };
        instance.store.data_mut().call = Default::default();
        self.engine.pool.give_back(key, instance);
    }
}

impl Drop for HookSession {
    fn drop(&mut self) {
        self.release();
    }
}

fn lost_instance() -> CallFailure {
    CallFailure {
        kind: FailureKind::Trap,
        message: "instance unavailable".to_string(),
    }
}

struct PhaseResult {
    call: crate::state::CallData,
}

fn request_map(parts: &RequestParts) -> Vec<Header> {
    let mut map = Vec::with_capacity(parts.headers.len() + 4);
    map.push((":method".to_string(), parts.method.as_bytes().to_vec()));
    map.push((":path".to_string(), parts.path.as_bytes().to_vec()));
    map.push((
        ":authority".to_string(),
        parts.authority.as_bytes().to_vec(),
    ));
    map.push((":scheme".to_string(), parts.scheme.as_bytes().to_vec()));
    map.extend(parts.headers.iter().cloned());
    map
}

fn response_map(parts: &ResponseParts) -> Vec<Header> {
    let mut map = Vec::with_capacity(parts.headers.len() + 1);
    map.push((":status".to_string(), parts.status.to_string().into_bytes()));
    map.extend(parts.headers.iter().cloned());
    map
}

/// Splits a map the guest edited into pseudo-headers and regular headers.
fn split_pseudo(map: Vec<Header>) -> (Vec<Header>, Vec<Header>) {
    map.into_iter().partition(|(k, _)| k.starts_with(':'))
}

fn pseudo_text(pseudo: &[Header], name: &str) -> Option<String> {
    pseudo
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
}

/// Writes the guest's edits into the request and describes them.
fn apply_request(parts: &mut RequestParts, result: PhaseResult) -> Changes {
    let call = result.call;
    if !call.request_touched {
        return body_change(
            call.request_body_replaced,
            call.request_body,
            &mut parts.body,
        );
    }
    let (pseudo, headers) = split_pseudo(call.request_headers);
    let mut changes = header_diff(&parts.headers, &headers);
    if let Some(path) = pseudo_text(&pseudo, ":path").filter(|p| *p != parts.path && !p.is_empty())
    {
        changes.path = Some(path.clone());
        parts.path = path;
    }
    if let Some(method) =
        pseudo_text(&pseudo, ":method").filter(|m| *m != parts.method && !m.is_empty())
    {
        changes.method = Some(method.clone());
        parts.method = method;
    }
    if let Some(authority) =
        pseudo_text(&pseudo, ":authority").filter(|a| *a != parts.authority && !a.is_empty())
    {
        changes.authority = Some(authority.clone());
        parts.authority = authority;
    }
    parts.headers = headers;
    parts.trailers = call.request_trailers;
    if call.request_body_replaced {
        changes.body_replaced = true;
        parts.body = Some(call.request_body);
    }
    changes
}

fn apply_response(parts: &mut ResponseParts, result: PhaseResult) -> Changes {
    let call = result.call;
    if !call.response_touched {
        return body_change(
            call.response_body_replaced,
            call.response_body,
            &mut parts.body,
        );
    }
    let (pseudo, headers) = split_pseudo(call.response_headers);
    let mut changes = header_diff(&parts.headers, &headers);
    let status = pseudo_text(&pseudo, ":status").and_then(|s| s.parse::<u16>().ok());
    if let Some(status) = status.filter(|s| *s != parts.status && (100..=599).contains(s)) {
        changes.status = Some(status);
        parts.status = status;
    }
    parts.headers = headers;
    parts.trailers = call.response_trailers;
    if call.response_body_replaced {
        changes.body_replaced = true;
        parts.body = Some(call.response_body);
    }
    changes
}

/// The changes of a phase whose header maps the guest never wrote: at most
/// a replaced body.
fn body_change(replaced: bool, body: Vec<u8>, target: &mut Option<Vec<u8>>) -> Changes {
    if replaced {
        *target = Some(body);
    }
    Changes {
        body_replaced: replaced,
        ..Changes::default()
    }
}

/// Headers added and removed, counting repeats.
fn header_diff(before: &[Header], after: &[Header]) -> Changes {
    let mut remaining: Vec<&Header> = before.iter().collect();
    let mut added = Vec::new();
    for header in after {
        match remaining.iter().position(|h| *h == header) {
            Some(at) => {
                remaining.swap_remove(at);
            }
            None => added.push(header.clone()),
        }
    }
    Changes {
        added_headers: added,
        removed_headers: remaining.into_iter().cloned().collect(),
        ..Changes::default()
    }
}

/// The JSON error fail-closed answers with, in the API's error envelope.
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

    #[test]
    fn header_diff_counts_repeats() {
        let before = vec![
            ("a".to_string(), b"1".to_vec()),
            ("a".to_string(), b"1".to_vec()),
        ];
        let after = vec![
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ];
        let diff = header_diff(&before, &after);
        assert_eq!(diff.added_headers, vec![("b".to_string(), b"2".to_vec())]);
        assert_eq!(diff.removed_headers, vec![("a".to_string(), b"1".to_vec())]);
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
