//! Listeners and workers: thread-per-core.
//!
//! Each worker is an OS thread running a current-thread tokio runtime with
//! its own `SO_REUSEPORT` listening socket, its own upstream pool and its
//! own metrics shard. The kernel spreads connections across the sockets, and
//! from accept to the last body byte a request stays on one thread: no
//! cross-thread wake-ups, no shared pool lock.
//!
//! A connection starts in our HTTP/1 server (`downstream`), which reads the
//! first bytes to pick the protocol: HTTP/2 prior knowledge → hyper's HTTP/2
//! server; a first request asking for `Upgrade: h2c` → `101`, then hyper's
//! HTTP/2 server with that request as stream 1 (`h2c`); anything else is
//! served as HTTP/1.1 by `downstream` itself. Limits come from `Settings`.
//! The header timeout of HTTP/1 connections (the first head included) is
//! enforced by the worker's `sweep` on its housekeeping tick, not by a timer
//! per request. Shutdown: stop accepting, ask every connection to finish
//! gracefully (HTTP/1: the request in flight is answered with `Connection:
//! close`, idle connections close), wait for them up to the drain timeout.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::sync::{watch, Notify};

use crate::access_log::{AccessLogger, Sink};
use crate::config::Settings;
use crate::downstream::{self, h1::HeadLimits, Handoff};
use crate::metrics::Metrics;
use crate::prefixed::Prefixed;
use crate::proxy::{self, ConnInfo, Worker};
use crate::router::{LocalRoutes, RouteTable};
use crate::sweep::{self, Sweep};
use crate::upstream::{Pool, ReqBody};

/// Listening sockets for one address: one per worker when bound with
/// `SO_REUSEPORT`, or a single shared socket.
pub struct Listener {
    sockets: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
}

impl Listener {
    /// Binds `count` `SO_REUSEPORT` sockets to `addr` (port 0 picks one port
    /// for all of them).
    pub fn bind_reuseport(addr: SocketAddr, count: usize) -> std::io::Result<Self> {
        let first = reuseport_socket(addr)?;
        let local_addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..count.max(1) {
            sockets.push(reuseport_socket(local_addr)?);
        }
        Ok(Self {
            sockets,
            local_addr,
        })
    }

    /// Wraps an already bound socket; workers share it.
    pub fn from_std(listener: std::net::TcpListener) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Self {
            local_addr: listener.local_addr()?,
            sockets: vec![listener],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The socket worker `i` of `n` accepts on.
    fn for_worker(&self, i: usize, n: usize) -> std::io::Result<std::net::TcpListener> {
        if self.sockets.len() == n {
            self.sockets[i].try_clone()
        } else {
            self.sockets[0].try_clone()
        }
    }
}

fn reuseport_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// What every worker gets.
#[derive(Clone)]
pub(crate) struct Shared {
    pub settings: Arc<Settings>,
    pub table: Arc<RouteTable>,
    pub metrics: Arc<Metrics>,
    pub sink: Sink,
}

/// Runs all workers until `shutdown` resolves, then drains them.
pub(crate) async fn serve(
    shared: Shared,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let n = worker_count(&shared.settings);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut done = Vec::with_capacity(n);
    for i in 0..n {
        let sockets = listeners
            .iter()
            .map(|l| l.for_worker(i, n))
            .collect::<std::io::Result<Vec<_>>>()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = shared.clone();
        let stop = stop_rx.clone();
        std::thread::Builder::new()
            .name(format!("dataplane-{i}"))
            .spawn(move || {
                if let Err(err) = run_worker(shared, sockets, stop) {
                    tracing::error!(%err, "data-plane worker failed");
                }
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for rx in done {
        let _ = rx.await;
    }
    Ok(())
}

pub(crate) fn worker_count(settings: &Settings) -> usize {
    if settings.workers > 0 {
        settings.workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Spawns futures on the worker's `LocalSet`: HTTP/2 streams stay on the
/// thread that owns their connection.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// The servers' settings, made once per worker: our HTTP/1 server's head
/// limits and hyper's HTTP/2 server.
struct Servers {
    h1: HeadLimits,
    h2: http2::Builder<LocalExec>,
}

fn servers(settings: &Settings) -> Servers {
    let limits = &settings.limits;
    let h1 = HeadLimits {
        max_bytes: limits.max_header_bytes,
        max_headers: limits.max_headers,
    };
    let mut h2 = http2::Builder::new(LocalExec);
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.h2_max_header_list)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256));
    Servers { h1, h2 }
}

/// Counts open connections so shutdown can wait for them.
#[derive(Default)]
struct Tracker {
    open: Cell<usize>,
    idle: Notify,
}

fn run_worker(
    shared: Shared,
    sockets: Vec<std::net::TcpListener>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let metrics = shared.metrics.shard();
        let timeouts = shared.settings.timeouts.clone();
        let worker = Rc::new(Worker {
            routes: LocalRoutes::new(shared.table.clone()),
            pool: Rc::new(Pool::new(
                shared.settings.pool_max_idle,
                timeouts.upstream_idle(),
                timeouts.upstream_connect(),
                metrics.clone(),
            )),
            metrics,
            log: AccessLogger::new(shared.sink.clone()),
            sweep: Sweep::new(timeouts.header_read()),
            timeouts,
            hooks: shared.table.hooks().clone(),
        });
        let builder = Rc::new(servers(&shared.settings));
        let tracker = Rc::new(Tracker::default());
        for socket in sockets {
            let listener = tokio::net::TcpListener::from_std(socket)?;
            tokio::task::spawn_local(accept_loop(
                listener,
                worker.clone(),
                builder.clone(),
                tracker.clone(),
                stop.clone(),
            ));
        }
        tokio::task::spawn_local(housekeeping(worker.clone()));
        let mut stop_wait = stop.clone();
        let _ = stop_wait.wait_for(|s| *s).await;
        worker.sweep.stop();
        let drain = tokio::time::sleep(shared.settings.timeouts.drain());
        tokio::pin!(drain);
        while tracker.open.get() > 0 {
            tokio::select! {
                _ = tracker.idle.notified() => {}
                _ = &mut drain => break,
            }
        }
        worker.pool.clear();
        worker.log.flush();
        Ok::<(), std::io::Error>(())
    })
}

/// The worker's housekeeping tick: runs the sweep (the head and upstream
/// deadlines) and flushes the access log.
async fn housekeeping(worker: Rc<Worker>) {
    let mut tick = tokio::time::interval(sweep::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        worker.sweep.tick();
        downstream::refresh_date();
        if worker.log.enabled() {
            worker.log.flush();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    worker: Rc<Worker>,
    builder: Rc<Servers>,
    tracker: Rc<Tracker>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracker.open.set(tracker.open.get() + 1);
                worker.metrics.connection_opened();
                tokio::task::spawn_local(serve_connection(
                    stream,
                    peer,
                    worker.clone(),
                    builder.clone(),
                    tracker.clone(),
                    stop.clone(),
                ));
            }
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Runs hyper's HTTP/2 connection future; on shutdown asks it to finish
/// gracefully (GOAWAY) and waits for it.
async fn drive_h2(
    servers: &Servers,
    io: impl hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    worker: Rc<Worker>,
    info: Rc<ConnInfo>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), hyper::Error> {
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let answer = proxy::handle(worker.clone(), info.clone(), req.map(ReqBody::H2));
        async move {
            let mut resp = answer.await?;
            // hyper writes the map: the upstream's raw fields go into it.
            proxy::materialize_headers(&mut resp);
            Ok::<_, proxy::Dropped>(resp)
        }
    });
    let conn = servers.h2.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.wait_for(|s| *s) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    worker: Rc<Worker>,
    servers: Rc<Servers>,
    tracker: Rc<Tracker>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let info = Rc::new(ConnInfo::new(peer));
    let watch = worker.sweep.watch();
    let conn = downstream::Conn {
        worker: worker.clone(),
        info: info.clone(),
        watch: watch.clone(),
        limits: servers.h1,
    };
    let result = match downstream::serve(stream, conn).await {
        Handoff::Done => Ok(()),
        Handoff::Http2(io) => {
            watch.disarm();
            drive_h2(&servers, TokioIo::new(io), worker.clone(), info, stop).await
        }
        Handoff::H2cUpgrade(io, frames) => {
            watch.disarm();
            match switch_to_h2c(io).await {
                Ok(io) => {
                    let io = crate::h2c::Inject::new(io, frames);
                    drive_h2(&servers, TokioIo::new(io), worker.clone(), info, stop).await
                }
                Err(err) => {
                    tracing::debug!(%err, %peer, "h2c upgrade write failed");
                    Ok(())
                }
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, %peer, "connection ended with error");
    }
    worker.metrics.connection_closed();
    tracker.open.set(tracker.open.get() - 1);
    if tracker.open.get() == 0 {
        tracker.idle.notify_waiters();
    }
}

/// Answers the h2c upgrade request with `101 Switching Protocols`.
async fn switch_to_h2c(mut io: Prefixed) -> std::io::Result<Prefixed> {
    io.write_all(crate::h2c::SWITCHING).await?;
    Ok(io)
}
