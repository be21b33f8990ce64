//! `firewall.*`: ingress and egress rules of a container. Egress rules are
//! enforced by the runtime (nftables in the container's network namespace)
//! as soon as they change; ingress rules are kept on the record for the data
//! plane's access gate to enforce.

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{Container, FirewallRule, CONTAINERS};
use super::service::lookup;
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::Level;
use crate::state::AppState;
use crate::wire::{now, Validator};

/// Rules per direction.
pub const MAX_RULES: usize = 100;
/// Serialized size of all rules of a container.
pub const MAX_BYTES: usize = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    fn rules(self, c: &mut Container) -> &mut Vec<FirewallRule> {
        match self {
            Direction::Ingress => &mut c.firewall.ingress,
            Direction::Egress => &mut c.firewall.egress,
        }
    }
}

/// The runtime's egress rules of a container.
pub fn egress_of(c: &Container) -> ApiResult<Vec<runtime::EgressRule>> {
    c.firewall.egress.iter().map(to_runtime).collect()
}

fn to_runtime(r: &FirewallRule) -> ApiResult<runtime::EgressRule> {
    let action = match r.action.as_str() {
        "allow" => runtime::RuleAction::Allow,
        "reject" => runtime::RuleAction::Reject,
        _ => runtime::RuleAction::Drop,
    };
    let protocol = match r.protocol.as_str() {
        "tcp" => runtime::RuleProtocol::Tcp,
        "udp" => runtime::RuleProtocol::Udp,
        _ => runtime::RuleProtocol::Icmp4,
    };
    Ok(runtime::EgressRule {
        action,
        protocol,
        destination: r.destination.clone().filter(|d| d != "0.0.0.0/0"),
        destination_port: r.destination_port.clone(),
        enabled: r.state == "enabled",
    })
}

/// A rule as given to `add*Rule`.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub action: String,
    pub protocol: String,
    pub description: String,
    pub destination_port: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub source_port: Option<String>,
    pub state: Option<String>,
    pub icmp_type: Option<String>,
    pub icmp_code: Option<String>,
}

/// The selector of `toggle*Rule` and `remove*Rule`: every given field must match.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFilter {
    pub all: Option<bool>,
    pub action: Option<String>,
    pub protocol: Option<String>,
    pub destination_port: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub source_port: Option<String>,
    pub description: Option<String>,
    pub state: Option<String>,
    pub icmp_type: Option<String>,
    pub icmp_code: Option<String>,
}

fn check_enum(v: &mut Validator, field: &str, value: Option<&str>, allowed: &[&str]) {
    if let Some(x) = value {
        if !allowed.contains(&x) {
            v.fail(field, format!("must be one of {}", allowed.join(", ")));
        }
    }
}

fn check_len(v: &mut Validator, field: &str, value: Option<&str>, max: usize) {
    if let Some(x) = value {
        v.length(field, x, 0, max);
    }
}

fn check_common(v: &mut Validator, f: &RuleFilter) {
    check_enum(
        v,
        "action",
        f.action.as_deref(),
        &["allow", "reject", "drop"],
    );
    check_enum(
        v,
        "protocol",
        f.protocol.as_deref(),
        &["tcp", "udp", "icmp4"],
    );
    check_enum(v, "state", f.state.as_deref(), &["enabled", "disabled"]);
    check_len(v, "destination_port", f.destination_port.as_deref(), 64);
    check_len(v, "source_port", f.source_port.as_deref(), 64);
    check_len(v, "source", f.source.as_deref(), 512);
    check_len(v, "destination", f.destination.as_deref(), 512);
    check_len(v, "description", f.description.as_deref(), 255);
    check_len(v, "icmp_type", f.icmp_type.as_deref(), 8);
    check_len(v, "icmp_code", f.icmp_code.as_deref(), 8);
}

fn validate_rule(dir: Direction, input: RuleInput) -> ApiResult<FirewallRule> {
    let mut v = Validator::new();
    let filter = RuleFilter {
        action: Some(input.action.clone()),
        protocol: Some(input.protocol.clone()),
        destination_port: input.destination_port.clone(),
        source: input.source.clone(),
        destination: input.destination.clone(),
        source_port: input.source_port.clone(),
        description: Some(input.description.clone()),
        state: input.state.clone(),
        icmp_type: input.icmp_type.clone(),
        icmp_code: input.icmp_code.clone(),
        all: None,
    };
    check_common(&mut v, &filter);
    let (addr_field, addr) = match dir {
        Direction::Ingress => ("source", input.source.clone()),
        Direction::Egress => ("destination", input.destination.clone()),
    };
    match (dir, &input.source, &input.destination) {
        (Direction::Ingress, _, Some(_)) => v.fail("destination", "ingress rules match on source"),
        (Direction::Egress, Some(_), _) => v.fail("source", "egress rules match on destination"),
        _ => {}
    }
    let l4 = input.protocol == "tcp" || input.protocol == "udp";
    if l4 && input.destination_port.as_deref().is_none_or(str::is_empty) {
        v.fail("destination_port", "is required for tcp and udp rules");
    }
    if !l4 && (input.icmp_type.is_none() && input.icmp_code.is_some()) {
        v.fail("icmp_type", "is required with icmp_code");
    }
    for (field, value) in [
        ("icmp_type", &input.icmp_type),
        ("icmp_code", &input.icmp_code),
    ] {
        if let Some(x) = value {
            if x.parse::<u8>().is_err() {
                v.fail(field, "must be a number from 0 to 255");
            }
        }
    }
    v.finish()?;
    let rule = FirewallRule {
        action: input.action,
        protocol: input.protocol,
        description: input.description,
        destination_port: input.destination_port.filter(|p| !p.is_empty()),
        source: input.source,
        destination: input.destination,
        source_port: input.source_port.filter(|p| !p.is_empty()),
        state: input.state.unwrap_or_else(|| "enabled".into()),
        icmp_type: input.icmp_type,
        icmp_code: input.icmp_code,
    };
    // The runtime's parser decides what an address and a port selector are.
    let probe = runtime::EgressRule {
        destination: addr.filter(|a| a != "0.0.0.0/0"),
        ..to_runtime(&rule)?
    };
    if let Err(e) = probe.destination_net() {
        return Err(ApiError::field(addr_field, e.to_string()));
    }
    if let Err(e) = probe.ports() {
        return Err(ApiError::field("destination_port", e.to_string()));
    }
    if let Some(sp) = &rule.source_port {
        let p = runtime::EgressRule {
            destination_port: Some(sp.clone()),
            protocol: runtime::RuleProtocol::Tcp,
            ..probe
        };
        if let Err(e) = p.ports() {
            return Err(ApiError::field("source_port", e.to_string()));
        }
    }
    Ok(rule)
}

fn matches(r: &FirewallRule, f: &RuleFilter) -> bool {
    fn eq(want: &Option<String>, have: &str) -> bool {
        want.as_deref().is_none_or(|w| w == have)
    }
    fn eq_opt(want: &Option<String>, have: &Option<String>) -> bool {
        want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
    }
    eq(&f.action, &r.action)
        && eq(&f.protocol, &r.protocol)
        && eq(&f.description, &r.description)
        && eq(&f.state, &r.state)
        && eq_opt(&f.destination_port, &r.destination_port)
        && eq_opt(&f.source, &r.source)
        && eq_opt(&f.destination, &r.destination)
        && eq_opt(&f.source_port, &r.source_port)
        && eq_opt(&f.icmp_type, &r.icmp_type)
        && eq_opt(&f.icmp_code, &r.icmp_code)
}

fn rules_view(c: &Container) -> Value {
    json!({"ingress": c.firewall.ingress, "egress": c.firewall.egress})
}

/// `firewall.list`
pub fn list(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Value> {
    let (c, _) = lookup(state, caller, id, Level::Read)?;
    let tag = |rules: &[FirewallRule], dir: &str| {
        rules
            .iter()
            .map(|r| {
                let mut v = json!(r);
                v["direction"] = json!(dir);
                v
            })
            .collect::<Vec<_>>()
    };
    let bytes = serde_json::to_vec(&c.firewall)
        .map(|b| b.len())
        .unwrap_or(0);
    Ok(json!({
        "ingress": tag(&c.firewall.ingress, "ingress"),
        "egress": tag(&c.firewall.egress, "egress"),
        "rule_count": c.firewall.ingress.len() + c.firewall.egress.len(),
        "byte_count": bytes,
        "max_rules": MAX_RULES,
        "max_bytes": MAX_BYTES,
    }))
}

/// Changes the rules in one transaction with its event, then applies the
/// egress rules on the runtime.
async fn mutate<T: Clone>(
    state: &AppState,
    caller: &Principal,
    id: &str,
    event: impl Fn(&T) -> Option<(&'static str, Value)>,
    f: impl Fn(&mut Container) -> ApiResult<T>,
) -> ApiResult<(Container, T)> {
    lookup(state, caller, id, Level::Edit)?;
    let (c, out) = state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        let out = f(&mut c)?;
        if serde_json::to_vec(&c.firewall)
            .map(|b| b.len())
            .unwrap_or(0)
            > MAX_BYTES
        {
            return Err(ApiError::bad_request(
                "FIREWALL_LIMIT",
                "the container's firewall rules exceed the size limit",
            )
            .into());
        }
        c.updated_at = now();
        tx.put(&CONTAINERS, id, &c)?;
        if let Some((name, mut payload)) = event(&out) {
            payload["container_id"] = json!(id);
            payload["project_id"] = json!(c.project_id);
            record(
                tx,
                NewEvent::new(name, "firewall", id, &c.user_id).payload(payload),
            )?;
        }
        Ok((c, out))
    })?;
    // Ingress rules are enforced by the proxy: in force before we answer.
    crate::proxy::compile::recompile(state, id).await?;
    state
        .runtime()?
        .set_egress_rules(id, egress_of(&c)?)
        .await?;
    Ok((c, out))
}

/// `firewall.addIngressRule` / `firewall.addEgressRule`: an identical rule
/// is not added twice; the answer then points at the existing one.
pub async fn add(
    state: &AppState,
    caller: &Principal,
    id: &str,
    dir: Direction,
    input: RuleInput,
) -> ApiResult<Value> {
    let rule = validate_rule(dir, input)?;
    let (c, dup) = mutate(
        state,
        caller,
        id,
        |dup: &Option<usize>| {
            dup.is_none().then(|| {
                (
                    "firewall.rule.added",
                    json!({"direction": dir.name(), "rule": rule}),
                )
            })
        },
        |c| {
            let rules = dir.rules(c);
            if let Some(i) = rules.iter().position(|r| r == &rule) {
                return Ok(Some(i));
            }
            if rules.len() >= MAX_RULES {
                return Err(ApiError::bad_request(
                    "FIREWALL_LIMIT",
                    format!("at most {MAX_RULES} {} rules", dir.name()),
                ));
            }
            rules.push(rule.clone());
            Ok(None)
        },
    )
    .await?;
    Ok(match dup {
        Some(index) => {
            let mut v = json!(rule);
            v["duplicate"] = json!(true);
            v["duplicate_of"] = json!({"direction": dir.name(), "index": index});
            v
        }
        None => rules_view(&c),
    })
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToggleInput {
    pub state: String,
    pub action: Option<String>,
    pub protocol: Option<String>,
    pub destination_port: Option<String>,
    pub source_port: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub description: Option<String>,
    pub icmp_type: Option<String>,
    pub icmp_code: Option<String>,
}

impl ToggleInput {
    /// The new state and the selector.
    pub fn split(self) -> (String, RuleFilter) {
        (
            self.state,
            RuleFilter {
                all: None,
                action: self.action,
                protocol: self.protocol,
                destination_port: self.destination_port,
                source: self.source,
                destination: self.destination,
                source_port: self.source_port,
                description: self.description,
                state: None,
                icmp_type: self.icmp_type,
                icmp_code: self.icmp_code,
            },
        )
    }
}

/// `firewall.toggle*Rule`: sets the state of the first matching rule.
pub async fn toggle(
    state: &AppState,
    caller: &Principal,
    id: &str,
    dir: Direction,
    new_state: String,
    f: RuleFilter,
) -> ApiResult<Value> {
    let mut v = Validator::new();
    check_enum(&mut v, "state", Some(&new_state), &["enabled", "disabled"]);
    check_common(&mut v, &f);
    v.finish()?;
    let (_, updated) = mutate(
        state,
        caller,
        id,
        |r: &FirewallRule| {
            let e = if r.state == "enabled" {
                "firewall.rule.enabled"
            } else {
                "firewall.rule.disabled"
            };
            Some((e, json!({"direction": dir.name(), "rule": r})))
        },
        |c| {
            let rule = dir
                .rules(c)
                .iter_mut()
                .find(|r| matches(r, &f))
                .ok_or(ApiError::NotFound("firewall rule"))?;
            rule.state = new_state.clone();
            Ok(rule.clone())
        },
    )
    .await?;
    Ok(json!({"direction": dir.name(), "new_state": new_state, "updated": updated}))
}

/// `firewall.remove*Rule`: the first matching rule, or every match with `all`.
pub async fn remove(
    state: &AppState,
    caller: &Principal,
    id: &str,
    dir: Direction,
    f: RuleFilter,
) -> ApiResult<Value> {
    let mut v = Validator::new();
    check_common(&mut v, &f);
    v.finish()?;
    let all = f.all.unwrap_or(false);
    let (_, removed) = mutate(
        state,
        caller,
        id,
        |removed: &Vec<FirewallRule>| {
            Some((
                "firewall.rule.removed",
                json!({"direction": dir.name(), "removed": removed}),
            ))
        },
        |c| {
            let rules = dir.rules(c);
            let mut removed = Vec::new();
            let mut kept = Vec::new();
            for r in rules.drain(..) {
                if matches(&r, &f) && (all || removed.is_empty()) {
                    removed.push(r);
                } else {
                    kept.push(r);
                }
            }
            *rules = kept;
            if removed.is_empty() {
                return Err(ApiError::NotFound("firewall rule"));
            }
            Ok(removed)
        },
    )
    .await?;
    Ok(json!({"direction": dir.name(), "removed_count": removed.len(), "removed": removed}))
}

/// `firewall.reset`: no rules in either direction.
pub async fn reset(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Value> {
    let (c, _) = mutate(
        state,
        caller,
        id,
        |n: &usize| {
            (*n > 0).then(|| {
                (
                    "firewall.rule.removed",
                    json!({"reset": true, "removed_count": n}),
                )
            })
        },
        |c| {
            let n = c.firewall.ingress.len() + c.firewall.egress.len();
            c.firewall = Default::default();
            Ok(n)
        },
    )
    .await?;
    Ok(json!({"rules": rules_view(&c)}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(protocol: &str, port: Option<&str>) -> RuleInput {
        RuleInput {
            action: "drop".into(),
            protocol: protocol.into(),
            description: "d".into(),
            destination_port: port.map(str::to_string),
            source: None,
            destination: Some("10.0.0.0/8".into()),
            source_port: None,
            state: None,
            icmp_type: None,
            icmp_code: None,
        }
    }

    #[test]
    fn tcp_rules_need_a_valid_port_and_default_to_enabled() {
        assert!(validate_rule(Direction::Egress, input("tcp", None)).is_err());
        assert!(validate_rule(Direction::Egress, input("tcp", Some("90-80"))).is_err());
        let r = validate_rule(Direction::Egress, input("tcp", Some("80,443"))).unwrap();
        assert_eq!(r.state, "enabled");
        assert!(validate_rule(Direction::Egress, input("icmp4", None)).is_ok());
        assert!(validate_rule(Direction::Ingress, input("icmp4", None)).is_err());
    }

    #[test]
    fn filters_match_on_every_given_field() {
        let r = validate_rule(Direction::Egress, input("tcp", Some("80"))).unwrap();
        let f = RuleFilter {
            protocol: Some("tcp".into()),
            destination_port: Some("80".into()),
            ..Default::default()
        };
        assert!(matches(&r, &f));
        let g = RuleFilter {
            destination_port: Some("81".into()),
            ..Default::default()
        };
        assert!(!matches(&r, &g));
    }
}
