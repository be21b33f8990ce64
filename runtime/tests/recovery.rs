//! Adoption after a restart of the process and consistency under concurrent calls.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_nothing_left, busybox, test_host, wait_http};
use runtime::{ContainerStatus, Runtime, RuntimeError};

/// Zombie children of this process: a reaped container init leaves none.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str()) {
            zombies.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    zombies
}

/// Zombies that stay unreaped. The other tests of this binary run in parallel in
/// the same process, so a child can be a zombie for the instant between its exit
/// and its reaper's wait; only one that is still there after a few seconds is a leak.
async fn lingering_zombies() -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let zombies = zombie_children();
        if zombies.is_empty() || tokio::time::Instant::now() >= deadline {
            return zombies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_on_the_same_state_adopts_running_containers() {
    let host = test_host("adoption", 111).await;
    host.runtime.create(busybox("keep")).await.unwrap();
    let started = host.runtime.start("keep").await.unwrap();
    host.runtime.create(busybox("idle")).await.unwrap();

    let adopted = host.reopen().await;
    let info = adopted.inspect("keep").await.unwrap();
    assert_eq!(info.status, ContainerStatus::Running);
    assert_eq!(info.pid, started.pid);
    assert_eq!(info.address, started.address);
    assert_eq!(
        adopted.inspect("idle").await.unwrap().status,
        ContainerStatus::Stopped
    );
    wait_http(info.address, "/").await;

    // the adopted container is fully manageable, and its address is not handed out again
    let fresh = adopted.create(busybox("fresh")).await.unwrap();
    assert_ne!(fresh.address, info.address);
    adopted.stop("keep", None).await.unwrap();
    assert!(matches!(adopted.start("fresh").await, Ok(i) if i.status == ContainerStatus::Running));
    adopted.force_stop("fresh").await.unwrap();
    let lingering = lingering_zombies().await;
    assert!(lingering.is_empty(), "unreaped: {lingering:?}");
    let stats = adopted.stats("keep").await.unwrap();
    adopted.delete("keep").await.unwrap();
    assert_nothing_left(
        &host,
        &adopted,
        &info,
        &stats.network.host_interface,
        &stats.network.netns,
    )
    .await;
    host.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_died_while_nobody_watched_is_cleaned_on_open() {
    let host = test_host("died", 113).await;
    host.runtime.create(busybox("gone")).await.unwrap();
    let info = host.runtime.start("gone").await.unwrap();
    let pid = info.pid.expect("running container has a pid");
    // SAFETY: kill(2) on the container's init pid, which this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let reopened = host.reopen().await;
    let info = reopened.inspect("gone").await.unwrap();
    assert_eq!(info.status, ContainerStatus::Stopped);
    let dir = reopened.container_dir("gone");
    assert!(runtime::inspect::mounts_under(&dir).unwrap().is_empty());
    assert!(!reopened.runc_root().join("gone").exists());
    // and it starts again normally
    let restarted = reopened.start("gone").await.unwrap();
    assert_eq!(restarted.address, info.address);
    wait_http(restarted.address, "/").await;
    reopened.delete("gone").await.unwrap();
    host.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_stop_delete_end_consistent_without_leaks() {
    let host = test_host("concurrency", 112).await;
    let rt = Arc::new(host.runtime.clone());
    for round in 0..3 {
        let id = format!("race{round}");
        let created = rt.create(busybox(&id)).await.unwrap();
        let before = rt.stats(&id).await.unwrap();
        let mut tasks = Vec::new();
        for op in [
            "start", "stop", "start", "restart", "pause", "delete", "start", "stop",
        ] {
            let (rt, id) = (rt.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let result = match op {
                    "start" => rt.start(&id).await.map(|_| ()),
                    "stop" => rt.stop(&id, Some(Duration::from_secs(2))).await.map(|_| ()),
                    "restart" => rt.restart(&id).await.map(|_| ()),
                    "pause" => rt.pause(&id).await.map(|_| ()),
                    _ => rt.delete(&id).await,
                };
                match result {
                    Ok(())
                    | Err(RuntimeError::NotFound(_))
                    | Err(RuntimeError::NotRunning(_))
                    | Err(RuntimeError::AlreadyRunning(_)) => {}
                    Err(other) => panic!("{op} {id}: unexpected {other}"),
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // whatever order they ran in, the container is either gone or in a sound state
        match rt.inspect(&id).await {
            Err(RuntimeError::NotFound(_)) => {}
            Ok(info) => {
                if info.status == ContainerStatus::Running {
                    wait_http(info.address, "/").await;
                }
                rt.delete(&id).await.unwrap();
            }
            Err(other) => panic!("inspect {id}: {other}"),
        }
        assert_nothing_left(
            &host,
            &rt,
            &created,
            &before.network.host_interface,
            &before.network.netns,
        )
        .await;
    }
    let lingering = lingering_zombies().await;
    assert!(lingering.is_empty(), "unreaped: {lingering:?}");
    host.cleanup().await;
}
