//! The proxy-wasm v0.2.1 host functions (`env.proxy_*`) an HTTP filter needs. Each one
//! validates what the guest hands over (pointers, header syntax, sizes) and answers with a
//! [`Status`]; only a failure of the guest itself (its allocator trapping) becomes a trap.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker};

use crate::abi::{
    check_header, decode_pairs, encode_pairs_into, lowercase_checked, BufferType, LogLevel,
    MapType, MetricType, Status,
};
use crate::headers::HeaderList;
use crate::outcome::LocalResponse;
use crate::properties;
use crate::state::HostState;

/// Why a host function stops: a status for the guest, or a trap that ends the call.
pub(crate) enum Fault {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for Fault {
    fn from(status: Status) -> Self {
        Fault::Status(status)
    }
}

impl From<wasmtime::Error> for Fault {
    fn from(error: wasmtime::Error) -> Self {
        Fault::Trap(error)
    }
}

pub(crate) type HostResult<T = ()> = Result<T, Fault>;

/// Converts a host function's result into what the guest sees.
pub(crate) fn finish(result: HostResult) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(Status::Ok.code()),
        Err(Fault::Status(status)) => Ok(status.code()),
        Err(Fault::Trap(error)) => Err(error),
    }
}

type Ctx<'a> = Caller<'a, HostState>;

/// Reads `len` bytes of guest memory at `ptr`.
pub(crate) fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> HostResult<Vec<u8>> {
    let memory = caller.data().guest.memory.ok_or(Status::InternalFailure)?;
    guest_slice(memory.data(caller), ptr, len).map(<[u8]>::to_vec)
}

/// The `len` bytes at `ptr` of the guest's memory `guest`, in place.
pub(crate) fn guest_slice(guest: &[u8], ptr: i32, len: i32) -> HostResult<&[u8]> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::BadArgument)?;
    Ok(guest.get(start..end).ok_or(Status::BadArgument)?)
}

/// Writes `bytes` into guest memory at `ptr`.
pub(crate) fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> HostResult {
    let memory = caller.data().guest.memory.ok_or(Status::InternalFailure)?;
    let start = ptr as u32 as usize;
    let end = start.checked_add(bytes.len()).ok_or(Status::BadArgument)?;
    let target = memory
        .data_mut(caller)
        .get_mut(start..end)
        .ok_or(Status::BadArgument)?;
    target.copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

/// Hands `bytes` to the guest: allocates with the guest's allocator, copies, and stores
/// the pointer and length where the guest asked. Empty values are `(0, 0)`.
pub(crate) fn return_bytes(
    caller: &mut Ctx<'_>,
    bytes: &[u8],
    ptr_out: i32,
    len_out: i32,
) -> HostResult {
    let address = if bytes.is_empty() {
        0
    } else {
        let len = i32::try_from(bytes.len()).map_err(|_| Status::BadArgument)?;
        // Taken out for the call and put back (a clone would touch the engine's
        // type registry on every returned value).
        let alloc = caller
            .data_mut()
            .guest
            .alloc
            .take()
            .ok_or(Status::InternalFailure)?;
        let called = alloc.call(&mut *caller, len);
        caller.data_mut().guest.alloc = Some(alloc);
        let address = called?;
        if address == 0 {
            return Err(Status::InternalFailure.into());
        }
        write(caller, address, bytes)?;
        address
    };
    write_u32(caller, ptr_out, address as u32)?;
    write_u32(caller, len_out, bytes.len() as u32)
}

/// Hands the guest what `fill` writes into the state's scratch buffer, so a call
/// allocates nothing on the host side. `fill` sees guest memory and the state at
/// once, and says whether there was anything to hand over (`false`: `NotFound`).
fn return_filled(
    c: &mut Ctx<'_>,
    ptr_out: i32,
    len_out: i32,
    fill: impl FnOnce(&[u8], &mut HostState, &mut Vec<u8>) -> HostResult<bool>,
) -> HostResult {
    let memory = c.data().guest.memory.ok_or(Status::InternalFailure)?;
    let mut bytes = std::mem::take(&mut c.data_mut().scratch);
    bytes.clear();
    let (guest, state) = memory.data_and_store_mut(&mut *c);
    let result = match fill(guest, state, &mut bytes) {
        Ok(true) => return_bytes(c, &bytes, ptr_out, len_out),
        Ok(false) => Err(Status::NotFound.into()),
        Err(fault) => Err(fault),
    };
    c.data_mut().scratch = bytes;
    result
}

/// Registers every implemented `env.proxy_*` function.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    add_logging_and_time(linker)?;
    add_header_maps(linker)?;
    add_buffers(linker)?;
    add_stream_control(linker)?;
    add_properties(linker)?;
    add_shared_data(linker)?;
    add_metrics(linker)?;
    Ok(())
}

/// Names of the `env` functions this module registers, for import checks.
pub(crate) const IMPLEMENTED: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_done",
    "proxy_set_effective_context",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
];

/// Spec functions (and ones older SDKs import) linked as accepted no-ops: continuing is
/// implicit here because bodies arrive whole.
pub(crate) const NO_OPS: &[&str] = &[
    "proxy_continue_request",
    "proxy_continue_response",
    "proxy_clear_route_cache",
];

/// Spec functions linked so every guest instantiates, answering `Unimplemented`.
pub(crate) const UNIMPLEMENTED: &[&str] = &[
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_call_foreign_function",
    "proxy_get_header_map_size",
    "proxy_get_buffer_status",
    "proxy_get_configuration",
    "proxy_set_log_level",
];

fn add_logging_and_time(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: Ctx<'_>, level: i32, ptr: i32, len: i32| finish(log(&mut c, level, ptr, len)),
    )?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, out: i32| {
        let level = c.data().services.min_log_level as u32;
        finish(write_u32(&mut c, out, level))
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx<'_>, out: i32| finish(write(&mut c, out, &now_nanos().to_le_bytes())),
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx<'_>, millis: i32| {
            let millis = millis as u32;
            c.data_mut().tick_period =
                (millis > 0).then(|| std::time::Duration::from_millis(u64::from(millis)));
            finish(Ok(()))
        },
    )?;
    Ok(())
}

fn log(c: &mut Ctx<'_>, level: i32, ptr: i32, len: i32) -> HostResult {
    let level = LogLevel::from_abi(level);
    if level < c.data().services.min_log_level {
        return Ok(());
    }
    let message = read(c, ptr, len)?;
    let message = String::from_utf8_lossy(&message).into_owned();
    c.data_mut().push_log(level, message);
    Ok(())
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn map_type(value: i32) -> HostResult<MapType> {
    MapType::from_abi(value).ok_or_else(|| match value {
        4..=7 => Status::NotFound.into(),
        _ => Status::BadArgument.into(),
    })
}

fn add_header_maps(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, map: i32, ptr_out: i32, len_out: i32| {
            finish(get_map_pairs(&mut c, map, ptr_out, len_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx<'_>, map: i32, ptr: i32, len: i32| finish(set_map_pairs(&mut c, map, ptr, len)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32, ptr_out: i32, len_out: i32| {
            finish(get_map_value(&mut c, map, kp, kl, ptr_out, len_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            finish(put_map_value(&mut c, map, kp, kl, vp, vl, false))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            finish(put_map_value(&mut c, map, kp, kl, vp, vl, true))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32| finish(remove_map_value(&mut c, map, kp, kl)),
    )?;
    Ok(())
}

fn get_map_pairs(c: &mut Ctx<'_>, map: i32, ptr_out: i32, len_out: i32) -> HostResult {
    let map = map_type(map)?;
    return_filled(c, ptr_out, len_out, |_, state, out| {
        encode_pairs_into(state.call.map(map).pairs(), out);
        Ok(true)
    })
}

fn set_map_pairs(c: &mut Ctx<'_>, map: i32, ptr: i32, len: i32) -> HostResult {
    let map = map_type(map)?;
    let raw = read(c, ptr, len)?;
    let pairs = decode_pairs(&raw).ok_or(Status::ParseFailure)?;
    let mut headers = HeaderList::new();
    for (name, value) in pairs {
        refuse_invalid(c.data_mut(), &name, &value)?;
        headers.push_lowercase(&name, &value);
    }
    within_header_bytes(c.data_mut(), headers.size())?;
    c.data_mut().call.map(map).set_all(&headers);
    Ok(())
}

/// The values of the name (read in place in guest memory), joined with commas as
/// Envoy presents repeated headers.
fn get_map_value(
    c: &mut Ctx<'_>,
    map: i32,
    kp: i32,
    kl: i32,
    ptr_out: i32,
    len_out: i32,
) -> HostResult {
    let map = map_type(map)?;
    return_filled(c, ptr_out, len_out, |guest, state, out| {
        let key = guest_slice(guest, kp, kl)?;
        let mut values = state.call.map(map).values(key);
        let Some(first) = values.next() else {
            return Ok(false);
        };
        out.extend_from_slice(first);
        for more in values {
            out.push(b',');
            out.extend_from_slice(more);
        }
        Ok(true)
    })
}

/// Adds or replaces a value: name and value checked in place in guest memory, the
/// name lowercased into the state's scratch buffer, nothing allocated.
fn put_map_value(
    c: &mut Ctx<'_>,
    map: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
    replace: bool,
) -> HostResult {
    let map = map_type(map)?;
    let memory = c.data().guest.memory.ok_or(Status::InternalFailure)?;
    let (guest, state) = memory.data_and_store_mut(&mut *c);
    let name = guest_slice(guest, kp, kl)?;
    let value = guest_slice(guest, vp, vl)?;
    let uppercase = refuse_invalid(state, name, value)?;
    with_lowercase(state, name, uppercase, |state, name| {
        put_checked(state, map, name, value, replace)
    })
}

/// Runs `f` with `name` lowercased, as the maps and the edit log keep names.
/// Guests mostly write lowercase names already (`uppercase` false): those are
/// used in place; others are lowercased into the state's scratch buffer, nothing
/// allocated.
fn with_lowercase<R>(
    state: &mut HostState,
    name: &[u8],
    uppercase: bool,
    f: impl FnOnce(&mut HostState, &[u8]) -> R,
) -> R {
    if !uppercase {
        return f(state, name);
    }
    let mut lower = std::mem::take(&mut state.scratch);
    lower.clear();
    lower.extend(name.iter().map(u8::to_ascii_lowercase));
    let result = f(state, &lower);
    state.scratch = lower;
    result
}

/// [`put_map_value`] once the header passed its checks; the size the map would
/// have afterwards is checked before anything changes (a replace drops every
/// value of the name, an add keeps them).
fn put_checked(
    state: &mut HostState,
    map: MapType,
    name: &[u8],
    value: &[u8],
    replace: bool,
) -> HostResult {
    let limit = state.services.limits.max_header_bytes;
    let added = name.len() + value.len();
    let current = state.call.map(map);
    // The bound needs no loaded map; only a write near the limit loads it.
    if current.size_bound() + added > limit {
        let dropped = if replace { current.size_of(name) } else { 0 };
        let size = current.size() - dropped + added;
        within_header_bytes(state, size)?;
    }
    let current = state.call.map(map);
    if replace {
        current.replace(name, value);
    } else {
        current.add(name, value);
    }
    Ok(())
}

fn remove_map_value(c: &mut Ctx<'_>, map: i32, kp: i32, kl: i32) -> HostResult {
    let map = map_type(map)?;
    let memory = c.data().guest.memory.ok_or(Status::InternalFailure)?;
    let (guest, state) = memory.data_and_store_mut(&mut *c);
    let key = guest_slice(guest, kp, kl)?;
    let uppercase = key.iter().any(u8::is_ascii_uppercase);
    with_lowercase(state, key, uppercase, |state, key| {
        state.call.map(map).remove(key)
    });
    Ok(())
}

/// Refuses a header a guest writes that is not valid HTTP, logging why; else
/// whether its name has uppercase letters.
fn refuse_invalid(state: &mut HostState, name: &[u8], value: &[u8]) -> HostResult<bool> {
    check_header(name, value).map_err(|why| {
        let shown = String::from_utf8_lossy(name).into_owned();
        state.host_log(LogLevel::Warn, format!("refused header {shown:?}: {why:?}"));
        Status::BadArgument.into()
    })
}

/// Refuses a header change that would leave a map of `size` bytes over the limit.
fn within_header_bytes(state: &mut HostState, size: usize) -> HostResult {
    let limit = state.services.limits.max_header_bytes;
    if size > limit {
        state.host_log(
            LogLevel::Warn,
            format!("refused header change: map would hold {size} bytes (limit {limit})"),
        );
        return Err(Status::BadArgument.into());
    }
    Ok(())
}

fn add_buffers(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, kind: i32, start: i32, max: i32, ptr_out: i32, len_out: i32| {
            finish(get_buffer(&mut c, kind, start, max, ptr_out, len_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Ctx<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            finish(set_buffer(&mut c, kind, start, size, ptr, len))
        },
    )?;
    Ok(())
}

fn get_buffer(
    c: &mut Ctx<'_>,
    kind: i32,
    start: i32,
    max: i32,
    ptr_out: i32,
    len_out: i32,
) -> HostResult {
    let kind = BufferType::from_abi(kind).ok_or(Status::NotFound)?;
    let state = c.data();
    let buffer: &[u8] = match kind {
        BufferType::RequestBody => &state.call.request_body,
        BufferType::ResponseBody => &state.call.response_body,
        BufferType::VmConfiguration => &[],
        BufferType::PluginConfiguration => &state.plugin.config,
    };
    let start = start as u32 as usize;
    if start > buffer.len() {
        return Err(Status::BadArgument.into());
    }
    let end = start.saturating_add(max as u32 as usize).min(buffer.len());
    let slice = buffer[start..end].to_vec();
    return_bytes(c, &slice, ptr_out, len_out)
}

fn set_buffer(c: &mut Ctx<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32) -> HostResult {
    let kind = BufferType::from_abi(kind).ok_or(Status::NotFound)?;
    let data = read(c, ptr, len)?;
    let limit = c.data().services.limits.max_body_bytes;
    let call = &mut c.data_mut().call;
    let (buffer, replaced) = match kind {
        BufferType::RequestBody => (&mut call.request_body, &mut call.request_body_replaced),
        BufferType::ResponseBody => (&mut call.response_body, &mut call.response_body_replaced),
        _ => return Err(Status::BadArgument.into()),
    };
    let start = (start as u32 as usize).min(buffer.len());
    let end = start.saturating_add(size as u32 as usize).min(buffer.len());
    if buffer.len() - (end - start) + data.len() > limit {
        c.data_mut().host_log(
            LogLevel::Warn,
            format!("refused body write over {limit} bytes"),
        );
        return Err(Status::BadArgument.into());
    }
    buffer.splice(start..end, data);
    *replaced = true;
    Ok(())
}

fn add_stream_control(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |_c: Ctx<'_>, _stream: i32| finish(Ok(())),
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Ctx<'_>, stream: i32| {
            c.data_mut().host_log(
                LogLevel::Info,
                format!("close_stream({stream}) answered with 502"),
            );
            c.data_mut().call.local_response = Some(LocalResponse {
                status: 502,
                headers: Vec::new(),
                body: Vec::new(),
            });
            finish(Ok(()))
        },
    )?;
    linker.func_wrap("env", "proxy_done", |_c: Ctx<'_>| finish(Ok(())))?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |_c: Ctx<'_>, _id: i32| finish(Ok(())),
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         status: i32,
         _details_ptr: i32,
         _details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         _grpc_status: i32| {
            finish(send_local_response(
                &mut c,
                status,
                (body_ptr, body_len),
                (headers_ptr, headers_len),
            ))
        },
    )?;
    Ok(())
}

fn send_local_response(
    c: &mut Ctx<'_>,
    status: i32,
    body: (i32, i32),
    headers: (i32, i32),
) -> HostResult {
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (200..=599).contains(s))
        .ok_or(Status::BadArgument)?;
    if body.1 as u32 as usize > c.data().services.limits.max_body_bytes {
        return Err(Status::BadArgument.into());
    }
    let body = read(c, body.0, body.1)?;
    let raw_headers = read(c, headers.0, headers.1)?;
    let pairs = decode_pairs(&raw_headers).ok_or(Status::ParseFailure)?;
    let mut checked = Vec::with_capacity(pairs.len());
    let mut size = 0;
    for (name, value) in pairs {
        refuse_invalid(c.data_mut(), &name, &value)?;
        size += name.len() + value.len();
        checked.push(lowercase_checked(name, value).ok_or(Status::BadArgument)?);
    }
    within_header_bytes(c.data_mut(), size)?;
    c.data_mut().call.local_response = Some(LocalResponse {
        status,
        headers: checked,
        body,
    });
    Ok(())
}

fn add_properties(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, ptr: i32, len: i32, ptr_out: i32, len_out: i32| {
            finish(get_property(&mut c, ptr, len, ptr_out, len_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Ctx<'_>, ptr: i32, len: i32, vp: i32, vl: i32| {
            finish(set_property(&mut c, ptr, len, vp, vl))
        },
    )?;
    Ok(())
}

/// Resolves the property, its path read in place in guest memory.
fn get_property(c: &mut Ctx<'_>, ptr: i32, len: i32, ptr_out: i32, len_out: i32) -> HostResult {
    return_filled(c, ptr_out, len_out, |guest, state, out| {
        let raw = guest_slice(guest, ptr, len)?;
        let mut segments = properties::Segments::default();
        Ok(if segments.split(raw) {
            properties::resolve_into(state, segments.as_slice(), out)
        } else {
            // Deeper than any path we answer: the general way.
            properties::resolve_into(state, &properties::parse_path(raw), out)
        })
    })
}

/// Guest-set properties live for the request and are bounded like headers.
fn set_property(c: &mut Ctx<'_>, ptr: i32, len: i32, vp: i32, vl: i32) -> HostResult {
    let path = properties::property_key(&properties::parse_path(&read(c, ptr, len)?));
    let value = read(c, vp, vl)?;
    let limit = c.data().services.limits.max_header_bytes;
    let used: usize = c
        .data()
        .call
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if used + path.len() + value.len() > limit {
        return Err(Status::BadArgument.into());
    }
    c.data_mut().call.properties.insert(path, value);
    Ok(())
}

fn add_shared_data(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx<'_>, kp: i32, kl: i32, ptr_out: i32, len_out: i32, cas_out: i32| {
            finish(get_shared(&mut c, kp, kl, ptr_out, len_out, cas_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| {
            finish(set_shared(&mut c, kp, kl, vp, vl, cas))
        },
    )?;
    Ok(())
}

fn get_shared(
    c: &mut Ctx<'_>,
    kp: i32,
    kl: i32,
    ptr_out: i32,
    len_out: i32,
    cas_out: i32,
) -> HostResult {
    let key = read(c, kp, kl)?;
    let state = c.data();
    let (value, cas) = state
        .services
        .shared
        .get(&state.plugin.container_id, &key)
        .ok_or(Status::NotFound)?;
    return_bytes(c, &value, ptr_out, len_out)?;
    write_u32(c, cas_out, cas)
}

fn set_shared(c: &mut Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> HostResult {
    let key = read(c, kp, kl)?;
    let value = read(c, vp, vl)?;
    let state = c.data();
    match state
        .services
        .shared
        .set(&state.plugin.container_id, &key, &value, cas as u32)
    {
        Status::Ok => Ok(()),
        other => Err(other.into()),
    }
}

fn add_metrics(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, kind: i32, ptr: i32, len: i32, id_out: i32| {
            finish(define_metric(&mut c, kind, ptr, len, id_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Ctx<'_>, id: i32, offset: i64| {
            let state = c.data();
            let status =
                state
                    .services
                    .metrics
                    .update(&state.plugin.container_id, id as u32, |v, _| {
                        *v = v.saturating_add(offset)
                    });
            status.code()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Ctx<'_>, id: i32, value: i64| {
            let state = c.data();
            let status =
                state
                    .services
                    .metrics
                    .update(&state.plugin.container_id, id as u32, |v, _| *v = value);
            status.code()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Ctx<'_>, id: i32, out: i32| {
            let state = c.data();
            let value = state
                .services
                .metrics
                .get(&state.plugin.container_id, id as u32);
            finish(match value {
                Some(v) => write(&mut c, out, &v.to_le_bytes()),
                None => Err(Status::NotFound.into()),
            })
        },
    )?;
    Ok(())
}

fn define_metric(c: &mut Ctx<'_>, kind: i32, ptr: i32, len: i32, id_out: i32) -> HostResult {
    let kind = MetricType::from_abi(kind).ok_or(Status::BadArgument)?;
    let name = String::from_utf8(read(c, ptr, len)?).map_err(|_| Status::BadArgument)?;
    let state = c.data();
    let id = state
        .services
        .metrics
        .define(&state.plugin.container_id, &name, kind);
    write_u32(c, id_out, id)
}
