//! End-to-end behaviour of the runc runtime with real containers (needs root, runc,
//! busybox-static, iproute2, nftables, and the overlay/veth/bridge/nf_tables kernel
//! features).

mod common;

use std::time::Duration;

use common::{assert_nothing_left, busybox, http_get, test_host, wait_http};
use runtime::{
    BindMount, ContainerStatus, EgressRule, NetworkPolicy, ResourceLimits, RuleAction,
    RuleProtocol, Runtime, RuntimeError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A cgroup v1 controller file of the container (the CI host is cgroup v1 hybrid).
fn cgroup_value(cgroup: &str, controller: &str, file: &str) -> String {
    let path = std::path::Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(cgroup.trim_start_matches('/'))
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_container_full_lifecycle_leaves_nothing_behind() {
    let host = test_host("lifecycle", 101).await;
    let rt = &host.runtime;

    let share = host.state_dir.join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("shared.txt"), "from-the-share").unwrap();
    let mut spec = busybox("web1");
    spec.env.insert("GREETING".into(), "hello-from-test".into());
    spec.limits = ResourceLimits {
        cpu_millicores: Some(500),
        memory_bytes: Some(128 << 20),
        pids: Some(64),
    };
    spec.mounts.push(BindMount {
        source: share.clone(),
        target: "/mnt/share".into(),
        read_only: true,
    });
    let created = rt.create(spec).await.unwrap();
    assert_eq!(created.status, ContainerStatus::Stopped);

    // start → the env CGI shows the variables
    let started = rt.start("web1").await.unwrap();
    assert_eq!(started.status, ContainerStatus::Running);
    let ip = started.address;
    let body = wait_http(ip, "/cgi-bin/env").await;
    assert!(body.contains("GREETING=hello-from-test"), "{body}");

    // the limits are in the container's cgroups
    let cgroup = runtime::inspect::cgroup_path(&host.config.cgroup_parent, "web1");
    assert_eq!(cgroup_value(&cgroup, "pids", "pids.max"), "64");
    assert_eq!(
        cgroup_value(&cgroup, "memory", "memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(cgroup_value(&cgroup, "cpu", "cpu.cfs_quota_us"), "50000");

    // pause → requests time out; resume → they answer again
    assert_eq!(
        rt.pause("web1").await.unwrap().status,
        ContainerStatus::Paused
    );
    assert!(http_get(ip, "/cgi-bin/env", Duration::from_millis(800))
        .await
        .is_err());
    assert_eq!(
        rt.resume("web1").await.unwrap().status,
        ContainerStatus::Running
    );
    wait_http(ip, "/cgi-bin/env").await;

    // the storage share is visible and read-only
    let out = rt
        .exec("web1", sh("cat /mnt/share/shared.txt"))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "from-the-share");
    let out = rt
        .exec("web1", sh("echo x > /mnt/share/new"))
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0, "read-only share was writable");

    // snapshot → change a file → restore → the file is back, container running again
    let out = rt.exec("web1", sh("echo v1 > /data.txt")).await.unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    let snap = rt.create_snapshot("web1", Some("s1".into())).await.unwrap();
    assert!(snap.size > 0);
    assert_eq!(
        rt.inspect("web1").await.unwrap().status,
        ContainerStatus::Running
    );
    rt.exec("web1", sh("echo v2 > /data.txt")).await.unwrap();
    rt.restore_snapshot("web1", "s1").await.unwrap();
    assert_eq!(
        rt.inspect("web1").await.unwrap().status,
        ContainerStatus::Running
    );
    let out = rt.exec("web1", sh("cat /data.txt")).await.unwrap();
    assert_eq!(out.stdout.trim(), "v1");
    let snaps = rt.list_snapshots("web1").await.unwrap();
    assert_eq!(
        snaps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["s1"]
    );

    // copy → the copy has the file and serves too
    let copy = rt.copy("web1", busybox("web1-copy")).await.unwrap();
    assert_ne!(copy.address, ip);
    rt.start("web1-copy").await.unwrap();
    wait_http(copy.address, "/cgi-bin/env").await;
    let out = rt.exec("web1-copy", sh("cat /data.txt")).await.unwrap();
    assert_eq!(out.stdout.trim(), "v1");

    // sync → a later change of the source reaches the copy
    rt.exec("web1", sh("echo v3 > /data.txt")).await.unwrap();
    rt.sync("web1", "web1-copy").await.unwrap();
    let out = rt.exec("web1-copy", sh("cat /data.txt")).await.unwrap();
    assert_eq!(out.stdout.trim(), "v3");

    // stats
    let stats = rt.stats("web1").await.unwrap();
    assert_eq!(stats.status, ContainerStatus::Running);
    assert!(stats.processes >= 1);
    assert!(stats.memory.usage > 0);
    assert_eq!(stats.memory.limit, Some(128 << 20));
    assert!(stats.disk_usage > 0);
    assert_eq!(stats.network.address, ip);
    assert!(stats.network.counters.bytes_sent > 0);

    // snapshots can be deleted
    rt.delete_snapshot("web1", "s1").await.unwrap();
    assert!(matches!(
        rt.delete_snapshot("web1", "s1").await,
        Err(RuntimeError::SnapshotNotFound(_))
    ));

    // stop → no answer; stop again is NotRunning
    assert_eq!(
        rt.stop("web1", None).await.unwrap().status,
        ContainerStatus::Stopped
    );
    assert!(http_get(ip, "/", Duration::from_millis(500)).await.is_err());
    assert!(matches!(
        rt.stop("web1", None).await,
        Err(RuntimeError::NotRunning(_))
    ));

    // delete leaves nothing behind
    for id in ["web1", "web1-copy"] {
        let info = rt.inspect(id).await.unwrap();
        let stats = rt.stats(id).await.unwrap();
        rt.delete(id).await.unwrap();
        assert_nothing_left(
            &host,
            rt,
            &info,
            &stats.network.host_interface,
            &stats.network.netns,
        )
        .await;
        assert!(matches!(
            rt.inspect(id).await,
            Err(RuntimeError::NotFound(_))
        ));
    }
    host.cleanup().await;
}

/// A listener on the bridge address that answers one line per connection.
async fn pong_listener(ip: std::net::Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request first: closing with unread data would send a RST.
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\npong")
                    .await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// `timeout` rather than `wget -T`: Debian's static busybox 1.35 wget crashes with -T.
async fn can_reach(rt: &runtime::RuncRuntime, id: &str, url: &str) -> bool {
    let out = rt
        .exec(id, sh(&format!("timeout 3 wget -q -O - {url}")))
        .await
        .unwrap();
    if out.exit_code != 0 {
        eprintln!("wget {url} from {id}: {out:?}");
    }
    out.exit_code == 0 && out.stdout.contains("pong")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_rules_and_block_mode_are_enforced_in_the_container_netns() {
    let host = test_host("egress", 102).await;
    let rt = &host.runtime;
    let gateway = host.gateway();
    let port = pong_listener(gateway).await;
    let url = format!("http://{gateway}:{port}/");
    rt.create(busybox("fw1")).await.unwrap();
    rt.start("fw1").await.unwrap();
    assert!(can_reach(rt, "fw1", &url).await, "baseline egress failed");

    let mut rule = EgressRule {
        action: RuleAction::Reject,
        protocol: RuleProtocol::Tcp,
        destination: Some(format!("{gateway}/32")),
        destination_port: Some(port.to_string()),
        enabled: true,
    };
    rt.set_egress_rules("fw1", vec![rule.clone()])
        .await
        .unwrap();
    assert!(!can_reach(rt, "fw1", &url).await, "deny rule did not block");
    // applying the same rules again is harmless
    rt.set_egress_rules("fw1", vec![rule.clone()])
        .await
        .unwrap();
    assert!(!can_reach(rt, "fw1", &url).await);

    rule.enabled = false;
    rt.set_egress_rules("fw1", vec![rule.clone()])
        .await
        .unwrap();
    assert!(
        can_reach(rt, "fw1", &url).await,
        "toggled-off rule still blocks"
    );

    rt.set_network_policy("fw1", NetworkPolicy::Block)
        .await
        .unwrap();
    assert!(
        !can_reach(rt, "fw1", &url).await,
        "block mode let traffic out"
    );
    // inbound traffic (the proxy reaching the container) still works in block mode
    let ip = rt.inspect("fw1").await.unwrap().address;
    wait_http(ip, "/").await;
    rt.set_network_policy("fw1", NetworkPolicy::Open)
        .await
        .unwrap();
    assert!(can_reach(rt, "fw1", &url).await);
    host.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_policy_dns_and_env_updates_apply_at_next_start() {
    let host = test_host("proxyenv", 103).await;
    let rt = &host.runtime;
    let mut spec = busybox("px1");
    spec.dns_servers = vec!["9.9.9.9".into()];
    rt.create(spec).await.unwrap();
    rt.set_network_policy(
        "px1",
        NetworkPolicy::Proxy {
            kind: runtime::ProxyKind::Http,
            url: "http://10.213.103.1:3128".into(),
        },
    )
    .await
    .unwrap();
    let info = rt.start("px1").await.unwrap();
    let body = wait_http(info.address, "/cgi-bin/env").await;
    assert!(
        body.contains("HTTP_PROXY=http://10.213.103.1:3128"),
        "{body}"
    );
    assert!(
        body.contains("https_proxy=http://10.213.103.1:3128"),
        "{body}"
    );
    let resolv = rt.exec("px1", sh("cat /etc/resolv.conf")).await.unwrap();
    assert_eq!(resolv.stdout.trim(), "nameserver 9.9.9.9");

    // env changes apply at the next start, not before
    let update = runtime::SpecUpdate {
        env: Some([("LATER".to_string(), "yes".to_string())].into()),
        ..Default::default()
    };
    rt.update("px1", update).await.unwrap();
    let body = wait_http(info.address, "/cgi-bin/env").await;
    assert!(!body.contains("LATER=yes"), "{body}");
    rt.restart("px1").await.unwrap();
    let body = wait_http(info.address, "/cgi-bin/env").await;
    assert!(body.contains("LATER=yes"), "{body}");
    host.cleanup().await;
}
