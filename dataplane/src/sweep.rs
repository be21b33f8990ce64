//! A worker's sweep: the deadlines its housekeeping tick enforces, so the
//! request path arms no timer.
//!
//! A tokio or hyper timer costs, per request, a clock read, a timer-wheel
//! insert and removal under the driver's lock, and (hyper's) an allocation.
//! Here the worker keeps a coarse clock that its housekeeping tick advances
//! ([`TICK`]); the request path only stores readings of it, and each tick
//! sweeps what is waiting and wakes what is overdue. A deadline therefore
//! fires between one and two ticks after it is due, never before. Two
//! deadlines live here:
//!
//! - the request-head deadline of HTTP/1 connections
//!   (`timeouts.header_read_ms`), with hyper's rule (its
//!   `header_read_timeout`): a connection is closed, with no response, when a
//!   complete request head has not arrived within the timeout of the moment
//!   it started waiting for one, which is its accept, or the end of the
//!   previous exchange (request body read and response written), whichever is
//!   later. An idle keep-alive connection is therefore closed after the same
//!   time. The connection's HTTP/1 server (`downstream`) tells its
//!   [`Watch`] when it starts waiting for a head and when one is complete;
//! - any other wait bounded by [`Sweep::within`] (the upstream's response
//!   head, `timeouts.upstream_response_header_ms`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// The housekeeping tick: how often deadlines are checked, and the coarse
/// clock's resolution.
pub const TICK: Duration = Duration::from_millis(200);

const TICK_MS: u64 = TICK.as_millis() as u64;

/// `Watch::since` while no head is awaited (inside an exchange, or the
/// connection is not HTTP/1).
const NOT_WAITING: u64 = u64::MAX;

thread_local! {
    /// The worker's coarse clock: milliseconds from its sweep's creation to
    /// its last housekeeping tick.
    static NOW_MS: Cell<u64> = const { Cell::new(0) };
}

fn now() -> u64 {
    NOW_MS.with(Cell::get)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// One connection's head deadline, shared by its task and the sweep. The
/// connection's HTTP/1 server says when it starts waiting for a head and
/// when one is complete; the sweep wakes the task once the wait is overdue.
pub struct Watch {
    /// Since when a head is awaited, or [`NOT_WAITING`].
    since: Cell<u64>,
    expired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Watch {
    /// A head is awaited from now (the end of the previous exchange).
    pub fn waiting(&self) {
        self.since.set(now());
    }

    /// A head is complete: no deadline until the next wait.
    pub fn not_waiting(&self) {
        self.since.set(NOT_WAITING);
    }

    /// The connection is not HTTP/1: no head deadline from now on.
    pub fn disarm(&self) {
        self.not_waiting();
    }

    /// Resolves when the sweep found the head deadline passed.
    pub fn expired(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.expired.get() {
                return Poll::Ready(());
            }
            keep_waker(&mut self.waker.borrow_mut(), cx.waker());
            Poll::Pending
        })
    }

    /// Whether, at `now`, the connection has waited for a head longer than
    /// `limit_ms` plus a tick (readings of the clock are up to a tick old).
    fn overdue(&self, now: u64, limit_ms: u64) -> bool {
        let since = self.since.get();
        since != NOT_WAITING && now.saturating_sub(since) >= limit_ms.saturating_add(TICK_MS)
    }

    fn expire(&self) {
        self.expired.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// Stores `new` unless `slot` already wakes the same task.
fn keep_waker(slot: &mut Option<Waker>, new: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(new)) {
        *slot = Some(new.clone());
    }
}

/// A wait bounded by [`Sweep::within`] outlived its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// One bounded wait: free (`due == 0` and no waker), waiting, or expired.
#[derive(Default)]
struct Wait {
    due: u64,
    expired: bool,
    waker: Option<Waker>,
}

/// Bounded waits, in slots reused through a free list: registering one
/// allocates nothing once the worker is warm.
#[derive(Default)]
struct Waits {
    slots: Vec<Wait>,
    free: Vec<usize>,
}

/// A registered wait; dropping it frees the slot.
struct Slot<'a> {
    waits: &'a RefCell<Waits>,
    index: usize,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut waits = self.waits.borrow_mut();
        waits.slots[self.index] = Wait::default();
        waits.free.push(self.index);
    }
}

/// A worker's coarse clock, its connections' head deadlines and its
/// bounded waits.
pub struct Sweep {
    epoch: Instant,
    head_limit_ms: u64,
    watches: RefCell<Vec<Weak<Watch>>>,
    waits: RefCell<Waits>,
    /// The worker is shutting down (see [`Sweep::stop`]).
    stopping: Cell<bool>,
}

impl Sweep {
    /// `head_limit`: the header timeout of the worker's connections.
    pub fn new(head_limit: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            head_limit_ms: millis(head_limit),
            watches: RefCell::new(Vec::new()),
            waits: RefCell::new(Waits::default()),
            stopping: Cell::new(false),
        }
    }

    /// Shutdown: connections waiting for a head are expired at once (they
    /// close); the others see [`Sweep::stopping`] when their exchange ends.
    pub fn stop(&self) {
        self.stopping.set(true);
        for watch in self.watches.borrow().iter().filter_map(Weak::upgrade) {
            if watch.since.get() != NOT_WAITING {
                watch.expire();
            }
        }
    }

    /// Whether the worker is shutting down: no connection is kept alive.
    pub fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// A new connection, waiting for its first head from now.
    pub fn watch(&self) -> Rc<Watch> {
        let watch = Rc::new(Watch {
            since: Cell::new(now()),
            expired: Cell::new(false),
            waker: RefCell::new(None),
        });
        self.watches.borrow_mut().push(Rc::downgrade(&watch));
        watch
    }

    /// Runs `fut` for at most `limit` (between one and two ticks more):
    /// `Err(Elapsed)` past it. Nothing is registered while `fut` is ready
    /// at once.
    pub async fn within<F: Future>(&self, limit: Duration, fut: F) -> Result<F::Output, Elapsed> {
        let mut fut = std::pin::pin!(fut);
        let mut slot: Option<Slot<'_>> = None;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match &slot {
                None => slot = Some(self.register(limit, cx.waker())),
                Some(s) => {
                    let mut waits = self.waits.borrow_mut();
                    let wait = &mut waits.slots[s.index];
                    if wait.expired {
                        return Poll::Ready(Err(Elapsed));
                    }
                    keep_waker(&mut wait.waker, cx.waker());
                }
            }
            Poll::Pending
        })
        .await
    }

    fn register(&self, limit: Duration, waker: &Waker) -> Slot<'_> {
        let wait = Wait {
            // Due a tick late, as readings of the clock are up to a tick old.
            due: now()
                .saturating_add(millis(limit))
                .saturating_add(TICK_MS)
                .max(1),
            expired: false,
            waker: Some(waker.clone()),
        };
        let mut waits = self.waits.borrow_mut();
        let index = match waits.free.pop() {
            Some(i) => {
                waits.slots[i] = wait;
                i
            }
            None => {
                waits.slots.push(wait);
                waits.slots.len() - 1
            }
        };
        Slot {
            waits: &self.waits,
            index,
        }
    }

    /// The housekeeping tick: advances the clock, forgets closed
    /// connections, and wakes whatever is overdue.
    pub fn tick(&self) {
        let now = millis(self.epoch.elapsed());
        NOW_MS.with(|c| c.set(now));
        self.watches.borrow_mut().retain(|weak| {
            let Some(watch) = weak.upgrade() else {
                return false;
            };
            if watch.overdue(now, self.head_limit_ms) {
                watch.expire();
                return false;
            }
            true
        });
        let mut due = Vec::new();
        for wait in &mut self.waits.borrow_mut().slots {
            if wait.due != 0 && !wait.expired && wait.due <= now {
                wait.expired = true;
                due.extend(wait.waker.take());
            }
        }
        // Woken outside the borrow: a waker may run code that registers.
        due.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_now(ms: u64) {
        NOW_MS.with(|c| c.set(ms));
    }

    fn overdue_at(sweep: &Sweep, now: u64) -> Vec<bool> {
        set_now(now);
        let watches: Vec<_> = sweep
            .watches
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        watches
            .iter()
            .map(|w| w.overdue(now, sweep.head_limit_ms))
            .collect()
    }

    /// A sweep made `ms` ago, so its first tick reads the clock as `ms`.
    fn sweep_made_ago(ms: u64, head_limit: Duration) -> Sweep {
        Sweep {
            epoch: Instant::now()
                .checked_sub(Duration::from_millis(ms))
                .unwrap(),
            ..Sweep::new(head_limit)
        }
    }

    #[test]
    fn a_waiting_connection_is_overdue_only_after_the_limit_and_a_tick() {
        set_now(1000);
        let sweep = Sweep::new(Duration::from_millis(1000));
        let _w = sweep.watch();
        assert_eq!(overdue_at(&sweep, 2000), [false]);
        assert_eq!(overdue_at(&sweep, 2199), [false]);
        assert_eq!(overdue_at(&sweep, 2200), [true]);
    }

    #[test]
    fn only_a_wait_for_a_head_runs_the_clock() {
        set_now(0);
        let sweep = Sweep::new(Duration::from_millis(1000));
        let w = sweep.watch();
        w.not_waiting();
        assert_eq!(overdue_at(&sweep, 5000), [false]);
        // The clock restarts at the end of the exchange.
        w.waiting();
        assert_eq!(overdue_at(&sweep, 6000), [false]);
        assert_eq!(overdue_at(&sweep, 6200), [true]);
        w.disarm();
        assert_eq!(overdue_at(&sweep, 20_000), [false]);
    }

    #[test]
    fn stopping_expires_the_connections_waiting_for_a_head_only() {
        set_now(0);
        let sweep = Sweep::new(Duration::from_secs(60));
        let idle = sweep.watch();
        let busy = sweep.watch();
        busy.not_waiting();
        sweep.stop();
        assert!(sweep.stopping());
        assert!(idle.expired.get());
        assert!(!busy.expired.get());
    }

    #[test]
    fn the_tick_wakes_expired_connections_and_forgets_closed_ones() {
        set_now(0);
        let sweep = sweep_made_ago(TICK_MS, Duration::ZERO);
        let w = sweep.watch();
        drop(sweep.watch());
        sweep.tick();
        assert!(w.expired.get());
        assert!(sweep.watches.borrow().is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_bounded_wait_ends_past_its_limit_and_frees_its_slot() {
        set_now(0);
        // The first tick reads the clock as 10 s: a 5 s wait is overdue then.
        let sweep = sweep_made_ago(10_000, Duration::from_secs(60));
        assert_eq!(sweep.within(Duration::ZERO, async { 7 }).await, Ok(7));
        assert!(sweep.waits.borrow().slots.is_empty(), "nothing registered");

        let wait = sweep.within(Duration::from_secs(5), std::future::pending::<()>());
        let ticker = async {
            tokio::task::yield_now().await;
            sweep.tick();
            std::future::pending::<()>().await
        };
        let out = tokio::select! {
            biased;
            out = wait => out,
            () = ticker => unreachable!(),
        };
        assert_eq!(out, Err(Elapsed));
        assert_eq!(sweep.waits.borrow().free, [0]);
    }
}
