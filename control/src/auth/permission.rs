//! Route permissions. Each handler names the permission it needs in its
//! extractor, `Authed<perm::ContainersRead>`; session (JWT) users hold every
//! permission of their account, API tokens only the leaves their tree grants.

use serde_json::Value;

/// A leaf of the contract's token permission tree.
pub trait Permission: Send + Sync + 'static {
    /// Path from the root of the tree; empty means "any authenticated caller".
    const PATH: &'static [&'static str];
}

/// Whether `tree` grants `path`: the leaf must exist and be `true`.
pub fn grants(tree: &Value, path: &[&str]) -> bool {
    if path.is_empty() {
        return true;
    }
    let mut node = tree;
    for segment in path {
        match node.get(segment) {
            Some(next) => node = next,
            None => return false,
        }
    }
    node.as_bool().unwrap_or(false)
}

macro_rules! permissions {
    ($($name:ident => [$($seg:literal),*];)*) => {
        $(
            #[doc = concat!("Permission `", $($seg, ".",)* "`")]
            pub struct $name;
            impl Permission for $name {
                const PATH: &'static [&'static str] = &[$($seg),*];
            }
        )*
    };
}

permissions! {
    AnyCaller => [];
    ContainersCreate => ["containers", "create"];
    ContainersRead => ["containers", "read"];
    ContainersUpdate => ["containers", "update"];
    ContainersDelete => ["containers", "delete"];
    ContainersStart => ["containers", "actions", "start"];
    ContainersStop => ["containers", "actions", "stop"];
    ContainersRestart => ["containers", "actions", "restart"];
    ContainersExec => ["containers", "actions", "exec"];
    ContainersLogs => ["containers", "actions", "logs"];
    ContainersSnapshots => ["containers", "features", "snapshots"];
    ContainersNetworking => ["containers", "features", "networking"];
    ContainersKvm => ["containers", "features", "kvm"];
    ProjectsCreate => ["projects", "create"];
    ProjectsRead => ["projects", "read"];
    ProjectsUpdate => ["projects", "update"];
    ProjectsDelete => ["projects", "delete"];
    ProjectsInvite => ["projects", "members", "invite"];
    ProjectsRemoveMember => ["projects", "members", "remove"];
    ProjectsChangeRoles => ["projects", "members", "change_roles"];
    WalletRead => ["financial", "wallet", "read"];
    WalletTransfer => ["financial", "wallet", "transfer"];
    BillingRead => ["financial", "billing", "read"];
    BillingManagePaymentMethods => ["financial", "billing", "manage_payment_methods"];
    BillingDownloadInvoices => ["financial", "billing", "download_invoices"];
    RentalView => ["financial", "server_rental", "view_marketplace"];
    RentalRent => ["financial", "server_rental", "rent_servers"];
    RentalExtend => ["financial", "server_rental", "extend_rentals"];
    Vault => ["resources", "vault"];
    Events => ["resources", "events"];
    StorageShares => ["resources", "storage_shares"];
    ProxyAliases => ["resources", "proxy_aliases"];
    Firewalls => ["resources", "firewalls"];
    Realms => ["resources", "realms"];
    TokenPublicProfile => ["resources", "auth_token_public_profile"];
    CreateTokens => ["resources", "create_tokens"];
    ReadAccount => ["resources", "read_account"];
    AdminUsers => ["admin", "users"];
    AdminServers => ["admin", "servers"];
    AdminSystem => ["admin", "system"];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_or_false_leaves_deny() {
        let tree = json!({"containers": {"read": true, "actions": {"start": false}}});
        assert!(grants(&tree, ContainersRead::PATH));
        assert!(!grants(&tree, ContainersStart::PATH));
        assert!(!grants(&tree, ContainersCreate::PATH));
        assert!(!grants(&tree, ReadAccount::PATH));
        assert!(grants(&tree, AnyCaller::PATH));
        assert!(!grants(&json!({"containers": true}), ContainersRead::PATH));
    }
}
