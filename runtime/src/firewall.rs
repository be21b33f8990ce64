//! Egress firewall: an nftables table inside the container's network namespace, so the
//! host's own ruleset is never touched. Applying always replaces the whole table in one
//! `nft -f` transaction, which makes it idempotent and never leaves a half-applied set.

use crate::command;
use crate::error::Result;
use crate::spec::{EgressRule, NetworkPolicy, PortMatch, RuleAction, RuleProtocol};

const TABLE: &str = "hoody_egress";

/// Renders the ruleset for a container's egress policy.
///
/// Replies to inbound connections (the proxy reaching the container's HTTP server) and
/// loopback traffic always pass: the rules are about traffic the container initiates.
pub fn render(policy: &NetworkPolicy, rules: &[EgressRule]) -> Result<String> {
    let mut body = String::new();
    body.push_str("    oifname \"lo\" accept\n");
    body.push_str("    ct state established,related accept\n");
    if *policy == NetworkPolicy::Block {
        body.push_str("    counter drop\n");
    } else {
        for rule in rules.iter().filter(|r| r.enabled) {
            body.push_str("    ");
            body.push_str(&render_rule(rule)?);
            body.push('\n');
        }
    }
    Ok(format!(
        "table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  chain output {{\n    type filter hook output priority filter; policy accept;\n{body}  }}\n}}\n"
    ))
}

fn render_rule(rule: &EgressRule) -> Result<String> {
    let mut parts = Vec::new();
    parts.push("meta nfproto ipv4".to_string());
    if let Some(net) = rule.destination_net()? {
        if net.prefix_len() > 0 {
            parts.push(format!("ip daddr {net}"));
        }
    }
    let proto = match rule.protocol {
        RuleProtocol::Tcp => "tcp",
        RuleProtocol::Udp => "udp",
        RuleProtocol::Icmp4 => "icmp",
    };
    match rule.ports()? {
        Some(ports) => parts.push(format!("{proto} dport {}", render_ports(&ports))),
        None if rule.protocol == RuleProtocol::Icmp4 => parts.push("meta l4proto icmp".into()),
        None => parts.push(format!("meta l4proto {proto}")),
    }
    parts.push("counter".into());
    parts.push(
        match (rule.action, rule.protocol) {
            (RuleAction::Allow, _) => "accept",
            (RuleAction::Drop, _) => "drop",
            (RuleAction::Reject, RuleProtocol::Tcp) => "reject with tcp reset",
            (RuleAction::Reject, _) => "reject",
        }
        .to_string(),
    );
    Ok(parts.join(" "))
}

fn render_ports(ports: &PortMatch) -> String {
    match ports {
        PortMatch::Single(p) => p.to_string(),
        PortMatch::Range(low, high) => format!("{low}-{high}"),
        PortMatch::List(list) => {
            let items: Vec<String> = list.iter().map(u16::to_string).collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

/// Replaces the egress table inside the named netns.
pub async fn apply(netns: &str, policy: &NetworkPolicy, rules: &[EgressRule]) -> Result<()> {
    let ruleset = render(policy, rules)?;
    command::run_with_input(
        "ip",
        &["netns", "exec", netns, "nft", "-f", "-"],
        Some(ruleset.as_bytes()),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: RuleAction, port: Option<&str>) -> EgressRule {
        EgressRule {
            action,
            protocol: RuleProtocol::Tcp,
            destination: Some("10.1.2.0/24".into()),
            destination_port: port.map(str::to_string),
            enabled: true,
        }
    }

    #[test]
    fn renders_actions_ports_and_destinations() {
        let rules = vec![
            rule(RuleAction::Reject, Some("80,443")),
            rule(RuleAction::Drop, Some("1000-2000")),
            rule(RuleAction::Allow, None),
        ];
        let text = render(&NetworkPolicy::Open, &rules).unwrap();
        assert!(text
            .contains("ip daddr 10.1.2.0/24 tcp dport { 80, 443 } counter reject with tcp reset"));
        assert!(text.contains("tcp dport 1000-2000 counter drop"));
        assert!(text.contains("meta l4proto tcp counter accept"));
        assert!(text.starts_with("table inet hoody_egress {}\ndelete table inet hoody_egress\n"));
    }

    #[test]
    fn disabled_rules_are_left_out() {
        let mut r = rule(RuleAction::Drop, Some("80"));
        r.enabled = false;
        let text = render(&NetworkPolicy::Open, &[r]).unwrap();
        assert!(!text.contains("dport"));
    }

    #[test]
    fn block_mode_drops_everything_but_replies() {
        let text = render(&NetworkPolicy::Block, &[rule(RuleAction::Allow, None)]).unwrap();
        assert!(text.contains("ct state established,related accept"));
        assert!(text.contains("counter drop"));
        assert!(!text.contains("10.1.2.0"));
    }

    #[test]
    fn any_destination_matches_without_address() {
        let mut r = rule(RuleAction::Drop, None);
        r.destination = Some("0.0.0.0/0".into());
        r.protocol = RuleProtocol::Icmp4;
        let text = render(&NetworkPolicy::Open, &[r]).unwrap();
        assert!(text.contains("meta nfproto ipv4 meta l4proto icmp counter drop"));
    }
}
