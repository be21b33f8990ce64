//! What a store carries for its instance: limits, handles into the guest, the plugin's
//! identity and the data of the call in progress. Host functions only ever touch this.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Memory, StoreLimits, TypedFunc};

use crate::abi::{LogLevel, MapType};
use crate::headers::HeaderList;
use crate::outcome::{LocalResponse, LogRecord, RequestContext};
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
    pub request_headers: HeaderList,
    pub request_trailers: HeaderList,
    pub request_body: Vec<u8>,
    pub response_headers: HeaderList,
    pub response_trailers: HeaderList,
    pub response_body: Vec<u8>,
    pub request_body_replaced: bool,
    pub response_body_replaced: bool,
    pub local_response: Option<LocalResponse>,
    pub context: RequestContext,
    /// Values written with `proxy_set_property`, read back by `proxy_get_property`.
    pub properties: HashMap<String, Vec<u8>>,
    /// Whether the guest wrote the request / response header map (trailers
    /// included): an untouched phase hands nothing back.
    pub request_touched: bool,
    pub response_touched: bool,
    /// Whether the guest wrote a pseudo-header of the request / response header map
    /// (or replaced the whole map). Until it does, the pseudo-headers are the first
    /// entries of the map, as loaded, and the rest are the regular headers.
    pub request_pseudo_touched: bool,
    pub response_pseudo_touched: bool,
    /// The guest's header edits, recorded as they happen so the proxy applies them to
    /// its own map without comparing maps.
    pub request_edits: Edits,
    pub response_edits: Edits,
}

/// Regular headers a guest added to and removed from a header map, net: a header it
/// added and then removed again appears in neither list. Pseudo-headers are read from
/// the map itself.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    pub added: HeaderList,
    pub removed: HeaderList,
}

impl Edits {
    fn add(&mut self, name: &[u8], value: &[u8]) {
        if name.starts_with(b":") {
            return;
        }
        match self.removed.position_of_pair(name, value) {
            Some(at) => self.removed.remove(at),
            None => self.added.push(name, value),
        }
    }

    fn remove(&mut self, name: &[u8], value: &[u8]) {
        if name.starts_with(b":") {
            return;
        }
        match self.added.position_of_pair(name, value) {
            Some(at) => self.added.remove(at),
            None => self.removed.push(name, value),
        }
    }

    fn clear(&mut self) {
        self.added.clear();
        self.removed.clear();
    }
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
            map.clear();
        }
        self.request_body.clear();
        self.response_body.clear();
        self.request_body_replaced = false;
        self.response_body_replaced = false;
        self.local_response = None;
        if !self.properties.is_empty() {
            self.properties.clear();
        }
        self.request_touched = false;
        self.response_touched = false;
        self.request_pseudo_touched = false;
        self.response_pseudo_touched = false;
        self.request_edits.clear();
        self.response_edits.clear();
    }

    pub fn map(&self, map: MapType) -> &HeaderList {
        match map {
            MapType::RequestHeaders => &self.request_headers,
            MapType::RequestTrailers => &self.request_trailers,
            MapType::ResponseHeaders => &self.response_headers,
            MapType::ResponseTrailers => &self.response_trailers,
        }
    }

    /// The map and, for header maps, its edit log; marks the phase touched (and its
    /// pseudo-headers, when `pseudo`).
    fn map_mut(&mut self, map: MapType, pseudo: bool) -> (&mut HeaderList, Option<&mut Edits>) {
        match map {
            MapType::RequestHeaders => {
                self.request_touched = true;
                self.request_pseudo_touched |= pseudo;
                (&mut self.request_headers, Some(&mut self.request_edits))
            }
            MapType::RequestTrailers => {
                self.request_touched = true;
                (&mut self.request_trailers, None)
            }
            MapType::ResponseHeaders => {
                self.response_touched = true;
                self.response_pseudo_touched |= pseudo;
                (&mut self.response_headers, Some(&mut self.response_edits))
            }
            MapType::ResponseTrailers => {
                self.response_touched = true;
                (&mut self.response_trailers, None)
            }
        }
    }

    /// `proxy_add_header_map_value`: appends a value (`name` checked and lowercase).
    pub fn add_header(&mut self, map: MapType, name: &[u8], value: &[u8]) {
        let (headers, edits) = self.map_mut(map, name.starts_with(b":"));
        if let Some(edits) = edits {
            edits.add(name, value);
        }
        headers.push(name, value);
    }

    /// `proxy_replace_header_map_value`: the first value of the name takes the new value
    /// in place and its other values go; an absent name is appended.
    pub fn replace_header(&mut self, map: MapType, name: &[u8], value: &[u8]) {
        let (headers, mut edits) = self.map_mut(map, name.starts_with(b":"));
        let Some(first) = headers.position_of(name, 0) else {
            if let Some(edits) = edits {
                edits.add(name, value);
            }
            headers.push(name, value);
            return;
        };
        if let (Some(edits), Some((_, old))) = (edits.as_deref_mut(), headers.get_index(first)) {
            edits.remove(name, old);
        }
        headers.set_value(first, value);
        if headers.position_of(name, first + 1).is_some() {
            let mut index = 0;
            headers.retain(
                |n, _| {
                    index += 1;
                    index <= first + 1 || n != name
                },
                |n, v| {
                    if let Some(edits) = edits.as_deref_mut() {
                        edits.remove(n, v);
                    }
                },
            );
        }
        if let Some(edits) = edits {
            edits.add(name, value);
        }
    }

    /// `proxy_remove_header_map_value`: every value of the name goes.
    pub fn remove_header(&mut self, map: MapType, name: &[u8]) {
        let (headers, mut edits) = self.map_mut(map, name.starts_with(b":"));
        headers.retain(
            |n, _| !n.eq_ignore_ascii_case(name),
            |n, v| {
                if let Some(edits) = edits.as_deref_mut() {
                    edits.remove(n, v);
                }
            },
        );
    }

    /// `proxy_set_header_map_pairs`: the whole map is replaced.
    pub fn set_headers(&mut self, map: MapType, replacement: HeaderList) {
        let (headers, edits) = self.map_mut(map, true);
        let old = std::mem::replace(headers, replacement);
        if let Some(edits) = edits {
            for (name, value) in old.iter() {
                edits.remove(name, value);
            }
            for (name, value) in headers.iter() {
                edits.add(name, value);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> HeaderList {
        pairs.iter().copied().collect()
    }

    #[test]
    fn replace_keeps_the_first_position_and_logs_what_went() {
        let mut call = CallData {
            request_headers: list(&[("a", "1"), ("x", "old"), ("b", "2"), ("x", "dup")]),
            ..CallData::default()
        };
        call.replace_header(MapType::RequestHeaders, b"x", b"new");
        assert_eq!(
            call.request_headers,
            list(&[("a", "1"), ("x", "new"), ("b", "2")])
        );
        assert_eq!(call.request_edits.added, list(&[("x", "new")]));
        assert_eq!(
            call.request_edits.removed,
            list(&[("x", "old"), ("x", "dup")])
        );
        assert!(call.request_touched && !call.response_touched);
    }

    #[test]
    fn edits_are_net_of_what_the_guest_undid() {
        let mut call = CallData {
            response_headers: list(&[(":status", "200"), ("server", "nginx")]),
            ..CallData::default()
        };
        let map = MapType::ResponseHeaders;
        call.add_header(map, b"x-tmp", b"1");
        call.remove_header(map, b"X-TMP");
        call.remove_header(map, b"server");
        call.add_header(map, b"server", b"nginx");
        call.replace_header(map, b":status", b"404");
        call.add_header(map, b"x-new", b"2");
        let edits = &call.response_edits;
        assert!(edits.removed.is_empty(), "{:?}", edits.removed);
        assert_eq!(edits.added, list(&[("x-new", "2")]));
        assert_eq!(
            call.response_headers,
            list(&[(":status", "404"), ("server", "nginx"), ("x-new", "2")])
        );
    }

    #[test]
    fn replacing_the_whole_map_logs_every_difference() {
        let mut call = CallData {
            request_headers: list(&[(":path", "/"), ("a", "1"), ("b", "2")]),
            ..CallData::default()
        };
        call.set_headers(
            MapType::RequestHeaders,
            list(&[(":path", "/x"), ("b", "2"), ("c", "3")]),
        );
        assert_eq!(call.request_edits.removed, list(&[("a", "1")]));
        assert_eq!(call.request_edits.added, list(&[("c", "3")]));
    }

    #[test]
    fn trailers_are_written_without_an_edit_log() {
        let mut call = CallData::default();
        call.add_header(MapType::RequestTrailers, b"grpc-status", b"0");
        assert_eq!(call.request_trailers, list(&[("grpc-status", "0")]));
        assert!(call.request_edits.added.is_empty());
        assert!(call.request_touched);
    }
}
