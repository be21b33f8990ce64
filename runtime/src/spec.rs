//! What the control plane asks for: the desired shape of a container. Plain data with
//! validation, no I/O, so the control plane can validate input before calling the runtime.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// Everything needed to create a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    /// Runtime id: 1–64 of `[A-Za-z0-9_-]`, unique on this runtime (the control plane's
    /// 24-hex container id fits).
    pub id: String,
    /// Image reference in any accepted shorthand (`busybox`, `debian`, `debian-12`,
    /// `debian:12`, `debian 12`, `debian/12`); `None` takes the runtime's default image.
    pub image: Option<String>,
    /// Hostname inside the container; defaults to the id.
    pub hostname: Option<String>,
    /// Environment variables, applied at each start.
    pub env: BTreeMap<String, String>,
    pub limits: ResourceLimits,
    /// Directories of the host (typically another container's share) bind-mounted at start.
    pub mounts: Vec<BindMount>,
    pub network: NetworkPolicy,
    pub egress_rules: Vec<EgressRule>,
    /// Replaces the image entrypoint when set.
    pub command: Option<Vec<String>>,
    /// Nameservers for /etc/resolv.conf (contract: at most 4); empty takes the runtime's.
    pub dns_servers: Vec<String>,
}

/// cgroup limits; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// CPU limit in thousandths of a core (1000 = one full core).
    pub cpu_millicores: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
}

/// A bind mount for a storage share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindMount {
    /// Absolute host path; must exist at start.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// Network configuration (contract `containers.updateNetworkConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// No restriction beyond the egress rules.
    #[default]
    Open,
    /// No egress at all (contract type `block`), enforced with nftables.
    Block,
    /// Traffic should go through a proxy: applied as proxy environment variables at start.
    Proxy { kind: ProxyKind, url: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    Socks5,
    Http,
    Https,
}

/// One egress firewall rule (contract `firewall.addEgressRule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    pub action: RuleAction,
    pub protocol: RuleProtocol,
    /// IPv4 address or CIDR; `None` means any.
    pub destination: Option<String>,
    /// `80`, `80-90` or `80,443`; only for tcp/udp.
    pub destination_port: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Allow,
    Reject,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleProtocol {
    Tcp,
    Udp,
    Icmp4,
}

/// Port selector of an egress rule, parsed so nftables never sees raw user text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    Single(u16),
    Range(u16, u16),
    List(Vec<u16>),
}

impl ContainerSpec {
    /// Checks everything that does not need the host.
    pub fn validate(&self) -> Result<()> {
        validate_id(&self.id)?;
        if let Some(host) = &self.hostname {
            if host.is_empty() || host.len() > 63 || !host.chars().all(is_name_char) {
                return Err(invalid(format!("invalid hostname {host:?}")));
            }
        }
        for key in self.env.keys() {
            validate_env_key(key)?;
        }
        for value in self.env.values() {
            if value.contains('\0') {
                return Err(invalid("environment value contains NUL"));
            }
        }
        self.limits.validate()?;
        for mount in &self.mounts {
            mount.validate()?;
        }
        self.network.validate()?;
        for rule in &self.egress_rules {
            rule.validate()?;
        }
        if self.dns_servers.len() > 4 {
            return Err(invalid("at most 4 DNS servers"));
        }
        for server in &self.dns_servers {
            if server.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(format!("invalid DNS server {server:?}")));
            }
        }
        if let Some(cmd) = &self.command {
            if cmd.is_empty() {
                return Err(invalid("command must not be empty"));
            }
        }
        Ok(())
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn invalid(message: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec(message.into())
}

/// Container ids become file names, runc ids and cgroup names: keep them boring.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(is_name_char) {
        return Err(invalid(format!(
            "container id {id:?} must be 1-64 characters of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

fn validate_env_key(key: &str) -> Result<()> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || key.len() > 128 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(format!(
            "invalid environment variable name {key:?}"
        )));
    }
    Ok(())
}

impl ResourceLimits {
    fn validate(&self) -> Result<()> {
        if self.cpu_millicores == Some(0) {
            return Err(invalid("cpu limit must be positive"));
        }
        if self.memory_bytes.is_some_and(|m| m < 4 * 1024 * 1024) {
            return Err(invalid("memory limit must be at least 4 MiB"));
        }
        if self.pids == Some(0) {
            return Err(invalid("pids limit must be positive"));
        }
        Ok(())
    }
}

impl BindMount {
    fn validate(&self) -> Result<()> {
        if !self.source.is_absolute() {
            return Err(invalid(format!(
                "mount source {} must be absolute",
                self.source.display()
            )));
        }
        let target_ok = self.target.starts_with('/')
            && self.target != "/"
            && !self.target.split('/').any(|part| part == "..");
        if !target_ok {
            return Err(invalid(format!("invalid mount target {:?}", self.target)));
        }
        Ok(())
    }
}

impl NetworkPolicy {
    fn validate(&self) -> Result<()> {
        if let NetworkPolicy::Proxy { kind, url } = self {
            let scheme = match kind {
                ProxyKind::Socks5 => "socks5://",
                ProxyKind::Http => "http://",
                ProxyKind::Https => "https://",
            };
            if !url.starts_with(scheme)
                || url.len() <= scheme.len()
                || url.contains(char::is_whitespace)
            {
                return Err(invalid(format!("proxy url must start with {scheme}")));
            }
        }
        Ok(())
    }

    /// Proxy variables the container gets at start; both cases because tools disagree.
    pub fn proxy_env(&self) -> Vec<(String, String)> {
        let NetworkPolicy::Proxy { url, .. } = self else {
            return Vec::new();
        };
        let mut vars = vec![("ALL_PROXY", url.as_str())];
        // socks5 URLs work for HTTP_PROXY too in curl and most language runtimes.
        vars.push(("HTTP_PROXY", url));
        vars.push(("HTTPS_PROXY", url));
        vars.push(("NO_PROXY", "localhost,127.0.0.1,::1"));
        vars.into_iter()
            .flat_map(|(k, v)| {
                [
                    (k.to_string(), v.to_string()),
                    (k.to_ascii_lowercase(), v.to_string()),
                ]
            })
            .collect()
    }
}

impl EgressRule {
    /// Parses the destination; `None`/empty means any address.
    pub fn destination_net(&self) -> Result<Option<Ipv4Net>> {
        let Some(dest) = self.destination.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if dest.is_empty() {
            return Ok(None);
        }
        let net = if dest.contains('/') {
            dest.parse::<Ipv4Net>()
                .map_err(|_| invalid(format!("invalid destination {dest:?}")))?
        } else {
            let ip: std::net::Ipv4Addr = dest
                .parse()
                .map_err(|_| invalid(format!("invalid destination {dest:?}")))?;
            Ipv4Net::from(ip)
        };
        Ok(Some(net.trunc()))
    }

    /// Parses the port selector; ports only make sense for tcp/udp.
    pub fn ports(&self) -> Result<Option<PortMatch>> {
        let Some(raw) = self.destination_port.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        if self.protocol == RuleProtocol::Icmp4 {
            return Err(invalid("icmp4 rules take no destination_port"));
        }
        parse_ports(raw).map(Some)
    }

    fn validate(&self) -> Result<()> {
        self.destination_net()?;
        self.ports()?;
        Ok(())
    }
}

fn parse_port(text: &str) -> Result<u16> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(invalid(format!("invalid port {text:?}"))),
    }
}

/// `80`, `80-90`, or `80,443`.
pub fn parse_ports(raw: &str) -> Result<PortMatch> {
    if raw.contains(',') {
        let ports = raw.split(',').map(parse_port).collect::<Result<Vec<_>>>()?;
        return Ok(PortMatch::List(ports));
    }
    if let Some((low, high)) = raw.split_once('-') {
        let (low, high) = (parse_port(low)?, parse_port(high)?);
        if low > high {
            return Err(invalid(format!("invalid port range {raw:?}")));
        }
        return Ok(PortMatch::Range(low, high));
    }
    parse_port(raw).map(PortMatch::Single)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(port: &str) -> EgressRule {
        EgressRule {
            action: RuleAction::Drop,
            protocol: RuleProtocol::Tcp,
            destination: Some("10.0.0.1".into()),
            destination_port: Some(port.into()),
            enabled: true,
        }
    }

    #[test]
    fn parses_single_range_and_list_ports() {
        assert_eq!(rule("80").ports().unwrap(), Some(PortMatch::Single(80)));
        assert_eq!(
            rule("80-90").ports().unwrap(),
            Some(PortMatch::Range(80, 90))
        );
        assert_eq!(
            rule("80, 443").ports().unwrap(),
            Some(PortMatch::List(vec![80, 443]))
        );
    }

    #[test]
    fn rejects_bad_ports_and_destinations() {
        assert!(rule("90-80").ports().is_err());
        assert!(rule("0").ports().is_err());
        assert!(rule("http").ports().is_err());
        let mut r = rule("80");
        r.destination = Some("10.0.0.0/33".into());
        assert!(r.destination_net().is_err());
    }

    #[test]
    fn rejects_bad_ids_and_env_names() {
        assert!(validate_id("ok-id_1").is_ok());
        assert!(validate_id("../etc").is_err());
        assert!(validate_id("").is_err());
        let mut spec = ContainerSpec {
            id: "c1".into(),
            ..Default::default()
        };
        spec.env.insert("1BAD".into(), "x".into());
        assert!(matches!(spec.validate(), Err(RuntimeError::InvalidSpec(_))));
    }

    #[test]
    fn proxy_policy_sets_both_cases_of_proxy_variables() {
        let policy = NetworkPolicy::Proxy {
            kind: ProxyKind::Http,
            url: "http://proxy:3128".into(),
        };
        let env = policy.proxy_env();
        assert!(env.contains(&("HTTP_PROXY".into(), "http://proxy:3128".into())));
        assert!(env.contains(&("https_proxy".into(), "http://proxy:3128".into())));
    }
}
