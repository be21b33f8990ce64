//! Safe wrappers over the host functions: header maps, buffers, properties, shared data,
//! logging, time and local responses.

use crate::codec::{decode_pairs, encode_pairs};
use crate::ffi;

const STATUS_OK: u32 = 0;
const STATUS_NOT_FOUND: u32 = 1;
const STATUS_CAS_MISMATCH: u32 = 8;

/// A host status other than Ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    NotFound,
    CasMismatch,
    Other(u32),
}

fn status(code: u32) -> Result<(), HostError> {
    match code {
        STATUS_OK => Ok(()),
        STATUS_NOT_FOUND => Err(HostError::NotFound),
        STATUS_CAS_MISMATCH => Err(HostError::CasMismatch),
        other => Err(HostError::Other(other)),
    }
}

/// Which header map a call addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    RequestHeaders = 0,
    ResponseHeaders = 2,
}

/// Takes ownership of a buffer the host allocated with our allocator.
fn take_buffer(ptr: *mut u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the host allocated `len` bytes at `ptr` through `proxy_on_memory_allocate`,
    // which hands out `Vec<u8>` allocations of exactly that capacity.
    unsafe { Vec::from_raw_parts(ptr, len, len) }
}

pub fn header(map: Map, name: &str) -> Option<Vec<u8>> {
    let mut ptr = std::ptr::null_mut();
    let mut len = 0;
    // SAFETY: pointers to locals; the host writes both before returning.
    let code = unsafe {
        ffi::proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut ptr, &mut len)
    };
    status(code).ok()?;
    Some(take_buffer(ptr, len))
}

pub fn headers(map: Map) -> Vec<(String, Vec<u8>)> {
    let mut ptr = std::ptr::null_mut();
    let mut len = 0;
    // SAFETY: as in `header`.
    let code = unsafe { ffi::proxy_get_header_map_pairs(map as u32, &mut ptr, &mut len) };
    if status(code).is_err() {
        return Vec::new();
    }
    decode_pairs(&take_buffer(ptr, len)).unwrap_or_default()
}

pub fn add_header(map: Map, name: &str, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: the host reads the given slices only.
    status(unsafe {
        ffi::proxy_add_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn set_header(map: Map, name: &str, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: the host reads the given slices only.
    status(unsafe {
        ffi::proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_header(map: Map, name: &str) -> Result<(), HostError> {
    // SAFETY: the host reads the given slice only.
    status(unsafe { ffi::proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// The plugin configuration (`script.config`).
pub fn plugin_config() -> Vec<u8> {
    let mut ptr = std::ptr::null_mut();
    let mut len = 0;
    // SAFETY: as in `header`; buffer 7 is the plugin configuration.
    let code = unsafe { ffi::proxy_get_buffer_bytes(7, 0, usize::MAX >> 1, &mut ptr, &mut len) };
    if status(code).is_err() {
        return Vec::new();
    }
    take_buffer(ptr, len)
}

/// `path` as the ABI wants it: each segment ending in NUL.
pub(crate) fn property_path(path: &str) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(path.len() + 1);
    encoded.extend(path.bytes().map(|b| if b == b'.' { 0 } else { b }));
    encoded.push(0);
    encoded
}

/// A property by Envoy attribute name, e.g. `property("source.address")`.
pub fn property(path: &str) -> Option<Vec<u8>> {
    let encoded = property_path(path);
    let mut ptr = std::ptr::null_mut();
    let mut len = 0;
    // SAFETY: as in `header`.
    let code =
        unsafe { ffi::proxy_get_property(encoded.as_ptr(), encoded.len(), &mut ptr, &mut len) };
    status(code).ok()?;
    Some(take_buffer(ptr, len))
}

/// A shared-data value and its CAS token.
pub fn shared_get(key: &str) -> Option<(Vec<u8>, u32)> {
    let mut ptr = std::ptr::null_mut();
    let mut len = 0;
    let mut cas = 0;
    // SAFETY: as in `header`.
    let code = unsafe {
        ffi::proxy_get_shared_data(key.as_ptr(), key.len(), &mut ptr, &mut len, &mut cas)
    };
    status(code).ok()?;
    Some((take_buffer(ptr, len), cas))
}

/// Stores a shared-data value; with `cas` the write fails with `CasMismatch` if another
/// instance wrote in between (retry then).
pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
    // SAFETY: the host reads the given slices only.
    status(unsafe {
        ffi::proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    })
}

/// Log levels of the host log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// The lowest level the host keeps; `Trace` when the host does not say.
pub fn log_level() -> Level {
    let mut level = 0u32;
    // SAFETY: the host writes one u32 to the given address.
    let status = unsafe { ffi::proxy_get_log_level(&mut level) };
    match (status, level) {
        (0, 1) => Level::Debug,
        (0, 2) => Level::Info,
        (0, 3) => Level::Warn,
        (0, 4..=5) => Level::Error,
        _ => Level::Trace,
    }
}

pub fn log(level: Level, message: &str) {
    // SAFETY: the host reads the given slice only.
    unsafe {
        ffi::proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

/// Wall-clock time in nanoseconds since the Unix epoch (0 if unavailable).
pub fn now_nanos() -> u64 {
    let mut now = 0u64;
    // SAFETY: pointer to a local.
    let _ = unsafe { ffi::proxy_get_current_time_nanoseconds(&mut now) };
    now
}

pub fn send_local_response(status_code: u16, headers: &[(String, String)], body: &[u8]) {
    let pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    let encoded = encode_pairs(&pairs);
    // SAFETY: the host reads the given slices only.
    unsafe {
        ffi::proxy_send_local_response(
            u32::from(status_code),
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            encoded.as_ptr(),
            encoded.len(),
            -1,
        );
    }
}
