//! One live guest: its store, the callbacks it exports, and the proxy-wasm lifecycle
//! (`_initialize`/`_start`, root context, `proxy_on_vm_start`, `proxy_on_configure`, then
//! one HTTP context per request). Every call into the guest runs under an epoch deadline.

use std::sync::Arc;

use wasmtime::{Instance, Store, StoreLimitsBuilder, Trap, TypedFunc};

use crate::abi::ACTION_CONTINUE;
use crate::compile::{error_text, CompiledModule};
use crate::outcome::FailureKind;
use crate::state::{HostState, PluginInfo, Services};

/// The root context every instance creates first; HTTP contexts count up from it.
pub(crate) const ROOT_CONTEXT: i32 = 1;

/// Why a guest call failed; the instance that produced it must not be reused.
#[derive(Debug, Clone)]
pub(crate) struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
    /// The pooling allocator had no free slot (worth retrying once idle
    /// instances are shed).
    pub slots_exhausted: bool,
}

impl CallFailure {
    fn from_error(error: &wasmtime::Error, otherwise: FailureKind) -> Self {
        let kind = match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => FailureKind::Timeout,
            _ => otherwise,
        };
        Self {
            kind,
            message: error_text(error),
            slots_exhausted: error
                .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some(),
        }
    }

    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            slots_exhausted: false,
        }
    }

    fn start(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Start, message)
    }
}

type Call1 = TypedFunc<i32, ()>;
type Call2 = TypedFunc<(i32, i32), i32>;
type Call3 = TypedFunc<(i32, i32, i32), i32>;

/// The callbacks the host drives; absent ones behave as "continue".
struct GuestExports {
    context_create: Option<TypedFunc<(i32, i32), ()>>,
    vm_start: Option<Call2>,
    configure: Option<Call2>,
    request_headers: Option<Call3>,
    request_body: Option<Call3>,
    request_trailers: Option<Call2>,
    response_headers: Option<Call3>,
    response_body: Option<Call3>,
    response_trailers: Option<Call2>,
    done: Option<TypedFunc<i32, i32>>,
    log: Option<Call1>,
    delete: Option<Call1>,
    tick: Option<Call1>,
}

impl GuestExports {
    /// The exports, leaving out the callbacks `inert` names (calling them would
    /// change nothing).
    fn load(instance: &Instance, store: &mut Store<HostState>, inert: &[&str]) -> Self {
        macro_rules! get {
            ($name:literal) => {
                if inert.contains(&$name) {
                    None
                } else {
                    instance.get_typed_func(&mut *store, $name).ok()
                }
            };
        }
        Self {
            context_create: get!("proxy_on_context_create"),
            vm_start: get!("proxy_on_vm_start"),
            configure: get!("proxy_on_configure"),
            request_headers: get!("proxy_on_request_headers"),
            request_body: get!("proxy_on_request_body"),
            request_trailers: get!("proxy_on_request_trailers"),
            response_headers: get!("proxy_on_response_headers"),
            response_body: get!("proxy_on_response_body"),
            response_trailers: get!("proxy_on_response_trailers"),
            done: get!("proxy_on_done"),
            log: get!("proxy_on_log"),
            delete: get!("proxy_on_delete"),
            tick: get!("proxy_on_tick"),
        }
    }
}

/// Which phase a stream callback serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Request,
    Response,
}

pub(crate) struct HookInstance {
    pub store: Store<HostState>,
    /// Boxed: thirteen typed handles make a large struct, and instances move
    /// between the pool and sessions on every request.
    exports: Box<GuestExports>,
    next_context: i32,
    /// When `proxy_on_tick` last ran (or the instance started).
    pub last_tick: std::time::Instant,
}

impl HookInstance {
    /// Instantiates and initialises the plugin within `deadline_ticks` epochs.
    pub fn start(
        engine: &wasmtime::Engine,
        module: &CompiledModule,
        plugin: PluginInfo,
        services: Arc<Services>,
        deadline_ticks: u64,
    ) -> Result<Self, CallFailure> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(services.limits.memory_bytes)
            .memories(1)
            .tables(4)
            .table_elements(1 << 20)
            .instances(1)
            .build();
        let config_len = plugin.config.len() as i32;
        let mut store = Store::new(engine, HostState::new(limits, plugin, services));
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks);
        let instance = module
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallFailure::from_error(&e, FailureKind::Start))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| CallFailure::start("module exports no memory"))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .map_err(|_| CallFailure::start("module exports no usable allocator"))?;
        store.data_mut().guest.memory = Some(memory);
        store.data_mut().guest.alloc = Some(alloc);
        let exports = Box::new(GuestExports::load(&instance, &mut store, &module.inert));
        let mut this = Self {
            store,
            exports,
            next_context: ROOT_CONTEXT + 1,
            last_tick: std::time::Instant::now(),
        };
        this.initialize(&instance)?;
        this.configure(config_len)?;
        Ok(this)
    }

    /// Runs `_initialize` (reactors) or else `_start` (older guests put their setup there).
    fn initialize(&mut self, instance: &Instance) -> Result<(), CallFailure> {
        let entry = instance
            .get_typed_func::<(), ()>(&mut self.store, "_initialize")
            .or_else(|_| instance.get_typed_func::<(), ()>(&mut self.store, "_start"));
        if let Ok(entry) = entry {
            entry
                .call(&mut self.store, ())
                .map_err(|e| CallFailure::from_error(&e, FailureKind::Start))?;
        }
        Ok(())
    }

    fn configure(&mut self, config_len: i32) -> Result<(), CallFailure> {
        if let Some(create) = &self.exports.context_create {
            create
                .call(&mut self.store, (ROOT_CONTEXT, 0))
                .map_err(|e| CallFailure::from_error(&e, FailureKind::Start))?;
        }
        let steps = [
            (&self.exports.vm_start, 0, "proxy_on_vm_start"),
            (&self.exports.configure, config_len, "proxy_on_configure"),
        ];
        for (func, size, name) in steps {
            let Some(func) = func else { continue };
            let accepted = func
                .call(&mut self.store, (ROOT_CONTEXT, size))
                .map_err(|e| CallFailure::from_error(&e, FailureKind::Start))?;
            if accepted == 0 {
                return Err(CallFailure::start(format!("{name} returned false")));
            }
        }
        Ok(())
    }

    /// Creates the HTTP context of a new request.
    pub fn new_context(&mut self) -> Result<i32, CallFailure> {
        let id = self.next_context;
        self.next_context = self.next_context.checked_add(1).unwrap_or(ROOT_CONTEXT + 1);
        if let Some(create) = &self.exports.context_create {
            create
                .call(&mut self.store, (id, ROOT_CONTEXT))
                .map_err(|e| CallFailure::from_error(&e, FailureKind::Trap))?;
        }
        Ok(id)
    }

    pub fn set_deadline(&mut self, ticks: u64) {
        self.store.set_epoch_deadline(ticks);
    }

    /// Runs the headers, body and trailers callbacks of a phase in order, stopping early
    /// once the guest sends a local response. Bodies arrive whole (end of stream), so a
    /// "pause" only matters through `send_local_response`.
    pub fn run_phase(
        &mut self,
        phase: Phase,
        context: i32,
        headers: usize,
        body: Option<usize>,
        trailers: usize,
    ) -> Result<(), CallFailure> {
        // The exports are borrowed, not cloned: cloning a `TypedFunc` clones its
        // registered type (reference counting in the engine's type registry).
        let exports = &self.exports;
        let (on_headers, on_body, on_trailers) = match phase {
            Phase::Request => (
                &exports.request_headers,
                &exports.request_body,
                &exports.request_trailers,
            ),
            Phase::Response => (
                &exports.response_headers,
                &exports.response_body,
                &exports.response_trailers,
            ),
        };
        let store = &mut self.store;
        let end_of_stream = i32::from(body.is_none() && trailers == 0);
        if let Some(f) = on_headers {
            call_stream(store, f, (context, headers as i32, end_of_stream))?;
        }
        if let (Some(f), Some(len)) = (on_body, body) {
            if store.data().call.local_response.is_none() {
                call_stream(store, f, (context, len as i32, i32::from(trailers == 0)))?;
            }
        }
        if let (Some(f), true) = (on_trailers, trailers > 0) {
            if store.data().call.local_response.is_none() {
                let action = f
                    .call(&mut *store, (context, trailers as i32))
                    .map_err(|e| CallFailure::from_error(&e, FailureKind::Trap))?;
                note_pause(store, action);
            }
        }
        Ok(())
    }

    /// Ends a request's context: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn end_context(&mut self, context: i32) -> Result<(), CallFailure> {
        let trap = |e: wasmtime::Error| CallFailure::from_error(&e, FailureKind::Trap);
        if let Some(done) = &self.exports.done {
            done.call(&mut self.store, context).map_err(trap)?;
        }
        if let Some(log) = &self.exports.log {
            log.call(&mut self.store, context).map_err(trap)?;
        }
        if let Some(delete) = &self.exports.delete {
            delete.call(&mut self.store, context).map_err(trap)?;
        }
        Ok(())
    }

    /// Calls `proxy_on_tick` on the root context when the guest's tick period has
    /// elapsed at `now`, within `deadline_ticks` epochs; its log lines are dropped.
    pub fn tick_if_due(
        &mut self,
        now: std::time::Instant,
        deadline_ticks: u64,
    ) -> Result<(), CallFailure> {
        let due = self
            .store
            .data()
            .tick_period
            .is_some_and(|p| now.duration_since(self.last_tick) >= p);
        let Some(tick) = self.exports.tick.as_ref().filter(|_| due) else {
            return Ok(());
        };
        self.last_tick = now;
        self.store.set_epoch_deadline(deadline_ticks);
        let ticked = tick
            .call(&mut self.store, ROOT_CONTEXT)
            .map_err(|e| CallFailure::from_error(&e, FailureKind::Trap));
        self.store.data_mut().take_log();
        ticked
    }
}

fn call_stream(
    store: &mut Store<HostState>,
    f: &Call3,
    args: (i32, i32, i32),
) -> Result<(), CallFailure> {
    let action = f
        .call(&mut *store, args)
        .map_err(|e| CallFailure::from_error(&e, FailureKind::Trap))?;
    note_pause(store, action);
    Ok(())
}

fn note_pause(store: &mut Store<HostState>, action: i32) {
    if action != ACTION_CONTINUE && store.data().call.local_response.is_none() {
        store.data_mut().host_log(
            crate::abi::LogLevel::Debug,
            "guest paused without a local response; continuing (bodies arrive whole)".to_string(),
        );
    }
}
