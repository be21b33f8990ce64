//! The exports the host calls (`proxy_on_*`), routing them to the registered [`Hook`].
//! Only compiled for wasm32.

use std::cell::RefCell;

use crate::{host, Action, Hook, Request, Response};

extern "Rust" {
    /// Defined by [`crate::register_hook!`] in the hook crate.
    fn __hooks_sdk_create_hook() -> Box<dyn Hook>;
}

thread_local! {
    static HOOK: RefCell<Option<Box<dyn Hook>>> = RefCell::new(None);
}

fn with_hook<R>(f: impl FnOnce(&mut dyn Hook) -> R) -> R {
    HOOK.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: `register_hook!` defines this function with this signature.
            *slot = Some(unsafe { __hooks_sdk_create_hook() });
        }
        match slot.as_mut() {
            Some(hook) => f(hook.as_mut()),
            None => unreachable!("hook created above"),
        }
    })
}

fn answer(action: Action) -> u32 {
    match action {
        Action::Continue => 0,
        Action::Respond(reply) => {
            host::send_local_response(reply.status, &reply.headers, &reply.body);
            1
        }
    }
}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// Marks the module as a reactor: the host calls this once, then the callbacks, and the
/// linker does not wrap every export in constructor/destructor calls as for a command.
#[no_mangle]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    // SAFETY: called once by the host before any other export, as wasi-libc expects.
    unsafe {
        __wasm_call_ctors();
    }
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The allocator the host uses to hand us values: a `Vec<u8>` of exactly `size` bytes,
/// reclaimed by `host::take_buffer`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _root_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root_context_id: u32, _size: usize) -> u32 {
    crate::refresh_log_level();
    let config = crate::config();
    u32::from(with_hook(|hook| hook.on_configure(&config)))
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context_id: u32, _headers: usize, _end: u32) -> u32 {
    answer(with_hook(|hook| hook.on_request(&mut Request::new())))
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context_id: u32, _headers: usize, _end: u32) -> u32 {
    answer(with_hook(|hook| hook.on_response(&mut Response::new())))
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_context_id: u32) {}
