//! The OCI runtime `config.json` of a container, built fresh at every start from the
//! stored spec so changes (env, limits, shares, proxy) apply at the next start.

use std::path::Path;

use serde_json::{json, Value};

use crate::cgroup;
use crate::image::ImageConfig;
use crate::spec::ContainerSpec;

/// Inputs that are not part of the user's spec.
pub struct BundleContext<'a> {
    pub rootfs: &'a Path,
    pub image: &'a ImageConfig,
    pub netns_path: &'a Path,
    pub cgroups_path: &'a str,
    pub resolv_conf: &'a Path,
}

/// Capabilities of a plain Docker container: enough for package managers and servers,
/// without the ones that reach out of the container (SYS_ADMIN, NET_ADMIN, ...).
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Environment in `KEY=value` form: image defaults, then proxy variables, then the
/// user's variables, later entries winning.
pub fn environment(spec: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    let mut vars: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.extend(spec.network.proxy_env());
    vars.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let hostname = spec.hostname.clone().unwrap_or_else(|| spec.id.clone());
    vars.push(("HOSTNAME".into(), hostname));
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in vars {
        match merged.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => merged.push((k, v)),
        }
    }
    merged
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn mounts(spec: &ContainerSpec, ctx: &BundleContext<'_>) -> Vec<Value> {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        json!({"destination": "/etc/resolv.conf", "type": "bind",
               "source": ctx.resolv_conf, "options": ["rbind", "ro"]}),
    ];
    for share in &spec.mounts {
        let mode = if share.read_only { "ro" } else { "rw" };
        mounts.push(json!({
            "destination": share.target,
            "type": "bind",
            "source": share.source,
            "options": ["rbind", mode, "nosuid", "nodev"],
        }));
    }
    mounts
}

/// Builds the whole `config.json`.
pub fn config(spec: &ContainerSpec, ctx: &BundleContext<'_>) -> Value {
    let args = spec
        .command
        .clone()
        .unwrap_or_else(|| ctx.image.entrypoint.clone());
    let hostname = spec.hostname.clone().unwrap_or_else(|| spec.id.clone());
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": environment(spec, ctx.image),
            "cwd": "/",
            "capabilities": {
                "bounding": CAPABILITIES,
                "effective": CAPABILITIES,
                "permitted": CAPABILITIES,
            },
            "noNewPrivileges": true,
        },
        "root": {"path": ctx.rootfs, "readonly": false},
        "hostname": hostname,
        "mounts": mounts(spec, ctx),
        "linux": {
            "cgroupsPath": ctx.cgroups_path,
            "resources": cgroup::oci_resources(&spec.limits),
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": ctx.netns_path},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{BindMount, NetworkPolicy, ProxyKind};

    fn image() -> ImageConfig {
        ImageConfig {
            name: "busybox".into(),
            entrypoint: vec!["/init.sh".into()],
            env: vec!["PATH=/bin".into(), "FOO=image".into()],
        }
    }

    #[test]
    fn user_env_overrides_image_env_and_proxy_vars_are_added() {
        let mut spec = ContainerSpec {
            id: "c1".into(),
            network: NetworkPolicy::Proxy {
                kind: ProxyKind::Socks5,
                url: "socks5://p:1080".into(),
            },
            ..Default::default()
        };
        spec.env.insert("FOO".into(), "user".into());
        let env = environment(&spec, &image());
        assert!(env.contains(&"FOO=user".to_string()));
        assert!(!env.contains(&"FOO=image".to_string()));
        assert!(env.contains(&"ALL_PROXY=socks5://p:1080".to_string()));
        assert!(env.contains(&"HOSTNAME=c1".to_string()));
    }

    #[test]
    fn shares_become_bind_mounts_with_their_mode() {
        let spec = ContainerSpec {
            id: "c1".into(),
            mounts: vec![BindMount {
                source: "/srv/share".into(),
                target: "/mnt/share".into(),
                read_only: true,
            }],
            ..Default::default()
        };
        let ctx = BundleContext {
            rootfs: Path::new("/r"),
            image: &image(),
            netns_path: Path::new("/run/netns/x"),
            cgroups_path: "/hoody/c1",
            resolv_conf: Path::new("/s/resolv.conf"),
        };
        let cfg = config(&spec, &ctx);
        let share = cfg["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/mnt/share")
            .unwrap();
        assert_eq!(share["options"][1], "ro");
        assert_eq!(cfg["linux"]["cgroupsPath"], "/hoody/c1");
        assert_eq!(cfg["linux"]["namespaces"][1]["path"], "/run/netns/x");
    }
}
