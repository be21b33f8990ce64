//! Live reload under load: 1,000 route changes applied while clients keep
//! requesting and WebSocket-style tunnels stay open. Requests to unchanged
//! routes never fail, tunnels on unchanged routes never drop, and requests
//! to churning routes only ever see the old or the new state (200 or 404).

mod common;
mod dataplane_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::config::{AccessLog, ContainerUnit, Delta, Service, Settings};
use dataplane::DataPlane;
use dataplane_support::*;

fn unit(id: &str, host: &str, backend: &Backend) -> ContainerUnit {
    ContainerUnit {
        id: id.into(),
        project: None,
        services: vec![Service {
            program: "http".into(),
            index: u32::from(backend.addr.port()),
            upstream: Some(backend.url()),
            hosts: vec![host.into()],
        }],
        aliases: vec![],
        proxy: None,
        firewall: vec![],
        modules: Default::default(),
    }
}

/// Starts the data plane in-process on its own thread; returns its address
/// and a sender that stops it.
fn start(
    dp: &DataPlane,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let listener = dp.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let dp = dp.clone();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(dp.serve(vec![listener], async {
            let _ = rx.await;
        }))
        .unwrap();
    });
    wait_for_port(addr);
    (addr, tx, handle)
}

fn open_tunnel(addr: SocketAddr, host: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while find(&head, b"\r\n\r\n").is_none() {
        assert_eq!(s.read(&mut byte).unwrap(), 1);
        head.push(byte[0]);
    }
    assert_eq!(status_of(&head), 101);
    s
}

fn echo_ok(s: &mut TcpStream, msg: &[u8]) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).is_ok() && got == msg
}

#[test]
fn thousand_route_changes_under_load_drop_nothing() {
    let stable_backend = Backend::start("stable");
    let churn_backend = Backend::start("churn");
    let settings = Settings {
        workers: 2,
        access_log: AccessLog::Off,
        ..Settings::default()
    };
    let dp = DataPlane::new(settings);
    dp.apply(&Delta::Upsert {
        unit: unit("stable", "stable.test", &stable_backend),
    })
    .unwrap();
    let (addr, stop_server, server) = start(&dp);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for c in 0..4 {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        workers.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (host, allowed): (String, &[u16]) = if i % 2 == 0 {
                    ("stable.test".into(), &[200])
                } else {
                    (format!("churn-{}.test", (i + c) % 10), &[200, 404])
                };
                let (status, _) = get_on(&mut s, &host, "/", "");
                if allowed.contains(&status) {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("unexpected status {status} for {host}");
                    s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                }
            }
        }));
    }
    let mut tunnels: Vec<TcpStream> = (0..8).map(|_| open_tunnel(addr, "stable.test")).collect();

    for i in 0..1000usize {
        let id = format!("churn-{}", i % 10);
        let delta = if i % 3 == 2 {
            Delta::Remove { id }
        } else {
            let host = format!("{id}.test");
            Delta::Upsert {
                unit: unit(&id, &host, &churn_backend),
            }
        };
        dp.apply(&delta).unwrap();
        // Spread the changes over the load instead of finishing before it starts.
        std::thread::sleep(Duration::from_millis(1));
        if i % 100 == 0 {
            for (n, t) in tunnels.iter_mut().enumerate() {
                assert!(
                    echo_ok(t, format!("ping {i} {n}").as_bytes()),
                    "tunnel {n} dropped at change {i}"
                );
            }
        }
    }
    assert_eq!(dp.version(), 1001);
    // Keep the load running a little after the last change, then stop.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    for (n, t) in tunnels.iter_mut().enumerate() {
        assert!(echo_ok(t, b"final"), "tunnel {n} dropped");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 0);
    let _ = stop_server.send(());
    drop(tunnels);
    server.join().unwrap();
}
