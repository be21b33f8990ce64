//! The route table: host → `Arc<Route>`, plus the bookkeeping that lets a
//! delta replace one unit's hostnames as a single step.
//!
//! Lookups are lock-free in practice: `DashMap` shards by host hash, readers
//! take a shard read lock for a hash probe and an `Arc` clone, and a request
//! keeps its `Arc<Route>` for its whole life, so a concurrent swap never
//! changes the route of a request in flight. Writers are serialised by one
//! mutex; a unit is compiled completely (keys parsed, upstreams resolved)
//! before anything is published, so a bad unit changes nothing.
//!
//! Must never block readers on compilation or I/O.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use http::HeaderValue;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use crate::config::{Alias, ContainerUnit, Delta, Settings, Snapshot};
use crate::gate::{AccessGate, GateError, OwnerKey};
use crate::hooks::{HookHost, RouteHooks};

/// Why a delta was rejected. The table is unchanged when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unit `{unit}`: {source}")]
    Gate { unit: String, source: GateError },
    #[error("unit `{unit}`: bad upstream `{upstream}`: {reason}")]
    Upstream {
        unit: String,
        upstream: String,
        reason: String,
    },
    #[error("unit `{unit}`: bad host `{host}`")]
    Host { unit: String, host: String },
    #[error("unit `{unit}`: host `{host}` already belongs to unit `{owner}`")]
    HostTaken {
        unit: String,
        host: String,
        owner: String,
    },
    #[error("unit `{unit}`: {reason}")]
    Unit { unit: String, reason: String },
}

/// What kind of hostname matched, for metrics and path handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Service,
    Alias,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Service => "service",
            RouteKind::Alias => "alias",
        }
    }
}

/// A resolved upstream origin with its precomputed `Host` value.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub authority: HeaderValue,
}

/// Alias path handling (`target_path`, `allow_path_override`).
#[derive(Debug, Clone)]
pub struct PathRule {
    /// Without trailing slash; empty means "no prefix".
    pub prefix: String,
    pub allow_override: bool,
}

/// Everything a request needs once its host matched.
pub struct Route {
    pub unit: Arc<str>,
    pub kind: RouteKind,
    pub program: Arc<str>,
    pub port: u32,
    /// `None`: the program is not running (503).
    pub upstream: Option<Arc<Upstream>>,
    pub gate: Arc<AccessGate>,
    pub path: Option<PathRule>,
    /// Unix seconds after which an alias stops answering.
    pub expires_at: Option<i64>,
    pub enabled: bool,
    /// The host, as the `X-Forwarded-Host` value.
    pub host_header: HeaderValue,
    /// The hooks of this route's service, in the order they are tried.
    pub hooks: Option<Arc<RouteHooks>>,
    /// On a container's capability route of program `http` (port 80): the
    /// program-wide hooks, which routes derived for its other ports run
    /// (see [`RouteTable::lookup`]). `None` elsewhere.
    pub program_hooks: Option<Arc<RouteHooks>>,
}

/// The program whose capability hostnames name any port of the container,
/// and the port of the route that carries the container's gate for them.
const DERIVED_PROGRAM: &str = "http";
const DERIVED_FROM_PORT: u32 = 80;

/// A unit compiled into its hostnames and their routes.
pub type CompiledUnit = Vec<(Arc<str>, Arc<Route>)>;

struct UnitEntry {
    /// Shares the table keys' allocations.
    hosts: Vec<Arc<str>>,
}

/// host → route, swapped per unit.
pub struct RouteTable {
    routes: DashMap<Arc<str>, Arc<Route>, FxBuildHasher>,
    units: Mutex<FxHashMap<String, UnitEntry>>,
    version: AtomicU64,
    node: String,
    base_domain: String,
    /// Verifies owner claims; `None` when the settings carry no key and
    /// none arrived with a snapshot. Read once per unit compile, never by
    /// requests (each compiled gate holds its own copy).
    owner_key: RwLock<Option<OwnerKey>>,
    hooks: Arc<HookHost>,
}

/// The key behind `hex`, or `None` (with a warning) when it is malformed:
/// a bad key admits no claim rather than stopping the proxy, and the
/// groups still apply.
fn parse_owner_key(hex: &str) -> Option<OwnerKey> {
    OwnerKey::from_hex(hex)
        .inspect_err(|e| tracing::warn!(error = %e, "owner claims disabled"))
        .ok()
}

/// A snapshot's units that compiled, by unit id, in snapshot order.
type CompiledSnapshot<'a> = Vec<(&'a str, CompiledUnit)>;

/// The compiled snapshot, or the first refusal when there was one.
fn all_or_nothing(
    (compiled, refused): (CompiledSnapshot<'_>, Vec<(usize, ConfigError)>),
) -> Result<CompiledSnapshot<'_>, ConfigError> {
    match refused.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(compiled),
    }
}

impl RouteTable {
    pub fn new(settings: &Settings) -> Self {
        Self {
            hooks: Arc::new(HookHost::new(
                settings.hooks.clone(),
                settings.module_dir.clone(),
            )),
            routes: DashMap::with_hasher(FxBuildHasher),
            units: Mutex::new(FxHashMap::default()),
            version: AtomicU64::new(0),
            node: settings.node.to_ascii_lowercase(),
            base_domain: settings.base_domain.to_ascii_lowercase(),
            owner_key: RwLock::new(
                settings
                    .owner_claim_key
                    .as_deref()
                    .and_then(parse_owner_key),
            ),
        }
    }

    /// Finds the route for a `Host` / `:authority` value (port and trailing
    /// dot ignored, case-insensitive). Allocation-free for lowercase hosts.
    pub fn lookup(&self, host: &str) -> Option<Arc<Route>> {
        let host = strip_port(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            let lower = host.to_ascii_lowercase();
            return self.lookup_exact(&lower);
        }
        self.lookup_exact(host)
    }

    fn lookup_exact(&self, host: &str) -> Option<Arc<Route>> {
        match self.routes.get(host) {
            Some(r) => Some(Arc::clone(r.value())),
            None => self.derived_port_route(host),
        }
    }

    /// A container's capability hostname names a port in its label
    /// (`{project}-{container}-http-{port}.{node}.{base}`), and every port of
    /// a container answers there, not only those its unit lists: a host not
    /// in the table but of that shape borrows the container's
    /// `...-http-80` route (its gate, its address, the program-wide hooks)
    /// with the port replaced. Built per miss and cached per worker until
    /// the next change; never stored in the table.
    fn derived_port_route(&self, host: &str) -> Option<Arc<Route>> {
        let label = host
            .strip_suffix(self.base_domain.as_str())?
            .strip_suffix('.')?
            .strip_suffix(self.node.as_str())?
            .strip_suffix('.')?;
        let (rest, port) = label.rsplit_once('-')?;
        let prefix = rest.strip_suffix(DERIVED_PROGRAM)?.strip_suffix('-')?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
        if port.to_string().len() != label.len() - rest.len() - 1 {
            return None; // leading zeros or a sign: not the canonical name
        }
        let sibling = format!(
            "{prefix}-{DERIVED_PROGRAM}-{DERIVED_FROM_PORT}.{}.{}",
            self.node, self.base_domain
        );
        let base = Arc::clone(self.routes.get(sibling.as_str())?.value());
        if base.kind != RouteKind::Service || base.port != DERIVED_FROM_PORT {
            return None;
        }
        let upstream = match &base.upstream {
            Some(u) => {
                let addr = SocketAddr::new(u.addr.ip(), port);
                let authority = HeaderValue::from_str(&addr.to_string()).ok()?;
                Some(Arc::new(Upstream { addr, authority }))
            }
            None => None,
        };
        Some(Arc::new(Route {
            unit: base.unit.clone(),
            kind: RouteKind::Service,
            program: base.program.clone(),
            port: u32::from(port),
            upstream,
            gate: base.gate.clone(),
            path: None,
            expires_at: None,
            enabled: true,
            host_header: HeaderValue::from_str(host).ok()?,
            hooks: base.program_hooks.clone(),
            program_hooks: None,
        }))
    }

    /// The hook runtime units' hooks are compiled with.
    pub fn hooks(&self) -> &Arc<HookHost> {
        &self.hooks
    }

    /// Number of applied changes since start.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Number of hostnames currently routed.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Applies one delta; on error nothing changed.
    pub fn apply(&self, delta: &Delta) -> Result<u64, ConfigError> {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        match delta {
            Delta::Upsert { unit } => {
                let compiled = self.compile_unit(unit)?;
                self.check_ownership(&units, &unit.id, &compiled)?;
                self.publish(&mut units, &unit.id, compiled);
            }
            Delta::Remove { id } => {
                if let Some(old) = units.remove(id) {
                    for host in old.hosts {
                        self.routes.remove(&host);
                    }
                }
            }
        }
        Ok(self.version.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Replaces everything. The snapshot is compiled completely first, so a
    /// bad snapshot leaves the running routes untouched.
    pub fn replace_all(&self, snapshot: &Snapshot) -> Result<u64, ConfigError> {
        let key = self.owner_key();
        let compiled = all_or_nothing(self.compile_snapshot(&snapshot.units, key.as_ref()))?;
        Ok(self.install(compiled))
    }

    /// [`Self::replace_all`] together with the key that verifies owner
    /// claims (a remote node gets both from its control plane): every unit
    /// is compiled with the new key, and the key is kept only when the
    /// snapshot is. `None` keeps the current key.
    pub fn replace_all_with_owner_key(
        &self,
        snapshot: &Snapshot,
        owner_key: Option<&str>,
    ) -> Result<u64, ConfigError> {
        let Some(hex) = owner_key else {
            return self.replace_all(snapshot);
        };
        let key = parse_owner_key(hex);
        let compiled = all_or_nothing(self.compile_snapshot(&snapshot.units, key.as_ref()))?;
        *self.owner_key.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(self.install(compiled))
    }

    /// Replaces everything with the units that compile, each compiled
    /// once: a unit that does not (a bad unit, a repeated id, a hostname an
    /// earlier unit holds) is left out and returned with its position in
    /// the snapshot and why, instead of failing the whole snapshot. For a
    /// control plane's start-up, where one bad record must not keep every
    /// other container offline.
    pub fn replace_all_accepting(&self, snapshot: &Snapshot) -> (u64, Vec<(usize, ConfigError)>) {
        let key = self.owner_key();
        let (compiled, refused) = self.compile_snapshot(&snapshot.units, key.as_ref());
        (self.install(compiled), refused)
    }

    /// Compiles `units` in order, checking that ids and hostnames are
    /// unique across the snapshot; returns the units that compiled and,
    /// by position, why the others did not.
    fn compile_snapshot<'a>(
        &self,
        units: &'a [ContainerUnit],
        key: Option<&OwnerKey>,
    ) -> (CompiledSnapshot<'a>, Vec<(usize, ConfigError)>) {
        let mut compiled = Vec::with_capacity(units.len());
        let mut refused = Vec::new();
        let mut hosts: FxHashMap<Arc<str>, &str> = FxHashMap::default();
        let mut ids: FxHashSet<&str> = FxHashSet::default();
        for (i, unit) in units.iter().enumerate() {
            match self.compile_unique(unit, key, &ids, &hosts) {
                Ok(routes) => {
                    ids.insert(unit.id.as_str());
                    for (host, _) in &routes {
                        hosts.insert(host.clone(), unit.id.as_str());
                    }
                    compiled.push((unit.id.as_str(), routes));
                }
                Err(e) => refused.push((i, e)),
            }
        }
        (compiled, refused)
    }

    /// One unit of a snapshot, refused when its id or one of its hostnames
    /// is already taken by an earlier unit (or by itself).
    fn compile_unique(
        &self,
        unit: &ContainerUnit,
        key: Option<&OwnerKey>,
        ids: &FxHashSet<&str>,
        hosts: &FxHashMap<Arc<str>, &str>,
    ) -> Result<CompiledUnit, ConfigError> {
        if ids.contains(unit.id.as_str()) {
            return Err(ConfigError::Unit {
                unit: unit.id.clone(),
                reason: "duplicate unit id".into(),
            });
        }
        let routes = self.compile_unit_with(unit, key)?;
        let mut own: FxHashSet<&str> = FxHashSet::default();
        for (host, _) in &routes {
            let owner = hosts
                .get(host)
                .copied()
                .or_else(|| (!own.insert(host.as_ref())).then_some(unit.id.as_str()));
            if let Some(owner) = owner {
                return Err(ConfigError::HostTaken {
                    unit: unit.id.clone(),
                    host: host.to_string(),
                    owner: owner.to_string(),
                });
            }
        }
        Ok(routes)
    }

    /// Makes `compiled` the whole table: units not in it go, the others
    /// are published; returns the new version.
    fn install(&self, compiled: CompiledSnapshot<'_>) -> u64 {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        let keep: FxHashSet<&str> = compiled.iter().map(|(id, _)| *id).collect();
        let stale: Vec<String> = units
            .keys()
            .filter(|id| !keep.contains(id.as_str()))
            .cloned()
            .collect();
        for id in stale {
            if let Some(old) = units.remove(&id) {
                for host in old.hosts {
                    self.routes.remove(&host);
                }
            }
        }
        for (id, routes) in compiled {
            self.publish(&mut units, id, routes);
        }
        self.version.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn owner_key(&self) -> Option<OwnerKey> {
        self.owner_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn check_ownership(
        &self,
        units: &FxHashMap<String, UnitEntry>,
        id: &str,
        compiled: &[(Arc<str>, Arc<Route>)],
    ) -> Result<(), ConfigError> {
        for (host, _) in compiled {
            if let Some(existing) = self.routes.get(host) {
                let owner = &existing.value().unit;
                if owner.as_ref() != id && units.contains_key(owner.as_ref()) {
                    return Err(ConfigError::HostTaken {
                        unit: id.to_string(),
                        host: host.to_string(),
                        owner: owner.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Inserts the new hosts first (each insert is one atomic swap), then
    /// removes hosts the unit no longer has.
    fn publish(&self, units: &mut FxHashMap<String, UnitEntry>, id: &str, compiled: CompiledUnit) {
        let hosts: Vec<Arc<str>> = compiled.iter().map(|(h, _)| h.clone()).collect();
        for (host, route) in compiled {
            self.routes.insert(host, route);
        }
        let old = units.insert(id.to_string(), UnitEntry { hosts });
        if let (Some(old), Some(new)) = (old, units.get(id)) {
            let current: FxHashSet<&str> = new.hosts.iter().map(|h| h.as_ref()).collect();
            for host in old.hosts.iter().filter(|h| !current.contains(h.as_ref())) {
                self.routes.remove(host);
            }
        }
    }

    /// Compiles a unit into its (host, route) pairs without touching the table.
    pub fn compile_unit(&self, unit: &ContainerUnit) -> Result<CompiledUnit, ConfigError> {
        self.compile_unit_with(unit, self.owner_key().as_ref())
    }

    fn compile_unit_with(
        &self,
        unit: &ContainerUnit,
        owner_key: Option<&OwnerKey>,
    ) -> Result<CompiledUnit, ConfigError> {
        if unit.id.is_empty() {
            return Err(ConfigError::Unit {
                unit: String::new(),
                reason: "empty id".into(),
            });
        }
        let gate = Arc::new(
            AccessGate::compile(unit.proxy.as_ref(), &unit.firewall)
                .map_err(|source| ConfigError::Gate {
                    unit: unit.id.clone(),
                    source,
                })?
                .with_owner(owner_key, &unit.id),
        );
        let hooks = self
            .hooks
            .compile_unit(unit)
            .map_err(|reason| ConfigError::Unit {
                unit: unit.id.clone(),
                reason,
            })?;
        let unit_id: Arc<str> = Arc::from(unit.id.as_str());
        let mut out = Vec::new();
        let mut services = Vec::with_capacity(unit.services.len());
        for svc in &unit.services {
            let upstream = svc
                .upstream
                .as_deref()
                .map(|u| resolve_upstream(&unit.id, u))
                .transpose()?;
            let program: Arc<str> = Arc::from(svc.program.as_str());
            services.push((svc.program.as_str(), svc.index, upstream.clone()));
            let hosts = if svc.hosts.is_empty() {
                vec![self.capability_host(unit, &svc.program, svc.index)?]
            } else {
                svc.hosts.clone()
            };
            for host in hosts {
                let host = normalise_host(&unit.id, &host)?;
                let derives_ports = svc.hosts.is_empty()
                    && svc.program == DERIVED_PROGRAM
                    && svc.index == DERIVED_FROM_PORT;
                let route = Route {
                    unit: unit_id.clone(),
                    kind: RouteKind::Service,
                    program: program.clone(),
                    port: svc.index,
                    upstream: upstream.clone(),
                    gate: gate.clone(),
                    path: None,
                    expires_at: None,
                    enabled: true,
                    host_header: host_value(&unit.id, &host)?,
                    hooks: hooks.for_service(&svc.program, svc.index),
                    program_hooks: derives_ports
                        .then(|| hooks.for_program(&svc.program))
                        .flatten(),
                };
                out.push((host, Arc::new(route)));
            }
        }
        for alias in &unit.aliases {
            let mut route = self.compile_alias(unit, &unit_id, &gate, &services, alias)?;
            let (program, port) = alias_target(alias);
            if let Some(r) = Arc::get_mut(&mut route.1) {
                r.hooks = hooks.for_service(program, port);
            }
            out.push(route);
        }
        Ok(out)
    }

    fn compile_alias(
        &self,
        unit: &ContainerUnit,
        unit_id: &Arc<str>,
        gate: &Arc<AccessGate>,
        services: &[(&str, u32, Option<Arc<Upstream>>)],
        alias: &Alias,
    ) -> Result<(Arc<str>, Arc<Route>), ConfigError> {
        let (program, port) = alias_target(alias);
        let upstream = services
            .iter()
            .find(|(p, i, _)| *p == program && *i == port)
            .and_then(|(_, _, u)| u.clone());
        let host = match &alias.host {
            Some(h) => h.clone(),
            None => format!("{}.{}.{}", alias.alias, self.node, self.base_domain),
        };
        let host = normalise_host(&unit.id, &host)?;
        let expires_at = alias
            .expires_at
            .as_deref()
            .map(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map(|t| t.unix_timestamp())
                    .map_err(|e| ConfigError::Unit {
                        unit: unit.id.clone(),
                        reason: format!("alias `{}` expires_at: {e}", alias.alias),
                    })
            })
            .transpose()?;
        let prefix = alias
            .target_path
            .as_deref()
            .map(|p| {
                let p = p.trim_end_matches('/');
                if p.is_empty() || p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("/{p}")
                }
            })
            .unwrap_or_default();
        let route = Route {
            unit: unit_id.clone(),
            kind: RouteKind::Alias,
            program: Arc::from(program),
            port,
            upstream,
            gate: gate.clone(),
            path: Some(PathRule {
                prefix,
                allow_override: alias.allow_path_override,
            }),
            expires_at,
            enabled: alias.enabled,
            host_header: host_value(&unit.id, &host)?,
            hooks: None,
            program_hooks: None,
        };
        Ok((host, Arc::new(route)))
    }

    fn capability_host(
        &self,
        unit: &ContainerUnit,
        program: &str,
        index: u32,
    ) -> Result<String, ConfigError> {
        let project = unit.project.as_deref().ok_or_else(|| ConfigError::Unit {
            unit: unit.id.clone(),
            reason: "a service without hosts needs the unit's project".into(),
        })?;
        Ok(format!(
            "{project}-{}-{program}-{index}.{}.{}",
            unit.id, self.node, self.base_domain
        ))
    }
}

/// A worker thread's cache in front of the shared table.
///
/// A `DashMap` hit still writes shared cache lines (the shard lock's reader
/// count, the route's `Arc` count), and with one worker per core those lines
/// bounce between cores on every request. The cache answers repeat hosts
/// from thread-local memory: it is valid for one table version and is
/// emptied as soon as the version moves, so it can never serve a route
/// older than a lookup in the table would. Requests hold `Rc` clones, so a
/// hit touches no shared memory except the version, which only changes on
/// writes.
pub struct LocalRoutes {
    table: Arc<RouteTable>,
    version: std::cell::Cell<u64>,
    map: std::cell::RefCell<FxHashMap<Box<str>, LocalRoute>>,
}

/// A route held by one worker thread. The extra `Rc` is the point: cloning
/// it is a non-atomic increment, where cloning the `Arc` would write a cache
/// line shared with the other workers.
#[allow(clippy::redundant_allocation)]
pub type LocalRoute = std::rc::Rc<Arc<Route>>;

/// Entries kept per worker; beyond this, misses go to the table uncached.
const LOCAL_ROUTES_MAX: usize = 4096;

impl LocalRoutes {
    pub fn new(table: Arc<RouteTable>) -> Self {
        Self {
            version: std::cell::Cell::new(table.version()),
            table,
            map: std::cell::RefCell::new(FxHashMap::default()),
        }
    }

    pub fn table(&self) -> &Arc<RouteTable> {
        &self.table
    }

    /// Same answer as `RouteTable::lookup`.
    pub fn lookup(&self, host: &str) -> Option<LocalRoute> {
        // Read the version before the table: a route fetched after a newer
        // publish is cached under the older version and dropped next time.
        let version = self.table.version();
        let mut map = self.map.borrow_mut();
        if version != self.version.get() {
            map.clear();
            self.version.set(version);
        }
        if let Some(route) = map.get(host) {
            return Some(route.clone());
        }
        let route = std::rc::Rc::new(self.table.lookup(host)?);
        if map.len() < LOCAL_ROUTES_MAX {
            map.insert(host.into(), route.clone());
        }
        Some(route)
    }
}

/// Order of authority for an alias target: `port` > `http-<port>` > `index`.
fn alias_target(alias: &Alias) -> (&str, u32) {
    let (program, embedded) = match alias.program.rsplit_once('-') {
        Some((p, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
            (p, n.parse::<u32>().ok())
        }
        _ => (alias.program.as_str(), None),
    };
    let port = alias
        .port
        .map(u32::from)
        .or(embedded)
        .or(alias.index)
        .unwrap_or(1);
    (program, port)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn normalise_host(unit: &str, host: &str) -> Result<Arc<str>, ConfigError> {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid {
        return Err(ConfigError::Host {
            unit: unit.to_string(),
            host: host.to_string(),
        });
    }
    Ok(Arc::from(h))
}

fn host_value(unit: &str, host: &str) -> Result<HeaderValue, ConfigError> {
    HeaderValue::from_str(host).map_err(|_| ConfigError::Host {
        unit: unit.to_string(),
        host: host.to_string(),
    })
}

/// Resolves `http://host:port` once, when the unit is applied, so requests
/// never wait on DNS.
fn resolve_upstream(unit: &str, upstream: &str) -> Result<Arc<Upstream>, ConfigError> {
    let err = |reason: &str| ConfigError::Upstream {
        unit: unit.to_string(),
        upstream: upstream.to_string(),
        reason: reason.to_string(),
    };
    let rest = upstream
        .strip_prefix("http://")
        .ok_or_else(|| err("only http:// upstreams are supported"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(err("expected http://HOST:PORT"));
    }
    let with_port = if strip_port(authority).len() == authority.len() {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| err(&e.to_string()))?
        .next()
        .ok_or_else(|| err("no address"))?;
    Ok(Arc::new(Upstream {
        addr,
        authority: HeaderValue::from_str(authority).map_err(|_| err("bad authority"))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;

    fn unit(id: &str, host: &str, port: u16) -> ContainerUnit {
        ContainerUnit {
            id: id.into(),
            project: None,
            services: vec![Service {
                program: "http".into(),
                index: u32::from(port),
                upstream: Some(format!("http://127.0.0.1:{port}")),
                hosts: vec![host.into()],
            }],
            aliases: vec![],
            proxy: None,
            firewall: vec![],
            modules: Default::default(),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(&Settings::default())
    }

    /// A container unit as the control plane publishes it: capability
    /// hostnames (no explicit hosts), http on 80 at `ip`.
    fn container(id: &str, ip: Option<&str>) -> ContainerUnit {
        ContainerUnit {
            id: id.into(),
            project: Some("p1".into()),
            services: vec![Service {
                program: "http".into(),
                index: 80,
                upstream: ip.map(|ip| format!("http://{ip}:80")),
                hosts: vec![],
            }],
            ..unit(id, "unused", 80)
        }
    }

    #[test]
    fn every_port_of_a_container_answers_on_its_capability_hostname() {
        let t = RouteTable::new(&Settings {
            node: "local".into(),
            base_domain: "localhost".into(),
            ..Settings::default()
        });
        t.replace_all(&Snapshot {
            units: vec![container("c1", Some("10.0.0.7")), container("c2", None)],
        })
        .unwrap();
        let base = t
            .lookup("p1-c1-http-80.local.localhost")
            .expect("listed port");
        let derived = t
            .lookup("P1-c1-http-3000.local.localhost:8000")
            .expect("any port");
        assert_eq!(derived.port, 3000);
        assert_eq!(
            derived.upstream.as_ref().map(|u| u.addr.to_string()),
            Some("10.0.0.7:3000".into())
        );
        assert!(Arc::ptr_eq(&derived.gate, &base.gate), "same access rules");
        assert_eq!(derived.host_header, "p1-c1-http-3000.local.localhost");
        // Stopped container: routed, but with nowhere to go (503).
        let stopped = t.lookup("p1-c2-http-8080.local.localhost").expect("route");
        assert!(stopped.upstream.is_none());
        for miss in [
            "p1-c3-http-3000.local.localhost",   // unknown container
            "p1-c1-tcp-3000.local.localhost",    // not http
            "p1-c1-http-0.local.localhost",      // no port 0
            "p1-c1-http-70000.local.localhost",  // out of range
            "p1-c1-http-03000.local.localhost",  // not canonical
            "p1-c1-http-3000.other.localhost",   // another node
            "p1-c1-http-3000.local.example.com", // another base domain
        ] {
            assert!(t.lookup(miss).is_none(), "{miss}");
        }
        // Deleting the unit takes its derived ports with it.
        t.apply(&Delta::Remove { id: "c1".into() }).unwrap();
        assert!(t.lookup("p1-c1-http-3000.local.localhost").is_none());
    }

    #[test]
    fn replace_all_accepting_leaves_out_only_the_units_that_fail() {
        let t = table();
        let mut bad = unit("bad", "bad.test", 2);
        bad.services[0].upstream = Some("not a url at all".into());
        let snapshot = Snapshot {
            units: vec![
                unit("a", "a.test", 1),
                bad,
                unit("clash", "a.test", 3),
                unit("a", "again.test", 4),
                unit("c", "c.test", 5),
            ],
        };
        assert!(
            table().replace_all(&snapshot).is_err(),
            "all or nothing otherwise"
        );
        let (_, refused) = t.replace_all_accepting(&snapshot);
        let positions: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(positions, [1, 2, 3]);
        assert!(matches!(refused[1].1, ConfigError::HostTaken { .. }));
        assert_eq!(
            t.lookup("a.test").map(|r| r.unit.to_string()),
            Some("a".into())
        );
        assert!(t.lookup("c.test").is_some());
        assert!(t.lookup("bad.test").is_none() && t.lookup("again.test").is_none());
    }

    #[test]
    fn a_snapshot_can_bring_the_owner_key_and_a_refused_one_keeps_the_old() {
        let raw_hex = |seed: u8| {
            let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            hex::encode(signing.verifying_key().as_bytes())
        };
        // OwnerKey has no accessor; its Debug form names the key's bytes.
        let key_hex = |t: &RouteTable| t.owner_key().map(|k| format!("{k:?}"));
        let key_of = |seed: u8| format!("{:?}", OwnerKey::from_hex(&raw_hex(seed)).unwrap());
        let t = table();
        assert_eq!(key_hex(&t), None);
        let good = Snapshot {
            units: vec![unit("a", "a.test", 1)],
        };
        t.replace_all_with_owner_key(&good, Some(&raw_hex(1)))
            .unwrap();
        assert_eq!(key_hex(&t), Some(key_of(1)));
        // None keeps the key.
        t.replace_all_with_owner_key(&good, None).unwrap();
        assert_eq!(key_hex(&t), Some(key_of(1)));
        let bad = Snapshot {
            units: vec![unit("a", "a.test", 1), unit("b", "a.test", 2)],
        };
        assert!(t
            .replace_all_with_owner_key(&bad, Some(&raw_hex(2)))
            .is_err());
        assert_eq!(key_hex(&t), Some(key_of(1)));
        assert!(t.lookup("a.test").is_some());
    }

    #[test]
    fn lookup_ignores_case_port_and_trailing_dot() {
        let t = table();
        t.apply(&Delta::Upsert {
            unit: unit("a", "App.Test", 9000),
        })
        .unwrap();
        for h in ["app.test", "APP.test:8000", "app.test."] {
            assert!(t.lookup(h).is_some(), "{h}");
        }
        assert!(t.lookup("other.test").is_none());
    }

    #[test]
    fn upsert_replaces_the_units_hosts_and_counts_versions() {
        let t = table();
        assert_eq!(
            t.apply(&Delta::Upsert {
                unit: unit("a", "one.test", 9000)
            })
            .unwrap(),
            1
        );
        assert_eq!(
            t.apply(&Delta::Upsert {
                unit: unit("a", "two.test", 9001)
            })
            .unwrap(),
            2
        );
        assert!(t.lookup("one.test").is_none());
        assert_eq!(t.lookup("two.test").unwrap().port, 9001);
        t.apply(&Delta::Remove { id: "a".into() }).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.version(), 3);
    }

    #[test]
    fn in_flight_route_survives_a_swap() {
        let t = table();
        t.apply(&Delta::Upsert {
            unit: unit("a", "one.test", 9000),
        })
        .unwrap();
        let held = t.lookup("one.test").unwrap();
        t.apply(&Delta::Upsert {
            unit: unit("a", "one.test", 9001),
        })
        .unwrap();
        assert_eq!(held.port, 9000);
        assert_eq!(t.lookup("one.test").unwrap().port, 9001);
    }

    #[test]
    fn bad_unit_leaves_table_unchanged() {
        let t = table();
        t.apply(&Delta::Upsert {
            unit: unit("a", "one.test", 9000),
        })
        .unwrap();
        let mut bad = unit("a", "one.test", 9001);
        bad.services[0].upstream = Some("ftp://x".into());
        assert!(t.apply(&Delta::Upsert { unit: bad }).is_err());
        assert_eq!(t.lookup("one.test").unwrap().port, 9000);
        assert_eq!(t.version(), 1);
    }

    #[test]
    fn host_owned_by_another_unit_is_refused() {
        let t = table();
        t.apply(&Delta::Upsert {
            unit: unit("a", "one.test", 9000),
        })
        .unwrap();
        let e = t.apply(&Delta::Upsert {
            unit: unit("b", "one.test", 9001),
        });
        assert!(matches!(e, Err(ConfigError::HostTaken { .. })));
    }

    #[test]
    fn derived_hostnames_and_alias_target_authority() {
        let t = table();
        let u: ContainerUnit = serde_json::from_value(serde_json::json!({
            "id": "c1", "project": "p1",
            "services": [{"program":"http","index":3000,"upstream":"http://127.0.0.1:3000"}],
            "aliases": [{"alias":"shop","program":"http-3000","index":1,"target_path":"app"}]
        }))
        .unwrap();
        t.apply(&Delta::Upsert { unit: u }).unwrap();
        assert!(t.lookup("p1-c1-http-3000.local.localhost").is_some());
        let alias = t.lookup("shop.local.localhost").unwrap();
        assert_eq!(alias.port, 3000);
        assert!(alias.upstream.is_some());
        assert_eq!(alias.path.as_ref().unwrap().prefix, "/app");
    }

    #[test]
    fn local_cache_follows_every_table_change() {
        let t = Arc::new(table());
        let local = LocalRoutes::new(t.clone());
        assert!(local.lookup("one.test").is_none());
        t.apply(&Delta::Upsert {
            unit: unit("a", "one.test", 9000),
        })
        .unwrap();
        assert_eq!(local.lookup("one.test").unwrap().port, 9000);
        t.apply(&Delta::Upsert {
            unit: unit("a", "one.test", 9001),
        })
        .unwrap();
        assert_eq!(local.lookup("one.test").unwrap().port, 9001);
        t.apply(&Delta::Remove { id: "a".into() }).unwrap();
        assert!(local.lookup("one.test").is_none());
    }

    #[test]
    fn replace_all_drops_units_not_in_the_snapshot() {
        let t = table();
        t.apply(&Delta::Upsert {
            unit: unit("a", "one.test", 9000),
        })
        .unwrap();
        let snap = Snapshot {
            units: vec![unit("b", "two.test", 9001)],
        };
        t.replace_all(&snap).unwrap();
        assert!(t.lookup("one.test").is_none());
        assert!(t.lookup("two.test").is_some());
    }
}
