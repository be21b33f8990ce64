//! What a store carries for its instance: limits, handles into the guest, the plugin's
//! identity and the data of the call in progress. Host functions only ever touch this.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Memory, StoreLimits, TypedFunc};

use crate::abi::{LogLevel, MapType};
use crate::head_map::HeadMap;
use crate::outcome::{LocalResponse, LogRecord};
use crate::shared::{Metrics, SharedData};

/// Bounds that keep one hook from exhausting the proxy.
#[derive(Debug, Clone)]
pub struct HookLimits {
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// A buffered request or response body, as delivered and as rewritten.
    pub max_body_bytes: usize,
    /// Total bytes of one header map, and of a local response's headers.
    pub max_header_bytes: usize,
    /// Hook log per instance between drains; further lines are dropped and counted.
    pub max_log_bytes: usize,
    pub max_shared_value_bytes: usize,
    pub max_shared_keys_per_container: usize,
}

impl Default for HookLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 32 << 20,
            max_body_bytes: 1 << 20,
            max_header_bytes: 64 << 10,
            max_log_bytes: 64 << 10,
            max_shared_value_bytes: 64 << 10,
            max_shared_keys_per_container: 10_000,
        }
    }
}

/// Identity and configuration of the plugin an instance runs.
#[derive(Debug, Clone)]
pub(crate) struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub container_id: String,
    pub config: Vec<u8>,
}

/// Engine-wide services hooks reach through host functions.
#[derive(Debug)]
pub(crate) struct Services {
    pub shared: SharedData,
    pub metrics: Metrics,
    pub limits: HookLimits,
    pub min_log_level: LogLevel,
}

/// Exports of the guest the host calls back into while serving a host function.
#[derive(Default)]
pub(crate) struct GuestHandles {
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
}

/// The request/response data of the phase being run.
#[derive(Debug, Default)]
pub(crate) struct CallData {
    pub request_headers: HeadMap,
    pub request_trailers: HeadMap,
    pub request_body: Vec<u8>,
    pub response_headers: HeadMap,
    pub response_trailers: HeadMap,
    pub response_body: Vec<u8>,
    pub request_body_replaced: bool,
    pub response_body_replaced: bool,
    pub local_response: Option<LocalResponse>,
    /// Values written with `proxy_set_property`, read back by `proxy_get_property`.
    pub properties: HashMap<String, Vec<u8>>,
}

impl CallData {
    /// Clears what a phase leaves behind, keeping the allocations (the data stays in
    /// its store from call to call).
    pub fn end_phase(&mut self) {
        for map in [
            &mut self.request_headers,
            &mut self.request_trailers,
            &mut self.response_headers,
            &mut self.response_trailers,
        ] {
            // Most phases leave three of the four maps untouched.
            if !map.is_clear() {
                map.clear();
            }
        }
        self.request_body.clear();
        self.response_body.clear();
        self.request_body_replaced = false;
        self.response_body_replaced = false;
        self.local_response = None;
        if !self.properties.is_empty() {
            self.properties.clear();
        }
    }

    pub fn map(&mut self, map: MapType) -> &mut HeadMap {
        match map {
            MapType::RequestHeaders => &mut self.request_headers,
            MapType::RequestTrailers => &mut self.request_trailers,
            MapType::ResponseHeaders => &mut self.response_headers,
            MapType::ResponseTrailers => &mut self.response_trailers,
        }
    }
}

pub(crate) struct HostState {
    pub limits: StoreLimits,
    pub guest: GuestHandles,
    pub plugin: PluginInfo,
    pub services: Arc<Services>,
    pub call: CallData,
    pub log: Vec<LogRecord>,
    log_bytes: usize,
    log_dropped: usize,
    pub tick_period: Option<Duration>,
    pub random_state: u64,
    /// A buffer host functions fill before handing bytes to the guest, kept so a
    /// call allocates nothing on the host side.
    pub scratch: Vec<u8>,
}

impl HostState {
    pub fn new(limits: StoreLimits, plugin: PluginInfo, services: Arc<Services>) -> Self {
        Self {
            limits,
            guest: GuestHandles::default(),
            plugin,
            services,
            call: CallData::default(),
            log: Vec::new(),
            log_bytes: 0,
            log_dropped: 0,
            tick_period: None,
            random_state: seed(),
            scratch: Vec::new(),
        }
    }

    /// Appends to the hook log within its byte budget; the log is what authors and
    /// operators read when a hook misbehaves, so it must never grow without bound.
    pub fn push_log(&mut self, level: LogLevel, message: String) {
        if level < self.services.min_log_level {
            return;
        }
        if self.log_bytes + message.len() > self.services.limits.max_log_bytes {
            self.log_dropped += 1;
            return;
        }
        tracing::debug!(target: "hook", plugin = %self.plugin.name, level = level.as_str(), "{message}");
        self.log_bytes += message.len();
        self.log.push(LogRecord { level, message });
    }

    /// Moves the log collected so far to the end of `into` (most phases log
    /// nothing: then nothing moves).
    pub fn drain_log_into(&mut self, into: &mut Vec<LogRecord>) {
        if self.log.is_empty() && self.log_dropped == 0 {
            return;
        }
        into.append(&mut self.take_log());
    }

    /// Takes the log collected so far, noting lines dropped over the budget.
    pub fn take_log(&mut self) -> Vec<LogRecord> {
        if self.log_dropped > 0 {
            let dropped = std::mem::take(&mut self.log_dropped);
            self.log.push(LogRecord {
                level: LogLevel::Warn,
                message: format!("hook log truncated: {dropped} lines dropped"),
            });
        }
        self.log_bytes = 0;
        std::mem::take(&mut self.log)
    }

    pub fn host_log(&mut self, level: LogLevel, message: String) {
        self.push_log(level, format!("[host] {message}"));
    }

    /// xorshift64*: `random_get` only seeds guest hash maps, it need not be a CSPRNG.
    pub fn next_random(&mut self) -> u64 {
        let mut x = self.random_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random_state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9E37_79B9_7F4A_7C15);
    hasher.finish() | 1
}
