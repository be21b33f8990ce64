//! The access gate: ingress firewall → `enable_proxy` → owner claim →
//! authentication → authorization, compiled once per unit so a request only
//! does comparisons.
//!
//! Owner access: the control plane signs a container claim for the owner
//! (`containers.authorize`); a request carrying a valid, unexpired claim for
//! this unit's container in the `x-hoody-container-claim` header or the
//! `hoody_container_claim` cookie is allowed whatever the groups say. The
//! data plane checks the Ed25519 signature itself with the public key from
//! its settings, so it never asks the control plane.
//!
//! Authorization rule: only groups that carry a rule for the requested
//! program take part. If any of them authenticates and its rule allows the
//! port, access is granted; if some authenticated but none allowed, 403;
//! otherwise the document's `default` decides, and a denial is 401 when
//! presenting credentials of a group that would allow could help.
//! Groups are authenticated lazily, cheapest question first, so a request
//! never pays for a JWT verification whose answer cannot change the outcome.
//!
//! This module must never touch the network or allocate per request beyond
//! what credential parsing needs.

use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use http::HeaderMap;
use ipnet::IpNet;
use jsonwebtoken::{DecodingKey, Validation};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{
    Access, DefaultAccess, FirewallAction, FirewallProtocol, FirewallRule, Group, JwtAlgorithm,
    ProxyDocument, RuleState,
};

/// Why a document or rule could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("group `{group}`: {reason}")]
    Group { group: String, reason: String },
    #[error("permissions for group `{group}`, program `{program}`: {reason}")]
    Access {
        group: String,
        program: String,
        reason: String,
    },
    #[error("firewall rule {index}: {reason}")]
    Firewall { index: usize, reason: String },
}

/// The outcome of the gate for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401; `basic` asks for HTTP Basic credentials.
    Unauthorized {
        basic: bool,
    },
    /// 403.
    Forbidden,
    /// 503: the document disables the proxy.
    Disabled,
    /// Firewall `reject`: 403.
    FirewallReject,
    /// Firewall `drop`: close without answering.
    FirewallDrop,
}

/// What the gate may look at.
pub struct RequestFacts<'a> {
    pub client: SocketAddr,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
}

/// A unit's compiled firewall and proxy document.
#[derive(Default)]
pub struct AccessGate {
    firewall: Vec<CompiledRule>,
    policy: Option<Policy>,
    owner: Option<OwnerCheck>,
}

/// Header that carries an owner claim: `payload_b64.signature_hex`.
pub const OWNER_CLAIM_HEADER: &str = "x-hoody-container-claim";
/// Cookie that carries an owner claim, same format as the header.
pub const OWNER_CLAIM_COOKIE: &str = "hoody_container_claim";

/// The control plane's claim-signing public key.
#[derive(Clone, Debug)]
pub struct OwnerKey(ed25519_dalek::VerifyingKey);

impl OwnerKey {
    /// From 64 hex digits (what `meta.getPublicKey` and the settings hold).
    pub fn from_hex(hex_key: &str) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut bytes)
            .map_err(|_| "the owner claim key must be 64 hex digits".to_string())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(OwnerKey)
            .map_err(|_| "the owner claim key is not an Ed25519 public key".to_string())
    }

    /// Whether `raw` (`payload_b64.signature_hex`) is signed by this key,
    /// names `container` and has not expired at `now` (unix seconds).
    pub fn admits(&self, raw: &str, container: &str, now: i64) -> bool {
        #[derive(serde::Deserialize)]
        struct Claim {
            container_id: String,
            exp: i64,
        }
        let Some((payload, sig)) = raw.trim().split_once('.') else {
            return false;
        };
        let mut sig_bytes = [0u8; 64];
        if hex::decode_to_slice(sig, &mut sig_bytes).is_err() {
            return false;
        }
        let signature = ed25519_dalek::Signature::from_bytes(&sig_bytes);
        if self
            .0
            .verify_strict(payload.as_bytes(), &signature)
            .is_err()
        {
            return false;
        }
        let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
            return false;
        };
        serde_json::from_slice::<Claim>(&json)
            .is_ok_and(|c| c.container_id == container && c.exp > now)
    }
}

struct OwnerCheck {
    key: OwnerKey,
    container: Box<str>,
}

impl OwnerCheck {
    fn admits(&self, facts: &RequestFacts<'_>) -> bool {
        let raw = match facts.headers.get(OWNER_CLAIM_HEADER) {
            Some(v) => v.to_str().ok().map(str::to_string),
            None => cookie(facts.headers, OWNER_CLAIM_COOKIE),
        };
        raw.is_some_and(|r| self.key.admits(&r, &self.container, unix_now()))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct Policy {
    enabled: bool,
    default_allow: bool,
    groups: Vec<CompiledGroup>,
}

struct CompiledGroup {
    name: String,
    auth: GroupAuth,
    rules: FxHashMap<String, AccessRule>,
}

enum GroupAuth {
    Jwt(Box<JwtAuth>),
    Password {
        username: Vec<u8>,
        salt: Vec<u8>,
        digest: [u8; 32],
    },
    Ip(IpNet),
    Token {
        source: TokenSource,
        digest: [u8; 32],
    },
}

struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
    sources: Vec<TokenSource>,
    claims: Vec<(String, serde_json::Value)>,
}

enum TokenSource {
    Header(http::HeaderName),
    Cookie(String),
    Param(String),
}

/// A compiled access rule.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessRule {
    All,
    None,
    Ports(Vec<(u32, u32)>),
}

struct CompiledRule {
    action: FirewallAction,
    tcp: bool,
    ports: Option<Vec<(u32, u32)>>,
    sources: Option<Vec<IpNet>>,
    source_ports: Option<Vec<(u32, u32)>>,
}

impl AccessGate {
    /// Compiles a unit's document and firewall; any invalid field rejects the
    /// whole unit so a typo never silently opens access.
    pub fn compile(doc: Option<&ProxyDocument>, rules: &[FirewallRule]) -> Result<Self, GateError> {
        let firewall = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == RuleState::Enabled)
            .map(|(i, r)| compile_rule(i, r))
            .collect::<Result<_, _>>()?;
        let policy = doc.map(compile_policy).transpose()?;
        Ok(Self {
            firewall,
            policy,
            owner: None,
        })
    }

    /// Lets the owner's claim for `container` through (when `key` is set).
    pub fn with_owner(mut self, key: Option<&OwnerKey>, container: &str) -> Self {
        self.owner = key.map(|key| OwnerCheck {
            key: key.clone(),
            container: container.into(),
        });
        self
    }

    /// Decides one request for `program` at `port` (index).
    pub fn decide(&self, facts: &RequestFacts<'_>, program: &str, port: u32) -> Decision {
        self.decide_with_group(facts, program, port).0
    }

    /// Decides one request and names the group that admitted it (`None` when
    /// no group did: no document, or the document's default allowed).
    pub fn decide_with_group(
        &self,
        facts: &RequestFacts<'_>,
        program: &str,
        port: u32,
    ) -> (Decision, Option<&str>) {
        if let Some(d) = self.firewall_decision(facts.client, port) {
            return (d, None);
        }
        let Some(policy) = &self.policy else {
            return (Decision::Allow, None);
        };
        if !policy.enabled {
            return (Decision::Disabled, None);
        }
        if self.owner.as_ref().is_some_and(|o| o.admits(facts)) {
            return (Decision::Allow, None);
        }
        policy.decide(facts, program, port)
    }

    /// True when the unit has no firewall and no document: the fast path.
    pub fn is_open(&self) -> bool {
        self.firewall.is_empty() && self.policy.is_none()
    }

    fn firewall_decision(&self, client: SocketAddr, port: u32) -> Option<Decision> {
        let ip = canonical_ip(client.ip());
        let rule = self
            .firewall
            .iter()
            .find(|r| r.matches(ip, client.port(), port))?;
        match rule.action {
            FirewallAction::Allow => None,
            FirewallAction::Reject => Some(Decision::FirewallReject),
            FirewallAction::Drop => Some(Decision::FirewallDrop),
        }
    }
}

impl Policy {
    fn decide(
        &self,
        facts: &RequestFacts<'_>,
        program: &str,
        port: u32,
    ) -> (Decision, Option<&str>) {
        let mut authenticated_without_access = false;
        let mut could_help = false;
        let mut basic = false;
        for group in &self.groups {
            let Some(rule) = group.rules.get(program) else {
                continue;
            };
            let allows = rule.allows(port);
            if group.auth.matches(facts) {
                if allows {
                    return (Decision::Allow, Some(group.name.as_str()));
                }
                authenticated_without_access = true;
            } else if allows && !matches!(group.auth, GroupAuth::Ip(_)) {
                could_help = true;
                basic |= matches!(group.auth, GroupAuth::Password { .. });
            }
        }
        let decision = if authenticated_without_access {
            Decision::Forbidden
        } else if self.default_allow {
            Decision::Allow
        } else if could_help {
            Decision::Unauthorized { basic }
        } else {
            Decision::Forbidden
        };
        (decision, None)
    }
}

impl AccessRule {
    pub fn allows(&self, port: u32) -> bool {
        match self {
            AccessRule::All => true,
            AccessRule::None => false,
            AccessRule::Ports(r) => in_ranges(r, port),
        }
    }

    /// Parses the contract's access rule shapes.
    pub fn parse(access: &Access) -> Result<Self, String> {
        Ok(match access {
            Access::Flag(true) => AccessRule::All,
            Access::Flag(false) => AccessRule::None,
            Access::Port(p) => AccessRule::Ports(vec![(*p, *p)]),
            Access::Ports(ps) => AccessRule::Ports(ps.iter().map(|p| (*p, *p)).collect()),
            Access::Text(t) if t.trim() == "*" => AccessRule::All,
            Access::Text(t) => AccessRule::Ports(parse_port_list(t)?),
        })
    }
}

fn in_ranges(ranges: &[(u32, u32)], port: u32) -> bool {
    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port))
}

/// Parses `80`, `80-90`, `80,443,8000-8100`.
fn parse_port_list(text: &str) -> Result<Vec<(u32, u32)>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let lo: u32 = lo
                .trim()
                .parse()
                .map_err(|_| format!("bad port `{part}`"))?;
            let hi: u32 = hi
                .trim()
                .parse()
                .map_err(|_| format!("bad port `{part}`"))?;
            if lo > hi || hi > 65535 {
                return Err(format!("bad port range `{part}`"));
            }
            Ok((lo, hi))
        })
        .collect()
}

impl CompiledRule {
    fn matches(&self, ip: IpAddr, client_port: u16, port: u32) -> bool {
        self.tcp
            && self.ports.as_ref().is_none_or(|p| in_ranges(p, port))
            && self
                .sources
                .as_ref()
                .is_none_or(|s| s.iter().any(|n| n.contains(&ip)))
            && self
                .source_ports
                .as_ref()
                .is_none_or(|p| in_ranges(p, u32::from(client_port)))
    }
}

fn compile_rule(index: usize, rule: &FirewallRule) -> Result<CompiledRule, GateError> {
    let err = |reason: String| GateError::Firewall { index, reason };
    let ports = rule
        .destination_port
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(parse_port_list)
        .transpose()
        .map_err(err)?;
    let source_ports = rule
        .source_port
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(parse_port_list)
        .transpose()
        .map_err(err)?;
    let sources = rule
        .source
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(parse_net).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(err)?;
    Ok(CompiledRule {
        action: rule.action,
        tcp: rule.protocol == FirewallProtocol::Tcp,
        ports,
        sources,
        source_ports,
    })
}

/// Accepts a CIDR or a bare address (as /32 or /128).
fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("bad address or CIDR `{s}`"))
}

/// IPv4 clients on a dual-stack socket appear as `::ffff:a.b.c.d`; rules are
/// written in IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn compile_policy(doc: &ProxyDocument) -> Result<Policy, GateError> {
    let groups = doc
        .groups
        .iter()
        .map(|(name, group)| {
            let auth = compile_auth(name, group)?;
            let rules = doc
                .permissions
                .get(name)
                .into_iter()
                .flatten()
                .map(|(program, access)| {
                    AccessRule::parse(access)
                        .map(|r| (program.clone(), r))
                        .map_err(|reason| GateError::Access {
                            group: name.clone(),
                            program: program.clone(),
                            reason,
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok(CompiledGroup {
                name: name.clone(),
                auth,
                rules,
            })
        })
        .collect::<Result<_, GateError>>()?;
    Ok(Policy {
        enabled: doc.enable_proxy,
        default_allow: doc.default == DefaultAccess::Allow,
        groups,
    })
}

fn compile_auth(name: &str, group: &Group) -> Result<GroupAuth, GateError> {
    let err = |reason: String| GateError::Group {
        group: name.to_string(),
        reason,
    };
    match group {
        Group::Ip(ip) => Ok(GroupAuth::Ip(parse_net(&ip.range).map_err(err)?)),
        Group::Password(p) => {
            if p.username.is_empty() || p.password.is_empty() {
                return Err(err("username and password must not be empty".into()));
            }
            Ok(GroupAuth::Password {
                username: p.username.as_bytes().to_vec(),
                salt: p.salt.as_bytes().to_vec(),
                digest: password_digest(&p.salt, &p.password),
            })
        }
        Group::Token(t) => {
            let source = match (&t.header, &t.cookie, &t.param) {
                (Some(h), None, None) => TokenSource::Header(
                    http::HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| err(format!("bad header name `{h}`")))?,
                ),
                (None, Some(c), None) => TokenSource::Cookie(c.clone()),
                (None, None, Some(p)) => TokenSource::Param(p.clone()),
                _ => return Err(err("exactly one of header, cookie, param".into())),
            };
            if t.value.is_empty() {
                return Err(err("value must not be empty".into()));
            }
            Ok(GroupAuth::Token {
                source,
                digest: Sha256::digest(t.value.as_bytes()).into(),
            })
        }
        Group::Jwt(j) => {
            if j.secret.is_empty() {
                return Err(err("secret must not be empty".into()));
            }
            let (key, alg) = match j.algorithm {
                JwtAlgorithm::HS256 => (
                    DecodingKey::from_secret(j.secret.as_bytes()),
                    jsonwebtoken::Algorithm::HS256,
                ),
                JwtAlgorithm::RS256 => (
                    DecodingKey::from_rsa_pem(j.secret.as_bytes())
                        .map_err(|e| err(format!("RS256 key: {e}")))?,
                    jsonwebtoken::Algorithm::RS256,
                ),
                JwtAlgorithm::ES256 => (
                    DecodingKey::from_ec_pem(j.secret.as_bytes())
                        .map_err(|e| err(format!("ES256 key: {e}")))?,
                    jsonwebtoken::Algorithm::ES256,
                ),
            };
            let mut validation = Validation::new(alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.validate_aud = false;
            validation.leeway = 0;
            let sources = j
                .sources
                .iter()
                .map(|s| parse_jwt_source(s).map_err(err))
                .collect::<Result<Vec<_>, _>>()?;
            if sources.is_empty() {
                return Err(err("at least one source".into()));
            }
            Ok(GroupAuth::Jwt(Box::new(JwtAuth {
                key,
                validation,
                sources,
                claims: j
                    .claims
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })))
        }
    }
}

fn parse_jwt_source(s: &str) -> Result<TokenSource, String> {
    match s.split_once(':') {
        Some(("header", name)) => http::HeaderName::from_bytes(name.trim().as_bytes())
            .map(TokenSource::Header)
            .map_err(|_| format!("bad header name in source `{s}`")),
        Some(("cookie", name)) if !name.is_empty() => Ok(TokenSource::Cookie(name.to_string())),
        _ => Err(format!("source `{s}` must be header:Name or cookie:Name")),
    }
}

/// sha256(salt + password), or the password itself when it already is such
/// a digest (64 hex digits), as the contract allows.
fn password_digest(salt: &str, password: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if password.len() == 64 && hex::decode_to_slice(password, &mut out).is_ok() {
        return out;
    }
    salted(salt.as_bytes(), password.as_bytes())
}

fn salted(salt: &[u8], password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password);
    h.finalize().into()
}

impl GroupAuth {
    fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        match self {
            GroupAuth::Ip(net) => net.contains(&canonical_ip(facts.client.ip())),
            GroupAuth::Token { source, digest } => source
                .read(facts)
                .is_some_and(|v| ct_eq_digest(digest, v.as_bytes())),
            GroupAuth::Password {
                username,
                salt,
                digest,
            } => basic_credentials(facts.headers).is_some_and(|(user, pass)| {
                let user_ok = user.as_slice().ct_eq(username.as_slice());
                let pass_ok = salted(salt, &pass).ct_eq(digest);
                bool::from(user_ok & pass_ok)
            }),
            GroupAuth::Jwt(jwt) => jwt.matches(facts),
        }
    }
}

fn ct_eq_digest(expected: &[u8; 32], candidate: &[u8]) -> bool {
    let got: [u8; 32] = Sha256::digest(candidate).into();
    bool::from(got.ct_eq(expected))
}

impl JwtAuth {
    fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        let Some(raw) = self.sources.iter().find_map(|s| s.read(facts)) else {
            return false;
        };
        let token = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .unwrap_or(&raw)
            .trim();
        let Ok(data) =
            jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation)
        else {
            return false;
        };
        self.claims
            .iter()
            .all(|(k, v)| data.claims.get(k).is_some_and(|got| got == v))
    }
}

impl TokenSource {
    fn read(&self, facts: &RequestFacts<'_>) -> Option<String> {
        match self {
            TokenSource::Header(name) => facts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            TokenSource::Cookie(name) => cookie(facts.headers, name),
            TokenSource::Param(name) => facts.query.and_then(|q| query_param(q, name)),
        }
    }
}

/// Finds a cookie across every `Cookie` header (HTTP/2 splits them).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_string())
        })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes `Authorization: Basic base64(user:pass)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let encoded = value
        .strip_prefix(b"Basic ")
        .or_else(|| value.strip_prefix(b"basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;

    fn facts<'a>(headers: &'a HeaderMap, query: Option<&'a str>, ip: &str) -> RequestFacts<'a> {
        RequestFacts {
            client: SocketAddr::new(ip.parse().unwrap(), 40000),
            headers,
            query,
        }
    }

    fn doc(
        groups: serde_json::Value,
        permissions: serde_json::Value,
        default: &str,
    ) -> ProxyDocument {
        serde_json::from_value(serde_json::json!({
            "groups": groups, "permissions": permissions, "default": default
        }))
        .unwrap()
    }

    fn basic(user: &str, pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        h.insert("authorization", format!("Basic {v}").parse().unwrap());
        h
    }

    #[test]
    fn no_document_means_open() {
        let gate = AccessGate::compile(None, &[]).unwrap();
        let h = HeaderMap::new();
        assert_eq!(
            gate.decide(&facts(&h, None, "1.2.3.4"), "http", 80),
            Decision::Allow
        );
    }

    #[test]
    fn password_group_asks_for_basic_then_allows() {
        let d = doc(
            serde_json::json!({"team": {"type":"password","username":"ann","password":"pw","salt":"s"}}),
            serde_json::json!({"team": {"http": true}}),
            "deny",
        );
        let gate = AccessGate::compile(Some(&d), &[]).unwrap();
        let none = HeaderMap::new();
        assert_eq!(
            gate.decide(&facts(&none, None, "1.2.3.4"), "http", 80),
            Decision::Unauthorized { basic: true }
        );
        let good = basic("ann", "pw");
        assert_eq!(
            gate.decide(&facts(&good, None, "1.2.3.4"), "http", 80),
            Decision::Allow
        );
        let bad = basic("ann", "nope");
        assert_ne!(
            gate.decide(&facts(&bad, None, "1.2.3.4"), "http", 80),
            Decision::Allow
        );
    }

    #[test]
    fn prehashed_password_is_accepted() {
        let digest = hex::encode(salted(b"salt", b"secret"));
        let d = doc(
            serde_json::json!({"g": {"type":"password","username":"u","password": digest,"salt":"salt"}}),
            serde_json::json!({"g": {"http": true}}),
            "deny",
        );
        let gate = AccessGate::compile(Some(&d), &[]).unwrap();
        let h = basic("u", "secret");
        assert_eq!(
            gate.decide(&facts(&h, None, "1.2.3.4"), "http", 80),
            Decision::Allow
        );
    }

    #[test]
    fn ip_group_matches_cidr_and_mapped_v4() {
        let d = doc(
            serde_json::json!({"office": {"type":"ip","range":"10.0.0.0/8"}}),
            serde_json::json!({"office": {"http": "*"}}),
            "deny",
        );
        let gate = AccessGate::compile(Some(&d), &[]).unwrap();
        let h = HeaderMap::new();
        assert_eq!(
            gate.decide(&facts(&h, None, "10.1.2.3"), "http", 80),
            Decision::Allow
        );
        assert_eq!(
            gate.decide(&facts(&h, None, "::ffff:10.1.2.3"), "http", 80),
            Decision::Allow
        );
        assert_eq!(
            gate.decide(&facts(&h, None, "11.1.2.3"), "http", 80),
            Decision::Forbidden
        );
    }

    #[test]
    fn token_group_reads_header_cookie_and_param() {
        for (group, hdr, query) in [
            (
                serde_json::json!({"type":"token","header":"x-key","value":"s3cret"}),
                ("x-key", "s3cret"),
                None,
            ),
            (
                serde_json::json!({"type":"token","cookie":"k","value":"s3cret"}),
                ("cookie", "a=b; k=s3cret"),
                None,
            ),
            (
                serde_json::json!({"type":"token","param":"key","value":"s3cret"}),
                ("x-other", "1"),
                Some("a=1&key=s3cret"),
            ),
        ] {
            let d = doc(
                serde_json::json!({"t": group}),
                serde_json::json!({"t": {"http": true}}),
                "deny",
            );
            let gate = AccessGate::compile(Some(&d), &[]).unwrap();
            let mut h = HeaderMap::new();
            h.insert(http::HeaderName::from_static(hdr.0), hdr.1.parse().unwrap());
            assert_eq!(
                gate.decide(&facts(&h, query, "1.1.1.1"), "http", 80),
                Decision::Allow
            );
            let empty = HeaderMap::new();
            assert_eq!(
                gate.decide(&facts(&empty, None, "1.1.1.1"), "http", 80),
                Decision::Unauthorized { basic: false }
            );
        }
    }

    #[test]
    fn jwt_group_checks_signature_claims_and_expiry() {
        let d = doc(
            serde_json::json!({"j": {"type":"jwt","secret":"k","algorithm":"HS256","sources":["header:Authorization","cookie:tok"],"claims":{"role":"dev"}}}),
            serde_json::json!({"j": {"http": [3000]}}),
            "deny",
        );
        let gate = AccessGate::compile(Some(&d), &[]).unwrap();
        let sign = |claims: serde_json::Value, key: &str| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
            )
            .unwrap()
        };
        let check = |token: String, port: u32| {
            let mut h = HeaderMap::new();
            h.insert("authorization", format!("Bearer {token}").parse().unwrap());
            gate.decide(&facts(&h, None, "1.1.1.1"), "http", port)
        };
        assert_eq!(
            check(sign(serde_json::json!({"role":"dev"}), "k"), 3000),
            Decision::Allow
        );
        assert_eq!(
            check(sign(serde_json::json!({"role":"dev"}), "k"), 3001),
            Decision::Forbidden
        );
        assert_ne!(
            check(sign(serde_json::json!({"role":"ops"}), "k"), 3000),
            Decision::Allow
        );
        assert_ne!(
            check(sign(serde_json::json!({"role":"dev"}), "x"), 3000),
            Decision::Allow
        );
        assert_ne!(
            check(
                sign(serde_json::json!({"role":"dev","exp": 1000}), "k"),
                3000
            ),
            Decision::Allow
        );
        assert_ne!(
            check(
                sign(
                    serde_json::json!({"role":"dev","nbf": 4_000_000_000u64}),
                    "k"
                ),
                3000
            ),
            Decision::Allow
        );
    }

    #[test]
    fn default_allow_and_disabled_proxy() {
        let mut d = doc(serde_json::json!({}), serde_json::json!({}), "allow");
        let h = HeaderMap::new();
        let gate = AccessGate::compile(Some(&d), &[]).unwrap();
        assert_eq!(
            gate.decide(&facts(&h, None, "1.1.1.1"), "http", 80),
            Decision::Allow
        );
        d.enable_proxy = false;
        let gate = AccessGate::compile(Some(&d), &[]).unwrap();
        assert_eq!(
            gate.decide(&facts(&h, None, "1.1.1.1"), "http", 80),
            Decision::Disabled
        );
    }

    #[test]
    fn firewall_first_match_decides_before_the_document() {
        let rules: Vec<FirewallRule> = serde_json::from_value(serde_json::json!([
            {"action":"allow","protocol":"tcp","source":"10.0.0.0/8"},
            {"action":"drop","protocol":"tcp","source":"192.168.0.0/16","destination_port":"80-90"},
            {"action":"reject","protocol":"tcp","source":"0.0.0.0/0"},
            {"action":"allow","protocol":"tcp","state":"disabled"}
        ]))
        .unwrap();
        let gate = AccessGate::compile(None, &rules).unwrap();
        let h = HeaderMap::new();
        assert_eq!(
            gate.decide(&facts(&h, None, "10.0.0.1"), "http", 80),
            Decision::Allow
        );
        assert_eq!(
            gate.decide(&facts(&h, None, "192.168.1.1"), "http", 85),
            Decision::FirewallDrop
        );
        assert_eq!(
            gate.decide(&facts(&h, None, "192.168.1.1"), "http", 91),
            Decision::FirewallReject
        );
        assert_eq!(
            gate.decide(&facts(&h, None, "8.8.8.8"), "http", 80),
            Decision::FirewallReject
        );
    }

    #[test]
    fn invalid_fields_are_rejected_with_the_group_named() {
        let d = doc(
            serde_json::json!({"bad": {"type":"ip","range":"300.0.0.0/8"}}),
            serde_json::json!({}),
            "deny",
        );
        let e = AccessGate::compile(Some(&d), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bad"), "{e}");
        let d = doc(
            serde_json::json!({"g": {"type":"ip","range":"1.0.0.0/8"}}),
            serde_json::json!({"g": {"http": "80-x"}}),
            "deny",
        );
        assert!(AccessGate::compile(Some(&d), &[]).is_err());
    }

    #[test]
    fn access_rule_shapes() {
        assert!(AccessRule::parse(&Access::Text("8000-8100".into()))
            .unwrap()
            .allows(8050));
        assert!(!AccessRule::parse(&Access::Text("8000-8100".into()))
            .unwrap()
            .allows(8101));
        assert!(AccessRule::parse(&Access::Ports(vec![1, 5]))
            .unwrap()
            .allows(5));
        assert!(!AccessRule::parse(&Access::Flag(false)).unwrap().allows(5));
    }

    fn owner_claim(key: &ed25519_dalek::SigningKey, container: &str, exp: i64) -> String {
        use ed25519_dalek::Signer;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            serde_json::json!({"container_id": container, "user_id": "u", "exp": exp}).to_string(),
        );
        let sig = key.sign(payload.as_bytes());
        format!("{payload}.{}", hex::encode(sig.to_bytes()))
    }

    #[test]
    fn owner_claim_passes_whatever_the_groups_say() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let key = OwnerKey::from_hex(&hex::encode(signing.verifying_key().as_bytes())).unwrap();
        let d = doc(
            serde_json::json!({"team": {"type": "password", "username": "u", "password": "p", "salt": "s"}}),
            serde_json::json!({"team": {"http": true}}),
            "deny",
        );
        let gate = AccessGate::compile(Some(&d), &[])
            .unwrap()
            .with_owner(Some(&key), "c1");
        let far = unix_now() + 600;
        let decide = |h: &HeaderMap| gate.decide(&facts(h, None, "10.0.0.1"), "http", 80);

        let mut h = HeaderMap::new();
        assert_ne!(decide(&h), Decision::Allow);
        h.insert(
            OWNER_CLAIM_HEADER,
            owner_claim(&signing, "c1", far).parse().unwrap(),
        );
        assert_eq!(decide(&h), Decision::Allow);

        let mut h = HeaderMap::new();
        let cookie = format!(
            "a=b; {OWNER_CLAIM_COOKIE}={}",
            owner_claim(&signing, "c1", far)
        );
        h.insert(http::header::COOKIE, cookie.parse().unwrap());
        assert_eq!(decide(&h), Decision::Allow);

        let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        for bad in [
            owner_claim(&signing, "c2", far),
            owner_claim(&signing, "c1", unix_now() - 1),
            owner_claim(&other, "c1", far),
            "garbage".to_string(),
        ] {
            let mut h = HeaderMap::new();
            h.insert(OWNER_CLAIM_HEADER, bad.parse().unwrap());
            assert_ne!(decide(&h), Decision::Allow, "{bad}");
        }

        // No key configured: claims mean nothing.
        let plain = AccessGate::compile(Some(&d), &[]).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            OWNER_CLAIM_HEADER,
            owner_claim(&signing, "c1", far).parse().unwrap(),
        );
        assert_ne!(
            plain.decide(&facts(&h, None, "10.0.0.1"), "http", 80),
            Decision::Allow
        );
    }
}
