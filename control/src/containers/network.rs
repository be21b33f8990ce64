//! `containers.*NetworkConfig` and `startNetwork`/`stopNetwork`: a network
//! mode per container. `block` cuts all egress (nftables, immediately, while
//! the network is started); proxy modes become proxy environment variables
//! at the container's next start. DNS servers apply at the next start.

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{Container, NetworkSettings, CONTAINERS};
use super::service::{lookup, pending_update};
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::events::model::{record, NewEvent};
use crate::projects::model::Level;
use crate::state::AppState;
use crate::wire::{now, Validator};

/// The runtime policy and DNS servers a container gets.
pub fn policy_of(c: &Container) -> (runtime::NetworkPolicy, Vec<String>) {
    let Some(n) = &c.network else {
        return (runtime::NetworkPolicy::Open, Vec::new());
    };
    let policy = if !n.running {
        runtime::NetworkPolicy::Open
    } else {
        match (n.kind.as_str(), &n.proxy) {
            ("block", _) => runtime::NetworkPolicy::Block,
            ("socks5", Some(url)) => runtime::NetworkPolicy::Proxy {
                kind: runtime::ProxyKind::Socks5,
                url: url.clone(),
            },
            ("http", Some(url)) => runtime::NetworkPolicy::Proxy {
                kind: runtime::ProxyKind::Http,
                url: url.clone(),
            },
            ("https", Some(url)) => runtime::NetworkPolicy::Proxy {
                kind: runtime::ProxyKind::Https,
                url: url.clone(),
            },
            _ => runtime::NetworkPolicy::Open,
        }
    };
    (policy, n.dns_servers.clone())
}

/// Splits `scheme://user:pass@host:port` into the URL without credentials
/// and whether there were any.
fn strip_userinfo(url: &str) -> (String, bool) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), false);
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => (format!("{scheme}://{host}{tail}"), true),
        None => (url.to_string(), false),
    }
}

fn status_of(n: &NetworkSettings) -> &'static str {
    if n.running {
        "running"
    } else {
        "stopped"
    }
}

fn view(c: &Container) -> Value {
    let Some(n) = &c.network else {
        return json!({"container_id": c.id, "configured": false});
    };
    let (proxy, creds) = n
        .proxy
        .as_deref()
        .map(strip_userinfo)
        .map(|(p, c)| (Some(p), c))
        .unwrap_or((None, false));
    json!({
        "container_id": c.id,
        "configured": true,
        "type": n.kind,
        "proxy": proxy,
        "credentials_configured": creds,
        "country": n.country,
        "city": n.city,
        "region": n.region,
        "comment": n.comment,
        "dns_servers": n.dns_servers,
        "status": status_of(n),
        "configured_at": n.configured_at,
        "last_status_check": n.last_status_check,
        "remote_status": {"is_running": n.running, "last_check": n.last_status_check},
    })
}

/// `containers.getNetworkConfig`
pub fn get(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Value> {
    let (c, _) = lookup(state, caller, id, Level::Read)?;
    Ok(view(&c))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub proxy: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub comment: Option<String>,
    pub dns_servers: Option<Vec<String>>,
}

async fn save(
    state: &AppState,
    caller: &Principal,
    id: &str,
    f: impl Fn(&mut Container) -> ApiResult<()>,
) -> ApiResult<Container> {
    lookup(state, caller, id, Level::Edit)?;
    let c = state.store.tx(|tx| {
        let mut c = tx
            .get(&CONTAINERS, id)?
            .ok_or(ApiError::NotFound("container"))?;
        f(&mut c)?;
        c.updated_at = now();
        tx.put(&CONTAINERS, id, &c)?;
        record(
            tx,
            NewEvent::new("container.resource_updated", "container", id, &c.user_id).payload(
                json!({"container_id": id, "project_id": c.project_id, "network": view(&c)}),
            ),
        )?;
        Ok(c)
    })?;
    let rt = state.runtime()?;
    rt.set_network_policy(id, policy_of(&c).0).await?;
    rt.update(id, pending_update(&c)).await?;
    Ok(c)
}

/// `containers.updateNetworkConfig`: proxy credentials given once are kept
/// while the endpoint stays the same.
pub async fn update(
    state: &AppState,
    caller: &Principal,
    id: &str,
    body: NetworkInput,
) -> ApiResult<Value> {
    let mut v = Validator::new();
    let scheme = match body.kind.as_str() {
        "socks5" => Some("socks5://"),
        "http" => Some("http://"),
        "https" => Some("https://"),
        "block" => None,
        _ => {
            v.fail("type", "must be one of socks5, http, https, block");
            None
        }
    };
    if let Some(scheme) = scheme {
        match body.proxy.as_deref() {
            None | Some("") => v.fail("proxy", "is required for proxy types"),
            Some(p) => {
                let ok = p.starts_with(scheme)
                    && p.len() > scheme.len()
                    && !p.contains(char::is_whitespace)
                    && p.len() <= 2048;
                v.check(
                    "proxy",
                    ok,
                    &format!("must be a URL starting with {scheme}"),
                );
            }
        }
    }
    let dns = body.dns_servers.clone().unwrap_or_default();
    if dns.len() > 4 {
        v.fail("dns_servers", "at most 4 servers");
    }
    for (i, d) in dns.iter().enumerate() {
        if d.parse::<std::net::IpAddr>().is_err() {
            v.fail(&format!("dns_servers[{i}]"), "must be an IP address");
        }
    }
    for (field, value) in [
        ("country", &body.country),
        ("city", &body.city),
        ("region", &body.region),
    ] {
        if let Some(x) = value {
            v.length(field, x, 0, 100);
        }
    }
    if let Some(c) = &body.comment {
        v.length("comment", c, 0, 1000);
    }
    v.finish()?;
    let at = now();
    let c = save(state, caller, id, |c| {
        let old = c.network.clone();
        let mut proxy = scheme.and(body.proxy.clone());
        // A URL without credentials on the same endpoint keeps the stored ones.
        if let (Some(new), Some(prev)) = (&proxy, old.as_ref().and_then(|o| o.proxy.clone())) {
            let (new_bare, new_creds) = strip_userinfo(new);
            let (prev_bare, prev_creds) = strip_userinfo(&prev);
            if !new_creds && prev_creds && new_bare == prev_bare {
                proxy = Some(prev);
            }
        }
        c.network = Some(NetworkSettings {
            kind: body.kind.clone(),
            proxy,
            country: body.country.clone(),
            city: body.city.clone(),
            region: body.region.clone(),
            comment: body.comment.clone(),
            dns_servers: dns.clone(),
            running: old.as_ref().is_some_and(|o| o.running),
            configured_at: at.clone(),
            last_status_check: at.clone(),
        });
        Ok(())
    })
    .await?;
    let mut out = view(&c);
    if let Value::Object(m) = &mut out {
        m.remove("configured");
        m.remove("last_status_check");
        m.remove("remote_status");
    }
    Ok(out)
}

/// `containers.removeNetworkConfig`
pub async fn remove(state: &AppState, caller: &Principal, id: &str) -> ApiResult<()> {
    save(state, caller, id, |c| {
        if c.network.take().is_none() {
            return Err(ApiError::NotFound("network configuration"));
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// `containers.startNetwork` / `containers.stopNetwork`
pub async fn set_running(
    state: &AppState,
    caller: &Principal,
    id: &str,
    running: bool,
) -> ApiResult<Value> {
    let at = now();
    let c = save(state, caller, id, |c| {
        let n = c.network.as_mut().ok_or_else(|| {
            ApiError::bad_request(
                "NETWORK_NOT_CONFIGURED",
                "configure the network before starting or stopping it",
            )
        })?;
        n.running = running;
        n.last_status_check = at.clone();
        Ok(())
    })
    .await?;
    let n = c.network.as_ref();
    Ok(json!({
        "container_id": c.id,
        "status": n.map(status_of).unwrap_or("stopped"),
        "is_running": running,
        "last_check": at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_from_proxy_urls() {
        assert_eq!(
            strip_userinfo("socks5://u:p@host:1080"),
            ("socks5://host:1080".to_string(), true)
        );
        assert_eq!(
            strip_userinfo("http://host:3128/x"),
            ("http://host:3128/x".to_string(), false)
        );
    }
}
