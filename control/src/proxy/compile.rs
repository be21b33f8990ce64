//! The config compiler: a container's records → its data-plane unit.
//!
//! A unit is rebuilt whole from the store (container record, merged proxy
//! document, aliases, ingress firewall) plus one fact from the runtime: the
//! container's address while it runs. It is then published through
//! [`crate::publish::Publisher`], which applies it to the embedded data plane
//! before returning, so the API call that triggered the compile answers
//! only once the proxy enforces the change.
//!
//! Hostnames route only while the container runs: a unit of a stopped or
//! paused container keeps its hostnames with no upstream, which the data
//! plane answers with a 503 JSON error.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use dataplane::config::{
    self as dp, Access, ContainerUnit, Delta, FirewallAction, FirewallProtocol, ProxyDocument,
    RuleState, Service, Snapshot,
};

use crate::aliases::model::{self as aliases, Alias};
use crate::containers::model::{status, Container, FirewallRule, CONTAINERS};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Store;

/// Port every container exposes through `http` even when nothing names it:
/// the conventional web port (busybox's httpd, most images' servers).
pub const DEFAULT_HTTP_PORT: u32 = 80;

/// Ports of one program named by a document's access rules, at most this
/// many per document (a rule like `[1, 2, ..., 65535]` must not become
/// 65535 services).
const MAX_DOCUMENT_PORTS: usize = 64;

/// Rebuilds the unit of one container from its records and publishes it
/// (removes it when the container is gone).
///
/// One recompile per container at a time, reading the records inside the lock:
/// otherwise a recompile that read the records before a change (say, a hook added)
/// but published after the change's own recompile would put the older unit back
/// (it awaits the runtime in between, which under load can take a while).
pub async fn recompile(state: &AppState, container_id: &str) -> ApiResult<()> {
    let _serial = state.compile_locks.lock(container_id).await;
    let Some(c) = state.store.get(&CONTAINERS, container_id)? else {
        return remove(state, container_id);
    };
    let address = running_address(state, &c).await;
    let unit = unit_for(&state.store, &c, address)?;
    publish(state, unit)
}

/// Compiles every container and replaces the data plane's routes with the
/// result (server start). A container whose unit the data plane refuses is
/// logged and left out rather than keeping every other container offline.
pub async fn compile_all(state: &AppState) -> ApiResult<u64> {
    let mut units = Vec::new();
    for c in state.store.scan(&CONTAINERS)? {
        let address = running_address(state, &c).await;
        units.push(unit_for(&state.store, &c, address)?);
    }
    let (version, refused) = state.publisher.publish_all(Snapshot { units });
    for (unit, e) in refused {
        tracing::error!(container = %unit.id, error = %e, "unit refused at start");
    }
    Ok(version)
}

/// The unit of `c`, given its address when it runs.
pub fn unit_for(
    store: &Store,
    c: &Container,
    address: Option<Ipv4Addr>,
) -> ApiResult<ContainerUnit> {
    let proxy = crate::proxy::documents::merged_for_container(store, c)?;
    let aliases = aliases::of_container(store, &c.id)?;
    let mut unit = build_unit(c, proxy, &aliases, address);
    unit.modules = crate::modules::refs_for_container(store, &c.id)?;
    Ok(unit)
}

/// The pure part of the compiler: records in, unit out.
pub fn build_unit(
    c: &Container,
    proxy: Option<ProxyDocument>,
    aliases: &[Alias],
    address: Option<Ipv4Addr>,
) -> ContainerUnit {
    let services = exposed(proxy.as_ref(), aliases)
        .into_iter()
        .map(|(program, index)| Service {
            upstream: address.map(|a| format!("http://{a}:{index}")),
            program,
            index,
            hosts: Vec::new(),
        })
        .collect();
    ContainerUnit {
        id: c.id.clone(),
        project: Some(c.project_id.clone()),
        services,
        aliases: aliases.iter().map(alias_of).collect(),
        proxy,
        firewall: c.firewall.ingress.iter().filter_map(ingress_rule).collect(),
        modules: Default::default(),
    }
}

/// The (program, port) pairs a container serves: `http` on the default
/// port, plus every port an alias, a hook key or an access rule names.
/// Only `http` services get an upstream address the proxy can reach; other
/// programs are routed once the kit that runs them exists.
fn exposed(proxy: Option<&ProxyDocument>, aliases: &[Alias]) -> BTreeSet<(String, u32)> {
    let mut ports = BTreeSet::from([DEFAULT_HTTP_PORT]);
    for a in aliases.iter().filter(|a| a.program == "http") {
        ports.insert(a.index);
    }
    if let Some(doc) = proxy {
        for key in doc.hooks.keys() {
            if let Some(p) = key.strip_prefix("http-").and_then(|p| p.parse().ok()) {
                ports.insert(p);
            }
        }
        let named = doc
            .permissions
            .values()
            .filter_map(|programs| programs.get("http"))
            .flat_map(|access| match access {
                Access::Port(p) => vec![*p],
                Access::Ports(ps) => ps.clone(),
                _ => Vec::new(),
            })
            .filter(|p| (1..=65535).contains(p))
            .take(MAX_DOCUMENT_PORTS);
        ports.extend(named);
    }
    ports.into_iter().map(|p| ("http".to_string(), p)).collect()
}

/// The data plane's view of an alias; `http`/`https` carry their port.
fn alias_of(a: &Alias) -> dp::Alias {
    let is_port = a.program == "http" || a.program == "https";
    dp::Alias {
        alias: a.alias.clone(),
        host: None,
        program: a.program.clone(),
        port: is_port.then(|| u16::try_from(a.index).ok()).flatten(),
        index: Some(a.index),
        target_path: a.target_path.clone(),
        allow_path_override: a.allow_path_override,
        expires_at: a.expires_at.clone(),
        enabled: a.enabled,
    }
}

/// An ingress rule as the access gate reads it. Rules were validated when
/// written; one the gate's model cannot express is skipped.
fn ingress_rule(r: &FirewallRule) -> Option<dp::FirewallRule> {
    let action = match r.action.as_str() {
        "allow" => FirewallAction::Allow,
        "reject" => FirewallAction::Reject,
        "drop" => FirewallAction::Drop,
        _ => return None,
    };
    let protocol = match r.protocol.as_str() {
        "tcp" => FirewallProtocol::Tcp,
        "udp" => FirewallProtocol::Udp,
        "icmp4" | "icmp" => FirewallProtocol::Icmp4,
        _ => return None,
    };
    Some(dp::FirewallRule {
        id: None,
        action,
        protocol,
        description: r.description.clone(),
        destination_port: r.destination_port.clone(),
        source: r.source.clone(),
        source_port: r.source_port.clone(),
        state: if r.state == "disabled" {
            RuleState::Disabled
        } else {
            RuleState::Enabled
        },
        icmp_type: r.icmp_type.clone(),
        icmp_code: r.icmp_code.clone(),
    })
}

/// The container's address while the runtime reports it running.
async fn running_address(state: &AppState, c: &Container) -> Option<Ipv4Addr> {
    if c.status != status::RUNNING {
        return None;
    }
    let rt = state.runtime().ok()?;
    match rt.inspect(&c.id).await {
        Ok(info) if info.status == runtime::ContainerStatus::Running => Some(info.address),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(container = %c.id, error = %e, "no address for a running container");
            None
        }
    }
}

fn publish(state: &AppState, unit: ContainerUnit) -> ApiResult<()> {
    if state.publisher.unit(&unit.id).as_ref() == Some(&unit) {
        return Ok(());
    }
    state
        .publisher
        .publish(Delta::Upsert { unit })
        .map(|_| ())
        .map_err(refused)
}

fn remove(state: &AppState, id: &str) -> ApiResult<()> {
    if state.publisher.unit(id).is_none() {
        return Ok(());
    }
    state
        .publisher
        .publish(Delta::Remove { id: id.to_string() })
        .map(|_| ())
        .map_err(refused)
}

/// The data plane refusing a unit the API accepted is our bug, not the
/// caller's: every input was validated before it was stored.
fn refused(e: dataplane::ConfigError) -> ApiError {
    ApiError::internal(e)
}
