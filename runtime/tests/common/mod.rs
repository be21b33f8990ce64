//! Shared fixtures: every test gets its own state dir, bridge, subnet and cgroup parent,
//! so tests run in parallel without seeing each other. Traffic only ever goes to
//! addresses on the test's own bridge.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use runtime::{
    inspect, ContainerInfo, ContainerSpec, NetworkConfig, RuncRuntime, Runtime, RuntimeConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TestHost {
    pub runtime: RuncRuntime,
    pub config: RuntimeConfig,
    pub state_dir: PathBuf,
}

/// `slot` picks the subnet 10.213.<slot>.0/24 and names; unique per test.
pub async fn test_host(name: &str, slot: u8) -> TestHost {
    let state_dir = std::env::temp_dir().join(format!("hoody-rt-{name}"));
    let mut config = RuntimeConfig::new(&state_dir);
    config.network = NetworkConfig {
        bridge: format!("hrt{slot}"),
        subnet: format!("10.213.{slot}.0/24").parse().expect("subnet"),
        masquerade: false,
    };
    config.cgroup_parent = format!("hoody-test-{name}");
    config.stop_grace = Duration::from_secs(5);
    if state_dir.exists() {
        // A previous run died mid-test: let the runtime itself clean up after it.
        let stale = TestHost {
            runtime: RuncRuntime::open(config.clone())
                .await
                .expect("open stale runtime"),
            config: config.clone(),
            state_dir: state_dir.clone(),
        };
        stale.cleanup().await;
    }
    let runtime = RuncRuntime::open(config.clone())
        .await
        .expect("open runtime");
    TestHost {
        runtime,
        config,
        state_dir,
    }
}

impl TestHost {
    pub async fn reopen(&self) -> RuncRuntime {
        RuncRuntime::open(self.config.clone())
            .await
            .expect("reopen runtime")
    }

    /// Deletes what is left and removes the bridge, state dir and cgroup parent.
    pub async fn cleanup(self) {
        for info in self.runtime.list().await.unwrap_or_default() {
            let _ = self.runtime.delete(&info.id).await;
        }
        let _ = tokio::process::Command::new("ip")
            .args(["link", "del", &self.config.network.bridge])
            .status()
            .await;
        for dir in inspect::cgroup_dirs(&format!("/{}", self.config.cgroup_parent)) {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.config.network.gateway().expect("gateway")
    }
}

pub fn busybox(id: &str) -> ContainerSpec {
    ContainerSpec {
        id: id.into(),
        image: Some("busybox".into()),
        ..Default::default()
    }
}

/// A plain HTTP/1.0 GET with a client timeout; Err on timeout or connection failure.
pub async fn http_get(ip: Ipv4Addr, path: &str, timeout: Duration) -> anyhow::Result<String> {
    let request = async {
        let mut stream = TcpStream::connect((ip, 80)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        anyhow::Ok(body)
    };
    tokio::time::timeout(timeout, request).await?
}

/// Waits for the container's httpd to answer (it needs a moment after start).
pub async fn wait_http(ip: Ipv4Addr, path: &str) -> String {
    let mut last = None;
    for _ in 0..100 {
        match http_get(ip, path, Duration::from_secs(2)).await {
            Ok(body) if body.starts_with("HTTP/1") => return body,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no HTTP answer from {ip}{path}: {last:?}");
}

/// Every host resource of a deleted container is gone.
pub async fn assert_nothing_left(
    host: &TestHost,
    runtime: &RuncRuntime,
    info: &ContainerInfo,
    veth: &str,
    netns: &str,
) {
    let id = &info.id;
    assert!(
        !host.runtime.runc_root().join(id).exists(),
        "runc state of {id} left"
    );
    let dir = host.runtime.container_dir(id);
    assert!(
        inspect::mounts_under(&dir).expect("mountinfo").is_empty(),
        "mounts of {id} left"
    );
    assert!(!dir.exists(), "directory of {id} left");
    let cgroup = inspect::cgroup_path(&host.config.cgroup_parent, id);
    assert!(
        inspect::cgroup_dirs(&cgroup).is_empty(),
        "cgroups of {id} left: {:?}",
        inspect::cgroup_dirs(&cgroup)
    );
    assert!(
        !inspect::interface_exists(veth).await.expect("ip link"),
        "veth {veth} of {id} left"
    );
    assert!(
        !PathBuf::from("/run/netns").join(netns).exists(),
        "netns {netns} of {id} left"
    );
    assert_eq!(
        runtime.address_holder(info.address),
        None,
        "address of {id} still leased"
    );
}
