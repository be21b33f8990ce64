//! The slice of WASI preview 1 that proxy-wasm guests import (Rust's `wasm32-wasi` std,
//! TinyGo, AssemblyScript's shim): output goes to the hook log, the environment and the
//! arguments are empty, clocks and randomness work, `proc_exit` ends the call, and there
//! is no file or socket. Written here instead of pulling wasmtime-wasi, whose job is to
//! grant exactly the capabilities hooks must not have.

use std::time::Instant;

use wasmtime::{Caller, Linker};

use crate::abi::LogLevel;
use crate::host::{now_nanos, read, write, write_u32};
use crate::state::HostState;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOSYS: i32 = 52;
const ERRNO_FAULT: i32 = 21;

/// The module names WASI guests import from.
pub(crate) const MODULES: &[&str] = &["wasi_snapshot_preview1", "wasi_unstable"];

/// The functions registered for each of [`MODULES`].
pub(crate) const FUNCTIONS: &[&str] = &[
    "fd_write",
    "fd_read",
    "fd_close",
    "fd_seek",
    "fd_fdstat_get",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "proc_exit",
    "sched_yield",
    "poll_oneoff",
];

type Ctx<'a> = Caller<'a, HostState>;

fn errno(result: crate::host::HostResult) -> i32 {
    match result {
        Ok(()) => ERRNO_SUCCESS,
        Err(_) => ERRNO_FAULT,
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    for module in MODULES {
        add_module(linker, module)?;
    }
    Ok(())
}

fn add_module(linker: &mut Linker<HostState>, m: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        m,
        "fd_write",
        |mut c: Ctx<'_>, fd: i32, iovs: i32, n: i32, out: i32| fd_write(&mut c, fd, iovs, n, out),
    )?;
    linker.func_wrap(
        m,
        "fd_read",
        |_c: Ctx<'_>, _fd: i32, _iovs: i32, _n: i32, _out: i32| ERRNO_BADF,
    )?;
    linker.func_wrap(m, "fd_close", |_c: Ctx<'_>, _fd: i32| ERRNO_BADF)?;
    linker.func_wrap(
        m,
        "fd_seek",
        |_c: Ctx<'_>, _fd: i32, _offset: i64, _whence: i32, _out: i32| ERRNO_BADF,
    )?;
    linker.func_wrap(m, "fd_fdstat_get", |_c: Ctx<'_>, _fd: i32, _out: i32| {
        ERRNO_BADF
    })?;
    // EBADF on fd 3 tells libc there are no preopened directories.
    linker.func_wrap(m, "fd_prestat_get", |_c: Ctx<'_>, _fd: i32, _out: i32| {
        ERRNO_BADF
    })?;
    linker.func_wrap(
        m,
        "fd_prestat_dir_name",
        |_c: Ctx<'_>, _fd: i32, _ptr: i32, _len: i32| ERRNO_BADF,
    )?;
    linker.func_wrap(m, "environ_get", |_c: Ctx<'_>, _a: i32, _b: i32| {
        ERRNO_SUCCESS
    })?;
    linker.func_wrap(
        m,
        "environ_sizes_get",
        |mut c: Ctx<'_>, count: i32, size: i32| errno(zero_sizes(&mut c, count, size)),
    )?;
    linker.func_wrap(m, "args_get", |_c: Ctx<'_>, _a: i32, _b: i32| ERRNO_SUCCESS)?;
    linker.func_wrap(
        m,
        "args_sizes_get",
        |mut c: Ctx<'_>, count: i32, size: i32| errno(zero_sizes(&mut c, count, size)),
    )?;
    linker.func_wrap(
        m,
        "clock_time_get",
        |mut c: Ctx<'_>, clock: i32, _precision: i64, out: i32| clock_time_get(&mut c, clock, out),
    )?;
    linker.func_wrap(
        m,
        "clock_res_get",
        |mut c: Ctx<'_>, _clock: i32, out: i32| errno(write(&mut c, out, &1_000u64.to_le_bytes())),
    )?;
    linker.func_wrap(m, "random_get", |mut c: Ctx<'_>, ptr: i32, len: i32| {
        random_get(&mut c, ptr, len)
    })?;
    linker.func_wrap(
        m,
        "proc_exit",
        |mut c: Ctx<'_>, code: i32| -> wasmtime::Result<()> {
            c.data_mut()
                .host_log(LogLevel::Error, format!("guest called proc_exit({code})"));
            Err(wasmtime::Error::msg(format!("proc_exit({code})")))
        },
    )?;
    linker.func_wrap(m, "sched_yield", |_c: Ctx<'_>| ERRNO_SUCCESS)?;
    linker.func_wrap(
        m,
        "poll_oneoff",
        |_c: Ctx<'_>, _in: i32, _out: i32, _n: i32, _events: i32| ERRNO_NOSYS,
    )?;
    Ok(())
}

fn zero_sizes(c: &mut Ctx<'_>, count: i32, size: i32) -> crate::host::HostResult {
    write_u32(c, count, 0)?;
    write_u32(c, size, 0)
}

/// stdout and stderr become hook log lines (info and warn); other descriptors do not exist.
fn fd_write(c: &mut Ctx<'_>, fd: i32, iovs: i32, count: i32, out: i32) -> i32 {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Warn,
        _ => return ERRNO_BADF,
    };
    if !(0..=1024).contains(&count) {
        return ERRNO_INVAL;
    }
    let Ok(table) = read(c, iovs, count * 8) else {
        return ERRNO_FAULT;
    };
    let mut text = Vec::new();
    for iov in table.chunks_exact(8) {
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        match read(c, ptr, len) {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(_) => return ERRNO_FAULT,
        }
    }
    let written = text.len() as u32;
    let message = String::from_utf8_lossy(&text);
    let message = message.trim_end_matches('\n');
    if !message.is_empty() {
        c.data_mut().push_log(level, message.to_string());
    }
    errno(write_u32(c, out, written))
}

fn clock_time_get(c: &mut Ctx<'_>, clock: i32, out: i32) -> i32 {
    let nanos = match clock {
        0 => now_nanos(),
        1..=3 => monotonic_nanos(),
        _ => return ERRNO_INVAL,
    };
    errno(write(c, out, &nanos.to_le_bytes()))
}

fn monotonic_nanos() -> u64 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn random_get(c: &mut Ctx<'_>, ptr: i32, len: i32) -> i32 {
    if !(0..=65_536).contains(&len) {
        return ERRNO_INVAL;
    }
    let mut bytes = Vec::with_capacity(len as usize);
    while bytes.len() < len as usize {
        bytes.extend_from_slice(&c.data_mut().next_random().to_le_bytes());
    }
    bytes.truncate(len as usize);
    errno(write(c, ptr, &bytes))
}
