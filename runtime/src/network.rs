//! Container networking: one host bridge on a private subnet, one network namespace per
//! container (a named netns under /run/netns, so it outlives hoody-api and survives
//! adoption), a veth pair between them, and the address plan persisted on disk so a
//! restart never hands out an address twice.
//!
//! The netns exists from create to delete (not just while running): the address stays
//! stable across restarts and firewall rules apply even to a stopped container.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::command;
use crate::error::{IoContext, Result, RuntimeError};

/// Host-side network settings of a runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Bridge interface name (≤ 15 characters).
    pub bridge: String,
    /// Private subnet for containers; the first host address is the bridge's.
    pub subnet: Ipv4Net,
    /// Masquerade container traffic leaving the host (needs ip_forward); off by default
    /// so the runtime never changes host routing unless asked.
    pub masquerade: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "hoody0".into(),
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 213, 0, 0), 24).unwrap_or_default(),
            masquerade: false,
        }
    }
}

impl NetworkConfig {
    /// The bridge's own address, the containers' default gateway.
    pub fn gateway(&self) -> Result<Ipv4Addr> {
        self.subnet
            .hosts()
            .next()
            .ok_or_else(|| RuntimeError::InvalidSpec(format!("subnet {} too small", self.subnet)))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.bridge.is_empty() || self.bridge.len() > 15 {
            return Err(RuntimeError::InvalidSpec(format!(
                "bridge name {:?} must be 1-15 characters",
                self.bridge
            )));
        }
        if self.subnet.prefix_len() > 30 {
            return Err(RuntimeError::InvalidSpec(format!(
                "subnet {} too small",
                self.subnet
            )));
        }
        self.gateway().map(|_| ())
    }
}

/// Names of one container's network objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Named netns (`/run/netns/<netns>`).
    pub netns: String,
    /// Host end of the veth pair; the container end is `eth0`.
    pub host_veth: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
}

impl Attachment {
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }
}

/// Persisted address leases: address → container id.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Leases {
    leases: BTreeMap<Ipv4Addr, String>,
}

/// Address allocator backed by a JSON file, written atomically on each change.
pub struct AddressPool {
    path: PathBuf,
    subnet: Ipv4Net,
    reserved: Ipv4Addr,
    leases: std::sync::Mutex<Leases>,
}

impl AddressPool {
    pub fn open(path: PathBuf, config: &NetworkConfig) -> Result<Self> {
        let leases = match std::fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw).map_err(|e| RuntimeError::State {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Leases::default(),
            Err(e) => return Err(e).at(path),
        };
        Ok(AddressPool {
            path,
            subnet: config.subnet,
            reserved: config.gateway()?,
            leases: std::sync::Mutex::new(leases),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the container's address, allocating one if it has none (idempotent).
    pub fn allocate(&self, container: &str) -> Result<Ipv4Addr> {
        let mut leases = self.lock();
        if let Some((ip, _)) = leases.leases.iter().find(|(_, c)| *c == container) {
            return Ok(*ip);
        }
        let free = self
            .subnet
            .hosts()
            .find(|ip| *ip != self.reserved && !leases.leases.contains_key(ip))
            .ok_or_else(|| RuntimeError::AddressesExhausted(self.subnet.to_string()))?;
        leases.leases.insert(free, container.to_string());
        self.persist(&leases)?;
        Ok(free)
    }

    /// Frees every address of the container (idempotent).
    pub fn release(&self, container: &str) -> Result<()> {
        let mut leases = self.lock();
        let before = leases.leases.len();
        leases.leases.retain(|_, c| c != container);
        if leases.leases.len() != before {
            self.persist(&leases)?;
        }
        Ok(())
    }

    /// Drops leases of containers that no longer exist (after a crash mid-delete).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<()> {
        let mut leases = self.lock();
        let before = leases.leases.len();
        leases.leases.retain(|_, c| keep(c));
        if leases.leases.len() != before {
            self.persist(&leases)?;
        }
        Ok(())
    }

    /// The container holding `address`, if any.
    pub fn holder(&self, address: Ipv4Addr) -> Option<String> {
        self.lock().leases.get(&address).cloned()
    }

    fn persist(&self, leases: &Leases) -> Result<()> {
        let json = serde_json::to_vec_pretty(leases).map_err(|e| RuntimeError::State {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&self.path, &json)
    }
}

/// Write-then-rename so a crash leaves either the old or the new file, never half.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)
}

/// Host interfaces appear in sysfs: checking there costs no subprocess.
async fn link_exists(name: &str) -> Result<bool> {
    Ok(!name.contains('/') && Path::new("/sys/class/net").join(name).exists())
}

/// Creates the bridge and gives it the gateway address (idempotent).
pub async fn ensure_bridge(config: &NetworkConfig) -> Result<()> {
    let bridge = config.bridge.as_str();
    if !link_exists(bridge).await? {
        let out = command::output(
            "ip",
            &["link", "add", "name", bridge, "type", "bridge"],
            None,
        )
        .await?;
        if out.status != 0 && !out.stderr.contains("File exists") {
            return Err(RuntimeError::Host(format!(
                "cannot create bridge {bridge}: {}",
                out.stderr.trim()
            )));
        }
    }
    let cidr = format!("{}/{}", config.gateway()?, config.subnet.prefix_len());
    command::run("ip", &["addr", "replace", cidr.as_str(), "dev", bridge]).await?;
    command::run("ip", &["link", "set", bridge, "up"]).await?;
    if config.masquerade {
        ensure_masquerade(config).await?;
    }
    Ok(())
}

/// NAT for traffic leaving the host; a table of its own so it is replaced, never stacked.
async fn ensure_masquerade(config: &NetworkConfig) -> Result<()> {
    tokio::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .await
        .at("/proc/sys/net/ipv4/ip_forward")?;
    let table = format!("hoody_nat_{}", config.bridge.replace('-', "_"));
    let rules = format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {subnet} oifname != \"{bridge}\" masquerade\n  }}\n}}\n",
        subnet = config.subnet,
        bridge = config.bridge,
    );
    command::run_with_input("nft", &["-f", "-"], Some(rules.as_bytes())).await?;
    Ok(())
}

/// Creates the netns and veth pair and configures addresses and routes (idempotent:
/// safe to call again on an existing attachment, e.g. during adoption).
pub async fn attach(bridge: &str, att: &Attachment) -> Result<()> {
    let ns = att.netns.as_str();
    if !att.netns_path().exists() {
        let out = command::output("ip", &["netns", "add", ns], None).await?;
        if out.status != 0 && !out.stderr.contains("File exists") {
            return Err(RuntimeError::Host(format!(
                "cannot create netns {ns}: {}",
                out.stderr.trim()
            )));
        }
    }
    let host = att.host_veth.as_str();
    let mut host_batch = String::new();
    if !link_exists(host).await? {
        host_batch.push_str(&format!(
            "link add {host} type veth peer name eth0 netns {ns}\n"
        ));
    }
    host_batch.push_str(&format!("link set {host} master {bridge} up\n"));
    command::run_with_input("ip", &["-batch", "-"], Some(host_batch.as_bytes())).await?;
    // One `ip` process per namespace: process start-up dominates the cost of create.
    let ns_batch = format!(
        "link set lo up\naddr replace {address}/{prefix} dev eth0\nlink set eth0 up\nroute replace default via {gateway}\n",
        address = att.address,
        prefix = att.prefix_len,
        gateway = att.gateway,
    );
    command::run_with_input("ip", &["-n", ns, "-batch", "-"], Some(ns_batch.as_bytes())).await?;
    Ok(())
}

/// Removes the veth pair and the netns (idempotent). Deleting the host end destroys
/// the container end with it.
pub async fn detach(att: &Attachment) -> Result<()> {
    if link_exists(&att.host_veth).await? {
        let out = command::output("ip", &["link", "del", att.host_veth.as_str()], None).await?;
        if out.status != 0 && link_exists(&att.host_veth).await? {
            return Err(RuntimeError::Host(format!(
                "cannot delete veth {}: {}",
                att.host_veth,
                out.stderr.trim()
            )));
        }
    }
    if att.netns_path().exists() {
        command::run("ip", &["netns", "del", att.netns.as_str()]).await?;
    }
    Ok(())
}

/// True when a host interface with this name exists (tests use it to assert no leaks).
pub async fn interface_exists(name: &str) -> Result<bool> {
    link_exists(name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path) -> AddressPool {
        let config = NetworkConfig {
            subnet: "10.99.0.0/29".parse().unwrap(),
            ..Default::default()
        };
        AddressPool::open(dir.join("ipam.json"), &config).unwrap()
    }

    #[test]
    fn allocation_is_idempotent_persistent_and_released() {
        let dir = std::env::temp_dir().join(format!("ipam-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("ipam.json"));
        let a = pool(&dir).allocate("a").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 99, 0, 2), "gateway .1 is reserved");
        let reopened = pool(&dir);
        assert_eq!(reopened.allocate("a").unwrap(), a);
        let b = reopened.allocate("b").unwrap();
        assert_ne!(a, b);
        reopened.release("a").unwrap();
        assert_eq!(pool(&dir).holder(a), None);
        assert_eq!(pool(&dir).holder(b).as_deref(), Some("b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exhausted_subnet_is_a_typed_error() {
        let dir = std::env::temp_dir().join(format!("ipam-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("ipam.json"));
        let pool = pool(&dir);
        for i in 0..5 {
            pool.allocate(&format!("c{i}")).unwrap();
        }
        assert!(matches!(
            pool.allocate("c6"),
            Err(RuntimeError::AddressesExhausted(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
