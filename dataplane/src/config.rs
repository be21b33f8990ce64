//! The routing model the control plane publishes and the standalone routes
//! file uses. Everything here is plain serde data: it travels as JSON to
//! remote nodes, so it must never hold compiled state (keys, sockets). The
//! router compiles it (see `router::compile_unit`) and rejects what it cannot
//! enforce, so a bad document never half-applies.
//!
//! Field names follow the hoody API contract: the proxy document mirrors
//! `proxyPermissionsContainer.*`, firewall rules mirror
//! `firewall.addIngressRule`, aliases mirror `proxyAliases.create`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// One container's whole routing unit. A delta replaces or removes a unit as
/// one piece, so its hostnames, policy and firewall always change together.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ContainerUnit {
    /// Container id (24 hex in the API; any non-empty string here).
    pub id: String,
    /// Project id, used to derive capability hostnames
    /// `{project}-{id}-{program}-{index}.{node}.{base_domain}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The container's programs. A service without an upstream (container
    /// stopped) keeps its hostnames, which then answer 503.
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
    /// The proxy document. `None` means "no document": the capability
    /// hostname itself is the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyDocument>,
    /// Ingress firewall rules, evaluated first-match on the client address.
    #[serde(default)]
    pub firewall: Vec<FirewallRule>,
    /// The unit's Wasm module store: module name (what a hook's
    /// `script.path` names) → content address. The bytes are fetched by
    /// sha256, so they travel once however many units use them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, ModuleRef>,
}

/// A module in a unit's module store, by content.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModuleRef {
    /// sha256 of the Wasm bytes, 64 lowercase hex digits.
    pub sha256: String,
    pub size: u64,
}

/// A program instance reachable through the proxy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Service {
    /// Program name (`http`, `https`, `terminal`, ...).
    pub program: String,
    /// Instance index; for `http`/`https` this is the port inside the container.
    pub index: u32,
    /// Upstream origin, `http://IP:PORT` (names are resolved when applied);
    /// `None` while the program is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Explicit hostnames. When empty the capability hostname is derived from
    /// the unit's project and id and the data plane's node and base domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// An alias hostname pointing at one program/port of the unit
/// (`proxyAliases.create`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Alias {
    /// The alias label: the hostname is `{alias}.{node}.{base_domain}`.
    pub alias: String,
    /// A full hostname overriding the derived one (standalone files, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Program, possibly with an embedded port (`http-3000`).
    pub program: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Base path prepended to every request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// When false only `/` (mapped to `target_path`) is reachable.
    #[serde(default = "yes")]
    pub allow_path_override: bool,
    /// RFC 3339; after it the alias answers 404 even if the control plane's
    /// expiry job has not run yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// The proxy document (`proxyPermissionsContainer.replace`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ProxyDocument {
    /// Authentication groups by name.
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
    /// group → program → access rule.
    #[serde(default)]
    pub permissions: BTreeMap<String, BTreeMap<String, Access>>,
    #[serde(default)]
    pub default: DefaultAccess,
    #[serde(default = "yes")]
    pub enable_proxy: bool,
    /// Hooks per service key (`http` = every port of the program,
    /// `http-3000` = one port), each list first-match-wins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hooks: BTreeMap<String, Vec<Hook>>,
}

/// One hook placement (`proxyHooks.addContainerProxyHook`), plus our
/// extensions `script.config`, `fresh_instance` and `failure_mode`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Hook {
    /// Lowercase 26-character ULID.
    pub id: String,
    #[serde(rename = "match", default)]
    pub matcher: HookMatch,
    pub script: HookScript,
    /// Milliseconds per callback, 1–30000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<AppliesTo>,
    /// A new instance per request instead of a pooled one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_instance: bool,
    #[serde(default)]
    pub failure_mode: FailureMode,
}

/// When a hook runs: every present criterion must match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct HookMatch {
    /// One method or a list of methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<OneOrMany>,
    /// A path glob (`*` within a segment, `**` across segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Header name → required value (a string), or `true` for presence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Which module runs and what it is told at `proxy_on_configure`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HookScript {
    /// Module name in the unit's module store.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    #[serde(rename = "execId", default, skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
    /// Plugin configuration handed to `proxy_on_configure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct AppliesTo {
    /// Run only for requests authenticated by one of these groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// What a request gets when its hook fails (trap, timeout, memory cap).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Answer with an error (504 on timeout, 502 otherwise).
    #[default]
    FailClosed,
    /// Pass the request on as if the hook were absent.
    FailOpen,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAccess {
    Allow,
    #[default]
    Deny,
}

/// An authentication group: `{"type": "jwt"|"password"|"ip"|"token", ...}`
/// with the fields of the matching setter operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Group {
    Jwt(JwtGroup),
    Password(PasswordGroup),
    Ip(IpGroup),
    Token(TokenGroup),
}

/// `proxyPermissionsContainer.setJwtGroup`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JwtGroup {
    /// HS256: the shared secret; RS256/ES256: a PEM public key.
    pub secret: String,
    pub algorithm: JwtAlgorithm,
    /// `header:Name` or `cookie:Name`; the first source present is used.
    pub sources: Vec<String>,
    /// Claims that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

/// `proxyPermissionsContainer.setPasswordGroup`: HTTP Basic credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PasswordGroup {
    pub username: String,
    /// Plaintext, or sha256(salt + password) as 64 lowercase hex digits.
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    pub salt: String,
}

/// `proxyPermissionsContainer.setIpGroup`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct IpGroup {
    /// CIDR, for example `192.168.1.0/24`.
    pub range: String,
}

/// `proxyPermissionsContainer.setTokenGroup`: exactly one of `header`,
/// `cookie`, `param` names where the token is read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TokenGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    pub value: String,
}

/// An access rule: `true|false`, a port, a list of ports, a range
/// `"8000-8100"`, or `"*"`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Access {
    Flag(bool),
    Port(u32),
    Ports(Vec<u32>),
    Text(String),
}

/// An ingress firewall rule (`firewall.addIngressRule`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FirewallRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub action: FirewallAction,
    pub protocol: FirewallProtocol,
    #[serde(default)]
    pub description: String,
    /// Port, range `80-90` or list `80,443`; matched against the service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<String>,
    /// Source address or CIDR (comma-separated list allowed); absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<String>,
    #[serde(default)]
    pub state: RuleState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FirewallAction {
    Allow,
    /// Deny with a 403 response.
    Reject,
    /// Deny by closing the connection without a response.
    Drop,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FirewallProtocol {
    Tcp,
    Udp,
    Icmp4,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuleState {
    #[default]
    Enabled,
    Disabled,
}

/// A change to the routing table: one unit upserted or removed, atomically.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Delta {
    Upsert { unit: ContainerUnit },
    Remove { id: String },
}

/// The whole routing state, for `DataPlane::replace_all`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Snapshot {
    #[serde(default)]
    pub units: Vec<ContainerUnit>,
}

/// Where the JSON access log goes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    Off,
    #[default]
    Stdout,
    File(std::path::PathBuf),
}

/// Data-plane settings; every field has a production default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Settings {
    /// Node name, the second label of derived hostnames.
    pub node: String,
    pub base_domain: String,
    /// Worker threads, each with its own runtime, listener socket and pool.
    /// 0 = one per available core.
    pub workers: usize,
    pub access_log: AccessLog,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Idle upstream connections kept per upstream per worker.
    pub pool_max_idle: usize,
    /// The control plane's Ed25519 public key (64 hex digits) that signs
    /// container claims (`containers.authorize`). With it, a request that
    /// carries a valid, unexpired claim for the unit's container passes the
    /// groups; without it no claim is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_claim_key: Option<String>,
    /// The module store's directory: module bytes as `<sha256>.wasm`, compiled
    /// artifacts beside them as `<sha256>.cwasm`. `serve` uses
    /// `<data-dir>/modules`; remote nodes fill a cache directory the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_dir: Option<std::path::PathBuf>,
    pub hooks: HookSettings,
}

/// How hooks run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct HookSettings {
    /// Hooks with a timeout up to this run on the worker thread itself (which
    /// then waits at most this long); longer budgets run on the blocking pool.
    pub inline_timeout_ms: u64,
    /// The timeout of a hook that sets none, per phase.
    pub default_timeout_ms: u32,
    /// Linear memory per hook instance.
    pub memory_bytes: usize,
    /// Largest request or response body buffered for a hook that reads bodies.
    pub max_body_bytes: usize,
    /// Instance slots reserved up front by the engine's pooling allocator
    /// (cheap starts, bounded instances alive at once); 0 maps memory per
    /// instance instead, for hosts (or tools such as valgrind) that cannot
    /// reserve that much address space.
    pub instance_slots: u32,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            inline_timeout_ms: 50,
            default_timeout_ms: 50,
            memory_bytes: 32 << 20,
            max_body_bytes: 1 << 20,
            instance_slots: 1024,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            node: "local".into(),
            base_domain: "localhost".into(),
            workers: 0,
            access_log: AccessLog::Stdout,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            pool_max_idle: 256,
            owner_claim_key: None,
            module_dir: None,
            hooks: HookSettings::default(),
        }
    }
}

/// Request parsing limits (memory per connection stays bounded by these).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Limits {
    /// Request line + headers, bytes (HTTP/1).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// HTTP/2 header list size (SETTINGS_MAX_HEADER_LIST_SIZE).
    pub h2_max_header_list: u32,
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            h2_max_header_list: 16 * 1024,
            h2_max_concurrent_streams: 128,
        }
    }
}

/// Timeouts, in milliseconds so they read naturally in JSON.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Timeouts {
    /// Time a client has to send the complete request head.
    pub header_read_ms: u64,
    pub upstream_connect_ms: u64,
    pub upstream_response_header_ms: u64,
    /// Pooled upstream connections idle longer than this are closed.
    pub upstream_idle_ms: u64,
    /// Grace period for in-flight requests at shutdown.
    pub drain_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_read_ms: 10_000,
            upstream_connect_ms: 3_000,
            upstream_response_header_ms: 60_000,
            upstream_idle_ms: 60_000,
            drain_ms: 30_000,
        }
    }
}

impl Timeouts {
    pub fn header_read(&self) -> Duration {
        Duration::from_millis(self.header_read_ms)
    }
    pub fn upstream_connect(&self) -> Duration {
        Duration::from_millis(self.upstream_connect_ms)
    }
    pub fn upstream_response_header(&self) -> Duration {
        Duration::from_millis(self.upstream_response_header_ms)
    }
    pub fn upstream_idle(&self) -> Duration {
        Duration::from_millis(self.upstream_idle_ms)
    }
    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.drain_ms)
    }
}

/// The standalone routes file: `{"routes": [...]}` (see docs/dataplane.md).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RoutesFile {
    pub routes: Vec<FileRoute>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FileRoute {
    pub host: String,
    pub upstream: String,
    #[serde(default = "default_program")]
    pub program: String,
    /// Port/index used by access rules; defaults to the upstream's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyDocument>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall: Vec<FirewallRule>,
    /// The route's module store: name (what `proxy.hooks[..].script.path`
    /// names) → a local `.wasm` (or `.wat`) file, relative to the routes file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, std::path::PathBuf>,
}

fn default_program() -> String {
    "http".into()
}

impl RoutesFile {
    /// Each file route becomes its own unit, keyed by its host. `modules`
    /// resolves a route's module file to its content address (the caller
    /// loads and registers the bytes).
    pub fn into_snapshot_with(
        self,
        mut modules: impl FnMut(&std::path::Path) -> Result<ModuleRef, String>,
    ) -> Result<Snapshot, String> {
        let mut units = Vec::with_capacity(self.routes.len());
        for route in self.routes {
            let mut refs = BTreeMap::new();
            for (name, path) in &route.modules {
                let reference = modules(path)
                    .map_err(|e| format!("route `{}`, module `{name}`: {e}", route.host))?;
                refs.insert(name.clone(), reference);
            }
            let mut unit = route.into_unit();
            unit.modules = refs;
            units.push(unit);
        }
        Ok(Snapshot { units })
    }

    /// Each file route becomes its own unit, keyed by its host (module files
    /// are not read: units carry no modules).
    pub fn into_snapshot(self) -> Snapshot {
        let units = self.routes.into_iter().map(FileRoute::into_unit).collect();
        Snapshot { units }
    }
}

impl FileRoute {
    fn into_unit(self) -> ContainerUnit {
        let index = self
            .port
            .or_else(|| upstream_port(&self.upstream))
            .unwrap_or(80);
        ContainerUnit {
            id: self.host.clone(),
            project: None,
            services: vec![Service {
                program: self.program,
                index,
                upstream: Some(self.upstream),
                hosts: vec![self.host],
            }],
            aliases: Vec::new(),
            proxy: self.proxy,
            firewall: self.firewall,
            modules: BTreeMap::new(),
        }
    }
}

fn upstream_port(upstream: &str) -> Option<u32> {
    let rest = upstream.strip_prefix("http://").unwrap_or(upstream);
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_uses_the_setter_fields_with_a_type_tag() {
        let g: Group =
            serde_json::from_str(r#"{"type":"password","username":"u","password":"p","salt":"s"}"#)
                .unwrap();
        assert!(matches!(g, Group::Password(ref p) if p.username == "u"));
        let g: Group =
            serde_json::from_str(r#"{"type":"token","header":"X-Key","value":"v"}"#).unwrap();
        assert!(matches!(g, Group::Token(ref t) if t.header.as_deref() == Some("X-Key")));
    }

    #[test]
    fn access_accepts_every_contract_shape() {
        let a: Vec<Access> =
            serde_json::from_str(r#"[true, 3000, [1,2], "8000-8100", "*"]"#).unwrap();
        assert_eq!(a[0], Access::Flag(true));
        assert_eq!(a[1], Access::Port(3000));
        assert_eq!(a[2], Access::Ports(vec![1, 2]));
        assert_eq!(a[3], Access::Text("8000-8100".into()));
    }

    #[test]
    fn proxy_document_defaults_to_deny_and_enabled() {
        let d: ProxyDocument = serde_json::from_str("{}").unwrap();
        assert_eq!(d.default, DefaultAccess::Deny);
        assert!(d.enable_proxy);
    }

    #[test]
    fn routes_file_route_takes_the_upstream_port_as_index() {
        let f: RoutesFile = serde_json::from_str(
            r#"{"routes":[{"host":"a.test","upstream":"http://127.0.0.1:9000"}]}"#,
        )
        .unwrap();
        let s = f.into_snapshot();
        assert_eq!(s.units[0].services[0].index, 9000);
        assert_eq!(s.units[0].services[0].program, "http");
    }

    #[test]
    fn hooks_read_the_contract_shape_with_our_extensions() {
        let d: ProxyDocument = serde_json::from_str(
            r#"{"hooks":{"http-3000":[{"id":"01hzy5d8k6m2q9v3x7w4t1r0ab",
                "match":{"method":["GET","HEAD"],"path":"/api/**"},
                "script":{"path":"auth.wasm","config":"{}"},
                "timeout":50,"applies_to":{"groups":["admins"]},
                "failure_mode":"fail-open"}]}}"#,
        )
        .unwrap();
        let h = &d.hooks["http-3000"][0];
        assert_eq!(h.script.path, "auth.wasm");
        assert_eq!(h.failure_mode, FailureMode::FailOpen);
        assert!(!h.fresh_instance);
        assert!(matches!(h.matcher.method, Some(OneOrMany::Many(ref m)) if m.len() == 2));
        let back: ProxyDocument =
            serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn delta_round_trips_as_json() {
        let d = Delta::Remove { id: "c1".into() };
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, r#"{"op":"remove","id":"c1"}"#);
        assert_eq!(serde_json::from_str::<Delta>(&j).unwrap(), d);
    }
}
