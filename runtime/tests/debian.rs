//! The debian image, built with debootstrap on first use. The first build downloads
//! from the Debian mirror and takes minutes; the image store is kept in
//! /var/tmp/hoody-runtime-images so later runs on the same machine are quick.

use runtime::{ContainerSpec, NetworkConfig, RuncRuntime, Runtime, RuntimeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_shorthand_builds_and_runs_debian_12() {
    let state_dir = std::env::temp_dir().join("hoody-rt-debian");
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut config = RuntimeConfig::new(&state_dir);
    config.image_dir = "/var/tmp/hoody-runtime-images".into();
    config.network = NetworkConfig {
        bridge: "hrt131".into(),
        subnet: "10.213.131.0/24".parse().unwrap(),
        masquerade: false,
    };
    config.cgroup_parent = "hoody-test-debian".into();
    let rt = RuncRuntime::open(config).await.unwrap();
    let info = rt
        .create(ContainerSpec {
            id: "deb".into(),
            image: Some("debian 12".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(info.image, "debian/12");
    rt.start("deb").await.unwrap();
    let out = rt
        .exec("deb", vec!["cat".into(), "/etc/debian_version".into()])
        .await
        .unwrap();
    assert!(out.stdout.starts_with("12."), "{out:?}");
    rt.stop("deb", None).await.unwrap();
    rt.delete("deb").await.unwrap();
    let _ = tokio::process::Command::new("ip")
        .args(["link", "del", "hrt131"])
        .status()
        .await;
    for dir in runtime::inspect::cgroup_dirs("/hoody-test-debian") {
        let _ = std::fs::remove_dir(dir);
    }
    let _ = std::fs::remove_dir_all(&state_dir);
}
