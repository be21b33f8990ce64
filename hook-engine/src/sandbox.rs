//! Time limits: one thread per engine advances wasmtime's epoch every tick, and each call
//! into a guest gets a deadline in ticks. A guest that loops forever traps at its deadline
//! on its own thread, without signals and without a thread per call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    tick: Duration,
}

impl EpochTicker {
    pub fn start(engine: wasmtime::Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hook-epoch".to_string())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            tick,
        })
    }

    /// Ticks for `timeout`, rounded up, plus one because the current tick is partly spent.
    pub fn ticks_for(&self, timeout: Duration) -> u64 {
        // In u64 nanoseconds (584 years): a u128 division is a library call, and
        // this runs in every phase of every hooked request.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let tick = nanos(self.tick).max(1);
        nanos(timeout).div_ceil(tick).saturating_add(1)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
