//! Bad input and wrong-state calls come back as typed errors and change nothing.

mod common;

use common::{busybox, test_host};
use runtime::{BindMount, ContainerSpec, Runtime, RuntimeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_input_and_wrong_state_are_typed_errors() {
    let host = test_host("validation", 121).await;
    let rt = &host.runtime;

    let mut spec = busybox("bad-image");
    spec.image = Some("ubuntu:22.04".into());
    assert!(matches!(
        rt.create(spec).await,
        Err(RuntimeError::ImageNotFound(_))
    ));
    assert!(matches!(
        rt.inspect("bad-image").await,
        Err(RuntimeError::NotFound(_))
    ));

    let spec = ContainerSpec {
        id: "../escape".into(),
        ..Default::default()
    };
    assert!(matches!(
        rt.create(spec).await,
        Err(RuntimeError::InvalidSpec(_))
    ));
    let mut spec = busybox("bad-mount");
    spec.mounts.push(BindMount {
        source: "relative/path".into(),
        target: "/mnt".into(),
        read_only: false,
    });
    assert!(matches!(
        rt.create(spec).await,
        Err(RuntimeError::InvalidSpec(_))
    ));

    for result in [
        rt.start("missing").await.err(),
        rt.stop("missing", None).await.err(),
        rt.pause("missing").await.err(),
        rt.stats("missing").await.err(),
        rt.delete("missing").await.err(),
    ] {
        assert!(
            matches!(result, Some(RuntimeError::NotFound(_))),
            "{result:?}"
        );
    }

    // a default image applies when none is given
    let info = rt
        .create(ContainerSpec {
            id: "dflt".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(info.image, "busybox");
    assert!(matches!(
        rt.create(busybox("dflt")).await,
        Err(RuntimeError::AlreadyExists(_))
    ));
    assert!(matches!(
        rt.stop("dflt", None).await,
        Err(RuntimeError::NotRunning(_))
    ));
    assert!(matches!(
        rt.pause("dflt").await,
        Err(RuntimeError::NotRunning(_))
    ));
    assert!(matches!(
        rt.exec("dflt", vec!["true".into()]).await,
        Err(RuntimeError::NotRunning(_))
    ));
    assert!(matches!(
        rt.restore_snapshot("dflt", "nope").await,
        Err(RuntimeError::SnapshotNotFound(_))
    ));
    let export = rt.export_dir("dflt", "/srv/shared").await.unwrap();
    assert!(export.starts_with(rt.container_dir("dflt")) && export.is_dir());
    for bad in ["relative", "/", "/srv/../etc"] {
        assert!(
            matches!(
                rt.export_dir("dflt", bad).await,
                Err(RuntimeError::InvalidSpec(_))
            ),
            "{bad}"
        );
    }
    rt.start("dflt").await.unwrap();
    assert!(matches!(
        rt.start("dflt").await,
        Err(RuntimeError::AlreadyRunning(_))
    ));
    rt.delete("dflt").await.unwrap();
    host.cleanup().await;
}

#[test]
fn kvm_check_matches_the_device_node() {
    assert_eq!(
        runtime::kvm_available(),
        std::path::Path::new("/dev/kvm").exists()
    );
    if !runtime::kvm_available() {
        assert!(matches!(
            runtime::require_kvm(),
            Err(RuntimeError::KvmUnavailable)
        ));
    }
}
