//! The shape of a token's permission tree, the named templates, and the
//! tree arithmetic delegation needs (normalise, compare, strip).
//!
//! Stored trees are always normalised: every known leaf present as a
//! boolean, so what a client reads back is exactly what is enforced. The
//! `admin` branch only appears when one of its leaves is granted.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::wire::Validator;

/// A node of the permission tree's shape.
pub enum Shape {
    Leaf,
    Branch(&'static [(&'static str, Shape)]),
}

use Shape::{Branch, Leaf};

/// Every permission a token can hold, as the contract defines the tree.
pub const TREE: &[(&str, Shape)] = &[
    (
        "containers",
        Branch(&[
            ("create", Leaf),
            ("read", Leaf),
            ("update", Leaf),
            ("delete", Leaf),
            (
                "actions",
                Branch(&[
                    ("start", Leaf),
                    ("stop", Leaf),
                    ("restart", Leaf),
                    ("exec", Leaf),
                    ("logs", Leaf),
                ]),
            ),
            (
                "features",
                Branch(&[
                    ("ai", Leaf),
                    ("hoody_kit", Leaf),
                    ("snapshots", Leaf),
                    ("networking", Leaf),
                    ("kvm", Leaf),
                ]),
            ),
        ]),
    ),
    (
        "projects",
        Branch(&[
            ("create", Leaf),
            ("read", Leaf),
            ("update", Leaf),
            ("delete", Leaf),
            (
                "members",
                Branch(&[("invite", Leaf), ("remove", Leaf), ("change_roles", Leaf)]),
            ),
        ]),
    ),
    (
        "financial",
        Branch(&[
            (
                "wallet",
                Branch(&[("read", Leaf), ("transfer", Leaf), ("withdraw", Leaf)]),
            ),
            (
                "billing",
                Branch(&[
                    ("read", Leaf),
                    ("manage_payment_methods", Leaf),
                    ("download_invoices", Leaf),
                ]),
            ),
            (
                "server_rental",
                Branch(&[
                    ("view_marketplace", Leaf),
                    ("rent_servers", Leaf),
                    ("extend_rentals", Leaf),
                    ("terminate_rentals", Leaf),
                ]),
            ),
        ]),
    ),
    (
        "resources",
        Branch(&[
            ("vault", Leaf),
            ("events", Leaf),
            ("ssh_keys", Leaf),
            ("storage_shares", Leaf),
            ("proxy_aliases", Leaf),
            ("firewalls", Leaf),
            ("realms", Leaf),
            ("auth_token_public_profile", Leaf),
            ("create_tokens", Leaf),
            ("read_account", Leaf),
        ]),
    ),
    (
        "admin",
        Branch(&[
            ("users", Leaf),
            ("servers", Leaf),
            ("system", Leaf),
            ("billing", Leaf),
            ("monitoring", Leaf),
        ]),
    ),
];

/// Checks a client-supplied tree against [`TREE`]: objects where the shape
/// branches, booleans at leaves, no unknown keys. Errors name the full path
/// (`permissions.containers.actions.start`).
pub fn validate(tree: &Value, field: &str, v: &mut Validator) {
    validate_node(tree, TREE, field, v);
}

fn validate_node(node: &Value, shape: &[(&str, Shape)], path: &str, v: &mut Validator) {
    let Some(map) = node.as_object() else {
        v.fail(path, "must be an object");
        return;
    };
    for (key, value) in map {
        let child_path = format!("{path}.{key}");
        match shape.iter().find(|(name, _)| name == key) {
            None => v.fail(&child_path, "unknown permission"),
            Some((_, Leaf)) => {
                if !value.is_boolean() {
                    v.fail(&child_path, "must be a boolean");
                }
            }
            Some((_, Branch(children))) => validate_node(value, children, &child_path, v),
        }
    }
}

/// Every leaf path of the shape, dotted.
pub fn all_leaves() -> Vec<Vec<&'static str>> {
    let mut out = Vec::new();
    collect_leaves(TREE, &mut Vec::new(), &mut out);
    out
}

fn collect_leaves(
    shape: &'static [(&'static str, Shape)],
    prefix: &mut Vec<&'static str>,
    out: &mut Vec<Vec<&'static str>>,
) {
    for (name, node) in shape {
        prefix.push(name);
        match node {
            Leaf => out.push(prefix.clone()),
            Branch(children) => collect_leaves(children, prefix, out),
        }
        prefix.pop();
    }
}

fn leaf(tree: &Value, path: &[&str]) -> bool {
    crate::auth::permission::grants(tree, path)
}

fn set_leaf(tree: &mut Value, path: &[&str], value: bool) {
    let mut node = tree;
    for segment in &path[..path.len() - 1] {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Some(map) = node.as_object_mut() else {
            return;
        };
        node = map
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let (Some(map), Some(last)) = (node.as_object_mut(), path.last()) {
        map.insert(last.to_string(), Value::Bool(value));
    }
}

/// A tree with every leaf present: granted leaves `true`, the rest `false`.
/// The admin branch is kept only when it grants something.
pub fn normalize(tree: &Value) -> Value {
    let mut out = Value::Object(Map::new());
    let admin_granted = all_leaves()
        .iter()
        .any(|p| p[0] == "admin" && leaf(tree, p));
    for path in all_leaves() {
        if path[0] == "admin" && !admin_granted {
            continue;
        }
        set_leaf(&mut out, &path, leaf(tree, &path));
    }
    out
}

/// Builds a normalised tree granting exactly `granted` (dotted paths).
fn tree_of(granted: &[&str]) -> Value {
    let mut tree = Value::Object(Map::new());
    for dotted in granted {
        let path: Vec<&str> = dotted.split('.').collect();
        set_leaf(&mut tree, &path, true);
    }
    normalize(&tree)
}

/// The leaves `child` grants that `parent` does not, dotted.
pub fn exceeding(child: &Value, parent: &Value) -> Vec<String> {
    all_leaves()
        .into_iter()
        .filter(|p| leaf(child, p) && !leaf(parent, p))
        .map(|p| p.join("."))
        .collect()
}

/// Whether the tree grants any `admin` leaf.
pub fn grants_admin(tree: &Value) -> bool {
    all_leaves()
        .iter()
        .any(|p| p[0] == "admin" && leaf(tree, p))
}

/// Turns one leaf off (used to strip re-delegation and vault access).
pub fn revoke(tree: &mut Value, path: &[&str]) {
    set_leaf(tree, path, false);
    *tree = normalize(tree);
}

/// Whether the tree explicitly grants `path`.
pub fn grants(tree: &Value, path: &[&str]) -> bool {
    leaf(tree, path)
}

/// A named permission set offered at token creation.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    #[schema(value_type = Object)]
    pub permissions: Value,
}

const NON_ADMIN: &[&str] = &[
    "containers.create",
    "containers.read",
    "containers.update",
    "containers.delete",
    "containers.actions.start",
    "containers.actions.stop",
    "containers.actions.restart",
    "containers.actions.exec",
    "containers.actions.logs",
    "containers.features.ai",
    "containers.features.hoody_kit",
    "containers.features.snapshots",
    "containers.features.networking",
    "containers.features.kvm",
    "projects.create",
    "projects.read",
    "projects.update",
    "projects.delete",
    "projects.members.invite",
    "projects.members.remove",
    "projects.members.change_roles",
    "financial.wallet.read",
    "financial.wallet.transfer",
    "financial.wallet.withdraw",
    "financial.billing.read",
    "financial.billing.manage_payment_methods",
    "financial.billing.download_invoices",
    "financial.server_rental.view_marketplace",
    "financial.server_rental.rent_servers",
    "financial.server_rental.extend_rentals",
    "financial.server_rental.terminate_rentals",
    "resources.vault",
    "resources.events",
    "resources.ssh_keys",
    "resources.storage_shares",
    "resources.proxy_aliases",
    "resources.firewalls",
    "resources.realms",
    "resources.auth_token_public_profile",
    "resources.create_tokens",
    "resources.read_account",
];

const EXTERNAL_CUSTOMER: &[&str] = &[
    "containers.read",
    "containers.actions.start",
    "containers.actions.stop",
    "containers.actions.restart",
    "containers.actions.logs",
    "projects.read",
    "resources.auth_token_public_profile",
    "resources.read_account",
];

const DEV_TEAM: &[&str] = &[
    "containers.create",
    "containers.read",
    "containers.update",
    "containers.delete",
    "containers.actions.start",
    "containers.actions.stop",
    "containers.actions.restart",
    "containers.actions.exec",
    "containers.actions.logs",
    "containers.features.ai",
    "containers.features.hoody_kit",
    "containers.features.snapshots",
    "containers.features.networking",
    "containers.features.kvm",
    "projects.read",
    "projects.update",
    "financial.server_rental.view_marketplace",
    "resources.events",
    "resources.ssh_keys",
    "resources.storage_shares",
    "resources.proxy_aliases",
    "resources.firewalls",
    "resources.realms",
    "resources.auth_token_public_profile",
    "resources.read_account",
];

const FINANCE_TEAM: &[&str] = &[
    "containers.read",
    "projects.read",
    "financial.wallet.read",
    "financial.wallet.transfer",
    "financial.wallet.withdraw",
    "financial.billing.read",
    "financial.billing.manage_payment_methods",
    "financial.billing.download_invoices",
    "financial.server_rental.view_marketplace",
    "financial.server_rental.rent_servers",
    "financial.server_rental.extend_rentals",
    "financial.server_rental.terminate_rentals",
    "resources.events",
    "resources.read_account",
];

const READ_ONLY: &[&str] = &[
    "containers.read",
    "containers.actions.logs",
    "projects.read",
    "financial.wallet.read",
    "financial.billing.read",
    "financial.server_rental.view_marketplace",
    "resources.events",
    "resources.read_account",
];

const TEMPLATES: &[(&str, &str, &[&str])] = &[
    (
        "full_access",
        "Everything the account can do, except administration.",
        NON_ADMIN,
    ),
    (
        "external_customer",
        "See and operate existing containers, read projects; no changes to infrastructure or money.",
        EXTERNAL_CUSTOMER,
    ),
    (
        "dev_team",
        "Build and run containers and their networking, storage and firewalls; no money.",
        DEV_TEAM,
    ),
    (
        "finance_team",
        "Wallet, billing and server rentals; read-only view of infrastructure.",
        FINANCE_TEAM,
    ),
    (
        "read_only",
        "Read containers, projects, balances and events; change nothing.",
        READ_ONLY,
    ),
];

/// The names clients may pass as `permission_template`.
pub const NAMES: &[&str] = &[
    "full_access",
    "external_customer",
    "dev_team",
    "finance_team",
    "read_only",
];

/// The permission tree of a named template.
pub fn template(name: &str) -> Option<Value> {
    TEMPLATES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, leaves)| tree_of(leaves))
}

/// Every template, for `listAuthTokenPermissionTemplates`.
pub fn all() -> Vec<Template> {
    TEMPLATES
        .iter()
        .map(|(name, description, leaves)| Template {
            name,
            description,
            permissions: tree_of(leaves),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(tree: Value) -> Vec<String> {
        let mut v = Validator::new();
        validate(&tree, "permissions", &mut v);
        match v.finish() {
            Ok(()) => vec![],
            Err(crate::error::ApiError::Validation { details, .. }) => {
                details.keys().cloned().collect()
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn validation_names_unknown_keys_and_wrong_types() {
        assert!(errors(json!({"containers": {"read": true}})).is_empty());
        assert_eq!(
            errors(json!({"containers": {"actions": {"fly": true}}})),
            vec!["permissions.containers.actions.fly"]
        );
        assert_eq!(
            errors(json!({"projects": {"read": "yes"}})),
            vec!["permissions.projects.read"]
        );
        assert_eq!(
            errors(json!({"resources": true})),
            vec!["permissions.resources"]
        );
        assert_eq!(errors(json!([1])), vec!["permissions"]);
    }

    #[test]
    fn every_template_is_a_valid_tree_without_admin() {
        NAMES.iter().for_each(|name| {
            let tree = template(name).unwrap();
            assert!(errors(tree.clone()).is_empty(), "{name}");
            assert!(!grants_admin(&tree), "{name}");
        });
        assert!(template("god_mode").is_none());
        let full = template("full_access").unwrap();
        assert!(exceeding(&full, &full).is_empty());
        assert!(exceeding(&template("read_only").unwrap(), &full).is_empty());
    }

    #[test]
    fn exceeding_lists_leaves_the_parent_lacks() {
        let parent = json!({"containers": {"read": true}});
        let child = json!({"containers": {"read": true, "delete": true}});
        assert_eq!(exceeding(&child, &parent), vec!["containers.delete"]);
    }

    #[test]
    fn normalize_fills_every_leaf_and_revoke_turns_one_off() {
        let mut tree = normalize(&json!({"resources": {"create_tokens": true}}));
        assert_eq!(tree["containers"]["actions"]["start"], json!(false));
        assert!(tree.get("admin").is_none());
        assert!(grants(&tree, &["resources", "create_tokens"]));
        revoke(&mut tree, &["resources", "create_tokens"]);
        assert!(!grants(&tree, &["resources", "create_tokens"]));
    }
}
