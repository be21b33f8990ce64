//! Validation of proxy documents, field by field, so a bad value is a 400
//! naming the field (`range`, `groups.office.range`, `hooks.http[0].timeout`)
//! and never reaches the data plane. The data plane's own compiler is run
//! last on the whole document, so whatever it would refuse is refused here.

use std::collections::BTreeMap;

use dataplane::config::{Access, Group, Hook, JwtAlgorithm, OneOrMany, ProxyDocument};
use dataplane::gate::{AccessGate, AccessRule, GateError};
use serde_json::Value;

use super::documents::ProxyFile;
use crate::error::{ApiError, ApiResult};
use crate::wire::Validator;

/// Hooks per service key.
pub const MAX_HOOKS_PER_SERVICE: usize = 8;
/// Hooks per document.
pub const MAX_HOOKS_PER_DOCUMENT: usize = 32;
/// Services whose traffic belongs to the platform: no hook may run there.
pub const REJECT_LISTED_SERVICES: &[&str] = &["logs", "proxy", "workspaces", "cdp"];
/// Programs whose access rule is a plain yes/no: they have no ports.
pub const BOOLEAN_PROGRAMS: &[&str] = &["files", "services", "notifications", "exec"];
const MAX_SECRET_CHARS: usize = 8192;
const MAX_TIMEOUT_MS: u32 = 30_000;

/// `prefix.field`, or `field` alone at the top of a body.
pub fn at(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Group names: 1–50 of `A-Za-z0-9_-`.
pub fn group_name(v: &mut Validator, field: &str, name: &str) {
    let ok = (1..=50).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    v.check(
        field,
        ok,
        "must be 1 to 50 letters, digits, underscores or hyphens",
    );
}

/// Program names: 1–64 lowercase letters, digits or underscores.
pub fn program_name(v: &mut Validator, field: &str, name: &str) {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    v.check(
        field,
        ok,
        "must be 1 to 64 lowercase letters, digits or underscores",
    );
}

/// A service key of the hooks map: a program (`http`, every port) or a
/// program and one port (`http-3000`). Reject-listed programs are refused.
pub fn service_key(v: &mut Validator, field: &str, key: &str) {
    let (program, port) = split_service(key);
    let program_ok = !program.is_empty()
        && program.len() <= 64
        && program
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let port_ok = port.is_none_or(|p| {
        !p.starts_with('0') && p.parse::<u16>().is_ok_and(|n| n > 0) && p.len() <= 5
    });
    if !program_ok || !port_ok {
        v.fail(
            field,
            "must be a program name, optionally with a port (`http` or `http-3000`)",
        );
    } else if is_reject_listed(key) {
        v.fail(
            field,
            format!("hooks cannot be attached to the `{program}` service"),
        );
    }
}

/// `http-3000` → (`http`, Some(`3000`)); `http` → (`http`, None).
pub fn split_service(key: &str) -> (&str, Option<&str>) {
    match key.rsplit_once('-') {
        Some((program, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (program, Some(port)),
        _ => (key, None),
    }
}

pub fn is_reject_listed(key: &str) -> bool {
    REJECT_LISTED_SERVICES.contains(&split_service(key).0)
}

/// An authentication group, fields named under `prefix`.
pub fn group(v: &mut Validator, prefix: &str, g: &Group) {
    match g {
        Group::Ip(ip) => {
            v.check(
                &at(prefix, "range"),
                is_ipv4_cidr(&ip.range),
                "must be an IPv4 CIDR such as 192.168.1.0/24",
            );
        }
        Group::Password(p) => {
            v.length(&at(prefix, "username"), &p.username, 1, 256);
            v.length(&at(prefix, "password"), &p.password, 1, 1024);
            v.length(&at(prefix, "salt"), &p.salt, 1, 256);
            if let Some(alg) = &p.algorithm {
                v.check(&at(prefix, "algorithm"), alg == "sha256", "must be sha256");
            }
        }
        Group::Token(t) => {
            let sources = [&t.header, &t.cookie, &t.param];
            match sources.iter().filter(|s| s.is_some()).count() {
                0 => v.fail(
                    &at(prefix, "header"),
                    "one of header, cookie or param is required",
                ),
                1 => {}
                _ => v.fail(
                    &at(prefix, "header"),
                    "give exactly one of header, cookie or param",
                ),
            }
            if let Some(h) = &t.header {
                v.check(
                    &at(prefix, "header"),
                    http::HeaderName::from_bytes(h.as_bytes()).is_ok(),
                    "must be a valid header name",
                );
            }
            for (field, name) in [("cookie", &t.cookie), ("param", &t.param)] {
                if let Some(n) = name {
                    v.length(&at(prefix, field), n, 1, 256);
                }
            }
            v.length(&at(prefix, "value"), &t.value, 1, 4096);
        }
        Group::Jwt(j) => {
            v.length(&at(prefix, "secret"), &j.secret, 1, MAX_SECRET_CHARS);
            if j.sources.is_empty() {
                v.fail(&at(prefix, "sources"), "at least one source is required");
            }
            for (i, s) in j.sources.iter().enumerate() {
                v.check(
                    &format!("{}[{i}]", at(prefix, "sources")),
                    is_jwt_source(s),
                    "must be header:Name or cookie:Name",
                );
            }
            for (k, value) in &j.claims {
                v.check(
                    &at(&at(prefix, "claims"), k),
                    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)),
                    "must be a string, number or boolean",
                );
            }
            if j.algorithm != JwtAlgorithm::HS256 && !j.secret.is_empty() {
                // The key itself: only the gate's parser can say.
                let probe = single_group_document(g);
                if let Err(e) = AccessGate::compile(Some(&probe), &[]) {
                    v.fail(&at(prefix, "secret"), gate_reason(&e));
                }
            }
        }
    }
}

fn single_group_document(g: &Group) -> ProxyDocument {
    let mut doc = ProxyDocument::default();
    doc.groups.insert("probe".into(), g.clone());
    doc
}

fn gate_reason(e: &GateError) -> String {
    match e {
        GateError::Group { reason, .. }
        | GateError::Access { reason, .. }
        | GateError::Firewall { reason, .. } => reason.clone(),
    }
}

/// `a.b.c.d/n` with every octet ≤ 255 and 0 ≤ n ≤ 32.
pub fn is_ipv4_cidr(s: &str) -> bool {
    let Some((addr, mask)) = s.split_once('/') else {
        return false;
    };
    addr.parse::<std::net::Ipv4Addr>().is_ok()
        && !mask.is_empty()
        && mask.len() <= 2
        && mask.bytes().all(|b| b.is_ascii_digit())
        && mask.parse::<u8>().is_ok_and(|m| m <= 32)
}

fn is_jwt_source(s: &str) -> bool {
    match s.split_once(':') {
        Some(("header", name)) => {
            !name.is_empty() && http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        }
        Some(("cookie", name)) => {
            !name.is_empty() && !name.contains(|c: char| c == ';' || c == '=' || c.is_whitespace())
        }
        _ => false,
    }
}

/// An access rule for `program`: booleans only for programs without ports;
/// otherwise a port (1–65535), a list of ports, a range list or `*`.
pub fn access(v: &mut Validator, field: &str, program: &str, rule: &Access) {
    if BOOLEAN_PROGRAMS.contains(&program) && !matches!(rule, Access::Flag(_)) {
        v.fail(
            field,
            format!("the `{program}` program takes true or false"),
        );
        return;
    }
    let port_ok = |p: &u32| (1..=65535).contains(p);
    match rule {
        Access::Flag(_) => {}
        Access::Port(p) => {
            v.check(field, port_ok(p), "ports are 1 to 65535");
        }
        Access::Ports(ps) => {
            v.check(
                field,
                !ps.is_empty() && ps.iter().all(port_ok),
                "must be a non-empty list of ports from 1 to 65535",
            );
        }
        Access::Text(t) => {
            let ok = match AccessRule::parse(rule) {
                Ok(AccessRule::Ports(ranges)) => ranges.iter().all(|(lo, _)| *lo >= 1),
                Ok(_) => true,
                Err(_) => false,
            } && !t.trim().is_empty();
            v.check(
                field,
                ok,
                "must be \"*\", a port, or ranges like \"8000-8100,9000\"",
            );
        }
    }
}

/// Turns a JSON access value into a rule, naming `field` when it has none of
/// the accepted shapes.
pub fn parse_access(field: &str, value: &Value) -> ApiResult<Access> {
    serde_json::from_value(value.clone()).map_err(|_| {
        ApiError::field(
            field,
            "must be a boolean, a port, a list of ports, a range string or \"*\"",
        )
    })
}

/// Lowercase 26-character ULID (Crockford base32, first digit ≤ 7).
pub fn is_hook_id(id: &str) -> bool {
    id.len() == 26
        && id.as_bytes()[0] <= b'7'
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_lowercase() && !b"ilou".contains(&b)))
}

/// One hook's fields, named under `prefix`.
pub fn hook(v: &mut Validator, prefix: &str, h: &Hook) {
    v.check(
        &at(prefix, "id"),
        is_hook_id(&h.id),
        "must be a lowercase 26-character ULID",
    );
    v.length(&at(prefix, "script.path"), &h.script.path, 1, 256);
    if let Some(t) = h.timeout {
        v.check(
            &at(prefix, "timeout"),
            (1..=MAX_TIMEOUT_MS).contains(&t),
            "must be between 1 and 30000 milliseconds",
        );
    }
    match &h.matcher.method {
        Some(OneOrMany::One(m)) => method(v, &at(prefix, "match.method"), m),
        Some(OneOrMany::Many(ms)) => {
            v.check(
                &at(prefix, "match.method"),
                !ms.is_empty(),
                "must not be an empty list",
            );
            for m in ms {
                method(v, &at(prefix, "match.method"), m);
            }
        }
        None => {}
    }
    if let Some(p) = &h.matcher.path {
        v.check(
            &at(prefix, "match.path"),
            p.starts_with('/') && p.len() <= 1024,
            "must start with / (globs: * within a segment, ** across segments)",
        );
    }
    for (name, want) in &h.matcher.headers {
        let field = at(&at(prefix, "match.headers"), name);
        v.check(
            &field,
            http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
            "must be a valid header name",
        );
        v.check(
            &field,
            matches!(want, Value::String(_) | Value::Bool(true)),
            "must be a string value, or true for presence",
        );
    }
    if let Some(applies) = &h.applies_to {
        for (i, g) in applies.groups.iter().enumerate() {
            group_name(v, &format!("{}[{i}]", at(prefix, "applies_to.groups")), g);
        }
    }
}

fn method(v: &mut Validator, field: &str, m: &str) {
    v.check(
        field,
        !m.is_empty() && m.len() <= 32 && m.bytes().all(|b| b.is_ascii_uppercase()),
        "methods are uppercase names such as GET",
    );
}

/// The hook lists of a document: keys, limits, unique ids, each hook.
pub fn hooks(v: &mut Validator, prefix: &str, hooks: &BTreeMap<String, Vec<Hook>>) {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for (key, list) in hooks {
        let field = at(prefix, key);
        service_key(v, &field, key);
        if list.len() > MAX_HOOKS_PER_SERVICE {
            v.fail(
                &field,
                format!("at most {MAX_HOOKS_PER_SERVICE} hooks per service"),
            );
        }
        total += list.len();
        for (i, h) in list.iter().enumerate() {
            let hp = format!("{field}[{i}]");
            hook(v, &hp, h);
            if !seen.insert(h.id.as_str()) {
                v.fail(&at(&hp, "id"), "hook ids must be unique in the document");
            }
        }
    }
    if total > MAX_HOOKS_PER_DOCUMENT {
        let field = if prefix.is_empty() { "hooks" } else { prefix };
        v.fail(
            field,
            format!("at most {MAX_HOOKS_PER_DOCUMENT} hooks per document"),
        );
    }
}

/// The whole stored document, after any edit: every group, rule and hook,
/// then the data plane's compiler as the last word.
pub fn whole(file: &ProxyFile) -> ApiResult<()> {
    let mut v = Validator::new();
    for (name, g) in &file.groups {
        let prefix = format!("groups.{name}");
        group_name(&mut v, &prefix, name);
        group(&mut v, &prefix, g);
    }
    for (name, rules) in &file.permissions {
        let prefix = format!("permissions.{name}");
        group_name(&mut v, &prefix, name);
        for (program, rule) in rules {
            let field = at(&prefix, program);
            program_name(&mut v, &field, program);
            access(&mut v, &field, program, rule);
        }
    }
    hooks(&mut v, "hooks", &file.hooks);
    v.finish()?;
    let doc = super::documents::merge(None, Some(file)).unwrap_or_default();
    AccessGate::compile(Some(&doc), &[]).map_err(|e| match &e {
        GateError::Group { group, reason } => ApiError::field(&format!("groups.{group}"), reason),
        GateError::Access {
            group,
            program,
            reason,
        } => ApiError::field(&format!("permissions.{group}.{program}"), reason),
        GateError::Firewall { .. } => ApiError::internal(e),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_follows_the_ipv4_pattern() {
        assert!(is_ipv4_cidr("192.168.1.0/24"));
        assert!(is_ipv4_cidr("0.0.0.0/0"));
        assert!(!is_ipv4_cidr("192.168.1.0"));
        assert!(!is_ipv4_cidr("192.168.1.0/33"));
        assert!(!is_ipv4_cidr("300.1.1.1/8"));
        assert!(!is_ipv4_cidr("10.0.0.0/-1"));
    }

    #[test]
    fn service_keys() {
        let ok = |k: &str| {
            let mut v = Validator::new();
            service_key(&mut v, "service", k);
            v.finish().is_ok()
        };
        assert!(ok("http"));
        assert!(ok("http-3000"));
        assert!(!ok("http-0"));
        assert!(!ok("http-70000"));
        assert!(!ok("HTTP"));
        assert!(!ok("logs"));
        assert!(!ok("cdp-9222"));
        assert!(!ok(""));
    }

    #[test]
    fn hook_ids_are_lowercase_ulids() {
        assert!(is_hook_id("01hzy5d8k6m2q9v3x7w4t1r0ab"));
        assert!(!is_hook_id("01HZY5D8K6M2Q9V3X7W4T1R0AB"));
        assert!(!is_hook_id("81hzy5d8k6m2q9v3x7w4t1r0ab"));
        assert!(!is_hook_id("01hzy5d8k6m2q9v3x7w4t1r0au"));
        assert!(!is_hook_id("01hzy5d8k6m2q9v3x7w4t1r0a"));
    }
}
